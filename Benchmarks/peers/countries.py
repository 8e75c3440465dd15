#!/usr/bin/env python3
"""Writes Benchmarks/data/countries-110m.geojson: the 177 country polygons of Natural Earth
1:110m (public domain), taken from the copy pyogrio's wheel carries as a test fixture
(`pip install pyogrio`). Antarctica's ring round the pole is cut into three strips. Coordinates are rounded to 6 decimals. Each feature is a Tripline zone: id `country-<ISO A3>`
(or the name where Natural Earth gives -99), category `country`, tag iso_a3.

    python3 Benchmarks/peers/countries.py [--densify DEG] [OUT]

With --densify, every edge longer than DEG degrees is split into equal pieces (shapely's
segmentize): the outline stays the real one, but the rings get the vertex counts of a finer
scale. Benchmarks/data/countries-110m-dense.geojson is `--densify 0.25`: 42,194 vertices, six
countries over 1,000 and Russia at 4,754.
"""
import json
import os
import sys

import pyogrio
import shapely

src = os.path.join(os.path.dirname(pyogrio.__file__), "tests", "fixtures", "naturalearth_lowres", "naturalearth_lowres.shp")
args = sys.argv[1:]
densify = None
if args[:1] == ["--densify"]:
    densify = float(args[1])
    args = args[2:]
name = "countries-110m.geojson" if densify is None else "countries-110m-dense.geojson"
out = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", name)
meta, _, wkb, fields = pyogrio.raw.read(src)
names = list(meta["fields"])
features = []
for i, g in enumerate(shapely.from_wkb(wkb)):
    g = shapely.set_precision(g, 1e-6)
    if g.is_empty:
        continue
    g = shapely.make_valid(g)
    # Antarctica's main ring goes round the pole (-180 to 180): Tripline refuses a ring that
    # spans more than 180 degrees, so such a part is cut into three strips of 120 degrees,
    # 0.000002 degrees apart (parts of a MultiPolygon may not share an edge).
    parts = []
    for part in getattr(g, "geoms", [g]):
        lo, _, hi, _ = part.bounds
        if part.geom_type == "Polygon" and hi - lo > 180:
            for x in (-180, -60, 60):
                cut = part.intersection(shapely.box(x + 1e-6, -90, x + 120 - 1e-6, 90))
                parts += [q for q in getattr(cut, "geoms", [cut]) if q.geom_type == "Polygon" and not q.is_empty]
        else:
            parts.append(part)
    if densify is not None:  # part by part: segmentize on the whole may merge the strips again
        parts = [shapely.segmentize(q, densify) for q in parts]
    g = shapely.MultiPolygon(parts) if len(parts) > 1 else parts[0]
    geo = json.loads(shapely.to_geojson(g))
    if geo["type"] == "GeometryCollection":  # make_valid may add slivers: keep the polygons
        polys = [p for p in geo["geometries"] if p["type"] in ("Polygon", "MultiPolygon")]
        geo = polys[0] if len(polys) == 1 else {"type": "MultiPolygon", "coordinates": [c for p in polys for c in ([p["coordinates"]] if p["type"] == "Polygon" else p["coordinates"])]}
    iso = fields[names.index("iso_a3")][i]
    country = fields[names.index("name")][i]
    zid = f"country-{iso if iso != '-99' else country.replace(' ', '-').replace('.', '').lower()}"
    features.append({"type": "Feature", "properties": {"id": zid, "category": "country", "tags": {"iso_a3": iso}}, "geometry": geo})
with open(out, "w") as f:
    json.dump({"type": "FeatureCollection", "features": features}, f, separators=(",", ":"))
print(f"{out}: {len(features)} countries, {sum(shapely.get_num_coordinates(shapely.from_geojson(json.dumps(x['geometry']))) for x in features)} vertices")
