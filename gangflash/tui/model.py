"""What the dashboard knows, built from the batch's events alone: plain Python, no Textual.

:class:`DashboardModel` takes every event as it arrives (:meth:`~DashboardModel.apply` is O(1), so
64 boards reporting progress every 10 ms cost next to nothing) and answers with frozen *views*
(``views.py``: TileView, HeaderView, DetailView) that the widgets render.

Time is the event loop's clock, the one events are stamped with (``Event.at``); the model never
reads a clock itself: ``now`` is passed in, so a test or a snapshot fixes it.

Counting, as the header shows it:

* a *board* is what sits in a slot from its first attempt until the slot waits for the next board
  (``BoardWaiting``, auto mode) or the batch is started again (:meth:`DashboardModel.new_round`);
  a board that failed and is retried counts once, with its latest outcome;
* ``failed`` counts boards that failed for good; a probe fault (the probe, not the board, is at
  fault) is counted apart and left out of the yield;
* ``yield`` is passed / (passed + failed); ``boards per hour`` is boards finished (passed or
  failed) per hour of batch time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath

from gangflash.orchestrator import events as ev

BYTE_STAGES = frozenset({"program"})   # stages whose progress counts bytes (others count steps)
RATE_WINDOW_S = 1.0                    # KB/s is measured over the last second of progress
RATE_STALE_S = 1.0                     # no progress for this long: the rate is shown as unknown
RATE_QUANTUM = 102.4                   # bytes/s: a tenth of a KB/s, the finest step shown
LOG_LIMIT = 2000
HISTORY_LIMIT = 8
NOTES_LIMIT = 20


from .views import (  # noqa: F401 - the views are part of the model's interface
    FINISHED, AttemptView, DetailView, HeaderView, LogEntry, StageView, Status, TileView,
)


@dataclass
class _Stage:
    name: str
    started: float
    seconds: float | None = None
    state: str = "running"


@dataclass
class BoardState:
    """One slot's board, mutated by events. Read it through the views."""

    slot: str
    probe: str = ""
    status: Status = Status.IDLE
    attempt: int = 0                      # the scheduler's attempt number within its retry policy
    tries: int = 0                        # attempts at the board now in the slot, manual retries too
    attempt_id: int | None = None
    chip: str = ""
    idcode: int | None = None
    uid: str = ""
    flash_size: int | None = None
    serial_number: str | None = None
    started: float | None = None
    ended: float | None = None
    stage: str = ""
    done: int | None = None
    total: int | None = None
    samples: deque[tuple[float, int]] = field(default_factory=deque)
    program_rate: float | None = None     # average of the last finished program stage
    program_total: int | None = None
    stages: list[_Stage] = field(default_factory=list)
    failed_stage: str = ""
    cause: str = ""
    diagnostics: str = ""
    notes: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=NOTES_LIMIT))
    history: deque[AttemptView] = field(default_factory=lambda: deque(maxlen=HISTORY_LIMIT))
    version: int = 0                      # bumped by every event: the view may have changed

    def elapsed(self, now: float) -> float | None:
        if self.started is None:
            return None
        return (self.ended if self.ended is not None else now) - self.started

    def rate(self, now: float) -> float | None:
        """Bytes per second over the last second of progress; None if stalled or not bytes."""
        if self.stage not in BYTE_STAGES or len(self.samples) < 2:
            return None
        (first_at, first_done), (last_at, last_done) = self.samples[0], self.samples[-1]
        if now - last_at > RATE_STALE_S or last_at - first_at < 0.02:
            return None
        return (last_done - first_done) / (last_at - first_at)


def _quantise(rate: float | None) -> float | None:
    return None if rate is None else round(rate / RATE_QUANTUM) * RATE_QUANTUM


class DashboardModel:
    """The dashboard's state: fed events, asked for views. See the module docstring for counting."""

    def __init__(self) -> None:
        self.batch = ""
        self.firmware = ""
        self.sha256 = ""
        self.chip_expected = ""
        self.mode = "batch"
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.paused = False
        self.stopping = False
        self.boards: dict[str, BoardState] = {}
        self.layout_version = 0               # bumped when the set of slots changes
        self.events_seen = 0
        self._origin: float | None = None     # zero of the log's time column
        self._counts = {Status.PASSED: 0, Status.FAILED: 0, Status.PROBE_FAULT: 0, Status.ABORTED: 0}
        self._outcome: dict[str, Status | None] = {}     # counted outcome of the board now in a slot
        self._changed: set[str] = set()
        self._header_dirty = True
        self.log: deque[LogEntry] = deque(maxlen=LOG_LIMIT)
        self._new_log: list[LogEntry] = []

    # --- setup and operator input -----------------------------------------------------------------

    def configure(self, *, batch: str, firmware: str, sha256: str, chip: str, mode: str,
                  slots: Sequence[tuple[str, str]] = ()) -> None:
        """What the config says, shown before the batch starts: ``slots`` are (label, probe serial)."""
        self.batch, self.firmware, self.sha256 = batch, PurePath(firmware).name, sha256
        self.chip_expected, self.mode = chip, mode
        if slots:
            self._set_slots([label for label, _ in slots])
            for label, probe in slots:
                self.boards[label].probe = probe or ""
        self._header_dirty = True

    def note(self, text: str, at: float, *, kind: str = "operator") -> None:
        """An operator action or app message, for the log (``at`` on the event clock)."""
        self._log(at, None, kind, text)
        self._header_dirty = True

    def new_round(self) -> None:
        """The batch starts again: what is in the slots from now on are new boards."""
        self._outcome = dict.fromkeys(self._outcome)
        for board in self.boards.values():
            board.tries = 0
        self._header_dirty = True

    # --- events -----------------------------------------------------------------------------------

    def apply(self, event: ev.Event) -> None:
        """Take one event into the state (cheap: called for every progress event)."""
        self.events_seen += 1
        if isinstance(event, ev.StageProgress):          # by far the most frequent: first, and short
            board = self._board(event.slot)
            if event.stage != board.stage:
                self._enter_stage(board, event.stage, event.at)
            board.done, board.total = event.done, event.total
            samples = board.samples
            samples.append((event.at, event.done))
            while len(samples) > 2 and event.at - samples[0][0] > RATE_WINDOW_S:
                samples.popleft()
            self._touch(board)
            return
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    def _batch_started(self, event: ev.BatchStarted) -> None:
        self.batch, self.firmware, self.sha256 = event.batch, PurePath(event.firmware).name, event.firmware_sha256
        self.chip_expected, self.mode = event.chip_expected, event.mode
        self.started_at, self.finished_at = event.at, None
        self.stopping = False
        probes = {slot: board.probe for slot, board in self.boards.items()}
        self.boards = {}
        self._set_slots(list(event.slots))
        for slot, board in self.boards.items():
            board.probe = probes.get(slot, "")
        self._counts = dict.fromkeys(self._counts, 0)
        self._outcome = dict.fromkeys(event.slots)
        self._origin = self._origin if self._origin is not None else event.at
        self._log(event.at, None, "batch", f"batch {event.batch} started: {len(event.slots)} slots, "
                  f"{event.mode} mode, firmware {self.firmware} ({event.firmware_sha256[:8]}), "
                  f"chip {event.chip_expected}")

    def _batch_finished(self, event: ev.BatchFinished) -> None:
        self.finished_at = event.at
        self.stopping = False
        self._log(event.at, None, "batch", f"batch finished: {event.passed} passed, {event.failed} failed, "
                  f"{event.aborted} aborted")
        self._header_dirty = True

    def _waiting(self, event: ev.BoardWaiting) -> None:
        board = self._board(event.slot)
        board.probe = event.probe_serial or board.probe
        self._outcome[event.slot] = None                 # the next board is a new one
        self._close_attempt(board)
        board.tries = 0
        board.status = Status.WAITING
        board.stage, board.done, board.total = "", None, None
        board.samples.clear()
        board.started = board.ended = None
        board.cause = board.diagnostics = board.failed_stage = ""
        board.chip = board.uid = ""
        board.idcode = board.flash_size = board.serial_number = None
        board.stages = []
        board.notes.clear()
        self._touch(board)

    def _started(self, event: ev.BoardStarted) -> None:
        board = self._board(event.slot)
        self._close_attempt(board)
        board.probe = event.probe_serial or board.probe
        board.status = Status.RUNNING
        board.attempt, board.attempt_id = event.attempt, event.attempt_id
        board.tries += 1
        board.started, board.ended = event.at, None
        board.stage, board.done, board.total = "", None, None
        board.samples.clear()
        board.stages = []
        board.cause = board.diagnostics = board.failed_stage = ""
        board.serial_number = None
        board.program_rate = board.program_total = None
        board.notes.clear()
        self._touch(board)
        self._log(event.at, event.slot, "start", f"try {board.tries} started on probe {event.probe_serial}")

    def _identified(self, event: ev.BoardIdentified) -> None:
        board = self._board(event.slot)
        board.chip, board.idcode, board.uid, board.flash_size = event.chip, event.idcode, event.uid, event.flash_size
        self._touch(board)
        self._log(event.at, event.slot, "info", f"{event.chip} {event.flash_size // 1024} KiB, UID {event.uid.upper()}")

    def _stage_started(self, event: ev.StageStarted) -> None:
        board = self._board(event.slot)
        self._enter_stage(board, event.stage, event.at)
        self._touch(board)

    def _stage_finished(self, event: ev.StageFinished) -> None:
        board = self._board(event.slot)
        stage = self._stage_record(board, event.stage, event.at - event.seconds)
        stage.seconds, stage.state = event.seconds, "done"
        if event.stage in BYTE_STAGES and board.stage == event.stage and board.total and event.seconds > 0:
            board.program_rate, board.program_total = board.total / event.seconds, board.total
        if board.stage == event.stage:
            board.done = board.total = None
            board.samples.clear()
        self._touch(board)

    def _board_note(self, event: ev.BoardNote) -> None:
        board = self._board(event.slot)
        since = event.at - board.started if board.started is not None else 0.0
        board.notes.append((since, event.text))
        if event.text.startswith("serial number ") and board.serial_number is None:
            board.serial_number = event.text.split()[2]
        self._touch(board)
        self._log(event.at, event.slot, "note", event.text)

    def _passed(self, event: ev.BoardPassed) -> None:
        board = self._board(event.slot)
        self._finish(board, Status.PASSED, event.at, event.seconds)
        board.serial_number = event.serial_number or board.serial_number
        serial = f", serial number {board.serial_number}" if board.serial_number else ""
        self._log(event.at, event.slot, "pass", f"PASS in {event.seconds:.2f} s{serial}")

    def _failed(self, event: ev.BoardFailed) -> None:
        board = self._board(event.slot)
        if event.will_retry:
            status, kind = Status.RETRYING, "retry"
        elif event.probe_fault:
            status, kind = Status.PROBE_FAULT, "fault"
        else:
            status, kind = Status.FAILED, "fail"
        board.cause, board.diagnostics, board.failed_stage = event.cause, event.diagnostics, event.stage
        for stage in board.stages:
            if stage.state == "running":
                stage.state, stage.seconds = "failed", event.at - stage.started
        self._finish(board, status, event.at, None)
        word = {"retry": "FAIL (will retry)", "fault": "PROBE FAULT", "fail": "FAIL"}[kind]
        self._log(event.at, event.slot, kind, f"{word} in {event.stage}: {event.cause}")

    def _aborted(self, event: ev.BoardAborted) -> None:
        board = self._board(event.slot)
        board.cause = event.reason
        for stage in board.stages:
            if stage.state == "running":
                stage.state, stage.seconds = "aborted", event.at - stage.started
        self._finish(board, Status.ABORTED, event.at, None)
        self._log(event.at, event.slot, "abort", f"ABORTED: {event.reason}")

    # --- state helpers ----------------------------------------------------------------------------

    def _set_slots(self, labels: list[str]) -> None:
        old = self.boards
        self.boards = {label: old.get(label) or BoardState(label) for label in labels}
        for label in labels:
            self._outcome.setdefault(label, None)
        self.layout_version += 1
        self._changed.update(labels)
        self._header_dirty = True

    def _board(self, slot: str) -> BoardState:
        board = self.boards.get(slot)
        if board is None:                                # an event for a slot BatchStarted did not list
            self._set_slots([*self.boards, slot])
            board = self.boards[slot]
        return board

    def _touch(self, board: BoardState) -> None:
        board.version += 1
        self._changed.add(board.slot)

    def _enter_stage(self, board: BoardState, name: str, at: float) -> None:
        board.stage = name
        board.done = board.total = None
        board.samples.clear()
        self._stage_record(board, name, at)

    @staticmethod
    def _stage_record(board: BoardState, name: str, started: float) -> _Stage:
        for stage in reversed(board.stages):
            if stage.name == name and stage.state == "running":
                return stage
        stage = _Stage(name, started)
        board.stages.append(stage)
        return stage

    def _finish(self, board: BoardState, status: Status, at: float, seconds: float | None) -> None:
        board.status = status
        board.ended = at if seconds is None or board.started is None else board.started + seconds
        board.done = board.total = None
        board.samples.clear()
        if status is not Status.RETRYING:
            previous = self._outcome.get(board.slot)
            if previous is not None:
                self._counts[previous] -= 1               # the same board, tried again: latest outcome counts
            self._counts[status] += 1
            self._outcome[board.slot] = status
        self._touch(board)
        self._header_dirty = True

    @staticmethod
    def _close_attempt(board: BoardState) -> None:
        """Keep the attempt that just ended in the slot's history (detail pane)."""
        if board.started is None or board.status in (Status.IDLE, Status.WAITING, Status.RUNNING):
            return
        detail = board.cause or (f"serial number {board.serial_number}" if board.serial_number else "")
        board.history.appendleft(AttemptView(board.tries, board.status, board.elapsed(board.ended or 0.0), detail))

    def _log(self, at: float, slot: str | None, kind: str, text: str) -> None:
        if self._origin is None:
            self._origin = at
        entry = LogEntry(at, slot, kind, text)
        self.log.append(entry)
        self._new_log.append(entry)

    # --- reading ----------------------------------------------------------------------------------

    @property
    def slots(self) -> list[str]:
        return list(self.boards)

    @property
    def passed(self) -> int:
        return self._counts[Status.PASSED]

    @property
    def failed(self) -> int:
        return self._counts[Status.FAILED]

    @property
    def probe_faults(self) -> int:
        return self._counts[Status.PROBE_FAULT]

    @property
    def aborted(self) -> int:
        return self._counts[Status.ABORTED]

    def count(self, status: Status) -> int:
        """Slots in ``status`` right now (RUNNING, WAITING...)."""
        return sum(1 for board in self.boards.values() if board.status is status)

    @property
    def yield_ratio(self) -> float | None:
        judged = self.passed + self.failed
        return self.passed / judged if judged else None

    def elapsed(self, now: float) -> float | None:
        if self.started_at is None:
            return None
        return (self.finished_at if self.finished_at is not None else now) - self.started_at

    def per_hour(self, now: float) -> float | None:
        elapsed = self.elapsed(now)
        finished = self.passed + self.failed
        if not finished or not elapsed or elapsed < 1.0:
            return None
        return finished * 3600.0 / elapsed

    def run_state(self) -> str:
        if self.finished_at is not None:
            return "FINISHED"
        if self.started_at is None:
            return "STOPPING" if self.stopping else "NOT STARTED"
        if self.stopping:
            return "STOPPING"
        if self.paused:
            return "PAUSED"
        if self.boards and all(board.status in FINISHED for board in self.boards.values()):
            return "DONE"                                # every slot has its outcome; r or s to go on
        return "RUNNING"

    def take_changed(self) -> set[str]:
        """Slots touched since the last call (the app repaints those tiles)."""
        changed, self._changed = self._changed, set()
        return changed

    def take_header_dirty(self) -> bool:
        dirty, self._header_dirty = self._header_dirty, False
        return dirty

    def take_log(self) -> list[LogEntry]:
        """Log entries added since the last call."""
        new, self._new_log = self._new_log, []
        return new

    def log_entries(self, *, failures_only: bool = False) -> Iterator[LogEntry]:
        return (entry for entry in self.log if entry.is_failure or not failures_only)

    def log_offset(self, entry: LogEntry) -> float:
        """Seconds from the start of the batch (the log's time column)."""
        return entry.at - (self._origin if self._origin is not None else entry.at)

    def header_view(self, now: float) -> HeaderView:
        elapsed = self.elapsed(now)
        return HeaderView(
            batch=self.batch, firmware=self.firmware, sha256=self.sha256[:8], chip=self.chip_expected,
            mode=self.mode, run_state=self.run_state(), passed=self.passed, failed=self.failed,
            probe_faults=self.probe_faults, aborted=self.aborted, running=self.count(Status.RUNNING),
            waiting=self.count(Status.WAITING), yield_ratio=self.yield_ratio,
            per_hour=None if (rate := self.per_hour(now)) is None else round(rate, 1),
            elapsed=None if elapsed is None else int(elapsed))

    def tile_view(self, slot: str, now: float) -> TileView:
        board = self.boards[slot]
        elapsed = board.elapsed(now)
        status = board.status
        rate: float | None = None
        done = total = None
        message = ""
        if status is Status.RUNNING:
            done, total = board.done, board.total
            rate = board.rate(now)
            message = board.notes[-1][1] if board.notes else ""
        elif status is Status.PASSED:
            rate, total = board.program_rate, board.program_total
            message = f"SN {board.serial_number}" if board.serial_number else ""
        elif status in (Status.FAILED, Status.PROBE_FAULT, Status.RETRYING, Status.ABORTED):
            message = board.cause
        return TileView(
            slot=slot, probe=board.probe, chip=board.chip, attempt=board.tries, status=status,
            stage=board.failed_stage if board.failed_stage and status is not Status.RUNNING else board.stage,
            elapsed=None if elapsed is None or status is Status.WAITING else int(elapsed),
            done=done, total=total, in_bytes=board.stage in BYTE_STAGES, rate=_quantise(rate), message=message)

    def detail_view(self, slot: str, now: float) -> DetailView:
        board = self.boards[slot]
        elapsed = board.elapsed(now)
        stages = tuple(
            StageView(stage.name, stage.seconds if stage.state != "running" else now - stage.started, stage.state)
            for stage in board.stages)
        # running stages change every tick: show them to a tenth of a second
        stages = tuple(StageView(s.name, round(s.seconds, 1), s.state) if s.state == "running" and s.seconds
                       is not None else s for s in stages)
        running = board.status is Status.RUNNING
        return DetailView(
            slot=slot, probe=board.probe, status=board.status, attempt=board.tries, attempt_id=board.attempt_id,
            chip=board.chip, idcode=board.idcode, uid=board.uid.upper(), flash_size=board.flash_size,
            serial_number=board.serial_number, elapsed=None if elapsed is None else int(elapsed),
            stage=board.stage, done=board.done if running else None, total=board.total if running else None,
            in_bytes=board.stage in BYTE_STAGES,
            rate=_quantise(board.rate(now) if running else board.program_rate), stages=stages,
            failed_stage=board.failed_stage, cause=board.cause, diagnostics=board.diagnostics,
            notes=tuple(board.notes), history=tuple(board.history))

    def apply_all(self, events: Iterable[ev.Event]) -> None:
        """``apply`` each (tests and scripted screenshots)."""
        for event in events:
            self.apply(event)


_HANDLERS = {
    ev.BatchStarted: DashboardModel._batch_started,
    ev.BatchFinished: DashboardModel._batch_finished,
    ev.BoardWaiting: DashboardModel._waiting,
    ev.BoardStarted: DashboardModel._started,
    ev.BoardIdentified: DashboardModel._identified,
    ev.StageStarted: DashboardModel._stage_started,
    ev.StageFinished: DashboardModel._stage_finished,
    ev.BoardNote: DashboardModel._board_note,
    ev.BoardPassed: DashboardModel._passed,
    ev.BoardFailed: DashboardModel._failed,
    ev.BoardAborted: DashboardModel._aborted,
}
