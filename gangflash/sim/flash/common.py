"""Machinery shared by the three controller models: key sequences, the one operation in flight
(BSY) and its virtual-time bookkeeping, bus stalls, cell programming with stuck bits, and the
garbage an interrupted operation leaves behind.

Time model: an operation takes effect on the cells when it starts (a program at the store, an
erase at STRT) and BSY stays set for the datasheet duration after that. Reading the cells while
BSY is set stalls the bus until the end (RM0090 and PM0075 both say a read of the flash while it
is being written or erased stalls the bus), so what a bus master can observe is the same as if
the cells changed at the end, and a verify right after BSY clears sees the new data. Completion is settled lazily: every access first compares ``env.now()`` with
the operation's end. ``env.stall(s)`` is assumed to advance ``env.now()`` by ``s`` for the
current bus master.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from typing import Callable

from ..errors import BusFault
from .base import FlashController
from .timing import HANG_STALL, POLL_QUANTUM

log = logging.getLogger(__name__)

KEY1 = 0x45670123
KEY2 = 0xCDEF89AB
OPTKEY1 = 0x08192A3B          # F4 / L4 OPTKEYR (F1 uses KEY1/KEY2 there too)
OPTKEY2 = 0x4C5D6E7F
WORD = 0xFFFFFFFF


class KeySequence:
    """A two-key unlock register (KEYR / OPTKEYR).

    The right pair (KEY1 then KEY2, full 32-bit writes) unlocks. Any other write breaks the
    sequence and freezes it: the lock stays set until the next system reset, whatever is written
    afterwards (PM0075, RM0090, RM0394 unlock sections). Writing the right pair again while
    already unlocked is accepted without effect (the manuals do not say otherwise; unconfirmed).
    """

    def __init__(self, key1: int, key2: int) -> None:
        self.key1, self.key2 = key1, key2
        self.frozen = False
        self._half = False

    def reset(self) -> None:
        self.frozen = False
        self._half = False

    def feed(self, value: int, mask: int) -> bool | None:
        """True: sequence complete; None: first key accepted; False: wrong (now frozen)."""
        if not self.frozen and mask == WORD:
            if not self._half and value == self.key1:
                self._half = True
                return None
            if self._half and value == self.key2:
                self._half = False
                return True
        self.frozen = True
        self._half = False
        return False


@dataclass
class Operation:
    """The one flash operation in flight (the controller is single-operation: BSY)."""

    name: str
    duration: float
    start_action: Callable[[], None]          # what happens to the cells (run when it starts)
    region: tuple[int, int] | None = None     # main-flash (address, length) it changes
    on_power_loss: Callable[[random.Random], None] | None = None   # option storage damage
    start: float | None = None                # None: accepted but its clock is not running
    old: bytes = b""

    @property
    def end(self) -> float:
        return math.inf if self.start is None else self.start + self.duration


def merge(old: int, value: int, mask: int) -> int:
    """A partial (byte / halfword) register write: only the written lanes change."""
    return (old & ~mask) | (value & mask)


def half_done(old: bytes, new: bytes, rng: random.Random) -> bytes:
    """Cells whose operation was cut off: each bit that was changing took either value.

    The result differs from both ``old`` and ``new`` whenever they differ in more than one bit,
    so neither a verify against the image nor a blank check passes (what a power cut mid-program
    or mid-erase leaves on real flash: a partially erased or partially programmed unit).
    """
    if old == new:
        return old
    n = len(old)
    o, t = int.from_bytes(old, "little"), int.from_bytes(new, "little")
    diff = o ^ t
    mixed = o ^ (diff & rng.getrandbits(8 * n))
    if mixed in (o, t):
        low = diff & -diff                       # lowest changing bit
        rest = diff & ~low
        # flip exactly the lowest changing bit (from old), or all but it (from new)
        mixed = o ^ low if (mixed == o or not rest) else o ^ rest
    return mixed.to_bytes(n, "little")


class FlashModel(FlashController):
    """Common behaviour of the FPEC / FLASH models; families supply registers and rules."""

    #: SR bits raised by the "previous firmware" stale-flag knobs
    stale_flags: int = 0

    def __init__(self, chip, memory, env) -> None:
        super().__init__(chip, memory, env)
        self.reg_base = chip.flash_reg_base
        self._op: Operation | None = None
        self._rdp = 0                           # loaded readout protection level
        self._starts: list[int] = []
        start = chip.flash_base
        for size in chip.sectors:
            self._starts.append(start)
            start += size

    # --- units --------------------------------------------------------------------------------
    def unit(self, index: int) -> tuple[int, int]:
        """(start address, size) of erase unit ``index``."""
        return self._starts[index], self.chip.sectors[index]

    def unit_index(self, address: int) -> int:
        return self.chip.sector_of(address)[0]

    # --- the operation in flight --------------------------------------------------------------
    def _clock_running(self) -> bool:
        """Whether the controller's program/erase clock runs (F1: HSI)."""
        return True

    def _begin(self, op: Operation) -> None:
        if op.region is not None:
            op.old = self.memory.read(*op.region)
        self._op = op
        log.debug("%s: %s starts (%.6f s)", self.chip.name, op.name, op.duration)
        self._try_start()

    def _try_start(self) -> None:
        op = self._op
        if op is not None and op.start is None and self._clock_running():
            op.start = self.env.now()
            op.start_action()

    def _settle(self, force: bool = False) -> None:
        op = self._op
        if op is None:
            return
        self._try_start()
        if op.start is not None and (force or self.env.now() >= op.end):
            self._op = None
            self._finished(op)

    def _finished(self, op: Operation) -> None:
        """BSY dropped: families set EOP / clear STRT."""

    def busy(self) -> bool:
        self._settle()
        return self._op is not None

    def next_event(self) -> float | None:
        self._settle()
        if self._op is None or self._op.start is None:
            return None
        return self._op.end

    def _remaining(self) -> float:
        self._settle()
        if self._op is None:
            return 0.0
        return self._op.end - self.env.now()

    def _poll_stall(self) -> None:
        """A status read while BSY: charge one poll quantum (see ``timing.POLL_QUANTUM``)."""
        remaining = self._remaining()
        if remaining > 0:
            self.env.stall(min(remaining, POLL_QUANTUM))
            self._settle()

    def _wait_idle(self, finish: bool = True) -> bool:
        """An access the bus holds until BSY clears. False: it never would (clock stopped);
        the model charges ``HANG_STALL`` and the caller drops the access.

        If the bus master could not be charged the wait (``env.stall`` did not move ``now``,
        e.g. a debugger access while the core is halted), a store or register write still needs
        the operation over and completes it (``finish``); a read proceeds and leaves BSY to its
        datasheet end, since the cells already hold the result."""
        remaining = self._remaining()
        if remaining <= 0:
            return True
        if math.isinf(remaining):
            self.env.stall(HANG_STALL)
            self._settle()
            return self._op is None
        self.env.stall(remaining)
        self._settle(force=finish)
        return True

    def _abort_in_flight(self, why: str) -> None:
        """Supply cut or reset during an operation: the unit is left half done."""
        self._settle()
        op, self._op = self._op, None
        if op is None or op.start is None:
            return
        rng = random.Random((int(op.start * 1e9) << 8) ^ (op.region[0] if op.region else 0))
        if op.region is not None:
            address, length = op.region
            new = self.memory.read(address, length)
            self.memory.write_raw(address, half_done(op.old, new, rng))
        if op.on_power_loss is not None:
            op.on_power_loss(rng)
        log.warning("%s: %s interrupted by %s at %.6f s: unit left half done",
                    self.chip.name, op.name, why, self.env.now())

    def power_lost(self) -> None:
        self._abort_in_flight("power loss")
        self._power_down()

    def _power_down(self) -> None:
        """Volatile state gone (families drop buffers); registers come back at power-on."""

    # --- cells --------------------------------------------------------------------------------
    def _program_cells(self, address: int, data: bytes) -> None:
        """Write ``data`` (already ANDed with the old content) and apply stuck-at-0 bits."""
        out = bytearray(data)
        for addr, mask in self.env.faults.stuck_bits.items():
            if address <= addr < address + len(out):
                out[addr - address] &= ~mask & 0xFF
        self.memory.write_raw(address, bytes(out))

    def _erase(self, address: int, length: int) -> None:
        self.memory.fill(address, length, 0xFF)

    # --- readout protection -------------------------------------------------------------------
    def rdp_level(self) -> int:
        return self._rdp

    def _debug_locked(self) -> bool:
        """RDP level >= 1 with the debug port connected: flash is closed to this session."""
        return self._rdp >= 1 and self.env.debugger_connected()

    def flash_readable(self, address: int, from_debugger: bool) -> bool:
        """Reads stall while BSY (the caller is charged the wait); at RDP level 1 with a debugger
        connected every data read of main flash bus-faults, whether the debugger or code
        running from SRAM under debug issues it (PM0075 read protection, PM0059 2.6.3, RM0394 RDP)."""
        self._wait_idle(finish=False)
        return not self._debug_locked()

    # --- registers ----------------------------------------------------------------------------
    def read_reg(self, offset: int, size: int) -> int:
        word = offset & ~3
        if word == self.sr_offset:
            self._poll_stall()
        self._settle()
        value = self._read_word(word)
        return (value >> (8 * (offset & 3))) & ((1 << (8 * size)) - 1)

    def write_reg(self, offset: int, value: int, size: int) -> None:
        shift = 8 * (offset & 3)
        mask = (((1 << (8 * size)) - 1) << shift) & WORD
        self._settle()
        self._write_word(offset & ~3, (value << shift) & mask, mask)

    def _read_word(self, offset: int) -> int:
        raise NotImplementedError

    def _write_word(self, offset: int, value: int, mask: int) -> None:
        raise NotImplementedError

    # --- lifecycle ----------------------------------------------------------------------------
    def power_on_reset(self) -> None:
        """Power-on: a system reset, then what the previous firmware leaves on every boot."""
        self._power_on_load()
        self.system_reset()
        faults = self.env.faults
        if faults.flash_locked_stale_flags or faults.flash_unlocked_stale_flags:
            self._set_stale(locked=faults.flash_locked_stale_flags)

    def _power_on_load(self) -> None:
        """Option loading that only a power-on does (L4)."""

    def _set_stale(self, locked: bool) -> None:
        raise NotImplementedError


def bus_fault(address: int, reason: str) -> BusFault:
    log.info("flash bus error at 0x%08X: %s", address, reason)
    return BusFault(address, reason)
