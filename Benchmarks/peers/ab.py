#!/usr/bin/env python3
"""Interleaved A/B of two tripline binaries on the issue-18 workload (the one run.py builds).

    python3 Benchmarks/peers/ab.py OLD_BIN NEW_BIN [ROUNDS] [--work DIR] [--sets full,geofence,freqgather]

Each round runs `tripline replay` end to end (parse, index, rules, alerts written) with each rule
set, the two binaries in turn, the order swapped every round. The alert counts of the two
binaries must be equal in every run, or the script stops. Prints every round, then the median
rate of each binary and the median of the per-round ratios NEW/OLD."""
import os
import pathlib
import statistics
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from replay import RULE_SETS, replay  # noqa: E402

args = sys.argv[1:]
if len(args) < 2:
    sys.exit(__doc__)
A, B = args.pop(0), args.pop(0)
ROUNDS = int(args.pop(0)) if args and args[0].isdigit() else 5
WORK, SETS = "/tmp/peers", ["full", "geofence", "freqgather"]
while args:
    a = args.pop(0)
    if a == "--work":
        WORK = args.pop(0)
    elif a == "--sets":
        SETS = args.pop(0).split(",")
    else:
        sys.exit(f"unknown argument {a}\n{__doc__}")
gen = pathlib.Path(WORK) / "gen-500000"
if not (gen / "events.ndjson").exists():
    sys.exit(f"{gen} has no workload: run Benchmarks/peers/run.py once with --work {WORK}")
n_events = sum(1 for _ in open(gen / "events.ndjson"))
out = pathlib.Path(WORK) / "ab-alerts.ndjson"


def run(binary, rules):
    return replay(binary, gen, RULE_SETS[rules], out, n_events)


rates = {(s, w): [] for s in SETS for w in "AB"}
ratios = {s: [] for s in SETS}
for r in range(ROUNDS):
    for s in SETS:
        order = [("A", A), ("B", B)] if r % 2 == 0 else [("B", B), ("A", A)]
        got = {}
        for w, binary in order:
            got[w] = run(binary, s)
            rates[(s, w)].append(got[w][0])
        if got["A"][1] != got["B"][1]:
            sys.exit(f"round {r} {s}: alert counts differ: old {got['A'][1]}, new {got['B'][1]}")
        ratios[s].append(got["B"][0] / got["A"][0])
        print(f"round {r} {s:10s} old {got['A'][0]:>11,.0f} ev/s  new {got['B'][0]:>11,.0f} ev/s  "
              f"new/old {ratios[s][-1]:.3f}  alerts {got['A'][1]}", flush=True)
print()
for s in SETS:
    print(f"{s:10s} old median {statistics.median(rates[(s, 'A')]):>11,.0f}  new median {statistics.median(rates[(s, 'B')]):>11,.0f}  "
          f"new/old per round {min(ratios[s]):.3f}-{max(ratios[s]):.3f}, median {statistics.median(ratios[s]):.3f}")
