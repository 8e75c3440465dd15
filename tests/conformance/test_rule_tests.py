"""`tripline test`: rule unit tests from files (the examples pass; a wrong expectation fails
with a diff naming the alert; a broken file is refused with locations)."""
import pathlib
import shutil
import subprocess

from conftest import BIN

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = [ROOT / "examples" / "rules-all-kinds.test.yaml", ROOT / "examples" / "tests" / "depot.test.yaml"]


def run(*files):
    return subprocess.run([BIN, "test", *map(str, files)], capture_output=True, text=True, timeout=300)


def test_the_examples_pass():
    p = run(*EXAMPLES)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "5 passed, 0 failed" in p.stdout


def test_a_wrong_expectation_fails_and_the_diff_names_the_alert(tmp_path):
    src = (ROOT / "examples" / "tests" / "depot.test.yaml").read_text()
    shutil.copy(ROOT / "examples" / "tests" / "policy.yaml", tmp_path / "policy.yaml")
    wrong = src.replace("state: firing, time: 5m}", "state: firing, time: 6m}", 1)
    wrong = wrong.replace("{rule: reefer-warm, key: {entity: reefer-1}, state: firing, time: 30m, details: {value: 9}}",
                          "{rule: reefer-warm, key: {entity: reefer-1}, state: firing, time: 30m, details: {value: 9.5}}")
    wrong = wrong.replace("at 0s   -> pager firing: hazmat-at-depot[truck-7 depot-1]", "at 0s   -> depot-chat firing: hazmat-at-depot[truck-7 depot-1]")
    assert wrong != src
    f = tmp_path / "wrong.test.yaml"
    f.write_text(wrong)
    p = run(f)
    assert p.returncode == 1, p.stdout + p.stderr
    out = p.stdout
    line = next(i + 1 for i, l in enumerate(wrong.splitlines()) if "time: 6m}" in l)
    assert f"missing (line {line}):    hazmat-at-depot {{entity: truck-7, zone: depot-1}} firing at 2026-03-02T08:06:00.000Z" in out, out
    assert "unexpected: hazmat-at-depot {entity: truck-7, zone: depot-1} firing at 2026-03-02T08:05:00.000Z" in out, out
    assert 'different details' in out and 'reefer-warm {entity: reefer-1} firing at 2026-03-02T08:30:00.000Z: expected {"value":9.5}, got {"value":9}' in out, out
    assert "expected at 0s -> depot-chat firing: hazmat-at-depot[truck-7 depot-1], but it was not sent" in out, out
    assert "unexpected at 0s -> pager firing: hazmat-at-depot[truck-7 depot-1]" in out, out
    assert "2 passed, 3 failed" in out or "1 passed, 3 failed" in out, out


def test_a_broken_file_is_refused_with_locations(tmp_path):
    f = tmp_path / "bad.test.yaml"
    f.write_text("zones: nofile.geojson\ntests:\n  - name: x\n    expect:\n      - {rule: r, time: 5q}\n    colour: red\n")
    p = run(f)
    assert p.returncode == 2, p.stdout + p.stderr
    assert f"{f}:1:8 at /zones: zones: no file" in p.stderr
    assert f'{f}:6:13 at /tests/0/colour: unknown field "colour" in test' in p.stderr
    assert f'{f}:5:25 at /tests/0/expect/0/time: time "5q" is neither a duration' in p.stderr


def test_the_examples_file_quotes_exactly_the_alerts_of_docs_rules_md():
    import json
    import re
    doc = (ROOT / "docs" / "rules.md").read_text()
    quoted = [json.loads(l) for b in re.findall(r"```json\n(.*?)```", doc, re.S) for l in b.strip().split("\n") if l.startswith('{"rule"')]
    expected = [json.loads(l.strip()[2:]) for l in EXAMPLES[0].read_text().splitlines() if l.strip().startswith('- {"rule"')]
    assert len(quoted) == 17 and quoted == expected
