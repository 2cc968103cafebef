"""The one event stream of a batch: what the dashboard, the journal and the headless printer see.

Order for one board attempt: ``BoardStarted``, then stages (``StageStarted``, ``StageProgress``*,
``StageFinished``) with ``BoardIdentified`` and ``BoardNote`` in between, and exactly one of
``BoardPassed``, ``BoardFailed`` or ``BoardAborted`` last. A batch begins with ``BatchStarted`` and
ends with ``BatchFinished``; in auto mode ``BoardWaiting`` marks a slot ready for the next board.
Every event carries the slot label and the loop time it happened at.

``EventBus`` gives each subscriber its own stream, so a slow consumer (a dashboard repainting)
never delays or drops events for another (the journal), and closes them all when the batch ends.
The streams are unbounded on purpose: ``emit`` is synchronous (the flash engine reports progress
from plain callbacks) and must never lose an event; consumers drain far faster than boards
produce (a few hundred events per board).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """Base: when it happened (event-loop clock)."""

    at: float = field(default_factory=anyio.current_time, kw_only=True)


@dataclass(frozen=True)
class BatchStarted(Event):
    batch: str
    slots: tuple[str, ...]
    firmware: str
    firmware_sha256: str
    chip_expected: str
    mode: str                       # "batch" or "auto"


@dataclass(frozen=True)
class BatchFinished(Event):
    passed: int
    failed: int
    aborted: int


@dataclass(frozen=True)
class BoardWaiting(Event):
    slot: str
    probe_serial: str


@dataclass(frozen=True)
class BoardStarted(Event):
    slot: str
    probe_serial: str
    attempt: int                    # 1-based attempt number for this board
    attempt_id: int | None = None   # journal row


@dataclass(frozen=True)
class BoardIdentified(Event):
    slot: str
    chip: str
    idcode: int
    uid: str
    flash_size: int


@dataclass(frozen=True)
class StageStarted(Event):
    slot: str
    stage: str


@dataclass(frozen=True)
class StageProgress(Event):
    slot: str
    stage: str
    done: int
    total: int


@dataclass(frozen=True)
class StageFinished(Event):
    slot: str
    stage: str
    seconds: float


@dataclass(frozen=True)
class BoardNote(Event):
    slot: str
    text: str


@dataclass(frozen=True)
class BoardPassed(Event):
    slot: str
    seconds: float
    serial_number: str | None = None


@dataclass(frozen=True)
class BoardFailed(Event):
    slot: str
    stage: str
    cause: str                      # one line a technician can act on
    diagnostics: str = ""           # registers decoded
    will_retry: bool = False
    probe_fault: bool = False       # the probe, not the board, is at fault (PROBE FAULT)


@dataclass(frozen=True)
class BoardAborted(Event):
    slot: str
    reason: str


TERMINAL = (BoardPassed, BoardFailed, BoardAborted)


class EventBus:
    """Fan-out of events to subscribers, each with its own stream."""

    def __init__(self) -> None:
        self._senders: list[MemoryObjectSendStream[Event]] = []
        self.closed = False

    def subscribe(self) -> MemoryObjectReceiveStream[Event]:
        """A new stream that receives every event published from now on."""
        send, receive = anyio.create_memory_object_stream[Event](math.inf)
        self._senders.append(send)
        return receive

    def emit(self, event: Event) -> None:
        """Deliver to every subscriber now (never blocks, never drops)."""
        for send in list(self._senders):
            try:
                send.send_nowait(event)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._senders.remove(send)          # that subscriber went away

    async def publish(self, event: Event) -> None:
        """``emit``, then let the consumers run."""
        self.emit(event)
        await anyio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        self.closed = True
        for send in self._senders:
            await send.aclose()
        self._senders.clear()
