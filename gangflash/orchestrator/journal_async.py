"""The journal for async code: :class:`AsyncJournal` runs each :class:`Journal` call off the loop.

On a real clock each write goes to a worker thread, so the event loop never waits on an fsync; on
a virtual clock (simulated boards) it runs inline, see :meth:`AsyncJournal._call`. A cancelled
caller still waits for its commit: a journal write is never abandoned halfway.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.lowlevel

from .journal import AttemptRecord, Journal, SerialSource

__all__ = ["AsyncJournal", "on_virtual_clock"]

T = TypeVar("T")


def on_virtual_clock() -> bool:
    """True inside a virtual-time (looptime) event loop."""
    try:
        import asyncio
        return "looptime" in type(asyncio.get_running_loop()).__module__
    except RuntimeError:
        return False


class AsyncJournal:
    """:class:`Journal` for async code: the same operations, each run in a worker thread.

    Many tasks may share one: the journal's own lock serialises them. Cancelling a caller does
    not abandon its write (``to_thread.run_sync`` waits for the thread), so nothing is half-done.
    """

    def __init__(self, journal: Journal, *, threaded: bool | None = None) -> None:
        self.sync = journal
        self.threaded = not on_virtual_clock() if threaded is None else threaded

    @classmethod
    async def open(cls, path: str | Path, *, create: bool = True,
                   clock: Callable[[], datetime] | None = None) -> AsyncJournal:
        opener = functools.partial(Journal.open, path, create=create, clock=clock)
        if on_virtual_clock():
            return cls(opener(), threaded=False)
        return cls(await anyio.to_thread.run_sync(opener), threaded=True)

    async def _call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """In a worker thread on a real clock. On a virtual clock (simulated boards) the call runs
        inline: a virtual-time loop that sees only a thread's pending result jumps straight to
        the next timer, so a journal write would "take" as long as the nearest deadline. A few
        milliseconds of blocking cost a virtual-time loop nothing."""
        if not self.threaded:
            result = method(*args, **kwargs)
            await anyio.lowlevel.checkpoint()
            return result
        return await anyio.to_thread.run_sync(functools.partial(method, *args, **kwargs))

    async def aclose(self) -> None:
        await self._call(self.sync.close)

    async def __aenter__(self) -> AsyncJournal:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start_batch(self, name: str, **kwargs: Any) -> int:
        return await self._call(self.sync.start_batch, name, **kwargs)

    async def end_batch(self, batch_id: int) -> None:
        await self._call(self.sync.end_batch, batch_id)

    async def begin_attempt(self, batch_id: int, slot: str, probe_serial: str | None = None,
                            **kwargs: Any) -> int:
        return await self._call(self.sync.begin_attempt, batch_id, slot, probe_serial, **kwargs)

    async def update_attempt(self, attempt_id: int, **kwargs: Any) -> None:
        await self._call(self.sync.update_attempt, attempt_id, **kwargs)

    async def allocate_serial(self, attempt_id: int, source: SerialSource) -> str:
        return await self._call(self.sync.allocate_serial, attempt_id, source)

    async def finish_attempt(self, attempt_id: int, result: str, cause: str | None = None,
                             diagnostics: str | None = None, stages: dict[str, float] | None = None,
                             **kwargs: Any) -> str | None:
        return await self._call(self.sync.finish_attempt, attempt_id, result, cause, diagnostics, stages,
                                **kwargs)

    async def attempts(self, batch_id: int | None = None) -> list[AttemptRecord]:
        return await self._call(self.sync.attempts, batch_id)

    async def attempt(self, attempt_id: int) -> AttemptRecord:
        return await self._call(self.sync.attempt, attempt_id)

    async def uid_seen(self, batch_id: int, uid: bytes | str) -> list[int]:
        return await self._call(self.sync.uid_seen, batch_id, uid)

    async def statistics(self, batch_id: int | None = None) -> dict[str, int]:
        return await self._call(self.sync.statistics, batch_id)
