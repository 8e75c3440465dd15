"""The notification policy on a live server: stored, versioned and audited; alerts grouped into
one notification per group and flush, delivered under a stable key; kill -9 during flushes and
deliveries loses nothing."""
import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from server import ENTER_YARD, YARD, Server, make_token, wait_until
from test_webhooks import verify

DWELL = {"id": "long-stay", "kind": "dwell", "purpose": "p", "owner": "o", "severity": "high", "match": {},
         "zones": {"category": "depot"}, "min": "1h", "labels": {"team": "yard-ops"},
         "annotations": {"summary": "{{entity}} in {{zone}} for {{details.dwell_s}} s"}}


class GroupReceiver:
    """Records every POST; while `hold` is set it keeps each request open that long first."""

    def __init__(self):
        self.received = []  # (webhook-id, ts, signature, body)
        self.lock = threading.Lock()
        self.hold = 0.0
        self.in_flight = 0
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                length = int(self.headers["Content-Length"])
                body = self.rfile.read(length)
                if len(body) < length:
                    return
                with outer.lock:
                    outer.in_flight += 1
                if outer.hold:
                    time.sleep(outer.hold)
                with outer.lock:
                    outer.in_flight -= 1
                    outer.received.append((self.headers["webhook-id"], self.headers["webhook-timestamp"],
                                           self.headers["webhook-signature"], body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/hook"

    def bodies(self):
        with self.lock:
            return [(wid, json.loads(body)) for wid, _, _, body in self.received]

    def close(self):
        self.httpd.shutdown()


def enters(entities, t):
    """Each entity outside, then inside the yard: one enter alert each."""
    out = []
    for i, e in enumerate(entities):
        out.append('{"entity":"%s","time":%d,"type":"position","lon":2.5,"lat":2.5}' % (e, t + 2 * i))
        out.append('{"entity":"%s","time":%d,"type":"position","lon":0.5,"lat":0.5}' % (e, t + 2 * i + 1))
    # A later event moves the watermark past them, so their alerts are complete.
    out.append('{"entity":"clock","time":%d,"type":"ping"}' % (t + 2 * len(entities) + 1))
    return "\n".join(out) + "\n"


def test_policy_is_validated_versioned_audited_and_explains_routes(tmp_path):
    data = tmp_path / "data"
    token = make_token(data)
    srv = Server(data).start()
    srv.token = token
    try:
        srv.ok("POST", "/v1/zones", YARD)
        srv.ok("POST", "/v1/rules", DWELL)
        wh = srv.ok("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/"})
        assert srv.request("GET", "/v1/policy")[0] == 404
        # Every problem at once, each with its line and pointer; nothing stored.
        bad = ("route:\n  receiver: nobody\n  group_wiat: 30s\n  routes:\n    - matchers: ['team=~\"(\"']\n")
        status, _, out = srv.request("PUT", "/v1/policy", bad, content_type="application/yaml")
        assert status == 422, out
        msgs = [e["message"] for e in out["errors"]]
        pointers = sorted(e["pointer"] for e in out["errors"])
        assert pointers == ["/route/group_wiat", "/route/receiver", "/route/routes/0/matchers/0"], out
        assert any("did you mean \"group_wait\"" in m for m in msgs) and any(wh["id"] in m for m in msgs), msgs
        assert all(e["line"] > 0 for e in out["errors"])
        assert srv.request("GET", "/v1/policy")[0] == 404
        # A dry run answers {valid, ...} without storing.
        dry = srv.ok("PUT", "/v1/policy?dry_run=true", bad, content_type="application/yaml")
        assert dry["valid"] is False and len(dry["errors"]) == 3
        good = (f"# the yard team\nroute:\n  receiver: {wh['id']}\n  group_by: [zone]\n  routes:\n"
                f"    - matchers: ['team=\"yard-ops\"', 'severity=~\"high|critical\"']\n      receiver: {wh['id']}\n"
                f"      group_by: [entity]\n      group_wait: 10s\n")
        v1 = srv.ok("PUT", "/v1/policy", good, content_type="application/yaml")
        assert v1 == {"version": 1, "changed": True}
        assert srv.ok("PUT", "/v1/policy", good, content_type="application/yaml") == {"version": 1, "changed": False}
        cur = srv.ok("GET", "/v1/policy")
        assert cur["version"] == 1 and cur["policy"] == good and cur["status"] == "active" and cur["created_by"].startswith("test")
        srv.ok("PUT", "/v1/policy", good.replace("10s", "20s"), content_type="application/yaml")
        assert srv.request("DELETE", "/v1/policy")[0] == 204
        assert srv.request("GET", "/v1/policy")[0] == 404
        srv.ok("PUT", "/v1/policy", good, content_type="application/yaml")
        versions = srv.ok("GET", "/v1/policy/versions")["versions"]
        assert [(v["version"], v["status"]) for v in versions] == [(1, "active"), (2, "active"), (3, "deleted"), (4, "active")]
        audit = [r for r in srv.ok("GET", "/v1/audit?limit=1000")["records"] if r["action"].startswith("policy.")]
        assert [(r["action"], r["target"]) for r in audit] == [("policy.update", "v1"), ("policy.update", "v2"),
                                                               ("policy.delete", "v3"), ("policy.update", "v4")]
        assert audit[0]["detail"]["sha256"] == cur["sha256"] and len(cur["sha256"]) == 64
        # An alert of the dwell rule: where does it go?
        srv.ok("POST", "/v1/events", '{"entity":"truck-1","time":0,"type":"position","lon":0.5,"lat":0.5}\n'
                                     '{"entity":"clock","time":7200000,"type":"ping"}\n')
        alert = srv.all_alerts()[0]
        routes = srv.ok("GET", f"/v1/alerts/{alert['id']}/routes")
        assert routes["labels"] == {"rule": "long-stay", "kind": "dwell", "severity": "high", "team": "yard-ops",
                                    "entity": "truck-1", "zone": "yard", "zone_category": "depot"}
        assert [(r["route"], r["group_labels"], r["group_wait_s"]) for r in routes["routes"]] == [("root.0", {"entity": "truck-1"}, 10)]
        assert routes["policy_version"] == 4 and routes["inhibited_by"] == []
        # Rule labels: sensitive keys are refused with the field named.
        status, _, out = srv.request("POST", "/v1/rules", dict(DWELL, id="x", labels={"religion": "a"}))
        assert status == 422 and out["errors"][0]["pointer"] == "/labels/religion", out
    finally:
        srv.stop()


def test_alerts_are_grouped_into_one_signed_notification_per_flush(tmp_path):
    data = tmp_path / "data"
    token = make_token(data)
    srv = Server(data).start()
    srv.token = token
    rcv = GroupReceiver()
    try:
        srv.ok("POST", "/v1/zones", YARD)
        srv.ok("POST", "/v1/rules", ENTER_YARD)
        wh = srv.ok("POST", "/v1/webhooks", {"url": rcv.url})
        # Before a policy: one webhook per alert.
        srv.ok("POST", "/v1/events", enters(["a0"], 0))
        assert wait_until(lambda: len(rcv.bodies()) == 1, 30)
        assert rcv.bodies()[0][0].startswith("alert-")
        srv.ok("PUT", "/v1/policy", {"route": {"receiver": wh["id"], "group_by": ["zone"], "group_wait": "1s", "group_interval": "2s"}})
        srv.ok("POST", "/v1/events", enters([f"t{i}" for i in range(6)], 100))
        assert wait_until(lambda: len(rcv.bodies()) == 2, 30)
        time.sleep(2.5)
        got = rcv.bodies()
        assert len(got) == 2, got
        wid, body = got[1]
        assert wid.startswith("grp-") and wid.endswith("-1") and body["type"] == "notification.firing"
        n = body["data"]
        assert n["key"] == wid and n["receiver"] == wh["id"] and n["group_labels"] == {"zone": "yard"}
        assert sorted(a["labels"]["entity"] for a in n["alerts"]) == [f"t{i}" for i in range(6)]
        assert all(a["status"] == "firing" and a["alert"]["rule"] == "in-yard" for a in n["alerts"])
        _, ts, sig, raw = rcv.received[1]
        assert verify(wh["secret"], wid, ts, sig, raw)
        # The deliveries list names the key.
        d = srv.ok("GET", "/v1/webhooks/deliveries?limit=100")["deliveries"]
        assert [x["kind"] for x in d] == ["alert", "group"] and d[1]["webhook_id"] == wid
        # A second wave.
        srv.ok("POST", "/v1/events", enters(["u0", "u1"], 10_000))
        assert wait_until(lambda: len(rcv.bodies()) == 3, 30)
        wid3, body3 = rcv.bodies()[2]
        # The group ended when its instant alerts were sent: this is a new life of it, so a
        # new key (never the same key for two notifications).
        assert wid3 != wid and wid3.endswith("-1") and sorted(a["labels"]["entity"] for a in body3["data"]["alerts"]) == ["u0", "u1"]
    finally:
        srv.stop()
        rcv.close()


def test_kill9_during_group_flushes_and_deliveries_loses_nothing(tmp_path):
    """The server is killed (SIGKILL) over and over: at random moments while alerts stream in
    and groups flush, and while a receiver holds a group notification's request open. After
    each restart on the same data, every alert is in some notification received, each under
    its group's stable key (a key received twice carries the same group)."""
    data = tmp_path / "data"
    token = make_token(data)
    rcv = GroupReceiver()
    srv = Server(data, "--webhook-backoff", "100ms", "--webhook-timeout", "5").start()
    srv.token = token
    rng = random.Random(16)
    try:
        srv.ok("POST", "/v1/zones", YARD)
        srv.ok("POST", "/v1/rules", ENTER_YARD)
        wh = srv.ok("POST", "/v1/webhooks", {"url": rcv.url})
        srv.ok("PUT", "/v1/policy", {"route": {"receiver": wh["id"], "group_by": ["entity"], "group_wait": "200ms", "group_interval": "300ms"}})
        t = 0
        kills = 0
        for round_ in range(8):
            # Each round: batches of enters, a kill at a random moment in the middle.
            rcv.hold = 1.5 if round_ % 2 else 0.0
            for b in range(rng.randint(2, 5)):
                ents = [f"r{round_}-b{b}-e{i}" for i in range(rng.randint(3, 12))]
                srv.ok("POST", "/v1/events", enters(ents, t))
                t += 1000
                time.sleep(rng.uniform(0, 0.35))
            if rcv.hold:
                # Kill while a group notification's request is open at the receiver.
                wait_until(lambda: rcv.in_flight > 0, 10)
            else:
                time.sleep(rng.uniform(0, 0.5))
            srv.kill9()
            kills += 1
            srv = Server(data, "--webhook-backoff", "100ms", "--webhook-timeout", "5").start()
            srv.token = token
        rcv.hold = 0.0
        alerts = srv.all_alerts()
        want = {a["id"] for a in alerts}
        assert len(want) > 40

        def covered():
            seen = set()
            for wid, body in rcv.bodies():
                if wid.startswith("grp-"):
                    seen |= {a["id"] for a in body["data"]["alerts"]}
            return want <= seen
        assert wait_until(covered, 60), sorted(want - {a["id"] for _, b in rcv.bodies() for a in b["data"]["alerts"]})
        # One group per key: a key delivered more than once names the same group each time.
        groups = {}
        for wid, body in rcv.bodies():
            assert wid.startswith("grp-") and body["data"]["key"] == wid
            groups.setdefault(wid, set()).add(body["data"]["group"])
        assert all(len(g) == 1 for g in groups.values())
        assert kills == 8
    finally:
        srv.stop()
        rcv.close()
