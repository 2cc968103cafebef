"""The simulated core's debug model (ARMv7-M C1) and identity, as a debugger sees them."""

from __future__ import annotations

import struct

import pytest

from gangflash.sim.chips import CHIPS
from gangflash.sim.clock import ManualClock
from gangflash.sim.errors import BusFault
from gangflash.sim.target import SimTarget

from .chipdebug import DEMCR, DFSR, DHCSR, S_HALT, S_RESET_ST, ChipDebugger, assemble

VECTORS = struct.pack("<II", 0x20001000, 0x08000101)      # SP, reset handler (Thumb)


def chip(name: str = "F103C8") -> ChipDebugger:
    clock = ManualClock()
    return ChipDebugger(SimTarget(name, clock), clock)


@pytest.mark.parametrize("name", sorted(CHIPS))
def test_identity_registers(name):
    dbg = chip(name)
    spec = CHIPS[name]
    t = dbg.target
    assert t.dp_read(0x0) == spec.dp_idr
    assert t.ap_read(0, 0xFC) == spec.ap_idr
    assert t.ap_read(0, 0xF8) == 0xE00FF003
    assert t.ap_read(0, 0x00) & 0x40                    # DeviceEn: pyOCD skips a disabled AP
    assert t.ap_read(1, 0xFC) == 0
    assert dbg.r32(0xE000ED00) == spec.cpuid
    assert dbg.r32(0xE0042000) & 0xFFF == spec.dev_id
    assert dbg.r32(0xE00FF000) == 0xFFF0F003            # ROM table: SCS first
    assert dbg.r32(0xE00FFFF0) == 0x0D and dbg.r32(0xE00FFFF4) == 0x10   # CIDR class 1
    size = struct.unpack("<H", t.mem_read(spec.flash_size_reg, 2, 2))[0]
    assert size * 1024 == spec.flash_size
    assert t.mem_read(spec.uid_addr, 12, 4) == spec.unique_id


def test_dhcsr_needs_the_key_and_sticky_bits_clear_on_read():
    dbg = chip()
    dbg.w32(DHCSR, 0x00000003)                           # no DBGKEY: ignored
    assert not dbg.dhcsr() & S_HALT
    dbg.halt()
    dbg.w32(0xE000ED0C, 0x05FA0004)                      # SYSRESETREQ without vector catch: runs
    first = dbg.dhcsr()
    assert first & S_RESET_ST
    assert not dbg.dhcsr() & S_RESET_ST                  # cleared by the read


def test_reset_and_halt_stops_at_the_reset_vector():
    dbg = chip()
    dbg.target.flash.write_raw(0x08000000, VECTORS)
    dbg.target.flash.write_raw(0x08000100, assemble("b ."))
    dbg.reset_halt()
    assert dbg.reg(15) == 0x08000100
    assert dbg.reg(13) == 0x20001000
    assert dbg.reg(16) == 0x01000000                     # T set, thread mode
    assert dbg.r32(DFSR) & 8                             # VCATCH
    assert not dbg.r32(DEMCR) & 1


def test_boot_alias_mirrors_main_flash():
    dbg = chip()
    dbg.target.flash.write_raw(0x08000000, VECTORS)
    assert dbg.target.mem_read(0, 8, 4) == VECTORS


def test_single_step_executes_one_instruction():
    dbg = chip()
    dbg.halt()
    dbg.load(0x20000100, assemble("movs r0, #1\nmovs r0, #2\nmovs r0, #3"))
    dbg.set_reg(15, 0x20000100)
    dbg.set_reg(16, 0x01000000)
    dbg.w32(DHCSR, 0xA05F0005)                           # C_STEP | C_DEBUGEN
    dbg.wait(0.001)
    assert dbg.dhcsr() & S_HALT
    assert dbg.reg(0) == 1 and dbg.reg(15) == 0x20000102


def test_register_round_trip_including_special_registers():
    dbg = chip("F412ZG")
    dbg.halt()
    for index in range(13):
        dbg.set_reg(index, 0x1000 + index)
    dbg.set_reg(20, 0x00000001)                          # PRIMASK
    assert [dbg.reg(i) for i in range(13)] == [0x1000 + i for i in range(13)]
    assert dbg.reg(20) & 1
    dbg.set_reg(64, 0x3F800000)                          # S0 on the FPU core
    assert dbg.reg(64) == 0x3F800000


def test_registers_are_not_transferred_while_running():
    dbg = chip()
    dbg.w32(0xE000EDF8, 0x1234)
    dbg.w32(0xE000EDF4, 0)                               # core running: no transfer
    assert dbg.r32(0xE000EDF8) == 0x1234


def test_nrst_holds_the_system_and_release_resets_it():
    dbg = chip()
    dbg.target.flash.write_raw(0x08000000, VECTORS)
    dbg.halt()
    dbg.w32(DEMCR, 1)                                    # vector catch survives NRST (debug domain)
    dbg.target.set_nrst(True)
    with pytest.raises(BusFault):
        dbg.target.mem_read(0x20000000, 4, 4)
    dbg.target.set_nrst(False)
    assert dbg.dhcsr() & S_HALT
    assert dbg.reg(15) == 0x08000100
    assert [cause for _, cause in dbg.target.resets] == ["nrst"]


def test_bkpt_without_debug_enabled_is_a_hardfault():
    dbg = chip()
    dbg.halt()
    dbg.load(0x20000100, assemble("bkpt #0"))
    dbg.set_reg(15, 0x20000100)
    dbg.set_reg(16, 0x01000000)
    dbg.set_reg(13, 0x20001000)
    dbg.w32(DHCSR, 0xA05F0000)                           # leave debug: C_DEBUGEN = 0
    dbg.wait(0.001)
    assert dbg.r32(0xE000ED2C) & (1 << 31)               # HFSR.DEBUGEVT
