#!/usr/bin/env python3
"""Interleaved A/B of two tripline release binaries (python3 Benchmarks/ab_binaries.py OLD NEW ROUNDS [b20,b1000,replay,array,ndjson]; AB_WORK names the work folder): bench (20 and 1000 rules), replay of 1M events,
server ingest of 1M events (JSON-array and NDJSON bodies). Prints every round and the ratios."""
import json, os, re, shutil, subprocess, sys, tempfile, time, http.client, statistics, pathlib
A, B, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
parts = sys.argv[4].split(",") if len(sys.argv) > 4 else ["b20", "b1000", "replay", "array", "ndjson"]
W = pathlib.Path(os.environ.get("AB_WORK", "/tmp/tripline-ab")); W.mkdir(parents=True, exist_ok=True)
gen = W / "gen"
if not (gen / "events.ndjson").exists():
    subprocess.run([B, "generate", "--out", str(gen), "--zones", "10000", "--entities", "100000", "--events", "1000000",
                    "--reading-share", "0.2", "--contact-share", "0.1", "--custom-share", "0.1", "--mixed-rules", "20"], check=True)
BENCH = ["bench", "--zones", "10000", "--entities", "100000", "--events", "1000000", "--reading-share", "0.2",
         "--contact-share", "0.1", "--custom-share", "0.1", "--only", "engine", "--repeat", "3"]

def bench(binary, n):
    out = subprocess.run([binary] + BENCH + ["--generated-rules", str(n)], capture_output=True, text=True, check=True).stdout
    m = re.search(r"engine in-process, all rules\s+(\d+) events/s", out)
    a = re.search(r"alerts: (\d+)", out)
    return int(m.group(1)), a.group(1)

def replay(binary):
    out = W / "alerts.ndjson"
    t = time.perf_counter()
    subprocess.run([binary, "replay", "--zones", str(gen / "zones.geojson"), "--entities", str(gen / "entities.ndjson"),
                    "--rules", str(gen / "rules-mixed.json"), "--output", str(out), "--quiet", str(gen / "events.ndjson")], check=True)
    dt = time.perf_counter() - t
    n = sum(1 for _ in open(out))
    return int(1_000_000 / dt), str(n)

def ingest(binary, array):
    d = pathlib.Path(tempfile.mkdtemp(prefix="ab-serve-", dir=W))
    tok = subprocess.run([binary, "token", "create", "--data", str(d), "--role", "admin"], capture_output=True, text=True, check=True).stdout.strip()
    p = subprocess.Popen([binary, "serve", "--data", str(d), "--port", "0", "--sync", "normal"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(p.stdout.readline().split("http://")[1].split(":")[1].split(" ")[0].split("/")[0])
        def call(path, body, ct):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            c.request("POST", path, body=body, headers={"Authorization": "Bearer " + tok, "Content-Type": ct})
            r = c.getresponse(); b = r.read(); c.close()
            assert r.status in (200, 201), (path, r.status, b[:300])
        call("/v1/zones", (gen / "zones.geojson").read_bytes(), "application/geo+json")
        call("/v1/entities", (gen / "entities.ndjson").read_bytes(), "application/x-ndjson")
        call("/v1/rules", (gen / "rules-mixed.json").read_bytes(), "application/json")
        cmd = [B, "load", "--url", f"http://127.0.0.1:{port}", "--token", tok, "--batch", "1000", "--connections", "4", str(gen / "events.ndjson")]
        if array: cmd.insert(2, "--json-array")
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        txt = out.stdout + out.stderr
        m = re.search(r"([\d,]+) events/s", txt)
        return int(m.group(1).replace(",", "")), re.sub(r"\s+", " ", txt.strip())[-160:]
    finally:
        p.terminate(); p.wait(); shutil.rmtree(d, ignore_errors=True)

fns = {"b20": lambda b: bench(b, 20), "b1000": lambda b: bench(b, 1000), "replay": replay,
       "array": lambda b: ingest(b, True), "ndjson": lambda b: ingest(b, False)}
res = {k: {"A": [], "B": []} for k in parts}
for r in range(rounds):
    for k in parts:
        order = [("A", A), ("B", B)] if r % 2 == 0 else [("B", B), ("A", A)]
        for tag, binary in order:
            v, extra = fns[k](binary)
            res[k][tag].append(v)
            print(f"round {r+1} {k} {tag}: {v} events/s  [{extra}]", flush=True)
print("\nsummary (B/A per round, median ratio):")
for k in parts:
    ratios = [b / a for a, b in zip(res[k]["A"], res[k]["B"])]
    print(f"{k}: A {res[k]['A']} B {res[k]['B']} ratios {[round(x,3) for x in ratios]} median {statistics.median(ratios):.3f}"
          f" (medians A {statistics.median(res[k]['A'])} B {statistics.median(res[k]['B'])})")
