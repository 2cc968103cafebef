"""A deliberately naive flash sequence: what flashers did before the seed bug was understood.

It reads the chip's identity before halting, trusts the flash controller as found (no stale-flag
clearing, no clock check), runs the loader with only PC, SP and r0 set (xPSR and PRIMASK as the
previous firmware left them, interrupts not masked, watchdog neither frozen nor reloaded), and
does not reset the chip first. The regression tests run it against each simulated
previous-firmware fault to prove the fault bites, and run the real engine to prove it survives.
"""

from __future__ import annotations

import struct

import anyio

from gangflash.target.debug import C_DEBUGEN, C_HALT, DBGKEY, DFSR, DHCSR
from gangflash.target.flash.program import _big_ring_layout
from gangflash.target.flash.session import Target
from gangflash.target.loaders import Status, loader_for


class NaiveFailed(Exception):
    pass


async def naive_flash(target: Target, address: int, data: bytes, *, erase: bool = True) -> None:
    core, probe, part = target.core, target.probe, target.part
    # Identify first, as st-info does: a system-bus read with the core in whatever state it is.
    await probe.read_memory(part.flash_size_register & ~1, 2, width=2)
    await core.write32(DHCSR, DBGKEY | C_DEBUGEN | C_HALT)
    if not await core.is_halted():
        raise NaiveFailed("core did not halt")
    flash = target.flash
    await flash.unlock()
    if erase:
        timing = part.controller.timing()
        for unit in target.geometry.units_overlapping(address, address + len(data)):
            await flash.erase_unit(unit, timing.erase_time(unit.size).maximum * 2)
    blob = loader_for(part.controller.generation)
    layout = _big_ring_layout(blob, part.sram_base, part.sram_loader_kib * 1024)
    await probe.write_memory(layout.code_addr, blob.code + b"\0" * (-len(blob.code) % 4))
    cb = bytearray(blob.control_block(layout, address, len(data), blob.flags()))
    ring = data + b"\0" * (-len(data) % 16)
    assert len(ring) + 8 <= layout.ring_size, "naive sequence: image must fit the ring"
    await probe.write_memory(layout.ring_start, ring)
    struct.pack_into("<I", cb, 0, layout.ring_start + len(data))          # WP: everything queued
    await probe.write_memory(layout.cb_addr, bytes(cb))
    await core.write_reg(0, layout.cb_addr)
    await core.write_reg(13, layout.stack_top)
    await core.write_reg(15, layout.program_pc)
    await core.write32(DFSR, 0x1F)
    await core.write32(DHCSR, DBGKEY | C_DEBUGEN)                          # run, interrupts live
    with anyio.move_on_after(5.0):
        while not await core.is_halted():
            await anyio.sleep(0.005)
    if not await core.is_halted():
        raise NaiveFailed("flash loader run error: loader did not reach its breakpoint")
    status = await core.read_reg(0)
    if status != Status.DONE:
        raise NaiveFailed(f"flash loader run error: status {status}, r2 {await core.read_reg(2):#x}, "
                          f"pc {await core.read_reg(15):#010x}")
    if await probe.read_memory(address, len(data)) != data:
        raise NaiveFailed("verify failed")
