"""The seed bug, cause by cause: "run_flash_loader(0x08000000) failed" came from state the
previous firmware left in the chip. For each simulated cause, the naive sequence fails (the fault
bites) and gangflash ends verified."""

from __future__ import annotations

import zlib

import anyio
import pytest

from gangflash.sim.firmware import previous_firmware
from gangflash.sim.faults import ProbeFaults
from gangflash.target.flash.errors import FlashError
from gangflash.target.flash.program import flash_image
from gangflash.target.image import Image
from gangflash.target.image_formats import Chunk
from gangflash.transport.errors import ProbeGone

from .board import FLASH, attach, board, image
from .naive import NaiveFailed, naive_flash

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]

SEED_CAUSES = [
    ("F103C8", "core_asleep"), ("F103C8", "interrupts_firing"), ("F103C8", "watchdog_running"),
    ("F103C8", "hardware_watchdog"), ("F103C8", "thumb_bit_clear"), ("F103C8", "flash_locked_stale_flags"),
    ("F103C8", "flash_unlocked_stale_flags"), ("F103C8", "hsi_off"),
    ("F412ZG", "interrupts_firing"), ("F412ZG", "watchdog_running"), ("F412ZG", "thumb_bit_clear"),
    ("F412ZG", "flash_unlocked_stale_flags"), ("F412ZG", "core_asleep"),
    ("L432KC", "interrupts_firing"), ("L432KC", "hardware_watchdog"), ("L432KC", "thumb_bit_clear"),
    ("L432KC", "flash_unlocked_stale_flags"), ("L432KC", "flash_locked_stale_flags"),
]
SIZE = 16 * 1024                # long enough for a 26 ms watchdog and a 410-512 ms hardware one
NAIVE_SIZE = 8 * 1024           # fits the naive sequence's single ring fill on every chip (F1: 10 KiB SRAM)


@pytest.mark.parametrize("chip, cause", SEED_CAUSES)
async def test_gangflash_survives_the_previous_firmware(chip, cause):
    img, data = image(SIZE, seed=zlib.crc32(cause.encode()))
    async with board(chip, **{cause: True}) as (stlink, sim):
        result = await flash_image(await attach(stlink), img)
        assert sim.target.flash_contents(FLASH, SIZE) == data
        assert result.programmed >= SIZE


@pytest.mark.parametrize("chip, cause", SEED_CAUSES)
async def test_the_naive_sequence_fails_against_it(chip, cause):
    size = NAIVE_SIZE if chip == "F103C8" else 4 * NAIVE_SIZE      # outlast the 512 ms hardware IWDG
    _, data = image(size, seed=zlib.crc32(cause.encode()))
    async with board(chip, **{cause: True}) as (stlink, sim):
        target = await _attach_without_halting(stlink)
        with pytest.raises((NaiveFailed, FlashError, Exception)) as failure:
            await naive_flash(target, FLASH, data)
        assert not isinstance(failure.value, AssertionError)
        assert sim.target.flash_contents(FLASH, size) != data


@pytest.mark.parametrize("chip", ["F103C8", "F412ZG", "L432KC"])
async def test_naive_sequence_passes_on_a_clean_chip(chip):
    """Control: the naive sequence is a working flasher when nothing was left behind."""
    _, data = image(NAIVE_SIZE, seed=1)
    async with board(chip) as (stlink, sim):
        await naive_flash(await _attach_without_halting(stlink), FLASH, data)
        assert sim.target.flash_contents(FLASH, NAIVE_SIZE) == data


def _firmware(variant: int) -> Image:
    """A real firmware that, once flashed and reset, starts the IWDG and SysTick interrupts:
    the next attempt meets exactly what the seed report describes."""
    code = bytearray(previous_firmware(watchdog=True, systick=True, sleep=False, core_hz=8_000_000))
    code += bytes([variant]) * 1024                      # so consecutive images differ
    return Image.from_chunks([Chunk(FLASH, bytes(code), "fw")], path=f"fw{variant}.bin", format="bin")


async def test_every_second_attempt_no_longer_fails():
    async with board("F103C8") as (stlink, sim):
        for attempt in range(10):
            img = _firmware(attempt % 2)
            await flash_image(await attach(stlink), img)       # resets into the new firmware
            assert sim.target.flash_contents(FLASH, img.size) == img.segments[0].data
            await anyio.sleep(0.01)                             # the firmware runs: IWDG, SysTick


async def test_every_second_attempt_fails_for_the_naive_sequence():
    async with board("F103C8") as (stlink, sim):
        first = _firmware(0).segments[0].data
        await naive_flash(await _attach_without_halting(stlink), FLASH, first)
        await stlink.reset_system()                            # run the flashed firmware
        await anyio.sleep(0.01)
        with pytest.raises(Exception) as failure:
            await naive_flash(await _attach_without_halting(stlink), FLASH, _firmware(1).segments[0].data)
        assert not isinstance(failure.value, AssertionError)


async def test_power_loss_mid_write_fails_and_names_it():
    img, data = image(SIZE, seed=9)
    async with board("F103C8", power_loss_at=0.3) as (stlink, sim):
        with pytest.raises(Exception) as failure:
            await flash_image(await attach(stlink), img)
        assert not isinstance(failure.value, AssertionError)
        assert isinstance(failure.value, FlashError)
        assert "target lost power" in str(failure.value)
        assert sim.target.flash_contents(FLASH, SIZE) != data           # no false pass possible


async def test_probe_unplugged_mid_write_raises_probe_gone():
    img, data = image(SIZE, seed=10)
    async with board("F103C8", probe_faults=ProbeFaults(unplug_after_bytes=12_000)) as (stlink, sim):
        with pytest.raises(ProbeGone):
            await flash_image(await attach(stlink), img)
        assert sim.target.flash_contents(FLASH, SIZE) != data


async def _attach_without_halting(stlink):
    """Target identification for the naive sequence, without the halt Target.attach does."""
    from gangflash.target.debug import CortexDebug
    from gangflash.target.families import identify
    from gangflash.target.flash.controllers import make_interface
    from gangflash.target.flash.session import Target, _interface_options
    await stlink.connect(swd_khz=4000)
    core = CortexDebug(stlink)
    cpuid = await core.read32(0xE000ED00)
    idcode = await core.read32(0xE0042000)
    part = identify(idcode, cpuid=cpuid)
    geometry = part.geometry(part.max_flash_kib if part.family != "F1" else 64)
    flash = make_interface(part.controller.generation, core, part.controller.register_base,
                           erased=part.controller.erased_value, **_interface_options(part))
    return Target(stlink, core, part, idcode, 64, geometry, b"", flash)
