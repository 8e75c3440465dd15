"""Dashboard benchmark (not a test): the map in headless Chromium with N entities moving at
1 Hz and M zones. Reports frame time (draw of one frame, ms), frames drawn, and the latency of
one positions update (fetch + parse), sampled over a period.

  swift build -c release
  tripline generate --out /tmp/lw --zones 10000 --entities 100 --events 1   # the 10,000 zones
  python3 Benchmarks/dashboard_bench.py --bin .build/release/tripline --trucks 10000 --zones /tmp/lw/zones.geojson --seconds 30
"""
import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import time
import urllib.request

from selenium import webdriver


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=".build/release/tripline")
    ap.add_argument("--trucks", type=int, default=10000)
    ap.add_argument("--zones", help="a GeoJSON FeatureCollection to add to the demo's zones")
    ap.add_argument("--seconds", type=int, default=30)
    a = ap.parse_args()
    proc = subprocess.Popen([a.bin, "demo", "--port", "0", "--data", f"/tmp/tripline-dash-bench-{time.time_ns()}", "--trucks", str(a.trucks)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    port = int(first.split("http://")[1].split(":")[1].strip())
    token = next(l for l in iter(proc.stdout.readline, "") if "admin token:" in l).split("admin token:")[1].strip()
    url = f"http://127.0.0.1:{port}"
    if a.zones:
        req = urllib.request.Request(url + "/v1/zones", data=pathlib.Path(a.zones).read_bytes(), method="POST",
                                     headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=300).read()
    opts = webdriver.ChromeOptions()
    for x in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900"]:
        opts.add_argument(x)
    opts.binary_location = "/usr/bin/chromium"
    d = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path="/usr/bin/chromedriver"))
    try:
        d.get(url + "/")
        d.execute_script("sessionStorage.setItem('tripline.token', arguments[0])", token)
        d.get(url + "/#/map")
        d.refresh()
        end = time.time() + 60
        while time.time() < end and not d.execute_script("const m = window.__tripline.map; return m && m.entitiesDrawn > 0"):
            time.sleep(0.5)
        time.sleep(3)
        s0 = d.execute_script("return Object.assign({}, window.__tripline.map)")
        fetches = []
        for k in range(a.seconds):
            time.sleep(1)
            # Pan every other second, so that the zone layer is redrawn too.
            if k % 2 == 0:
                d.execute_script("document.getElementById('map').dispatchEvent(new KeyboardEvent('keydown', {key: arguments[0]}))",
                                 "ArrowLeft" if k % 4 == 0 else "ArrowRight")
            fetches.append(d.execute_script("return window.__tripline.map.lastPositions"))
        s1 = d.execute_script("return Object.assign({}, window.__tripline.map)")
        frames = s1["frames"] - s0["frames"]
        avg = (s1["totalFrameMs"] - s0["totalFrameMs"]) / max(1, frames)
        print(json.dumps({
            "entities_drawn": s1["entitiesDrawn"], "zones_drawn": s1["zonesDrawn"], "seconds": a.seconds,
            "frames": frames, "frame_ms_avg": round(avg, 2), "frame_ms_max_overall": round(s1["maxFrameMs"], 2),
            "positions_update_ms_median": round(statistics.median(fetches), 1), "positions_update_ms_max": round(max(fetches), 1),
        }, indent=1))
    finally:
        d.quit()
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    sys.exit(main())
