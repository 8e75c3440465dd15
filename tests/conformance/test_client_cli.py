"""The command-line client against a live server, in the manner of amtool: alerts, silences
and the notification policy, with --url/--token or TRIPLINE_URL/TRIPLINE_TOKEN."""
import json
import os
import subprocess

from conftest import BIN
from server import ENTER_YARD, YARD, Server, make_token
from test_notifications import enters


def cli(srv, *args, env_auth=False, token=None):
    env = dict(os.environ)
    argv = [BIN, *args]
    if env_auth:
        env["TRIPLINE_URL"], env["TRIPLINE_TOKEN"] = srv.url, token or srv.token
    else:
        argv += ["--url", srv.url, "--token", token or srv.token]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)


def test_alerts_silences_and_policy_from_the_command_line(tmp_path):
    data = tmp_path / "data"
    token = make_token(data)
    srv = Server(data).start()
    srv.token = token
    try:
        srv.ok("POST", "/v1/zones", YARD)
        srv.ok("POST", "/v1/rules", ENTER_YARD)
        wh = srv.ok("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/"})
        srv.ok("POST", "/v1/events", enters(["t1", "t2"], 0))
        # alerts list (table and json), get, explain
        p = cli(srv, "alerts", "list")
        assert p.returncode == 0, p.stderr
        lines = p.stdout.strip().splitlines()
        assert lines[0].split() == ["ID", "RULE", "KEY", "STATE", "TIME", "SILENCED"] and len(lines) == 3
        assert "in-yard" in lines[1] and "t1 yard" in lines[1] and "firing" in lines[1]
        p = cli(srv, "alerts", "list", "--entity", "t2", "-o", "json", env_auth=True)
        alerts = json.loads(p.stdout)["alerts"]
        assert [a["key"]["entity"] for a in alerts] == ["t2"]
        p = cli(srv, "alerts", "get", str(alerts[0]["id"]), "-o", "json")
        assert json.loads(p.stdout)["id"] == alerts[0]["id"]
        p = cli(srv, "alerts", "explain", str(alerts[0]["id"]))
        assert p.returncode == 0 and "in-yard" in p.stdout
        # silences: add, list, expire
        p = cli(srv, "silence", "add", "--entity", "t1", "--duration", "2h", "--comment", "maintenance")
        assert p.returncode == 0 and p.stdout.startswith("silence "), p.stderr
        sid = p.stdout.split()[1]
        p = cli(srv, "silence", "list", "--active")
        assert "entity=t1" in p.stdout and "maintenance" in p.stdout
        p = cli(srv, "silence", "add", "--duration", "2h", "--comment", "x")
        assert p.returncode == 1 and "at least one matcher" in p.stderr, p.stderr
        assert cli(srv, "silence", "expire", sid).returncode == 0
        assert "no" in cli(srv, "silence", "list").stdout.splitlines()[1]
        # policy: check (offline and against the server), apply, show, routes of an alert
        good = tmp_path / "policy.yaml"
        good.write_text(f"route:\n  receiver: {wh['id']}\n  group_by: [zone]\n")
        bad = tmp_path / "bad.yaml"
        bad.write_text("route:\n  receiver: nobody\n  group_wiat: 1s\n")
        p = cli(srv, "policy", "check", str(bad))
        assert p.returncode == 1 and f"{bad}:2:13 at /route/receiver" in p.stderr and "group_wiat" in p.stderr, p.stderr
        p = cli(srv, "policy", "check", "--offline", str(bad))
        assert p.returncode == 1 and "group_wiat" in p.stderr and "nobody" not in p.stderr, p.stderr
        assert cli(srv, "policy", "check", str(good)).returncode == 0
        assert srv.request("GET", "/v1/policy")[0] == 404
        p = cli(srv, "policy", "apply", str(good))
        assert p.returncode == 0 and p.stdout.strip() == "policy version 1", p.stdout + p.stderr
        p = cli(srv, "policy", "show")
        assert p.stdout.splitlines()[0].startswith("# version 1") and "group_by: [zone]" in p.stdout
        p = cli(srv, "alerts", "routes", str(alerts[0]["id"]))
        assert f"goes to {wh['id']} by route root" in p.stdout, p.stdout
        # A wrong token, an unreachable server.
        p = cli(srv, "alerts", "list", token="nope")
        assert p.returncode == 1 and "HTTP 401" in p.stderr
        p = subprocess.run([BIN, "alerts", "list", "--url", "http://127.0.0.1:1"], capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and "cannot reach" in p.stderr
    finally:
        srv.stop()
