"""Webhooks against local receivers that fail, stall and succeed; silences; feedback."""
import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from server import Server, make_token, wait_until

ZONE = {"type": "Feature", "properties": {"id": "yard", "category": "depot"},
        "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}}
RULE = {"id": "in-yard", "kind": "enter", "purpose": "p", "owner": "o", "severity": "high", "match": {}, "zones": {"category": "depot"}}


class Receiver:
    """Records every delivery. `plan(attempt)` says what to do with the n-th attempt of a
    webhook-id: 'fail' (500), 'stall' (answer after the server's timeout), or 'ok'."""

    def __init__(self, plan):
        self.plan = plan
        self.received = []  # (webhook-id, timestamp, signature, body bytes)
        self.attempts = {}
        self.lock = threading.Lock()
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                length = int(self.headers["Content-Length"])
                body = self.rfile.read(length)
                if len(body) < length:
                    return  # the sender died mid-request (a failover test kills it): no delivery
                wid = self.headers["webhook-id"]
                with outer.lock:
                    outer.received.append((wid, self.headers["webhook-timestamp"], self.headers["webhook-signature"], body))
                    n = outer.attempts[wid] = outer.attempts.get(wid, 0) + 1
                action = outer.plan(n)
                if action == "stall":
                    time.sleep(3.5)
                code = 500 if action == "fail" else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/hook"

    def close(self):
        self.httpd.shutdown()


def verify(secret, wid, ts, sig, body):
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, f"{wid}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    return sig == "v1," + expected


def positions(entities, t0):
    out = []
    for i, e in enumerate(entities):
        out.append('{"entity":"%s","time":%d,"type":"position","lon":0.5,"lat":0.5}' % (e, t0 + i))
    out.append('{"entity":"clock","time":%d,"type":"ping"}' % (t0 + 10_000))
    return "\n".join(out) + "\n"


def test_webhooks_at_least_once_signed_with_dead_letters_and_silences(tmp_path):
    data = tmp_path / "data"
    token = make_token(data)
    srv = Server(data, "--webhook-max-attempts", 5, "--webhook-backoff", "100ms", "--webhook-timeout", 1.5).start()
    srv.token = token
    # A flaky receiver: 1st attempt fails, 2nd stalls past the timeout, 3rd succeeds.
    flaky = Receiver(lambda n: {1: "fail", 2: "stall"}.get(n, "ok"))
    # A broken receiver: always fails.
    broken_state = {"ok": False}
    broken = Receiver(lambda n: "ok" if broken_state["ok"] else "fail")
    try:
        srv.ok("POST", "/v1/zones", ZONE)
        srv.ok("POST", "/v1/rules", RULE)
        a = srv.ok("POST", "/v1/webhooks", {"url": flaky.url})
        b = srv.ok("POST", "/v1/webhooks", {"url": broken.url, "min_severity": "medium"})
        assert a["secret"].startswith("whsec_") and "secret" not in json.dumps(srv.ok("GET", "/v1/webhooks"))
        # Silence t0's alerts: stored and marked, not delivered.
        s = srv.ok("POST", "/v1/silences", {"matchers": {"entity": "t0"}, "duration": "1h", "comment": "maintenance"})
        assert s["active"] is True
        entities = [f"t{i}" for i in range(8)]
        srv.ok("POST", "/v1/events", positions(entities, 1000))
        alerts = srv.all_alerts()
        assert len(alerts) == 8
        silenced = [x for x in alerts if x["suppressed_by"] is not None]
        assert [x["key"]["entity"] for x in silenced] == ["t0"] and silenced[0]["suppressed_by"] == s["id"]
        delivered_ids = {f"alert-{x['id']}" for x in alerts if x["suppressed_by"] is None}

        def flaky_done():
            d = srv.ok("GET", f"/v1/webhooks/deliveries?receiver={a['id']}&state=delivered&limit=1000")["deliveries"]
            return len(d) == 7
        assert wait_until(flaky_done, 60), srv.ok("GET", "/v1/webhooks/deliveries?limit=1000")
        # Every non-silenced alert arrived, duplicates carry the same id, every signature verifies.
        with flaky.lock:
            got = list(flaky.received)
        assert {wid for wid, *_ in got} == delivered_ids
        assert len(got) >= 3 * 7, "each alert should have been attempted at least three times"
        for wid, ts, sig, body in got:
            assert verify(a["secret"], wid, ts, sig, body), wid
            payload = json.loads(body)
            assert payload["type"] == "alert.firing" and f"alert-{payload['data']['id']}" == wid
        # The broken receiver: dead letters after 5 attempts each.
        assert wait_until(lambda: len(srv.ok("GET", f"/v1/webhooks/deliveries?receiver={b['id']}&state=dead")["deliveries"]) == 7, 60)
        dead = srv.ok("GET", f"/v1/webhooks/deliveries?receiver={b['id']}&state=dead")["deliveries"]
        assert all(d["attempts"] == 5 and d["last_error"] == "HTTP 500" for d in dead)
        metrics = srv.ok("GET", "/metrics")
        assert 'tripline_webhook_deliveries_total{outcome="dead"} 7' in metrics
        # Re-drive once it works again.
        broken_state["ok"] = True
        assert srv.ok("POST", "/v1/webhooks/deliveries/redrive", {})["redriven"] == 7
        assert wait_until(lambda: len(srv.ok("GET", f"/v1/webhooks/deliveries?receiver={b['id']}&state=delivered")["deliveries"]) == 7, 60)
        # Ending the silence: t0's next alert is delivered.
        assert srv.request("DELETE", f"/v1/silences/{s['id']}")[0] == 204
        assert srv.ok("GET", "/v1/silences")["silences"][0]["active"] is False
    finally:
        srv.stop()
        flaky.close()
        broken.close()


def test_feedback_and_silence_validation(tmp_path):
    data = tmp_path / "data"
    token = make_token(data)
    srv = Server(data).start()
    srv.token = token
    try:
        srv.ok("POST", "/v1/zones", ZONE)
        srv.ok("POST", "/v1/rules", RULE)
        srv.ok("POST", "/v1/events", positions(["t1"], 1000))
        alert = srv.all_alerts()[0]
        f = srv.ok("POST", f"/v1/alerts/{alert['id']}/feedback", {"verdict": "false_positive", "comment": "yard test"})
        assert f["verdict"] == "false_positive" and f["by"].startswith("test (tok_")
        assert srv.ok("GET", f"/v1/alerts/{alert['id']}/feedback")["feedback"][0]["comment"] == "yard test"
        s, _, out = srv.request("POST", f"/v1/alerts/{alert['id']}/feedback", {"verdict": "meh"})
        assert s == 400 and "useful" in out["message"]
        assert srv.request("POST", "/v1/alerts/999/feedback", {"verdict": "useful"})[0] == 404
        s, _, out = srv.request("POST", "/v1/silences", {"matchers": {}, "duration": "1h", "comment": "x"})
        assert s == 400 and "at least one matcher" in out["message"]
        s, _, out = srv.request("POST", "/v1/silences", {"matchers": {"rule": "in-yard"}, "duration": "1h"})
        assert s == 400 and "comment" in out["message"]
        s, _, out = srv.request("POST", "/v1/webhooks", {"url": "ftp://x"})
        assert s == 400 and "http" in out["message"]
    finally:
        srv.stop()
