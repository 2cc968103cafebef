"""The batch journal: every board attempt and every serial number, in SQLite, losing nothing.

A production line must be able to answer, after a power cut or a ``kill -9``, which boards were
programmed with what, which failed and why, and which serial numbers are spoken for. So:

* WAL mode with ``synchronous=FULL``: a committed transaction survives a crash of the process and
  of the machine; a crash mid-transaction leaves no half-written row.
* Every write is one explicit transaction, committed before the call returns.
* :meth:`Journal.begin_attempt` commits a ``running`` row *before* the board is touched, so a crash
  leaves evidence; :meth:`Journal.recover` (run at open when no other process holds the journal)
  turns such rows into ``not_finished`` and burns their serial numbers.
* :meth:`Journal.allocate_serial` picks and records the next number inside one ``BEGIN IMMEDIATE``
  transaction: SQLite's write lock serialises allocators across tasks and processes, and the value
  is the table's primary key, so no number is ever handed out twice, whatever dies when.

Serial-number states: ``allocated`` (given to a running attempt), ``used`` (on a board that
passed), ``burnt`` (given to an attempt that failed, was aborted or never finished: never handed
out again), and ``free``: with ``on_failure = "reuse"``, a number that was allocated but *never
written to a chip* goes back to the pool and is handed out again before any new one. A number
that reached a chip's flash is burnt even under ``reuse``: the failed board may still carry it.

Who may recover: recovery must not touch a live process's ``running`` rows. Every open journal
holds a shared ``flock`` on ``<journal>.lock``; the lock dies with its process, even under
``kill -9``. Open runs recovery only when a *second* descriptor of the lock file can be locked
exclusively, i.e. when nobody else has the journal open. Lock conversion is never used: flock(2)
converts by dropping the old lock first, so a failed shared-to-exclusive upgrade leaves the
process holding nothing and a third opener would recover a live run's attempts. The whole check
runs inside one ``BEGIN IMMEDIATE`` transaction, so openers take turns (SQLite's write lock is
the gate, across threads and processes). (Without ``fcntl``, e.g. on Windows, recovery always runs
at open.)

The core is synchronous: one connection per :class:`Journal`, guarded by a lock because
``journal_async.AsyncJournal`` calls it from worker threads so the event loop never waits on the
disk.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Protocol

from .journal_export import AttemptRecord, BatchRecord, SerialRecord, write_csv, write_jsonl

try:
    import fcntl
except ImportError:     # pragma: no cover - not on Linux/macOS
    fcntl = None        # type: ignore[assignment]

__all__ = [
    "Journal", "SerialSource", "AttemptRecord", "BatchRecord", "SerialRecord",
    "JournalError", "JournalNotFound", "UnknownAttempt", "AttemptFinished", "SerialsExhausted",
    "RESULTS", "SERIAL_STATES",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
RESULTS = ("running", "passed", "failed", "aborted", "not_finished")
FINISH_RESULTS = ("passed", "failed", "aborted")
SERIAL_STATES = ("allocated", "used", "burnt", "free")
RECOVERED_CAUSE = "interrupted: gangflash stopped before this attempt finished"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS batch (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL,
    config_path     TEXT,
    firmware_path   TEXT,
    firmware_sha256 TEXT,
    started         TEXT NOT NULL,
    ended           TEXT
);
CREATE TABLE IF NOT EXISTS attempt (
    id              INTEGER PRIMARY KEY,
    batch_id        INTEGER NOT NULL REFERENCES batch(id),
    slot            TEXT NOT NULL,
    probe_serial    TEXT,
    port_path       TEXT,
    chip_idcode     INTEGER,
    chip_uid        TEXT,
    firmware_sha256 TEXT,
    serial_number   TEXT,
    started         TEXT NOT NULL,
    ended           TEXT,
    result          TEXT NOT NULL CHECK (result IN ({", ".join(repr(r) for r in RESULTS)})),
    cause           TEXT,
    diagnostics     TEXT,
    stages          TEXT NOT NULL DEFAULT '{{}}'
);
CREATE INDEX IF NOT EXISTS attempt_batch ON attempt(batch_id);
CREATE INDEX IF NOT EXISTS attempt_result ON attempt(result);
CREATE INDEX IF NOT EXISTS attempt_uid ON attempt(batch_id, chip_uid);
CREATE TABLE IF NOT EXISTS serial_number (
    value           TEXT PRIMARY KEY,
    counter_index   INTEGER NOT NULL,
    source          TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ({", ".join(repr(s) for s in SERIAL_STATES)})),
    attempt_id      INTEGER REFERENCES attempt(id),
    allocated       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS serial_source ON serial_number(source, counter_index);
CREATE INDEX IF NOT EXISTS serial_state ON serial_number(source, state);
"""


class JournalError(Exception):
    """The journal refused or failed an operation; names the journal file."""

    def __init__(self, message: str, *, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.detail = message
        shown = self.path is None or str(self.path) in message
        super().__init__(message if shown else f"{message} (journal {self.path})")


class JournalNotFound(JournalError):
    """``Journal.open(..., create=False)`` on a path with no journal."""


class UnknownAttempt(JournalError):
    """No attempt with that id."""


class AttemptFinished(JournalError):
    """The attempt already has its final result; results are written once."""


class SerialsExhausted(JournalError):
    """The serial-number source has no value left (CSV rows used up, counter past its width)."""


class SerialSource(Protocol):
    """Where serial numbers come from (``config_schema.SerialNumberSpec`` is one).

    ``source`` names the sequence (a changed recipe is a new sequence); ``value_at(index)`` is the
    index-th value, or None past the end.
    """

    @property
    def source(self) -> str: ...

    def value_at(self, index: int) -> str | None: ...


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _normalize_uid(uid: bytes | str) -> str:
    if isinstance(uid, (bytes, bytearray)):
        return bytes(uid).hex().upper()
    return "".join(ch for ch in uid if ch not in " :-").upper()


class Journal:
    """One SQLite journal file, one connection. Use :meth:`open`; close it (or use ``with``)."""

    def __init__(self, path: Path, connection: sqlite3.Connection, lock_fd: int | None,
                 clock: Callable[[], datetime]) -> None:
        self.path = path
        self._db = connection
        self._lock_fd = lock_fd
        self._clock = clock
        self._mutex = threading.RLock()
        self.recovered: list[int] = []      # attempt ids recover() changed when this object opened

    # --- opening and closing ----------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, *, create: bool = True,
             clock: Callable[[], datetime] | None = None) -> Journal:
        """Open (or create) the journal at ``path``; recover crashed attempts if nobody else has it open.

        ``clock`` returns aware datetimes (tests pass a fixed one).
        """
        path = Path(path)
        if not create and not path.is_file():
            raise JournalNotFound(f"no journal at {path}", path=path)
        lock_fd = _open_lock_file(path)
        try:
            connection = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            _unlock(lock_fd)
            raise JournalError(f"cannot open: {exc}", path=path) from exc
        journal = cls(path, connection, lock_fd, clock or _utc_now)
        try:
            journal._prepare()
            journal._join()
        except sqlite3.Error as exc:
            journal.close()
            raise JournalError(f"cannot open {path}: {exc}", path=path) from exc
        except BaseException:
            journal.close()
            raise
        return journal

    def _prepare(self) -> None:
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            log.warning("journal %s: WAL mode unavailable (%s); commits are slower but still durable",
                        self.path, mode)
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._transaction():
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise JournalError(f"written by a newer gangflash (schema {version}, this one knows "
                                   f"{SCHEMA_VERSION})", path=self.path)
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _join(self) -> None:
        """Take this journal's shared lock, recovering first if nobody else holds one.

        Runs in a write transaction: two openers never test and lock at the same time.
        """
        ids: list[int] = []
        burnt = 0
        with self._transaction() as db:
            if _alone(self.path, self._lock_fd):
                ids, burnt = self._recover_in(db)
            _lock_shared(self._lock_fd)
        self._report_recovery(ids, burnt)
        self.recovered = ids

    def close(self) -> None:
        """Close the connection and release the lock (idempotent)."""
        with self._mutex:
            if self._db is not None:
                self._db.close()
                self._db = None     # type: ignore[assignment]
            _unlock(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``: the write lock is taken up front, so two allocators
        never both read "next is 42"; any exception rolls everything back."""
        with self._mutex:
            if self._db is None:
                raise JournalError("journal is closed", path=self.path)
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                yield db
                db.execute("COMMIT")
            except BaseException as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise JournalError(f"write failed: {exc}", path=self.path) from exc
                raise

    def _now(self) -> str:
        return self._clock().astimezone(timezone.utc).isoformat(timespec="milliseconds")

    # --- batches and attempts ---------------------------------------------------------------------

    def start_batch(self, name: str, *, config_path: str | Path | None = None,
                    firmware_path: str | Path | None = None, firmware_sha256: str | None = None) -> int:
        """Record a new batch; returns its id."""
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO batch (name, config_path, firmware_path, firmware_sha256, started) "
                "VALUES (?, ?, ?, ?, ?)",
                (name, _text(config_path), _text(firmware_path), firmware_sha256, self._now()))
            return int(cursor.lastrowid)

    def end_batch(self, batch_id: int) -> None:
        """Stamp the batch's end time (a batch without one did not end cleanly)."""
        with self._transaction() as db:
            if db.execute("UPDATE batch SET ended = ? WHERE id = ?", (self._now(), batch_id)).rowcount != 1:
                raise JournalError(f"no batch {batch_id}", path=self.path)

    def begin_attempt(self, batch_id: int, slot: str, probe_serial: str | None = None, *,
                      port_path: str | None = None, firmware_sha256: str | None = None) -> int:
        """Commit a ``running`` attempt row before the board is touched; returns its id.

        ``firmware_sha256`` defaults to the batch's.
        """
        with self._transaction() as db:
            batch = db.execute("SELECT firmware_sha256 FROM batch WHERE id = ?", (batch_id,)).fetchone()
            if batch is None:
                raise JournalError(f"no batch {batch_id}", path=self.path)
            cursor = db.execute(
                "INSERT INTO attempt (batch_id, slot, probe_serial, port_path, firmware_sha256, started, "
                "result) VALUES (?, ?, ?, ?, ?, ?, 'running')",
                (batch_id, slot, probe_serial, port_path, firmware_sha256 or batch[0], self._now()))
            return int(cursor.lastrowid)

    def update_attempt(self, attempt_id: int, *, chip_idcode: int | None = None,
                       uid: bytes | str | None = None, probe_serial: str | None = None,
                       port_path: str | None = None) -> None:
        """Record what the pipeline learnt about the board (only the given fields change)."""
        changes = {"chip_idcode": chip_idcode, "chip_uid": _normalize_uid(uid) if uid is not None else None,
                   "probe_serial": probe_serial, "port_path": port_path}
        changes = {column: value for column, value in changes.items() if value is not None}
        with self._transaction() as db:
            self._running(db, attempt_id)
            if changes:
                assignments = ", ".join(f"{column} = ?" for column in changes)
                db.execute(f"UPDATE attempt SET {assignments} WHERE id = ?", (*changes.values(), attempt_id))

    def finish_attempt(self, attempt_id: int, result: str, cause: str | None = None,
                       diagnostics: str | None = None, stages: dict[str, float] | None = None, *,
                       serial_written: bool = True, on_failure: str = "burn") -> str | None:
        """Write the attempt's final result; settle its serial number. Returns the serial's new
        state (None without one).

        ``result`` is ``passed``, ``failed`` or ``aborted``; ``cause`` one line a technician can act
        on; ``stages`` stage name -> seconds. The serial becomes ``used`` when the board passed with
        it written; ``free`` (handed out again) when it never reached the chip and ``on_failure`` is
        ``"reuse"``; otherwise ``burnt``.
        """
        if result not in FINISH_RESULTS:
            raise ValueError(f"result must be one of {FINISH_RESULTS}, not {result!r}")
        if on_failure not in ("burn", "reuse"):
            raise ValueError(f"on_failure must be 'burn' or 'reuse', not {on_failure!r}")
        if cause is not None:
            cause = " ".join(cause.split())        # one line, whatever the raiser put in
        with self._transaction() as db:
            serial = self._running(db, attempt_id)
            db.execute("UPDATE attempt SET result = ?, cause = ?, diagnostics = ?, stages = ?, ended = ? "
                       "WHERE id = ?", (result, cause, diagnostics, json.dumps(stages or {}), self._now(),
                                        attempt_id))
            if serial is None:
                return None
            if result == "passed" and serial_written:
                state = "used"
            elif not serial_written and on_failure == "reuse":
                state = "free"
            else:
                state = "burnt"
            db.execute("UPDATE serial_number SET state = ?, attempt_id = ? WHERE value = ?",
                       (state, None if state == "free" else attempt_id, serial))
            return state

    def _running(self, db: sqlite3.Connection, attempt_id: int) -> str | None:
        """Check the attempt exists and is running; return its serial number."""
        row = db.execute("SELECT result, serial_number FROM attempt WHERE id = ?", (attempt_id,)).fetchone()
        if row is None:
            raise UnknownAttempt(f"no attempt {attempt_id}", path=self.path)
        if row[0] != "running":
            raise AttemptFinished(f"attempt {attempt_id} already ended as {row[0]}", path=self.path)
        return row[1]

    # --- serial numbers ---------------------------------------------------------------------------

    def allocate_serial(self, attempt_id: int, source: SerialSource) -> str:
        """Give the running attempt its serial number (the same one if it already has one).

        A number returned to the pool (``free``) is reused first; otherwise the next index after
        the highest this source ever allocated (counter: start + index * step; CSV: the next row),
        skipping values already present from any source. One IMMEDIATE transaction: committed
        before it returns, never the same value twice.
        """
        with self._transaction() as db:
            existing = self._running(db, attempt_id)
            if existing is not None:
                return existing
            name = source.source
            free = db.execute("SELECT value FROM serial_number WHERE source = ? AND state = 'free' "
                              "ORDER BY counter_index LIMIT 1", (name,)).fetchone()
            if free is not None:
                value = free[0]
                db.execute("UPDATE serial_number SET state = 'allocated', attempt_id = ?, allocated = ? "
                           "WHERE value = ?", (attempt_id, self._now(), value))
            else:
                top = db.execute("SELECT MAX(counter_index) FROM serial_number WHERE source = ?",
                                 (name,)).fetchone()[0]
                index = 0 if top is None else top + 1
                while True:
                    value = source.value_at(index)
                    if value is None:
                        raise SerialsExhausted(f"no serial number left in {name} (index {index})",
                                               path=self.path)
                    taken = db.execute("SELECT 1 FROM serial_number WHERE value = ?", (value,)).fetchone()
                    if taken is None:
                        break
                    log.warning("serial %r (index %d of %s) already in the journal; skipped", value, index, name)
                    index += 1
                db.execute("INSERT INTO serial_number (value, counter_index, source, state, attempt_id, "
                           "allocated) VALUES (?, ?, ?, 'allocated', ?, ?)",
                           (value, index, name, attempt_id, self._now()))
            db.execute("UPDATE attempt SET serial_number = ? WHERE id = ?", (value, attempt_id))
            return value

    # --- crash recovery ---------------------------------------------------------------------------

    def recover(self) -> list[int]:
        """Mark attempts left ``running`` as ``not_finished`` and burn their serial numbers.

        Only safe when no other process is writing this journal: :meth:`open` calls it when the
        lock file shows nobody else has it open. Returns the recovered attempt ids.
        """
        with self._transaction() as db:
            ids, burnt = self._recover_in(db)
        self._report_recovery(ids, burnt)
        return ids

    def _recover_in(self, db: sqlite3.Connection) -> tuple[list[int], int]:
        ids = [row[0] for row in db.execute("SELECT id FROM attempt WHERE result = 'running'")]
        if ids:
            db.execute("UPDATE attempt SET result = 'not_finished', cause = ? WHERE result = 'running'",
                       (f"{RECOVERED_CAUSE} (found {self._now()})",))
        burnt = db.execute("UPDATE serial_number SET state = 'burnt' WHERE state = 'allocated'").rowcount
        return ids, burnt

    def _report_recovery(self, ids: list[int], burnt: int) -> None:
        if ids or burnt:
            log.warning("journal %s: %d attempt(s) left running by a crash marked not_finished, %d serial "
                        "number(s) burnt", self.path, len(ids), burnt)

    # --- reading ----------------------------------------------------------------------------------

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._mutex:
            if self._db is None:
                raise JournalError("journal is closed", path=self.path)
            return self._db.execute(sql, args).fetchall()

    def batches(self) -> list[BatchRecord]:
        """Every batch, oldest first."""
        return [BatchRecord(*row) for row in self._query(
            "SELECT id, name, config_path, firmware_path, firmware_sha256, started, ended FROM batch ORDER BY id")]

    def attempts(self, batch_id: int | None = None) -> list[AttemptRecord]:
        """Every attempt (of one batch if given), in the order they began."""
        where, args = ("WHERE batch_id = ?", (batch_id,)) if batch_id is not None else ("", ())
        rows = self._query(f"SELECT {', '.join(AttemptRecord.COLUMNS)} FROM attempt {where} ORDER BY id", args)
        return [AttemptRecord.from_row(row) for row in rows]

    def attempt(self, attempt_id: int) -> AttemptRecord:
        rows = self._query(f"SELECT {', '.join(AttemptRecord.COLUMNS)} FROM attempt WHERE id = ?", (attempt_id,))
        if not rows:
            raise UnknownAttempt(f"no attempt {attempt_id}", path=self.path)
        return AttemptRecord.from_row(rows[0])

    def serial_numbers(self, state: str | None = None) -> list[SerialRecord]:
        """Every serial number the journal knows (in one state if given), by source and index."""
        where, args = ("WHERE state = ?", (state,)) if state else ("", ())
        return [SerialRecord(*row) for row in self._query(
            f"SELECT value, counter_index, source, state, attempt_id, allocated FROM serial_number {where} "
            "ORDER BY source, counter_index", args)]

    def uid_seen(self, batch_id: int, uid: bytes | str) -> list[int]:
        """Ids of the batch's attempts on the chip with this UID: more than one finished attempt
        means the same board came back (or two boards share a UID), which the scheduler flags."""
        return [row[0] for row in self._query(
            "SELECT id FROM attempt WHERE batch_id = ? AND chip_uid = ? ORDER BY id",
            (batch_id, _normalize_uid(uid)))]

    def statistics(self, batch_id: int | None = None) -> dict[str, int]:
        """Attempt count per result (every result present, zero if none)."""
        where, args = ("WHERE batch_id = ?", (batch_id,)) if batch_id is not None else ("", ())
        counts = dict.fromkeys(RESULTS, 0)
        counts.update(self._query(f"SELECT result, COUNT(*) FROM attempt {where} GROUP BY result", args))
        return counts

    def integrity_check(self) -> str:
        """SQLite's own verdict on the file: ``"ok"`` or the problems found."""
        return "; ".join(row[0] for row in self._query("PRAGMA integrity_check"))

    def to_csv(self, file: str | Path | IO[str], batch_id: int | None = None) -> int:
        """Export attempts as CSV (header + one row each); returns the row count."""
        return write_csv(self.attempts(batch_id), file)

    def to_jsonl(self, file: str | Path | IO[str], batch_id: int | None = None) -> int:
        """Export attempts as JSON Lines (one object per attempt); returns the count."""
        return write_jsonl(self.attempts(batch_id), file)


def _text(value: str | Path | None) -> str | None:
    return str(value) if value is not None else None


# --- the lock file that tells whether anyone else has the journal open -----------------------------

def _open_lock_file(path: Path) -> int | None:
    """The descriptor this journal holds its shared lock on; None without fcntl, -1 if unwritable."""
    if fcntl is None:
        return None
    try:
        return os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:      # read-only folder: no lock, no recovery
        log.warning("journal %s: no lock file (%s); crash recovery skipped", path, exc)
        return -1


def _alone(path: Path, fd: int | None) -> bool:
    """True when no other open journal holds the lock file (tested on a fresh descriptor, never by
    converting ``fd``'s lock)."""
    if fd is None:
        return True
    if fd < 0:
        return False
    try:
        probe = os.open(f"{path}.lock", os.O_RDWR)
    except OSError as exc:      # the lock file vanished or became unreadable: do not recover
        log.warning("journal %s: cannot test the lock file (%s); crash recovery skipped", path, exc)
        return False
    try:
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(probe)     # drops the probe's lock, if it got one
    return True


def _lock_shared(fd: int | None) -> None:
    if fd is not None and fd >= 0:
        fcntl.flock(fd, fcntl.LOCK_SH)


def _unlock(fd: int | None) -> None:
    if fd is not None and fd >= 0:
        os.close(fd)        # closing drops the flock
