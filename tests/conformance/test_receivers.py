"""Receivers of each kind against local counterparts: a Slack-compatible incoming webhook, a
PagerDuty Events API v2 fake that checks the documented fields, and a real nats-server with
JetStream (publish with Nats-Msg-Id)."""
import asyncio
import json
import os
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from server import ENTER_YARD, YARD, Server, make_token, wait_until
from test_cluster import free_port, wait_port
from test_notifications import enters

NATS = shutil.which("nats-server") or "/usr/sbin/nats-server"


class Fake:
    """A local HTTP endpoint; `check(body)` returns an error text (answered 400) or None (202)."""

    def __init__(self, check):
        self.got = []
        self.refused = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    doc = json.loads(body)
                    err = check(doc, self.headers)
                except ValueError as e:
                    doc, err = None, f"not JSON: {e}"
                if err:
                    outer.refused.append(err)
                    self.send_response(400)
                    out = json.dumps({"status": "invalid event", "errors": [err]}).encode()
                else:
                    outer.got.append(doc)
                    self.send_response(202)
                    out = json.dumps({"status": "success", "message": "Event processed"}).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/"

    def close(self):
        self.httpd.shutdown()


def slack_check(doc, headers):
    # Slack incoming webhooks take {"text": ...} (blocks optional) as JSON.
    if headers.get("Content-Type") != "application/json":
        return "Content-Type must be application/json"
    if not isinstance(doc.get("text"), str) or not doc["text"].strip():
        return "missing text"
    return None


def pagerduty_check(doc, headers):
    """The fields of https://developer.pagerduty.com/docs/events-api-v2/trigger-events/."""
    for k in doc:
        if k not in ("routing_key", "event_action", "dedup_key", "payload", "images", "links", "client", "client_url"):
            return f"unknown field {k}"
    if doc.get("routing_key") != "R0UT1NGKEY0123456789abcdef012345":
        return "routing_key"
    if doc.get("event_action") not in ("trigger", "acknowledge", "resolve"):
        return "event_action"
    if not isinstance(doc.get("dedup_key"), str) or not 0 < len(doc["dedup_key"]) <= 255:
        return "dedup_key"
    if doc["event_action"] == "trigger":
        p = doc.get("payload")
        if not isinstance(p, dict):
            return "payload"
        if not isinstance(p.get("summary"), str) or not 0 < len(p["summary"]) <= 1024:
            return "payload.summary"
        if not isinstance(p.get("source"), str) or not p["source"]:
            return "payload.source"
        if p.get("severity") not in ("critical", "error", "warning", "info"):
            return "payload.severity"
        if "timestamp" in p and not (isinstance(p["timestamp"], str) and p["timestamp"].endswith("Z")):
            return "payload.timestamp"
        for k in p:
            if k not in ("summary", "source", "severity", "timestamp", "component", "group", "class", "custom_details"):
                return f"unknown payload field {k}"
    return None


async def stream_messages(url, stream):
    import nats
    nc = await nats.connect(url)
    js = nc.jetstream()
    info = await js.stream_info(stream)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        m = await js.get_msg(stream, seq)
        out.append((m.headers or {}, json.loads(m.data)))
    await nc.close()
    return out


@pytest.mark.skipif(bool(os.environ.get("TRIPLINE_TEST_POSTGRES")), reason="store-independent: runs in the SQLite pass")
def test_slack_pagerduty_and_nats_receivers_get_group_notifications(tmp_path):
    data = tmp_path / "data"
    token = make_token(data)
    port = free_port()
    nats_proc = subprocess.Popen([NATS, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(tmp_path / "js")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    slack, pd = Fake(slack_check), Fake(pagerduty_check)
    srv = Server(data).start()
    srv.token = token
    try:
        wait_port(port, nats_proc, "nats-server")
        srv.ok("POST", "/v1/zones", YARD)
        srv.ok("POST", "/v1/rules", dict(ENTER_YARD, annotations={"summary": "{{entity}} entered {{zone}}"}))
        s = srv.ok("POST", "/v1/webhooks", {"kind": "slack", "url": slack.url})
        p = srv.ok("POST", "/v1/webhooks", {"kind": "pagerduty", "url": pd.url, "routing_key": "R0UT1NGKEY0123456789abcdef012345"})
        n = srv.ok("POST", "/v1/webhooks", {"kind": "nats", "url": f"nats://127.0.0.1:{port}", "subject": "alerts.yard", "stream": "TRIPLINE_ALERTS"})
        assert s["kind"] == "slack" and p["kind"] == "pagerduty" and "routing_key" not in json.dumps(srv.ok("GET", "/v1/webhooks"))
        # Bad receivers are refused, naming the field.
        for body, frag in [({"kind": "pagerduty", "url": pd.url}, "routing_key"), ({"kind": "nats", "url": "nats://127.0.0.1:1", "subject": "a.*"}, "subject"),
                           ({"kind": "slack", "url": slack.url, "subject": "x"}, "/subject is not a field of a slack receiver"),
                           ({"kind": "slack", "url": slack.url, "template": "{{#a}}"}, "/template is not a valid Mustache template"),
                           ({"kind": "smoke", "url": slack.url}, "/kind")]:
            status, _, out = srv.request("POST", "/v1/webhooks", body)
            assert status == 400 and frag in out["message"], (body, out)
        srv.ok("PUT", "/v1/policy", {"route": {"receiver": s["id"], "group_by": ["zone"], "group_wait": "500ms", "routes": [
            {"matchers": ['rule="in-yard"'], "receiver": p["id"], "continue": True},
            {"matchers": ['rule="in-yard"'], "receiver": n["id"], "continue": True},
            {"matchers": ['rule="in-yard"'], "receiver": s["id"]}]}})
        srv.ok("POST", "/v1/events", enters(["t1", "t2", "t3"], 0))
        assert wait_until(lambda: slack.got and pd.got, 30), (slack.refused, pd.refused)
        assert not slack.refused and not pd.refused
        text = slack.got[0]["text"]
        assert "3 firing" in text and "t1 in yard" in text and "t1 entered yard" in text, text
        ev = pd.got[0]
        assert ev["event_action"] == "trigger" and ev["payload"]["severity"] == "info" and ev["payload"]["source"] == "tripline"
        assert ev["dedup_key"].startswith("tripline-grp-") and "t1 entered yard" in ev["payload"]["summary"]
        def published():
            return asyncio.run(stream_messages(f"nats://127.0.0.1:{port}", "TRIPLINE_ALERTS"))
        assert wait_until(lambda: len(published()) >= 1, 30)
        msgs = published()
        assert len(msgs) == 1
        headers, body = msgs[0]
        assert headers.get("Nats-Msg-Id", "").startswith("grp-") and headers["Nats-Msg-Id"] == body["key"]
        assert sorted(a["labels"]["entity"] for a in body["alerts"]) == ["t1", "t2", "t3"]
        deliveries = srv.ok("GET", "/v1/webhooks/deliveries?limit=100")["deliveries"]
        assert sorted(d["state"] for d in deliveries) == ["delivered"] * 3, deliveries
    finally:
        srv.stop()
        slack.close()
        pd.close()
        nats_proc.kill()
        nats_proc.wait()


MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def start_broker(tmp_path, port):
    """mosquitto on loopback (a configuration file: mosquitto 2 listens only where told)."""
    conf = tmp_path / "mosquitto.conf"
    (tmp_path / "mq").mkdir(exist_ok=True)
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {tmp_path / 'mq'}/\n")
    p = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, p, "mosquitto")
    return p


class Subscriber:
    """A paho-mqtt subscriber at QoS 1 with a persistent session, recording (topic, qos, payload);
    it reconnects by itself when the broker comes back."""

    def __init__(self, port, topic):
        import threading
        import paho.mqtt.client as mqtt
        self.got = []
        subscribed = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="tripline-test-sub", clean_session=False)
        self.c.reconnect_delay_set(min_delay=0.1, max_delay=0.5)
        self.c.on_message = lambda c, u, m: self.got.append((m.topic, m.qos, json.loads(m.payload)))
        self.c.on_subscribe = lambda c, u, mid, codes, props: subscribed.set()
        self.c.connect("127.0.0.1", port)
        self.c.subscribe(topic, qos=1)
        self.c.loop_start()
        # The broker drops what is published before the subscription is in place.
        assert subscribed.wait(30), "the broker never acknowledged the test's subscription"

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


@pytest.mark.skipif(bool(os.environ.get("TRIPLINE_TEST_POSTGRES")), reason="store-independent: runs in the SQLite pass")
def test_mqtt_receiver_publishes_at_qos1_to_a_real_broker_and_dead_letters_are_redriven(tmp_path):
    data = tmp_path / "data"
    token = make_token(data)
    port = free_port()
    broker = start_broker(tmp_path, port)
    srv = Server(data, "--webhook-backoff", "200ms", "--webhook-max-attempts", "3").start()
    srv.token = token
    sub = None
    try:
        sub = Subscriber(port, "tripline/#")
        srv.ok("POST", "/v1/zones", YARD)
        srv.ok("POST", "/v1/rules", ENTER_YARD)
        m = srv.ok("POST", "/v1/webhooks", {"kind": "mqtt", "url": f"mqtt://127.0.0.1:{port}", "topic": "tripline/yard"})
        status, _, out = srv.request("POST", "/v1/webhooks", {"kind": "mqtt", "url": f"mqtt://127.0.0.1:{port}", "topic": "tripline/#"})
        assert status == 400 and "topic" in out["message"]
        srv.ok("PUT", "/v1/policy", {"route": {"receiver": m["id"], "group_by": ["entity"], "group_wait": "0s"}})
        srv.ok("POST", "/v1/events", enters(["t1", "t2"], 0))
        assert wait_until(lambda: len(sub.got) == 2, 30), sub.got
        assert all(t == "tripline/yard" and q == 1 and b["key"].startswith("grp-") for t, q, b in sub.got)
        assert sorted(b["alerts"][0]["labels"]["entity"] for _, _, b in sub.got) == ["t1", "t2"]
        # The broker goes away: the delivery fails, is retried, and becomes a dead letter.
        sub.close()
        sub = None
        broker.terminate()
        broker.wait()
        srv.ok("POST", "/v1/events", enters(["t3"], 100))
        assert wait_until(lambda: len(srv.ok("GET", "/v1/webhooks/deliveries?state=dead")["deliveries"]) == 1, 60)
        dead = srv.ok("GET", "/v1/webhooks/deliveries?state=dead")["deliveries"][0]
        assert dead["attempts"] == 3 and dead["last_error"], dead
        # Back: a re-drive delivers it, under the same key.
        broker = start_broker(tmp_path, port)
        sub = Subscriber(port, "tripline/#")
        assert srv.ok("POST", "/v1/webhooks/deliveries/redrive", {})["redriven"] == 1
        assert wait_until(lambda: any(b["alerts"][0]["labels"]["entity"] == "t3" for _, _, b in sub.got), 30), srv.ok("GET", "/v1/webhooks/deliveries")
        key = next(b["key"] for _, _, b in sub.got if b["alerts"][0]["labels"]["entity"] == "t3")
        assert key == dead["webhook_id"]
        assert [d["state"] for d in srv.ok("GET", "/v1/webhooks/deliveries")["deliveries"]] == ["delivered"] * 3
    finally:
        srv.stop()
        if sub:
            sub.close()
        broker.kill()
        broker.wait()


class MailSink:
    """aiosmtpd on loopback, keeping each message's envelope and parsed content."""

    def __init__(self, port, refuse_first=0):
        from aiosmtpd.controller import Controller
        from email import message_from_bytes, policy
        self.messages = []
        self.refuse = refuse_first
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                if outer.refuse > 0:
                    outer.refuse -= 1
                    return "451 try again later"
                outer.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content, policy=policy.default)))
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=port)
        self.controller.start()

    def close(self):
        self.controller.stop()


@pytest.mark.skipif(bool(os.environ.get("TRIPLINE_TEST_POSTGRES")), reason="store-independent: runs in the SQLite pass")
def test_email_receiver_sends_each_notification_over_smtp_with_its_key_as_message_id(tmp_path):
    data = tmp_path / "data"
    token = make_token(data)
    port = free_port()
    sink = MailSink(port, refuse_first=1)
    srv = Server(data, "--webhook-backoff", "200ms").start()
    srv.token = token
    try:
        srv.ok("POST", "/v1/zones", YARD)
        srv.ok("POST", "/v1/rules", dict(ENTER_YARD, annotations={"summary": "{{entity}} entered {{zone}}", "runbook_url": "https://wiki.example/yard"}))
        for body, frag in [({"kind": "email", "url": f"smtp://127.0.0.1:{port}", "to": "ops@depot.example"}, "from"),
                           ({"kind": "email", "url": f"smtp://127.0.0.1:{port}", "from": "t@x.example", "to": "ops@depot.example, not an address"}, "/to"),
                           ({"kind": "email", "url": "http://127.0.0.1:1", "from": "t@x.example", "to": "a@b.example"}, "smtp://")]:
            status, _, out = srv.request("POST", "/v1/webhooks", body)
            assert status == 400 and frag in out["message"], (body, out)
        e = srv.ok("POST", "/v1/webhooks", {"kind": "email", "url": f"smtp://127.0.0.1:{port}", "from": "tripline@depot.example",
                                             "to": "ops@depot.example, night@depot.example", "subject": "[{{status}}] {{count_firing}} in {{group_text}}"})
        srv.ok("PUT", "/v1/policy", {"route": {"receiver": e["id"], "group_by": ["zone"], "group_wait": "300ms"}})
        srv.ok("POST", "/v1/events", enters(["t1", "t2"], 0))
        # The first attempt is refused with a 451 (temporary): retried, then accepted.
        assert wait_until(lambda: len(sink.messages) == 1, 30), srv.ok("GET", "/v1/webhooks/deliveries")
        mail_from, rcpts, msg = sink.messages[0]
        assert mail_from == "tripline@depot.example" and rcpts == ["ops@depot.example", "night@depot.example"]
        assert msg["Subject"] == "[firing] 2 in zone=yard", msg["Subject"]
        d = srv.ok("GET", "/v1/webhooks/deliveries")["deliveries"][0]
        assert msg["Message-ID"] == f"<{d['webhook_id']}@tripline>" and d["attempts"] == 2 and d["state"] == "delivered", d
        text = msg.get_content()
        assert "t1 entered yard" in text and "t2 entered yard" in text and "runbook: https://wiki.example/yard" in text, text
    finally:
        srv.stop()
        sink.close()


@pytest.mark.skipif(bool(os.environ.get("TRIPLINE_TEST_POSTGRES")), reason="store-independent: runs in the SQLite pass")
def test_payload_templates_of_webhook_and_mqtt_receivers(tmp_path):
    """A `template` replaces the JSON of a group notification: the webhook body (still signed
    under the key) and the MQTT payload."""
    import paho.mqtt.client as mqtt
    data = tmp_path / "data"
    token = make_token(data)
    port = free_port()
    broker = start_broker(tmp_path, port)
    hook = Fake(lambda doc, headers: None if headers.get("webhook-id", "").startswith("grp-") else "webhook-id")
    got = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="tpl-sub")
    sub.on_message = lambda c, u, m: got.append(m.payload.decode())
    sub.connect("127.0.0.1", port)
    sub.subscribe("tripline/summary", qos=1)
    sub.loop_start()
    srv = Server(data).start()
    srv.token = token
    try:
        srv.ok("POST", "/v1/zones", YARD)
        srv.ok("POST", "/v1/rules", ENTER_YARD)
        status, _, out = srv.request("POST", "/v1/webhooks", {"url": hook.url, "template": "{{#alerts}"})
        assert status == 400 and "/template" in out["message"], out
        w = srv.ok("POST", "/v1/webhooks", {"url": hook.url, "template": '{"n": {{count_firing}}, "where": "{{group_text}}", "key": "{{key}}"}'})
        m = srv.ok("POST", "/v1/webhooks", {"kind": "mqtt", "url": f"mqtt://127.0.0.1:{port}", "topic": "tripline/summary",
                                             "template": "{{count_firing}} firing at {{group_labels.zone}}: {{#alerts}}{{labels.entity}} {{/alerts}}"})
        assert w["template"].startswith('{"n"') and m["template"].startswith("{{count_firing}}")
        srv.ok("PUT", "/v1/policy", {"route": {"receiver": w["id"], "group_by": ["zone"], "group_wait": "300ms",
                                               "routes": [{"matchers": ['rule="in-yard"'], "receiver": m["id"], "continue": True},
                                                          {"matchers": ['rule="in-yard"'], "receiver": w["id"]}]}})
        srv.ok("POST", "/v1/events", enters(["t1", "t2"], 0))
        assert wait_until(lambda: hook.got and got, 30), (hook.refused, got)
        body = hook.got[0]
        assert body["n"] == 2 and body["where"] == "zone=yard" and body["key"].startswith("grp-"), body
        assert got[0] == "2 firing at yard: t1 t2 ", got
    finally:
        srv.stop()
        hook.close()
        sub.loop_stop()
        broker.kill()
        broker.wait()
