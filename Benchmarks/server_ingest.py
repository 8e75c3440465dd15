"""Server ingest of 1 M events on one store: python3 Benchmarks/server_ingest.py BIN sqlite|postgres://... (an empty database); uses the workload ab_binaries.py generates."""
import os
import re, shutil, subprocess, sys, tempfile, http.client, pathlib
BIN = sys.argv[1]; store = sys.argv[2]  # "sqlite" or a postgres URL
gen = pathlib.Path(os.environ.get("AB_WORK", "/tmp/tripline-ab")) / "gen"   # written by ab_binaries.py
d = pathlib.Path(tempfile.mkdtemp(prefix="pgi-", dir=str(gen.parent)))
extra = [] if store == "sqlite" else ["--store", store]
tok = subprocess.run([BIN, "token", "create", "--data", str(d), "--role", "admin", *extra], capture_output=True, text=True, check=True).stdout.strip()
# LOAD_CONNECTIONS: the client's connections (4 unless set).
# SERVE_ARGS: more serve options, for an A/B of one binary (e.g. SERVE_ARGS="--track-points 0").
p = subprocess.Popen([BIN, "serve", "--data", str(d), "--port", "0", *extra, *os.environ.get("SERVE_ARGS", "").split()],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
try:
    line = p.stdout.readline()
    port = int(line.split("http://")[1].split(":")[1].split(" ")[0])
    def call(path, body, ct):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        c.request("POST", path, body=body, headers={"Authorization": "Bearer " + tok, "Content-Type": ct})
        r = c.getresponse(); b = r.read(); c.close(); assert r.status in (200, 201), (path, r.status, b[:300])
    call("/v1/zones", (gen / "zones.geojson").read_bytes(), "application/geo+json")
    call("/v1/entities", (gen / "entities.ndjson").read_bytes(), "application/x-ndjson")
    call("/v1/rules", (gen / "rules-mixed.json").read_bytes(), "application/json")
    out = subprocess.run([BIN, "load", "--url", f"http://127.0.0.1:{port}", "--token", tok, "--batch", "1000", "--connections", os.environ.get("LOAD_CONNECTIONS", "4"), str(gen / "events.ndjson")], capture_output=True, text=True, check=True)
    # What the server made of it, to compare two binaries: alerts emitted, and where batches were decoded.
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("GET", "/metrics", headers={"Authorization": "Bearer " + tok})
    m = c.getresponse().read().decode(); c.close()
    alerts = re.search(r"^tripline_alerts_emitted_total(?:\{[^}]*\})? (\S+)", m, re.M)
    decoded = re.findall(r'^tripline_ingest_batches_decoded_total\{on="(\w+)"\} (\S+)', m, re.M)
    commits = dict(re.findall(r"^tripline_commit_seconds_(sum|count)(?:\{[^}]*\})? (\S+)", m, re.M))
    facts = f"alerts {alerts.group(1) if alerts else '?'}" + "".join(f", decoded on {k} {v}" for k, v in decoded)
    if commits.get("count"):
        facts += f", {int(float(commits['count']))} commits of {float(commits['sum']) / float(commits['count']) * 1000:.1f} ms on average"
    print(store.split("@")[-1], (out.stdout + out.stderr).strip().splitlines()[-1], "|", facts)
finally:
    p.terminate(); p.wait(); shutil.rmtree(d, ignore_errors=True)
