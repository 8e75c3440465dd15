"""`enter_after` and `exit_margin_m` through the CLI and the server: a jittering trace by the
edge of a depot, worked out by hand (docs/rules.md has the same table); the server gives the
alerts of replay, echoes the fields, and refuses bad values with the field's pointer."""
import json

from conftest import run
from server import Server, canonical, make_token

ZONES = {"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {"id": "sq", "category": "depot"},
     "geometry": {"type": "Polygon", "coordinates": [[[10.0, 50.0], [10.02, 50.0], [10.02, 50.02], [10.0, 50.02], [10.0, 50.0]]]}},
]}

RULES = """rules:
  - {id: enter-plain, kind: enter, purpose: p, owner: o, severity: low, match: {}}
  - {id: exit-plain, kind: exit, purpose: p, owner: o, severity: low, match: {}}
  - {id: enter-3, kind: enter, purpose: p, owner: o, severity: low, match: {}, enter_after: 3}
  - {id: enter-30s, kind: enter, purpose: p, owner: o, severity: low, match: {}, enter_after: 30s}
  - {id: exit-100m, kind: exit, purpose: p, owner: o, severity: low, match: {}, exit_margin_m: 100}
  - {id: dwell-100m, kind: dwell, purpose: p, owner: o, severity: low, match: {}, min: 45s, exit_margin_m: 100}
"""

# (seconds, longitude) at latitude 50.01: 10.0207 is 50 m east of the edge, 10.0235 is 250 m.
TRACE = [(0, 10.01), (10, 10.0207), (20, 10.019), (30, 10.0195), (40, 10.0207), (50, 10.0235),
         (60, 10.01), (70, 10.01), (80, 10.01), (90, 10.01), (100, 10.01), (110, 10.03)]
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def events():
    return "".join(json.dumps({"entity": "t1", "time": T0 + s * 1000, "type": "position", "lon": lon, "lat": 50.01}) + "\n" for s, lon in TRACE)


def summary(alerts):
    from datetime import datetime
    out = []
    for a in alerts:
        t = int(datetime.fromisoformat(a["time"].replace("Z", "+00:00")).timestamp() * 1000)
        out.append(f'{a["rule"]} {a["state"]} {(t - T0) // 1000}s {",".join(a["evidence"])}')
    return out


EXPECTED = [
    "enter-plain firing 0s t1#1", "exit-plain firing 10s t1#2", "enter-plain firing 20s t1#3",
    "exit-plain firing 40s t1#5",
    # The plain membership enters at 0 s; with the margin the visit runs 0-50 s (45 s dwell fires at 45 s).
    "dwell-100m firing 45s t1#1",
    "dwell-100m resolved 50s t1#6", "exit-100m firing 50s t1#6",
    "enter-plain firing 60s t1#7",
    "enter-3 firing 80s t1#7,t1#9",
    "enter-30s firing 90s t1#7,t1#10",
    "dwell-100m firing 105s t1#7",
    "dwell-100m resolved 110s t1#12", "exit-100m firing 110s t1#12", "exit-plain firing 110s t1#12",
]


def test_replay_and_serve_steady_a_jittering_trace(tmp_path):
    (tmp_path / "zones.geojson").write_text(json.dumps(ZONES))
    (tmp_path / "rules.yaml").write_text(RULES)
    (tmp_path / "events.ndjson").write_text(events())
    until = T0 + 200_000
    code, out, err = run("replay", "--zones", tmp_path / "zones.geojson", "--rules", tmp_path / "rules.yaml",
                         "--until", until, tmp_path / "events.ndjson")
    assert code == 0, err
    replayed = [json.loads(l) for l in out.splitlines()]
    assert sorted(summary(replayed)) == sorted(EXPECTED)

    data = tmp_path / "data"
    token = make_token(data)
    srv = Server(data).start()
    srv.token = token
    try:
        srv.ok("POST", "/v1/zones", json.dumps(ZONES), content_type="application/geo+json")
        srv.ok("POST", "/v1/rules", RULES, content_type="application/yaml")
        rules = {r["id"]: r["rule"] for r in srv.ok("GET", "/v1/rules")["rules"]}
        assert rules["enter-3"]["enter_after"] == 3 and rules["enter-30s"]["enter_after"] == "30s"
        assert rules["exit-100m"]["exit_margin_m"] == 100 and "enter_after" not in rules["exit-100m"]
        assert "enter_after" not in rules["enter-plain"] and "exit_margin_m" not in rules["enter-plain"]
        srv.ok("POST", "/v1/events", events(), content_type="application/x-ndjson")
        srv.ok("POST", "/v1/watermark", {"until": until})
        assert [canonical(a) for a in srv.all_alerts()] == replayed

        # Bad values: 422, the field's pointer, nothing changed.
        for body, pointer, words in [
            ("{id: x, kind: exit, purpose: p, owner: o, severity: low, match: {}, exit_margin_m: -5}", "/exit_margin_m", "from 0 to 100000"),
            ("{id: x, kind: enter, purpose: p, owner: o, severity: low, match: {}, enter_after: 0}", "/enter_after", "at least 1"),
            ("{id: x, kind: speed, purpose: p, owner: o, severity: low, match: {}, max_kmh: 90, exit_margin_m: 5}", "/exit_margin_m", "applies only to enter, exit, dwell, gathering and sequence"),
        ]:
            s, _, err = srv.request("POST", "/v1/rules", body, content_type="application/yaml")
            assert s == 422, err
            assert err["errors"][0]["pointer"].endswith(pointer) and words in err["errors"][0]["message"], err
        assert len(srv.ok("GET", "/v1/rules")["rules"]) == 6
    finally:
        srv.stop()
