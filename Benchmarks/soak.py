#!/usr/bin/env python3
"""Soak: a steady event load on `tripline serve` (release build) with given ids, 20 rules of
every kind, a flaky webhook receiver and SSE clients that connect and drop. The load comes
from `tripline load --rate` (synthesized in Swift, moving entities on continuous tracks), so
the loader does not need the CPU the server runs on. Events are kept for --retention (the
log, and the timeline index with it, stop growing once it is reached). Every 10 s it records
the server's RSS (total and anonymous), open descriptors, timeline entries, events
acknowledged and alerts emitted; at the end it checks that no alert was lost (every emitted
alert is stored and has exactly one delivery to the receiver) or stuck (every delivery ends
delivered once the receiver is healthy), and plots RSS and descriptors.

    python3 Benchmarks/soak.py --minutes 30 --rate 50000 --out Benchmarks/soak
Everything runs on loopback and stops by itself."""
import argparse
import csv
import http.client
import http.server
import json
import os
import pathlib
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--rate", type=int, default=50_000, help="events per second")
    ap.add_argument("--bin", default=str(ROOT / ".build-release" / "release" / "tripline"))
    ap.add_argument("--out", default=str(ROOT / "Benchmarks" / "soak"))
    ap.add_argument("--dedup-window", default="30s")
    ap.add_argument("--retention", default="5m", help="--retention-events of the server")
    ap.add_argument("--entities", type=int, default=20000)
    ap.add_argument("--drain-minutes", type=int, default=10, help="how long the healthy receiver gets to drain the outbox")
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="tripline-soak-"))
    gen = work / "gen"
    subprocess.run([args.bin, "generate", "--out", str(gen), "--zones", "500", "--entities", str(args.entities), "--events", "10",
                    "--mixed-rules", "20", "--seed", "5"], check=True, capture_output=True)
    data = work / "data"
    token = subprocess.run([args.bin, "token", "create", "--data", str(data), "--role", "admin"], check=True,
                           capture_output=True, text=True).stdout.strip()

    # The flaky receiver: 30% 500s, 10% slow, until told to be healthy.
    state = {"healthy": False, "received": 0, "ids": {}}
    hook_lock = threading.Lock()

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            r = random.random()
            if not state["healthy"] and r < 0.3:
                self.send_response(500); self.end_headers(); return
            if not state["healthy"] and r < 0.4:
                time.sleep(0.5)
            with hook_lock:
                state["received"] += 1
                # webhook-id is "alert-<id>": the same alert delivered twice counts twice.
                msg = self.headers.get("webhook-id", "")
                state["ids"][msg] = state["ids"].get(msg, 0) + 1
            self.send_response(200); self.end_headers()

        def log_message(self, *a):
            pass

    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()

    proc = subprocess.Popen([args.bin, "serve", "--data", str(data), "--port", "0", "--sync", "normal",
                             "--dedup-window", args.dedup_window, "--webhook-backoff", "1s", "--webhook-max-attempts", "50",
                             "--retention-events", args.retention, "--retention-interval", "10s"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline().split("http://")[1].split(":")[1].split(" ")[0])
    hdr = {"Authorization": "Bearer " + token}

    def call(method, path, body=None, ctype="application/json"):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request(method, path, body=body, headers={**hdr, "Content-Type": ctype})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data

    call("POST", "/v1/zones", (gen / "zones.geojson").read_text(), "application/geo+json")
    call("POST", "/v1/entities", (gen / "entities.ndjson").read_text(), "application/x-ndjson")
    s, b = call("POST", "/v1/rules", (gen / "rules-mixed.json").read_text())
    assert s == 200, b
    s, b = call("POST", "/v1/webhooks", json.dumps({"url": f"http://127.0.0.1:{hook.server_port}/hook", "secret": "s"}))
    assert s == 201, b

    stop = threading.Event()
    entities = [json.loads(l)["id"] for l in (gen / "entities.ndjson").read_text().splitlines() if l.strip()]
    xs, ys = [], []

    def walk(c):
        if isinstance(c[0], (int, float)):
            xs.append(c[0]); ys.append(c[1])
        else:
            for x in c:
                walk(x)
    for f in json.loads((gen / "zones.geojson").read_text())["features"]:
        walk(f["geometry"]["coordinates"])
    region = f"{min(xs)},{min(ys)},{max(xs)},{max(ys)}"
    progress = {"acked": 0, "refused": 0}
    loader = subprocess.Popen([args.bin, "load", "--url", f"http://127.0.0.1:{port}", "--token", token, "--rate", str(args.rate),
                               "--duration", f"{int(args.minutes * 60)}s", "--entities", str(gen / "entities.ndjson"),
                               f"--region={region}", "--connections", "4", "--batch", "1000"],
                              stdout=subprocess.PIPE, text=True)

    def follow():
        for line in loader.stdout:
            if line.startswith("progress"):
                _, _, a, r = line.split()
                progress["acked"], progress["refused"] = int(a), int(r)
            else:
                print(line.strip(), flush=True)
                progress["summary"] = line.strip()
    threading.Thread(target=follow, daemon=True).start()

    def sse_client(worker):
        rng = random.Random(1000 + worker)
        while not stop.is_set():
            try:
                sk = socket.create_connection(("127.0.0.1", port), timeout=5)
                q = rng.choice(["", "?rule=nothing", "?entity=" + rng.choice(entities)])
                sk.sendall(f"GET /v1/alerts/stream{q} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
                end = time.time() + rng.uniform(1, 10)
                while time.time() < end and not stop.is_set():
                    try:
                        sk.recv(65536)
                    except socket.timeout:
                        pass
                # Half the clients vanish without a FIN reaching the server in order: RST.
                if rng.random() < 0.5:
                    sk.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sk.close()
            except OSError:
                time.sleep(0.5)

    threads = [threading.Thread(target=sse_client, args=(w,), daemon=True) for w in range(8)]
    for t in threads:
        t.start()

    rows = []
    t0 = time.time()
    end = t0 + args.minutes * 60
    with open(out / "soak.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seconds", "rss_mib", "rss_anon_mib", "rss_file_mib", "fds", "events_acked", "alerts", "batches_refused", "timeline_entries"])
        while time.time() < end:
            time.sleep(10)
            status = (pathlib.Path(f"/proc/{proc.pid}/status")).read_text()
            kib = {l.split(":")[0]: int(l.split()[1]) for l in status.splitlines() if l.startswith(("VmRSS:", "RssAnon:", "RssFile:"))}
            rss, anon, filed = kib["VmRSS"] / 1024, kib["RssAnon"] / 1024, kib["RssFile"] / 1024
            fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
            s, b = call("GET", "/v1/alerts?limit=1&state=firing")
            st = json.loads(call("GET", "/v1/status")[1])
            metrics = call("GET", "/metrics")[1].decode()
            alerts = sum(float(l.split()[-1]) for l in metrics.splitlines() if l.startswith("tripline_alerts_emitted_total"))
            row = [round(time.time() - t0), round(rss, 1), round(anon, 1), round(filed, 1), fds, progress["acked"], int(alerts),
                   progress["refused"], st["timeline_entries"]]
            rows.append(row)
            w.writerow(row)
            f.flush()
            print(*row, flush=True)
    loader.wait(120)
    stop.set()
    for t in threads:
        t.join(30)
    # Drain: the receiver turns healthy; every delivery must finish.
    state["healthy"] = True
    drained = False
    for _ in range(args.drain_minutes * 12):
        s, b = call("GET", "/v1/webhooks/deliveries?state=pending&limit=1")
        if json.loads(b)["deliveries"] == []:
            drained = True
            break
        time.sleep(5)
    s, b = call("GET", "/v1/webhooks/deliveries?state=dead&limit=1000")
    dead = len(json.loads(b)["deliveries"])
    metrics = call("GET", "/metrics")[1].decode()
    stored = sum(float(l.split()[-1]) for l in metrics.splitlines() if l.startswith("tripline_alerts_emitted_total"))
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    import sqlite3
    db = sqlite3.connect(str(data / "tripline.sqlite"))
    alert_ids = {f"alert-{r[0]}" for r in db.execute("SELECT id FROM alerts")}
    deliveries = dict(db.execute("SELECT state, count(*) FROM deliveries GROUP BY state").fetchall())
    per_alert = db.execute("SELECT count(*) FROM (SELECT alert_id FROM deliveries GROUP BY alert_id HAVING count(*) != 1)").fetchone()[0]
    db.close()
    got = state["ids"]
    summary = {"minutes": args.minutes, "rate_target": args.rate, "events_acked": progress["acked"],
               "batches_refused": progress["refused"], "loader": progress.get("summary"),
               "alerts_emitted": int(stored), "alerts_stored": len(alert_ids),
               "deliveries_by_state": deliveries, "alerts_without_exactly_one_delivery": per_alert,
               "deliveries_drained": drained, "dead_deliveries": dead,
               "alerts_never_received": len(alert_ids - got.keys()), "received_unknown": len(got.keys() - alert_ids),
               "received_more_than_once": sum(1 for v in got.values() if v > 1),
               "receiver_ok_posts": state["received"],
               "timeline_entries_first_last": [rows[0][8], rows[-1][8]] if rows else None,
               "rss_first_last_mib": [rows[0][1], rows[-1][1]] if rows else None,
               "rss_anon_first_last_mib": [rows[0][2], rows[-1][2]] if rows else None,
               "fds_first_last": [rows[0][4], rows[-1][4]] if rows else None}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
        xs = [r[0] / 60 for r in rows]
        ax[0].plot(xs, [r[1] for r in rows], label="RSS"); ax[0].plot(xs, [r[2] for r in rows], label="anonymous")
        ax[0].set_ylabel("MiB"); ax[0].set_ylim(bottom=0); ax[0].legend()
        ax[1].plot(xs, [r[4] for r in rows]); ax[1].set_ylabel("open descriptors"); ax[1].set_ylim(bottom=0)
        ax[1].set_xlabel("minutes")
        fig.suptitle(f"tripline serve soak: {args.rate} events/s target, given ids, 20 rules, flaky webhook, SSE churn")
        fig.savefig(out / "soak.png", dpi=90)
    except ImportError:
        print("matplotlib missing: no plot", file=sys.stderr)


if __name__ == "__main__":
    main()
