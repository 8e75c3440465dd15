"""The cluster mode on NATS JetStream against `tripline replay` of the same arrival order:
real nats-server processes on loopback, real worker processes, kill -9.

Runs once (in the conformance pass without TRIPLINE_TEST_POSTGRES): the cluster does not use
the server's store."""
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import BIN, run
from server import Server, canonical, make_token, wait_until

pytestmark = pytest.mark.skipif(bool(os.environ.get("TRIPLINE_TEST_POSTGRES")), reason="store-independent: runs in the SQLite pass")

NATS = shutil.which("nats-server") or "/usr/sbin/nats-server"


_taken = set()


def free_port():
    """A free port below the kernel's ephemeral range: a port the kernel hands out (bind to 0)
    can be taken again by an outgoing connection (the servers' routes) before the server that
    was meant to listen on it starts."""
    import random
    for _ in range(500):
        p = random.randrange(20000, 32000)
        if p in _taken:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            s.close()
        _taken.add(p)
        return p
    raise AssertionError("no free port")


def wait_port(port, proc, what, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{what} did not listen on {port}")


class NatsCluster:
    """`n` nats-server processes with JetStream on loopback, routed into one cluster (n > 1)."""

    def __init__(self, root, n):
        self.root = pathlib.Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.n = n
        self.client = [free_port() for _ in range(n)]
        self.route = [free_port() for _ in range(n)]
        self.procs = [None] * n
        for i in range(n):
            self.start(i)
        for i in range(n):
            wait_port(self.client[i], self.procs[i], f"nats-server {i}")

    def args(self, i):
        a = [NATS, "-js", "-a", "127.0.0.1", "-p", str(self.client[i]), "-sd", str(self.root / f"n{i}"), "-n", f"n{i}"]
        if self.n > 1:
            a += ["--cluster_name", "tripline", "--cluster", f"nats://127.0.0.1:{self.route[i]}",
                  "--routes", ",".join(f"nats://127.0.0.1:{self.route[j]}" for j in range(self.n) if j != i)]
        return a

    def start(self, i):
        self.procs[i] = subprocess.Popen(self.args(i), stdout=subprocess.DEVNULL, stderr=open(self.root / f"n{i}.log", "ab"))

    def kill(self, i):
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait()

    @property
    def urls(self):
        return ",".join(f"nats://127.0.0.1:{p}" for p in self.client)

    def stop(self):
        for p in self.procs:
            if p and p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait()


def stop_all(workers, nats):
    """kill -9 of every worker still running, then of the servers."""
    for w in workers.values():
        if w.poll() is None:
            w.send_signal(signal.SIGKILL)
            w.wait()
    nats.stop()


def cluster_workload(d, events, seed, lateness_ms):
    """A generated workload with every rule kind, shuffled within the lateness, and the alerts
    `tripline replay` gives for its arrival order."""
    code, _, err = run("generate", "--out", d, "--zones", 150, "--entities", 400, "--events", events,
                       "--reading-share", 0.2, "--contact-share", 0.1, "--custom-share", 0.1, "--id-share", 0.3,
                       "--mixed-rules", 20, "--jitter", "--seed", seed, "--shuffle", f"{lateness_ms}ms")
    assert code == 0, err
    d = pathlib.Path(d)
    # A client re-sending: a stretch of lines sent again later (those with ids are duplicates
    # or late, those without are late or new arrivals under fresh assigned ids).
    lines = (d / "events.ndjson").read_text().splitlines()
    k = len(lines) // 3
    lines[2 * k:2 * k] = lines[k:k + 800] + lines[2 * k - 300:2 * k]
    (d / "events.ndjson").write_text("\n".join(lines) + "\n")
    times = [json.loads(l)["time"] for l in lines]
    until = max(times) + 3_600_000
    code, out, err = run("replay", "--zones", d / "zones.geojson", "--entities", d / "entities.ndjson", "--rules", d / "rules-mixed.json",
                         "--allowed-lateness", f"{lateness_ms}ms", "--until", until, d / "events.ndjson")
    assert code == 0, err
    return until, out.splitlines()


def start_worker(urls, name, log_dir):
    return subprocess.Popen([BIN, "worker", "--cluster", urls, "--id", name], stdout=subprocess.DEVNULL,
                            stderr=open(pathlib.Path(log_dir) / f"worker-{name}.log", "ab"))


def publish_with_events(urls, events_file, until, at):
    """Publishes the file; calls at[share]() when the gateway reports that share published."""
    p = subprocess.Popen([BIN, "cluster", "publish", "--cluster", urls, "--batch", "500", "--until", str(until), str(events_file)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log = []
    for line in p.stderr:
        log.append(line)
        if line.startswith("published ") and line.split()[1].endswith("%"):
            share = int(line.split()[1][:-1])
            for k in sorted(list(at)):
                if share >= k:
                    at.pop(k)()
    assert p.wait() == 0, "".join(log)
    assert not at, f"never reached: {sorted(at)}"
    return "".join(log)


def read_alerts(urls, until, timeout="180s"):
    code, out, err = run("cluster", "alerts", "--cluster", urls, "--through", until, "--timeout", timeout)
    assert code == 0, err
    return out.splitlines(), err


def test_a_cluster_with_a_worker_killed_mid_stream_gives_the_alerts_of_replay(tmp_path):
    lateness = 5000
    until, expected = cluster_workload(tmp_path / "w", 40_000, 11, lateness)
    assert len(expected) > 1000
    nats = NatsCluster(tmp_path / "nats", 1)
    workers = {}
    try:
        code, _, err = run("cluster", "create", "--cluster", nats.urls, "--partitions", 6, "--allowed-lateness", f"{lateness}ms",
                           "--zones", tmp_path / "w" / "zones.geojson", "--entities", tmp_path / "w" / "entities.ndjson",
                           "--rules", tmp_path / "w" / "rules-mixed.json")
        assert code == 0, err
        # Creating it again with the same settings and files changes nothing; other files or
        # settings are refused, naming what differs.
        code, _, err = run("cluster", "create", "--cluster", nats.urls, "--partitions", 6, "--allowed-lateness", f"{lateness}ms",
                           "--zones", tmp_path / "w" / "zones.geojson", "--entities", tmp_path / "w" / "entities.ndjson",
                           "--rules", tmp_path / "w" / "rules-mixed.json")
        assert code == 0, err
        code, _, err = run("cluster", "create", "--cluster", nats.urls, "--partitions", 7, "--allowed-lateness", f"{lateness}ms",
                           "--zones", tmp_path / "w" / "zones.geojson", "--entities", tmp_path / "w" / "entities.ndjson",
                           "--rules", tmp_path / "w" / "rules-mixed.json")
        assert code != 0 and "6 partitions" in err, err
        code, _, err = run("cluster", "create", "--cluster", nats.urls, "--partitions", 6, "--allowed-lateness", f"{lateness}ms",
                           "--zones", tmp_path / "w" / "zones.geojson", "--entities", tmp_path / "w" / "entities.ndjson")
        assert code != 0 and "different catalog" in err, err
        for name in ("a", "b", "c"):
            workers[name] = start_worker(nats.urls, name, tmp_path)

        def kill_b():
            workers["b"].send_signal(signal.SIGKILL)
            workers["b"].wait()

        publish_with_events(nats.urls, tmp_path / "w" / "events.ndjson", until, {40: kill_b})
        got, err = read_alerts(nats.urls, until)
        assert len(got) == len(expected)
        assert got == expected
        # No alert twice: the lines are the canonical alerts, each once.
        assert len(set(got)) == len(set(expected))
        logs = "".join((tmp_path / f"worker-{n}.log").read_text() for n in ("a", "c"))
        assert "took stage" in logs
    finally:
        stop_all(workers, nats)


def cluster_status(urls):
    code, out, err = run("cluster", "status", "--cluster", urls)
    assert code == 0, err
    return json.loads(out)


# The workload of the three-server test: 60,000 events in CI (time); the closing report ran it with
# TRIPLINE_CLUSTER_EVENTS=500000.
EVENTS = int(os.environ.get("TRIPLINE_CLUSTER_EVENTS", "60000"))


def post_events(srv, path, at, batch=500, lines=None):
    """POSTs the file's lines in batches; calls at[share]() once that share (percent) is posted
    (a call may return another server to post the rest to). Every batch must be acknowledged
    (200): the API node answers only once JetStream has it."""
    lines = lines if lines is not None else [l for l in pathlib.Path(path).read_text().splitlines() if l.strip()]
    for i in range(0, len(lines), batch):
        body = "\n".join(lines[i:i + batch]) + "\n"
        status, _, out = srv.request("POST", "/v1/events", body, content_type="application/x-ndjson", timeout=120)
        assert status == 200, (status, out)
        share = (i + batch) * 100 // len(lines)
        for k in sorted(list(at)):
            if share >= k:
                srv = at.pop(k)() or srv
    assert not at, f"never reached: {sorted(at)}"
    return len(lines)


def api_alerts_when_complete(srv, expected_count, timeout):
    """The API node's alerts once it has stored as many as expected (and a moment more, to
    see that no extra one comes)."""
    assert wait_until(lambda: srv.ok("GET", "/v1/alerts?limit=1")["alerts"] and len(srv.all_alerts()) >= expected_count, timeout=timeout), \
        f"{len(srv.all_alerts())} of {expected_count} alerts stored"
    time.sleep(2)
    return srv.all_alerts()


def test_three_servers_a_killed_worker_and_a_killed_stream_leader_still_give_the_alerts_of_replay_through_the_api(tmp_path):
    lateness = 3000
    until, expected = cluster_workload(tmp_path / "w", EVENTS, 23, lateness)
    assert len(expected) > 1000
    nats = NatsCluster(tmp_path / "nats", 3)
    workers = {}
    report = {}
    nodes = []
    try:
        # A new cluster needs a moment to elect its meta leader: creation is retried until then.
        deadline = time.monotonic() + 30
        while True:
            code, _, err = run("cluster", "create", "--cluster", nats.urls, "--partitions", 6, "--replicas", 3,
                               "--allowed-lateness", f"{lateness}ms", "--zones", tmp_path / "w" / "zones.geojson",
                               "--entities", tmp_path / "w" / "entities.ndjson", "--rules", tmp_path / "w" / "rules-mixed.json")
            if code == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert code == 0, err
        for name in ("a", "b", "c"):
            workers[name] = start_worker(nats.urls, name, tmp_path)
        # The API node joins with an empty store: it takes the cluster's catalog. A second one
        # (its own store) waits for the gateway lease.
        nodes = []
        for name in ("api-1", "api-2"):
            node = Server(tmp_path / name, "--cluster", nats.urls, "--allowed-lateness", f"{lateness}ms", "--max-future", "off")
            node.token = make_token(tmp_path / name)
            nodes.append(node)
        srv = nodes[0].start()
        rules = srv.ok("GET", "/v1/rules")["rules"]
        assert len(rules) == len(json.loads((tmp_path / "w" / "rules-mixed.json").read_text())["rules"])
        standby = threading.Thread(target=nodes[1].start)
        standby.start()
        time.sleep(1)
        assert nodes[1].port is None  # still waiting for the lease

        def kill_worker():
            workers["b"].send_signal(signal.SIGKILL)
            workers["b"].wait()
            report["worker_killed"] = "b"

        def kill_leader():
            leader = cluster_status(nats.urls)["streams"]["EV"]["leader"]
            i = int(leader[1:])
            nats.kill(i)
            report["leader_killed"] = leader
            time.sleep(1.0)
            nats.start(i)

        def kill_api_node():
            # kill -9 between two acknowledged batches: the waiting node takes the lease when
            # it expires, rebuilds the gateway from the stream, and serves; the rest goes there.
            killed = time.monotonic()
            nodes[0].kill9()
            standby.join(timeout=120)
            assert nodes[1].port, "the waiting API node did not take over"
            report["api_failover_seconds"] = round(time.monotonic() - killed, 2)
            return nodes[1]

        began = time.monotonic()
        post_events(srv, tmp_path / "w" / "events.ndjson", {30: kill_api_node, 40: kill_worker, 60: kill_leader})
        srv = nodes[1]
        srv.ok("POST", "/v1/watermark", {"until": until})
        report["post_seconds"] = round(time.monotonic() - began, 2)
        got = api_alerts_when_complete(srv, len(expected), timeout=300)
        report["end_to_end_seconds"] = round(time.monotonic() - began, 2)
        report.update(events=EVENTS, alerts=len(got))
        status = cluster_status(nats.urls)
        report["new_leader"] = status["streams"]["EV"]["leader"]
        assert status["streams"]["EV"]["leader"], status
        # No alert id twice, and the alerts are replay's, in replay's order.
        assert len({a["id"] for a in got}) == len(got)
        assert [canonical(a) for a in got] == [json.loads(l) for l in expected]
        print(json.dumps(report))
        if os.environ.get("TRIPLINE_CLUSTER_REPORT"):
            with open(os.environ["TRIPLINE_CLUSTER_REPORT"], "a") as f:
                f.write(json.dumps(report) + "\n")
    finally:
        for node in nodes:
            node.stop()
        stop_all(workers, nats)


def api_node(data, urls, partitions):
    """A started `serve --cluster` API node on a new store in `data`, with an admin token."""
    srv = Server(data, "--cluster", urls, "--partitions", partitions, "--max-future", "off")
    srv.token = make_token(data)
    return srv.start()


def test_an_api_node_creates_the_cluster_from_its_catalog_and_serves_it_like_a_single_node(tmp_path):
    """serve --cluster on servers with no cluster yet: it creates one; the catalog posted through
    the API before the first event reaches the workers (already running); events and alerts go
    through the API; what the node cannot do on a cluster is refused, saying why."""
    ex = pathlib.Path(__file__).resolve().parents[2] / "examples"
    nats = NatsCluster(tmp_path / "nats", 1)
    workers = {}
    srv = None
    try:
        data = tmp_path / "api"
        srv = api_node(data, nats.urls, 4)
        for name in ("a", "b"):
            workers[name] = start_worker(nats.urls, name, tmp_path)
        srv.ok("POST", "/v1/zones", (ex / "zones.geojson").read_text(), content_type="application/geo+json")
        srv.ok("POST", "/v1/entities", (ex / "entities-all-kinds.ndjson").read_text(), content_type="application/x-ndjson")
        srv.ok("POST", "/v1/rules", (ex / "rules-all-kinds.yaml").read_text(), content_type="application/yaml")
        # A rule that matches nothing here and expires mid-stream: its expiry is audited on
        # the API node, as on one server (the workers run it).
        srv.ok("POST", "/v1/rules", {"id": "short-lived", "kind": "enter", "purpose": "p", "owner": "o", "severity": "low", "match": {"kind": "submarine"},
                                     "zones": {}, "expires": "2026-03-01T10:00:00Z"})
        status = cluster_status(nats.urls)
        assert status["partitions"] == 4
        until = "2026-03-01T18:00:00Z"
        lines = [l for l in (ex / "events-all-kinds.ndjson").read_text().splitlines() if l.strip()]
        half = len(lines) // 2
        post_events(srv, None, {}, batch=7, lines=lines[:half])
        # A restart (SIGTERM gives the gateway lease up) rebuilds the gateway from the stream
        # and carries on; its alerts feed skips what its store already has.
        positions = srv.ok("GET", "/v1/positions")["entities"]
        srv.stop()
        srv.start()
        # The latest positions come back with the gateway's rebuild.
        assert sorted(srv.ok("GET", "/v1/positions")["entities"]) == sorted(positions) and positions
        post_events(srv, None, {}, batch=7, lines=lines[half:])
        n = len(lines)
        srv.ok("POST", "/v1/watermark", {"until": until})
        code, want, err = run("replay", "--zones", ex / "zones.geojson", "--entities", ex / "entities-all-kinds.ndjson",
                              "--rules", ex / "rules-all-kinds.yaml", "--until", until, ex / "events-all-kinds.ndjson")
        assert code == 0, err
        want = [json.loads(l) for l in want.splitlines()]
        assert len(want) >= 10
        got = api_alerts_when_complete(srv, len(want), timeout=60)
        assert [canonical(a) for a in got] == want
        assert [a["id"] for a in got] == list(range(1, len(got) + 1))
        exp = [r for r in srv.ok("GET", "/v1/audit?limit=1000")["records"] if r["action"] == "rule.expire"]
        assert [r["target"] for r in exp] == ["short-lived"], exp
        assert srv.ok("GET", "/v1/rules/short-lived")["status"] == "expired"
        st = srv.ok("GET", "/v1/status")
        assert st["mode"] == "cluster" and st["events_arrived"] == n and st["rules"] > 0
        assert srv.ok("GET", "/v1/positions")["entities"]
        # Routes that read the local event log answer 501 on an API node.
        entity = json.loads((ex / "events-all-kinds.ndjson").read_text().splitlines()[0])["entity"]
        status_code, _, out = srv.request("GET", f"/v1/entities/{entity}/timeline")
        assert status_code == 501 and out["error"] == "not_in_cluster_mode", out
        # Both workers ran through the catalog change (a worker starting while the catalog is
        # being written waits for it).
        assert all(w.poll() is None for w in workers.values()), [(tmp_path / f"worker-{n}.log").read_text() for n in workers]
        # Another node cannot join with a different catalog once there are events.
        other = tmp_path / "other"
        p = subprocess.run([BIN, "serve", "--data", str(other), "--port", "0", "--cluster", nats.urls, "--allowed-lateness", "1s"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode != 0 and "--allowed-lateness 0s" in p.stderr, p.stderr
    finally:
        if srv:
            srv.stop()
        stop_all(workers, nats)


def free_base():
    """A port P with P..P+2 and P+100..P+102 free (for `cluster up`)."""
    import random
    for _ in range(200):
        base = random.randrange(20000, 32000 - 200)  # below the ephemeral range (see free_port)
        ok = True
        for p in [base + i for i in range(3)] + [base + 100 + i for i in range(3)]:
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return base
    raise AssertionError("no free ports")


def test_cluster_up_runs_a_three_server_cluster_with_an_api_node_that_gives_the_alerts_of_replay_and_stops_on_sigterm(tmp_path):
    ex = pathlib.Path(__file__).resolve().parents[2] / "examples"
    base = free_base()
    api_port = free_port()
    up = subprocess.Popen([BIN, "cluster", "up", "--data", str(tmp_path / "c"), "--port", str(base), "--partitions", "5", "--workers", "2",
                           "--api-port", str(api_port), "--zones", str(ex / "zones.geojson"), "--entities", str(ex / "entities-all-kinds.ndjson"),
                           "--rules", str(ex / "rules-all-kinds.yaml")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = up.stdout.readline()
        assert first.startswith("cluster up: 3 nats-server(s)"), first + up.stderr.read()
        api, token = None, None
        while True:
            line = up.stdout.readline()
            assert line, up.stderr.read()
            if line.startswith("Ctrl-C"):
                break
            if line.strip().startswith("API:"):
                api = line.split("API:")[1].split()[0]
            if "admin token:" in line:
                token = line.split("admin token:")[1].strip()
        assert api == f"http://127.0.0.1:{api_port}" and token and token.startswith("tl_")
        srv = Server(tmp_path / "unused")
        srv.port, srv.token = api_port, token
        urls = ",".join(f"nats://127.0.0.1:{base + i}" for i in range(3))
        # The API node is the gateway: a second one (here the CLI publisher) is refused.
        code, _, err = run("cluster", "publish", "--cluster", urls, ex / "events-all-kinds.ndjson")
        assert code != 0 and "gateway lease" in err, err
        post_events(srv, ex / "events-all-kinds.ndjson", {}, batch=50)
        srv.ok("POST", "/v1/watermark", {"until": "2026-03-01T18:00:00Z"})
        code, want, err = run("replay", "--zones", ex / "zones.geojson", "--entities", ex / "entities-all-kinds.ndjson",
                              "--rules", ex / "rules-all-kinds.yaml", "--until", "2026-03-01T18:00:00Z", ex / "events-all-kinds.ndjson")
        assert code == 0, err
        want = [json.loads(l) for l in want.splitlines()]
        got = api_alerts_when_complete(srv, len(want), timeout=60)
        assert [canonical(a) for a in got] == want and len(got) >= 10
        # A stage lease (3 s) that lapsed on a loaded machine is taken again within a round or
        # two: wait for every stage to have a live holder.
        deadline = time.monotonic() + 20
        while True:
            status = cluster_status(urls)
            if all(status["stages"][s] in ("w0", "w1") for s in status["stages"]) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert status["partitions"] == 5 and sorted(status["workers"]) == ["w0", "w1"]
        assert all(status["stages"][s] in ("w0", "w1") for s in status["stages"]), status
        assert len(status["streams"]["EV"]["replicas"]) == 2  # R3: a leader and two replicas
    finally:
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=30) == 0
    # Everything it started is gone: the client ports are free again.
    for i in range(3):
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", base + i), timeout=0.5).close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", api_port), timeout=0.5).close()


def test_an_api_node_cut_off_from_jetstream_refuses_batches_and_stops(tmp_path):
    """With its lease not renewed for 7 s, the gateway publishes nothing more: the batch gets
    503 (nothing acknowledged) and the node exits, so that it never publishes after another
    node may have taken over."""
    nats = NatsCluster(tmp_path / "nats", 1)
    srv = None
    try:
        srv = api_node(tmp_path / "api", nats.urls, 2)
        event = '{"entity":"a","time":"2026-03-01T08:00:00Z","type":"ping"}\n'
        assert srv.request("POST", "/v1/events", event, content_type="application/x-ndjson")[0] == 200
        nats.kill(0)
        time.sleep(7.5)
        status, _, out = srv.request("POST", "/v1/events", event.replace("08:00", "08:01"), content_type="application/x-ndjson")
        assert status == 503 and out["error"] == "storage" and "nothing of it was acknowledged" in out["message"], out
        assert srv.proc.wait(timeout=10) == 1
        err = srv.proc.stderr.read()
        assert "lease was not renewed" in err and "stopping" in err, err
    finally:
        if srv:
            srv.stop()
        nats.stop()


def catalog_change_script(srv, ex, lines, between):
    """The same API calls for a single server and a cluster's API node: the catalog, a third of
    the events, a rule changed and one added, a third, a rule deleted and a zone changed, the
    rest, an advance. `between(k)` runs after the k-th change (k = 1, 2)."""
    srv.ok("POST", "/v1/zones", (ex / "zones.geojson").read_text(), content_type="application/geo+json")
    srv.ok("POST", "/v1/entities", (ex / "entities-all-kinds.ndjson").read_text(), content_type="application/x-ndjson")
    srv.ok("POST", "/v1/rules", (ex / "rules-all-kinds.yaml").read_text(), content_type="application/yaml")
    rules = [r["rule"] for r in srv.ok("GET", "/v1/rules")["rules"]]
    k = len(lines) // 3
    post_events(srv, None, {}, batch=4, lines=lines[:k])
    # A rule changed (a gathering needing fewer members) and a new one (any entity entering
    # any zone); then a rule deleted and a zone moved.
    gathering = next(r for r in rules if r["kind"] == "gathering")
    changed = dict(gathering)
    changed["min_count"] = changed.get("min_count", 2) + 1
    srv.ok("PUT", f"/v1/rules/{gathering['id']}", changed)
    srv.ok("POST", "/v1/rules", {"id": "any-enter", "kind": "enter", "purpose": "p", "owner": "o", "severity": "low", "match": {}})
    # A crowd rule on the probe zone below, which the cross-entity stage evaluates.
    srv.ok("POST", "/v1/rules", {"id": "probe-crowd", "kind": "gathering", "purpose": "p", "owner": "o", "severity": "low", "match": {},
                                 "zones": {"category": "probe"}, "min_count": 2, "window": "24h"})
    between(1)
    post_events(srv, None, {}, batch=4, lines=lines[k:2 * k])
    victim = next(r for r in rules if r["kind"] in ("exit", "dwell", "speed"))
    assert srv.request("DELETE", f"/v1/rules/{victim['id']}")[0] == 204
    zones = json.loads((ex / "zones.geojson").read_text())["features"]
    z = json.loads(json.dumps(zones[0]))
    ring = z["geometry"]["coordinates"][0] if z["geometry"]["type"] == "Polygon" else None
    if ring:
        z["geometry"]["coordinates"][0] = [[x + 0.001, y] for x, y in ring]
    srv.ok("PUT", f"/v1/zones/{z['properties']['id']}", z, content_type="application/geo+json")
    # Zone edits that change membership: a new zone round the latest position of every entity
    # seen so far (an enter at the change for 'any-enter', and a crowd for 'probe-crowd', with
    # zone_edit), then that zone deleted (the crowd resolves) and made again smaller (no
    # entity inside: nothing).
    latest = {}
    for l in lines[:2 * k]:
        e = json.loads(l)
        if e.get("type") == "position":
            latest[e["entity"]] = (e["lon"], e["lat"])
    xs, ys = [p[0] for p in latest.values()], [p[1] for p in latest.values()]
    around = [[min(xs) - 0.01, min(ys) - 0.01], [max(xs) + 0.01, min(ys) - 0.01], [max(xs) + 0.01, max(ys) + 0.01],
              [min(xs) - 0.01, max(ys) + 0.01], [min(xs) - 0.01, min(ys) - 0.01]]
    srv.ok("POST", "/v1/zones", {"type": "Feature", "properties": {"id": "edit-probe", "category": "probe"},
                                 "geometry": {"type": "Polygon", "coordinates": [around]}}, content_type="application/geo+json")
    assert srv.request("DELETE", "/v1/zones/edit-probe")[0] == 204
    srv.ok("POST", "/v1/zones", {"type": "Feature", "properties": {"id": "edit-probe", "category": "probe"},
                                 "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [0.001, 0], [0.001, 0.001], [0, 0.001], [0, 0]]]}},
           content_type="application/geo+json")
    between(2)
    post_events(srv, None, {}, batch=4, lines=lines[2 * k:])
    srv.ok("POST", "/v1/watermark", {"until": "2026-03-01T18:00:00Z"})


def test_catalog_changes_mid_stream_give_the_alerts_of_one_server_with_the_same_changes(tmp_path):
    """Rules and zones changed through the API while events flow: every stage rebuilds on the
    new catalog at the change's place in the stream, as one server rebuilds from its log. A
    worker killed after the changes replays the stream across both changes."""
    ex = pathlib.Path(__file__).resolve().parents[2] / "examples"
    lines = [l for l in (ex / "events-all-kinds.ndjson").read_text().splitlines() if l.strip()]
    single = Server(tmp_path / "single", "--max-future", "off")
    single.token = make_token(tmp_path / "single")
    single.start()
    try:
        catalog_change_script(single, ex, lines, lambda k: None)
        want = [canonical(a) for a in single.all_alerts()]
    finally:
        single.stop()
    assert len(want) >= 10
    # The zone edits caused alerts at the change (enter into edit-probe version 1).
    edited = [a for a in want if a.get("details", {}).get("zone_edit")]
    enters = [a for a in edited if a["rule"] == "any-enter"]
    assert enters and all(a["details"]["zone_version"] == 1 for a in enters), enters[:3]
    crowd = [(a["rule"], a["state"], a["details"]["zone_edit"], a["details"]["zone_version"]) for a in edited if a["rule"] != "any-enter"]
    assert crowd == [("probe-crowd", "firing", ["created"], 1), ("probe-crowd", "resolved", ["deleted"], 2)], crowd
    # The changes matter: without them the alerts differ.
    code, base, err = run("replay", "--zones", ex / "zones.geojson", "--entities", ex / "entities-all-kinds.ndjson",
                          "--rules", ex / "rules-all-kinds.yaml", "--until", "2026-03-01T18:00:00Z", ex / "events-all-kinds.ndjson")
    assert code == 0, err
    assert [json.loads(l) for l in base.splitlines()] != want
    nats = NatsCluster(tmp_path / "nats", 1)
    workers = {}
    srv = None
    try:
        srv = api_node(tmp_path / "api", nats.urls, 3)
        for name in ("a", "b"):
            workers[name] = start_worker(nats.urls, name, tmp_path)

        def between(k):
            if k == 2:
                # A worker dies after the second change: its stages are replayed by the other
                # (from the start of the stream, across both changes).
                workers["a"].send_signal(signal.SIGKILL)
                workers["a"].wait()

        catalog_change_script(srv, ex, lines, between)
        got = api_alerts_when_complete(srv, len(want), timeout=90)
        assert [canonical(a) for a in got] == want
        logs = (tmp_path / "worker-b.log").read_text()
        assert "rebuilt on catalog version" in logs, logs
    finally:
        if srv:
            srv.stop()
        stop_all(workers, nats)
