"""Accountability as a user (or an attacker with the SQLite file) meets it: the audit chain
detects tampering, erasure leaves no trace of the id, sensitive tags are refused."""
import json
import shutil
import sqlite3

import pytest

from conftest import run
from server import Server, make_token

ZONE = {"type": "Feature", "properties": {"id": "yard", "category": "depot"},
        "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}}
GATHER = {"id": "crowd", "kind": "gathering", "purpose": "yard capacity", "owner": "ops", "severity": "low",
          "match": {}, "zones": {"category": "depot"}, "min_count": 2, "window": "10m"}
ENTER = {"id": "in-yard", "kind": "enter", "purpose": "arrivals", "owner": "ops", "severity": "low",
         "match": {}, "zones": {"category": "depot"}}


def start(tmp_path):
    data = tmp_path / "data"
    token = make_token(data)
    srv = Server(data).start()
    srv.token = token
    return srv


def busy_server(tmp_path):
    """A server with a few audited actions behind it (then stopped)."""
    srv = start(tmp_path)
    try:
        srv.ok("POST", "/v1/zones", ZONE)
        srv.ok("POST", "/v1/rules", ENTER)
        srv.ok("POST", "/v1/entities", {"id": "truck-1", "kind": "truck"})
        srv.ok("POST", "/v1/silences", {"matchers": {"rule": "in-yard"}, "duration": "1h", "comment": "test"})
        srv.ok("POST", "/v1/events", '{"entity":"truck-1","time":1000,"type":"position","lon":0.5,"lat":0.5}\n')
        srv.ok("GET", "/v1/entities/truck-1/timeline")
        v = srv.ok("GET", "/v1/audit/verify")
        assert v["ok"] and v["records"] >= 7
        actions = [r["action"] for r in srv.ok("GET", "/v1/audit?limit=1000")["records"]]
        assert actions[:2] == ["token.create", "server.start"]
        for a in ["zone.put", "rule.create", "entity.put", "silence.create", "entity.timeline"]:
            assert a in actions
        # Entities appear only by pseudonym.
        assert "truck-1" not in json.dumps(srv.ok("GET", "/v1/audit?limit=1000"))
    finally:
        srv.stop()
    return srv.data


def verify(data):
    code, out, err = run("audit", "verify", "--data", data)
    return code, out + err


@pytest.mark.parametrize("tamper,first_bad,words", [
    ("modify", 3, "modified"),
    ("delete", 3, "missing"),
    ("insert", 3, "modified"),
    ("swap", 3, "modified"),
    ("truncate", None, "deleted from the end"),
])
def test_tampering_is_detected_and_named(tmp_path, tamper, first_bad, words):
    data = busy_server(tmp_path)
    code, msg = verify(data)
    assert code == 0 and "OK" in msg
    copy = tmp_path / "tampered"
    shutil.copytree(data, copy)
    db = sqlite3.connect(copy / "tripline.sqlite")
    rows = db.execute("SELECT seq, at, actor, action, target, detail, prev, hash FROM audit ORDER BY seq").fetchall()
    last = rows[-1][0]
    if tamper == "modify":
        db.execute("UPDATE audit SET actor = 'someone-else' WHERE seq = 3")
    elif tamper == "delete":
        db.execute("DELETE FROM audit WHERE seq = 3")
    elif tamper == "insert":
        # Make room at 3 and put a forged record there.
        db.execute("UPDATE audit SET seq = seq + 1000 WHERE seq >= 3")
        db.execute("UPDATE audit SET seq = seq - 999 WHERE seq >= 1003")
        r = rows[2]
        db.execute("INSERT INTO audit VALUES (3, ?, 'forger', 'rule.delete', 'in-yard', '{}', ?, ?)", (r[1], r[6], r[7]))
    elif tamper == "swap":
        a, b = rows[2], rows[3]
        db.execute("UPDATE audit SET at=?, actor=?, action=?, target=?, detail=?, prev=?, hash=? WHERE seq = 3", b[1:])
        db.execute("UPDATE audit SET at=?, actor=?, action=?, target=?, detail=?, prev=?, hash=? WHERE seq = 4", a[1:])
    elif tamper == "truncate":
        db.execute("DELETE FROM audit WHERE seq = ?", (last,))
    db.commit()
    db.close()
    code, msg = verify(copy)
    assert code == 1, msg
    assert words in msg, msg
    if first_bad is not None:
        assert f"record {first_bad}" in msg, msg
    else:
        assert f"record {last}" in msg, msg
    # The original still verifies.
    assert verify(data)[0] == 0


def test_erasure_leaves_no_trace_and_the_chain_still_verifies(tmp_path):
    secret_id = "vehicle-erase-me-7f3a"
    srv = start(tmp_path)
    try:
        srv.ok("POST", "/v1/zones", ZONE)
        srv.ok("POST", "/v1/rules", {"rules": [ENTER, GATHER]})
        srv.ok("POST", "/v1/entities", {"id": secret_id, "kind": "truck", "tags": {"fleet": "north"}})
        events = [
            {"entity": secret_id, "time": 1000, "type": "position", "lon": 0.5, "lat": 0.5},
            {"entity": "other", "time": 2000, "type": "position", "lon": 0.6, "lat": 0.6},
            {"entity": secret_id, "time": 3000, "type": "position", "lon": 5, "lat": 5, "id": "gps-1"},
            {"entity": "other", "time": 4000, "type": "ping"},
        ]
        srv.ok("POST", "/v1/events", "".join(json.dumps(e) + "\n" for e in events))
        alerts = srv.all_alerts()
        # The gathering alert of the other entity names the erased one in its details and evidence.
        assert any(secret_id in json.dumps(a) and a["rule"] == "crowd" for a in alerts)
        export = srv.ok("GET", f"/v1/entities/{secret_id}/export")
        assert len(export["events"]) == 2 and export["registration"]["id"] == secret_id and export["alerts"]
        out = srv.ok("DELETE", f"/v1/entities/{secret_id}?erase=true")
        assert out["erased_events"] == 2 and out["alerts_pseudonymised"] == 2  # its enter alert and the crowd it joined
        pseudo = out["pseudonym"]
        after = srv.all_alerts()
        assert len(after) == len(alerts) and secret_id not in json.dumps(after)
        assert any(pseudo in json.dumps(a) for a in after)
        assert srv.request("GET", f"/v1/entities/{secret_id}")[0] == 404
        assert srv.ok("GET", f"/v1/entities/{secret_id}/timeline")["events"] == []
        v = srv.ok("GET", "/v1/audit/verify")
        assert v["ok"]
        erasures = [r for r in srv.ok("GET", "/v1/audit?limit=1000")["records"] if r["action"] == "entity.erase"]
        assert erasures and erasures[0]["target"] == pseudo
        # Ingestion goes on.
        srv.ok("POST", "/v1/events", '{"entity":"other","time":5000,"type":"ping"}\n')
    finally:
        srv.stop()
    # No occurrence anywhere in the data folder, in any file, in any encoding we write.
    needle = secret_id.encode()
    for f in srv.data.iterdir():
        assert needle not in f.read_bytes(), f"{f.name} still holds the erased id"
    assert verify(srv.data)[0] == 0


def test_sensitive_tags_are_refused_everywhere_and_nothing_is_stored(tmp_path):
    srv = start(tmp_path)
    try:
        s, _, out = srv.request("POST", "/v1/entities", {"id": "e1", "kind": "truck", "tags": {"health": "x"}})
        assert s == 422 and "health" in out["errors"][0]["message"] and out["errors"][0]["pointer"] == "/tags/health"
        s, _, out = srv.request("POST", "/v1/events", '{"entity":"e2","time":1,"type":"ping","attrs":{"Religion":"x"}}\n')
        assert s == 422 and "religion" in out["errors"][0]["message"].lower() and out["errors"][0]["line"] == 1
        s, _, out = srv.request("POST", "/v1/rules", {**ENTER, "match": {"tags": {"ethnicity": "x"}}})
        assert s == 422 and "ethnicity" in out["errors"][0]["message"]
        s, _, out = srv.request("POST", "/v1/zones", {**ZONE, "properties": {"id": "z", "category": "depot", "politics": "x"}})
        assert s == 422 and "politics" in json.dumps(out["errors"])
        assert srv.ok("GET", "/v1/entities")["entities"] == []
        assert srv.ok("GET", "/v1/rules")["rules"] == []
        assert srv.ok("GET", "/v1/zones")["features"] == []
        assert srv.ok("GET", "/v1/status")["events_arrived"] == 0
    finally:
        srv.stop()
    # An extended list only grows: a key added once stays for that data folder.
    srv2 = Server(srv.data, "--sensitive-tag", "union_member").start()
    srv2.token = srv.token
    srv2.stop()
    srv3 = Server(srv.data).start()
    srv3.token = srv.token
    try:
        s, _, out = srv3.request("POST", "/v1/entities", {"id": "e3", "kind": "truck", "tags": {"union_member": "y"}})
        assert s == 422 and "union_member" in out["errors"][0]["message"]
    finally:
        srv3.stop()
