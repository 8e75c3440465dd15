#!/usr/bin/env python3
"""Regression thresholds for `tripline replay` on the issue-18 workload, in the manner of
swift-nio's allocation-counter thresholds.

    python3 Benchmarks/Thresholds/check.py TRIPLINE_BIN [--work DIR] [--runs N] [--update LABEL]

For each rule set (full suite, geofence only, frequency and gathering) it measures:
- heap allocations per event, counted by an LD_PRELOAD shim (malloc_count.c, built here with
  cc). The count barely moves between runs (a few allocations in a million, from the decode
  threads), so it is the threshold: more than ALLOC_TOLERANCE above the stored figure is a
  regression and the script exits 1;
- events/s, the median of N timed runs. Times depend on the machine and its load, so a rate
  below RATE_WARN of the stored one is reported as a possible regression, to be confirmed
  with an interleaved A/B (Benchmarks/peers/ab.py); it does not fail the check.

Each figure is printed with its ratio to the stored baseline (thresholds.json, next to this
script). --update LABEL stores the figures of this run as the new baseline, LABEL naming the
binary (its commit). The workload is the one
Benchmarks/peers/run.py generates (seed 1) in --work DIR/gen-500000."""
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

ALLOC_TOLERANCE = 0.01
RATE_WARN = 0.85
here = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(here.parent / "peers"))
from replay import RULE_SETS, replay  # noqa: E402
args = sys.argv[1:]
if not args:
    sys.exit(__doc__)
BIN, WORK, RUNS, UPDATE = args.pop(0), "/tmp/peers", 3, None
while args:
    a = args.pop(0)
    if a == "--work":
        WORK = args.pop(0)
    elif a == "--runs":
        RUNS = int(args.pop(0))
    elif a == "--update":
        UPDATE = args.pop(0)
    else:
        sys.exit(f"unknown argument {a}\n{__doc__}")
gen = pathlib.Path(WORK) / "gen-500000"
if not (gen / "events.ndjson").exists():
    sys.exit(f"{gen} has no workload: run `python3 Benchmarks/peers/run.py {BIN} 1 --work {WORK}` once")
n_events = sum(1 for _ in open(gen / "events.ndjson"))
tmp = pathlib.Path(tempfile.mkdtemp(prefix="tripline-thresholds-"))
shim = tmp / "malloc_count.so"
subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", str(shim), str(here / "malloc_count.c")], check=True)


measured = {}
for s in RULE_SETS:
    env = dict(os.environ, LD_PRELOAD=str(shim), MALLOC_COUNT_OUT=str(tmp / "count.txt"))
    _, alerts = replay(BIN, gen, RULE_SETS[s], tmp / "alerts.ndjson", n_events, env)
    allocs = int((tmp / "count.txt").read_text())
    rates = [replay(BIN, gen, RULE_SETS[s], tmp / "alerts.ndjson", n_events)[0] for _ in range(RUNS)]
    measured[s] = {"allocations_per_event": round(allocs / n_events, 4), "events_per_s": round(statistics.median(rates)),
                   "alerts": alerts}

path = here / "thresholds.json"
if UPDATE:
    path.write_text(json.dumps({"workload": "Benchmarks/peers/run.py, 500,000 events, seed 1", "binary": UPDATE,
                                "measures": measured}, indent=2) + "\n")
    print(f"stored {path}")
base = json.loads(path.read_text())["measures"] if path.exists() else {}
failed = False
for s, m in measured.items():
    b = base.get(s)
    if not b:
        print(f"{s:10s} {m['allocations_per_event']:.4f} allocations/event  {m['events_per_s']:>11,} events/s  (no baseline)")
        continue
    ar = m["allocations_per_event"] / b["allocations_per_event"]
    rr = m["events_per_s"] / b["events_per_s"]
    verdict = []
    if ar > 1 + ALLOC_TOLERANCE:
        verdict.append(f"ALLOCATION REGRESSION ({ar:.3f}x)")
        failed = True
    if rr < RATE_WARN:
        verdict.append(f"possible rate regression ({rr:.2f}x; confirm with Benchmarks/peers/ab.py)")
    if m["alerts"] != b["alerts"]:
        verdict.append(f"ALERT COUNT CHANGED ({b['alerts']} -> {m['alerts']})")
        failed = True
    print(f"{s:10s} {m['allocations_per_event']:.4f} allocations/event ({ar:.3f}x baseline)  "
          f"{m['events_per_s']:>11,} events/s ({rr:.2f}x baseline)  alerts {m['alerts']}  {'; '.join(verdict) or 'ok'}")
sys.exit(1 if failed else 0)
