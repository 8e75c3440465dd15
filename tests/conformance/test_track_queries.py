"""`intersects` queries over each entity's recent track, against shapely 2 (GEOS): the track
is every position the server keeps (`--track-points 6` here: the last six by event time, late
fixes in their place), or the last N, or those within a duration of the newest, as a line in
lon/lat cut at the antimeridian where a segment goes the short way round. Real country
polygons with thousands of vertices (Natural Earth 1:110m, densified), boxes (one across the
antimeridian), a zone, circles (against dense sampling), paging, filters, errors and the audit
record are checked."""
import json
import math
import pathlib
import random
import urllib.parse

import numpy as np
import pytest
from shapely.geometry import LineString, MultiLineString, Point, box, shape

from server import Server, make_token

ROOT = pathlib.Path(__file__).resolve().parents[2]
COUNTRIES = ROOT / "Benchmarks" / "data" / "countries-110m-dense.geojson"
KEEP = 6
R = 6371008.8


def haversine(lon1, lat1, lon2, lat2):
    p1, p2 = math.radians(lat1), math.radians(lat2)
    s1 = math.sin((p2 - p1) / 2)
    s2 = math.sin(math.radians(lon2 - lon1) / 2)
    return (2 * R) * math.asin(min(1.0, math.sqrt((s1 * s1) + ((math.cos(p1) * math.cos(p2)) * (s2 * s2)))))


STEPS = np.arange(401)


def haversine_np(lon1, lat1, lon2, lat2):
    """`haversine` over arrays of points."""
    p1, p2 = math.radians(lat1), np.radians(lat2)
    s1 = np.sin((p2 - p1) / 2)
    s2 = np.sin(np.radians(lon2 - lon1) / 2)
    return (2 * R) * np.arcsin(np.minimum(1.0, np.sqrt((s1 * s1) + ((math.cos(p1) * np.cos(p2)) * (s2 * s2)))))


def line(pts):
    """The reference geometry of a track: a point, or segments with antimeridian cuts."""
    if len(pts) == 1:
        return Point(pts[0])
    parts = []
    for (x1, y1), (x2, y2) in zip(pts, pts[1:]):
        if abs(x2 - x1) <= 180:
            parts.append([(x1, y1), (x2, y2)])
            continue
        edge = 180.0 if x1 > 0 else -180.0
        x2s = x2 + 360 if x1 > 0 else x2 - 360
        ym = y1 + (y2 - y1) * ((edge - x1) / (x2s - x1))
        parts.append([(x1, y1), (edge, ym)])
        parts.append([(-edge, ym), (x2, y2)])
    return MultiLineString(parts) if len(parts) > 1 else LineString(parts[0])


@pytest.fixture(scope="module")
def tracks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tracks")
    rng = random.Random(23)
    countries = json.loads(COUNTRIES.read_text())["features"]
    # Lateness of a day: every out-of-order fix is applied (none is late), so that the track is
    # the reference's "every position received, by time".
    srv = Server(tmp / "d", "--max-future", "off", "--track-points", KEEP, "--allowed-lateness", "1d")
    srv.token = make_token(tmp / "d")
    srv.start()
    try:
        received = {}  # entity -> [(time, arrival, lon, lat)]
        lines = []
        arrival = 0
        for i in range(1500):
            eid = f"t-{i:04d}"
            n = 1 + rng.randrange(9)
            if i % 5 == 0:  # round the antimeridian (Fiji, Chukotka)
                cx, cy, spread = 180.0, rng.uniform(-25, 70), 4
            else:  # Europe and round it
                cx, cy, spread = rng.uniform(-10, 40), rng.uniform(35, 65), 3
            t0 = 1_800_000_000_000 + rng.randrange(0, 3_600_000)
            for k in range(n):
                lon = cx + rng.uniform(-spread, spread)
                lon = lon - 360 if lon > 180 else lon + 360 if lon < -180 else lon
                lon, lat = round(lon, 6), round(cy + rng.uniform(-spread, spread), 6)
                # Mostly in order, some late (older than positions already sent).
                t = t0 + k * 60_000 - (rng.randrange(0, 200_000) if rng.random() < 0.25 else 0)
                lines.append((arrival, {"entity": eid, "time": t, "type": "position", "lon": lon, "lat": lat}))
                received.setdefault(eid, []).append((t, arrival, lon, lat))
                arrival += 1
        srv.ok("POST", "/v1/entities", "\n".join(json.dumps({"id": f"t-{i:04d}", "kind": "vessel" if i % 2 else "truck"}) for i in range(1500)),
               content_type="application/x-ndjson")
        # Sent in arrival order, in batches.
        body = [json.dumps(l) for _, l in lines]
        for k in range(0, len(body), 1000):
            srv.ok("POST", "/v1/events", "\n".join(body[k:k + 1000]), content_type="application/x-ndjson")
        yield {"srv": srv, "received": received, "countries": countries}
    finally:
        srv.stop()


def kept(received, span=None):
    """The reference track of each entity: its last KEEP positions by time (ties by arrival),
    then the span: ("points", n) or ("ms", duration)."""
    out = {}
    for e, ps in received.items():
        ps = sorted(ps, key=lambda p: (p[0], p[1]))[-KEEP:]
        if span is not None and span[0] == "points":
            ps = ps[-span[1]:]
        elif span is not None:
            newest = ps[-1][0]
            ps = [p for p in ps if p[0] >= newest - span[1]]
        out[e] = [(p[2], p[3]) for p in ps]
    return out


def pages(srv, method, path, params, body=None, limit=100):
    out, cursor = [], None
    for _ in range(1000):
        p = dict(params, limit=limit)
        if cursor:
            p["cursor"] = cursor
        page = srv.ok(method, path + "?" + urllib.parse.urlencode(p), body)
        out += [e["id"] for e in page["entities"]]
        cursor = page["cursor"]
        if cursor is None:
            return out
    raise AssertionError("too many pages")


def test_tracks_meeting_real_country_polygons_equal_shapely(tracks):
    srv, received, countries = tracks["srv"], tracks["received"], tracks["countries"]
    by_id = {f["properties"]["id"]: f for f in countries}
    chosen = [by_id[c] for c in ["country-FJI", "country-RUS", "country-france", "country-DEU", "country-ITA", "country-norway", "country-POL", "country-ESP"]]
    assert max(sum(len(r) for poly in ([f["geometry"]["coordinates"]] if f["geometry"]["type"] == "Polygon" else f["geometry"]["coordinates"]) for r in poly)
               for f in chosen) > 1000
    checked = met = 0
    for span, param in [(None, {}), (("points", 2), {"track": "2"}), (("points", 1), {"track": "1"}), (("ms", 300_000), {"track": "5m"})]:
        geoms = {e: line(pts) for e, pts in kept(received, span).items()}
        for f in chosen:
            g = shape(f["geometry"])
            want = sorted(e for e, l in geoms.items() if l.intersects(g))
            got = pages(srv, "POST", "/v1/query/intersects", param, f["geometry"], limit=400)
            assert got == want, (f["properties"]["id"], param, sorted(set(got) ^ set(want))[:5])
            checked += 1
            met += len(want)
    assert checked == 32 and met > 500
    # A track with no position covered can still cross: such answers exist in this data.
    g = shape(by_id["country-DEU"]["geometry"])
    crossing = [e for e, pts in kept(received).items() if not any(g.covers(Point(p)) for p in pts) and line(pts).intersects(g)]
    assert crossing, "the data should hold tracks that only cross Germany"


def test_boxes_zones_filters_paging_and_circles(tracks):
    srv, received = tracks["srv"], tracks["received"]
    geoms = {e: line(pts) for e, pts in kept(received).items()}
    for bb in [(5, 45, 15, 55), (175, -20, -175, 0), (-180, -90, 180, 90)]:
        x0, y0, x1, y1 = bb
        ref = box(x0, y0, x1, y1) if x0 <= x1 else box(x0, y0, 180, y1).union(box(-180, y0, x1, y1))
        want = sorted(e for e, l in geoms.items() if l.intersects(ref))
        got = pages(srv, "GET", "/v1/query/intersects", {"bbox": ",".join(map(str, bb))}, limit=97)
        assert got == want, (bb, sorted(set(got) ^ set(want))[:5])
    # A zone, with a kind filter.
    alps = {"type": "Feature", "properties": {"id": "alps", "category": "region"},
            "geometry": {"type": "Polygon", "coordinates": [[[6, 44], [16, 45], [14, 48], [7, 47.5], [6, 44]]]}}
    srv.ok("POST", "/v1/zones", alps, content_type="application/geo+json")
    g = shape(alps["geometry"])
    want = sorted(e for e, l in geoms.items() if l.intersects(g) and int(e[2:]) % 2 == 1)
    got = pages(srv, "GET", "/v1/query/intersects", {"zone": "alps", "kind": "vessel"})
    assert got == want and len(want) > 10
    # The same answers as bare ids, and counted.
    ids = srv.ok("GET", "/v1/query/intersects?zone=alps&kind=vessel&output=ids&limit=10000")
    assert ids["ids"] == want and "entities" not in ids
    c = srv.ok("GET", "/v1/query/intersects?zone=alps&kind=vessel&output=count")
    assert c["count"] == len(want) and c["query"] == "intersects"
    # Circles: wherever the nearest of dense samples along the track is clearly inside or
    # outside the radius, the answer agrees.
    rng = random.Random(5)
    decided = 0
    for _ in range(12):
        cx, cy, r = rng.uniform(0, 30), rng.uniform(40, 60), rng.uniform(20_000, 300_000)
        circle = {"type": "Feature", "properties": {"radius_m": r}, "geometry": {"type": "Point", "coordinates": [cx, cy]}}
        got = set(pages(srv, "POST", "/v1/query/intersects", {}, circle, limit=1000))
        for e, pts in kept(received).items():
            if abs(pts[0][0]) > 90:
                continue
            # The positions and 401 samples along each segment (numpy: the same formula).
            xs, ys = [np.array([p[0] for p in pts])], [np.array([p[1] for p in pts])]
            for (x1, y1), (x2, y2) in zip(pts, pts[1:]):
                xs.append(x1 + (x2 - x1) * STEPS / 400)
                ys.append(y1 + (y2 - y1) * STEPS / 400)
            best = haversine_np(cx, cy, np.concatenate(xs), np.concatenate(ys)).min()
            if best < r * 0.99:
                assert e in got, (e, cx, cy, r)
                decided += 1
            elif best > r * 1.01:
                assert e not in got, (e, cx, cy, r)
                decided += 1
    assert decided > 5000


def test_errors_audit_and_a_server_without_tracks(tracks, tmp_path):
    srv = tracks["srv"]
    for path, needle in [("/v1/query/intersects?bbox=1,2,3,4&track=0", "track=0"),
                         ("/v1/query/intersects?bbox=1,2,3,4&track=soon", "track=soon"),
                         ("/v1/query/intersects", "zone="),
                         ("/v1/query/intersects?bbox=1,2,3", "bbox=1,2,3")]:
        st, _, out = srv.request("GET", path)
        assert st == 400 and needle in out["message"], (path, out)
    st, _, out = srv.request("GET", "/v1/query/intersects?zone=nowhere")
    assert st == 404 and "nowhere" in out["message"]
    st, _, out = srv.request("POST", "/v1/query/intersects", {"type": "LineString", "coordinates": [[0, 0], [1, 1]]})
    assert st == 422 and out["error"] == "invalid_geometry"
    records = [r for r in srv.ok("GET", "/v1/audit?limit=1000")["records"] if r["action"] == "positions.query" and r["target"] == "intersects"]
    assert records and any(r["detail"].get("track") == "5m" for r in records), records[:2]
    # A server keeping no tracks says so.
    bare = Server(tmp_path / "bare", "--track-points", "0")
    bare.token = make_token(tmp_path / "bare")
    bare.start()
    try:
        st, _, out = bare.request("GET", "/v1/query/intersects?bbox=1,2,3,4")
        assert st == 409 and out["error"] == "no_tracks" and "--track-points" in out["message"], out
    finally:
        bare.stop()


def test_the_command_line_client_gives_the_api_answers(tracks):
    from conftest import run
    srv = tracks["srv"]
    remote = ["--url", srv.url, "--token", srv.token]
    want = srv.ok("GET", "/v1/query/intersects?bbox=5,45,15,55&track=3&limit=10000")["entities"]
    code, out, err = run("query", "intersects", "--bbox", "5,45,15,55", "--track", "3", "--limit", "9", "--all", *remote)
    assert code == 0, err
    assert [l.split()[0] for l in out.splitlines()[1:] if not l.startswith("more:")] == [e["id"] for e in want] and len(want) > 9
    code, out, err = run("query", "intersects", "--bbox", "5,45,15,55", "--track", "never", *remote)
    assert code == 1 and "track=never" in err, err
