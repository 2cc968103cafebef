"""A simulated STM32 chip: core, bus, flash controller and peripherals, in virtual time.

The chip is lazy: nothing happens between debugger accesses until the probe calls
``sync(now)``, which runs the core (and advances BSY, SysTick, the watchdog) up to ``now``. So
code and debugger interleave deterministically, and a chip nobody talks to costs nothing.
The debug-port methods (``swd_connect``, ``dp_*``, ``ap_*``, ``mem_*``, ``reset_system``,
``set_nrst``) are what the probe firmware model drives; see ``probe.py``.
"""

from __future__ import annotations

import logging

from . import cortex as C
from .bus import PPB_BASE, PPB_SIZE, Bus
from .chips import ChipSpec, chip_by_name
from .clock import Clock
from .errors import BusFault, SwdNoTarget, SwdWait
from .faults import TargetFaults
from .firmware import previous_firmware
from .flash import FlashEnv, FlashMemory, make_controller
from .peripherals import RESET_FLAG_IWDG, RESET_FLAG_PIN, RESET_FLAG_SFT, Crc, Dbgmcu, Iwdg, Rcc
from .scs import Ppb

log = logging.getLogger(__name__)

WARMUP_SECONDS = 0.005      # how long the previous firmware ran before the debugger arrived
SUPPLY_VOLTS = 3.3

# DP register addresses and CTRL/STAT bits (ADIv5)
DP_CSYSPWRUPREQ, DP_CSYSPWRUPACK = 1 << 30, 1 << 31
DP_CDBGPWRUPREQ, DP_CDBGPWRUPACK = 1 << 28, 1 << 29
DP_STICKYERR, DP_STICKYORUN, DP_STICKYCMP, DP_WDATAERR = 1 << 5, 1 << 1, 1 << 4, 1 << 7
AP_CSW_RESET = 0x23000052        # MasterType, HPROT data+privileged, DeviceEn, single increment, word


class SimTarget:
    """One chip on one board."""

    def __init__(self, chip: ChipSpec | str, clock: Clock, faults: TargetFaults | None = None,
                 unique_id: bytes | None = None) -> None:
        self.chip = chip_by_name(chip) if isinstance(chip, str) else chip
        self.clock = clock
        self.faults = faults or TargetFaults()
        self.hz = float(self.chip.hsi_hz)
        self.now = clock()
        self.powered = True
        self.in_reset = False
        self.debugger_connected = False
        self.resets: list[tuple[float, str]] = []        # (time, cause): what the simulator saw
        self._running = False
        self._reset_request: int | None = None
        chip = self.chip
        self.core = C.CortexM(chip.core, chip.cpuid)
        self.flash = FlashMemory(chip.flash_base, chip.flash_size)
        self.bus = Bus(chip, self.core, self.flash)
        # Every real chip has its own 96-bit UID; boards of one part number differ here.
        self.bus.unique_id = unique_id if unique_id is not None else chip.unique_id
        self.rcc = Rcc(chip)
        self.dbgmcu = Dbgmcu(chip)
        self.iwdg = Iwdg(chip, on_expire=lambda: self._request_reset(RESET_FLAG_IWDG),
                         slice_elapsed=lambda: self.local_time() - self.now)
        self.crc = Crc(self.rcc.crc_clock_on)
        env = FlashEnv(now=self.local_time, stall=self._stall, hsi_on=self.rcc.hsi_on,
                       debugger_connected=lambda: self.debugger_connected,
                       system_reset=lambda: self._request_reset(RESET_FLAG_SFT), faults=self.faults)
        self.controller = make_controller(chip, self.flash, env)
        self.bus.attach_controller(self.controller)
        self.bus.add_block(self.rcc.base, 0x400, lambda o, s: self.rcc.read(o), lambda o, v, s: self.rcc.write(o, v))
        self.bus.add_block(Iwdg.BASE, 0x400, lambda o, s: self.iwdg.read(o), lambda o, v, s: self.iwdg.write(o, v))
        self.bus.add_block(Crc.BASE, 0x400, lambda o, s: self.crc.read(o), lambda o, v, s: self.crc.write(o, v))
        self.ppb = Ppb(self.core, dev_id=chip.dev_id, core_hz=self.hz,
                       system_reset=lambda: self._request_reset(RESET_FLAG_SFT),
                       vect_reset=self._vect_reset, external=self._ppb_external,
                       slice_elapsed=lambda: self.local_time() - self.now)
        self.bus.ppb_read = self.ppb.read
        self.bus.ppb_write = self.ppb.write
        # DP / AP state
        self.dp_ctrl = 0
        self.dp_select = 0
        self.rdbuff = 0
        self.ap_csw = AP_CSW_RESET
        self.ap_tar = 0
        self._power_on(initial=True)

    # ------------------------------------------------------------------ time
    def local_time(self) -> float:
        """The chip's time; inside a run, where the core has got to."""
        if self._running:
            return self.now + self.core.cycles_used / self.hz
        return self.now

    def _stall(self, seconds: float) -> None:
        if self._running and seconds > 0:
            self.core.charge(seconds * self.hz)

    def sync(self, now: float) -> None:
        """Advance the chip to virtual time ``now``."""
        while self.now < now - 1e-12:
            if not self.powered:
                self.now = now
                return
            loss = self.faults.power_loss_at
            if loss is not None and self.now >= loss:
                self.power_off()
                continue
            deadline = now
            if loss is not None:
                deadline = min(deadline, loss)
            frozen = self.core.halted and self.dbgmcu.iwdg_frozen()
            for event in (self.iwdg.until_expiry(frozen), self._systick_due()):
                if event is not None:
                    deadline = min(deadline, self.now + max(event, 1e-9))
            flash_event = self.controller.next_event()
            if flash_event is not None and flash_event > self.now:
                deadline = min(deadline, flash_event)
            self._advance(deadline)

    def _systick_due(self) -> float | None:
        return None if self.core.halted else self.ppb.systick.until_wrap()

    def _core_runnable(self) -> bool:
        core = self.core
        if self.in_reset or core.halted or core.lockup:
            return False
        if core.sleeping and core.wake_pending():
            core.sleeping = False
        return not core.sleeping

    def _advance(self, deadline: float) -> None:
        start = self.now
        if self._core_runnable():
            ready = self.core.ready_exception()
            if ready is not None:
                self.core.take_exception(ready)
            self.bus.flush_code_cache()
            self._running = True
            try:
                self.core.execute((deadline - start) * self.hz)
            finally:
                self._running = False
                self.bus.settle()
            elapsed = max(self.core.cycles_used / self.hz, 1e-9)
            self.now = start + elapsed
        else:
            self.now = deadline
        elapsed = self.now - start
        halted = self.core.halted
        if not halted:
            self.ppb.systick.elapse(elapsed)
        self.iwdg.elapse(elapsed, frozen=halted and self.dbgmcu.iwdg_frozen())
        if self._reset_request is not None:
            flag, self._reset_request = self._reset_request, None
            self._system_reset(flag)

    # ------------------------------------------------------------------ resets and power
    def _request_reset(self, flag: int) -> None:
        if self._running:
            self._reset_request = flag
            self.core.request_stop()
        else:
            self._system_reset(flag)

    def _system_reset(self, flag: int, power_on: bool = False) -> None:
        cause = {RESET_FLAG_IWDG: "watchdog", RESET_FLAG_PIN: "nrst", RESET_FLAG_SFT: "software"}.get(flag, "power-on")
        log.debug("%s: system reset (%s) at %.6f s", self.chip.name, cause, self.now)
        self.resets.append((self.now, cause))
        self.rcc.system_reset()
        self.rcc.record_reset(flag)
        if power_on:
            self.controller.power_on_reset()
        else:
            self.controller.system_reset()
        self.iwdg.system_reset(self.controller.hardware_watchdog())
        self.crc.system_reset()
        self.ppb.system_reset()
        self.bus.flush_code_cache()
        self.core.reset(self.bus.read32)

    def _vect_reset(self) -> None:
        """AIRCR.VECTRESET: the core only; peripherals keep running."""
        self.bus.flush_code_cache()
        self.core.reset(self.bus.read32)

    def _power_on(self, initial: bool = False) -> None:
        faults = self.faults
        self.powered = True
        self.debugger_connected = False
        self.core.power_on()
        self.dbgmcu.power_on()
        self.ppb.power_on()
        seeded = faults.watchdog_running or faults.interrupts_firing or faults.core_asleep or faults.thumb_bit_clear
        if initial and seeded:
            image = previous_firmware(watchdog=faults.watchdog_running, systick=faults.interrupts_firing,
                                      sleep=faults.core_asleep, core_hz=int(self.hz))
            self.flash.write_raw(self.flash.base, image)
        self._system_reset(0, power_on=True)
        if initial and seeded:
            # The previous firmware ran before the debugger arrived: states arise from its code.
            target_time = self.now
            self.now = target_time - WARMUP_SECONDS
            self.sync(target_time)
        if initial:
            self.resets.clear()             # the record starts when the debugger can see the chip
        if initial and faults.hsi_off and self.chip.family == "F1":
            self.rcc.stop_hsi()
        if initial and faults.thumb_bit_clear:
            # A previous debug session left the core halted with EPSR.T = 0.
            self.core.dhcsr_ctrl = C.C_DEBUGEN | C.C_HALT
            self.core.enter_debug(C.DFSR_HALTED)
            self.core.xpsr = self.core.xpsr & ~(1 << 24)

    def power_off(self) -> None:
        """Supply gone: the flash operation in flight is corrupted, the debug port goes silent."""
        if not self.powered:
            return
        log.debug("%s: power lost at %.6f s", self.chip.name, self.now)
        self.controller.power_lost()
        self.powered = False
        self.faults.power_loss_at = None

    def power_on(self) -> None:
        """Supply back: a power-on reset."""
        self._power_on()

    def voltage(self) -> float:
        return SUPPLY_VOLTS if self.powered else 0.0

    # ------------------------------------------------------------------ debug port
    def _check_link(self) -> None:
        if not self.powered:
            raise SwdNoTarget("target not powered")

    def swd_connect(self) -> int:
        """Line reset and DP IDR read: the first thing a probe does."""
        self._check_link()
        self.debugger_connected = True
        return self.chip.dp_idr

    def dp_read(self, address: int) -> int:
        self._check_link()
        address &= 0xC
        if address == 0x0:
            return self.chip.dp_idr
        if address == 0x4:
            acks = (DP_CSYSPWRUPACK if self.dp_ctrl & DP_CSYSPWRUPREQ else 0) \
                | (DP_CDBGPWRUPACK if self.dp_ctrl & DP_CDBGPWRUPREQ else 0)
            return self.dp_ctrl | acks
        if address == 0x8:
            return self.dp_select
        return self.rdbuff

    def dp_write(self, address: int, value: int) -> None:
        self._check_link()
        address &= 0xC
        if address == 0x0:                                    # ABORT: clear sticky flags
            clear = 0
            if value & (1 << 1):
                clear |= DP_STICKYCMP
            if value & (1 << 2):
                clear |= DP_STICKYERR
            if value & (1 << 3):
                clear |= DP_WDATAERR
            if value & (1 << 4):
                clear |= DP_STICKYORUN
            self.dp_ctrl &= ~clear
        elif address == 0x4:
            sticky = self.dp_ctrl & (DP_STICKYERR | DP_STICKYORUN | DP_STICKYCMP | DP_WDATAERR)
            self.dp_ctrl = (value & 0x50000F0D) | sticky
        elif address == 0x8:
            self.dp_select = value

    def ap_read(self, apsel: int, address: int) -> int:
        self._check_link()
        if apsel != 0:
            return 0
        address &= 0xFC
        value = {0x00: self.ap_csw, 0x04: self.ap_tar, 0xF4: 0, 0xF8: 0xE00FF003,
                 0xFC: self.chip.ap_idr}.get(address)
        if address == 0x0C or 0x10 <= address <= 0x1C:
            size = 1 << (self.ap_csw & 7)
            target = self.ap_tar if address == 0x0C else (self.ap_tar & ~0xF) + (address - 0x10)
            value = int.from_bytes(self.mem_read(target, size, size), "little") << (8 * (target & 3))
            if address == 0x0C:
                self._ap_increment(size)
        self.rdbuff = value or 0
        return value or 0

    def ap_write(self, apsel: int, address: int, value: int) -> None:
        self._check_link()
        if apsel != 0:
            return
        address &= 0xFC
        if address == 0x00:
            self.ap_csw = (value & 0x2F000077) | 0x40            # DeviceEn reads 1
        elif address == 0x04:
            self.ap_tar = value
        elif address == 0x0C or 0x10 <= address <= 0x1C:
            size = 1 << (self.ap_csw & 7)
            target = self.ap_tar if address == 0x0C else (self.ap_tar & ~0xF) + (address - 0x10)
            data = ((value >> (8 * (target & 3))) & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
            self.mem_write(target, data, size)
            if address == 0x0C:
                self._ap_increment(size)

    def _ap_increment(self, size: int) -> None:
        if (self.ap_csw >> 4) & 3 == 1:
            # TAR auto-increment wraps within 1 KiB (ADIv5)
            self.ap_tar = (self.ap_tar & ~0x3FF) | ((self.ap_tar + size) & 0x3FF)

    def _check_ahb(self, address: int, length: int) -> None:
        self._check_link()
        in_ppb = PPB_BASE <= address and address + length <= PPB_BASE + PPB_SIZE
        if in_ppb:
            return
        if self.in_reset:
            raise BusFault(address, "system held in reset")
        if self.core.sleeping and not self.core.halted and not self.dbgmcu.keeps_debug_in_sleep():
            # Sleep mode with DBG_SLEEP = 0 gates HCLK: the AHB-AP cannot reach the system bus.
            raise SwdWait(dp=False)

    def mem_read(self, address: int, length: int, width: int) -> bytes:
        """Debugger read through the AHB-AP."""
        self._check_ahb(address, length)
        try:
            return self.bus.debug_read(address, length, width)
        except BusFault:
            self.dp_ctrl |= DP_STICKYERR
            raise

    def mem_write(self, address: int, data: bytes, width: int) -> None:
        """Debugger write through the AHB-AP."""
        self._check_ahb(address, len(data))
        try:
            self.bus.debug_write(address, bytes(data), width)
        except BusFault:
            self.dp_ctrl |= DP_STICKYERR
            raise
        if self._reset_request is not None:
            flag, self._reset_request = self._reset_request, None
            self._system_reset(flag)

    def reset_system(self) -> None:
        """What AIRCR.SYSRESETREQ does (the probe's RESETSYS command)."""
        self._check_link()
        self._system_reset(RESET_FLAG_SFT)

    def set_nrst(self, low: bool) -> None:
        """Drive the NRST pin. Releasing it resets the system (vector catch still applies)."""
        if not self.powered:
            return
        if low:
            self.in_reset = True
        elif self.in_reset:
            self.in_reset = False
            self._system_reset(RESET_FLAG_PIN)

    # ------------------------------------------------------------------ chip registers in the PPB
    def _ppb_external(self, address: int, size: int, value: int | None) -> int | None:
        if Dbgmcu.BASE <= address < Dbgmcu.BASE + 0x400:
            if value is None:
                return self.dbgmcu.read(address - Dbgmcu.BASE)
            self.dbgmcu.write(address - Dbgmcu.BASE, value)
            return 0
        return None

    # ------------------------------------------------------------------ back door (tests, reports)
    def flash_contents(self, address: int | None = None, length: int | None = None) -> bytes:
        """Main flash as the cells hold it, bypassing protection (the simulator's back door)."""
        base = self.flash.base if address is None else address
        return self.flash.read(base, self.flash.size if length is None else length)
