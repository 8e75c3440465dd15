"""Spec v1.2's haversine, to the bit, against an independent implementation (Python's math,
which calls the same glibc libm): points exactly on a circle's rim are inside, and the
distances in alert details equal the reference."""
import json
import math
import random

from conftest import run

R = 6371008.8


def hav(lon1, lat1, lon2, lat2):
    """The spec's formula in the spec's order (v1.2)."""
    phi1 = lat1 * (math.pi / 180)
    phi2 = lat2 * (math.pi / 180)
    dl = (lon2 - lon1) * (math.pi / 180)
    s1 = math.sin((phi2 - phi1) / 2)
    s2 = math.sin(dl / 2)
    a = (s1 * s1) + ((math.cos(phi1) * math.cos(phi2)) * (s2 * s2))
    return (2 * R) * math.asin(min(1.0, math.sqrt(a)))


def pairs(n, seed):
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        lat = rng.uniform(-89.9, 89.9) if rng.random() < 0.9 else rng.choice([-89.99, 89.99, 0.0, 45.0, -60.0])
        lon = rng.uniform(-179.9, 179.9)
        scale = rng.choice([1e-5, 1e-3, 0.05, 1.0])
        lat2 = max(-90.0, min(90.0, lat + rng.uniform(-scale, scale)))
        lon2 = lon + rng.uniform(-scale, scale)
        if not -180 <= lon2 <= 180:
            continue
        d = hav(lon, lat, lon2, lat2)
        if d <= 0:
            continue
        out.append((lon, lat, lon2, lat2, d))
    return out


def test_points_on_the_rim_are_inside_in_both_orders(tmp_path):
    ps = pairs(10_000, 12)
    features, events = [], []
    for i, (lon, lat, lon2, lat2, d) in enumerate(ps):
        # Centre at the first point, the entity at the second; and the other way round.
        features.append({"type": "Feature", "properties": {"id": f"a{i}", "category": "rim", "radius_m": d},
                         "geometry": {"type": "Point", "coordinates": [lon, lat]}})
        features.append({"type": "Feature", "properties": {"id": f"b{i}", "category": "rim", "radius_m": hav(lon2, lat2, lon, lat)},
                         "geometry": {"type": "Point", "coordinates": [lon2, lat2]}})
        events.append({"entity": f"p{i}", "time": i, "type": "position", "lon": lon2, "lat": lat2})
        events.append({"entity": f"q{i}", "time": i, "type": "position", "lon": lon, "lat": lat})
    (tmp_path / "zones.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    (tmp_path / "events.ndjson").write_text("".join(json.dumps(e) + "\n" for e in events))
    rules = {"rules": [{"id": "rim", "kind": "enter", "purpose": "p", "owner": "o", "severity": "low", "match": {}}]}
    (tmp_path / "rules.json").write_text(json.dumps(rules))
    code, out, err = run("replay", "--zones", tmp_path / "zones.geojson", "--rules", tmp_path / "rules.json", tmp_path / "events.ndjson")
    assert code == 0, err
    entered = {(a["key"]["entity"], a["key"]["zone"]) for a in map(json.loads, out.splitlines())}
    missing = [i for i in range(len(ps)) if (f"p{i}", f"a{i}") not in entered or (f"q{i}", f"b{i}") not in entered]
    assert not missing, f"{len(missing)} of {len(ps)} rim points decided outside, e.g. {ps[missing[0]]}"


def test_distances_in_details_equal_the_reference_to_the_bit(tmp_path):
    ps = pairs(2_000, 13)
    events = []
    for i, (lon, lat, lon2, lat2, d) in enumerate(ps):
        t = i * 10_000
        events.append({"entity": f"a{i}", "time": t, "type": "position", "lon": lon, "lat": lat})
        events.append({"entity": f"b{i}", "time": t + 1, "type": "position", "lon": lon2, "lat": lat2})
        events.append({"entity": f"a{i}", "time": t + 3_600_000 // 1000, "type": "position", "lon": lon2, "lat": lat2})
    (tmp_path / "events.ndjson").write_text("".join(json.dumps(e) + "\n" for e in sorted(events, key=lambda e: e["time"])))
    rules = {"rules": [
        {"id": "near", "kind": "proximity", "purpose": "p", "owner": "o", "severity": "low", "match": {},
         "distance_m": 500_000, "within": "2s"},
        {"id": "fast", "kind": "speed", "purpose": "p", "owner": "o", "severity": "low", "match": {}, "max_kmh": 0},
    ]}
    (tmp_path / "rules.json").write_text(json.dumps(rules))
    code, out, err = run("replay", "--rules", tmp_path / "rules.json", tmp_path / "events.ndjson")
    assert code == 0, err
    alerts = [json.loads(l) for l in out.splitlines()]
    near = {a["key"]["pair"][0]: a["details"]["distance_m"] for a in alerts if a["rule"] == "near" and a["state"] == "firing"}
    fast = {a["key"]["entity"]: a["details"]["distance_m"] for a in alerts if a["rule"] == "fast"}
    checked = 0
    for i, (lon, lat, lon2, lat2, d) in enumerate(ps):
        assert near[f"a{i}"] == d, (i, near[f"a{i}"], d)
        assert fast[f"a{i}"] == hav(lon, lat, lon2, lat2), i
        checked += 1
    assert checked == len(ps)
