"""`tripline` as a new user meets it: bad inputs get one clear, located message and exit 2;
replay is deterministic and insensitive to disorder within --allowed-lateness."""
import json
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
EX = ROOT / "examples"

GOOD_ZONE = {"type": "Feature", "properties": {"id": "z", "category": "depot"},
             "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}}
RULE = "rules:\n  - id: r\n    kind: enter\n    purpose: p\n    owner: o\n    severity: low\n    match: {}\n"


def zones_file(tmp_path, *features):
    p = tmp_path / "zones.geojson"
    p.write_text(json.dumps({"type": "FeatureCollection", "features": list(features)}))
    return p


def polygon(fid, coords):
    return {"type": "Feature", "properties": {"id": fid, "category": "depot"},
            "geometry": {"type": "Polygon", "coordinates": coords}}


def test_the_example_runs(tripline):
    code, out, err = tripline("replay", "--zones", EX / "zones.geojson", "--entities", EX / "entities.ndjson",
                              "--rules", EX / "rules.yaml", "--allowed-lateness", "10m", EX / "events.ndjson")
    assert code == 0, err
    alerts = [json.loads(l) for l in out.splitlines()]
    assert [a["rule"] for a in alerts] == ["hazmat-enters-restricted", "truck-arrives-depot", "truck-speeding",
                                           "truck-arrives-depot", "tanker-leaves-port"]
    assert "1 duplicate" in err


@pytest.mark.parametrize("line,pointer,words", [
    ('{"entity":"t","time":1,"type":"position","lon":4.5,"la', None, "truncated"),
    ('{"entity":"t","time":1,"type":"position","lon":NaN,"lat":1}', "/lon", "NaN"),
    ('{"entity":"t","time":1,"type":"position","lon":200,"lat":1}', "/lon", "200"),
    ('{"entity":"t","time":"2026-02-30T00:00:00Z","type":"x"}', "/time", "day"),
])
def test_bad_event_lines(tripline, tmp_path, line, pointer, words):
    ev = tmp_path / "events.ndjson"
    ev.write_text('{"entity":"t","time":0,"type":"position","lon":0.5,"lat":0.5}\n' + line + "\n")
    code, out, err = tripline("replay", "--zones", zones_file(tmp_path, GOOD_ZONE), "--rules", _rules(tmp_path), ev)
    assert code == 2
    first = err.splitlines()[0]
    assert f"{ev}:2" in first and words in first, err
    if pointer:
        assert f"at {pointer}" in first
    assert out.count("\n") == 1  # the alert of the valid first line was still written
    # With --rejects the run goes on and the bad line is set aside with its error.
    code, out, err = tripline("replay", "--zones", zones_file(tmp_path, GOOD_ZONE), "--rules", _rules(tmp_path),
                              "--rejects", tmp_path / "rejects.ndjson", ev)
    assert code == 0
    rejected = [json.loads(l) for l in (tmp_path / "rejects.ndjson").read_text().splitlines()]
    assert rejected[0]["line"] == 2 and rejected[0]["input"] == line


def _rules(tmp_path, text=RULE):
    p = tmp_path / "rules.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("feature,pointer,words", [
    (polygon("open", [[[0, 0], [1, 0], [1, 1], [0, 1]]]), "/features/1/geometry/coordinates/0", "not closed"),
    (polygon("bow", [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]), "/features/1/geometry", "intersects itself"),
    (polygon("z", [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]), "/features/1/properties/id", "duplicate zone id"),
    (polygon("far", [[[200, 0], [1, 0], [1, 1], [0, 1], [200, 0]]]), "/features/1/geometry/coordinates/0/0/0", "200"),
])
def test_bad_zones(tripline, tmp_path, feature, pointer, words):
    code, out, err = tripline("validate", "--zones", zones_file(tmp_path, GOOD_ZONE, feature))
    assert code == 2
    lines = [l for l in err.splitlines() if not l.startswith("tripline:")]
    assert len(lines) == 1, err
    assert f"at {pointer}" in lines[0] and words in lines[0], err


def test_zones_files_are_read_as_utf8_from_their_bytes(tripline, tmp_path):
    """Replay parses a zones file where it was read (no String of it): a file with non-ASCII
    names loads and fires as written; one with a byte that is not UTF-8 is refused before
    anything runs, with the line and column of that byte."""
    zone = dict(GOOD_ZONE, properties={"id": "zürich-dépôt", "category": "depot"})
    good = tmp_path / "zones.geojson"
    good.write_text(json.dumps({"type": "FeatureCollection", "features": [zone]}, ensure_ascii=False), encoding="utf-8")
    events = tmp_path / "events.ndjson"
    events.write_text('{"entity":"t","time":1,"type":"position","lon":0.5,"lat":0.5}\n')
    code, out, err = tripline("replay", "--zones", good, "--rules", _rules(tmp_path), events)
    assert code == 0, err
    assert json.loads(out.splitlines()[0])["key"]["zone"] == "zürich-dépôt"
    bad = tmp_path / "bad.geojson"
    text = json.dumps({"type": "FeatureCollection", "features": [zone]}, ensure_ascii=False)
    bad.write_bytes(text.replace("zürich", "z\udcffrich").encode("utf-8", "surrogateescape"))
    code, out, err = tripline("replay", "--zones", bad, "--rules", _rules(tmp_path), events)
    assert code == 2 and out == "", err
    column = text.index("zürich") + 2
    assert "not valid UTF-8" in err and f"bad.geojson:1:{column}" in err, err


@pytest.mark.parametrize("patch,pointer,words", [
    ("kind: enter", "/rules/0/kind", "teleport"),
    ("match: {}", "/rules/0/match/tags/health", "sensitive"),
])
def test_bad_rules(tripline, tmp_path, patch, pointer, words):
    text = RULE.replace(patch, "kind: teleport" if "kind" in patch else "match: {tags: {health: flu}}")
    code, out, err = tripline("validate", "--rules", _rules(tmp_path, text))
    assert code == 2
    first = err.splitlines()[0]
    assert f"at {pointer}" in first and words in first and "rules.yaml:" in first, err


def test_zero_window_is_refused(tripline, tmp_path):
    text = RULE.replace("kind: enter", "kind: frequency\n    count: 3\n    window: 0s\n    event: {type: payment}")
    code, out, err = tripline("validate", "--rules", _rules(tmp_path, text))
    assert code == 2 and "at /rules/0/window" in err and "greater than zero" in err, err


def test_replay_is_deterministic_and_disorder_within_lateness_changes_nothing(tripline, tmp_path):
    code, out, err = tripline("generate", "--out", tmp_path, "--zones", 300, "--entities", 500, "--events", 30000,
                              "--id-share", 1, "--seed", 3)
    assert code == 0, err
    base = ["--zones", tmp_path / "zones.geojson", "--entities", tmp_path / "entities.ndjson", "--rules", tmp_path / "rules.yaml", "--quiet"]
    a = tripline("replay", *base, tmp_path / "events.ndjson")
    b = tripline("replay", *base, tmp_path / "events.ndjson")
    assert a[0] == 0 and a[1] == b[1] and a[1].count("\n") > 100
    shuffled = tmp_path / "shuffled"
    tripline("generate", "--out", shuffled, "--zones", 300, "--entities", 500, "--events", 30000, "--id-share", 1,
             "--seed", 3, "--shuffle", "2s")
    assert (shuffled / "events.ndjson").read_text() != (tmp_path / "events.ndjson").read_text()
    c = tripline("replay", *base, "--allowed-lateness", "2s", shuffled / "events.ndjson")
    assert c[0] == 0 and c[1] == a[1]
    # Without the lateness allowance the same input has late events, written to --late.
    d = tripline("replay", *base, "--late", tmp_path / "late.ndjson", shuffled / "events.ndjson")
    assert d[0] == 0 and (tmp_path / "late.ndjson").read_text().count("\n") > 0


def test_until_and_stdin(tripline, tmp_path):
    events = (EX / "events.ndjson").read_text()
    code, out, err = tripline("replay", "--zones", EX / "zones.geojson", "--entities", EX / "entities.ndjson",
                              "--rules", EX / "rules.yaml", "--allowed-lateness", "10m", "--until", "2026-03-02T00:00:00Z", "-", stdin=events)
    assert code == 0 and out.count("\n") == 5


def test_the_all_kinds_example_fires_every_kind(tripline):
    code, out, err = tripline("replay", "--zones", EX / "zones.geojson", "--entities", EX / "entities-all-kinds.ndjson",
                              "--rules", EX / "rules-all-kinds.yaml", "--until", "2026-03-01T18:00:00Z",
                              EX / "events-all-kinds.ndjson")
    assert code == 0, err
    alerts = [json.loads(l) for l in out.splitlines()]
    fired = {a["rule"] for a in alerts if a["state"] == "firing"}
    assert fired == {"hazmat-enters-restricted", "tanker-leaves-port", "vessel-idles-in-anchorage", "hazmat-depot-crowding",
                     "trucks-too-close", "new-payees-burst", "failed-logins", "meter-over-baseline", "takeover-pattern",
                     "sensor-silent", "truck-speeding", "same-payee-repeat", "large-outflow", "many-drivers", "meter-peak",
                     "not-unloaded"}
    dwell = [a for a in alerts if a["rule"] == "vessel-idles-in-anchorage"]
    # Fires six hours after the vessel's first position in the anchorage, resolves when it leaves.
    assert [(a["state"], a["time"], a["details"]["dwell_s"]) for a in dwell] == [
        ("firing", "2026-03-01T14:30:00.000Z", 21600), ("resolved", "2026-03-01T16:00:00.000Z", 27000)]
    takeover = next(a for a in alerts if a["rule"] == "takeover-pattern")
    assert takeover["evidence"] == ["acct-1001#3", "acct-1001#4", "acct-1001#5"] and takeover["details"] == {"span_s": 360}
    # Without --until, timers still fire as later events of other entities move the watermark:
    # the meter's silence (its last reading at 08:35) is detected at 08:45.
    code, out2, err = tripline("replay", "--zones", EX / "zones.geojson", "--entities", EX / "entities-all-kinds.ndjson",
                               "--rules", EX / "rules-all-kinds.yaml", EX / "events-all-kinds.ndjson")
    assert code == 0
    silent = [json.loads(l) for l in out2.splitlines() if '"sensor-silent"' in l]
    assert [(a["state"], a["time"]) for a in silent] == [("firing", "2026-03-01T08:45:00.000Z")]


def test_the_alerts_quoted_in_docs_rules_are_what_replay_prints(tripline):
    # Every alert line docs/rules.md quotes comes from the all-kinds example: each must be a
    # line replay prints for it, byte for byte.
    code, out, err = tripline("replay", "--zones", EX / "zones.geojson", "--entities", EX / "entities-all-kinds.ndjson",
                              "--rules", EX / "rules-all-kinds.yaml", "--until", "2026-03-01T18:00:00Z",
                              EX / "events-all-kinds.ndjson")
    assert code == 0, err
    printed = set(out.splitlines())
    quoted = [l for l in (EX.parent / "docs" / "rules.md").read_text().splitlines() if l.startswith('{"rule":')]
    assert len(quoted) >= 15
    assert [l for l in quoted if l not in printed] == []


def test_the_mistakes_of_rule_language_1_3_are_located(tripline):
    code, out, err = tripline("validate", "--rules", EX / "rules-v13-mistakes.yaml")
    assert code == 2
    text = out + err
    for pointer, fragment in [("/rules/0/by", '"by" groups only frequency and aggregate rules'),
                              ("/rules/1/steps/0", "cannot begin with an absent step"),
                              ("/rules/2/steps/1", 'a trailing absent step needs "for"'),
                              ("/rules/3/of/attr", 'sensitive attribute "religion"'),
                              ("/rules/4/by", 'the event filter selects "payment" events'),
                              ("/rules/5/of", "only fn: count_distinct"),
                              ("/rules/6/fn", 'unknown aggregate function "median"')]:
        assert any(f"at {pointer}: " in l and fragment in l for l in text.splitlines()), (pointer, text)


def _summary(err):
    """The summary without its timings (the rule counts, arrivals, duplicates, late)."""
    return [re.sub(r" in [0-9.]+ s, [0-9]+ events/s", "", l) for l in err.splitlines() if "CPU seconds" not in l]


@pytest.mark.parametrize("lateness", ["1s", "3s"])
def test_replay_split_over_partitions_gives_the_alerts_of_one_engine(tripline, tmp_path, lateness):
    """`--partitions N` runs the cluster's split on threads; alerts, late events and the summary
    are those of one engine, with duplicates re-sent and late events among the arrivals."""
    code, out, err = tripline("generate", "--out", tmp_path, "--zones", 300, "--entities", 400, "--events", 30000,
                              "--id-share", 1, "--seed", 5, "--shuffle", "3s", "--mixed-rules", 40,
                              "--reading-share", 0.15, "--contact-share", 0.1, "--custom-share", 0.1)
    assert code == 0, err
    lines = (tmp_path / "events.ndjson").read_text().splitlines()
    # Copies re-sent 1 to 400 lines later (duplicates, or late when the watermark passed them).
    mixed = []
    for i, l in enumerate(lines):
        mixed.append(l)
        if i % 37 == 0 and i > 400:
            mixed.append(lines[i - 1 - (i * 7919) % 400])
    (tmp_path / "mixed.ndjson").write_text("\n".join(mixed) + "\n")
    base = ["--zones", tmp_path / "zones.geojson", "--entities", tmp_path / "entities.ndjson", "--rules", tmp_path / "rules-mixed.json",
            "--allowed-lateness", lateness, "--until", "2100-01-01T00:00:00Z"]
    one = tripline("replay", *base, "--late", tmp_path / "late-1.ndjson", tmp_path / "mixed.ndjson")
    assert one[0] == 0, one[2]
    assert one[1].count("\n") > 500
    summary = _summary(one[2])
    counts = re.search(r"\((\d+) applied, (\d+) duplicate, (\d+) late\)", summary[0])
    assert counts and int(counts[2]) > 20 and (int(counts[3]) > 20 or lateness != "1s"), summary[0]
    for p in (1, 2, 5):
        split = tripline("replay", *base, "--partitions", p, "--late", tmp_path / f"late-{p}s.ndjson", tmp_path / "mixed.ndjson")
        assert split[0] == 0, split[2]
        assert split[1] == one[1], f"--partitions {p}: alerts differ"
        assert (tmp_path / f"late-{p}s.ndjson").read_text() == (tmp_path / "late-1.ndjson").read_text()
        assert _summary(split[2]) == summary
        assert "CPU seconds by stage: reading" in split[2] and "cross-entity" in split[2]


def test_replay_split_on_the_all_kinds_example_and_its_mistakes(tripline, tmp_path):
    base = ["--zones", EX / "zones.geojson", "--entities", EX / "entities-all-kinds.ndjson", "--rules", EX / "rules-all-kinds.yaml"]
    for until in ([], ["--until", "2026-03-01T18:00:00Z"]):
        one = tripline("replay", *base, *until, EX / "events-all-kinds.ndjson")
        assert one[0] == 0 and one[1].count("\n") > 20
        for p in (1, 3):
            split = tripline("replay", *base, *until, "--partitions", p, EX / "events-all-kinds.ndjson")
            assert split[0] == 0 and split[1] == one[1], (p, until)
    # An invalid line stops both at the same place, with the same alerts written before it.
    bad = tmp_path / "bad.ndjson"
    ev = (EX / "events-all-kinds.ndjson").read_text().splitlines()
    bad.write_text("\n".join(ev[:40] + ['{"entity":"x","time":"soon"}'] + ev[40:]) + "\n")
    one = tripline("replay", *base, bad)
    split = tripline("replay", *base, "--partitions", 2, bad)
    assert one[0] == split[0] == 2 and split[1] == one[1] and ":41" in split[2]
    for args, words in ((["--partitions", 0], "between 1 and 64"), (["--partitions", 65], "between 1 and 64"),
                        (["--partitions", 2, "--explain"], "cannot be combined with --explain")):
        code, out, err = tripline("replay", *base, *args, EX / "events-all-kinds.ndjson")
        assert code != 0 and words in err and out == "", err
