"""The flash engine end to end against simulated boards: plan, erase, stream, verify, reset."""

from __future__ import annotations

import pytest

from gangflash.target.flash.errors import ReadoutProtected, VerifyFailed, WriteProtected
from gangflash.target.flash.program import FlashOptions, flash_image
from gangflash.target.flash.progress import StageFinished, StageProgress
from gangflash.target.image import Image
from gangflash.target.image_formats import Chunk

from .board import FLASH, attach, board, image

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]


@pytest.mark.parametrize("chip, model", [("F103C8", "V2"), ("F412ZG", "V3"), ("L432KC", "V2-1")])
async def test_programs_and_verifies_on_three_generations(chip, model):
    img, data = image(20 * 1024 + 8, seed=3)
    async with board(chip, model=model) as (stlink, sim):
        events = []
        result = await flash_image(await attach(stlink), img, sink=events.append)
        assert sim.target.flash_contents(FLASH, len(data)) == data
        stages = [e.stage for e in events if isinstance(e, StageFinished)]
        assert stages == ["unlock", "plan", "erase", "program", "verify", "reset"]
        assert any(isinstance(e, StageProgress) and e.stage == "program" and e.done == e.total for e in events)
        assert result.programmed >= len(data)


async def test_bytes_outside_the_image_survive_in_partial_pages():
    async with board("F103C8") as (stlink, sim):
        sim.target.flash.write_raw(FLASH, bytes(range(256)) * 8)       # old content, page 0-1
        img = Image.from_chunks([Chunk(FLASH + 0x100, b"\xaa" * 0x80, "t")], path="t.bin", format="bin")
        await flash_image(await attach(stlink), img)
        flash = sim.target.flash_contents(FLASH, 0x800)
        assert flash[:0x100] == bytes(range(256))
        assert flash[0x100:0x180] == b"\xaa" * 0x80
        assert flash[0x180:0x800] == (bytes(range(256)) * 8)[0x180:0x800]


async def test_reflash_of_an_unchanged_image_skips_every_unit():
    img, data = image(32 * 1024, seed=4)
    async with board("F103C8") as (stlink, sim):
        first = await flash_image(await attach(stlink), img)
        t0 = __import__("anyio").current_time()
        second = await flash_image(await attach(stlink), img)
        again = __import__("anyio").current_time() - t0
        assert second.skipped == len(second.plan.work) and second.programmed == 0
        assert again < 0.1 * first.seconds
        assert sim.target.flash_contents(FLASH, len(data)) == data


async def test_full_flash_image_uses_one_mass_erase():
    img, data = image(64 * 1024, seed=5)
    async with board("F103C8") as (stlink, sim):
        result = await flash_image(await attach(stlink), img)
        assert result.plan.mass_erase
        assert sim.target.flash_contents(FLASH, len(data)) == data


async def test_write_protected_page_fails_before_erase_with_its_address():
    img, _ = image(8 * 1024, seed=6)
    async with board("F103C8", write_protected=(4,)) as (stlink, sim):
        sim.target.flash.write_raw(FLASH, b"\x11" * 1024)
        with pytest.raises(WriteProtected, match="0x08001000 is write-protected"):
            await flash_image(await attach(stlink), img)
        assert sim.target.flash_contents(FLASH, 16) == b"\x11" * 16    # nothing erased
        flash_cr = int.from_bytes(sim.target.mem_read(0x40022010, 4, 4), "little")
        assert flash_cr & 0x80, "the failed run left the flash controller unlocked"


@pytest.mark.parametrize("chip", ["F103C8", "F412ZG", "L432KC"])
async def test_readout_protection_refused_without_unlock(chip):
    img, _ = image(4096, seed=7)
    async with board(chip, rdp_level1=True) as (stlink, sim):
        with pytest.raises(ReadoutProtected, match="set unlock = true"):
            await flash_image(await attach(stlink), img)


@pytest.mark.parametrize("chip", ["F103C8", "F412ZG", "L432KC"])
async def test_readout_protection_regressed_with_unlock(chip):
    img, data = image(4096, seed=7)
    async with board(chip, rdp_level1=True) as (stlink, sim):
        sim.target.flash.write_raw(FLASH + 0x8000, b"secret" * 10)
        result = await flash_image(await attach(stlink), img, FlashOptions(unlock=True))
        assert sim.target.flash_contents(FLASH, len(data)) == data
        assert sim.target.flash_contents(FLASH + 0x8000, 6) == b"\xff" * 6  # mass-erased on the way
        assert any("readout protection" in n for n in result.notes)


async def test_stuck_bits_fail_verify_with_the_page_address():
    img, _ = image(4096, seed=8)
    async with board("F103C8", stuck_bits={FLASH + 0x403: 0xFF}) as (stlink, sim):
        with pytest.raises(VerifyFailed, match="0x08000400"):
            await flash_image(await attach(stlink), img)


async def test_forced_mass_erase_rewrites_units_that_were_up_to_date():
    """Regression: a mass erase wiped units the plan had skipped as up to date (false PASS)."""
    img, data = image(8 * 1024, seed=31)
    async with board("F103C8") as (stlink, sim):
        await flash_image(await attach(stlink), img)
        result = await flash_image(await attach(stlink), img, FlashOptions(erase="mass"))
        assert result.plan.mass_erase and result.skipped == 0
        assert sim.target.flash_contents(FLASH, len(data)) == data


async def test_controller_is_locked_even_without_reset():
    img, _ = image(2048, seed=32)
    async with board("F103C8") as (stlink, sim):
        await flash_image(await attach(stlink), img, FlashOptions(reset_after=False))
        assert await stlink.read_u32(0x40022010) & 0x80            # FLASH_CR.LOCK


@pytest.mark.parametrize("chip", ["F103C8", "F412ZG", "L432KC"])
async def test_readout_protection_set_after_programming(chip):
    """[pipeline] rdp_after: set after the engine has locked the controller again."""
    img, _ = image(2048, seed=33)
    async with board(chip) as (stlink, sim):
        target = await attach(stlink)
        await flash_image(target, img, FlashOptions(reset_after=False))
        await target.flash.set_rdp_level1()
        await target.core.reset_and_halt()
        assert await target.flash.rdp_level() == 1


@pytest.mark.parametrize("chip", ["L432KC", "F412ZG"])
async def test_unit_erase_polls_once_when_the_datasheet_time_is_up_and_leaves_cr_clear(chip):
    """The first status poll waits for the typical erase time, so a page-by-page erase costs about
    one SR read per unit (a coarse poll grid overshoots on every unit); CR keeps the erase bits
    between units and end_erase clears them."""
    import anyio

    async with board(chip) as (stlink, sim):
        target = await attach(stlink)
        flash = target.flash
        await flash.unlock()
        units = target.geometry.units_overlapping(FLASH, FLASH + 1)[:1] if chip == "F412ZG" else \
            target.geometry.units_overlapping(FLASH, FLASH + 4 * 2048)
        sim.target.flash.write_raw(FLASH, b"\x00" * 16)
        polls = 0
        status = flash.status

        async def counted():
            nonlocal polls
            polls += 1
            return await status()

        flash.status = counted
        timing = target.part.controller.timing()
        started = anyio.current_time()
        for unit in units:
            expected = timing.erase_time(unit.size)
            await flash.erase_unit(unit, expected.maximum * 1.5 + 0.5, expected=expected.nominal)
        await flash.end_erase()
        elapsed = anyio.current_time() - started
        nominal = sum(timing.erase_time(u.size).nominal for u in units)
        assert polls <= 2 * len(units)
        assert nominal <= elapsed < nominal + 0.01 * len(units)
        assert sim.target.flash_contents(FLASH, 16) == b"\xff" * 16
        assert await flash.read(flash.cr) & 0xFFFF == 0
