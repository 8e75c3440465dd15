#!/usr/bin/env python3
"""Interleaved wall-clock times of `tripline replay` for several binaries on the workload
run.py builds, one rule set: each round runs every binary once, in turn. Prints each binary's
median and minimum. With --empty the event file is empty: what loading the zones, entities
and rules costs before the first event.
    python3 Benchmarks/peers/walls.py BIN [BIN ...] [--runs N] [--set full|geofence|freqgather]
                                      [--empty] [--work DIR]"""
import argparse
import pathlib
import statistics
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from replay import RULE_SETS  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("bins", nargs="+", metavar="BIN", help="tripline binaries to time, in turn")
parser.add_argument("--runs", type=int, default=15, help="runs of each binary (default 15)")
parser.add_argument("--set", dest="rule_set", choices=sorted(RULE_SETS), default="full", help="rule set (default full)")
parser.add_argument("--empty", action="store_true", help="an empty event file: loading only")
parser.add_argument("--work", default="/tmp/peers", help="run.py's work folder (default /tmp/peers)")
opts = parser.parse_args()
bins, runs, rule_set, empty, work = opts.bins, opts.runs, opts.rule_set, opts.empty, opts.work
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
