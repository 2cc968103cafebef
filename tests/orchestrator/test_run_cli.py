"""``gangflash run`` end to end, as a production engineer runs it."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys

from .batchhelp import REPO, write_config


def run(args, **kw):
    return subprocess.run([sys.executable, "-c", "import sys; from gangflash.cli import main; sys.exit(main())", *args],
                          capture_output=True, text=True, timeout=600, **kw)


def test_demo_config_headless_json(tmp_path):
    """The issue's acceptance run, on a copy of configs/ so the journal lands in tmp."""
    shutil.copytree(REPO / "configs", tmp_path / "configs", ignore=shutil.ignore_patterns("*.journal.db*"))
    config = tmp_path / "configs" / "demo.toml"
    result = run(["run", str(config), "--headless", "--json"])
    assert result.returncode == 1, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    passed = [e for e in events if e["event"] == "BoardPassed"]
    failed = [e for e in events if e["event"] == "BoardFailed" and not e["will_retry"]]
    assert len(passed) == 7
    assert [e["slot"] for e in failed] == ["S8"]
    assert "write-protected" in failed[0]["cause"]
    assert events[-1]["event"] == "BatchFinished" and events[-1]["passed"] == 7
    rows = sqlite3.connect(tmp_path / "configs" / "demo.journal.db").execute(
        "SELECT slot, result, cause FROM attempt ORDER BY slot").fetchall()
    assert len(rows) == 8
    assert {r[1] for r in rows if r[0] != "S8"} == {"passed"}
    assert rows[-1][1] == "failed" and "write-protected" in rows[-1][2]


def test_config_errors_exit_2_naming_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[batch]\nname = 1\n")
    result = run(["run", str(bad), "--headless"])
    assert result.returncode == 2
    assert "bad.toml" in result.stderr and "batch.name" in result.stderr


def test_two_probes_with_one_serial_refuse_to_start(tmp_path):
    config = write_config(tmp_path, ['chip = "F103C8"\nserial = "066DFF485550755187121234"',
                                     'chip = "F103C8"\nserial = "066DFF485550755187121234"'])
    result = run(["run", str(config), "--headless"])
    assert result.returncode == 2
    assert "two probes present serial 066DFF485550755187121234" in result.stderr
    assert "port" in result.stderr


def test_all_boards_passing_exits_0(tmp_path):
    config = write_config(tmp_path, ['chip = "F103C8"', 'chip = "L432KC"\nprobe_model = "V3"'])
    result = run(["run", str(config), "--headless"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": PASS in") == 2
    assert "batch finished: 2 passed, 0 failed, 0 aborted" in result.stdout
