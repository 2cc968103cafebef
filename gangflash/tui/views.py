"""What the dashboard's widgets are handed: frozen views of one tile, the header, the detail pane.

Views are quantised to what the screen can show (whole seconds, a tenth of a KB/s), so two views
compare equal when the picture would be the same, and a widget handed an equal view does not
repaint. ``model.DashboardModel`` builds them from the batch's events.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

class Status(enum.Enum):
    """What a slot is doing; the value is the word the tile shows (never colour alone)."""

    IDLE = "IDLE"
    WAITING = "WAITING FOR BOARD"
    RUNNING = "RUNNING"
    RETRYING = "RETRYING"           # failed, the scheduler tries again by itself
    PASSED = "PASS"
    FAILED = "FAIL"
    PROBE_FAULT = "PROBE FAULT"
    ABORTED = "ABORTED"

    @property
    def css(self) -> str:
        """The CSS class a tile carries in this state (``-pass``, ``-probe-fault``...)."""
        return "-" + self.name.lower().replace("_", "-")


FINISHED = frozenset({Status.PASSED, Status.FAILED, Status.PROBE_FAULT, Status.ABORTED})
FAILURE_KINDS = frozenset({"fail", "retry", "fault", "abort"})


@dataclass(frozen=True)
class LogEntry:
    """One line of the batch log. ``kind`` picks the word and colour; failures can be filtered."""

    at: float
    slot: str | None
    kind: str            # batch, start, info, note, pass, fail, retry, fault, abort, operator
    text: str

    @property
    def is_failure(self) -> bool:
        return self.kind in FAILURE_KINDS


@dataclass(frozen=True)
class StageView:
    """One stage of the detail pane's timeline."""

    name: str
    seconds: float | None        # finished: its duration; running or failed: time so far
    state: str                   # done, running, failed, aborted


@dataclass(frozen=True)
class AttemptView:
    """An earlier attempt in this slot, for the detail pane's history."""

    attempt: int
    status: Status
    seconds: float | None
    detail: str                  # cause, reason or serial number


@dataclass(frozen=True)
class TileView:
    """Everything one tile shows, quantised so equal views draw the same picture."""

    slot: str
    probe: str = ""
    chip: str = ""
    attempt: int = 0                     # tries at this board (manual retries included)
    status: Status = Status.IDLE
    stage: str = ""
    elapsed: int | None = None           # whole seconds
    done: int | None = None              # progress of the current stage (None: no bar)
    total: int | None = None
    in_bytes: bool = False
    rate: float | None = None            # bytes/s, quantised; average of the program stage once passed
    message: str = ""                    # cause, abort reason, serial number, last note


@dataclass(frozen=True)
class HeaderView:
    """The batch at a glance."""

    batch: str = ""
    firmware: str = ""
    sha256: str = ""                     # short form
    chip: str = ""
    mode: str = "batch"
    run_state: str = "NOT STARTED"       # NOT STARTED, RUNNING, PAUSED, DONE, STOPPING, FINISHED
    passed: int = 0
    failed: int = 0
    probe_faults: int = 0
    aborted: int = 0
    running: int = 0
    waiting: int = 0
    yield_ratio: float | None = None
    per_hour: float | None = None
    elapsed: int | None = None


@dataclass(frozen=True)
class DetailView:
    """The selected board in full: timeline, cause, diagnostics and its journal row."""

    slot: str
    probe: str = ""
    status: Status = Status.IDLE
    attempt: int = 0
    attempt_id: int | None = None
    chip: str = ""
    idcode: int | None = None
    uid: str = ""
    flash_size: int | None = None
    serial_number: str | None = None
    elapsed: int | None = None
    stage: str = ""
    done: int | None = None
    total: int | None = None
    in_bytes: bool = False
    rate: float | None = None
    stages: tuple[StageView, ...] = ()
    failed_stage: str = ""
    cause: str = ""
    diagnostics: str = ""
    notes: tuple[tuple[float, str], ...] = ()      # (seconds into the attempt, text)
    history: tuple[AttemptView, ...] = ()
