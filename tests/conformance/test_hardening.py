"""Hardening (issue 19): no request can kill or poison the server. Each test names the defect
it guards; each was written against the server before the fix."""
import base64
import json
import os
import pathlib
import signal
import socket
import subprocess
import time

import pytest

from conftest import BIN, PG, db_name, psql, run, store_url, with_store
from server import ENTER_YARD, YARD, Server, make_token, wait_until

HUGE = ["1e300", "18446744073709551616", "-1", "1.5", "9007199254740993", "253402300800000"]


def start(tmp_path, *extra, name="data"):
    data = tmp_path / name
    token = make_token(data)
    srv = Server(data, *extra).start()
    srv.token = token
    return srv


def alive(srv):
    assert srv.proc.poll() is None, "the server process died"
    status, _, _ = srv.request("GET", "/healthz", token=None)
    assert status == 200


def raw_json(srv, method, path, text):
    return srv.request(method, path, text, content_type="application/json")


@pytest.fixture
def srv(tmp_path):
    s = start(tmp_path)
    yield s
    s.stop()


# Defect 1: one request kills the process.

@pytest.mark.parametrize("value", HUGE)
def test_watermark_with_an_extreme_number_is_refused_and_the_server_lives(srv, value):
    status, _, out = raw_json(srv, "POST", "/v1/watermark", '{"until": %s}' % value)
    assert status == 400, out
    assert "/until" in out["message"]
    alive(srv)


def test_watermark_out_of_range_text_is_refused(srv):
    for t in ["1969-12-31T23:59:59Z", "9999-12-31T23:59:59-01:00", "10000-01-01T00:00:00Z"]:
        status, _, out = raw_json(srv, "POST", "/v1/watermark", json.dumps({"until": t}))
        assert status == 400, (t, out)
    status, _, out = raw_json(srv, "POST", "/v1/watermark", '{"until": "9999-12-31T23:59:59.999Z"}')
    assert status == 200, out
    assert out["watermark"] == "9999-12-31T23:59:59.999Z"
    alive(srv)


@pytest.mark.parametrize("value", HUGE)
def test_redrive_with_an_extreme_id_is_refused(srv, value):
    status, _, out = raw_json(srv, "POST", "/v1/webhooks/deliveries/redrive", '{"ids": [%s]}' % value)
    if value in ("9007199254740993", "253402300800000"):
        assert status in (200, 400), out  # whole numbers: an id that matches nothing
    else:
        assert status == 400, out
        assert "/ids/0" in out["message"]
    alive(srv)


@pytest.mark.parametrize("field", ["starts_at", "ends_at"])
@pytest.mark.parametrize("value", HUGE)
def test_silence_with_extreme_times_is_refused(srv, field, value):
    body = '{"matchers": {"rule": "r"}, "comment": "c", "%s": %s%s}' % (
        field, value, ', "duration": "1h"' if field == "starts_at" else "")
    status, _, out = raw_json(srv, "POST", "/v1/silences", body)
    assert status == 400, out
    alive(srv)


@pytest.mark.parametrize("duration", ["106751991167d", "36526d", "99999999999999999999s", "3155760000001ms"])
def test_silence_with_an_overlong_duration_is_refused(srv, duration):
    status, _, out = raw_json(srv, "POST", "/v1/silences",
                              json.dumps({"matchers": {"rule": "r"}, "comment": "c", "duration": duration}))
    assert status == 400, out
    assert "/duration" in out["message"] and "100 years" in out["message"]
    alive(srv)


def test_silence_of_exactly_100_years_is_accepted(srv):
    status, _, out = raw_json(srv, "POST", "/v1/silences",
                              json.dumps({"matchers": {"rule": "r"}, "comment": "c", "duration": "36525d"}))
    assert status == 201, out
    alive(srv)


@pytest.mark.parametrize("value", HUGE)
def test_backtest_with_an_extreme_until_is_refused(srv, value):
    rule = dict(ENTER_YARD, id="bt")
    body = '{"rule": %s, "until": %s}' % (json.dumps(rule), value)
    status, _, out = raw_json(srv, "POST", "/v1/rules/backtest", body)
    assert status == 400, out
    alive(srv)


# Defect 2: one rule puts the server in a crash loop.

LONG_RULES = [
    {"id": "d", "kind": "dwell", "min": "106751991167d"},
    {"id": "a", "kind": "absence", "for": "106751991167d"},
    {"id": "g", "kind": "gathering", "min_count": 2, "window": "106751991167d"},
    {"id": "n", "kind": "novelty", "count": 1, "window": "106751991167d", "lookback": "1h"},
    {"id": "f", "kind": "frequency", "count": 1, "window": "106751991167d", "event": {"type": "x"}},
    {"id": "p", "kind": "proximity", "distance_m": 10, "within": "106751991167d"},
    {"id": "c", "kind": "enter", "cooldown": "36526d"},
]


def full_rule(r):
    return dict({"purpose": "p", "owner": "o", "severity": "low", "match": {}}, **r)


@pytest.mark.parametrize("rule", LONG_RULES, ids=[r["kind"] for r in LONG_RULES])
def test_a_rule_with_a_duration_over_100_years_is_invalid_everywhere(tmp_path, srv, rule):
    r = full_rule(rule)
    status, _, out = srv.request("POST", "/v1/rules", r)
    assert status == 422, out
    assert "100 years" in json.dumps(out)
    status, _, out = srv.request("POST", "/v1/rules?dry_run=true", r)
    assert status == 200 and out["valid"] is False, out
    assert "100 years" in json.dumps(out)
    alive(srv)
    f = tmp_path / "rules.json"
    f.write_text(json.dumps({"rules": [r]}))
    code, _, err = run("validate", "--rules", f)
    assert code == 2 and "100 years" in err, err
    ev = tmp_path / "ev.ndjson"
    ev.write_text('{"entity": "t", "time": 0, "type": "position", "lon": 0.5, "lat": 0.5}\n')
    code, _, err = run("replay", "--rules", f, ev)
    assert code == 2 and "100 years" in err, err


def test_rules_at_100_years_run_without_trapping(tmp_path):
    rules = [full_rule(dict(r, id=r["id"] + "-max")) for r in LONG_RULES]
    for r in rules:
        for k in ("min", "for", "window", "within"):
            if k in r:
                r[k] = "36525d"
        if r["kind"] == "enter":
            r["cooldown"] = "36525d"
    z = tmp_path / "zones.geojson"
    z.write_text(json.dumps({"type": "FeatureCollection", "features": [YARD]}))
    f = tmp_path / "rules.json"
    f.write_text(json.dumps({"rules": rules}))
    ev = tmp_path / "ev.ndjson"
    lines = []
    for i, t in enumerate([0, 1000, 253402300799999]):
        for e in ("a", "b"):
            lines.append(json.dumps({"entity": e, "time": t, "type": "position", "lon": 0.5, "lat": 0.5}))
            lines.append(json.dumps({"entity": e, "time": t, "type": "contact", "counterpart": f"c{i}"}))
            lines.append(json.dumps({"entity": e, "time": t, "type": "x"}))
    ev.write_text("\n".join(lines) + "\n")
    code, out, err = run("replay", "--zones", z, "--rules", f, "--until", "9999-12-31T23:59:59.999Z", ev)
    assert code == 0, err
    alerts = [json.loads(l) for l in out.splitlines()]
    assert any(a["rule"] == "d-max" for a in alerts)
    for a in alerts:
        assert a["time"] <= "9999-12-31T23:59:59.999Z"


# Defect 3: one event moves event time forward for good.

def test_event_times_beyond_year_9999_are_refused_with_a_location(srv):
    for t in ["253402300800000", "9007199254740991", "1e300", '"10000-01-01T00:00:00Z"', "-1"]:
        status, _, out = srv.request("POST", "/v1/events", '{"entity": "t", "time": %s, "type": "x"}\n' % t,
                                     content_type="application/x-ndjson")
        assert status == 422, (t, out)
        assert out["errors"][0]["pointer"] == "/time", out
    alive(srv)


def test_max_future_refuses_events_ahead_of_the_clock(tmp_path):
    srv = start(tmp_path, "--max-future", "1h")
    try:
        now = int(time.time() * 1000)
        ok = {"entity": "t", "time": now + 30 * 60_000, "type": "x"}
        bad = {"entity": "t", "time": now + 2 * 3_600_000, "type": "x"}
        status, _, out = srv.request("POST", "/v1/events", json.dumps(bad) + "\n", content_type="application/x-ndjson")
        assert status == 422, out
        assert out["errors"][0]["pointer"] == "/time" and "--max-future" in out["errors"][0]["message"]
        st = srv.ok("GET", "/v1/status")
        assert st["events_arrived"] == 0, "a refused batch must not be applied"
        r = srv.ok("POST", "/v1/events", json.dumps(ok) + "\n", content_type="application/x-ndjson")
        assert r["received"] == 1
        # Backfills of the past still work.
        r = srv.ok("POST", "/v1/events", json.dumps({"entity": "t", "time": 1000, "type": "x"}) + "\n",
                   content_type="application/x-ndjson")
        assert r["received"] == 1
    finally:
        srv.stop()
    srv = start(tmp_path, "--max-future", "off", name="off")
    try:
        r = srv.ok("POST", "/v1/events", '{"entity": "t", "time": "2200-01-01T00:00:00Z", "type": "x"}\n',
                   content_type="application/x-ndjson")
        assert r["received"] == 1
        assert r["watermark"] == "2200-01-01T00:00:00.000Z"
    finally:
        srv.stop()


# Defect 4: SIGTERM never stops a server once an SSE client has gone.

def sse_connect(srv, query):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(f"GET /v1/alerts/stream?{query} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {srv.token}\r\n\r\n".encode())
    return s


def test_sse_heartbeats_and_dead_subscribers_are_removed(tmp_path):
    srv = start(tmp_path, "--heartbeat", "1s")
    try:
        s = sse_connect(srv, "rule=nothing-matches")
        got = b""
        end = time.time() + 10
        while b"\n:\n" not in got and time.time() < end:
            got += s.recv(4096)
        assert b"200 OK" in got and b"\n:\n" in got, got
        assert srv.ok("GET", "/v1/status")["stream_subscribers"] == 1
        s.close()
        assert wait_until(lambda: srv.ok("GET", "/v1/status")["stream_subscribers"] == 0, timeout=10), \
            "a closed SSE client must be removed"
    finally:
        srv.stop()


def test_sigterm_stops_the_server_with_streams_open_or_gone(tmp_path):
    srv = start(tmp_path)
    gone = sse_connect(srv, "rule=nothing-matches")
    time.sleep(0.5)
    gone.close()
    kept = sse_connect(srv, "entity=none")
    kept.recv(100)
    t0 = time.time()
    srv.proc.send_signal(signal.SIGTERM)
    try:
        srv.proc.wait(15)
    except subprocess.TimeoutExpired:
        srv.proc.kill()
        pytest.fail("SIGTERM did not stop the server within 15 s")
    assert time.time() - t0 < 15
    kept.close()


# Defect 5: nothing locks the data folder.

def test_a_second_server_on_the_same_folder_exits_naming_the_first(tmp_path):
    srv = start(tmp_path)
    try:
        p = subprocess.run([BIN, *with_store(["serve", "--data", str(srv.data), "--port", "0"])], capture_output=True, text=True, timeout=60)
        assert p.returncode == 1, p.stderr
        assert f"PID {srv.proc.pid}" in p.stderr, p.stderr
        alive(srv)
    finally:
        srv.stop()
    # After the first has stopped (even by kill -9), the folder can be served again.
    srv2 = Server(srv.data).start()
    srv2.kill9()
    srv3 = Server(srv.data).start()
    srv3.stop()


def test_a_lost_pseudonym_key_is_not_silently_replaced(tmp_path):
    """The data folder's pseudonym.key makes erased entities' and audit records' pseudonyms.
    Were it lost and silently made anew, the same entity would get another pseudonym; the
    server refuses to start instead, and starts again once the key is back."""
    srv = start(tmp_path)
    srv.ok("POST", "/v1/entities", {"id": "truck-1", "kind": "truck"})
    srv.stop()
    key = srv.data / "pseudonym.key"
    saved = key.read_bytes()
    key.unlink()
    p = subprocess.run([BIN, *with_store(["serve", "--data", str(srv.data), "--port", "0"])], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p.stderr
    assert "pseudonym key" in p.stderr and "pseudonym.key" in p.stderr, p.stderr
    key.write_bytes(saved)
    srv2 = Server(srv.data).start()
    srv2.token = srv.token
    alive(srv2)
    srv2.stop()


# Defect 6: no idle or header timeouts.

def read_all(s, timeout):
    s.settimeout(timeout)
    out = b""
    try:
        while True:
            b = s.recv(4096)
            if not b:
                return out, True
            out += b
    except socket.timeout:
        return out, False


def test_slowloris_gets_408_and_its_descriptors_back(tmp_path):
    srv = start(tmp_path, "--header-timeout", "2s")
    try:
        socks = []
        for i in range(200):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            socks.append(s)
        t0 = time.time()
        closed = 0
        for s in socks:
            out, eof = read_all(s, 8)
            assert out.startswith(b"HTTP/1.1 408"), out
            closed += eof
            s.close()
        assert closed == len(socks)
        assert time.time() - t0 < 10
        fds = len(os.listdir(f"/proc/{srv.proc.pid}/fd"))
        assert fds < 100, f"{fds} descriptors still open"
        alive(srv)
    finally:
        srv.stop()


def test_idle_connections_are_closed(tmp_path):
    srv = start(tmp_path, "--idle-timeout", "2s", "--header-timeout", "3s")
    try:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        t0 = time.time()
        out, eof = read_all(s, 8)
        assert out.startswith(b"HTTP/1.1 200") and eof, out
        assert time.time() - t0 < 6
        silent = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        out, eof = read_all(silent, 8)
        assert eof and out.startswith(b"HTTP/1.1 408"), out
    finally:
        srv.stop()


@pytest.mark.parametrize("line", [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", b"HELLO\r\n\r\n",
                                  b"GET /healthz HTTP/9.9\r\n\r\n", b"GET  /healthz HTTP/1.1\r\n\r\n"])
def test_garbage_request_lines_get_400(srv, line):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(line)
    out, eof = read_all(s, 8)
    assert out.startswith(b"HTTP/1.1 400"), out
    assert eof
    alive(srv)


def test_the_connection_cap_answers_503(tmp_path):
    srv = start(tmp_path, "--max-connections", "20", "--header-timeout", "30s")
    try:
        held = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(20)]
        time.sleep(0.5)
        extra = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        out, eof = read_all(extra, 8)
        assert out.startswith(b"HTTP/1.1 503"), out
        for s in held:
            s.close()
        assert wait_until(lambda: srv.request("GET", "/healthz", token=None)[0] == 200, timeout=10)
    finally:
        srv.stop()


def test_trace_and_other_methods_get_405(srv):
    for m in ["TRACE", "PATCH", "PUT"]:
        status, hdrs, out = srv.request(m, "/v1/alerts")
        assert status == 405, (m, out)
        assert hdrs.get("Allow") == "GET", hdrs


# Defect 7: field sizes are bounded.

@pytest.mark.parametrize("event,pointer", [
    ({"entity": "e" * 257, "time": 0, "type": "x"}, "/entity"),
    ({"entity": "e", "id": "i" * 257, "time": 0, "type": "x"}, "/id"),
    ({"entity": "e", "time": 0, "type": "t" * 129}, "/type"),
    ({"entity": "e", "time": 0, "type": "contact", "counterpart": "c" * 257}, "/counterpart"),
    ({"entity": "e", "time": 0, "type": "x", "attrs": {"k": "v" * 1025}}, "/attrs/k"),
    ({"entity": "e", "time": 0, "type": "x", "attrs": {"k" * 129: 1}}, "/attrs"),
    ({"entity": "e", "time": 0, "type": "x", "attrs": {f"k{i}": i for i in range(33)}}, "/attrs"),
])
def test_oversized_fields_are_refused_by_name(srv, event, pointer):
    status, _, out = srv.request("POST", "/v1/events", json.dumps(event) + "\n", content_type="application/x-ndjson")
    assert status == 422, out
    assert out["errors"][0]["pointer"] == pointer, out


def test_fields_at_their_limits_are_accepted(srv):
    ev = {"entity": "e" * 256, "id": "i" * 256, "time": 0, "type": "t" * 128,
          "attrs": {("k%d" % i) + "x" * 120: "v" * 1024 for i in range(32)}}
    r = srv.ok("POST", "/v1/events", json.dumps(ev) + "\n", content_type="application/x-ndjson")
    assert r["received"] == 1


# Defect 8: smaller ones.

def test_invalid_utf8_in_yaml_rules_and_geojson_zones_is_refused_with_a_line(srv):
    yaml = ("rules:\n  - id: r1\n    kind: enter\n    purpose: \"caf\xe9\"\n").encode("latin-1") + \
        b"    owner: o\n    severity: low\n    match: {}\n"
    status, _, out = srv.request("POST", "/v1/rules", yaml, content_type="application/yaml")
    assert status == 422, out
    assert out["errors"][0]["line"] == 4, out
    assert "UTF-8" in out["errors"][0]["message"]
    zone = json.dumps({"type": "Feature", "properties": {"id": "zX", "category": "depot"},
                       "geometry": YARD["geometry"]}).replace("zX", "z\udcff").encode("utf-8", "surrogateescape")
    status, _, out = srv.request("POST", "/v1/zones", zone, content_type="application/geo+json")
    assert status == 422, out
    assert "UTF-8" in out["errors"][0]["message"]
    assert srv.ok("GET", "/v1/rules")["rules"] == []


def test_access_token_in_the_query_only_on_streams(srv):
    status, _, _ = srv.request("GET", f"/v1/rules?access_token={srv.token}", token=None)
    assert status == 401
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(f"GET /v1/alerts/stream?access_token={srv.token} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert s.recv(100).startswith(b"HTTP/1.1 200")
    s.close()


def test_times_printed_by_the_server_parse_back(srv):
    st = srv.ok("POST", "/v1/watermark", {"until": 253402300799999})
    assert st["watermark"] == "9999-12-31T23:59:59.999Z"
    status, _, out = srv.request("GET", "/v1/alerts?from=" + st["watermark"])
    assert status == 200, out


# TLS: tokens need not cross networks in clear.

def test_tls_with_a_self_signed_certificate(tmp_path):
    import ssl
    import urllib.request
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                        "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    data = tmp_path / "data"
    token = make_token(data)
    proc = subprocess.Popen([BIN, *with_store(["serve", "--data", str(data), "--port", "0", "--tls-cert", str(cert), "--tls-key", str(key)])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "serving on https://" in line, line + proc.stderr.read()
        port = int(line.split("https://")[1].split(":")[1].split(" ")[0])
        ctx = ssl.create_default_context(cafile=str(cert))
        req = urllib.request.Request(f"https://127.0.0.1:{port}/v1/whoami", headers={"Authorization": "Bearer " + token})
        with urllib.request.urlopen(req, context=ctx, timeout=20) as r:
            assert r.status == 200 and json.loads(r.read())["role"] == "admin"
        # Plain HTTP to the TLS port gets no HTTP answer.
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        out, _ = read_all(s, 5)
        assert not out.startswith(b"HTTP/1.1 200"), out
        # The guard works behind TLS: a half-sent request over TLS is still timed out.
        raw = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30), server_hostname="localhost")
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        out, _ = read_all(raw, 20)
        assert out.startswith(b"HTTP/1.1 408"), out
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def test_tls_options_must_go_together(tmp_path):
    code, _, err = run("serve", "--data", tmp_path / "d", "--port", "0", "--tls-cert", tmp_path / "nope.pem")
    assert code != 0 and "--tls-key" in err


# Disk full: refuse without acknowledging, recover when space returns.

def test_disk_full_refuses_batches_and_recovers(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if PG:
        # Somewhere the postgres system user can reach (pytest's folders are private to root).
        import tempfile
        mnt = pathlib.Path(tempfile.mkdtemp(prefix="tripline-small-"))
        os.chmod(mnt, 0o755)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)]).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")
    servers = []
    space = None
    try:
        data = mnt / "data"
        if PG:
            # PostgreSQL: the database's tables live in a tablespace on the small disk.
            pgdir = mnt / "pg"
            pgdir.mkdir()
            subprocess.run(["chown", "postgres:", str(pgdir)], check=True)
            space = "small_" + db_name(data)[2:12]
            psql(f"CREATE TABLESPACE {space} LOCATION '{pgdir}'")
            store_url(data, tablespace=space)
        token = make_token(data)
        srv = Server(data).start()
        servers.append(srv)
        srv.token = token
        acked, refused, i = 0, 0, 0
        pad = "x" * 900
        while refused == 0 and i < 400:
            # Random text: PostgreSQL compresses stored values, and a repeated pad would never fill the disk.
            lines = "".join(json.dumps({"entity": f"e{i % 50}", "id": f"b{i}-{k}", "time": 1000 * i + k, "type": "x",
                                        "attrs": {"pad": base64.b64encode(os.urandom(675)).decode()}}) + "\n" for k in range(100))
            status, hdrs, out = srv.request("POST", "/v1/events", lines, content_type="application/x-ndjson")
            if status == 200:
                acked += 100
            else:
                assert status in (503, 507), out
                assert "Retry-After" in hdrs, hdrs
                refused += 1
            i += 1
        assert refused == 1, "the small disk never filled"
        alive(srv)
        # Still full: refused again, the server lives.
        status, _, _ = srv.request("POST", "/v1/events", json.dumps({"entity": "z", "time": 10**9, "type": "x", "attrs": {"pad": pad * 3}}) + "\n",
                                   content_type="application/x-ndjson")
        alive(srv)
        if status == 200:
            acked += 1
        assert subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)]).returncode == 0
        r = srv.ok("POST", "/v1/events", json.dumps({"entity": "after", "time": 2 * 10**9, "type": "x"}) + "\n",
                   content_type="application/x-ndjson")
        acked += 1
        assert r["received"] == 1
        srv.kill9()
        srv2 = Server(data).start()
        servers.append(srv2)
        srv2.token = token
        st = srv2.ok("GET", "/v1/status")
        assert st["events_arrived"] == acked, (st, acked)
    finally:
        for x in servers:
            x.stop()
        if space:
            psql(f"DROP DATABASE IF EXISTS {db_name(data)} WITH (FORCE)")
            psql(f"DROP TABLESPACE IF EXISTS {space}")
        subprocess.run(["umount", "-l", str(mnt)])


def test_retention_trims_the_timeline_index(tmp_path):
    """Defect 7: the timeline index (16 bytes per stored event) grew with every event ever
    received, retention or not. Now the retention pass that deletes log batches drops their
    index entries too, so the index holds what the log holds."""
    srv = start(tmp_path, "--retention-events", "2s", "--retention-interval", "1s")
    try:
        now = int(time.time() * 1000)
        old = "".join(json.dumps({"entity": f"t{i % 7}", "time": now - 60_000 + i, "type": "ping"}) + "\n" for i in range(700))
        srv.ok("POST", "/v1/events", old, content_type="application/x-ndjson")
        assert srv.ok("GET", "/v1/status")["timeline_entries"] == 700
        # Retention looks every second and deletes what was stored more than 2 s ago.
        wait_until(lambda: srv.ok("GET", "/v1/status")["timeline_entries"] == 0, timeout=15)
        new = "".join(json.dumps({"entity": f"t{i % 7}", "time": now + i, "type": "ping"}) + "\n" for i in range(70))
        srv.ok("POST", "/v1/events", new, content_type="application/x-ndjson")
        st = srv.ok("GET", "/v1/status")
        assert st["timeline_entries"] == 70, st
        t = srv.ok("GET", "/v1/entities/t3/timeline")
        assert [e["event"]["time"] for e in t["events"]] == [now + i for i in range(70) if i % 7 == 3]
        wait_until(lambda: srv.ok("GET", "/v1/status")["timeline_entries"] == 0, timeout=15)
        assert srv.ok("GET", "/v1/entities/t3/timeline")["events"] == []
        alive(srv)
    finally:
        srv.stop()


def test_retention_interval_is_checked(tmp_path):
    data = tmp_path / "d"
    make_token(data)
    p = subprocess.run([BIN, *with_store(["serve", "--data", str(data), "--port", "0", "--retention-interval", "10ms"])],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "--retention-interval" in p.stderr, p.stderr
