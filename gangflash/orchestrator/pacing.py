"""One clock for simulated runs: virtual time, optionally paced to the wall clock.

Simulated boards always run on a virtual-time event loop (looptime): the simulator charges every
USB transfer and every flash operation its modelled time on that clock, so a chip's core is
simulated for exactly the time the model says passed, never for the host's own overhead. With
``pace`` > 0 a pacer task holds virtual time back so it advances at most ``pace`` times as fast
as the wall clock (1.0: real time, for a dashboard a person watches). When the host cannot keep
up, virtual time simply lags; nothing the boards do changes. ``pace`` 0 runs flat out.

(Running the simulator on the wall clock instead would make every millisecond of host overhead a
millisecond of simulated firmware execution, which the host then has to spend even longer
simulating: a run that never catches up.)
"""

from __future__ import annotations

import functools
import time
from typing import Any, Awaitable, Callable, TypeVar

import anyio

T = TypeVar("T")
PACER_STEP_S = 0.005            # virtual seconds between pacing checks


async def _pacer(pace: float) -> None:
    virtual0, wall0 = anyio.current_time(), time.monotonic()
    while True:
        await anyio.sleep(PACER_STEP_S)
        ahead = (anyio.current_time() - virtual0) / pace - (time.monotonic() - wall0)
        if ahead > 0:
            time.sleep(ahead)       # blocks the (virtual) loop on purpose: that is the pacing


async def _paced(pace: float, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    async with anyio.create_task_group() as tg:
        tg.start_soon(_pacer, pace)
        result = await fn(*args)
        tg.cancel_scope.cancel()
    return result


def run_simulated(fn: Callable[..., Awaitable[T]], *args: Any, pace: float = 0.0) -> T:
    """``anyio.run(fn, *args)`` on a virtual-time loop, paced to the wall clock when ``pace`` > 0."""
    import looptime
    options = {"loop_factory": looptime.new_event_loop}
    if pace > 0:
        return anyio.run(functools.partial(_paced, pace, fn), *args, backend_options=options)
    return anyio.run(fn, *args, backend_options=options)


class PacedBatch:
    """A batch whose ``run`` is paced (for a UI that owns the event loop, e.g. the dashboard
    running on a virtual-time loop); everything else is the batch's own."""

    def __init__(self, batch: Any, pace: float) -> None:
        self._batch = batch
        self._pace = pace

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)

    async def run(self) -> Any:
        if self._pace > 0:
            return await _paced(self._pace, self._batch.run)
        return await self._batch.run()


def virtual_loop():
    """A new virtual-time event loop (looptime)."""
    import looptime
    return looptime.new_event_loop()

