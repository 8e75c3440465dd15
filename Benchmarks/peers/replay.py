"""The timed `tripline replay` that Benchmarks/peers/run.py, Benchmarks/peers/ab.py and
Benchmarks/Thresholds/check.py share, on the workload run.py generates."""
import pathlib
import time
import subprocess

# The three rule sets run.py writes into the workload folder.
RULE_SETS = {"full": "rules-mixed.json", "geofence": "rules-geofence.json", "freqgather": "rules-freqgather.json"}


def replay(binary, gen, rules_file, out, n_events, env=None):
    """Replays gen/events.ndjson with gen/rules_file end to end (parse, index, rules, alert
    lines written to `out`); returns (events/s, alerts written)."""
    gen = pathlib.Path(gen)
    t = time.perf_counter()
    subprocess.run([str(binary), "replay", "--zones", str(gen / "zones.geojson"), "--entities", str(gen / "entities.ndjson"),
                    "--rules", str(gen / rules_file), "--output", str(out), "--quiet", str(gen / "events.ndjson")],
                   check=True, env=env)
    dt = time.perf_counter() - t
    with open(out) as fh:
        return n_events / dt, sum(1 for _ in fh)
