"""Kill -9 in the middle of a 16-board batch, several times, then run it to the end: the journal
loses nothing, half-writes nothing, and never hands a serial number out twice."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time

from gangflash.orchestrator.journal import Journal

from .batchhelp import write_config

CMD = [sys.executable, "-c", "import sys; from gangflash.cli import main; sys.exit(main())"]


def test_sigkill_at_random_points_of_a_16_board_batch(tmp_path):
    config = write_config(tmp_path, ['chip = "F103C8"'] * 16, attempts=1)
    rng = random.Random(9)
    printed: list[dict] = []
    for _ in range(3):
        proc = subprocess.Popen([*CMD, "run", str(config), "--headless", "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.8, 2.5))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
        printed += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    final = subprocess.run([*CMD, "run", str(config), "--headless", "--json"], capture_output=True,
                           text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]
    final_events = [json.loads(line) for line in final.stdout.splitlines()]

    journal_path = tmp_path / "batch.journal.db"
    db = sqlite3.connect(journal_path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    journal = Journal.open(journal_path)
    rows = journal.attempts()
    by_id = {r.id: r for r in rows}
    # Nothing left half-done: every attempt ended one way or another.
    assert all(r.result in ("passed", "failed", "aborted", "not_finished") for r in rows)
    # Every attempt a killed run announced is in the journal; every pass it printed is a pass.
    for event in printed:
        if event["event"] == "BoardStarted":
            assert event["attempt_id"] in by_id
    passed_slots_printed = [e["slot"] for e in printed if e["event"] == "BoardPassed"]
    assert len(passed_slots_printed) <= sum(r.result == "passed" for r in rows)
    # Serial numbers: never two attempts with one number; every number accounted for.
    numbers = [r.serial_number for r in rows if r.serial_number]
    assert len(numbers) == len(set(numbers))
    states = dict(db.execute("SELECT value, state FROM serial_number").fetchall())
    assert set(numbers) <= set(states)
    assert not [v for v, s in states.items() if s == "allocated"]       # none left dangling
    # The last batch verified all 16 boards; killed attempts are recorded as not finished.
    assert sum(1 for e in final_events if e["event"] == "BoardPassed") == 16
    assert any(r.result == "not_finished" for r in rows)
