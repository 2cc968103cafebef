"""Recovery policy: a loader run that dies is resumed after a reset-halt; a loader that keeps
failing is replaced by programming through the debug port."""

from __future__ import annotations

import anyio
import pytest

from gangflash.target.flash.errors import LoaderFailed
from gangflash.target.flash.program import FlashEngine, FlashOptions
from gangflash.target.flash.progress import Note

from .board import FLASH, attach, board, image

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]


async def test_a_reset_during_programming_is_recovered_and_resumed():
    img, data = image(16 * 1024, seed=21)
    async with board("F103C8") as (stlink, sim):
        target = await attach(stlink)
        notes = []
        engine = FlashEngine(target, FlashOptions(), sink=lambda e: notes.append(e.text) if isinstance(e, Note) else None)

        async def brown_out():
            await anyio.sleep(0.9)                      # mid-programming (erase ends ~0.55 s)
            sim.target.sync(anyio.current_time())
            sim.target.set_nrst(True)                   # a reset pulse from the board
            sim.target.set_nrst(False)

        async with anyio.create_task_group() as tg:
            tg.start_soon(brown_out)
            result = await engine.run(img)
        assert sim.target.flash_contents(FLASH, len(data)) == data
        assert any("recovering from: the chip reset during programming" in n for n in notes)
        assert result.programmed >= len(data)


async def test_a_loader_that_keeps_failing_falls_back_to_the_debug_port(monkeypatch):
    img, data = image(4 * 1024, seed=22)
    async with board("F103C8") as (stlink, sim):
        target = await attach(stlink)
        engine = FlashEngine(target, FlashOptions(retries=1))

        async def broken(job, **_):
            raise LoaderFailed("simulated loader failure", address=job.dest)

        monkeypatch.setattr(engine.runner, "program", broken)
        result = await engine.run(img)
        assert sim.target.flash_contents(FLASH, len(data)) == data
        assert any("programming through the debug port" in n for n in result.notes)
