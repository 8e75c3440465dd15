import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("TRIPLINE_BIN", str(ROOT / ".build" / "debug" / "tripline"))


# With TRIPLINE_TEST_POSTGRES (a server URL, as `bash scripts/pg start` prints it) every
# server, token and audit command of the suite runs on PostgreSQL: each data folder gets its
# own database, created on first use, so a restart of the same folder finds its data again.
PG = os.environ.get("TRIPLINE_TEST_POSTGRES", "")


def _psql_base(db):
    import urllib.parse
    u = urllib.parse.urlparse(PG)
    return ["psql", "-h", u.hostname or "127.0.0.1", "-p", str(u.port or 5432), "-U", u.username or "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-Atqc"]


def psql(sql, db=None):
    """Runs SQL on the test PostgreSQL (its own database, or `db`); returns stdout."""
    import urllib.parse
    db = db or urllib.parse.urlparse(PG).path.lstrip("/") or "postgres"
    return subprocess.run(_psql_base(db) + [sql], capture_output=True, text=True, check=True).stdout


def db_name(data):
    """The PostgreSQL database of a data folder."""
    import hashlib
    return "f_" + hashlib.sha1(str(pathlib.Path(data).resolve()).encode()).hexdigest()[:20]


def store_url(data, tablespace=None):
    """The PostgreSQL database of a data folder (created on first use, its tables in
    `tablespace` when given); None on SQLite."""
    if not PG:
        return None
    import urllib.parse
    name = db_name(data)
    if psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'").strip() != "1":
        psql(f"CREATE DATABASE {name}")
        if tablespace:
            psql(f"ALTER DATABASE {name} SET default_tablespace = {tablespace}")
    return urllib.parse.urlparse(PG)._replace(path="/" + name).geturl()


def copy_store(src, dst):
    """Copies a stopped server's data folder, and on PostgreSQL its database, to `dst`."""
    import shutil
    shutil.copytree(src, dst)
    if PG:
        psql(f"CREATE DATABASE {db_name(dst)} TEMPLATE {db_name(src)}")


def sql_literal(v):
    if v is None:
        return "NULL"
    if isinstance(v, (int, float)):
        return str(v)
    return "'" + str(v).replace("'", "''") + "'"


def store_exec(data, statements):
    """Runs SQL statements (with ? placeholders and a tuple of values each) on the store of
    a stopped server: its SQLite file, or its PostgreSQL database."""
    if PG:
        for sql, args in statements:
            for a in args:
                sql = sql.replace("?", sql_literal(a), 1)
            psql(sql, db=db_name(data))
    else:
        import sqlite3
        db = sqlite3.connect(pathlib.Path(data) / "tripline.sqlite")
        for sql, args in statements:
            db.execute(sql, args)
        db.commit()
        db.close()


def store_rows(data, sql):
    """Rows of a query on the store (values as text on PostgreSQL; bytea as bytes)."""
    if PG:
        out = psql(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", db=db_name(data))
        import csv
        import io
        return [tuple(r) for r in csv.reader(io.StringIO(out))]
    import sqlite3
    db = sqlite3.connect(pathlib.Path(data) / "tripline.sqlite")
    rows = db.execute(sql).fetchall()
    db.close()
    return rows


def log_lines(data):
    """The stored event log's lines, in order."""
    lines = []
    if PG:
        for (hexed,) in store_rows(data, "SELECT encode(lines, 'hex') FROM log ORDER BY first_seq"):
            lines += [l for l in bytes.fromhex(hexed).decode().split("\n") if l]
    else:
        for (blob,) in store_rows(data, "SELECT lines FROM log ORDER BY first_seq"):
            lines += [l for l in bytes(blob).decode().split("\n") if l]
    return lines


def store_files(data):
    """The files that hold a stopped server's data: the data folder's, and on PostgreSQL the
    database's table and index files (after a checkpoint, so files dropped by VACUUM FULL
    are gone). PostgreSQL's write-ahead log is not among them: docs/accountability.md says
    how long it keeps erased text."""
    files = [f for f in sorted(pathlib.Path(data).iterdir()) if f.is_file()]
    if PG:
        psql("CHECKPOINT")
        oid = psql(f"SELECT oid FROM pg_database WHERE datname = '{db_name(data)}'").strip()
        base = pathlib.Path(os.environ.get("TRIPLINE_PG_DIR", "/tmp/tripline-pg")) / "base" / oid
        assert base.is_dir(), f"the test PostgreSQL's files are not at {base}: set TRIPLINE_PG_DIR"
        files += [f for f in sorted(base.iterdir()) if f.is_file()]
    return files


def with_store(args):
    """`args` of a tripline command with --store added for its --data folder on PostgreSQL."""
    args = [str(a) for a in args]
    if PG and args and args[0] in ("serve", "token", "audit") and "--data" in args and "--store" not in args:
        args += ["--store", store_url(args[args.index("--data") + 1])]
    return args


def run(*args, stdin=None):
    """Runs the tripline binary; returns (exit code, stdout, stderr)."""
    p = subprocess.run([BIN, *with_store(args)], input=stdin, capture_output=True, text=True, timeout=600)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture(scope="session")
def tripline():
    assert pathlib.Path(BIN).exists(), f"build first: {BIN} is missing"
    return run


def replayed_workload(d, zones, entities, events, rules, seed, jitter=False):
    """A generated workload in folder `d` where every event has an id (a re-sent batch is
    recognised as duplicates), and the alerts `tripline replay` gives for it (until an hour
    after its last event). With `jitter`, some zone rules have enter_after / exit_margin_m."""
    import json
    code, _, err = run("generate", "--out", d, "--zones", zones, "--entities", entities, "--events", events,
                       "--reading-share", 0.2, "--contact-share", 0.1, "--custom-share", 0.1, "--id-share", 1.0,
                       "--mixed-rules", rules, "--seed", seed, *(["--jitter"] if jitter else []))
    assert code == 0, err
    times = [json.loads(l)["time"] for l in (pathlib.Path(d) / "events.ndjson").read_text().splitlines()]
    until = max(times) + 3_600_000
    code, out, err = run("replay", "--zones", pathlib.Path(d) / "zones.geojson", "--entities", pathlib.Path(d) / "entities.ndjson",
                         "--rules", pathlib.Path(d) / "rules-mixed.json", "--until", until, pathlib.Path(d) / "events.ndjson")
    assert code == 0, err
    return {"dir": pathlib.Path(d), "until": until, "alerts": [json.loads(l) for l in out.splitlines()], "events": len(times)}
