"""Starts a real `tripline serve` process on a free port and talks HTTP to it."""
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

from conftest import BIN, with_store


def make_token(data, role="admin", name="test"):
    p = subprocess.run([BIN, *with_store(["token", "create", "--data", str(data), "--role", role, "--name", name])],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


class Server:
    def __init__(self, data, *extra):
        self.data = data
        self.extra = [str(e) for e in extra]
        self.proc = None
        self.port = None
        self.token = None

    def start(self):
        self.proc = subprocess.Popen([BIN, *with_store(["serve", "--data", str(self.data), "--port", "0", *self.extra])],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if "serving on" not in line:
            err = self.proc.stderr.read()
            raise AssertionError(f"server did not start: {line!r} {err}")
        self.port = int(line.split("http://")[1].split(":")[1].split(" ")[0])
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill9(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def request(self, method, path, body=None, token="default", content_type=None, headers=None, timeout=60):
        """Returns (status, headers, parsed JSON or text)."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            content_type = content_type or "application/json"
        elif isinstance(body, str):
            body = body.encode()
        req = urllib.request.Request(self.url + path, data=body, method=method)
        tok = self.token if token == "default" else token
        if tok:
            req.add_header("Authorization", "Bearer " + tok)
        if content_type:
            req.add_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, hdrs, raw = r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            status, hdrs, raw = e.code, dict(e.headers), e.read()
        text = raw.decode()
        try:
            return status, hdrs, json.loads(text)
        except ValueError:
            return status, hdrs, text

    def ok(self, method, path, body=None, **kw):
        status, _, out = self.request(method, path, body, **kw)
        assert 200 <= status < 300, f"{method} {path}: {status} {out}"
        return out

    def all_alerts(self):
        out, after = [], 0
        while True:
            page = self.ok("GET", f"/v1/alerts?limit=1000&after={after}")
            out += page["alerts"]
            if page["next"] is None:
                return out
            after = page["next"]


SERVER_FIELDS = ("id", "rule_version", "created_at", "suppressed_by")


def canonical(alert):
    """An API alert without the server's own fields: what `tripline replay` prints."""
    return {k: v for k, v in alert.items() if k not in SERVER_FIELDS}


def batches(path, size):
    with open(path) as f:
        lines = [l for l in f if l.strip()]
    return [lines[i:i + size] for i in range(0, len(lines), size)]


def wait_until(pred, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.1)
    return False


# A 1x1 degree depot at the origin and a rule on entering it, shared by the server tests.
YARD = {"type": "Feature", "properties": {"id": "yard", "category": "depot"},
        "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}}
ENTER_YARD = {"id": "in-yard", "kind": "enter", "purpose": "p", "owner": "o", "severity": "low",
              "match": {}, "zones": {"category": "depot"}}


def start_demo(data, *extra):
    """Starts `tripline demo` on a free port; returns (process, Server with its admin token)."""
    proc = subprocess.Popen([BIN, "demo", "--port", "0", "--data", str(data), *map(str, extra)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    assert "serving on http://" in first, first + proc.stderr.read()
    token = None
    for _ in range(6):
        line = proc.stdout.readline()
        if "admin token:" in line:
            token = line.split("admin token:")[1].strip()
            break
    assert token and token.startswith("tl_")
    srv = Server(data)
    srv.port, srv.token = int(first.split("http://")[1].split(":")[1].strip()), token
    return proc, srv
