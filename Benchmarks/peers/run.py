#!/usr/bin/env python3
"""Tripline next to the tools a user would pick instead, on one workload, in one run.

    python3 Benchmarks/peers/run.py TRIPLINE_BIN [ROUNDS] [--events N] [--work DIR]

Workload (`tripline generate`, seed 1): 2,000 synthetic zones (star polygons, 20% with a hole,
10% MultiPolygons, 10% circles) plus the 177 country polygons of Natural Earth 1:110m,
densified to 42,194 vertices (Benchmarks/data/countries-110m-dense.geojson), 2,000 entities over 20°W-50°E, 35°S-70°N, 500,000
events: 72% positions, 14% readings, 7% contacts, 7% custom events.

Each round measures, in turn (the order rotates per round):
- Tripline `replay`, end to end from the NDJSON file (parse, index, rules, alerts written), with
  three rule sets: the full suite (30 rules of every kind), geofence only (6 enter, exit and
  speed rules, two of them on countries), frequency and gathering (6 rules);
- shapely 2 STRtree: membership of every position in every zone (predicate covered_by, the
  closed-set test Tripline uses), the query alone timed (parsing and tree building not);
- DuckDB SQL, 2 threads: the 6 frequency and gathering rules as window queries over the events,
  with zone membership precomputed (by shapely) and loading not timed.

Circles are polygons of 64 vertices for shapely and DuckDB (Tripline tests them by haversine
distance), so membership differs at circle edges; the peers' figures are rates, not a check of
Tripline's answers (the differential tests in Tests/ are that).
Prints each round, then medians and the ratios of medians."""
import json
import math
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

args = sys.argv[1:]
BIN = args.pop(0)
ROUNDS = int(args.pop(0)) if args and args[0].isdigit() else 3
EVENTS = 500_000
WORK = None
while args:
    a = args.pop(0)
    if a == "--events":
        EVENTS = int(args.pop(0))
    elif a == "--work":
        WORK = args.pop(0)
    else:
        sys.exit(f"unknown argument {a}: usage: run.py TRIPLINE_BIN [ROUNDS] [--events N] [--work DIR]")

import duckdb  # noqa: E402  (pip install duckdb)
import numpy as np  # noqa: E402
import shapely  # noqa: E402  (pip install 'shapely>=2')

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from replay import replay  # noqa: E402

here = pathlib.Path(__file__).resolve().parent
W = pathlib.Path(WORK or tempfile.mkdtemp(prefix="tripline-peers-"))
gen = W / f"gen-{EVENTS}"
if not (gen / "events.ndjson").exists():
    subprocess.run([BIN, "generate", "--out", str(gen), "--zones", "2000", "--entities", "2000", "--events", str(EVENTS),
                    "--reading-share", "0.14", "--contact-share", "0.07", "--custom-share", "0.07",
                    "--hole-share", "0.2", "--multi-share", "0.1", "--circle-share", "0.1", "--region=-20,-35,50,70",
                    "--countries", str(here.parent / "data" / "countries-110m-dense.geojson"), "--mixed-rules", "30"], check=True)


def rule(i, kind, **kw):
    return {"id": i, "kind": kind, "purpose": "benchmark", "owner": "bench", "severity": "low", **kw}


GEOFENCE = [
    rule("truck-enters-country", "enter", match={"kind": ["truck"]}, zones={"category": ["country"]}),
    rule("vessel-leaves-country", "exit", match={"kind": ["vessel"]}, zones={"category": ["country"]}),
    rule("hazmat-enters-restricted", "enter", match={"kind": ["truck"], "tags": {"cargo": ["hazmat"]}}, zones={"category": ["restricted"]}),
    rule("enters-depot", "enter", match={}, zones={"category": ["depot"]}),
    rule("vessel-leaves-port", "exit", match={"kind": ["vessel"]}, zones={"category": ["port"]}),
    rule("truck-speeding", "speed", match={"kind": ["truck"]}, max_kmh=130),
]
# (rule, the same rule as a DuckDB query over ev(entity, kind, time, type) and m(entity, kind, time, zone, category))
FREQGATHER = [
    (rule("depot-gathering", "gathering", match={}, zones={"category": ["depot"]}, min_count=2, window="10m"),
     "SELECT count(*) FROM (SELECT count(DISTINCT entity) OVER (PARTITION BY zone ORDER BY time RANGE BETWEEN 600000 PRECEDING AND CURRENT ROW) n"
     " FROM m WHERE category = 'depot') WHERE n >= 2"),
    (rule("vessels-at-port", "gathering", match={"kind": ["vessel"]}, zones={"category": ["port"]}, min_count=3, window="30m"),
     "SELECT count(*) FROM (SELECT count(DISTINCT entity) OVER (PARTITION BY zone ORDER BY time RANGE BETWEEN 1800000 PRECEDING AND CURRENT ROW) n"
     " FROM m WHERE category = 'port' AND kind = 'vessel') WHERE n >= 3"),
    (rule("trucks-in-country", "gathering", match={"kind": ["truck"]}, zones={"category": ["country"]}, min_count=20, window="10m"),
     "SELECT count(*) FROM (SELECT count(DISTINCT entity) OVER (PARTITION BY zone ORDER BY time RANGE BETWEEN 600000 PRECEDING AND CURRENT ROW) n"
     " FROM m WHERE category = 'country' AND kind = 'truck') WHERE n >= 20"),
    (rule("failed-logins", "frequency", match={}, count=3, window="10m", event={"type": "login_failed"}),
     "SELECT count(*) FROM (SELECT count(*) OVER (PARTITION BY entity ORDER BY time RANGE BETWEEN 600000 PRECEDING AND CURRENT ROW) n"
     " FROM ev WHERE type = 'login_failed') WHERE n >= 3"),
    (rule("depot-visits", "frequency", match={"kind": ["truck"]}, count=3, window="5m", event={"type": "position", "zones": {"category": ["depot"]}}),
     "SELECT count(*) FROM (SELECT count(*) OVER (PARTITION BY entity ORDER BY time RANGE BETWEEN 300000 PRECEDING AND CURRENT ROW) n"
     " FROM m WHERE category = 'depot' AND kind = 'truck') WHERE n >= 3"),
    (rule("readings-burst", "frequency", match={"kind": ["meter"]}, count=4, window="15m", event={"type": "reading", "metric": "water_l"}),
     "SELECT count(*) FROM (SELECT count(*) OVER (PARTITION BY entity ORDER BY time RANGE BETWEEN 900000 PRECEDING AND CURRENT ROW) n"
     " FROM ev WHERE type = 'reading' AND kind = 'meter') WHERE n >= 4"),
]
(gen / "rules-geofence.json").write_text(json.dumps({"rules": GEOFENCE}))
(gen / "rules-freqgather.json").write_text(json.dumps({"rules": [r for r, _ in FREQGATHER]}))

# --- the peers' inputs, prepared once (not timed) ---------------------------------------------
zones = json.loads((gen / "zones.geojson").read_text())["features"]
geoms, zone_ids, zone_cats = [], [], []
for f in zones:
    p, g = f["properties"], f["geometry"]
    if "radius_m" in p:
        lon, lat = g["coordinates"]
        r = p["radius_m"]
        ring = [(lon + r / (111_320 * math.cos(math.radians(lat))) * math.cos(a), lat + r / 110_574 * math.sin(a))
                for a in (2 * math.pi * k / 64 for k in range(64))]
        geoms.append(shapely.Polygon(ring))
    else:
        geoms.append(shapely.from_geojson(json.dumps(g)))
    zone_ids.append(p["id"])
    zone_cats.append(p["category"])
vertices = int(sum(shapely.get_num_coordinates(geoms)))
ents, kinds, times, types, lons, lats = [], [], [], [], [], []
with open(gen / "events.ndjson") as fh:
    for line in fh:
        e = json.loads(line)
        ents.append(e["entity"]); kinds.append(e["entity"].split("-")[0]); times.append(e["time"]); types.append(e["type"])
        lons.append(e.get("lon", math.nan)); lats.append(e.get("lat", math.nan))
n_events = len(ents)
pos_idx = np.array([i for i, t in enumerate(types) if t == "position"])
points = shapely.points(np.array(lons)[pos_idx], np.array(lats)[pos_idx])
tree = shapely.STRtree(geoms)
print(f"workload: {len(geoms)} zones ({vertices} vertices), {n_events} events, {len(pos_idx)} positions; work folder {W}", flush=True)

con = duckdb.connect()
con.execute("SET threads = 2")
csv = W / "ev.csv"
with open(csv, "w") as fh:
    fh.write("entity,kind,time,type\n")
    for i in range(n_events):
        fh.write(f"{ents[i]},{kinds[i]},{times[i]},{types[i]}\n")
con.execute(f"CREATE TABLE ev AS SELECT * FROM read_csv('{csv}', header = true, columns = {{'entity': 'VARCHAR', 'kind': 'VARCHAR', 'time': 'BIGINT', 'type': 'VARCHAR'}})")
pairs = tree.query(points, predicate="covered_by")
msv = W / "m.csv"
with open(msv, "w") as fh:
    fh.write("entity,kind,time,zone,category\n")
    for pi, zi in zip(pairs[0], pairs[1]):
        i = pos_idx[pi]
        fh.write(f"{ents[i]},{kinds[i]},{times[i]},{zone_ids[zi]},{zone_cats[zi]}\n")
con.execute(f"CREATE TABLE m AS SELECT * FROM read_csv('{msv}', header = true, columns = {{'entity': 'VARCHAR', 'kind': 'VARCHAR', 'time': 'BIGINT', 'zone': 'VARCHAR', 'category': 'VARCHAR'}})")
print(f"membership (shapely, precomputed for DuckDB): {len(pairs[0])} (position, zone) pairs", flush=True)


def tripline(rules):
    return replay(BIN, gen, rules, W / "alerts.ndjson", n_events)


def strtree():
    t = time.perf_counter()
    r = tree.query(points, predicate="covered_by")
    dt = time.perf_counter() - t
    return len(pos_idx) / dt, len(r[0])


def duck():
    total, fired = 0.0, []
    for _, q in FREQGATHER:
        t = time.perf_counter()
        fired.append(con.execute(q).fetchone()[0])
        total += time.perf_counter() - t
    return n_events / total, sum(fired)


measures = {
    "tripline full suite (30 rules), events/s": lambda: tripline("rules-mixed.json"),
    "tripline geofence only (6 rules), events/s": lambda: tripline("rules-geofence.json"),
    "tripline frequency+gathering (6 rules), events/s": lambda: tripline("rules-freqgather.json"),
    "shapely STRtree membership, positions/s": strtree,
    "DuckDB frequency+gathering (6 queries), events/s": duck,
}
names = list(measures)
res = {k: [] for k in names}
for r in range(ROUNDS):
    order = names[r % len(names):] + names[:r % len(names)]
    for k in order:
        rate, count = measures[k]()
        res[k].append(rate)
        print(f"round {r + 1}: {k}: {rate:,.0f} ({count} alerts/rows)", flush=True)
med = {k: statistics.median(v) for k, v in res.items()}
print("\nmedians:")
for k in names:
    print(f"  {k}: {med[k]:,.0f}  (rounds: {', '.join(f'{x:,.0f}' for x in res[k])})")
share = len(pos_idx) / n_events
print("\nratios (medians of this run):")
print(f"  geofence only, Tripline positions/s over STRtree positions/s: "
      f"{med[names[1]] * share / med[names[3]]:.2f}x  (Tripline end to end with parsing; STRtree membership alone)")
print(f"  frequency+gathering, Tripline over DuckDB: {med[names[2]] / med[names[4]]:.2f}x  "
      f"(Tripline end to end; DuckDB with membership precomputed and loading not timed)")
