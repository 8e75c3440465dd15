#!/usr/bin/env python3
"""HTTP latency of spatial queries while ingest continues: `tripline serve` (SQLite) with N
generated entities moved by `tripline load --rate R`, and a client asking `nearby k=10` (and
`within` a box) over one keep-alive connection, one query at a time, for S seconds. Reports
p50/p99/max per query kind and the events/s the server applied meanwhile. Binaries given
together are run interleaved, round by round (A, B, A, B, ...), on the same generated data.

  python3 Benchmarks/query_latency.py BIN [BIN2 ...] [--entities 100000] [--rate 60000] [--seconds 20] [--rounds 3]
"""
import argparse
import http.client
import json
import pathlib
import random
import statistics
import subprocess
import tempfile
import time


def one(binary, gen, a):
    data = tempfile.mkdtemp(prefix="tql-")
    token = subprocess.run([binary, "token", "create", "--data", data, "--role", "admin"], check=True, capture_output=True, text=True).stdout.strip()
    proc = subprocess.Popen([binary, "serve", "--port", "0", "--data", data, "--max-future", "off"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    port = int(proc.stdout.readline().split("http://")[1].split(":")[1].split(" ")[0])
    url = f"http://127.0.0.1:{port}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(method, path, body=None, ct=None):
        h = {"Authorization": "Bearer " + token}
        if ct:
            h["Content-Type"] = ct
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        out = r.read()
        assert r.status == 200, (path, r.status, out[:200])
        return out

    call("POST", "/v1/entities", (gen / "entities.ndjson").read_bytes(), "application/x-ndjson")
    loader = subprocess.Popen([binary, "load", "--url", url, "--token", token, "--rate", str(a.rate), "--duration", f"{a.seconds + 15}s",
                               "--entities", str(gen / "entities.ndjson"), "--region=-10,40,10,60", "--batch", "1000", "--connections", "2"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(5)  # the fleet placed
    status = lambda: json.loads(call("GET", "/v1/status"))["events_applied"]
    rng = random.Random(3)
    lat = {"nearby": [], "within": []}
    a0, t0 = status(), time.time()
    while time.time() - t0 < a.seconds:
        x, y = rng.uniform(-10, 10), rng.uniform(40, 60)
        kind = "nearby" if rng.random() < 0.7 else "within"
        path = f"/v1/query/nearby?lon={x:.5f}&lat={y:.5f}&k=10" if kind == "nearby" else \
            f"/v1/query/within?bbox={x:.4f},{y:.4f},{x + 0.2:.4f},{y + 0.2:.4f}&limit=1000"
        s = time.perf_counter()
        call("GET", path)
        lat[kind].append((time.perf_counter() - s) * 1000)
    rate = (status() - a0) / (time.time() - t0)
    loader.kill()
    proc.terminate()
    proc.wait(30)
    q = lambda v, p: sorted(v)[min(len(v) - 1, int(len(v) * p))]
    return {k: {"n": len(v), "p50_ms": round(statistics.median(v), 2), "p99_ms": round(q(v, 0.99), 2), "max_ms": round(max(v), 2)}
            for k, v in lat.items()} | {"events_applied_per_s": round(rate)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bins", nargs="+")
    ap.add_argument("--entities", type=int, default=100000)
    ap.add_argument("--rate", type=int, default=60000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    gen = pathlib.Path(tempfile.mkdtemp(prefix="tql-gen-"))
    subprocess.run([a.bins[0], "generate", "--out", str(gen), "--zones", "10", "--entities", str(a.entities), "--events", "1"], check=True, capture_output=True)
    for r in range(a.rounds):
        for b in a.bins:
            print(r, b, json.dumps(one(b, gen, a)), flush=True)


if __name__ == "__main__":
    main()
