"""Active/standby on one PostgreSQL database: two `tripline serve --standby` processes, the
active one killed with kill -9 mid-stream, the client re-sending what was not acknowledged to
the standby once it has taken over. Runs only with TRIPLINE_TEST_POSTGRES (scripts/test and CI
set it); with TRIPLINE_FAILOVER_REPORT naming a file, each run appends its timings there."""
import http.client
import json
import os
import random
import shutil
import socket
import threading
import time
import urllib.error

import pytest

from conftest import PG, replayed_workload, run, store_url
from server import Server, batches, canonical, make_token, wait_until
from test_webhooks import Receiver

pytestmark = pytest.mark.skipif(not PG, reason="active/standby needs PostgreSQL (set TRIPLINE_TEST_POSTGRES)")

RUNS = 10


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    """Every event has an id, so a re-sent batch that was committed comes back as duplicates."""
    w = replayed_workload(tmp_path_factory.mktemp("failover-workload"), zones=200, entities=1000, events=12000, rules=30, seed=23, jitter=True)
    assert len(w["alerts"]) > 300
    return w


def post(srv, body):
    """POST /v1/events; (status, answer, headers), or (None, error, {}) when the connection failed."""
    try:
        status, hdrs, out = srv.request("POST", "/v1/events", body, content_type="application/x-ndjson", timeout=10)
        return status, out, hdrs
    except (ConnectionError, socket.timeout, OSError, urllib.error.URLError, http.client.HTTPException) as e:
        # HTTPException covers a kill between the answer's head and its body
        # (IncompleteRead): the client never read the answer, so the batch is unanswered.
        return None, str(e), {}


@pytest.mark.parametrize("run_no", range(RUNS))
def test_kill_9_of_the_active_server_the_standby_takes_over(tmp_path, workload, run_no):
    rng = random.Random(1000 + run_no)
    d = workload["dir"]
    a_data, b_data = tmp_path / "a", tmp_path / "b"
    token = make_token(a_data)
    url = store_url(a_data)
    # The standby needs the active server's pseudonym key (docs/operations.md).
    b_data.mkdir()
    shutil.copy(a_data / "pseudonym.key", b_data / "pseudonym.key")
    hook = Receiver(lambda attempt: "ok")
    a = Server(a_data, "--store", url, "--standby").start()
    a.token = token
    b = Server(b_data, "--store", url, "--standby").start()
    b.token = token
    try:
        # Roles: the first is active, the second stands by and names it.
        assert a.ok("GET", "/healthz", token=None)["role"] == "active"
        assert wait_until(lambda: b.ok("GET", "/healthz", token=None).get("active") == a.url, timeout=10)
        assert b.ok("GET", "/healthz", token=None)["role"] == "standby"
        a.ok("POST", "/v1/zones", (d / "zones.geojson").read_text(), content_type="application/geo+json")
        a.ok("POST", "/v1/entities", (d / "entities.ndjson").read_text(), content_type="application/x-ndjson")
        a.ok("POST", "/v1/rules", (d / "rules-mixed.json").read_text(), content_type="application/json")
        a.ok("POST", "/v1/webhooks", {"url": hook.url})
        # The standby reads the store; writes and engine reads get 503 and the active's address.
        assert len(b.ok("GET", "/v1/zones")["features"]) == 200
        status, hdrs, out = b.request("POST", "/v1/events", '{"entity":"x","time":1,"type":"position","lon":0,"lat":0}\n',
                                      content_type="application/x-ndjson")
        assert status == 503 and out["error"] == "standby" and out["active"] == a.url, out
        assert hdrs.get("Tripline-Active") == a.url and hdrs.get("Retry-After") == "1"
        assert b.request("GET", "/v1/positions")[0] == 503

        all_batches = batches(d / "events.ndjson", 600)
        kill_at = rng.randrange(3, len(all_batches) - 3)
        forget, resent_committed = run_no % 2 == 1, 0
        target, duplicates, killed_at, first_ack, acked, latencies = a, 0, None, None, set(), []
        i = 0
        while i < len(all_batches):
            body = "".join(all_batches[i])
            if i == kill_at and target is a:
                # kill -9 while this batch is on the wire: the client does not know its fate.
                def kill():
                    nonlocal killed_at
                    a.kill9()
                    killed_at = time.monotonic()
                # At a moment spread over a batch's usual round trip, so that some runs kill
                # before the commit, some between the commit and the answer (the batch comes
                # back as duplicates), and some after the answer.
                typical = sorted(latencies)[len(latencies) // 2]
                killer = threading.Timer(rng.uniform(0.3, 1.1) * typical, kill)
                killer.start()
                status, out, _ = post(a, body)
                killer.join()
                outcome = "answered" if status == 200 else "unanswered"
                if status == 200:
                    acked.add(i)  # acknowledged before the kill: it must survive
                    duplicates += out["duplicates"]
                    i += 1
                target = b
                if forget:
                    # A client that lost the answer to the batch before (acknowledged, so
                    # committed) re-sends it too: the new active server must know its events.
                    i = kill_at - 1
                    resent_committed = len(all_batches[i])
                continue
            started = time.monotonic()
            status, out, hdrs = post(target, body)
            if target is a:
                latencies.append(time.monotonic() - started)
            if status == 200:
                if target is b and first_ack is None:
                    first_ack = time.monotonic()
                duplicates += out["duplicates"]
                acked.add(i)
                i += 1
                continue
            # Not acknowledged: the standby is still taking over (503), or the connection failed.
            assert target is b and status in (503, None), (status, out)
            assert time.monotonic() - killed_at < 30, "the standby did not take over within 30 s"
            time.sleep(0.02)
        assert acked == set(range(len(all_batches)))
        b.ok("POST", "/v1/watermark", {"until": workload["until"]})
        # The same alerts as an uninterrupted run; every acknowledged event applied exactly once.
        alerts = b.all_alerts()
        assert [canonical(x) for x in alerts] == workload["alerts"]
        st = b.ok("GET", "/v1/status")
        assert st["events_applied"] == workload["events"], "an acknowledged event was lost or applied twice"
        assert st["duplicates"] == duplicates
        assert duplicates >= resent_committed, "a committed batch sent again was applied again"
        assert b.ok("GET", "/healthz", token=None)["role"] == "active"
        # Every alert reaches the receiver; one delivered twice (in flight when the active died)
        # comes again under its webhook-id with the same alert.
        assert wait_until(lambda: b.ok("GET", "/v1/webhooks/deliveries?state=pending&limit=1")["deliveries"] == [], timeout=60)
        with hook.lock:
            received = list(hook.received)
        by_id = {}
        for wid, _, _, body in received:
            msg = json.loads(body)  # Standard Webhooks: its `timestamp` is the attempt's own
            by_id.setdefault(wid, set()).add(json.dumps([msg["type"], msg["data"]], sort_keys=True))
        assert set(by_id) == {f"alert-{x['id']}" for x in alerts}
        assert all(len(bodies) == 1 for bodies in by_id.values()), "a webhook-id was sent with two different alerts"
        # The audit chain stays whole across two writers and records the takeover.
        assert b.ok("GET", "/v1/audit/verify")["ok"] is True
        takeovers = [r for r in b.ok("GET", "/v1/audit?limit=1000")["records"] if r["action"] == "server.takeover"]
        assert len(takeovers) == 1 and takeovers[0]["detail"]["url"] == b.url
        # The old active, restarted, stands by behind the new one.
        a2 = Server(a_data, "--store", url, "--standby").start()
        try:
            h = a2.ok("GET", "/healthz", token=None)
            assert h["role"] == "standby" and h["active"] == b.url
        finally:
            a2.stop()
        report = {"run": run_no, "kill_at_batch": kill_at, "in_flight_batch": outcome, "failover_seconds": round(first_ack - killed_at, 3),
                  "forgot_an_answer": forget, "resent_duplicates": duplicates, "redelivered_webhooks": len(received) - len(by_id)}
        print("failover", json.dumps(report))
        if os.environ.get("TRIPLINE_FAILOVER_REPORT"):
            with open(os.environ["TRIPLINE_FAILOVER_REPORT"], "a") as f:
                f.write(json.dumps(report) + "\n")
    finally:
        a.stop()
        b.stop()
        hook.close()


def test_an_active_server_that_loses_its_lease_stops_and_the_standby_takes_over(tmp_path):
    """The active server's lease session ends without the process dying (here PostgreSQL
    terminates it, as when the connection breaks): the server exits with status 1 rather than
    go on beside the standby that now takes the lease."""
    from conftest import db_name, psql
    a_data, b_data = tmp_path / "a", tmp_path / "b"
    token = make_token(a_data)
    url = store_url(a_data)
    b_data.mkdir()
    shutil.copy(a_data / "pseudonym.key", b_data / "pseudonym.key")
    a = Server(a_data, "--store", url, "--standby").start()
    a.token = token
    b = Server(b_data, "--store", url, "--standby").start()
    b.token = token
    try:
        a.ok("POST", "/v1/events", '{"entity":"t1","time":1000,"type":"position","lon":0.5,"lat":0.5,"id":"e1"}\n')
        assert b.ok("GET", "/healthz", token=None)["role"] == "standby"
        ended = psql("SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 "
                     f"AND objid = 7311504 AND database = (SELECT oid FROM pg_database WHERE datname = '{db_name(a_data)}')")
        assert ended.strip() == "1"
        a.proc.wait(timeout=10)
        assert a.proc.returncode == 1
        assert "lost the connection holding the active lease" in a.proc.stderr.read()
        assert wait_until(lambda: b.ok("GET", "/healthz", token=None)["role"] == "active", timeout=15)
        out = b.ok("POST", "/v1/events", '{"entity":"t1","time":1000,"type":"position","lon":0.5,"lat":0.5,"id":"e1"}\n'
                                         '{"entity":"t1","time":2000,"type":"position","lon":0.6,"lat":0.5,"id":"e2"}\n')
        assert out["duplicates"] == 1 and out["received"] == 2
    finally:
        a.stop()
        b.stop()
