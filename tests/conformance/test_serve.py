"""`tripline serve` against `tripline replay`: the same input gives the same alerts, across
batches, restarts and kill -9; bad requests get clear 4xx answers and the server keeps serving."""
import http.client
import json
import random
import socket
import threading
import urllib.request

import pytest

from conftest import replayed_workload, run
from server import ENTER_YARD, YARD, Server, batches, canonical, make_token, start_demo, wait_until


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    """A mixed workload (positions, readings, contacts, custom events) where every event has
    an id, so that a re-sent batch is recognised as duplicates (spec section 2)."""
    w = replayed_workload(tmp_path_factory.mktemp("workload"), zones=300, entities=1500, events=30000, rules=40, seed=11, jitter=True)
    assert len(w["alerts"]) > 500, "the workload should make every kind of rule fire"
    return w


def json_time(rfc3339):
    from datetime import datetime
    return int(datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp() * 1000)


def start(tmp_path, name="data", *extra):
    data = tmp_path / name
    token = make_token(data)
    srv = Server(data, *extra).start()
    srv.token = token
    return srv


def load_catalog(srv, d):
    srv.ok("POST", "/v1/zones", (d / "zones.geojson").read_text(), content_type="application/geo+json")
    srv.ok("POST", "/v1/entities", (d / "entities.ndjson").read_text(), content_type="application/x-ndjson")
    out = srv.ok("POST", "/v1/rules", (d / "rules-mixed.json").read_text(), content_type="application/json")
    assert all(r["version"] == 1 for r in out["rules"])


def test_serve_gives_the_alerts_of_replay(tmp_path, workload):
    srv = start(tmp_path)
    try:
        load_catalog(srv, workload["dir"])
        for b in batches(workload["dir"] / "events.ndjson", 1000):
            r = srv.ok("POST", "/v1/events", "".join(b), content_type="application/x-ndjson")
            assert r["received"] == len(b) and r["duplicates"] == 0
        srv.ok("POST", "/v1/watermark", {"until": workload["until"]})
        got = [canonical(a) for a in srv.all_alerts()]
        assert got == workload["alerts"]
        # Every alert names the rule version that produced it.
        assert {a["rule_version"] for a in srv.all_alerts()} == {1}
        status = srv.ok("GET", "/v1/status")
        assert status["events_applied"] == workload["events"]
    finally:
        srv.stop()


def test_restart_continues_the_alert_stream(tmp_path, workload):
    """Stop half way, start again on the same data: the rebuilt engine goes on as if nothing happened."""
    all_batches = batches(workload["dir"] / "events.ndjson", 1000)
    srv = start(tmp_path)
    load_catalog(srv, workload["dir"])
    half = len(all_batches) // 2
    for b in all_batches[:half]:
        srv.ok("POST", "/v1/events", "".join(b))
    srv.stop()
    srv2 = Server(srv.data).start()
    srv2.token = srv.token
    try:
        for b in all_batches[half:]:
            srv2.ok("POST", "/v1/events", "".join(b))
        srv2.ok("POST", "/v1/watermark", {"until": workload["until"]})
        assert [canonical(a) for a in srv2.all_alerts()] == workload["alerts"]
        # The timeline index is rebuilt too: an entity's events in a range, as received.
        lines = [json.loads(l) for l in (workload["dir"] / "events.ndjson").read_text().splitlines()]
        who = lines[len(lines) // 2]["entity"]
        mine = [l for l in lines if l["entity"] == who]
        lo, hi = mine[1]["time"], mine[-2]["time"]
        t = srv2.ok("GET", f"/v1/entities/{who}/timeline?from={lo}&to={hi}")
        assert [e["event"] for e in t["events"]] == [l for l in mine if lo <= l["time"] <= hi]
        expected = [a for a in srv2.all_alerts() if who in (a["key"].get("entity"), *a["key"].get("pair", []))]
        expected = [a for a in expected if lo <= json_time(a["time"]) <= hi]
        assert t["alerts"] == expected[:1000]
        assert srv2.ok("GET", f"/v1/entities/{who}/timeline?limit=1")["events_truncated"] is True
    finally:
        srv2.stop()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_mid_stream_loses_and_repeats_nothing(tmp_path, workload, seed):
    """kill -9 at random moments while batches are in flight; the client re-sends every batch it
    has no acknowledgement for. Committed events come back as duplicates; the alerts equal the
    uninterrupted run and every event is applied exactly once."""
    rng = random.Random(seed)
    all_batches = batches(workload["dir"] / "events.ndjson", 500)
    srv = start(tmp_path)
    load_catalog(srv, workload["dir"])
    kills = sorted(rng.sample(range(5, len(all_batches) - 5), 3))
    i = 0
    resent_duplicates = 0
    crashes = 0
    while i < len(all_batches):
        if kills and i == kills[0]:
            kills.pop(0)
            # Kill while this batch is on the wire: its fate is unknown to the client.
            killer = threading.Timer(rng.uniform(0.0, 0.05), srv.kill9)
            killer.start()
            try:
                srv.request("POST", "/v1/events", "".join(all_batches[i]), timeout=10)
            except (ConnectionError, socket.timeout, OSError, urllib.error.URLError, http.client.HTTPException):
                # (IncompleteRead, an HTTPException: the kill came between the answer's
                # headers and its body; the client has no answer, so the batch is re-sent.)
                pass
            killer.join()
            crashes += 1
            token = srv.token
            srv = Server(srv.data).start()
            srv.token = token
            # Re-send the batch we have no acknowledgement for.
        status, _, r = srv.request("POST", "/v1/events", "".join(all_batches[i]))
        assert status == 200, r
        resent_duplicates += r["duplicates"]
        i += 1
    try:
        assert crashes == 3
        srv.ok("POST", "/v1/watermark", {"until": workload["until"]})
        assert [canonical(a) for a in srv.all_alerts()] == workload["alerts"]
        status = srv.ok("GET", "/v1/status")
        assert status["events_applied"] == workload["events"], "an acknowledged event was lost or applied twice"
        assert status["duplicates"] == resent_duplicates
    finally:
        srv.stop()


def test_rules_change_live_with_versions(tmp_path):
    srv = start(tmp_path)
    try:
        srv.ok("POST", "/v1/zones", YARD)
        rule = "id: in-yard\nkind: enter\npurpose: test\nowner: qa\nseverity: low\nmatch: {}\nzones: {category: depot}\n"
        assert srv.ok("POST", "/v1/rules", rule, content_type="application/yaml")["rules"][0]["version"] == 1
        # The same text again is no new version.
        assert srv.ok("PUT", "/v1/rules/in-yard", rule, content_type="application/yaml")["rules"][0] == \
            {"id": "in-yard", "version": 1, "changed": False}
        srv.ok("POST", "/v1/events", '{"entity":"t1","time":1000,"type":"position","lon":0.5,"lat":0.5}\n'
                                     '{"entity":"t1","time":2000,"type":"position","lon":5,"lat":5}\n')
        v2 = rule.replace("severity: low", "severity: high")
        assert srv.ok("PUT", "/v1/rules/in-yard", v2, content_type="application/yaml")["rules"][0]["version"] == 2
        srv.ok("POST", "/v1/events", '{"entity":"t2","time":3000,"type":"position","lon":0.5,"lat":0.5}\n'
                                     '{"entity":"t2","time":4000,"type":"position","lon":5,"lat":5}\n')
        alerts = srv.all_alerts()
        assert [(a["key"]["entity"], a["rule_version"]) for a in alerts] == [("t1", 1), ("t2", 2)]
        versions = srv.ok("GET", "/v1/rules/in-yard/versions")["versions"]
        assert [v["version"] for v in versions] == [1, 2]
        assert json.loads(json.dumps(versions[1]["rule"]))["severity"] == "high"
        assert srv.request("DELETE", "/v1/rules/in-yard")[0] == 204
        assert srv.request("GET", "/v1/rules/in-yard")[0] == 404
    finally:
        srv.stop()


def test_live_stream_delivers_new_alerts(tmp_path):
    srv = start(tmp_path)
    try:
        srv.ok("POST", "/v1/zones", YARD)
        srv.ok("POST", "/v1/rules", ENTER_YARD)
        req = urllib.request.Request(srv.url + "/v1/alerts/stream", headers={"Authorization": "Bearer " + srv.token})
        resp = urllib.request.urlopen(req, timeout=30)
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        got = []

        def reader():
            for raw in resp:
                line = raw.decode().rstrip("\n")
                if line.startswith("data: "):
                    got.append(json.loads(line[6:]))
                    return
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        srv.ok("POST", "/v1/events", '{"entity":"t1","time":1000,"type":"position","lon":0.5,"lat":0.5}\n'
                                     '{"entity":"t1","time":2000,"type":"position","lon":5,"lat":5}\n')
        assert wait_until(lambda: got, 20)
        assert got[0]["rule"] == "in-yard" and got[0]["key"] == {"entity": "t1", "zone": "yard"} and got[0]["id"] == 1
    finally:
        srv.stop()


def post_huge(srv, path, size):
    """Sends a body of `size` bytes the way a streaming client does, reading the answer as soon
    as the server gives one (urllib would insist on sending all of it first)."""
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    sock.sendall((f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {srv.token}\r\n"
                  f"Content-Type: application/x-ndjson\r\nContent-Length: {size}\r\n\r\n").encode())
    chunk = b"x" * (1 << 20)
    try:
        for _ in range(size // len(chunk)):
            sock.sendall(chunk)
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass
    data = b""
    try:
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < 10 or not data.rstrip().endswith(b"}"):
            part = sock.recv(65536)
            if not part:
                break
            data += part
    except (ConnectionResetError, socket.timeout):
        pass
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    return status, json.loads(body.decode().strip().splitlines()[-1])


def test_bad_requests_get_clear_answers_and_the_server_keeps_serving(tmp_path):
    srv = start(tmp_path)
    try:
        # No token, a wrong token, a token with the wrong role.
        s, h, out = srv.request("GET", "/v1/rules", token=None)
        assert s == 401 and "token" in out["message"] and h.get("WWW-Authenticate", "").startswith("Bearer")
        s, _, out = srv.request("GET", "/v1/rules", token="tl_nope")
        assert s == 401 and "not valid" in out["message"]
        ingest = make_token(srv.data, role="ingest", name="feeder")
        s, _, out = srv.request("GET", "/v1/rules", token=ingest)
        assert s == 403 and "ingest" in out["message"] and "operator" in out["message"]
        # The ingest role may post events.
        s, _, _ = srv.request("POST", "/v1/events", '{"entity":"a","time":1,"type":"ping"}\n', token=ingest)
        assert s == 200
        # Malformed line 3 of 5: the whole batch is refused, with the line named.
        lines = ['{"entity":"b","time":%d,"type":"ping"}' % t for t in range(10, 15)]
        lines[2] = '{"entity":"b","time":12,"type":"position","lon":1}'
        before = srv.ok("GET", "/v1/status")["events_arrived"]
        s, _, out = srv.request("POST", "/v1/events", "\n".join(lines) + "\n")
        assert s == 422 and out["error"] == "invalid_events"
        assert [e["line"] for e in out["errors"]] == [3] and "lat" in out["errors"][0]["message"]
        assert "nothing of this batch was applied" in out["message"]
        assert srv.ok("GET", "/v1/status")["events_arrived"] == before
        # A 50 MB body.
        s, out = post_huge(srv, "/v1/events", 50 << 20)
        assert s == 413 and "MiB" in out["message"]
        # A zone with an open ring.
        s, _, out = srv.request("POST", "/v1/zones", {"type": "Feature", "properties": {"id": "z", "category": "depot"},
                                                      "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}})
        assert s == 422 and "ring" in json.dumps(out["errors"]) and out["errors"][0]["pointer"].startswith("/geometry")
        assert srv.ok("GET", "/v1/zones")["features"] == []
        # A rule without purpose.
        s, _, out = srv.request("POST", "/v1/rules", "id: r\nkind: enter\nowner: o\nseverity: low\nmatch: {}\n",
                                content_type="application/yaml")
        assert s == 422 and "purpose" in out["errors"][0]["message"] and out["errors"][0]["line"] == 1
        assert srv.ok("GET", "/v1/rules")["rules"] == []
        # A sensitive tag on an entity.
        s, _, out = srv.request("POST", "/v1/entities", {"id": "e1", "kind": "truck", "tags": {"religion": "x"}})
        assert s == 422 and "religion" in out["errors"][0]["message"]
        # Too many events in one batch.
        s, _, out = srv.request("POST", "/v1/events", "".join('{"entity":"c","time":%d,"type":"ping"}\n' % t for t in range(10001)))
        assert s == 413 and "10000" in out["message"]
        # Still serving.
        assert srv.request("GET", "/healthz", token=None)[0] == 200
        assert srv.ok("GET", "/v1/status")["events_arrived"] == before
    finally:
        srv.stop()


def test_openapi_lists_every_route_and_every_documented_route_answers(tmp_path):
    srv = start(tmp_path)
    try:
        doc = srv.ok("GET", "/openapi.json")
        assert doc["openapi"].startswith("3.1")
        for path, ops in doc["paths"].items():
            for method in ops:
                if method not in ("get", "post", "put", "delete"):
                    continue
                concrete = path.replace("{id}", "x")
                if concrete.endswith("/stream"):
                    continue  # checked by the live stream test
                s, _, out = srv.request(method.upper(), concrete, b"{}" if method in ("post", "put") else None,
                                        content_type="application/json")
                assert s not in (404, 405) or (isinstance(out, dict) and out.get("error") == "not_found"), \
                    f"{method.upper()} {path} is documented but the server does not route it ({s})"
    finally:
        srv.stop()


def test_demo_raises_alerts_within_a_minute(tmp_path):
    proc, srv = start_demo(tmp_path / "demo", "--tick", "0.5")
    try:
        assert wait_until(lambda: len(srv.ok("GET", "/v1/alerts?limit=1000")["alerts"]) > 0, 60)
        rules = srv.ok("GET", "/v1/rules")["rules"]
        assert {r["rule"]["kind"] for r in rules} == {"enter", "exit", "dwell", "gathering", "proximity", "frequency",
                                                       "novelty", "threshold", "sequence", "absence", "speed", "aggregate"}
    finally:
        proc.terminate()
        proc.wait(10)


def ws_connect(srv, path, token):
    """A minimal WebSocket client (RFC 6455): handshake, then read text frames."""
    import base64
    import os
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
    key = base64.b64encode(os.urandom(16)).decode()
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{auth}\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        part = sock.recv(4096)
        if not part:
            break
        head += part
    status = int(head.split(b" ")[1])
    rest = head.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in head else b""
    return sock, status, rest


def ws_read_text(sock, buf):
    def need(n):
        nonlocal buf
        while len(buf) < n:
            part = sock.recv(65536)
            assert part, "connection closed"
            buf += part
    need(2)
    op, ln = buf[0] & 0x0F, buf[1] & 0x7F
    off = 2
    if ln == 126:
        need(4)
        ln, off = int.from_bytes(buf[2:4], "big"), 4
    elif ln == 127:
        need(10)
        ln, off = int.from_bytes(buf[2:10], "big"), 10
    need(off + ln)
    payload, buf = buf[off:off + ln], buf[off + ln:]
    assert op == 1, f"expected a text frame, got opcode {op}"
    return payload.decode(), buf


def test_websocket_delivers_new_alerts(tmp_path):
    srv = start(tmp_path)
    try:
        srv.ok("POST", "/v1/zones", YARD)
        srv.ok("POST", "/v1/rules", ENTER_YARD)
        # A refused upgrade is a bare 400; the same GET without upgrade says why.
        _, status, _ = ws_connect(srv, "/v1/alerts/ws", None)
        assert status == 400
        s, _, out = srv.request("GET", "/v1/alerts/ws", token=None)
        assert s == 401 and "token" in out["message"]
        s, _, out = srv.request("GET", "/v1/alerts/ws")
        assert s == 400 and out["error"] == "websocket_required"
        srv.ok("POST", "/v1/events", '{"entity":"t0","time":500,"type":"position","lon":0.5,"lat":0.5}\n'
                                     '{"entity":"t0","time":600,"type":"ping"}\n')
        # after=0: the stored alert first, then live ones.
        sock, status, buf = ws_connect(srv, "/v1/alerts/ws?after=0", srv.token)
        assert status == 101
        text, buf = ws_read_text(sock, buf)
        assert json.loads(text)["key"]["entity"] == "t0"
        srv.ok("POST", "/v1/events", '{"entity":"t1","time":1000,"type":"position","lon":0.5,"lat":0.5}\n'
                                     '{"entity":"t1","time":2000,"type":"position","lon":5,"lat":5}\n')
        text, buf = ws_read_text(sock, buf)
        a = json.loads(text)
        assert a["rule"] == "in-yard" and a["key"] == {"entity": "t1", "zone": "yard"} and a["id"] == 2
        sock.close()
    finally:
        srv.stop()


def test_a_flood_of_slow_uploads_gets_429_before_bodies_are_read(tmp_path):
    srv = start(tmp_path)
    socks = []
    try:
        # 40 clients start batches and stall half way through their bodies: 32 are being
        # received, the rest refused. (With exactly 32, a check below can overtake the last
        # of them, take its place and finish, leaving 31 in flight for good.)
        for _ in range(40):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            s.sendall((f"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {srv.token}\r\n"
                       f"Content-Type: application/x-ndjson\r\nContent-Length: 1000000\r\n\r\n").encode() + b" " * 1000)
            socks.append(s)
        time_limit = 30
        import time as _t
        end = _t.time() + time_limit
        status = None
        while _t.time() < end:
            status, headers, out = srv.request("POST", "/v1/events", '{"entity":"a","time":1,"type":"ping"}\n')
            if status == 429:
                break
            _t.sleep(0.1)
        assert status == 429 and headers.get("Retry-After") == "1" and "being received" in out["message"]
    finally:
        for s in socks:
            s.close()
    try:
        # Once they are gone, batches are taken again.
        assert wait_until(lambda: srv.request("POST", "/v1/events", '{"entity":"a","time":2,"type":"ping"}\n')[0] == 200, 20)
        assert srv.request("GET", "/healthz", token=None)[0] == 200
    finally:
        srv.stop()


def test_idle_advance_fires_absence_on_a_quiet_stream(tmp_path):
    import time as _t
    data = tmp_path / "data"
    token = make_token(data)
    srv = Server(data, "--idle-advance", "1s").start()
    srv.token = token
    try:
        srv.ok("POST", "/v1/rules", {"id": "silent", "kind": "absence", "purpose": "p", "owner": "o", "severity": "low",
                                     "match": {}, "for": "2s"})
        now = int(_t.time() * 1000)
        srv.ok("POST", "/v1/events", '{"entity":"sensor-1","time":%d,"type":"heartbeat"}\n' % now)
        # No more events: the wall clock moves event time on, and the silence is noticed.
        assert wait_until(lambda: any(a["rule"] == "silent" and a["state"] == "firing" for a in srv.all_alerts()), 15)
        a = [a for a in srv.all_alerts() if a["rule"] == "silent"][0]
        assert a["key"] == {"entity": "sensor-1"} and a["details"] == {"silent_s": 2}
    finally:
        srv.stop()
    # Without --idle-advance nothing moves event time.
    data2 = tmp_path / "data2"
    token2 = make_token(data2)
    srv2 = Server(data2).start()
    srv2.token = token2
    try:
        srv2.ok("POST", "/v1/rules", {"id": "silent", "kind": "absence", "purpose": "p", "owner": "o", "severity": "low",
                                      "match": {}, "for": "1s"})
        srv2.ok("POST", "/v1/events", '{"entity":"sensor-1","time":%d,"type":"heartbeat"}\n' % int(_t.time() * 1000))
        _t.sleep(3)
        assert srv2.all_alerts() == []
    finally:
        srv2.stop()


def test_metrics_count_requests_per_route(tmp_path):
    """/metrics (swift-prometheus): the server's own metrics and, from Hummingbird's metrics
    middleware, requests and latency per route pattern and status."""
    srv = start(tmp_path)
    try:
        for _ in range(2):
            srv.ok("GET", "/v1/alerts")
        status, hdrs, _ = srv.request("GET", "/v1/rules/nope")
        assert status == 404
        # Every answer, errors included, carries its request id (the id of the server's log lines).
        ids = {hdrs.get("Tripline-Request-Id"), srv.request("GET", "/v1/alerts")[1].get("Tripline-Request-Id")}
        assert None not in ids and len(ids) == 2
        srv.ok("POST", "/v1/events", '{"entity":"t1","time":1000,"type":"position","lon":0.5,"lat":0.5}\n')
        text = srv.ok("GET", "/metrics")
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                samples[name] = float(value)
        assert samples['hb_requests{http_route="/v1/alerts",http_request_method="GET",http_response_status_code="200"}'] == 3
        assert samples['hb_requests{http_route="/v1/rules/{id}",http_request_method="GET",http_response_status_code="404"}'] == 1
        assert samples['hb_request_errors{http_route="/v1/rules/{id}",http_request_method="GET",error_type="404"}'] == 1
        assert samples['http_server_request_duration_count{http_route="/v1/alerts",http_request_method="GET",http_response_status_code="200"}'] == 3
        assert samples["tripline_events_received_total"] == 1
        assert samples["tripline_commit_seconds_count"] >= 1
        assert samples['tripline_commit_seconds_bucket{le="+Inf"}'] == samples["tripline_commit_seconds_count"]
        # Every sample line is a name, optional labels and a number.
        assert all(v == v for v in samples.values())
    finally:
        srv.stop()


def test_backup_while_serving_restores_the_same_state(tmp_path, workload):
    """`tripline backup` (SQLite's online backup API) while the server ingests; a server
    started on the copy has the same log and the same alerts."""
    from conftest import PG
    if PG:
        code, _, err = run("backup", "--data", tmp_path / "x", "--to", tmp_path / "x.sqlite", "--store", "postgres://u@127.0.0.1/db")
        assert code != 0 and "pg_dump" in err
        return
    srv = start(tmp_path)
    copy = tmp_path / "copy.sqlite"
    try:
        load_catalog(srv, workload["dir"])
        all_batches = batches(workload["dir"] / "events.ndjson", 1000)
        half = len(all_batches) // 2
        for b in all_batches[:half]:
            srv.ok("POST", "/v1/events", "".join(b))
        # A backup while more batches arrive.
        feeder = threading.Thread(target=lambda: [srv.ok("POST", "/v1/events", "".join(b)) for b in all_batches[half:]])
        feeder.start()
        code, out, err = run("backup", "--data", srv.data, "--to", copy)
        feeder.join()
        assert code == 0, err
        assert "backed up" in out
        # Never overwrites.
        code, _, err = run("backup", "--data", srv.data, "--to", copy)
        assert code == 1 and "exists" in err
    finally:
        srv.stop()
    restored = tmp_path / "restored"
    restored.mkdir()
    (restored / "tripline.sqlite").write_bytes(copy.read_bytes())
    (restored / "pseudonym.key").write_bytes((srv.data / "pseudonym.key").read_bytes())
    srv2 = Server(restored).start()
    srv2.token = srv.token
    try:
        # The copy is a consistent snapshot: a prefix of the batches, whole batches only.
        st = srv2.ok("GET", "/v1/status")
        assert st["events_applied"] >= half * 1000 and st["events_applied"] % 1000 == 0
        done = st["events_applied"] // 1000
        for b in all_batches[done:]:
            srv2.ok("POST", "/v1/events", "".join(b))
        srv2.ok("POST", "/v1/watermark", {"until": workload["until"]})
        assert [canonical(a) for a in srv2.all_alerts()] == workload["alerts"]
    finally:
        srv2.stop()
