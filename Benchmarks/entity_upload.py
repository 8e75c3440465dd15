"""Time POST /v1/entities (the 100,000 entities ab_binaries.py generates) on a fresh SQLite data folder: python3 Benchmarks/entity_upload.py BIN (AB_WORK as in ab_binaries.py)."""
import os, subprocess, sys, tempfile, time, http.client, pathlib, shutil
BIN = sys.argv[1]; work = pathlib.Path(os.environ.get("AB_WORK", "/tmp/tripline-ab")); gen = work / "gen"
d = tempfile.mkdtemp(prefix="ent-", dir=str(work))
tok = subprocess.run([BIN, "token", "create", "--data", d, "--role", "admin"], capture_output=True, text=True, check=True).stdout.strip()
p = subprocess.Popen([BIN, "serve", "--data", d, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
try:
    port = int(p.stdout.readline().split("http://")[1].split(":")[1].split(" ")[0])
    body = (gen / "entities.ndjson").read_bytes()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    t = time.perf_counter()
    c.request("POST", "/v1/entities", body=body, headers={"Authorization": "Bearer " + tok, "Content-Type": "application/x-ndjson"})
    r = c.getresponse(); r.read(); dt = time.perf_counter() - t
    assert r.status in (200, 201), r.status
    print(f"{BIN}: {dt*1000:.0f} ms")
finally:
    p.terminate(); p.wait(); shutil.rmtree(d, ignore_errors=True)
