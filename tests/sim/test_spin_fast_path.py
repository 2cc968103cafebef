"""The "b ." fast path (``CortexM._parked_on_spin``) skips Unicorn for a slice the core would
spend parked on a self-branch. It must be invisible: two identical chips, one with the fast
path turned off, polled the way OpenOCD's ``wait_halt`` polls DHCSR, show the same PC, DWT
cycle counter, SysTick CVR and COUNTFLAG, SysTick handler runs and watchdog resets at the same
virtual times."""

from __future__ import annotations

import random
import struct

import pytest

from gangflash.sim.clock import ManualClock
from gangflash.sim.firmware import previous_firmware
from gangflash.sim.target import SimTarget

from .chipdebug import DHCSR

MAIN_LOOP = 0x7C                   # previous.s: main_loop's first instruction ("tst r5, #1")
COUNTER = 0x20000000               # the SysTick handler's count
SYST_CSR, SYST_CVR, DWT_CTRL, DWT_CYCCNT, ICSR = 0xE000E010, 0xE000E018, 0xE0001000, 0xE0001004, 0xE000ED04


def spinning_board(fast: bool, watchdog: bool) -> tuple[SimTarget, ManualClock, list[int]]:
    """An F103C8 whose firmware starts SysTick at 1 kHz (handler counts at COUNTER), maybe the
    IWDG, then parks in "b ." instead of its main loop (so the watchdog is never reloaded)."""
    image = bytearray(previous_firmware(watchdog=watchdog, systick=True, sleep=False, core_hz=8_000_000))
    assert image[MAIN_LOOP:MAIN_LOOP + 4] == bytes.fromhex("15f0010f")
    image[MAIN_LOOP:MAIN_LOOP + 2] = b"\xfe\xe7"
    clock = ManualClock()
    target = SimTarget("F103C8", clock)
    target.core.spin_fast_path = fast
    target.flash.write_raw(target.flash.base, bytes(image))
    target.power_off()
    target.power_on()
    target.swd_connect()
    starts = [0]
    uc = target.core.uc
    real_start = uc.emu_start

    def counting_start(*args, **kwargs):
        starts[0] += 1
        return real_start(*args, **kwargs)
    uc.emu_start = counting_start
    return target, clock, starts


def r32(target: SimTarget, address: int) -> int:
    return struct.unpack("<I", target.mem_read(address, 4, 4))[0]


def w32(target: SimTarget, address: int, value: int) -> None:
    target.mem_write(address, struct.pack("<I", value), 4)


def observe(target: SimTarget) -> tuple:
    return (target.now, target.core.pc, r32(target, DHCSR), r32(target, DWT_CYCCNT),
            r32(target, SYST_CVR), r32(target, SYST_CSR), r32(target, ICSR),
            r32(target, COUNTER), list(target.resets))


@pytest.mark.parametrize("watchdog", [False, True])
def test_fast_path_is_invisible_to_a_polling_debugger(watchdog):
    boards = [spinning_board(fast, watchdog) for fast in (False, True)]
    for target, _, _ in boards:
        w32(target, 0xE000EDFC, 1 << 24)                    # DEMCR.TRCENA
        w32(target, DWT_CTRL, 1)                             # CYCCNTENA
    rng = random.Random(8)
    for poll in range(900):
        # OpenOCD's gaps between DHCSR reads (~77 µs), jittered; SysTick fires every 1 ms
        step = rng.uniform(5e-6, 150e-6)
        if poll == 300:
            step = 0.030                                     # a long gap: IWDG (26 ms) expires
        seen = []
        for target, clock, _ in boards:
            clock.advance(step)
            target.sync(clock())
            if poll == 400:
                w32(target, DHCSR, 0xA05F0003)               # halt: SysTick stops with the core
            elif poll == 450:
                w32(target, DHCSR, 0xA05F0001)               # resume
            elif poll == 600:
                w32(target, SYST_CVR, 0)                     # restart the count mid-slice
            seen.append(observe(target))
        assert seen[0] == seen[1], f"poll {poll}"
    (_, _, slow_starts), (fast, _, fast_starts) = boards
    assert r32(fast, COUNTER) > 20                           # the handler really ran
    assert any(cause == "watchdog" for _, cause in fast.resets) == watchdog
    # the fast path really was taken: Unicorn only starts to run the handler
    assert fast_starts[0] < slow_starts[0] // 3
