#!/usr/bin/env python3
"""Interleaved wall-clock times of `tripline replay` for several binaries on the workload
run.py builds, one rule set: each round runs every binary once, in turn. Prints each binary's
median and minimum. With --empty the event file is empty: what loading the zones, entities
and rules costs before the first event.
    python3 Benchmarks/peers/walls.py BIN [BIN ...] [--runs N] [--set full|geofence|freqgather]
                                      [--empty] [--work DIR]"""
import pathlib
import statistics
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from replay import RULE_SETS  # noqa: E402

args = sys.argv[1:]
bins, runs, rule_set, empty, work = [], 15, "full", False, "/tmp/peers"
while args:
    a = args.pop(0)
    if a == "--runs":
        runs = int(args.pop(0))
    elif a == "--set":
        rule_set = args.pop(0)
    elif a == "--empty":
        empty = True
    elif a == "--work":
        work = args.pop(0)
    elif a.startswith("--"):
        sys.exit(f"unknown option {a}\n{__doc__}")
    else:
        bins.append(a)
if not bins or rule_set not in RULE_SETS:
    sys.exit(__doc__)
gen = next(pathlib.Path(work).glob("gen-*"), None)
if gen is None:
    sys.exit(f"no workload under {work}: run Benchmarks/peers/run.py first")
events = gen / "events.ndjson"
if empty:
    events = pathlib.Path(work) / "empty.ndjson"
    events.write_text("")
times = {b: [] for b in bins}
for r in range(runs):
    for b in (bins if r % 2 == 0 else bins[::-1]):
        t = time.perf_counter()
        subprocess.run([b, "replay", "--zones", str(gen / "zones.geojson"), "--entities", str(gen / "entities.ndjson"),
                        "--rules", str(gen / RULE_SETS[rule_set]), "--output", str(pathlib.Path(work) / "walls.ndjson"),
                        "--quiet", str(events)], check=True)
        times[b].append((time.perf_counter() - t) * 1000)
for b in bins:
    print(f"{b}: median {statistics.median(times[b]):.1f} ms, minimum {min(times[b]):.1f} ms ({runs} runs, {rule_set}{', empty event file' if empty else ''})")
