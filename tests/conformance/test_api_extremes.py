"""Every operation of the OpenAPI document with numeric and time extremes in every number,
every duration and time string and every query parameter: never a 5xx, and the server still
alive after each case (issue 19's API property test). Then schemathesis over the document."""
import copy
import json
import pathlib
import shutil
import subprocess

import pytest

from server import ENTER_YARD, YARD, Server, make_token

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = json.loads((ROOT / "Sources" / "TriplineServer" / "Resources" / "openapi.json").read_text())

NUMBERS = [1e300, -1e300, 18446744073709551616, -1, 0, 2**53 + 1, 253402300800000, 1.5]
STRINGS = ["106751991167d", "36526d", "99999999999999999999999ms", "9999-12-31T23:59:59.999Z",
           "10000-01-01T00:00:00Z", "0000-01-01T00:00:00Z", "-1", "1e300", "", "\u0000", "x" * 5000]
QUERY = ["1e300", "18446744073709551616", "-1", "106751991167d", "9999-12-31T23:59:59.999Z", "%FF", "", "nan"]

RULE = dict(ENTER_YARD, id="rx", kind="dwell", min="5m", cooldown="1m", expires="2027-01-01T00:00:00Z")
BODIES = {
    ("POST", "/v1/events"): {"entity": "t", "time": 1000, "type": "reading", "metric": "m", "value": 1.5, "id": "e1", "attrs": {"n": 1}},
    ("POST", "/v1/watermark"): {"until": 5000},
    ("POST", "/v1/rules"): RULE,
    ("PUT", "/v1/rules/{id}"): RULE,
    ("POST", "/v1/rules/backtest"): {"rule": RULE, "since": 0, "until": 10000, "last": "1h"},
    ("POST", "/v1/zones"): {"type": "Feature", "properties": {"id": "c", "category": "port", "radius_m": 100},
                            "geometry": {"type": "Point", "coordinates": [1, 1]}},
    ("PUT", "/v1/zones/{id}"): YARD,
    ("POST", "/v1/entities"): {"id": "t", "kind": "truck", "tags": {"cargo": "x"}},
    ("PUT", "/v1/entities/{id}"): {"id": "t", "kind": "truck"},
    ("POST", "/v1/alerts/{id}/feedback"): {"verdict": "useful", "comment": "c"},
    ("POST", "/v1/silences"): {"matchers": {"rule": "r"}, "comment": "c", "starts_at": 0, "ends_at": 1000, "duration": "1h"},
    ("POST", "/v1/webhooks"): {"url": "http://127.0.0.1:9/hook", "min_severity": "low"},
    ("POST", "/v1/webhooks/deliveries/redrive"): {"ids": [1, 2]},
}


def mutations(body):
    """Copies of body with one number or string replaced by an extreme."""
    paths = []

    def walk(v, path):
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, path + [k])
        elif isinstance(v, list):
            for i, x in enumerate(v):
                walk(x, path + [i])
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            paths.append((path, NUMBERS))
        elif isinstance(v, str):
            paths.append((path, STRINGS))
    walk(body, [])
    for path, values in paths:
        for x in values:
            b = copy.deepcopy(body)
            t = b
            for k in path[:-1]:
                t = t[k]
            t[path[-1]] = x
            yield path, x, b


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    data = tmp_path_factory.mktemp("extremes") / "data"
    token = make_token(data)
    s = Server(data).start()
    s.token = token
    s.ok("POST", "/v1/zones", YARD)
    s.ok("POST", "/v1/rules", ENTER_YARD)
    yield s
    s.stop()


def check(srv, method, path, body=None, what=""):
    status, _, out = srv.request(method, path, body, content_type="application/json" if body is not None else None)
    assert status < 500, f"{method} {path} {what}: {status} {out}"
    assert srv.proc.poll() is None, f"the server died on {method} {path} {what}"
    return status


def concrete(path):
    return path.replace("{id}", "in-yard" if "rules" in path else ("yard" if "zones" in path else ("1" if "alerts" in path or "silences" in path else "t"))).replace("{file}", "app.js")


def test_every_number_and_time_in_every_body(srv):
    cases = 0
    for (method, path), body in BODIES.items():
        for where, x, b in mutations(body):
            text = json.dumps(b) if not (isinstance(x, float) and abs(x) >= 1e300) else json.dumps(b).replace("1e+300", "1e300")
            check(srv, method, concrete(path), text, what=f"{where}={x!r}")
            cases += 1
    # Numbers JSON cannot carry from Python's json: written by hand.
    for raw in ['{"until": 1e400}', '{"until": -0}', '{"until": 1E+300}', '{"ids": [1e400]}']:
        check(srv, "POST", "/v1/watermark" if "until" in raw else "/v1/webhooks/deliveries/redrive", raw, what=raw)
        cases += 1
    assert cases > 300


def test_every_query_parameter_of_every_operation(srv):
    cases = 0
    for path, ops in DOC["paths"].items():
        for method, op in ops.items():
            if method.upper() not in ("GET", "DELETE") or path in ("/v1/tokens/{id}", "/v1/alerts/stream", "/v1/alerts/ws"):
                continue  # the streams never end: test_stream_query_parameters reads their status line
            params = [p for p in op.get("parameters", []) if p.get("in") == "query"]
            for p in params:
                for x in QUERY:
                    status = check(srv, method.upper(), f"{concrete(path)}?{p['name']}={x}" if p["name"] != "access_token" else concrete(path),
                                   what=f"{p['name']}={x}")
                    cases += 1
                    if method.upper() == "DELETE" and status < 300:
                        srv.ok("POST", "/v1/rules", ENTER_YARD) if "rules" in path else None
    assert cases > 100


def test_stream_query_parameters(srv):
    import socket
    for path in ("/v1/alerts/stream", "/v1/alerts/ws"):
        for name in ("rule", "entity", "zone", "after"):
            for x in QUERY:
                sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
                sock.sendall(f"GET {path}?{name}={x} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {srv.token}\r\n\r\n".encode())
                head = sock.recv(64)
                sock.close()
                assert head.startswith(b"HTTP/1.1 "), head
                assert int(head[9:12]) < 500, (path, name, x, head)
                assert srv.proc.poll() is None


@pytest.mark.skipif(shutil.which("schemathesis") is None, reason="pip install schemathesis (CI does)")
def test_schemathesis_finds_no_server_error(srv, tmp_path):
    p = subprocess.run(["schemathesis", "run", f"{srv.url}/openapi.json", "--checks", "not_a_server_error,response_schema_conformance",
                        "--max-examples", "25", "--seed", "19", "-H", f"Authorization: Bearer {srv.token}",
                        "--exclude-path", "/v1/tokens/{id}", "--exclude-path", "/v1/alerts/stream", "--exclude-path", "/v1/alerts/ws", "--exclude-path", "/v1/query/stream",
                        "--exclude-path", "/v1/map/stream", "--request-timeout", "20", "--workers", "1"],
                       capture_output=True, text=True, timeout=900)
    assert srv.proc.poll() is None, "the server died under schemathesis"
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
