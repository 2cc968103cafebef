"""Progress of one flash operation as a typed event stream.

Order, for one board: ``StageStarted(s)``, any number of ``StageProgress(s, done, total)``,
then ``StageFinished(s, seconds)`` — stage after stage (plan, erase, load_loader, program,
verify, reset); ``Note`` may come at any point (a decision or a recovery worth telling). A failed
stage gets no ``StageFinished``: the error raised says why. Consumers (CLI, orchestrator) receive
events through a plain callable, so this layer knows nothing about who listens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

import anyio


@dataclass(frozen=True)
class StageStarted:
    stage: str


@dataclass(frozen=True)
class StageProgress:
    stage: str
    done: int
    total: int


@dataclass(frozen=True)
class StageFinished:
    stage: str
    seconds: float


@dataclass(frozen=True)
class Note:
    text: str


ProgressEvent = Union[StageStarted, StageProgress, StageFinished, Note]
ProgressSink = Callable[[ProgressEvent], None]


def ignore(_event: ProgressEvent) -> None:
    """A sink for callers that do not listen."""


class Stage:
    """``async with Stage(sink, "erase"):`` emits started/finished around a block, timed on the
    event loop's clock (virtual under a virtual-time loop)."""

    def __init__(self, sink: ProgressSink, name: str) -> None:
        self.sink = sink
        self.name = name
        self.started = 0.0

    async def __aenter__(self) -> "Stage":
        self.started = anyio.current_time()
        self.sink(StageStarted(self.name))
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.sink(StageFinished(self.name, anyio.current_time() - self.started))

    def progress(self, done: int, total: int) -> None:
        self.sink(StageProgress(self.name, done, total))
