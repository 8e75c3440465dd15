#!/usr/bin/env python3
"""Writes the dashboard's offline basemap, Sources/TriplineServer/Resources/dashboard/basemap.json:
the 177 country polygons of Natural Earth 1:110m admin-0 (public domain), from the copy that
pyogrio's wheel carries as a test fixture (`pip install pyogrio shapely`). The map fills them as
land and strokes their outlines, which are the coastlines and the borders.

Each country is {"a3": ISO A3 code, "p": [polygon, ...]}, a polygon a list of rings (the shell,
then holes), a ring a flat list lon, lat, lon, lat, ... rounded to 0.01 degrees (about 1 km,
finer than the 1:110m scale itself).

    python3 scripts/basemap.py [OUT]
"""
import json
import os
import sys

import pyogrio
import shapely

src = os.path.join(os.path.dirname(pyogrio.__file__), "tests", "fixtures", "naturalearth_lowres", "naturalearth_lowres.shp")
here = os.path.dirname(os.path.abspath(__file__))
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "Sources", "TriplineServer", "Resources", "dashboard", "basemap.json")
meta, _, wkb, fields = pyogrio.raw.read(src)
names = list(meta["fields"])
a3 = fields[names.index("iso_a3")]


def ring(coords):
    flat = []
    last = None
    for x, y in coords:
        p = (round(x, 2), round(y, 2))
        if p != last:
            flat += [p[0], p[1]]
        last = p
    return flat


countries = []
vertices = 0
for i, g in enumerate(shapely.from_wkb(wkb)):
    if g is None or g.is_empty:
        continue
    polys = list(g.geoms) if g.geom_type == "MultiPolygon" else [g]
    out_polys = []
    for p in polys:
        rings = [ring(p.exterior.coords)] + [ring(h.coords) for h in p.interiors]
        rings = [r for r in rings if len(r) >= 6]
        if rings:
            vertices += sum(len(r) // 2 for r in rings)
            out_polys.append(rings)
    countries.append({"a3": str(a3[i]), "p": out_polys})
doc = {"source": "Natural Earth 1:110m admin 0 countries, public domain (naturalearthdata.com)", "countries": countries}
with open(out, "w") as f:
    json.dump(doc, f, separators=(",", ":"))
    f.write("\n")
print(f"{out}: {len(countries)} countries, {vertices} vertices, {os.path.getsize(out)} bytes")
