"""Journal: attempts and serial numbers survive anything (kill -9 included) without duplicates or
half-written rows; recovery, reuse policy, UID lookups, exports, concurrent async use."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import anyio
import pytest

from gangflash.orchestrator.config_schema import SerialNumberSpec
from gangflash.orchestrator.journal import (
    AttemptFinished, Journal, JournalError, JournalNotFound, SerialsExhausted, UnknownAttempt,
)
from gangflash.orchestrator.journal_async import AsyncJournal

COUNTER = SerialNumberSpec(address=0x0800FC00, format="counter", start=1000, template="SN-%06d", length=9)
UID = bytes.fromhex("ff3fd2053043353843172543")


class FakeClock:
    """Deterministic time: each reading is one second after the previous."""

    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 8, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def journal(tmp_path):
    with Journal.open(tmp_path / "j.db", clock=FakeClock()) as j:
        yield j


def test_open_sets_wal_and_full_sync_and_creates_the_tables(tmp_path, journal):
    db = journal._db
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2          # FULL
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"batch", "attempt", "serial_number"} <= tables
    assert journal.integrity_check() == "ok"


def test_open_without_create_refuses_a_missing_journal(tmp_path):
    with pytest.raises(JournalNotFound, match="no journal at"):
        Journal.open(tmp_path / "none.db", create=False)


def test_attempt_lifecycle_records_everything(journal):
    batch = journal.start_batch("order 4711", config_path="/cfg/b.toml", firmware_path="/fw.bin",
                                firmware_sha256="ab" * 32)
    attempt = journal.begin_attempt(batch, "A1", "066DFF01", port_path="1-1.4.1")
    running = journal.attempt(attempt)
    assert running.result == "running" and running.ended is None and running.firmware_sha256 == "ab" * 32
    journal.update_attempt(attempt, chip_idcode=0x20036410, uid=UID)
    assert journal.allocate_serial(attempt, COUNTER) == "SN-001000"
    assert journal.allocate_serial(attempt, COUNTER) == "SN-001000"      # same attempt, same number
    state = journal.finish_attempt(attempt, "passed", "programmed and verified", "all good",
                                   {"connect": 0.12, "erase": 0.5})
    assert state == "used"
    record = journal.attempt(attempt)
    assert (record.slot, record.probe_serial, record.port_path, record.chip_idcode, record.chip_uid) == (
        "A1", "066DFF01", "1-1.4.1", 0x20036410, UID.hex().upper())
    assert (record.serial_number, record.result, record.cause, record.diagnostics) == (
        "SN-001000", "passed", "programmed and verified", "all good")
    assert record.stages == {"connect": 0.12, "erase": 0.5}
    assert record.duration_s is not None and record.duration_s > 0
    journal.end_batch(batch)
    assert journal.batches()[0].ended is not None


def test_finished_attempts_cannot_be_changed(journal):
    batch = journal.start_batch("b")
    attempt = journal.begin_attempt(batch, "A1")
    journal.finish_attempt(attempt, "failed", "no target voltage\n(0.0 V)")
    assert journal.attempt(attempt).cause == "no target voltage (0.0 V)"     # one line
    with pytest.raises(AttemptFinished):
        journal.finish_attempt(attempt, "passed")
    with pytest.raises(AttemptFinished):
        journal.allocate_serial(attempt, COUNTER)
    with pytest.raises(UnknownAttempt):
        journal.update_attempt(999, chip_idcode=1)
    with pytest.raises(ValueError):
        journal.finish_attempt(journal.begin_attempt(batch, "A2"), "running")
    with pytest.raises(JournalError):
        journal.begin_attempt(999, "A1")


def test_counter_continues_after_the_highest_ever_allocated_across_reopen(tmp_path):
    path = tmp_path / "j.db"
    with Journal.open(path) as j:
        batch = j.start_batch("one")
        for _ in range(3):
            attempt = j.begin_attempt(batch, "A1")
            j.allocate_serial(attempt, COUNTER)
            j.finish_attempt(attempt, "failed", "verify mismatch")
    with Journal.open(path) as j:
        attempt = j.begin_attempt(j.start_batch("two"), "A1")
        assert j.allocate_serial(attempt, COUNTER) == "SN-001003"
        assert [s.state for s in j.serial_numbers()] == ["burnt", "burnt", "burnt", "allocated"]


def test_values_taken_by_another_sequence_are_skipped(journal):
    batch = journal.start_batch("b")
    other = SerialNumberSpec(address=0, format="csv", csv_values=("SN-001000", "SN-001001"), length=9)
    for _ in range(2):
        journal.allocate_serial(journal.begin_attempt(batch, "A1"), other)
    assert journal.allocate_serial(journal.begin_attempt(batch, "A1"), COUNTER) == "SN-001002"


def test_csv_takes_the_next_row_and_runs_out(journal):
    rows = SerialNumberSpec(address=0, format="csv", csv_values=("X1", "X2"), length=2)
    batch = journal.start_batch("b")
    assert [journal.allocate_serial(journal.begin_attempt(batch, "A"), rows) for _ in range(2)] == ["X1", "X2"]
    with pytest.raises(SerialsExhausted, match="no serial number left"):
        journal.allocate_serial(journal.begin_attempt(batch, "A"), rows)


def test_reuse_returns_only_numbers_never_written_to_a_chip(journal):
    batch = journal.start_batch("b")
    first = journal.begin_attempt(batch, "A1")
    journal.allocate_serial(first, COUNTER)
    assert journal.finish_attempt(first, "failed", "no target", serial_written=False, on_failure="reuse") == "free"
    second = journal.begin_attempt(batch, "A1")
    assert journal.allocate_serial(second, COUNTER) == "SN-001000"           # handed out again
    assert journal.finish_attempt(second, "failed", "verify", serial_written=True, on_failure="reuse") == "burnt"
    third = journal.begin_attempt(batch, "A1")
    assert journal.allocate_serial(third, COUNTER) == "SN-001001"
    assert journal.finish_attempt(third, "aborted", "operator", serial_written=False) == "burnt"   # burn policy
    fourth = journal.begin_attempt(batch, "A1")
    assert journal.allocate_serial(fourth, COUNTER) == "SN-001002"


def test_recover_marks_running_attempts_not_finished_and_burns_their_serials(tmp_path):
    path = tmp_path / "j.db"
    j = Journal.open(path)
    batch = j.start_batch("b")
    crashed = j.begin_attempt(batch, "A1")
    j.allocate_serial(crashed, COUNTER)
    done = j.begin_attempt(batch, "A2")
    j.finish_attempt(done, "passed")
    # A second opener while the first is alive must not touch its running rows.
    with Journal.open(path) as viewer:
        assert viewer.recovered == [] and viewer.attempt(crashed).result == "running"
    j._db.close()           # the process "dies": connection gone without any cleanup ...
    os.close(j._lock_fd)    # ... and the kernel drops its lock
    with Journal.open(path) as reopened:
        assert reopened.recovered == [crashed]
        record = reopened.attempt(crashed)
        assert record.result == "not_finished" and "interrupted" in record.cause
        assert reopened.attempt(done).result == "passed"
        assert [(s.value, s.state) for s in reopened.serial_numbers()] == [("SN-001000", "burnt")]


def test_a_late_opener_keeps_its_lock_when_it_finds_others_there(tmp_path):
    """flock(2) converts a lock by dropping it first: an opener whose shared-to-exclusive upgrade
    failed would hold nothing, and the next opener would "recover" its live attempts (CI caught
    this as three processes allocating at once)."""
    path = tmp_path / "j.db"
    first = Journal.open(path)
    second = Journal.open(path)         # finds `first` there: must still end up holding its lock
    batch = second.start_batch("live")
    live = second.begin_attempt(batch, "A1")
    second.allocate_serial(live, COUNTER)
    first.close()
    with Journal.open(path) as third:
        assert third.recovered == [] and third.attempt(live).result == "running"
    assert second.finish_attempt(live, "passed") == "used"
    second.close()


def test_uid_seen_lists_attempts_on_the_same_chip_in_one_batch(journal):
    batch = journal.start_batch("b")
    other_batch = journal.start_batch("c")
    ids = []
    for slot in ("A1", "A2"):
        attempt = journal.begin_attempt(batch, slot)
        journal.update_attempt(attempt, uid=UID)
        ids.append(attempt)
    journal.update_attempt(journal.begin_attempt(other_batch, "A1"), uid=UID)
    assert journal.uid_seen(batch, UID) == ids
    assert journal.uid_seen(batch, "FF3FD205 30433538 43172543".lower()) == ids
    assert journal.uid_seen(batch, bytes(12)) == []


def test_exports_carry_every_field(journal):
    batch = journal.start_batch("b")
    attempt = journal.begin_attempt(batch, "A1", "066DFF01")
    journal.update_attempt(attempt, chip_idcode=0x10036410, uid=UID)
    journal.allocate_serial(attempt, COUNTER)
    journal.finish_attempt(attempt, "failed", 'flash "locked", retry', "SR=0x00000014\nline two", {"erase": 1.5})
    journal.begin_attempt(batch, "A2")
    text = io.StringIO()
    assert journal.to_csv(text) == 2
    rows = list(csv.DictReader(io.StringIO(text.getvalue())))
    assert rows[0]["chip_idcode"] == "0x10036410" and rows[0]["serial_number"] == "SN-001000"
    assert rows[0]["cause"] == 'flash "locked", retry' and rows[0]["diagnostics"] == "SR=0x00000014\nline two"
    assert json.loads(rows[0]["stages"]) == {"erase": 1.5} and rows[0]["duration_s"] == "2.0"
    assert rows[1]["result"] == "running" and rows[1]["ended"] == ""
    lines = io.StringIO()
    assert journal.to_jsonl(lines, batch_id=batch) == 2
    first, second = (json.loads(line) for line in lines.getvalue().splitlines())
    assert first["stages"] == {"erase": 1.5} and first["chip_uid"] == UID.hex().upper()
    assert second["ended"] is None and list(first) == list(rows[0])


def test_statistics_count_every_result(journal):
    batch = journal.start_batch("b")
    journal.finish_attempt(journal.begin_attempt(batch, "A1"), "passed")
    journal.begin_attempt(batch, "A2")
    assert journal.statistics(batch) == {"running": 1, "passed": 1, "failed": 0, "aborted": 0, "not_finished": 0}


# --- concurrency ------------------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_many_tasks_share_one_async_journal(tmp_path):
    async with await AsyncJournal.open(tmp_path / "j.db") as journal:
        batch = await journal.start_batch("async")
        serials: list[str] = []

        async def board(slot: str) -> None:
            for _ in range(5):
                attempt = await journal.begin_attempt(batch, slot, f"PROBE-{slot}")
                await journal.update_attempt(attempt, uid=slot.encode().ljust(12, b"\0"))
                serials.append(await journal.allocate_serial(attempt, COUNTER))
                await journal.finish_attempt(attempt, "passed", None, None, {"program": 0.1})

        async with anyio.create_task_group() as tg:
            for index in range(8):
                tg.start_soon(board, f"S{index + 1}")
        assert sorted(serials) == [f"SN-{n:06d}" for n in range(1000, 1040)]
        records = await journal.attempts(batch)
        assert len(records) == 40 and {r.result for r in records} == {"passed"}
        assert len(await journal.uid_seen(batch, b"S1".ljust(12, b"\0"))) == 5


def test_two_processes_allocating_at_once_never_share_a_number(tmp_path):
    path = tmp_path / "j.db"
    Journal.open(path).close()
    children = [subprocess.Popen([sys.executable, "-c", _CHILD, str(path), "0", "40"], stdout=subprocess.PIPE,
                                 text=True) for _ in range(3)]
    values = []
    for child in children:
        out, _ = child.communicate(timeout=120)
        assert child.returncode == 0
        values += [line.split()[1] for line in out.splitlines() if line.startswith("ALLOC")]
    assert len(values) == 120 and len(set(values)) == 120


# --- kill -9 in the middle of everything -----------------------------------------------------------

def _complete_allocations(output: str) -> list[str]:
    """Values from whole "ALLOC value attempt" lines: a child killed while printing leaves a
    partial last line, and a value it never finished reporting is not one it reported."""
    *whole, _partial = output.split("\n")
    return [line.split()[1] for line in whole if line.startswith("ALLOC ") and len(line.split()) == 3]


_CHILD = textwrap.dedent("""
    import random, sys
    from gangflash.orchestrator.config_schema import SerialNumberSpec
    from gangflash.orchestrator.journal import Journal
    path, seed, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    spec = SerialNumberSpec(address=0x0800FC00, format="counter", start=1000, template="SN-%06d", length=9)
    journal = Journal.open(path)
    batch = journal.start_batch(f"run {seed}")
    for n in range(limit):
        attempt = journal.begin_attempt(batch, f"S{n % 8}", "PROBE")
        journal.update_attempt(attempt, chip_idcode=0x20036410, uid=bytes([n % 256]) * 12)
        value = journal.allocate_serial(attempt, spec)
        print("ALLOC", value, attempt, flush=True)
        result = rng.choice(["passed", "passed", "failed", "aborted"])
        journal.finish_attempt(attempt, result, "cause", "diagnostics " * rng.randint(0, 50), {"erase": 0.1})
    print("DONE", flush=True)
""")


@pytest.mark.parametrize("seed", range(6))
def test_kill_9_mid_batch_loses_nothing_and_never_repeats_a_serial(tmp_path, seed):
    path = tmp_path / "j.db"
    rng = random.Random(seed)
    reported: list[str] = []
    kills = 0
    for run in range(4):
        child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path), str(seed * 100 + run), "100000"],
                                 stdout=subprocess.PIPE, text=True)
        for _ in range(rng.randint(1, 40)):               # let it allocate a while ...
            line = child.stdout.readline()
            assert line.startswith("ALLOC"), line
            reported.append(line.split()[1])
        busy_wait_until = rng.random() * 0.01                # ... then kill it anywhere in the loop
        deadline = _monotonic() + busy_wait_until
        while _monotonic() < deadline:
            pass
        child.send_signal(signal.SIGKILL)
        reported += _complete_allocations(child.stdout.read())
        child.wait()
        kills += 1

        with Journal.open(path) as journal:
            assert journal.integrity_check() == "ok"
            serials = {s.value: s for s in journal.serial_numbers()}
            assert set(reported) <= set(serials), "an allocated number was lost"
            assert len(reported) == len(set(reported)), "a number was handed out twice"
            assert all(s.state in ("used", "burnt") for s in serials.values())
            attempts = journal.attempts()
            assert not [a for a in attempts if a.result == "running"]
            assert len([a for a in attempts if a.result == "not_finished"]) <= kills
            numbers = [a.serial_number for a in attempts if a.serial_number]
            assert len(numbers) == len(set(numbers))
            for attempt in attempts:
                if attempt.result == "passed":
                    assert serials[attempt.serial_number].state == "used"
                elif attempt.serial_number:
                    assert serials[attempt.serial_number].state == "burnt"
            indexes = sorted(s.counter_index for s in serials.values())
            assert indexes == list(range(len(indexes)))       # no gap: nothing skipped, nothing reused
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()


def _monotonic() -> float:
    import time
    return time.monotonic()


# --- gangflash journal ----------------------------------------------------------------------------

def _filled(path: Path) -> None:
    with Journal.open(path, clock=FakeClock()) as journal:
        batch = journal.start_batch("demo")
        for index, result in enumerate(("passed", "failed")):
            attempt = journal.begin_attempt(batch, f"S{index + 1}", "5353AA")
            journal.allocate_serial(attempt, COUNTER)
            journal.finish_attempt(attempt, result, "write-protected: pages 0-3" if result == "failed" else None)
        journal.begin_attempt(journal.start_batch("second"), "S1")


def test_journal_command_prints_a_table_and_a_summary(tmp_path, capsys, monkeypatch):
    from gangflash import cli
    _filled(tmp_path / "line.journal.db")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["journal"]) == 0          # the one *.journal.db here
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["ID", "BATCH", "SLOT", "PROBE"]
    assert "SN-001001" in lines[2] and "failed" in lines[2] and "write-protected: pages 0-3" in lines[2]
    # The third attempt's process is gone: opening recovered it.
    assert "not_finished" in lines[3]
    assert lines[-1] == "3 attempts: 1 passed, 1 failed, 1 not finished"
    assert cli.main(["journal", "line.journal.db", "--batch", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 attempt: 1 not finished"


def test_journal_command_exports(tmp_path, capsys):
    from gangflash import cli
    path = tmp_path / "j.db"
    _filled(path)
    out = tmp_path / "out.csv"
    assert cli.main(["journal", str(path), "--export", "csv", "--output", str(out), "--batch", "1"]) == 0
    assert [row["serial_number"] for row in csv.DictReader(out.open())] == ["SN-001000", "SN-001001"]
    assert cli.main(["journal", str(path), "--export", "jsonl"]) == 0
    assert [json.loads(line)["slot"] for line in capsys.readouterr().out.splitlines()] == ["S1", "S2", "S1"]


def test_journal_command_without_a_journal_exits_2(tmp_path, capsys, monkeypatch):
    from gangflash import cli
    monkeypatch.chdir(tmp_path)
    assert cli.main(["journal"]) == 2
    assert "no *.journal.db" in capsys.readouterr().err
    assert cli.main(["journal", "missing.db"]) == 2
    assert "no journal at missing.db" in capsys.readouterr().err
    assert not (tmp_path / "missing.db").exists()
    (tmp_path / "bad.toml").write_text("[batch]\n")
    assert cli.main(["journal", "bad.toml"]) == 2
    assert "batch.name" in capsys.readouterr().err


def test_a_file_that_is_not_a_journal_is_a_journal_error(tmp_path, capsys):
    from gangflash import cli
    path = tmp_path / "notes.db"
    path.write_text("not sqlite at all " * 100)
    with pytest.raises(JournalError, match="cannot open"):
        Journal.open(path)
    assert cli.main(["journal", str(path)]) == 2
    assert "cannot open" in capsys.readouterr().err
