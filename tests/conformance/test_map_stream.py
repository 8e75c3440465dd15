"""The map viewport stream (`GET /v1/map/stream`) against a reference computed in Python from
the events this test posted: the client's picture, rebuilt from the frames as a browser would
(full frames, moved points, `gone`), must equal a brute-force "latest position in the box, kind
filter" scan after each round of random moves; above `max_points` the clusters must equal a
grid count of the same set, cell by cell. Boxes include one across the antimeridian. Deltas,
erasure, errors, `access_token` and the audit record are checked too."""
import json
import random
import time
import urllib.parse

from server import Server, make_token
from test_queries import SSE


class Frames:
    """A map stream read on a thread (test_queries.SSE), and the client's picture rebuilt from
    its frames as a browser does: full frames replace it, points set, `gone` deletes."""

    def __init__(self, srv, path):
        self.sse = SSE(srv, path, header_token=False)
        self.lock = self.sse.lock
        self.points, self.cells = {}, None

    @property
    def frames(self):
        return [d for e, d in self.sse.events if e == "frame"]

    def picture(self):
        points, cells = {}, None
        for f in self.frames:
            if f["mode"] == "points":
                if f["full"]:
                    points = {}
                for eid, kind, lon, lat, t in f["points"]:
                    points[eid] = (kind, lon, lat, t)
                for eid in f["gone"]:
                    del points[eid]
                cells = None
            else:
                points, cells = {}, f["cells"]
        self.points, self.cells = points, cells

    def until(self, pred, timeout=15):
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                self.picture()
                if pred(self):
                    return True
            time.sleep(0.05)
        return False

    def close(self):
        self.sse.close()


def in_box(box, lon, lat):
    x0, y0, x1, y1 = box
    if not (y0 <= lat <= y1):
        return False
    return x0 <= lon <= x1 if x0 <= x1 else (lon >= x0 or lon <= x1)


def reference_cells(box, cols, rows, pts):
    """The server's grid, computed independently: cell by offset east of the west edge."""
    x0, y0, x1, y1 = box
    w = x1 - x0 if x0 <= x1 else x1 + 360 - x0
    h = y1 - y0
    cells = {}
    for lon, lat in pts:
        x = lon - x0
        if x < 0:
            x += 360
        c = min(cols - 1, int(x / w * cols)) if w > 0 else 0
        r = min(rows - 1, int((lat - y0) / h * rows)) if h > 0 else 0
        n, sx, sy = cells.get((r, c), (0, 0.0, 0.0))
        cells[(r, c)] = (n + 1, sx + x, sy + lat)
    out = []
    for (r, c) in sorted(cells):
        n, sx, sy = cells[(r, c)]
        lon = x0 + sx / n
        if lon > 180:
            lon -= 360
        out.append((lon, sy / n, n))
    return out


def cells_match(got, want):
    if got is None or len(got) != len(want):
        return False
    return all(g[2] == w[2] and abs(g[0] - w[0]) < 2e-5 and abs(g[1] - w[1]) < 2e-5 for g, w in zip(got, want))


def test_viewport_frames_equal_a_brute_force_scan_of_the_posted_positions(tmp_path):
    rnd = random.Random(17)
    srv = Server(tmp_path / "d", "--max-future", "off", "--heartbeat", "1s")
    srv.token = make_token(tmp_path / "d")
    srv.start()
    try:
        kinds = ["truck", "vessel", "van"]
        ents = [f"e-{i:03d}" for i in range(400)]
        kind = {e: kinds[i % 3] for i, e in enumerate(ents)}
        srv.ok("POST", "/v1/entities", "\n".join(json.dumps({"id": e, "kind": kind[e]}) for e in ents),
               content_type="application/x-ndjson")
        latest = {}
        clock = [0]

        def move(which):
            lines = []
            for e in which:
                clock[0] += 1000
                # Half round Rotterdam, a quarter either side of the antimeridian.
                if rnd.random() < 0.5:
                    lon, lat = rnd.uniform(3.8, 4.6), rnd.uniform(51.7, 52.2)
                else:
                    lon, lat = rnd.choice([rnd.uniform(178.5, 180), rnd.uniform(-180, -178.5)]), rnd.uniform(-18, -16)
                lon, lat = round(lon, 6), round(lat, 6)
                latest[e] = (lon, lat, clock[0])
                lines.append(json.dumps({"entity": e, "time": clock[0], "type": "position", "lon": lon, "lat": lat}))
            srv.ok("POST", "/v1/events", "\n".join(lines), content_type="application/x-ndjson")

        move(ents)
        token = urllib.parse.quote(srv.token)
        views = [
            # (box, query, cluster grid or None)
            ((4.0, 51.8, 4.3, 52.0), "max_points=5000", None),
            ((4.0, 51.8, 4.3, 52.0), "max_points=5000&kind=vessel,van", None),
            ((179.0, -18, -179.0, -16), "max_points=5000", None),
            ((3.5, 51.5, 4.7, 52.3), "max_points=10&grid=7x5", (7, 5)),
            ((178.0, -19, -178.0, -15), "max_points=0&grid=16x4", (16, 4)),
        ]
        streams = []
        for box, extra, grid in views:
            q = f"bbox={','.join(map(str, box))}&interval_ms=100&{extra}&access_token={token}"
            streams.append(Frames(srv, f"/v1/map/stream?{q}"))

        def want_points(box, extra):
            only = None
            if "kind=" in extra:
                only = set(extra.split("kind=")[1].split("&")[0].split(","))
            return {e: (kind[e], lon, lat, t) for e, (lon, lat, t) in latest.items()
                    if in_box(box, lon, lat) and (only is None or kind[e] in only)}

        def check_all():
            for (box, extra, grid), s in zip(views, streams):
                if grid is None:
                    want = want_points(box, extra)
                    ok = s.until(lambda f: f.cells is None and f.points == want)
                    assert ok, (box, extra, sorted(set(s.points) ^ set(want))[:10])
                else:
                    want = reference_cells(box, grid[0], grid[1], [(lon, lat) for lon, lat, _ in latest.values() if in_box(box, lon, lat)])
                    ok = s.until(lambda f: cells_match(f.cells, want))
                    assert ok, (box, s.cells, want)

        check_all()
        for _ in range(6):
            move(rnd.sample(ents, 60))
            check_all()
        # After the first frame a points stream sends only what changed: three moves give a
        # frame of at most those three (fewer when a move stayed outside the box), not full.
        s = streams[0]
        with s.lock:
            before = len(s.frames)
        moved = rnd.sample(ents, 3)
        move(moved)
        check_all()
        with s.lock:
            later = s.frames[before:]
        assert later and all(not f["full"] for f in later), later
        assert {p[0] for f in later for p in f["points"]} | {g for f in later for g in f["gone"]} <= set(moved)
        assert s.frames[0]["full"] and s.frames[0]["mode"] == "points"
        # Erasure rebuilds the engine: the erased entity is gone from every picture.
        victim = next(e for e in ents if in_box(views[0][0], *latest[e][:2]))
        assert srv.request("DELETE", f"/v1/entities/{victim}?erase=true")[0] in (200, 204)
        del latest[victim]
        check_all()
        for s in streams:
            s.close()
        # One audit record per subscription, with the box and what it answered.
        records = [r for r in srv.ok("GET", "/v1/audit?limit=1000")["records"] if r["action"] == "positions.map"]
        assert len(records) == len(views)
        assert records[0]["detail"]["bbox"] == [4.0, 51.8, 4.3, 52.0] and records[0]["detail"]["max_points"] == 5000
        assert records[1]["detail"]["filters"]["kind"] == ["van", "vessel"]
        # Errors name the parameter; a query's paging parameters are not the map's.
        for path, needle in [("/v1/map/stream", "bbox="), ("/v1/map/stream?bbox=4,52,5", "bbox=4,52,5"),
                             ("/v1/map/stream?bbox=4,52,5,53&grid=0x5", "grid=0x5"),
                             ("/v1/map/stream?bbox=4,52,5,53&max_points=-1", "'max_points'"),
                             ("/v1/map/stream?bbox=4,52,5,53&interval_ms=5", "'interval_ms'"),
                             ("/v1/map/stream?bbox=4,52,5,53&where=speed>3", "where=speed>3")]:
            st, _, out = srv.request("GET", path)
            assert st == 400 and needle in out["message"], (path, out)
        st, _, out = srv.request("GET", "/v1/map/stream?bbox=4,52,5,53&limit=5")
        assert st == 400 and out["error"] == "unknown_parameter" and "limit" in out["message"], out
        st, _, out = srv.request("GET", "/v1/map/stream?bbox=4,52,5,53", token=None)
        assert st == 401
    finally:
        srv.stop()
