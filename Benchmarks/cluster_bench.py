#!/usr/bin/env python3
"""Cluster throughput on this machine: python3 Benchmarks/cluster_bench.py BIN ROUNDS [WORKERS=1,2,3] [SERVERS=1] [cli|api]

Per round and worker count (interleaved): a fresh nats-server (or SERVERS routed servers with
R3 streams), `tripline cluster create` (6 partitions), the workers, `tripline cluster publish`
of the workload, then `tripline cluster alerts` until every stage is complete. In the same
round `tripline replay` runs the same file as the single-process baseline. Reports events/s
of the gateway (publish, acknowledged), end to end (first event offered to last alert
final), the gateway's flush acknowledgement p50/p99, and ns/event of the cluster against
replay. The workload (AB_WORK/cluster-gen): 500,000 mixed events, 2,000 zones, 20,000
entities, 20 rules of every kind (`tripline generate`).

With `api` the gateway is an API node (`tripline serve --cluster`, SQLite store): the file is
POSTed to /v1/events in batches of 5,000 lines by one client, end to end runs until the node
has stored every alert (read back with GET /v1/alerts), and after the run the node is
restarted to time the gateway's rebuild from the stream."""
import json, os, pathlib, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

BIN = sys.argv[1]
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
COUNTS = [int(x) for x in (sys.argv[3] if len(sys.argv) > 3 else "1,2,3").split(",")]
SERVERS = int(sys.argv[4]) if len(sys.argv) > 4 else 1
MODE = sys.argv[5] if len(sys.argv) > 5 else "cli"
W = pathlib.Path(os.environ.get("AB_WORK", "/tmp/tripline-ab"))
gen = W / "cluster-gen"
NATS = shutil.which("nats-server") or "/usr/sbin/nats-server"

if not (gen / "events.ndjson").exists():
    subprocess.run([BIN, "generate", "--out", str(gen), "--zones", "2000", "--entities", "20000", "--events", "500000",
                    "--reading-share", "0.2", "--contact-share", "0.1", "--custom-share", "0.1", "--mixed-rules", "20",
                    "--shuffle", "2s"], check=True)
EVENTS = sum(1 for _ in open(gen / "events.ndjson"))
UNTIL = max(json.loads(l)["time"] for l in open(gen / "events.ndjson")) + 3_600_000


def free_port():
    # Below the kernel's ephemeral range: a port from bind(0) can be taken by an outgoing
    # connection (the servers' routes) before its server starts.
    import random
    while True:
        p = random.randrange(20000, 32000); s = socket.socket()
        try:
            s.bind(("127.0.0.1", p)); return p
        except OSError:
            pass
        finally:
            s.close()


def start_nats(root, n):
    client = [free_port() for _ in range(n)]; route = [free_port() for _ in range(n)]; procs = []
    for i in range(n):
        a = [NATS, "-js", "-a", "127.0.0.1", "-p", str(client[i]), "-sd", str(root / f"n{i}"), "-n", f"n{i}"]
        if n > 1:
            a += ["--cluster_name", "bench", "--cluster", f"nats://127.0.0.1:{route[i]}",
                  "--routes", ",".join(f"nats://127.0.0.1:{route[j]}" for j in range(n) if j != i)]
        procs.append(subprocess.Popen(a, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for p in client:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", p), timeout=0.2).close(); break
            except OSError:
                time.sleep(0.05)
    return procs, ",".join(f"nats://127.0.0.1:{p}" for p in client)


def cluster_round(workers):
    root = pathlib.Path(tempfile.mkdtemp(prefix="cl-", dir=W))
    procs, urls = start_nats(root, SERVERS)
    ws = []
    try:
        for _ in range(60):
            r = subprocess.run([BIN, "cluster", "create", "--cluster", urls, "--partitions", "6", "--replicas", str(min(3, SERVERS)),
                                "--allowed-lateness", "2s", "--zones", str(gen / "zones.geojson"), "--entities", str(gen / "entities.ndjson"),
                                "--rules", str(gen / "rules-mixed.json")], capture_output=True, text=True)
            if r.returncode == 0: break
            time.sleep(0.5)
        assert r.returncode == 0, r.stderr
        ws = [subprocess.Popen([BIN, "worker", "--cluster", urls, "--id", f"w{i}"], stdout=subprocess.DEVNULL,
                               stderr=open(root / f"w{i}.log", "w") if MODE == "api" else subprocess.DEVNULL)
              for i in range(workers)]
        # Every stage held before the clock starts.
        for _ in range(200):
            st = json.loads(subprocess.run([BIN, "cluster", "status", "--cluster", urls], capture_output=True, text=True, check=True).stdout)
            if all(v is not None for v in st["stages"].values()) and len(st["workers"]) == workers: break
            time.sleep(0.1)
        if MODE == "api":
            return api_round(root, urls, ws)
        t0 = time.perf_counter()
        pub = subprocess.run([BIN, "cluster", "publish", "--cluster", urls, "--until", str(UNTIL), str(gen / "events.ndjson")],
                             capture_output=True, text=True, check=True)
        t1 = time.perf_counter()
        al = subprocess.run([BIN, "cluster", "alerts", "--cluster", urls, "--through", str(UNTIL), "--timeout", "900s"],
                            capture_output=True, text=True, check=True)
        t2 = time.perf_counter()
        last = pub.stderr.strip().splitlines()[-1]
        ack = re.search(r"ack p50 ([\d.]+) ms, p99 ([\d.]+) ms", last)
        return {"publish_s": t1 - t0, "end_to_end_s": t2 - t0, "alerts": len(al.stdout.splitlines()),
                "ack_p50_ms": float(ack.group(1)) if ack else None, "ack_p99_ms": float(ack.group(2)) if ack else None}
    finally:
        for p in ws + procs:
            p.send_signal(signal.SIGKILL); p.wait()
        shutil.rmtree(root, ignore_errors=True)


def api_round(root, urls, ws):
    import http.client
    data = root / "api"
    token = subprocess.run([BIN, "token", "create", "--data", str(data), "--role", "admin"], capture_output=True, text=True, check=True).stdout.strip()

    def start():
        p = subprocess.Popen([BIN, "serve", "--data", str(data), "--port", "0", "--cluster", urls, "--allowed-lateness", "2s", "--max-future", "off"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = p.stdout.readline()
        assert "serving on" in line, line + p.stderr.read()
        return p, int(line.split("http://")[1].split(":")[1].split(" ")[0])

    node, port = start()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    hdr = {"Authorization": "Bearer " + token, "Content-Type": "application/x-ndjson"}

    def call(method, path, body=None, ctype=None):
        h = dict(hdr)
        if ctype: h["Content-Type"] = ctype
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse(); raw = r.read()
        assert r.status == 200, (r.status, raw[:300])
        return json.loads(raw)

    lines = open(gen / "events.ndjson", "rb").read().splitlines(keepends=True)
    bodies = [b"".join(lines[i:i + 5000]) for i in range(0, len(lines), 5000)]
    acks = []
    try:
        t0 = time.perf_counter()
        for b in bodies:
            a = time.perf_counter(); call("POST", "/v1/events", b); acks.append((time.perf_counter() - a) * 1000)
        call("POST", "/v1/watermark", json.dumps({"until": UNTIL}), "application/json")
        t1 = time.perf_counter()
        stored, after = 0, 0
        while True:
            page = call("GET", f"/v1/alerts?limit=1000&after={after}")
            stored += len(page["alerts"])
            if page["next"] is not None:
                after = page["next"]; continue
            if page["alerts"]:
                after = page["alerts"][-1]["id"]
            if stored >= EXPECTED_ALERTS: break
            time.sleep(0.05)
        t2 = time.perf_counter()
        stages = 7  # 6 partitions and the cross-entity stage

        def wait_log(files, text, count, timeout=600):
            end = time.time() + timeout
            while time.time() < end:
                found = [l for f in files if f.exists() for l in f.read_text().splitlines() if text in l]
                if len(found) >= count:
                    return found
                time.sleep(0.1)
            raise AssertionError(f"{text}: not {count} times in {timeout} s")

        # A catalog change after the whole stream (a rule added): every stage rebuilds on it.
        logs = [root / f"w{i}.log" for i in range(len(ws))]
        t3 = time.perf_counter()
        call("POST", "/v1/rules", json.dumps({"id": "bench-any-enter", "kind": "enter", "purpose": "p", "owner": "o", "severity": "low", "match": {}}),
             "application/json")
        lines = wait_log(logs, "rebuilt on catalog version", stages)
        change_s = time.perf_counter() - t3
        longest_rebuild = max(float(re.search(r"in ([\d.]+) s", l).group(1)) for l in lines)
        # Recovery: every worker killed (kill -9), one new worker replays every stage.
        for w in ws:
            w.send_signal(signal.SIGKILL); w.wait()
        t4 = time.perf_counter()
        fresh = root / "recovery.log"
        ws.append(subprocess.Popen([BIN, "worker", "--cluster", urls, "--id", "recovery"], stdout=subprocess.DEVNULL, stderr=open(fresh, "w")))
        wait_log([fresh], "replayed its history", stages)
        recovery_s = time.perf_counter() - t4
        # The gateway's rebuild from the stream: a clean stop gives the lease up, a new start
        # reads all of EV back.
        node.send_signal(signal.SIGTERM); node.wait()
        node, port = start()
        rebuild_s = None
        for line in node.stderr:
            m = re.search(r"rebuilt from (\d+) messages.* in ([\d.]+) s", line)
            if m:
                rebuild_s = float(m.group(2)); break
        return {"publish_s": t1 - t0, "end_to_end_s": t2 - t0, "alerts": stored, "ack_p50_ms": statistics.median(acks),
                "ack_p99_ms": sorted(acks)[max(0, int(len(acks) * 0.99) - 1)], "rebuild_s": rebuild_s,
                "catalog_change_s": change_s, "longest_stage_rebuild_s": longest_rebuild, "recovery_s": recovery_s}
    finally:
        conn.close()
        node.send_signal(signal.SIGKILL); node.wait()


def replay_round():
    out = W / "cluster-replay.ndjson"
    t = time.perf_counter()
    subprocess.run([BIN, "replay", "--zones", str(gen / "zones.geojson"), "--entities", str(gen / "entities.ndjson"),
                    "--rules", str(gen / "rules-mixed.json"), "--allowed-lateness", "2s", "--until", str(UNTIL), "--output", str(out), "--quiet",
                    str(gen / "events.ndjson")], check=True)
    return time.perf_counter() - t, sum(1 for _ in open(out))


results = {n: [] for n in COUNTS}
replays = []
for r in range(ROUNDS):
    rs, alerts = replay_round(); replays.append(rs)
    print(f"round {r + 1}: replay {EVENTS / rs:,.0f} events/s ({alerts} alerts)", flush=True)
    globals()["EXPECTED_ALERTS"] = alerts
    for n in COUNTS:
        c = cluster_round(n); c["replay_s"] = rs; results[n].append(c)
        assert c["alerts"] == alerts, (c["alerts"], alerts)
        print(f"round {r + 1}: {n} worker(s): gateway {EVENTS / c['publish_s']:,.0f} events/s, end to end {EVENTS / c['end_to_end_s']:,.0f} events/s "
              f"({c['end_to_end_s'] / rs:.2f}x replay's time), ack p50 {c['ack_p50_ms']} ms p99 {c['ack_p99_ms']} ms, {c['alerts']} alerts == replay" + (f", gateway rebuild {c['rebuild_s']} s, catalog change (all 7 stages rebuilt) {c['catalog_change_s']:.2f} s (longest stage {c['longest_stage_rebuild_s']} s), one new worker replaying all 7 stages {c['recovery_s']:.2f} s" if MODE == 'api' else ''), flush=True)
print(f"\n{EVENTS} events, {SERVERS} nats-server(s), 6 partitions, medians over {ROUNDS} rounds:")
print(f"  replay (one process): {EVENTS / statistics.median(replays):,.0f} events/s, {statistics.median(replays) / EVENTS * 1e9:,.0f} ns/event")
for n in COUNTS:
    e2e = statistics.median(c["end_to_end_s"] for c in results[n]); pub = statistics.median(c["publish_s"] for c in results[n])
    ratio = statistics.median(c["end_to_end_s"] / c["replay_s"] for c in results[n])
    p50 = statistics.median(c["ack_p50_ms"] for c in results[n] if c["ack_p50_ms"] is not None)
    p99 = statistics.median(c["ack_p99_ms"] for c in results[n] if c["ack_p99_ms"] is not None)
    print(f"  {n} worker(s): end to end {EVENTS / e2e:,.0f} events/s ({e2e / EVENTS * 1e9:,.0f} ns/event, {ratio:.2f}x replay's time), "
          f"gateway {EVENTS / pub:,.0f} events/s, " + ("HTTP request (5,000 events)" if MODE == "api" else "flush") + f" ack p50 {p50:.1f} ms p99 {p99:.1f} ms"
          + (f", gateway rebuild from the stream {statistics.median(c['rebuild_s'] for c in results[n]):.2f} s" if MODE == "api" else ""))
