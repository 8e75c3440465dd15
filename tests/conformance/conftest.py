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


def store_url(data):
    """The PostgreSQL database of a data folder (created on first use); None on SQLite."""
    if not PG:
        return None
    import hashlib
    import urllib.parse
    name = "f_" + hashlib.sha1(str(pathlib.Path(data).resolve()).encode()).hexdigest()[:20]
    u = urllib.parse.urlparse(PG)
    base = ["psql", "-h", u.hostname or "127.0.0.1", "-p", str(u.port or 5432), "-U", u.username or "postgres", "-d", u.path.lstrip("/") or "postgres", "-Atqc"]
    have = subprocess.run(base + [f"SELECT 1 FROM pg_database WHERE datname = '{name}'"], capture_output=True, text=True, check=True).stdout.strip()
    if have != "1":
        subprocess.run(base + [f"CREATE DATABASE {name}"], capture_output=True, text=True, check=True)
    return u._replace(path="/" + name).geturl()


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
