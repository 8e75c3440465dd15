"""Zone edits on a live server (docs/rules.md, "Zone edits"): moving a zone and deleting one
give exit and enter alerts at the change's time, with the zone's version in the details and
the explanation; a firing dwell resolves; a zone posted again unchanged gives nothing; a
restart (which rebuilds the engine from the log) repeats nothing; the stream goes on."""
import json
from datetime import datetime

from server import Server, make_token

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def square(zid, cat, x0, x1):
    return {"type": "Feature", "properties": {"id": zid, "category": cat},
            "geometry": {"type": "Polygon", "coordinates": [[[x0, 50.0], [x1, 50.0], [x1, 50.02], [x0, 50.02], [x0, 50.0]]]}}


RULES = """rules:
  - {id: enter, kind: enter, purpose: p, owner: o, severity: low, match: {}}
  - {id: exit, kind: exit, purpose: p, owner: o, severity: low, match: {}}
  - {id: dwell, kind: dwell, purpose: p, owner: o, severity: low, match: {}, min: 5s}
"""


def started(data, token):
    """A server on the data folder, with the folder's admin token."""
    srv = Server(data).start()
    srv.token = token
    return srv


def positions(rows):
    return "".join(json.dumps({"entity": e, "time": T0 + s * 1000, "type": "position", "lon": x, "lat": 50.01}) + "\n" for e, s, x in rows)


def summary(alerts):
    out = []
    for a in alerts:
        t = int(datetime.fromisoformat(a["time"].replace("Z", "+00:00")).timestamp() * 1000)
        s = f'{a["rule"]} {a["state"]} {(t - T0) // 1000}s {a["key"]["entity"]} {a["key"]["zone"]} {",".join(a["evidence"])}'
        d = a["details"]
        if "zone_edit" in d:
            s += f' {d["zone_edit"][0]} v{int(d["zone_version"])}'
        out.append(s)
    return out


def test_moving_and_deleting_zones_on_a_live_server(tmp_path):
    data = tmp_path / "data"
    token = make_token(data)
    srv = started(data, token)
    try:
        srv.ok("POST", "/v1/zones", {"type": "FeatureCollection", "features": [square("A", "depot", 10.00, 10.02), square("C", "port", 10.20, 10.22)]})
        srv.ok("POST", "/v1/rules", RULES, content_type="application/yaml")
        srv.ok("POST", "/v1/events", positions([("t1", 0, 10.01), ("t2", 0, 10.04), ("t3", 0, 10.21),
                                                 ("t1", 10, 10.01), ("t2", 10, 10.04), ("t3", 10, 10.21)]),
               content_type="application/x-ndjson")
        before = summary(srv.all_alerts())
        assert before == ["enter firing 0s t1 A t1#1", "enter firing 0s t3 C t3#1",
                          "dwell firing 5s t1 A t1#1", "dwell firing 5s t3 C t3#1"], before

        assert srv.request("GET", "/v1/zones/A")[1]["ETag"] == '"1"'
        # A moves east, away from t1 and over t2: at the change (10 s), t1 exits (its dwell
        # resolves) and t2 enters; version 2 of A.
        srv.ok("PUT", "/v1/zones/A", square("A", "depot", 10.03, 10.05))
        after_move = summary(srv.all_alerts())[len(before):]
        # On the moved A, t2 has been inside since 0 s: its dwell is firing, from the change.
        assert after_move == ["dwell resolved 10s t1 A t1#2 updated v2", "dwell firing 10s t2 A t2#1 updated v2",
                              "enter firing 10s t2 A t2#2 updated v2", "exit firing 10s t1 A t1#2 updated v2"], after_move
        # The same zone again: nothing changed, no version, no alert.
        srv.ok("PUT", "/v1/zones/A", square("A", "depot", 10.03, 10.05))
        # The zone's current version is its ETag: 2 still.
        assert srv.request("GET", "/v1/zones/A")[1]["ETag"] == '"2"'
        # C is deleted: t3 exits it (the deletion is version 2 of C).
        srv.ok("DELETE", "/v1/zones/C")
        alerts = srv.all_alerts()
        after_delete = summary(alerts)[len(before) + len(after_move):]
        assert after_delete == ["dwell resolved 10s t3 C t3#2 deleted v2", "exit firing 10s t3 C t3#2 deleted v2"], after_delete
        # The explanation says it was the zone, not the entity, that moved.
        exit_t3 = next(a for a in alerts if a["rule"] == "exit" and a["key"]["zone"] == "C")
        ex = srv.ok("GET", f'/v1/alerts/{exit_t3["id"]}/explain')
        assert "the zone was deleted (version 2)" in json.dumps(ex), ex
        # C created again continues its versions.
        srv.ok("POST", "/v1/zones", square("C", "port", 10.20, 10.22))
        recreated = summary(srv.all_alerts())[len(alerts):]
        assert recreated == ["dwell firing 10s t3 C t3#1 created v3", "enter firing 10s t3 C t3#2 created v3"], recreated
        assert srv.request("GET", "/v1/zones/C")[1]["ETag"] == '"3"'
        count = len(srv.all_alerts())
    finally:
        srv.stop()

    # A restart rebuilds the engine from the log on the current zones: nothing is repeated,
    # and the stream goes on on the new zones (t1 enters the moved A at 16 s, dwells from
    # there; t2 leaves it, resolving the dwell that fired at the change).
    srv = started(data, token)
    try:
        assert len(srv.all_alerts()) == count
        srv.ok("POST", "/v1/events", positions([("t2", 16, 10.10), ("t1", 16, 10.04)]), content_type="application/x-ndjson")
        srv.ok("POST", "/v1/watermark", {"until": T0 + 30_000})
        rest = summary(srv.all_alerts())[count:]
        assert rest == ["dwell resolved 16s t2 A t2#3", "enter firing 16s t1 A t1#3", "exit firing 16s t2 A t2#3",
                        "dwell firing 21s t1 A t1#3"], rest
    finally:
        srv.stop()


GATHER = """rules:
  - {id: crowd, kind: gathering, purpose: p, owner: o, severity: low, match: {}, zones: {category: depot}, min_count: 2, window: 10m}
"""


def crowd_summary(alerts):
    out = []
    for a in alerts:
        t = int(datetime.fromisoformat(a["time"].replace("Z", "+00:00")).timestamp() * 1000)
        d = a["details"]
        s = f'{a["rule"]} {a["state"]} {(t - T0) // 1000}s {a["key"]["zone"]} n={int(d["count"])} {",".join(d["entities"])} ev={",".join(a["evidence"])}'
        if "zone_edit" in d:
            s += f' {d["zone_edit"][0]} v{int(d["zone_version"])}'
        out.append(s)
    return out


def test_a_zone_edited_under_a_crowd_fires_and_resolves_its_gathering(tmp_path):
    """Two trucks park east of depot G. G grown over them: the gathering fires at the change,
    with them as members and evidence. G moved away: it resolves at that change. A zone of
    another category drawn over them gives nothing. A restart repeats nothing."""
    data = tmp_path / "data"
    token = make_token(data)
    srv = started(data, token)
    try:
        srv.ok("POST", "/v1/zones", square("G", "depot", 10.00, 10.02))
        srv.ok("POST", "/v1/rules", GATHER, content_type="application/yaml")
        srv.ok("POST", "/v1/events", positions([("t1", 0, 10.03), ("t2", 1, 10.035), ("t3", 2, 10.01), ("t1", 60, 10.03), ("t2", 61, 10.035)]),
               content_type="application/x-ndjson")
        assert srv.all_alerts() == []
        # G grown east over t1 and t2 (t3 inside since 2 s): three in the crowd at 61 s.
        srv.ok("PUT", "/v1/zones/G", square("G", "depot", 10.00, 10.04))
        grown = crowd_summary(srv.all_alerts())
        assert grown == ["crowd firing 61s G n=3 t1,t2,t3 ev=t3#1,t1#2,t2#2 updated v2"], grown
        ex = srv.ok("GET", f'/v1/alerts/{srv.all_alerts()[0]["id"]}/explain')
        assert "the zone was updated (version 2)" in json.dumps(ex) and "entities counted" in json.dumps(ex), ex
        # A port over the trucks: not a depot, nothing.
        srv.ok("POST", "/v1/zones", square("P", "port", 10.025, 10.04))
        assert len(srv.all_alerts()) == 1
        # G moved west, away from all three: the crowd resolves at the change.
        srv.ok("PUT", "/v1/zones/G", square("G", "depot", 9.90, 9.92))
        moved = crowd_summary(srv.all_alerts())[1:]
        assert moved == ["crowd resolved 61s G n=0  ev= updated v3"], moved
        count = len(srv.all_alerts())
    finally:
        srv.stop()
    srv = started(data, token)
    try:
        assert len(srv.all_alerts()) == count
        # G back over the trucks, after a restart: fires again, version 4.
        srv.ok("PUT", "/v1/zones/G", square("G", "depot", 10.00, 10.04))
        again = crowd_summary(srv.all_alerts())[count:]
        assert again == ["crowd firing 61s G n=3 t1,t2,t3 ev=t3#1,t1#2,t2#2 updated v4"], again
    finally:
        srv.stop()
