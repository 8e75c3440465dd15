"""Dashboard benchmark (not a test): the map in headless Chromium over `tripline demo` with its
fleets moving at 1 Hz (--trucks N gives 1.2 N moving trucks and vessels) and M extra zones.
Two phases of --seconds each, panning every other second: the whole fleet in view (server-side
clusters) and zoomed in until the view holds at most 3,000 entities (points). Reports per
phase the frame time (draw of one frame, ms), frames drawn, the map stream's frames and bytes
per second, and, as the baseline in the same run, the old design's cost: fetching and parsing
every latest position (`GET /v1/positions`) once a second.

  swift build -c release
  tripline generate --out /tmp/lw --zones 10000 --entities 100 --events 1   # the 10,000 zones
  python3 Benchmarks/dashboard_bench.py --bin .build/release/tripline --trucks 83334 --zones /tmp/lw/zones.geojson --seconds 30
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
    ap.add_argument("--entities", type=int, help="instead of the demo: `tripline serve` with this many generated entities, moved by "
                    "`tripline load --rate` (70%% of its events are positions of a random entity: --rate 1.43 x N moves each about once a second)")
    ap.add_argument("--rate", type=int, help="with --entities: events/s for `tripline load`")
    a = ap.parse_args()
    loader = None
    data = f"/tmp/tripline-dash-bench-{time.time_ns()}"
    if a.entities:
        gen = data + "-gen"
        subprocess.run([a.bin, "generate", "--out", gen, "--zones", "10", "--entities", str(a.entities), "--events", "1"], check=True, capture_output=True)
        token = subprocess.run([a.bin, "token", "create", "--data", data, "--role", "admin"], check=True, capture_output=True, text=True).stdout.strip()
        proc = subprocess.Popen([a.bin, "serve", "--port", "0", "--data", data, "--max-future", "off"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = proc.stdout.readline()
        port = int(first.split("http://")[1].split(":")[1].split(" ")[0])
        url = f"http://127.0.0.1:{port}"
        req = urllib.request.Request(url + "/v1/entities", data=pathlib.Path(gen, "entities.ndjson").read_bytes(), method="POST",
                                     headers={"Authorization": "Bearer " + token, "Content-Type": "application/x-ndjson"})
        urllib.request.urlopen(req, timeout=300).read()
        loader = subprocess.Popen([a.bin, "load", "--url", url, "--token", token, "--rate", str(a.rate or int(a.entities * 1.43)),
                                   "--duration", f"{a.seconds * 2 + 240}s", "--entities", str(pathlib.Path(gen, "entities.ndjson")),
                                   "--region=-10,40,10,60", "--batch", "2000", "--connections", "2"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    else:
        proc = subprocess.Popen([a.bin, "demo", "--port", "0", "--data", data, "--trucks", str(a.trucks)],
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
        end = time.time() + 120
        while time.time() < end and not d.execute_script("const m = window.__tripline.map; return m && m.framesIn > 1 && (m.entitiesDrawn > 0 || m.clustersDrawn > 0)"):
            time.sleep(0.5)
        d.execute_script("window.__tripline.mapView.fit()")
        time.sleep(3)
        d.set_script_timeout(300)
        results = {"fleet": d.execute_script("return window.__tripline.mapView.inView")}

        def applied():
            req = urllib.request.Request(url + "/v1/status", headers={"Authorization": "Bearer " + token})
            return json.loads(urllib.request.urlopen(req, timeout=300).read())["events_applied"]

        def phase(name):
            s0 = d.execute_script("return Object.assign({}, window.__tripline.map)")
            a0 = applied()
            t0 = time.time()
            for k in range(a.seconds):
                time.sleep(1)
                # Pan every other second: the zone layer is redrawn and the stream reopened.
                if k % 2 == 0:
                    d.execute_script("document.getElementById('map').dispatchEvent(new KeyboardEvent('keydown', {key: arguments[0]}))",
                                     "ArrowLeft" if k % 4 == 0 else "ArrowRight")
            s1 = d.execute_script("return Object.assign({}, window.__tripline.map)")
            secs = time.time() - t0
            events = applied() - a0
            frames = s1["frames"] - s0["frames"]
            results[name] = {
                "mode": s1["mode"], "in_view": d.execute_script("return window.__tripline.mapView.inView"),
                "entities_drawn": s1["entitiesDrawn"], "clusters_drawn": s1["clustersDrawn"], "zones_drawn": s1["zonesDrawn"],
                "frames_drawn": frames, "frame_ms_avg": round((s1["totalFrameMs"] - s0["totalFrameMs"]) / max(1, frames), 2),
                "frame_ms_max_overall": round(s1["maxFrameMs"], 2),
                "stream_frames_per_s": round((s1["framesIn"] - s0["framesIn"]) / secs, 2),
                "stream_bytes_per_s": round((s1["bytesIn"] - s0["bytesIn"]) / secs),
                "last_frame_parse_ms": round(s1["lastFrameParseMs"], 2), "streams_opened": s1["streamOpens"] - s0["streamOpens"],
                "server_events_applied_per_s": round(events / secs),
            }
            print(name, json.dumps(results[name]), flush=True)

        phase("whole_fleet_in_view")
        # Zoom in (round the view's centre) until the view holds at most max_points: points mode.
        for _ in range(30):
            if d.execute_script("return window.__tripline.map.mode") == "points":
                break
            d.execute_script("window.__tripline.mapView.zoom(2)")
            time.sleep(1.5)
        time.sleep(2)
        phase("zoomed_in")
        # The old design's cost, in the same run: every latest position, once a second.
        polls = d.execute_async_script("""const done = arguments[0]; const out = [];
            (async () => { for (let i = 0; i < 3; i++) { const t0 = performance.now();
              const r = await fetch('/v1/positions', {headers: {Authorization: 'Bearer ' + sessionStorage.getItem('tripline.token')}});
              const text = await r.text(); const j = JSON.parse(text);
              out.push([performance.now() - t0, text.length, j.entities.length]); } done(out); })();""")
        results["poll_all_positions_baseline"] = {"bytes_per_poll": polls[-1][1], "entities": polls[-1][2],
                                                  "fetch_parse_ms_median": round(statistics.median(p[0] for p in polls), 1)}
        for name in ("whole_fleet_in_view", "zoomed_in"):
            results[name]["bytes_ratio_to_polling"] = round(results[name]["stream_bytes_per_s"] / polls[-1][1], 4)
        print(json.dumps(results, indent=1))
    finally:
        d.quit()
        if loader:
            loader.kill()
            out = loader.communicate()[0]
            print("loader:", " | ".join(out.strip().splitlines()[-3:]))
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    sys.exit(main())
