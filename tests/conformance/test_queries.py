"""Spatial queries over the latest positions (`/v1/query/nearby`, `/v1/query/within`) against
independent references on the same data: a brute-force haversine scan in Python for nearby and
radius, shapely 2 (GEOS) `covers` for real country polygons with thousands of vertices (Natural
Earth 1:110m, densified), and plain comparisons for boxes and filters. Paging by cursor, the
errors, and the audit records are checked too."""
import json
import math
import pathlib
import random
import urllib.parse

import pytest
from shapely.geometry import Point, shape

from server import Server, make_token

ROOT = pathlib.Path(__file__).resolve().parents[2]
COUNTRIES = ROOT / "Benchmarks" / "data" / "countries-110m-dense.geojson"
R = 6371008.8


def haversine(lon1, lat1, lon2, lat2):
    """Spec 1.2's formula and association."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    s1 = math.sin((p2 - p1) / 2)
    s2 = math.sin(math.radians(lon2 - lon1) / 2)
    a = (s1 * s1) + ((math.cos(p1) * math.cos(p2)) * (s2 * s2))
    return (2 * R) * math.asin(min(1.0, math.sqrt(a)))


def iso(ms):
    return f"2026-03-01T08:{ms // 60000:02d}:{(ms // 1000) % 60:02d}.{ms % 1000:03d}Z"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A server holding 3,000 entities: spread over the world, clustered in Europe, some over
    several moves (the latest counts), with kinds, tags, readings and a numeric attribute."""
    tmp = tmp_path_factory.mktemp("queries")
    rng = random.Random(7)
    countries = json.loads(COUNTRIES.read_text())["features"]
    big = sorted(countries, key=lambda f: -len(json.dumps(f["geometry"])))
    chosen = {f["properties"]["id"]: f for f in big[:6]}
    srv = Server(tmp / "d", "--max-future", "off")
    srv.token = make_token(tmp / "d")
    srv.start()
    zones = {"type": "FeatureCollection", "features": list(chosen.values())}
    srv.ok("POST", "/v1/zones", zones, content_type="application/geo+json")
    kinds = ["truck", "vessel", "meter"]
    entities, latest, temps, speeds = {}, {}, {}, {}
    lines = []
    for i in range(3000):
        eid = f"e-{i:04d}"
        kind = kinds[i % 3]
        tags = {"fleet": "north" if i % 4 == 0 else "south"}
        if i % 7 == 0:
            tags["cargo"] = "hazmat"
        if i % 11 != 0:  # some entities are not in the catalog: kind "unknown"
            entities[eid] = {"id": eid, "kind": kind, "tags": tags}
        t = 0
        for _ in range(1 + rng.randrange(3)):
            if rng.random() < 0.5:
                lon, lat = rng.uniform(-10, 40), rng.uniform(35, 70)
            else:
                lon, lat = rng.uniform(-180, 180), rng.uniform(-85, 85)
            lon, lat = round(lon, 6), round(lat, 6)
            t += rng.randrange(1000, 60000)
            speed = rng.randrange(0, 90)
            lines.append({"entity": eid, "time": iso(t), "type": "position", "lon": lon, "lat": lat, "attrs": {"speed": speed}})
            latest[eid] = (lon, lat)
            speeds[eid] = speed
        if i % 2 == 0:
            v = round(rng.uniform(-5, 20), 1)
            lines.append({"entity": eid, "time": iso(t + 5), "type": "reading", "metric": "temp_c", "value": v})
            temps[eid] = v
    srv.ok("POST", "/v1/entities", "\n".join(json.dumps(e) for e in entities.values()), content_type="application/x-ndjson")
    lines.sort(key=lambda l: l["time"])
    for k in range(0, len(lines), 1000):
        srv.ok("POST", "/v1/events", "\n".join(json.dumps(l) for l in lines[k:k + 1000]), content_type="application/x-ndjson")
    yield {"srv": srv, "latest": latest, "entities": entities, "temps": temps, "speeds": speeds, "zones": chosen, "countries": countries}
    srv.stop()


def pages(srv, path, params, limit):
    """Every page of a query, following cursors; returns the entities and the page count."""
    out, n, cursor = [], 0, None
    while True:
        p = dict(params, limit=limit)
        if cursor:
            p["cursor"] = cursor
        page = srv.ok("GET", path + "?" + urllib.parse.urlencode(p, doseq=True))
        assert page["count"] == len(page["entities"]) <= limit
        out += page["entities"]
        n += 1
        cursor = page["cursor"]
        if cursor is None:
            return out, n
        assert n < 1000


def kind_of(w, eid):
    return w["entities"].get(eid, {}).get("kind", "unknown")


def test_nearby_k_and_radius_equal_a_brute_force_haversine_scan(world):
    srv, latest = world["srv"], world["latest"]
    rng = random.Random(11)
    for q in range(30):
        lon, lat = (rng.uniform(-10, 40), rng.uniform(35, 70)) if q % 2 else (rng.uniform(-180, 180), rng.uniform(-85, 85))
        ranked = sorted(((haversine(lon, lat, x, y), e) for e, (x, y) in latest.items()), key=lambda t: (t[0], t[1]))
        k = rng.choice([1, 10, 25])
        got, _ = pages(srv, "/v1/query/nearby", {"lon": lon, "lat": lat, "k": k}, limit=rng.choice([3, 100]))
        assert [g["id"] for g in got] == [e for _, e in ranked[:k]]
        for g, (d, e) in zip(got, ranked):
            assert g["distance_m"] == pytest.approx(d, rel=1e-12, abs=1e-6)
            assert (g["lon"], g["lat"]) == latest[e] and g["kind"] == kind_of(world, e)
        r = rng.choice([50_000, 400_000, 1_500_000])
        got, n = pages(srv, "/v1/query/nearby", {"lon": lon, "lat": lat, "radius_m": r}, limit=50)
        want = [e for d, e in ranked if d <= r]
        assert [g["id"] for g in got] == want
        assert n == max(1, math.ceil(len(want) / 50))


def test_within_real_country_polygons_equals_shapely_covers(world):
    srv, latest = world["srv"], world["latest"]
    pts = {e: Point(x, y) for e, (x, y) in latest.items()}
    checked = 0
    for zid, f in world["zones"].items():
        g = shape(f["geometry"])
        want = sorted(e for e, p in pts.items() if g.covers(p))
        got, _ = pages(srv, "/v1/query/within", {"zone": zid}, limit=500)
        assert [x["id"] for x in got] == want, zid
        checked += len(want)
    # The same by POSTing the geometry (another country each), with a vertex count in the thousands.
    for f in world["countries"][:40]:
        g = shape(f["geometry"])
        want = sorted(e for e, p in pts.items() if g.covers(p))
        out = srv.ok("POST", "/v1/query/within?limit=10000", f["geometry"])
        assert [x["id"] for x in out["entities"]] == want, f["properties"]["id"]
        checked += len(want)
    assert checked > 300
    # Points on a polygon's boundary and vertices are covered (closed set), as shapely says.
    tri = {"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [0, 10], [0, 0]]]}
    edge = [(0, 0), (5, 5), (5, 0), (10.0000001, 0), (2.5, 2.5)]
    srv.ok("POST", "/v1/events", "\n".join(json.dumps({"entity": f"edge-{i}", "time": "2026-03-01T09:00:00Z", "type": "position", "lon": x, "lat": y})
                                          for i, (x, y) in enumerate(edge)),
           content_type="application/x-ndjson")
    for i, p in enumerate(edge):
        latest[f"edge-{i}"] = p
        world["speeds"][f"edge-{i}"] = None
    out = srv.ok("POST", "/v1/query/within?id=edge-0,edge-1,edge-2,edge-3,edge-4", tri)
    assert [x["id"] for x in out["entities"]] == ["edge-0", "edge-1", "edge-2", "edge-4"]
    assert shape(tri).covers(Point(5, 5)) and not shape(tri).covers(Point(10.0000001, 0))


def test_boxes_including_the_antimeridian_and_filters(world):
    srv, latest, w = world["srv"], world["latest"], world
    for bbox in [(-10, 35, 40, 70), (170, -60, -170, 60), (-180, -90, 180, 90), (5, 50, 5, 50)]:
        x0, y0, x1, y1 = bbox
        def inside(x, y):
            return y0 <= y <= y1 and ((x0 <= x <= x1) if x0 <= x1 else (x >= x0 or x <= x1))
        want = sorted(e for e, (x, y) in latest.items() if inside(x, y))
        got, _ = pages(srv, "/v1/query/within", {"bbox": ",".join(map(str, bbox))}, limit=997)
        assert [g["id"] for g in got] == want, bbox
    europe = {"bbox": "-10,35,40,70"}
    def eu(e):
        x, y = latest[e]
        return -10 <= x <= 40 and 35 <= y <= 70
    cases = [
        ({"kind": "truck,vessel"}, lambda e: kind_of(w, e) in ("truck", "vessel")),
        ({"kind": "unknown"}, lambda e: e not in w["entities"]),
        ({"tag": ["cargo:hazmat", "fleet:north"]}, lambda e: w["entities"].get(e, {}).get("tags", {}).get("cargo") == "hazmat"
            and w["entities"][e]["tags"]["fleet"] == "north"),
        ({"tag": "cargo"}, lambda e: "cargo" in w["entities"].get(e, {}).get("tags", {})),
        ({"where": "metric:temp_c>8"}, lambda e: e in w["temps"] and w["temps"][e] > 8),
        ({"where": ["attr:speed<=30", "metric:temp_c!=0"]}, lambda e: w["speeds"][e] is not None and w["speeds"][e] <= 30 and e in w["temps"] and w["temps"][e] != 0),
        ({"where": "metric:no_such_metric>0"}, lambda e: False),
        ({"id": "e-0001,e-0002,e-2999,nobody"}, lambda e: e in ("e-0001", "e-0002", "e-2999")),
    ]
    for params, pred in cases:
        want = sorted(e for e in latest if eu(e) and pred(e))
        got, _ = pages(srv, "/v1/query/within", dict(europe, **params), limit=400)
        assert [g["id"] for g in got] == want, params
    # Filters on nearby: the 5 nearest hazmat trucks.
    trucks = [e for e in latest if kind_of(w, e) == "truck" and "cargo" in w["entities"].get(e, {}).get("tags", {})]
    ranked = sorted(trucks, key=lambda e: (haversine(10, 50, *latest[e]), e))
    out = srv.ok("GET", "/v1/query/nearby?lon=10&lat=50&k=5&kind=truck&tag=cargo:hazmat")
    assert [g["id"] for g in out["entities"]] == ranked[:5]


def test_output_ids_and_count_answer_what_the_objects_answer(world):
    """`output=ids` pages the same answers as bare ids; `output=count` counts every page at
    once. Both against the brute-force references, for each query kind and with filters."""
    srv, latest, w = world["srv"], world["latest"], world
    rng = random.Random(23)
    europe = (-10, 35, 40, 70)
    eu = sorted(e for e, (x, y) in latest.items() if europe[0] <= x <= europe[2] and europe[1] <= y <= europe[3])
    zid, zone = next(iter(w["zones"].items()))
    g = shape(zone["geometry"])
    covered = sorted(e for e, (x, y) in latest.items() if g.covers(Point(x, y)))
    cases = [
        ("/v1/query/within", {"bbox": ",".join(map(str, europe))}, eu),
        ("/v1/query/within", {"bbox": ",".join(map(str, europe)), "kind": "vessel"}, [e for e in eu if kind_of(w, e) == "vessel"]),
        ("/v1/query/within", {"zone": zid}, covered),
        ("/v1/query/within", {"bbox": "-31,-51,-30.9999,-50.9999"}, []),
    ]
    for q in range(6):
        lon, lat = rng.uniform(-10, 40), rng.uniform(35, 70)
        ranked = [e for _, e in sorted((haversine(lon, lat, x, y), e) for e, (x, y) in latest.items())]
        k = rng.choice([1, 7, 40])
        cases.append(("/v1/query/nearby", {"lon": lon, "lat": lat, "k": k}, ranked[:k]))
        r = rng.choice([100_000, 600_000])
        inr = [e for e in ranked if haversine(lon, lat, *latest[e]) <= r]
        cases.append(("/v1/query/nearby", {"lon": lon, "lat": lat, "radius_m": r}, inr))
        cases.append(("/v1/query/nearby", {"lon": lon, "lat": lat, "radius_m": r, "k": 5}, inr[:5]))
    assert not any(-31 <= x <= -30.9999 and -51 <= y <= -50.9999 for x, y in latest.values())
    for path, params, want in cases:
        ids, cursor, pages_seen = [], None, 0
        while True:
            p = dict(params, output="ids", limit=97)
            if cursor:
                p["cursor"] = cursor
            page = srv.ok("GET", path + "?" + urllib.parse.urlencode(p))
            assert set(page) == {"query", "watermark", "count", "ids", "cursor"}, page.keys()
            assert page["count"] == len(page["ids"]) <= 97
            ids += page["ids"]
            pages_seen += 1
            cursor = page["cursor"]
            if cursor is None:
                break
        assert ids == want, (path, params)
        assert pages_seen == max(1, math.ceil(len(want) / 97))
        c = srv.ok("GET", path + "?" + urllib.parse.urlencode(dict(params, output="count")))
        assert set(c) == {"query", "watermark", "count"} and c["count"] == len(want), (path, params, c)
    # A posted shape counts as the objects list it.
    f = w["countries"][3]
    objs = srv.ok("POST", "/v1/query/within?limit=10000", f["geometry"])
    c = srv.ok("POST", "/v1/query/within?output=count", f["geometry"])
    assert c["count"] == objs["count"] == len(objs["entities"])
    # A count has no pages; a format not offered is named.
    for path, needle in [("/v1/query/within?bbox=0,0,1,1&output=count&limit=5", "output=count"),
                         ("/v1/query/within?bbox=0,0,1,1&output=count&cursor=abc", "output=count"),
                         ("/v1/query/within?bbox=0,0,1,1&output=geojson", "'output'")]:
        st, _, out = srv.request("GET", path)
        assert st == 400 and needle in out["message"], (path, out)
    records = srv.ok("GET", "/v1/audit?limit=1000")["records"]
    mine = [r for r in records if r["action"] == "positions.query"][-1]
    assert mine["detail"]["output"] == "count" and mine["detail"]["answers"] == c["count"]


def test_errors_name_the_parameter_and_queries_are_audited(world):
    srv = world["srv"]
    cases = [
        ("GET", "/v1/query/nearby?lon=1&lat=2&k=3&radius=5", 400, "radius"),
        ("GET", "/v1/query/nearby?lon=1&lat=2", 400, "radius_m"),
        ("GET", "/v1/query/nearby?lon=200&lat=2&k=1", 400, "'lon'"),
        ("GET", "/v1/query/nearby?lon=1&lat=2&k=0", 400, "'k'"),
        ("GET", "/v1/query/nearby?lon=1&lat=2&k=1&where=temp_c>3", 400, "where=temp_c>3"),
        ("GET", "/v1/query/nearby?lon=1&lat=2&k=1&where=metric:temp_c~3", 400, "comparison"),
        ("GET", "/v1/query/nearby?lon=1&lat=2&k=1&where=metric:temp_c>abc", 400, "'abc'"),
        ("GET", "/v1/query/nearby?lon=1&lat=2&k=1&cursor=xyz", 400, "cursor"),
        ("GET", "/v1/query/within?bbox=1,2,3", 400, "bbox=1,2,3"),
        ("GET", "/v1/query/within?zone=a&bbox=1,2,3,4", 400, "exactly one"),
        ("GET", "/v1/query/within?zone=nowhere", 404, "nowhere"),
        ("GET", "/v1/query/within?bbox=0,0,1,1&limit=0", 400, "'limit'"),
    ]
    for method, path, status, needle in cases:
        st, _, out = srv.request(method, path)
        assert st == status and needle in out["message"], (path, st, out)
    # A cursor from a within query is refused by nearby.
    page = srv.ok("GET", "/v1/query/within?bbox=-180,-90,180,90&limit=1")
    st, _, out = srv.request("GET", "/v1/query/nearby?lon=1&lat=2&k=5&cursor=" + page["cursor"])
    assert st == 400 and "cursor" in out["message"]
    # A broken shape: 422 with the JSON pointer of the bad position.
    bad = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 95], [0, 0]]]}
    st, _, out = srv.request("POST", "/v1/query/within", bad)
    assert st == 422 and out["error"] == "invalid_geometry" and out["errors"][0]["pointer"] == "/coordinates/0/2/1", out
    st, _, out = srv.request("POST", "/v1/query/within", {"type": "Polygon", "coordinates": [], "extra": 1})
    assert st == 422 and "extra" in json.dumps(out), out
    # Every answered page is in the audit log, with its parameters and answer count.
    records = srv.ok("GET", "/v1/audit?limit=1000")["records"]
    queries = [r for r in records if r["action"] == "positions.query"]
    assert len(queries) >= 50
    last = srv.ok("GET", "/v1/query/nearby?lon=10&lat=50&k=3&tag=cargo:hazmat")
    records = srv.ok("GET", "/v1/audit?limit=1000")["records"]
    mine = [r for r in records if r["action"] == "positions.query"][-1]
    assert mine["target"] == "nearby" and mine["detail"]["answers"] == last["count"] == 3
    assert mine["detail"]["filters"]["tag"] == ["cargo:hazmat"] and mine["detail"]["k"] == 3
    # An ingest-only token may not query.
    tok = make_token(srv.data, role="ingest", name="feeder")
    st, _, _ = srv.request("GET", "/v1/query/nearby?lon=1&lat=2&k=1", token=tok)
    assert st == 403


def test_the_command_line_client_gives_the_api_answers(world, tmp_path):
    from conftest import run
    srv = world["srv"]
    remote = ["--url", srv.url, "--token", srv.token]
    api = srv.ok("GET", "/v1/query/nearby?lon=10&lat=50&k=4&where=metric:temp_c>2")
    code, out, err = run("query", "nearby", "--lon", "10", "--lat", "50", "--k", "4", "--where", "metric:temp_c>2", "-o", "json", *remote)
    assert code == 0, err
    assert json.loads(out)["entities"] == api["entities"]
    code, out, err = run("query", "nearby", "--lon", "10", "--lat", "50", "--k", "4", "--where", "metric:temp_c>2", *remote)
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["ID", "KIND", "LON", "LAT", "TIME", "DISTANCE_M"]
    assert [l.split()[0] for l in lines[1:]] == [e["id"] for e in api["entities"]]
    # A GeoJSON file, every page followed.
    f = next(iter(world["zones"].values()))
    path = tmp_path / "shape.geojson"
    path.write_text(json.dumps(f))
    want = srv.ok("POST", "/v1/query/within?limit=10000", f)["entities"]
    code, out, err = run("query", "within", "--geojson", path, "--limit", "7", "--all", *remote)
    assert code == 0, err
    assert [l.split()[0] for l in out.splitlines()[1:]] == [e["id"] for e in want] and len(want) > 7
    code, out, err = run("query", "within", "--geojson", path, "--count", *remote)
    assert code == 0 and out.strip() == str(len(want)), (out, err)
    code, out, err = run("query", "within", "--geojson", path, "--count", "--limit", "3", *remote)
    assert code != 0 and "--count" in err, err
    # The server's error, named, and exit 1.
    code, out, err = run("query", "within", "--bbox", "1,2,3", *remote)
    assert code == 1 and "bbox=1,2,3" in err, err


class SSE:
    """A server-sent event stream read on a thread: (event, data) pairs in arrival order."""

    def __init__(self, srv, path, body=None, header_token=True):
        import threading
        import urllib.request
        headers = {"Authorization": "Bearer " + srv.token} if header_token else {}
        if body is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(srv.url + path, headers=headers, data=None if body is None else json.dumps(body).encode(),
                                     method="GET" if body is None else "POST")
        self.resp = urllib.request.urlopen(req, timeout=60)
        assert self.resp.headers["Content-Type"].startswith("text/event-stream")
        self.events = []
        self.lock = threading.Lock()
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        event = None
        try:
            for raw in self.resp:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    with self.lock:
                        self.events.append((event, json.loads(line[6:])))
        except Exception:
            pass

    def wait(self, n, timeout=20):
        import time
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                if len(self.events) >= n:
                    return list(self.events)
            time.sleep(0.05)
        with self.lock:
            return list(self.events)

    def close(self):
        self.resp.close()


def test_standing_queries_stream_entities_entering_and_leaving(tmp_path):
    srv = Server(tmp_path / "d", "--max-future", "off", "--heartbeat", "1s")
    srv.token = make_token(tmp_path / "d")
    srv.start()
    try:
        srv.ok("POST", "/v1/entities", '{"id": "tug-1", "kind": "tug"}\n{"id": "tug-2", "kind": "tug"}\n{"id": "box-1", "kind": "reefer"}',
               content_type="application/x-ndjson")
        srv.ok("POST", "/v1/zones", {"type": "Feature", "properties": {"id": "berth", "category": "port"},
                                     "geometry": {"type": "Polygon", "coordinates": [[[4, 52], [4.1, 52], [4.1, 52.1], [4, 52.1], [4, 52]]]}},
               content_type="application/geo+json")

        def post(*events):
            srv.ok("POST", "/v1/events", "\n".join(json.dumps(e) for e in events), content_type="application/x-ndjson")

        post({"entity": "tug-1", "time": "2026-03-01T08:00:00Z", "type": "position", "lon": 4.05, "lat": 52.05},
             {"entity": "box-1", "time": "2026-03-01T08:00:00Z", "type": "position", "lon": 4.06, "lat": 52.06},
             {"entity": "box-1", "time": "2026-03-01T08:00:01Z", "type": "reading", "metric": "temp_c", "value": 4})
        tugs = SSE(srv, "/v1/query/stream?query=within&zone=berth&kind=tug")
        warm = SSE(srv, "/v1/query/stream?query=nearby&lon=4.05&lat=52.05&radius_m=5000&where=metric:temp_c>8")
        near = SSE(srv, "/v1/query/stream?query=within&bbox=4,52,4.2,52.2")
        assert tugs.wait(1) == [("snapshot", {"entities": [
            {"id": "tug-1", "kind": "tug", "lon": 4.05, "lat": 52.05, "time": "2026-03-01T08:00:00.000Z"}]})]
        assert warm.wait(1) == [("snapshot", {"entities": []})]
        assert [e["id"] for e in near.wait(1)[0][1]["entities"]] == ["box-1", "tug-1"]
        # tug-2 sails in, tug-1 out (to the box only), box-1 warms up, then a late fix of tug-1
        # (older than its latest) changes nothing.
        post({"entity": "tug-2", "time": "2026-03-01T08:01:00Z", "type": "position", "lon": 4.01, "lat": 52.01})
        post({"entity": "tug-1", "time": "2026-03-01T08:02:00Z", "type": "position", "lon": 4.15, "lat": 52.05})
        post({"entity": "box-1", "time": "2026-03-01T08:03:00Z", "type": "reading", "metric": "temp_c", "value": 9.5})
        post({"entity": "tug-1", "time": "2026-03-01T08:01:30Z", "type": "position", "lon": 4.05, "lat": 52.05})
        post({"entity": "box-1", "time": "2026-03-01T08:04:00Z", "type": "position", "lon": 5, "lat": 53})
        got = tugs.wait(3)
        assert [(k, d["id"], d.get("lon")) for k, d in got[1:]] == [("enter", "tug-2", 4.01), ("leave", "tug-1", 4.15)]
        got = warm.wait(3)
        assert [(k, d["id"]) for k, d in got[1:]] == [("enter", "box-1"), ("leave", "box-1")]
        assert got[2][1]["lon"] == 5  # left by moving 100 km away
        got = near.wait(3)
        assert [(k, d["id"]) for k, d in got[1:]] == [("enter", "tug-2"), ("leave", "box-1")]
        # Nothing more came (the late fix of tug-1 was not the latest).
        import time
        time.sleep(0.5)
        assert len(tugs.wait(3)) == 3 and len(near.wait(3)) == 3
        near.close()
        warm.close()
        # A catalog change rebuilds the engine: every entity is evaluated again and nothing
        # changes. Erasing tug-2 rebuilds it without tug-2: it leaves, named only.
        srv.ok("POST", "/v1/zones", {"type": "Feature", "properties": {"id": "far", "category": "port"},
                                     "geometry": {"type": "Polygon", "coordinates": [[[10, 10], [11, 10], [11, 11], [10, 11], [10, 10]]]}},
               content_type="application/geo+json")
        post({"entity": "tug-1", "time": "2026-03-01T08:05:00Z", "type": "position", "lon": 4.02, "lat": 52.02})
        got = tugs.wait(4)
        assert [(k, d["id"]) for k, d in got[3:]] == [("enter", "tug-1")], got
        assert srv.request("DELETE", "/v1/entities/tug-2?erase=true")[0] in (200, 204)
        got = tugs.wait(5)
        assert got[4] == ("leave", {"id": "tug-2"}), got
        # Subscriptions are audited.
        records = [r for r in srv.ok("GET", "/v1/audit?limit=1000")["records"] if r["action"] == "positions.stream"]
        assert [r["target"] for r in records] == ["within", "nearby", "within"]
        assert records[0]["detail"]["zone"] == "berth" and records[0]["detail"]["answers"] == 1
        tugs.close()
        st, _, out = srv.request("GET", "/v1/query/stream?query=nearby&lon=4&lat=52&k=3")
        assert st == 400 and "'k'" in out["message"], out
        st, _, out = srv.request("GET", "/v1/query/stream?query=around")
        assert st == 400 and "query=nearby" in out["message"], out
    finally:
        srv.stop()


def test_a_standing_query_over_a_posted_shape(tmp_path):
    """POST /v1/query/stream with a GeoJSON shape: the same snapshot, enter and leave as a
    zone's standing query, for a polygon with a hole and for a circle."""
    srv = Server(tmp_path / "d", "--max-future", "off", "--heartbeat", "1s")
    srv.token = make_token(tmp_path / "d")
    srv.start()
    try:
        def post(*events):
            srv.ok("POST", "/v1/events", "\n".join(json.dumps(e) for e in events), content_type="application/x-ndjson")

        post({"entity": "a", "time": "2026-03-01T08:00:00Z", "type": "position", "lon": 4.02, "lat": 52.02},
             {"entity": "b", "time": "2026-03-01T08:00:00Z", "type": "position", "lon": 4.05, "lat": 52.05})
        ring = {"type": "Polygon", "coordinates": [[[4, 52], [4.1, 52], [4.1, 52.1], [4, 52.1], [4, 52]],
                                                   [[4.04, 52.04], [4.06, 52.04], [4.06, 52.06], [4.04, 52.06], [4.04, 52.04]]]}
        circle = {"type": "Feature", "properties": {"radius_m": 1000}, "geometry": {"type": "Point", "coordinates": [4.05, 52.05]}}
        holed = SSE(srv, "/v1/query/stream", ring)
        round_ = SSE(srv, "/v1/query/stream?where=attr:speed>=0", circle)
        assert [e["id"] for e in holed.wait(1)[0][1]["entities"]] == ["a"]  # b is in the hole
        assert round_.wait(1) == [("snapshot", {"entities": []})]  # b has no speed attribute
        post({"entity": "b", "time": "2026-03-01T08:01:00Z", "type": "position", "lon": 4.08, "lat": 52.05, "attrs": {"speed": 3}})
        post({"entity": "a", "time": "2026-03-01T08:02:00Z", "type": "position", "lon": 4.0505, "lat": 52.0505, "attrs": {"speed": 1}})
        assert [(k, d["id"]) for k, d in holed.wait(3)[1:]] == [("enter", "b"), ("leave", "a")]
        assert [(k, d["id"]) for k, d in round_.wait(2)[1:]] == [("enter", "a")]
        holed.close()
        round_.close()
        records = [r for r in srv.ok("GET", "/v1/audit?limit=1000")["records"] if r["action"] == "positions.stream"]
        assert [r["detail"]["geometry_vertices"] for r in records] == [10, 1]
        st, _, out = srv.request("POST", "/v1/query/stream", {"type": "LineString", "coordinates": [[0, 0], [1, 1]]})
        assert st == 422 and out["error"] == "invalid_geometry", out
    finally:
        srv.stop()
