#!/usr/bin/env python3
"""Spatial queries side by side: a running `tripline serve` and PostGIS, on the same positions,
the same query points and the same polygon, in one run, each while positions keep moving.

    python3 Benchmarks/peers/postgis_query.py TRIPLINE_BIN EXPORT_DIR [--queries N] [--postgres URL]

EXPORT_DIR comes from `tripline bench-query --export EXPORT_DIR` (1,000,000 positions, half over
Europe and half over the world; a 1,000-vertex star polygon over central Europe holding about
10,000 of them; query points; Tripline's in-process answers).

- Tripline: a server on a fresh SQLite store in a temporary folder; the positions are posted as
  events (batches of 10,000), then `GET /v1/query/nearby?k=10` and `POST /v1/query/within` (the
  polygon, limit 10,000, every page followed) over one keep-alive connection.
- PostGIS (Debian postgresql-15-postgis-3, the server of `bash scripts/pg start`): a table of
  (id, geometry point SRID 4326, geography) with GiST indexes on both, analysed; KNN
  `ORDER BY gg <-> point::geography LIMIT 10` (sphere distance), and
  `ST_Covers(polygon, g) ORDER BY id COLLATE "C"` (the same closed-set test, planar in lon/lat,
  as Tripline's zones), one connection, the polygon sent as a parameter each time.
- Ingest continues meanwhile: a second client moves 1,000 random positions every 100 ms (a
  POST of 1,000 position events; an UPDATE of 1,000 rows in one transaction).
- Query kinds alternate Tripline/PostGIS query by query, so both see the same machine load.
- Two phases: idle, then while the moves run.
- Tripline's time includes writing the audit record of each query (a store commit) and the
  JSON of every answer (id, kind, lon, lat, time); PostGIS returns the ids only.

Prints p50/p99 per query kind for both, the ratio, and the agreement of the answers (nearby: the
10 ids, which may differ at near-equal distances since PostGIS's sphere radius is 6371008.7714 m
and Tripline's 6371008.8 m; within: the counts).
"""
import argparse
import csv
import http.client
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import psycopg

ap = argparse.ArgumentParser()
ap.add_argument("bin")
ap.add_argument("export")
ap.add_argument("--queries", type=int, default=500)
ap.add_argument("--postgres", default="postgres://tripline@127.0.0.1:54329/tripline")
args = ap.parse_args()

ids, xs, ys = [], [], []
with open(os.path.join(args.export, "positions.csv")) as f:
    r = csv.reader(f)
    next(r)
    for row in r:
        ids.append(row[0]); xs.append(float(row[1])); ys.append(float(row[2]))
polygon = open(os.path.join(args.export, "polygon.geojson")).read().strip()
points = []
with open(os.path.join(args.export, "queries.csv")) as f:
    r = csv.reader(f)
    next(r)
    points = [(float(a), float(b)) for a, b in r]
n = len(ids)
print(f"{n} positions, {len(points)} query points, polygon of {len(json.loads(polygon)['coordinates'][0]) - 1} vertices")

# --- Tripline server -------------------------------------------------------------------
tmp = tempfile.mkdtemp(prefix="tl-query-")
tok = subprocess.run([args.bin, "token", "create", "--data", tmp, "--role", "admin", "--name", "bench"], capture_output=True, text=True, check=True).stdout.strip()
proc = subprocess.Popen([args.bin, "serve", "--data", tmp, "--port", "0", "--max-future", "off"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
port = int(proc.stdout.readline().split("http://")[1].split(":")[1].split(" ")[0])
hdr = {"Authorization": "Bearer " + tok}


def conn():
    return http.client.HTTPConnection("127.0.0.1", port, timeout=120)


parse_s = [0.0]  # time spent in json.loads, so that the server's share can be told apart


def call(c, method, path, body=None, ctype="application/json"):
    h = dict(hdr)
    if body is not None:
        h["Content-Type"] = ctype
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    if r.status != 200:
        raise SystemExit(f"{method} {path}: {r.status} {data[:300]}")
    s = time.perf_counter()
    out = json.loads(data)
    parse_s[0] += time.perf_counter() - s
    return out


T0 = 1772409600000


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


c = conn()
t = time.time()
for k in range(0, n, 10000):
    body = "\n".join(f'{{"entity":"{ids[i]}","time":"{iso(T0)}","type":"position","lon":{xs[i]},"lat":{ys[i]}}}' for i in range(k, min(n, k + 10000)))
    call(c, "POST", "/v1/events", body, "application/x-ndjson")
print(f"tripline: {n} positions posted in {time.time() - t:.1f} s")

# --- PostGIS ---------------------------------------------------------------------------
# prepare_threshold=None: every query is planned with its polygon (psycopg would otherwise
# prepare it after 5 runs, and PostgreSQL may then pick a generic plan that scans the whole
# table with ST_Covers: 7 s a query instead of 80 ms in one run).
pg = psycopg.connect(args.postgres, autocommit=True, prepare_threshold=None)
pg.execute("CREATE EXTENSION IF NOT EXISTS postgis")
pg.execute("DROP TABLE IF EXISTS bench_pos")
pg.execute("CREATE TABLE bench_pos (id text PRIMARY KEY, g geometry(Point, 4326), gg geography(Point, 4326))")
t = time.time()
with pg.cursor().copy("COPY bench_pos (id, g) FROM STDIN") as cp:
    for i in range(n):
        cp.write_row((ids[i], f"SRID=4326;POINT({xs[i]} {ys[i]})"))
pg.execute("UPDATE bench_pos SET gg = g::geography")
pg.execute("CREATE INDEX ON bench_pos USING gist (g)")
pg.execute("CREATE INDEX ON bench_pos USING gist (gg)")
pg.execute("VACUUM ANALYZE bench_pos")
print(f"postgis: {n} rows loaded and indexed in {time.time() - t:.1f} s")

# --- Moves meanwhile -----------------------------------------------------------------------
stop = threading.Event()
moved = {"tripline": 0, "postgis": 0}


def move_tripline():
    c2 = conn()
    rng = random.Random(1)
    now = T0
    while not stop.is_set():
        now += 1000
        lines = []
        for _ in range(1000):
            i = rng.randrange(n)
            lines.append(f'{{"entity":"{ids[i]}","time":"{iso(now)}","type":"position","lon":{min(180, max(-180, xs[i] + rng.uniform(-0.01, 0.01)))},"lat":{min(85, max(-85, ys[i] + rng.uniform(-0.01, 0.01)))}}}')
        call(c2, "POST", "/v1/events", "\n".join(lines), "application/x-ndjson")
        moved["tripline"] += 1000
        stop.wait(0.1)


def move_postgis():
    p2 = psycopg.connect(args.postgres, prepare_threshold=None)
    rng = random.Random(1)
    while not stop.is_set():
        rows = []
        for _ in range(1000):
            i = rng.randrange(n)
            rows.append((min(180, max(-180, xs[i] + rng.uniform(-0.01, 0.01))), min(85, max(-85, ys[i] + rng.uniform(-0.01, 0.01))), ids[i]))
        with p2.cursor() as cur:
            cur.executemany("UPDATE bench_pos SET g = ST_SetSRID(ST_MakePoint(%s, %s), 4326), gg = ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography WHERE id = %s",
                            [(x, y, x, y, i) for x, y, i in rows])
        p2.commit()
        moved["postgis"] += 1000
        stop.wait(0.1)


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))] * 1000


cur = pg.cursor()
knn = "SELECT id FROM bench_pos ORDER BY gg <-> ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography LIMIT 10"
cov = 'SELECT id FROM bench_pos WHERE ST_Covers(ST_SetSRID(ST_GeomFromGeoJSON(%s), 4326), g) ORDER BY id COLLATE "C"'
for phase in ("idle", "moving"):
    stop.clear()
    movers = []
    if phase == "moving":
        moved.update(tripline=0, postgis=0)
        movers = [threading.Thread(target=move_tripline, daemon=True), threading.Thread(target=move_postgis, daemon=True)]
        for m in movers:
            m.start()
    began = time.time()
    timing = {("tripline", "nearby"): [], ("postgis", "nearby"): [], ("tripline", "within"): [], ("postgis", "within"): [],
              ("tripline-ids", "within"): []}
    served = {"within": [], "within-ids": []}  # Tripline's times without the client's json.loads
    agree_near, counts = [], {"tripline": [], "postgis": [], "tripline-ids": []}
    for q in range(args.queries):
        x, y = points[q % len(points)]
        order = ["tripline", "postgis"] if q % 2 == 0 else ["postgis", "tripline"]
        got = {}
        for who in order:
            s = time.perf_counter()
            if who == "tripline":
                ans = call(c, "GET", f"/v1/query/nearby?lon={x}&lat={y}&k=10")
                got[who] = [e["id"] for e in ans["entities"]]
            else:
                got[who] = [r[0] for r in cur.execute(knn, (x, y)).fetchall()]
            timing[(who, "nearby")].append(time.perf_counter() - s)
        agree_near.append(len(set(got["tripline"]) & set(got["postgis"])) / 10)
        if q % 10 == 0:  # within is slower: one round in ten
            # Tripline twice (whole objects, then ids only as PostGIS answers), PostGIS once;
            # the order alternates.
            for who in (order + ["tripline-ids"]) if q % 20 == 0 else (["tripline-ids"] + order):
                s = time.perf_counter()
                parse_s[0] = 0.0
                if who.startswith("tripline"):
                    total, cursor = 0, None
                    fmt = "&output=ids" if who == "tripline-ids" else ""
                    while True:
                        ans = call(c, "POST", "/v1/query/within?limit=10000" + fmt + (f"&cursor={cursor}" if cursor else ""), polygon)
                        total += ans["count"]
                        cursor = ans["cursor"]
                        if not cursor:
                            break
                    took_s = time.perf_counter() - s
                    served["within-ids" if fmt else "within"].append(took_s - parse_s[0])
                else:
                    total = len(cur.execute(cov, (polygon,)).fetchall())
                    took_s = time.perf_counter() - s
                timing[(who, "within")].append(took_s)
                counts[who].append(total)
    stop.set()
    for m in movers:
        m.join(timeout=30)
    took = time.time() - began
    print(f"--- {phase}" + (f": moves meanwhile (1,000 every 100 ms per side): tripline {moved['tripline'] / took:,.0f}/s, postgis {moved['postgis'] / took:,.0f}/s over {took:.0f} s" if phase == "moving" else f" ({took:.0f} s)"))
    for kind in ("nearby", "within"):
        a, b = timing[("tripline", kind)], timing[("postgis", kind)]
        print(f"{kind:7s} tripline p50 {pct(a, .5):8.2f} ms p99 {pct(a, .99):8.2f} ms | postgis p50 {pct(b, .5):8.2f} ms p99 {pct(b, .99):8.2f} ms"
              f" | postgis/tripline p50 {pct(b, .5) / pct(a, .5):.1f}x p99 {pct(b, .99) / pct(a, .99):.1f}x  ({len(a)} queries each)")
    print(f"nearby answers: {statistics.mean(agree_near) * 100:.2f}% of the 10 ids the same")
    a, b = timing[("tripline-ids", "within")], timing[("postgis", "within")]
    print(f"within, output=ids: tripline p50 {pct(a, .5):8.2f} ms p99 {pct(a, .99):8.2f} ms | postgis/tripline p50 {pct(b, .5) / pct(a, .5):.1f}x p99 {pct(b, .99) / pct(a, .99):.1f}x")
    for k, v in served.items():
        print(f"{k:10s} tripline without the client's json.loads: p50 {pct(v, .5):8.2f} ms p99 {pct(v, .99):8.2f} ms")
    print(f"within answers: tripline mean {statistics.mean(counts['tripline']):.0f} (ids {statistics.mean(counts['tripline-ids']):.0f}), postgis mean {statistics.mean(counts['postgis']):.0f} entities")
proc.send_signal(signal.SIGTERM)
proc.wait(30)
pg.execute("DROP TABLE bench_pos")
