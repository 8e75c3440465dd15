"""Event sources users run: a NATS JetStream stream read as input, at least once, with
duplicates removed by event id, across kill -9."""
import asyncio
import json
import os
import random
import shutil
import subprocess
import time

import pytest

from server import ENTER_YARD, YARD, Server, make_token, wait_until
from test_cluster import free_port, wait_port

NATS = shutil.which("nats-server") or "/usr/sbin/nats-server"
pytestmark = pytest.mark.skipif(bool(os.environ.get("TRIPLINE_TEST_POSTGRES")), reason="store-independent: runs in the SQLite pass")


async def publish(url, items, stream=None):
    import nats
    nc = await nats.connect(url)
    js = nc.jetstream()
    if stream:
        await js.add_stream(name=stream, subjects=["events.>"])
    for subject, data in items:
        await js.publish(subject, data.encode())
    await nc.close()


def entity_events(name, t, with_id=True):
    """Outside, then inside the yard: one enter alert."""
    out = []
    for k, (lon, t1) in enumerate([(2.5, t), (0.5, t + 1)]):
        ev = {"entity": name, "time": t1, "type": "position", "lon": lon, "lat": 0.5}
        if with_id:
            ev["id"] = f"{name}-{k}"
        out.append(json.dumps(ev))
    return out


def test_nats_input_applies_each_event_once_across_kill9_and_skips_bad_messages(tmp_path):
    port = free_port()
    nats_proc = subprocess.Popen([NATS, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(tmp_path / "js")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"nats://127.0.0.1:{port}"
    data = tmp_path / "data"
    token = make_token(data)
    args = ("--nats-input", url, "--nats-input-stream", "EVENTS", "--nats-input-subject", "events.>")
    srv = None
    try:
        wait_port(port, nats_proc, "nats-server")
        asyncio.run(publish(url, [], stream="EVENTS"))
        srv = Server(data, *args).start()
        srv.token = token
        srv.ok("POST", "/v1/zones", YARD)
        srv.ok("POST", "/v1/rules", ENTER_YARD)
        rng = random.Random(3)
        names, t = [], 0
        for round_ in range(5):
            batch = []
            for i in range(rng.randint(20, 60)):
                name = f"r{round_}-e{i}"
                names.append(name)
                # Some entities' two events come as one NDJSON message, some as two messages.
                evs = entity_events(name, t)
                t += 2
                if i % 3 == 0:
                    batch.append((f"events.{name}", "\n".join(evs)))
                else:
                    batch += [(f"events.{name}", e) for e in evs]
            if round_ == 2:
                batch.append(("events.bad", '{"entity":"x","time":1,"type":"position","lng":1}'))
            asyncio.run(publish(url, batch))
            time.sleep(rng.uniform(0, 0.4))
            srv.kill9()
            srv = Server(data, *args).start()
            srv.token = token
        # A final clock event moves the watermark past the last positions.
        asyncio.run(publish(url, [("events.clock", json.dumps({"entity": "clock", "id": "clock-1", "time": t + 10, "type": "ping"}))]))
        assert wait_until(lambda: len(srv.all_alerts()) >= len(names), 60), len(srv.all_alerts())
        time.sleep(1)
        alerts = srv.all_alerts()
        got = sorted(a["key"]["entity"] for a in alerts)
        assert got == sorted(names), (len(got), len(names))
    finally:
        if srv:
            srv.stop()
        nats_proc.kill()
        nats_proc.wait()


def mqtt_publish(port, items):
    """Publishes (topic, payload) at QoS 1 and waits for each PUBACK."""
    import paho.mqtt.client as mqtt
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{random.random()}")
    c.connect("127.0.0.1", port)
    c.loop_start()
    for topic, data in items:
        c.publish(topic, data, qos=1).wait_for_publish(10)
    c.loop_stop()
    c.disconnect()


def metric(srv, name):
    """A sample of the server's /metrics (0 when absent)."""
    for line in srv.ok("GET", "/metrics").splitlines():
        if line and not line.startswith("#") and line.rsplit(" ", 1)[0] == name:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait_mqtt_subscribed(srv, port, tag):
    """Waits until the server's MQTT session receives what is published: publishes a ping
    event (entity "probe", an id of its own each try) until the server has received one. The
    broker drops what is published before a session subscribes, so a fixed pause here would be
    a race."""
    before = metric(srv, "tripline_events_received_total")
    for k in range(100):
        mqtt_publish(port, [("gateways/probe", json.dumps({"entity": "probe", "id": f"probe-{tag}-{k}", "time": 0, "type": "ping"}))])
        if wait_until(lambda: metric(srv, "tripline_events_received_total") > before, 1):
            return
    raise AssertionError("the server's MQTT input never received a published message")


def mqtt_input(tmp_path):
    """mosquitto on loopback; returns it, its port, and a function that starts a server (on
    the data folder tmp_path/data, with its admin token) reading two topic filters from it."""
    from test_receivers import start_broker
    port = free_port()
    broker = start_broker(tmp_path, port)
    data = tmp_path / "data"
    token = make_token(data)
    args = ("--mqtt-input", f"mqtt://127.0.0.1:{port}", "--mqtt-input-topic", "devices/+/events", "--mqtt-input-topic", "gateways/#")

    def start():
        srv = Server(data, *args).start()
        srv.token = token
        return srv
    return broker, port, start


def test_mqtt_input_applies_each_event_once_across_kill9_including_what_arrives_while_down(tmp_path):
    broker, port, start = mqtt_input(tmp_path)
    srv = start()
    try:
        srv.ok("POST", "/v1/zones", YARD)
        srv.ok("POST", "/v1/rules", ENTER_YARD)
        wait_mqtt_subscribed(srv, port, "first")  # the server's first subscription makes its session
        rng = random.Random(5)
        names, t = [], 0
        for round_ in range(5):
            batch = []
            for i in range(rng.randint(20, 50)):
                name = f"m{round_}-e{i}"
                names.append(name)
                evs = entity_events(name, t)
                t += 2
                topic = f"devices/{name}/events" if i % 2 else "gateways/g1"
                if i % 3 == 0:
                    batch.append((topic, "\n".join(evs)))
                else:
                    batch += [(topic, e) for e in evs]
            if round_ == 1:
                batch.append(("gateways/g1", '{"entity":"x","time":1,"type":"position","lng":1}'))
            mqtt_publish(port, batch[: len(batch) // 2])
            time.sleep(rng.uniform(0, 0.3))
            srv.kill9()
            # Published while the server is down: the broker keeps it for the session.
            mqtt_publish(port, batch[len(batch) // 2:])
            srv = start()
        mqtt_publish(port, [("gateways/g1", json.dumps({"entity": "clock", "id": "clock-1", "time": t + 10, "type": "ping"}))])
        assert wait_until(lambda: len(srv.all_alerts()) >= len(names), 60), len(srv.all_alerts())
        time.sleep(1)
        got = sorted(a["key"]["entity"] for a in srv.all_alerts())
        assert got == sorted(names), (len(got), len(names))
    finally:
        srv.stop()
        broker.kill()
        broker.wait()


def test_mqtt_input_acknowledges_every_message_of_a_burst(tmp_path):
    """Messages that arrive back to back are ingested as one batch; each must be acknowledged
    (MQTT acknowledges packet by packet). One left unacknowledged holds one of the broker's
    in-flight places for the session and is delivered again on the next connection, so after a
    clean stop and a restart the server must receive no message twice: a marker published after
    the restart arrives after any such redelivery."""
    broker, port, start = mqtt_input(tmp_path)
    srv = start()
    try:
        srv.ok("POST", "/v1/zones", YARD)
        srv.ok("POST", "/v1/rules", ENTER_YARD)
        wait_mqtt_subscribed(srv, port, "first")
        names, batch = [], []
        for i in range(150):
            name = f"b-e{i}"
            names.append(name)
            batch += [(f"devices/{name}/events", e) for e in entity_events(name, 2 * i)]
        mqtt_publish(port, batch)
        mqtt_publish(port, [("gateways/g1", json.dumps({"entity": "clock", "id": "clock-1", "time": 400, "type": "ping"}))])
        assert wait_until(lambda: len(srv.all_alerts()) >= len(names), 60), len(srv.all_alerts())
        assert sorted(a["key"]["entity"] for a in srv.all_alerts()) == sorted(names)
        assert metric(srv, "tripline_events_duplicate_total") == 0
        srv.stop()
        srv = start()
        received = metric(srv, "tripline_events_received_total")
        mqtt_publish(port, [("gateways/g1", json.dumps({"entity": "clock", "id": "clock-2", "time": 401, "type": "ping"}))])
        assert wait_until(lambda: metric(srv, "tripline_events_received_total") > received, 60)
        assert metric(srv, "tripline_events_duplicate_total") == 0, "messages acknowledged late or never came again"
        assert metric(srv, "tripline_events_received_total") == received + 1
    finally:
        srv.stop()
        broker.kill()
        broker.wait()
