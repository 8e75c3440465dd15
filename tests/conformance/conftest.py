import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("TRIPLINE_BIN", str(ROOT / ".build" / "debug" / "tripline"))


def run(*args, stdin=None):
    """Runs the tripline binary; returns (exit code, stdout, stderr)."""
    p = subprocess.run([BIN, *map(str, args)], input=stdin, capture_output=True, text=True, timeout=600)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture(scope="session")
def tripline():
    assert pathlib.Path(BIN).exists(), f"build first: {BIN} is missing"
    return run
