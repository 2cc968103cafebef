"""A host for the flash loaders that talks straight to a simulated chip (no probe, no transport):
reset-halt, unlock, erase by registers, load a blob, and stream an image through the ring in
virtual time the way the real host will (read RP, write data, write WP, once per "USB round").

The debugger part is a few lines in the spirit of ``tests/sim/chipdebug.py`` (copied, not
imported: ``tests`` is not a package). Everything goes through the debug port methods a probe
uses; ``target.flash_contents`` (the simulator's back door) is only used to check results.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from gangflash.sim.clock import ManualClock
from gangflash.sim.faults import TargetFaults
from gangflash.sim.target import SimTarget
from gangflash.target.loaders import (CB_ABORT, CB_ERROR_SR, CB_REMAINING, CB_RP, CB_STATUS, CB_WP,
                                      Layout, LoaderBlob, loader_for, ring_free)

DHCSR, DCRSR, DCRDR, DEMCR, AIRCR, DFSR = 0xE000EDF0, 0xE000EDF4, 0xE000EDF8, 0xE000EDFC, 0xE000ED0C, 0xE000ED30
S_HALT, S_LOCKUP = 1 << 17, 1 << 19
KEY1, KEY2 = 0x45670123, 0xCDEF89AB
IWDG_KR = 0x40003000

# Flash controllers, host side: (KEYR, SR, CR, BSY, error flags, erase select bits)
_FAMILY = {
    "F1": dict(loader="f1", keyr=0x40022004, sr=0x4002200C, cr=0x40022010, ar=0x40022014,
               bsy=1 << 0, errors=0x14),
    "F4": dict(loader="f4", keyr=0x40023C04, sr=0x40023C0C, cr=0x40023C10, bsy=1 << 16, errors=0x1F2),
    "L4": dict(loader="l4", keyr=0x40022008, sr=0x40022010, cr=0x40022014, bsy=1 << 16, errors=0xC3FA),
}


class Chip:
    """One simulated chip and a minimal debugger on its debug port."""

    def __init__(self, name: str, **faults) -> None:
        self.clock = ManualClock()
        self.target = SimTarget(name, self.clock, TargetFaults(**faults))
        self.spec = self.target.chip
        self.regs = _FAMILY[self.spec.family]
        self.blob: LoaderBlob = loader_for(self.regs["loader"])
        self.target.sync(self.clock())
        self.target.swd_connect()

    # --- time and memory ----------------------------------------------------------------------
    def now(self) -> float:
        return self.clock()

    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.target.sync(self.clock())

    def read(self, address: int, length: int) -> bytes:
        self.target.sync(self.clock())
        return self.target.mem_read(address, length, 4)

    def write(self, address: int, data: bytes) -> None:
        self.target.sync(self.clock())
        self.target.mem_write(address, bytes(data) + b"\0" * (-len(data) % 4), 4)

    def r32(self, address: int) -> int:
        return struct.unpack("<I", self.read(address, 4))[0]

    def w32(self, address: int, value: int) -> None:
        self.write(address, struct.pack("<I", value & 0xFFFFFFFF))

    # --- core ---------------------------------------------------------------------------------
    def halted(self) -> bool:
        return bool(self.r32(DHCSR) & S_HALT)

    def reg(self, index: int) -> int:
        self.w32(DCRSR, index)
        return self.r32(DCRDR)

    def set_reg(self, index: int, value: int) -> None:
        self.w32(DCRDR, value)
        self.w32(DCRSR, index | 0x10000)

    def reset_halt(self) -> None:
        self.w32(DHCSR, 0xA05F0003)
        self.w32(DEMCR, self.r32(DEMCR) | 1)
        self.w32(AIRCR, 0x05FA0004)
        assert self.halted()
        self.w32(DEMCR, self.r32(DEMCR) & ~1)

    def run(self, pc: int, r0: int, sp: int, lr: int) -> None:
        """Known-state start (cortex-m-debug.md): registers, xPSR.T, PRIMASK, then resume."""
        for index, value in ((0, r0), (13, sp), (14, lr), (15, pc), (16, 0x01000000), (20, 1)):
            self.set_reg(index, value)
        self.w32(DFSR, 0x1F)
        self.w32(DHCSR, 0xA05F0001)

    # --- flash controller, host side ----------------------------------------------------------
    def unlock(self) -> None:
        regs = self.regs
        self.w32(regs["keyr"], KEY1)
        self.w32(regs["keyr"], KEY2)
        self.w32(regs["sr"], regs["errors"])           # clear stale flags (write 1)

    def _wait_bsy(self, limit: float = 5.0) -> None:
        deadline = self.now() + limit
        while self.r32(self.regs["sr"]) & self.regs["bsy"]:
            assert self.now() < deadline, "erase never finished"
            self.wait(0.001)
        assert not self.r32(self.regs["sr"]) & self.regs["errors"], hex(self.r32(self.regs["sr"]))

    def erase(self, address: int, length: int) -> None:
        """Erase every page/sector overlapping [address, address + length)."""
        regs, spec = self.regs, self.spec
        index, start, _ = spec.sector_of(address)
        while start < address + length:
            _, _, size = spec.sector_of(start)
            if spec.family == "F1":
                self.w32(regs["cr"], 1 << 1)                         # PER
                self.w32(regs["ar"], start)
                self.w32(regs["cr"], (1 << 1) | (1 << 6))            # PER | STRT
            elif spec.family == "F4":
                select = (1 << 1) | (index << 3) | (2 << 8)          # SER | SNB | PSIZE x32
                self.w32(regs["cr"], select)
                self.w32(regs["cr"], select | (1 << 16))             # STRT
            else:
                select = (1 << 1) | (index << 3)                     # PER | PNB
                self.w32(regs["cr"], select)
                self.w32(regs["cr"], select | (1 << 16))             # STRT
            self._wait_bsy()
            self.w32(regs["cr"], 0)
            index, start = index + 1, start + size

    def prepare(self, address: int, length: int) -> None:
        self.reset_halt()
        self.unlock()
        self.erase(address, length)

    def default_layout(self, ring_size: int | None = None) -> Layout:
        base, size = self.spec.sram_regions[0]
        return self.blob.layout(base, size, ring_size)


@dataclass
class Result:
    status: int
    regs: tuple[int, int, int, int]         # r0..r3 at the halt
    cb: dict[str, int]
    elapsed: float                          # virtual seconds from resume to the halt
    halted: bool
    rounds: int
    resets: list = field(default_factory=list)


def stream(chip: Chip, image: bytes, dest: int, flags: int | None = None, ring_size: int | None = None,
           round_time: float = 1e-3, chunk: int | None = None, abort_after: int | None = None,
           time_limit: float = 10.0, precise_end: bool = False, layout: Layout | None = None,
           observe=None, feed_every: int = 1) -> Result:
    """Program ``image`` at ``dest`` through the loader, the host side emulated in virtual time.

    Every round: wait ``round_time`` (a USB round trip), stop if halted, read RP, write as much
    as fits (at most ``chunk`` bytes), then WP. ``abort_after``: set CB_ABORT once that many
    bytes have been handed over. ``precise_end``: poll in 10 µs steps once the loader is close to
    the end, so ``elapsed`` is exact to that. ``observe(chip, layout)`` is called every round,
    while the loader runs (the chip does not move between the host's accesses of one round).
    ``feed_every``: hand data over only every that many rounds (the host still polls)."""
    blob = chip.blob
    if flags is None:
        flags = blob.flags()                            # F4: PSIZE x32
    lay = layout or chip.default_layout(ring_size)
    chip.write(lay.code_addr, blob.code)
    chip.write(lay.cb_addr, blob.control_block(lay, dest, len(image), flags))
    unit = blob.unit_for((flags >> 8) & 3 if blob.psize_units else None)
    sent, wp = 0, lay.ring_start

    def feed() -> None:
        nonlocal sent, wp
        rp = chip.r32(lay.cb_addr + CB_RP)
        room = ring_free(wp, rp, lay.ring_start, lay.ring_end)
        n = min(room, len(image) - sent, chunk or len(image))
        n -= n % unit
        if n <= 0:
            return
        first = min(n, lay.ring_end - wp)
        chip.write(wp, image[sent:sent + first])
        if n > first:
            chip.write(lay.ring_start, image[sent + first:sent + n])
        sent += n
        wp = lay.ring_start + (wp - lay.ring_start + n) % lay.ring_size
        chip.w32(lay.cb_addr + CB_WP, wp)

    feed()
    chip.run(lay.program_pc, lay.cb_addr, lay.stack_top, lay.exit_lr)
    start, rounds, aborted = chip.now(), 0, False
    while not chip.halted():
        if chip.now() - start > time_limit:
            break
        step = round_time
        if precise_end and sent == len(image):
            left = chip.r32(lay.cb_addr + CB_REMAINING)
            if left <= 4 * unit:
                step = 10e-6
        chip.wait(step)
        rounds += 1
        if chip.halted():
            break
        if observe is not None:
            observe(chip, lay)
        if rounds % feed_every == 0:
            feed()
        if abort_after is not None and not aborted and sent >= abort_after:
            chip.w32(lay.cb_addr + CB_ABORT, 1)
            aborted = True
    halted = chip.halted()
    elapsed = chip.now() - start
    regs = tuple(chip.reg(i) for i in range(4)) if halted else (0, 0, 0, 0)
    words = struct.unpack("<12I", chip.read(lay.cb_addr, 48))
    names = ("wp", "rp", "ring_start", "ring_end", "dest", "remaining", "status", "flash_regs",
             "flags", "error_sr", "abort", "scratch")
    cb = dict(zip(names, words))
    return Result(status=cb["status"], regs=regs, cb=cb, elapsed=elapsed, halted=halted, rounds=rounds,
                  resets=list(chip.target.resets))


def crc(chip: Chip, address: int, page_size: int, count: int, iwdg: bool = False,
        layout: Layout | None = None) -> tuple[list[int], float, int]:
    """Run the blob's CRC routine; returns (CRCs, virtual seconds, r0)."""
    blob = chip.blob
    lay = layout or chip.default_layout()
    chip.write(lay.code_addr, blob.code)
    chip.write(lay.crc_job_addr, blob.crc_job(lay, address, page_size, count, iwdg=iwdg))
    chip.run(lay.crc_pc, lay.crc_job_addr, lay.stack_top, lay.exit_lr)
    start = chip.now()
    step = 1e-3
    while not chip.halted():
        assert chip.now() - start < 10, "CRC routine never finished"
        chip.wait(step)
    elapsed = chip.now() - start
    out = struct.unpack(f"<{count}I", chip.read(lay.crc_out_addr, 4 * count)) if count else ()
    return list(out), elapsed, chip.reg(0)


__all__ = ["Chip", "Result", "stream", "crc", "IWDG_KR", "CB_STATUS", "CB_ERROR_SR", "CB_WP"]
