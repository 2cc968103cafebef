"""Each injectable chip fault, shown at chip level: what a debugger sees, and how code running
on the simulated core is affected. The previous-firmware states come from real code (the
previous firmware runs from reset before the debugger arrives)."""

from __future__ import annotations

import pytest

from gangflash.sim.clock import ManualClock
from gangflash.sim.errors import BusFault, SwdNoTarget, SwdWait
from gangflash.sim.faults import TargetFaults
from gangflash.sim.target import SimTarget

from .chipdebug import DHCSR, S_HALT, S_LOCKUP, S_SLEEP, ChipDebugger, assemble

COUNTER = 0x20000000            # the previous firmware's SysTick handler counts here
LOADER = 0x20000100
F1_KEYR, F1_SR, F1_CR = 0x40022004, 0x4002200C, 0x40022010
DBGMCU_CR = 0xE0042004
CFSR = 0xE000ED28


def chip(name: str = "F103C8", **faults) -> ChipDebugger:
    clock = ManualClock()
    return ChipDebugger(SimTarget(name, clock, TargetFaults(**faults)), clock)


def count_loop(iterations: int) -> bytes:
    """A stand-in for a flash loader: busy for a known time, then BKPT with r0 = iterations."""
    return assemble(f"""
        movs r0, #0
        ldr  r1, ={iterations}
    1:  adds r0, #1
        cmp  r0, r1
        bne  1b
        bkpt #0
    """)


def f1_mass_erase(dbg: ChipDebugger) -> None:
    dbg.w32(F1_KEYR, 0x45670123)
    dbg.w32(F1_KEYR, 0xCDEF89AB)
    dbg.w32(F1_CR, 0x04)
    dbg.w32(F1_CR, 0x44)
    dbg.wait(0.05)
    assert not dbg.r32(F1_SR) & 1
    dbg.w32(F1_CR, 0)
    assert dbg.target.flash_contents(0x08000000, 64) == b"\xff" * 64


def test_clean_chip_runs_code_to_bkpt():
    dbg = chip()
    dbg.halt()
    dbg.load(LOADER, count_loop(1000))
    dbg.start(LOADER)
    dbg.wait(0.01)
    assert dbg.dhcsr() & S_HALT
    assert dbg.reg(0) == 1000
    assert dbg.r32(0xE000ED30) & 2                      # DFSR.BKPT


def test_core_asleep_gates_the_system_bus_until_halted():
    dbg = chip(core_asleep=True)
    assert dbg.dhcsr() & S_SLEEP
    with pytest.raises(SwdWait):
        dbg.target.mem_read(LOADER, 4, 4)               # HCLK off in Sleep with DBG_SLEEP = 0
    dbg.halt()                                          # the halt request wakes the core
    assert not dbg.dhcsr() & S_SLEEP
    dbg.r32(LOADER)
    # PC is in the previous firmware's main loop, right after its WFI
    assert 0x08000000 <= dbg.reg(15) < 0x08000100


def test_core_asleep_with_dbg_sleep_keeps_the_bus_reachable():
    dbg = chip(core_asleep=True)
    dbg.w32(DBGMCU_CR, 1)                               # DBG_SLEEP (DBGMCU is in the PPB, reachable)
    assert dbg.dhcsr() & S_SLEEP
    dbg.r32(LOADER)


def test_interrupts_firing_preempt_an_unmasked_loader_into_the_firmware_handler():
    dbg = chip(interrupts_firing=True)
    ticks = dbg.r32(COUNTER)
    assert ticks >= 3                                   # 5 ms of firmware at 1 kHz SysTick
    dbg.halt()
    dbg.load(LOADER, count_loop(20000))
    dbg.start(LOADER)
    dbg.wait(0.05)
    assert dbg.dhcsr() & S_HALT and dbg.reg(0) == 20000   # the loop survives (handler returns)...
    assert dbg.r32(COUNTER) > ticks                     # ...but the firmware's handler ran meanwhile


def test_interrupts_firing_lock_up_an_unmasked_loader_once_flash_is_erased():
    dbg = chip(interrupts_firing=True)
    dbg.halt()
    f1_mass_erase(dbg)
    dbg.load(LOADER, count_loop(20000))
    dbg.start(LOADER)
    dbg.wait(0.05)
    assert dbg.dhcsr() & S_LOCKUP                        # SysTick vector now 0xFFFFFFFF
    dbg.halt()
    assert dbg.reg(15) == 0xEFFFFFFE


def test_masked_loader_is_not_preempted():
    dbg = chip(interrupts_firing=True)
    dbg.halt(maskints=True)
    f1_mass_erase(dbg)
    dbg.load(LOADER, count_loop(20000))
    dbg.start(LOADER, maskints=True)
    dbg.wait(0.05)
    assert dbg.dhcsr() & S_HALT and dbg.reg(0) == 20000


def test_watchdog_cuts_off_a_loader_longer_than_its_period():
    dbg = chip(watchdog_running=True)
    dbg.halt()
    dbg.load(LOADER, count_loop(200000))                # ~75 ms at 8 MHz; IWDG period 26 ms
    dbg.start(LOADER)
    dbg.wait(0.1)
    assert any(cause == "watchdog" for _, cause in dbg.target.resets)
    assert not dbg.dhcsr() & S_HALT                     # the chip rebooted into the firmware


def test_watchdog_keeps_counting_while_halted_unless_frozen():
    dbg = chip(watchdog_running=True)
    dbg.halt()
    dbg.wait(0.1)
    assert any(cause == "watchdog" for _, cause in dbg.target.resets)

    frozen = chip(watchdog_running=True)
    frozen.w32(DBGMCU_CR, 1 << 8)                       # DBG_IWDG_STOP
    frozen.halt()
    frozen.wait(1.0)
    assert not frozen.target.resets
    assert frozen.dhcsr() & S_HALT


def test_reset_stops_a_software_started_watchdog():
    dbg = chip(watchdog_running=True)
    dbg.reset_halt()
    dbg.wait(1.0)
    assert [cause for _, cause in dbg.target.resets] == ["software"]


def test_hardware_watchdog_restarts_at_every_reset():
    dbg = chip(hardware_watchdog=True)
    dbg.reset_halt()
    dbg.wait(0.5)                                       # default period 4*4096/40 kHz = 409.6 ms
    assert "watchdog" in [cause for _, cause in dbg.target.resets]

    frozen = chip(hardware_watchdog=True)
    frozen.w32(DBGMCU_CR, 1 << 8)
    frozen.reset_halt()
    frozen.wait(1.0)
    assert "watchdog" not in [cause for _, cause in frozen.target.resets]


def test_thumb_bit_clear_locks_up_a_naive_resume():
    dbg = chip(thumb_bit_clear=True)
    assert dbg.dhcsr() & S_HALT
    assert not dbg.reg(16) & (1 << 24)
    f1_mass_erase(dbg)
    dbg.load(LOADER, count_loop(10))
    dbg.start(LOADER, xpsr=None)                        # naive: xPSR left as found
    dbg.wait(0.01)
    assert dbg.dhcsr() & S_LOCKUP
    assert dbg.r32(CFSR) & (1 << 17)                    # INVSTATE


def test_thumb_bit_set_explicitly_runs_fine():
    dbg = chip(thumb_bit_clear=True)
    f1_mass_erase(dbg)
    dbg.load(LOADER, count_loop(10))
    dbg.start(LOADER, xpsr=0x01000000)
    dbg.wait(0.01)
    assert dbg.dhcsr() & S_HALT and dbg.reg(0) == 10


def test_flash_locked_with_stale_flags_until_reset():
    dbg = chip(flash_locked_stale_flags=True)
    assert dbg.r32(F1_CR) & 0x80                        # LOCK
    assert dbg.r32(F1_SR) & 0x14                        # PGERR / WRPRTERR left behind
    dbg.reset_halt()
    assert dbg.r32(F1_SR) & 0x14 == 0


def test_hsi_off_stops_programming_until_reset():
    dbg = chip(hsi_off=True)
    dbg.halt()
    assert not dbg.r32(0x40021000) & 1                  # RCC_CR.HSION
    dbg.w32(F1_KEYR, 0x45670123)
    dbg.w32(F1_KEYR, 0xCDEF89AB)
    dbg.w32(F1_CR, 1)                                   # PG
    dbg.w16(0x08000400, 0x1234)
    dbg.wait(0.01)
    assert dbg.target.flash_contents(0x08000400, 2) != b"\x34\x12"
    dbg.reset_halt()
    assert dbg.r32(0x40021000) & 1
    dbg.w32(F1_KEYR, 0x45670123)
    dbg.w32(F1_KEYR, 0xCDEF89AB)
    dbg.w32(F1_CR, 1)
    dbg.w16(0x08000402, 0x1234)
    dbg.wait(0.01)
    assert dbg.target.flash_contents(0x08000402, 2) == b"\x34\x12"


def test_power_loss_silences_the_debug_port():
    dbg = chip(power_loss_at=0.01)
    dbg.r32(0x20000000)
    dbg.wait(0.02)
    assert dbg.target.voltage() == 0.0
    with pytest.raises(SwdNoTarget):
        dbg.target.mem_read(0x20000000, 4, 4)


def test_rdp_level1_faults_debug_reads_of_flash_only():
    dbg = chip(rdp_level1=True)
    with pytest.raises(BusFault):
        dbg.target.mem_read(0x08000000, 4, 4)
    dbg.r32(0x20000000)


def test_stuck_bits_survive_programming():
    dbg = chip(stuck_bits={0x08000800: 0x01})
    dbg.halt()
    dbg.w32(F1_KEYR, 0x45670123)
    dbg.w32(F1_KEYR, 0xCDEF89AB)
    dbg.w32(F1_CR, 1)
    dbg.w16(0x08000800, 0x5501)
    dbg.wait(0.01)
    assert dbg.target.flash_contents(0x08000800, 1)[0] & 0x01 == 0


def test_write_protected_page_is_not_programmed():
    dbg = chip(write_protected=(0,))
    dbg.halt()
    dbg.w32(F1_KEYR, 0x45670123)
    dbg.w32(F1_KEYR, 0xCDEF89AB)
    dbg.w32(F1_CR, 1)
    dbg.w16(0x08000000, 0x1234)
    dbg.wait(0.01)
    assert dbg.target.flash_contents(0x08000000, 2) == b"\xff\xff"
    assert dbg.r32(F1_SR) & 0x10                        # WRPRTERR


def test_flash_unlocked_with_stale_flags_reports_them():
    dbg = chip(flash_unlocked_stale_flags=True)
    assert not dbg.r32(F1_CR) & 0x80                    # left unlocked
    assert dbg.r32(F1_SR) & 0x14


@pytest.mark.parametrize("name", ["F412ZG", "L432KC"])
def test_seed_states_on_other_families(name):
    # Watchdog: same firmware, 32 kHz LSI (period 32.5 ms): cuts off a halted chip unless frozen.
    dbg = chip(name, watchdog_running=True)
    dbg.halt()
    dbg.wait(0.1)
    assert "watchdog" in [cause for _, cause in dbg.target.resets]
    # Thumb bit: a naive resume on an erased chip locks up.
    dbg = chip(name, thumb_bit_clear=True)
    dbg.target.flash.fill(0x08000000, 0x4000)           # back door: the chip as erased
    dbg.load(LOADER, count_loop(10))
    dbg.start(LOADER, xpsr=None)
    dbg.wait(0.01)
    assert dbg.dhcsr() & S_LOCKUP
    # Interrupts: SysTick into an erased vector table locks up an unmasked loader.
    dbg = chip(name, interrupts_firing=True)
    dbg.halt()
    dbg.target.flash.fill(0x08000000, 0x4000)
    dbg.load(LOADER, count_loop(100000))
    dbg.start(LOADER)
    dbg.wait(0.1)
    assert dbg.dhcsr() & S_LOCKUP


def test_watchdog_reloaded_by_running_code_never_fires_even_across_long_syncs():
    # Regression: a reload in the middle of a long run slice was undone by the slice's length.
    dbg = chip(hardware_watchdog=True)
    dbg.halt()
    dbg.load(LOADER, assemble("""
        ldr r0, =0x40003000
        ldr r1, =0x5555
        str r1, [r0]
        movs r1, #0
        str r1, [r0, #4]                                @ PR = /4
        movs r1, #100
        str r1, [r0, #8]                                @ RLR = 100: 4*101/40 kHz = 10.1 ms
        ldr r1, =0xAAAA
    1:  str r1, [r0]
        b 1b
    """))
    dbg.start(LOADER)
    dbg.wait(0.05)                                      # one sync spanning five watchdog periods
    assert "watchdog" not in [cause for _, cause in dbg.target.resets]
