"""Server ingest, interleaved: OLD binary on SQLite, NEW binary on SQLite, NEW binary on
PostgreSQL, ROUNDS times, the order rotated each round, on the 1 M-event workload that
ab_binaries.py generates (10,000 zones, 100,000 entities, 20 rules of every kind).
Each run: a new data folder (and a new database), `tripline load --batch 1000 --connections 4`.

    python3 Benchmarks/store_ingest_ab.py OLD NEW ROUNDS postgres://user@127.0.0.1:54329/postgres

The PostgreSQL URL names a server and a database to connect to for CREATE/DROP DATABASE
(scripts/pg url prints one). SQLite runs with the default --sync full; PostgreSQL with its
defaults (fsync and synchronous_commit on): both durable. AB_WORK as in ab_binaries.py."""
import os
import re
import statistics
import subprocess
import sys
import urllib.parse

OLD, NEW, ROUNDS, PG = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
here = os.path.dirname(os.path.abspath(__file__))
u = urllib.parse.urlparse(PG)


def psql(sql):
    subprocess.run(["psql", "-h", u.hostname, "-p", str(u.port or 5432), "-U", u.username, "-d", u.path.lstrip("/") or "postgres",
                    "-Atqc", sql], check=True, capture_output=True)


def one(binary, store):
    if store != "sqlite":
        psql("DROP DATABASE IF EXISTS tripline_ingest_ab")
        psql("CREATE DATABASE tripline_ingest_ab")
        store = u._replace(path="/tripline_ingest_ab").geturl()
    out = subprocess.run([sys.executable, os.path.join(here, "server_ingest.py"), binary, store], capture_output=True, text=True, check=True).stdout
    rate = int(re.search(r"([\d,]+) events/s", out).group(1).replace(",", ""))
    p99 = float(re.search(r"p99 ([\d.]+) ms", out).group(1))
    return rate, p99, out.strip()


runs = [("old-sqlite", OLD, "sqlite"), ("new-sqlite", NEW, "sqlite"), ("new-postgres", NEW, "postgres")]
res = {k: [] for k, _, _ in runs}
for r in range(ROUNDS):
    order = runs[r % 3:] + runs[:r % 3]
    for name, b, store in order:
        rate, p99, line = one(b, store)
        res[name].append((rate, p99))
        print(f"round {r + 1} {name}: {rate} events/s p99 {p99} ms  [{line[-200:]}]", flush=True)
print("\nsummary:")
for name in res:
    rates = [x[0] for x in res[name]]
    p99s = [x[1] for x in res[name]]
    print(f"{name}: events/s {rates} median {statistics.median(rates):.0f}; p99 ms {p99s} median {statistics.median(p99s)}")
ratios = [n[0] / o[0] for n, o in zip(res["new-sqlite"], res["old-sqlite"])]
print(f"new/old SQLite per round: {[round(x, 3) for x in ratios]} median {statistics.median(ratios):.3f}")
