#!/usr/bin/env python3
"""What each `output` costs over HTTP, on a quiet server: 1,000,000 latest positions (the
export of `tripline bench-query --export DIR`), the export's 1,000-vertex polygon stored as a
zone and posted as a body, and `nearby k=10`. Each case is asked ROUNDS times, cases
interleaved; prints p50, min and max per case. Ingest is not running (see
Benchmarks/peers/postgis_query.py and Benchmarks/query_latency.py for that).

  tripline bench-query --queries 10 --export /tmp/bq
  python3 Benchmarks/query_outputs.py BIN /tmp/bq [--rounds 30]
"""
import argparse
import csv
import http.client
import json
import os
import subprocess
import tempfile
import time

ap = argparse.ArgumentParser()
ap.add_argument("bin")
ap.add_argument("export")
ap.add_argument("--rounds", type=int, default=30)
args = ap.parse_args()
bin_ = args.bin
ids, xs, ys = [], [], []
with open(os.path.join(args.export, "positions.csv")) as f:
    r = csv.reader(f); next(r)
    for a, b, c in r:
        ids.append(a); xs.append(float(b)); ys.append(float(c))
polygon = open(os.path.join(args.export, "polygon.geojson")).read().strip()
tmp = tempfile.mkdtemp()
tok = subprocess.run([bin_, "token", "create", "--data", tmp, "--role", "admin", "--name", "b"], capture_output=True, text=True, check=True).stdout.strip()
proc = subprocess.Popen([bin_, "serve", "--data", tmp, "--port", "0", "--max-future", "off"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
port = int(proc.stdout.readline().split("http://")[1].split(":")[1].split(" ")[0])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
def call(m, p, body=None, ct="application/json"):
    h = {"Authorization": "Bearer " + tok}
    if body is not None: h["Content-Type"] = ct
    c.request(m, p, body=body, headers=h); r = c.getresponse(); d = r.read()
    assert r.status in (200, 201), (p, r.status, d[:300]); return d
for k in range(0, len(ids), 10000):
    call("POST", "/v1/events", "\n".join(f'{{"entity":"{ids[i]}","time":"2026-03-01T00:00:00Z","type":"position","lon":{xs[i]},"lat":{ys[i]}}}' for i in range(k, min(len(ids), k + 10000))), "application/x-ndjson")
g = json.loads(polygon)
call("POST", "/v1/zones", json.dumps({"type": "Feature", "properties": {"id": "star", "category": "x"}, "geometry": g}), "application/geo+json")
cases = [("POST ids", "POST", "/v1/query/within?limit=10000&output=ids", polygon),
         ("POST count", "POST", "/v1/query/within?output=count", polygon),
         ("GET zone ids", "GET", "/v1/query/within?zone=star&limit=10000&output=ids", None),
         ("GET zone count", "GET", "/v1/query/within?zone=star&output=count", None),
         ("GET zone objects", "GET", "/v1/query/within?zone=star&limit=10000", None),
         ("GET nearby", "GET", "/v1/query/nearby?lon=10&lat=50&k=10", None),
         ("GET nearby count", "GET", "/v1/query/nearby?lon=10&lat=50&k=10&output=count", None)]
t = {n: [] for n, *_ in cases}
for r in range(args.rounds):
    for n, m, p, b in cases:
        s = time.perf_counter(); call(m, p, b); t[n].append((time.perf_counter() - s) * 1000)
for n in t:
    v = sorted(t[n]); print(f"{n:18s} p50 {v[len(v)//2]:7.2f} ms  min {v[0]:7.2f} ms  max {v[-1]:7.2f} ms")
proc.terminate(); proc.wait()
