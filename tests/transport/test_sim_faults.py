"""Every fault the simulated probe injects at the transport layer ends in the documented exception
or a transparent recovery.

Documented outcomes (see ``transport/stlink/channel.py`` and ``driver.py``):
- usb_timeout_on: UsbTimeout after the probe is resynchronised (costs the caller's timeout in
  virtual time); the probe works for the next command.
- usb_stall_on: UsbStall after resynchronisation; the probe works afterwards.
- swd_wait_burst: absorbed by the firmware's own retries, then by the driver's bounded backoff;
  a burst longer than both ends in ApWait / DpWait.
- unplug_after_bytes: ProbeGone at once, no retry; the probe leaves enumeration.
"""

from __future__ import annotations

import anyio
import pytest

from gangflash.sim.faults import ProbeFaults
from gangflash.transport.errors import ProbeGone, UsbStall, UsbTimeout
from gangflash.transport.sim_backend import SimBackend
from gangflash.transport.stlink import ApWait

from .simhelp import connected, open_probe, sim_probe

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]
BOTH = pytest.mark.parametrize("model", ["V2", "V3"])
SRAM = 0x20000000


def transfers(probe) -> int:
    """Bulk transfers the probe has counted so far (what the one-shot knobs number)."""
    return probe.stats["transfers_out"] + probe.stats["transfers_in"]


def spy(link) -> list[str]:
    """Record every call the driver makes on ``link``."""
    calls: list[str] = []
    for name in ("write", "read", "reset"):
        original = getattr(link, name)

        async def recorded(*args, _original=original, _name=name):
            calls.append(_name)
            return await _original(*args)
        setattr(link, name, recorded)
    return calls


async def prepared(model: str):
    stlink, probe = await connected(model=model)
    await stlink.write_memory(SRAM, bytes(range(64)))
    return stlink, probe


@BOTH
async def test_lost_reply_times_out_after_caller_timeout_then_resyncs(model):
    stlink, probe = await prepared(model)
    probe.faults.usb_timeout_on = transfers(probe) + 2        # 1: command block, 2: reply
    start = anyio.current_time()
    with pytest.raises(UsbTimeout) as info:
        await stlink.read_memory(SRAM, 64)
    assert anyio.current_time() - start >= stlink.timeout    # a real timeout's cost
    assert info.value.command == "READMEM_32BIT" and "resynchronised" in str(info.value)
    assert info.value.serial == stlink.serial
    assert await stlink.read_memory(SRAM, 64) == bytes(range(64))   # stale reply was drained


@BOTH
async def test_lost_command_block_times_out_then_resyncs(model):
    stlink, probe = await prepared(model)
    probe.faults.usb_timeout_on = transfers(probe) + 1
    with pytest.raises(UsbTimeout):
        await stlink.read_idcode()
    assert await stlink.read_idcode() == 0x1BA01477


@BOTH
async def test_lost_write_data_phase_recovers_by_port_reset_without_corrupting_memory(model):
    stlink, probe = await prepared(model)
    probe.faults.usb_timeout_on = transfers(probe) + 2        # the data phase of the write
    with pytest.raises(UsbTimeout):
        await stlink.write_memory(SRAM, b"\xAA" * 8)
    assert probe.stats["usb_resets"] == 1
    # the write never ran, and no command block was taken for write data
    assert await stlink.read_memory(SRAM, 64) == bytes(range(64))


@BOTH
async def test_stall_surfaces_after_resync(model):
    stlink, probe = await prepared(model)
    probe.faults.usb_stall_on = transfers(probe) + 1
    with pytest.raises(UsbStall) as info:
        await stlink.write_u32(SRAM + 4, 0x11223344)
    assert info.value.command == "WRITEMEM_32BIT"
    await stlink.write_u32(SRAM + 4, 0x11223344)
    assert await stlink.read_u32(SRAM + 4) == 0x11223344


@BOTH
async def test_short_wait_burst_absorbed_by_probe_firmware(model):
    stlink, probe = await prepared(model)
    probe.faults.swd_wait_burst = 3
    assert await stlink.read_memory(SRAM, 64) == bytes(range(64))
    assert probe.stats["by_opcode"]["DEBUG.READMEM_32BIT"] == 1     # no host retry needed


@BOTH
async def test_long_wait_burst_retried_by_driver_transparently(model):
    stlink, probe = await prepared(model)
    probe.faults.swd_wait_burst = 12       # beyond the firmware's own retries: it reports WAIT
    assert await stlink.read_memory(SRAM, 64) == bytes(range(64))
    assert probe.stats["by_opcode"]["DEBUG.READMEM_32BIT"] > 1
    assert probe.faults.swd_wait_burst == 0


@BOTH
async def test_endless_wait_ends_in_typed_wait_error_after_bounded_retries(model):
    stlink, probe = await prepared(model)
    probe.faults.swd_wait_burst = 10_000
    start = anyio.current_time()
    with pytest.raises(ApWait) as info:
        await stlink.read_memory(SRAM, 64)
    assert info.value.address == SRAM and info.value.status == 0x10
    assert probe.stats["by_opcode"]["DEBUG.READMEM_32BIT"] == 8
    assert anyio.current_time() - start < 0.5       # bounded: backoff sums to 12.7 ms
    probe.faults.swd_wait_burst = 0
    assert await stlink.read_memory(SRAM, 64) == bytes(range(64))


async def test_wait_burst_from_a_given_command_hits_that_command():
    probe = sim_probe(probe_faults=ProbeFaults(swd_wait_burst=12, swd_wait_on_command=1000))
    stlink = await open_probe(probe)
    await stlink.connect()
    await stlink.write_memory(SRAM, bytes(16))      # commands below 1000: untouched
    assert probe.faults.swd_wait_burst == 12


@BOTH
async def test_unplug_raises_probe_gone_at_once_without_retry(model):
    probe = sim_probe(model=model)
    backend = SimBackend([probe])
    stlink = await open_probe(probe, backend)
    await stlink.connect()
    crossed = probe.stats["bytes_out"] + probe.stats["bytes_in"]
    probe.faults.unplug_after_bytes = crossed + 16 + 100      # dies inside the write's data phase
    calls = spy(stlink.link)
    start = anyio.current_time()
    with pytest.raises(ProbeGone) as info:
        await stlink.write_memory(SRAM, bytes(4096))
    assert info.value.command == "WRITEMEM_32BIT" and info.value.serial == probe.serial
    assert calls == ["write", "write"]          # command block, data phase; no retry, no resync
    assert anyio.current_time() - start < 0.01
    with pytest.raises(ProbeGone):
        await stlink.read_idcode()
    assert calls == ["write", "write"]          # known gone: not even tried
    assert await backend.enumerate() == []
    await stlink.aclose()                                      # closing a gone probe is quiet


async def test_unplug_via_cable_pull_mid_session():
    stlink, probe = await connected()
    probe.unplug()
    with pytest.raises(ProbeGone):
        await stlink.read_memory(SRAM, 4)
