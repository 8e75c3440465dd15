"""Conformance of zone validation and `covers` against shapely 2 (GEOS) as an independent oracle."""
import json
import math
import random

import pytest
from shapely.geometry import MultiPolygon, Point, Polygon

PROPS = {"category": "test"}


def feature(i, geom):
    return {"type": "Feature", "properties": {"id": f"p{i}", **PROPS}, "geometry": geom}


def ring_coords(pts):
    pts = [list(p) for p in pts]
    if pts[0] != pts[-1]:
        pts.append(pts[0])
    return pts


def star(rng, cx, cy, n, rmin, rmax, grid):
    angles = sorted(rng.uniform(0, 2 * math.pi) for _ in range(n))
    pts = []
    for a in angles:
        r = rng.uniform(rmin, rmax)
        pts.append((round((cx + r * math.cos(a)) * grid) / grid, round((cy + r * math.sin(a)) * grid) / grid))
    return pts


def random_polygons(seed, count=400):
    """Valid and invalid polygons on a coarse grid so that touching cases really occur."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        kind = rng.randrange(6)
        if kind == 0:  # star: mostly valid (rounding can create spikes or self-touches)
            pts = star(rng, 0, 0, rng.randint(3, 12), 1, 5, 2)
            out.append(([ring_coords(pts)], None))
        elif kind == 1:  # random vertex order: often self-intersecting
            pts = [(rng.randint(0, 6), rng.randint(0, 6)) for _ in range(rng.randint(3, 7))]
            out.append(([ring_coords(pts)], None))
        elif kind == 2:  # a box with a hole somewhere: inside, touching, crossing or outside
            w = rng.randint(4, 10)
            shell = [(0, 0), (w, 0), (w, w), (0, w)]
            hx, hy = rng.randint(-2, w), rng.randint(-2, w)
            hs = rng.randint(1, 4)
            hole = [(hx, hy), (hx + hs, hy), (hx + hs, hy + hs), (hx, hy + hs)]
            if rng.random() < 0.3:  # a triangle hole touching the shell
                hole = [(0, hy), (hs, hy - 1), (hs, hy + 1)]
            out.append(([ring_coords(shell), ring_coords(hole)], None))
        elif kind == 3:  # two holes, possibly touching each other or nested
            shell = [(0, 0), (12, 0), (12, 12), (0, 12)]
            holes = []
            for _ in range(2):
                hx, hy, hs = rng.randint(1, 8), rng.randint(1, 8), rng.randint(1, 3)
                holes.append(ring_coords([(hx, hy), (hx + hs, hy), (hx + hs, hy + hs), (hx, hy + hs)]))
            out.append(([ring_coords(shell)] + holes, None))
        elif kind == 4:  # multipolygon of two boxes: disjoint, touching, sharing edges, overlapping
            parts = []
            for _ in range(2):
                x, y, s = rng.randint(0, 6), rng.randint(0, 6), rng.randint(1, 4)
                parts.append([ring_coords([(x, y), (x + s, y), (x + s, y + s), (x, y + s)])])
            out.append((None, parts))
        else:  # bowtie or repeated vertices
            if rng.random() < 0.5:
                out.append(([ring_coords([(0, 0), (4, 4), (4, 0), (0, 4)])], None))
            else:
                out.append(([ring_coords([(0, 0), (4, 0), (4, 0), (4, 4), (0, 4)])], None))
    return out


def to_geojson(poly, multi):
    if multi is not None:
        return {"type": "MultiPolygon", "coordinates": multi}
    return {"type": "Polygon", "coordinates": poly}


def to_shapely(poly, multi):
    if multi is not None:
        return MultiPolygon([Polygon(p[0], p[1:]) for p in multi])
    return Polygon(poly[0], poly[1:])


def invalid_features(tripline, path):
    code, out, err = tripline("validate", "--zones", path)
    bad = set()
    for line in err.splitlines():
        if " at /features/" in line:
            bad.add(int(line.split(" at /features/")[1].split("/")[0].split(":")[0]))
    assert code in (0, 2), err
    return bad, err


def validity_against_shapely(tripline, tmp_path, polys):
    """`tripline validate` on the polygons as zones; returns how many shapely finds invalid and
    the polygons where the two disagree."""
    feats = [feature(i, to_geojson(p, m)) for i, (p, m) in enumerate(polys)]
    path = tmp_path / "zones.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    bad, err = invalid_features(tripline, path)
    mismatches = []
    n_invalid = 0
    for i, (p, m) in enumerate(polys):
        expected_valid = to_shapely(p, m).is_valid
        n_invalid += not expected_valid
        if expected_valid == (i in bad):
            reason = [l for l in err.splitlines() if f"/features/{i}/" in l]
            mismatches.append((i, to_geojson(p, m), "shapely valid" if expected_valid else "shapely invalid", reason))
    return n_invalid, mismatches


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_validity_matches_shapely(tripline, tmp_path, seed):
    polys = random_polygons(seed)
    n_invalid, mismatches = validity_against_shapely(tripline, tmp_path, polys)
    assert n_invalid > 20 and n_invalid < len(polys) - 20, "the generator must produce both kinds"
    assert not mismatches, "\n".join(map(str, mismatches[:10]))


def nested_multipolygons(seed, count=400):
    """MultiPolygons of a box with a hole and a second part (a box, a triangle or a star) that
    may lie in the hole, touch the hole or the shell from either side, overlap, contain the
    first part, or lie apart: the cases where part-overlap validation decides by position."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        w = rng.randint(6, 12)
        hx, hy, hs = rng.randint(1, w - 4), rng.randint(1, w - 4), rng.randint(2, 4)
        hs = min(hs, w - 1 - hx, w - 1 - hy)
        first = [ring_coords([(0, 0), (w, 0), (w, w), (0, w)]), ring_coords([(hx, hy), (hx + hs, hy), (hx + hs, hy + hs), (hx, hy + hs)])]
        kind = rng.randrange(4)
        if kind == 0:  # a box somewhere near, often in or on the hole
            x, y, s = rng.randint(hx - 1, hx + hs), rng.randint(hy - 1, hy + hs), rng.randint(1, hs + 1)
            second = [(x, y), (x + s, y), (x + s, y + s), (x, y + s)]
        elif kind == 1:  # a triangle hanging from a hole corner, inward or outward
            dx, dy = rng.choice([(1, 1), (-1, -1), (1, -1), (-1, 1)])
            second = [(hx, hy), (hx + dx, hy), (hx, hy + dy)] if rng.random() < 0.5 else [(hx, hy), (hx + 2 * dx, hy + dy), (hx + dx, hy + 2 * dy)]
        elif kind == 2:  # a star around the hole's centre, on a half grid
            second = star(rng, hx + hs / 2, hy + hs / 2, rng.randint(3, 8), 0.5, hs, 2)
        else:  # a big box that may contain the first part, or touch it from outside
            m = rng.randint(0, 2)
            second = [(-m, -m), (w + m, -m), (w + m, w + m), (-m, w + m)] if rng.random() < 0.5 else [(w, w), (w + 3, w), (w + 3, w + 3), (w, w + 3)]
        out.append((None, [first, [ring_coords(second)]]))
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_multipolygon_parts_in_holes_match_shapely(tripline, tmp_path, seed):
    polys = nested_multipolygons(seed)
    n_invalid, mismatches = validity_against_shapely(tripline, tmp_path, polys)
    assert n_invalid > 40 and n_invalid < len(polys) - 40, "the generator must produce both kinds"
    assert not mismatches, "\n".join(map(str, mismatches[:10]))


@pytest.mark.parametrize("seed", [4, 5])
def test_covers_matches_shapely_including_vertices_and_edges(tripline, tmp_path, seed):
    rng = random.Random(seed)
    polys = [(p, m) for (p, m) in random_polygons(seed, 300) if to_shapely(p, m).is_valid]
    feats = [feature(i, to_geojson(p, m)) for i, (p, m) in enumerate(polys)]
    (tmp_path / "zones.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    (tmp_path / "rules.yaml").write_text(
        "rules:\n  - {id: in, kind: enter, purpose: conformance, owner: tests, severity: info, match: {}}\n")
    # Points: half-grid points (vertices, edge midpoints) and random ones.
    points = []
    for _ in range(3000):
        if rng.random() < 0.7:
            points.append((rng.randint(-4, 24) / 2, rng.randint(-4, 24) / 2))
        else:
            points.append((rng.uniform(-6, 14), rng.uniform(-6, 14)))
    lines = [json.dumps({"entity": f"pt{j}", "time": j, "type": "position", "lon": x, "lat": y}) for j, (x, y) in enumerate(points)]
    (tmp_path / "events.ndjson").write_text("\n".join(lines) + "\n")
    code, out, err = tripline("replay", "--zones", tmp_path / "zones.geojson", "--rules", tmp_path / "rules.yaml",
                              "--quiet", tmp_path / "events.ndjson")
    assert code == 0, err
    got = set()
    for line in out.splitlines():
        a = json.loads(line)
        got.add((int(a["key"]["entity"][2:]), int(a["key"]["zone"][1:])))
    expected = set()
    shapes = [to_shapely(p, m) for p, m in polys]
    for j, (x, y) in enumerate(points):
        pt = Point(x, y)
        for i, s in enumerate(shapes):
            if s.covers(pt):
                expected.add((j, i))
    boundary_hits = sum(1 for (j, i) in expected if shapes[i].boundary.covers(Point(*points[j])))
    assert boundary_hits > 50, "the test must exercise boundary points"
    missing, extra = expected - got, got - expected
    assert not missing and not extra, f"missing {sorted(missing)[:10]} extra {sorted(extra)[:10]}"
