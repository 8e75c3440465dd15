"""Accountability as a user (or an attacker with the store: the SQLite file, or the
PostgreSQL database) meets it: the audit chain detects tampering, erasure leaves no trace of
the id, sensitive tags are refused."""
import json
import pathlib
import shutil
import sqlite3

import pytest

from conftest import PG, copy_store, log_lines, run, store_exec, store_files, store_rows
from server import Server, canonical, make_token

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
    copy_store(data, copy)
    rows = store_rows(copy, "SELECT seq, at, actor, action, target, detail, prev, hash FROM audit ORDER BY seq")
    rows = [(int(r[0]), int(r[1]), *r[2:]) for r in rows]
    last = rows[-1][0]
    cols = "at=?, actor=?, action=?, target=?, detail=?, prev=?, hash=?"
    if tamper == "modify":
        sql = [("UPDATE audit SET actor = 'someone-else' WHERE seq = 3", ())]
    elif tamper == "delete":
        sql = [("DELETE FROM audit WHERE seq = 3", ())]
    elif tamper == "insert":
        # Make room at 3 and put a forged record there (on PostgreSQL also in the stored
        # order, the pos column, as a careful forger would).
        r = rows[2]
        if PG:
            sql = [("UPDATE audit SET seq = seq + 1000, pos = pos + 1000 WHERE seq >= 3", ()),
                   ("UPDATE audit SET seq = seq - 999, pos = pos - 999 WHERE seq >= 1003", ()),
                   ("INSERT INTO audit(pos, seq, at, actor, action, target, detail, prev, hash) VALUES ((SELECT pos FROM audit WHERE seq = 4) - 1, 3, ?, 'forger', 'rule.delete', 'in-yard', '{}', ?, ?)", (r[1], r[6], r[7]))]
        else:
            sql = [("UPDATE audit SET seq = seq + 1000 WHERE seq >= 3", ()),
                   ("UPDATE audit SET seq = seq - 999 WHERE seq >= 1003", ()),
                   ("INSERT INTO audit(seq, at, actor, action, target, detail, prev, hash) VALUES (3, ?, 'forger', 'rule.delete', 'in-yard', '{}', ?, ?)", (r[1], r[6], r[7]))]
    elif tamper == "swap":
        a, b = rows[2], rows[3]
        sql = [(f"UPDATE audit SET {cols} WHERE seq = 3", tuple(b[1:])), (f"UPDATE audit SET {cols} WHERE seq = 4", tuple(a[1:]))]
    elif tamper == "truncate":
        sql = [("DELETE FROM audit WHERE seq = ?", (last,))]
    store_exec(copy, sql)
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
    for f in store_files(srv.data):
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


FREQ = {"id": "logins", "kind": "frequency", "purpose": "brute force", "owner": "fraud", "severity": "medium",
        "match": {}, "count": 3, "window": "5m", "event": {"type": "login_failed"}}


def test_explain_stats_and_backtest(tmp_path):
    srv = start(tmp_path)
    try:
        srv.ok("POST", "/v1/rules", FREQ)
        ev = ['{"entity":"acct-1","time":%d,"type":"login_failed"%s}' % (t, extra)
              for t, extra in [(60000, ""), (120000, ',"id":"L-2"'), (180000, ""), (600000, "")]]
        srv.ok("POST", "/v1/events", "\n".join(ev) + "\n")
        srv.ok("POST", "/v1/watermark", {"until": 900000})
        alerts = srv.all_alerts()
        assert [a["state"] for a in alerts] == ["firing", "resolved", "firing", "resolved"][:len(alerts)] and alerts
        x = srv.ok("GET", f"/v1/alerts/{alerts[0]['id']}/explain")
        assert x["rule"]["version"] == 1 and x["rule"]["text"]["count"] == 3
        assert x["window"] == {"from_exclusive": "1969-12-31T23:58:00.000Z", "to": "1970-01-01T00:03:00.000Z"}
        assert "3 login_failed events in the 5m up to" in x["explanation"]
        assert [e["id"] for e in x["evidence"]] == ["acct-1#1", "L-2", "acct-1#3"]
        assert [json.loads(json.dumps(e["event"]))["time"] for e in x["evidence"]] == [60000, 120000, 180000]
        # Feedback feeds the rule's stats.
        srv.ok("POST", f"/v1/alerts/{alerts[0]['id']}/feedback", {"verdict": "useful"})
        st = srv.ok("GET", "/v1/rules/logins/stats")
        assert st["firings"] == 1 and st["resolutions"] == 1 and st["precision"] == 1.0
        assert st["median_seconds_to_first_feedback"] is not None
        # Backtest a stricter draft over the stored history: it would not have fired.
        b = srv.ok("POST", "/v1/rules/backtest", {"rule": {**FREQ, "count": 4}, "until": 900000})
        assert b["count"] == 0 and b["current"]["count"] == 2 and len(b["diff"]["removed"]) == 2 and b["events_scanned"] == 4
        # A looser one as YAML text, over uploaded events.
        yaml = "id: logins\nkind: frequency\npurpose: p\nowner: o\nseverity: low\nmatch: {}\ncount: 2\nwindow: 5m\nevent: {type: login_failed}\n"
        b = srv.ok("POST", "/v1/rules/backtest", {"rule": yaml, "events": "\n".join(ev[:2]) + "\n"})
        assert b["count"] == 1 and b["events_scanned"] == 2
        actions = [r["action"] for r in srv.ok("GET", "/v1/audit?limit=1000")["records"]]
        assert "alert.explain" in actions and actions.count("rule.backtest") == 2
    finally:
        srv.stop()


def test_rules_expire_by_default_and_can_be_renewed(tmp_path):
    srv = start(tmp_path)
    try:
        srv.ok("POST", "/v1/rules", FREQ)
        rule = srv.ok("GET", "/v1/rules/logins")
        assert rule["expires"] is not None and rule["status"] == "active"
        # Posting the same text again is no new version, although the expiry was defaulted.
        assert srv.ok("POST", "/v1/rules", FREQ)["rules"][0]["changed"] is False
        s, _, err = srv.request("POST", "/v1/rules", {**FREQ, "id": "forever", "expires": "2099-01-01T00:00:00Z"})
        assert s == 422 and err["errors"][0]["pointer"] == "/expires" and "longest lifetime" in err["errors"][0]["message"]
        # A rule that expires in event time: status expired, audited, renewable.
        srv.ok("PUT", "/v1/rules/logins", {**FREQ, "expires": "1970-01-01T00:10:00Z"})
        srv.ok("POST", "/v1/events", '{"entity":"a","time":700000,"type":"ping"}\n')
        assert srv.ok("GET", "/v1/rules/logins")["status"] == "expired"
        exp = [r for r in srv.ok("GET", "/v1/audit?limit=1000")["records"] if r["action"] == "rule.expire"]
        assert len(exp) == 1 and exp[0]["target"] == "logins" and exp[0]["detail"]["version"] == 2
        srv.ok("PUT", "/v1/rules/logins", FREQ)
        r = srv.ok("GET", "/v1/rules/logins")
        assert r["status"] == "active" and r["version"] == 3
    finally:
        srv.stop()


def test_replay_explain(tmp_path):
    ex = pathlib.Path(__file__).resolve().parents[2] / "examples"
    code, out, err = run("replay", "--zones", ex / "zones.geojson", "--entities", ex / "entities.ndjson", "--rules", ex / "rules.yaml",
                         "--allowed-lateness", "10m", "--explain", ex / "events.ndjson")
    assert code == 0, err
    alerts = [json.loads(l) for l in out.splitlines()]
    speed = [a for a in alerts if a["rule"] == "truck-speeding"][0]
    assert speed["explain"]["rule"]["max_kmh"] > 0 and "km/h" in speed["explain"]["sentence"]
    assert [e["entity"] for e in speed["explain"]["evidence_events"]] == [speed["key"]["entity"]] * 2


def test_a_backtest_of_the_current_rule_equals_the_stored_alerts(tmp_path):
    """The stored log's #advance records (operator watermark advances, idle advances) are
    replayed by a backtest, so its alerts are what the live engine stored."""
    srv = start(tmp_path)
    try:
        quiet = {"id": "quiet", "kind": "absence", "purpose": "p", "owner": "o", "severity": "low",
                 "match": {}, "for": "10m"}
        srv.ok("POST", "/v1/rules", quiet)
        srv.ok("POST", "/v1/events", '{"entity":"s1","time":60000,"type":"ping"}\n{"entity":"s2","time":120000,"type":"ping"}\n')
        srv.ok("POST", "/v1/watermark", {"until": 1_000_000})   # both go silent: two firings
        srv.ok("POST", "/v1/events", '{"entity":"s1","time":1_100_000,"type":"ping"}\n'.replace("_", ""))  # s1 resolves
        srv.ok("POST", "/v1/watermark", {"until": 2_000_000})   # s1 silent again
        stored = [canonical(a) for a in srv.all_alerts()]
        assert [(a["key"]["entity"], a["state"]) for a in stored] == \
            [("s1", "firing"), ("s2", "firing"), ("s1", "resolved"), ("s1", "firing")]
        b = srv.ok("POST", "/v1/rules/backtest", {"rule": quiet})
        assert b["count"] == len(stored)
        assert sorted(json.dumps(a, sort_keys=True) for a in b["alerts"]) == sorted(json.dumps(a, sort_keys=True) for a in stored)
        assert b["diff"]["added"] == [] and b["diff"]["removed"] == []
    finally:
        srv.stop()


def token_hits(data: bytes, ident: str):
    """Occurrences of ident as a token (not inside a longer word) in raw bytes."""
    import re
    word = rb"[A-Za-z0-9\x80-\xff]"
    return re.findall(rb"(?<!" + word + rb")" + re.escape(ident.encode()) + rb"(?!" + word + rb")", data)


def test_erasure_reaches_other_entities_events_and_keeps_counterparts_consistent(tmp_path):
    """Accounts that pay each other: after account-2 is erased, no file of the data folder
    names it (raw or JSON-escaped), other accounts' counterparts and attrs carry its
    pseudonym, account-20 is left alone, and the rebuilt engine gives what a replay of the
    rewritten log gives."""
    srv = start(tmp_path)
    novelty = {"id": "new-payees", "kind": "novelty", "purpose": "p", "owner": "o", "severity": "low",
               "match": {"kind": "account"}, "count": 2, "window": "1h", "lookback": "7d"}
    freq = {"id": "pays", "kind": "frequency", "purpose": "p", "owner": "o", "severity": "low",
            "match": {"kind": "account"}, "count": 2, "window": "1h", "event": {"type": "contact"}}
    rules = {"rules": [novelty, freq]}
    try:
        srv.ok("POST", "/v1/rules", rules)
        srv.ok("POST", "/v1/entities", [
            {"id": "account-1", "kind": "account", "tags": {"parent": "account-2"}},
            {"id": "account-2", "kind": "account"},
            {"id": "account-20", "kind": "account"},
        ])
        before = [
            {"entity": "account-1", "time": 1000, "type": "contact", "counterpart": "internal:account-2", "attrs": {"memo": "refund to account-2/x"}},
            {"entity": "account-2", "time": 2000, "type": "contact", "counterpart": "account-1"},
            {"entity": "account-20", "time": 3000, "type": "contact", "counterpart": "account-2"},
            {"entity": "account-20", "time": 4000, "type": "contact", "counterpart": "account-20"},
            {"entity": "account-1", "time": 5000, "type": "contact", "counterpart": "acc\\u006funt-2"},
            {"entity": "account-2", "time": 6000, "type": "contact", "counterpart": "account-20"},
            {"entity": "clock", "time": 6500, "type": "ping"},   # completes the alerts of 6000
        ]
        body = "".join(json.dumps(e).replace("\\\\u006f", "\\u006f") + "\n" for e in before)
        srv.ok("POST", "/v1/events", body)
        out = srv.ok("DELETE", "/v1/entities/account-2?erase=true")
        pseudo = out["pseudonym"]
        assert out["erased_events"] == 2
        after = [
            {"entity": "account-1", "time": 7000, "type": "contact", "counterpart": "internal:" + pseudo},
            {"entity": "account-1", "time": 8000, "type": "contact", "counterpart": "fresh-payee"},
            {"entity": "account-20", "time": 9000, "type": "contact", "counterpart": pseudo},
            {"entity": "account-20", "time": 10000, "type": "contact", "counterpart": "another"},
        ]
        srv.ok("POST", "/v1/events", "".join(json.dumps(e) + "\n" for e in after))
        srv.ok("POST", "/v1/watermark", {"until": 20000})
        served = [canonical(a) for a in srv.all_alerts()]
        assert any(a["key"]["entity"] == pseudo for a in served), "account-2's own alerts stay, pseudonymised"
        # The rewritten log, as stored.
        lines = log_lines(srv.data)
        assert any(f'"internal:{pseudo}"' in l for l in lines)
        assert any(f"refund to {pseudo}/x" in l for l in lines)
        assert sum(l.startswith("#erased") for l in lines) == 2
    finally:
        srv.stop()
    # No file names account-2 as a token, raw or escaped; account-20 is still there.
    seen20 = 0
    for f in store_files(srv.data):
        raw = f.read_bytes()
        assert not token_hits(raw, "account-2"), f"{f.name} still holds account-2"
        assert b"acc\\u006funt-2" not in raw, f"{f.name} holds an escaped account-2"
        seen20 += len(token_hits(raw, "account-20"))
    assert seen20 > 0, "account-20 must be left alone"
    # A replay of the rewritten log (and what came after) gives the alerts of the others.
    ev = tmp_path / "rewritten.ndjson"
    ev.write_text("".join(l + "\n" for l in lines if not l.startswith("#")))
    rf = tmp_path / "rules.json"
    rf.write_text(json.dumps(rules))
    ents = tmp_path / "entities.ndjson"
    ents.write_text("".join(json.dumps(e) + "\n" for e in [
        {"id": "account-1", "kind": "account", "tags": {"parent": pseudo}}, {"id": "account-20", "kind": "account"}]))
    code, stdout, err = run("replay", "--entities", ents, "--rules", rf, "--until", 20000, ev)
    assert code == 0, err
    replayed = [json.loads(l) for l in stdout.splitlines()]
    others = [a for a in served if a["key"]["entity"] != pseudo]
    key = lambda a: json.dumps(a, sort_keys=True)
    assert sorted(map(key, others)) == sorted(map(key, replayed))
    assert others, "the other accounts' rules fired"
