"""Running a flash loader on the target: load it, start it from a known state, stream data into
its ring while it programs, wait for its breakpoint, and — when it does not get there — read the
chip's own registers and say why.

The streaming host loop keeps the ring topped up in large writes and sleeps for about the time
the loader needs to drain what it has, so a V2's ~1 ms per USB command hides behind flash time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import anyio

from ..debug import (DFSR_VCATCH, REG_SPECIAL, REG_XPSR, S_HALT, S_LOCKUP, S_RESET_ST,
                     S_SLEEP, CortexDebug, CoreSnapshot)
from ..loaders import CB_DEST, CB_REMAINING, CB_RP, CB_STATUS, CB_WP, Layout, LoaderBlob, Status, ring_free
from .errors import ClockMissing, LoaderFailed, ProgramFailed, VerifyFailed, WriteProtected

log = logging.getLogger(__name__)

# RCC reset-flag register per controller generation (offset from the RCC base) and its IWDG flag
RESET_FLAGS = {"f1": 0x24, "f4": 0x74, "l4": 0x94}
IWDGRSTF = 1 << 29
MIN_CHUNK = 1024                # do not bother the probe for less (unless it is the tail)
FIRST_CHUNK = 512               # start programming early; the rest streams while it runs
MAX_CHUNK = 8192                # chunks grow to this: a write must not outlast what the ring holds
IDLE_CHUNK = 2048               # while the flash erases: small enough not to overrun the erase


@dataclass
class Stream:
    """One contiguous programming job and how much of it the ring has been given."""

    dest: int
    data: bytes
    flags: int
    wp: int
    sent: int = 0
    chunk: int = FIRST_CHUNK
    cb_written: bool = False


@dataclass
class LoaderResult:
    """Registers the loader leaves at its breakpoint."""

    status: int
    dest: int
    remaining: int
    sr: int


class LoaderRunner:
    """One loader blob placed in one target's SRAM."""

    def __init__(self, core: CortexDebug, blob: LoaderBlob, layout: Layout, *, generation: str,
                 rcc_base: int, unit_seconds: float, describe_sr: Callable[[int], str],
                 wrp_bits: int) -> None:
        self.core = core
        self.probe = core.probe
        self.blob = blob
        self.layout = layout
        self.generation = generation
        self.rcc_base = rcc_base
        self.unit_seconds = unit_seconds          # datasheet time of one programming unit
        self.describe_sr = describe_sr
        self.wrp_bits = wrp_bits
        self.loaded = False

    # ------------------------------------------------------------------ setup
    async def load(self) -> None:
        """Write the blob into SRAM and read it back (a loader is only run once it is there)."""
        await self.probe.write_memory(self.layout.code_addr, self.blob.code + b"\0" * (-len(self.blob.code) % 4))
        back = await self.probe.read_memory(self.layout.code_addr, len(self.blob.code))
        if back != self.blob.code:
            raise LoaderFailed(f"loader did not stick in SRAM at 0x{self.layout.code_addr:08X} "
                               "(read back differs): SRAM fault or a bus master overwriting it")
        self.loaded = True

    async def start(self, pc: int, r0: int) -> None:
        """Registers set explicitly, whatever the previous firmware left: r0, SP, LR (a BKPT in
        the blob), PC, xPSR with only the Thumb bit, PRIMASK = 1; then resume with C_MASKINTS."""
        core = self.core
        await core.write_reg(0, r0)
        await core.write_reg(13, self.layout.stack_top)
        await core.write_reg(14, self.layout.exit_lr)
        await core.write_reg(15, pc)
        await core.write_reg(REG_XPSR, 0x01000000)
        await core.write_reg(REG_SPECIAL, 0x00000001)        # PRIMASK = 1, CONTROL = 0
        core.take_sticky()
        await core.resume(maskints=True)

    # ------------------------------------------------------------------ programming
    def stream(self, dest: int, data: bytes, flags: int) -> "Stream":
        """A programming job; fill its ring early with :meth:`fill` (e.g. while erasing), then
        :meth:`program` it."""
        return Stream(dest, data, flags, self.layout.ring_start)

    async def fill(self, job: "Stream") -> bool:
        """Before the loader runs: put the next chunk into the ring. False when nothing fits."""
        lay = self.layout
        if not job.cb_written:
            await self.probe.write_memory(lay.cb_addr, self.blob.control_block(lay, job.dest, len(job.data), job.flags))
            job.cb_written = True
        free = ring_free(job.wp, lay.ring_start, lay.ring_start, lay.ring_end)
        want = min(len(job.data) - job.sent, free, IDLE_CHUNK)
        if want <= 0:
            return False
        job.wp = await self._write_ring(job.wp, job.data[job.sent:job.sent + want])
        job.sent += want
        await self.core.write32(lay.cb_addr + CB_WP, job.wp)
        return True

    async def program(self, job: "Stream", *, on_progress: Callable[[int], None]) -> LoaderResult:
        """Run the loader over ``job``: start it on what the ring holds, keep the ring topped up
        in growing chunks, and sleep for about the time the loader needs to make room. Returns at
        the loader's breakpoint with status done; raises a FlashError subclass otherwise."""
        lay = self.layout
        if job.sent == 0:
            job.chunk = FIRST_CHUNK
            await self.fill(job)            # never start the loader on an empty ring
        job.chunk = max(job.chunk, MIN_CHUNK)
        await self.start(lay.program_pc, lay.cb_addr)
        total = len(job.data)
        unit_rate = self.blob.unit_for((job.flags >> 8) & 3 if self.blob.psize_units else None) / self.unit_seconds
        last_rp, last_move = lay.ring_start, anyio.current_time()
        stall_limit = 0.5 + 64 * self.unit_seconds * 4
        while job.sent < total:
            rp = await self.core.read32(lay.cb_addr + CB_RP)
            now = anyio.current_time()
            if rp != last_rp:
                last_rp, last_move = rp, now
                on_progress(job.sent - ring_used(job.wp, rp, lay))
            if not lay.ring_start <= rp < lay.ring_end or now - last_move > stall_limit:
                raise await self.failure(total, what="programming stalled")
            free = ring_free(job.wp, rp, lay.ring_start, lay.ring_end)
            want = min(total - job.sent, free, job.chunk)
            if want >= min(MIN_CHUNK, job.chunk) or (want and want == total - job.sent):
                job.wp = await self._write_ring(job.wp, job.data[job.sent:job.sent + want])
                job.sent += want
                await self.core.write32(lay.cb_addr + CB_WP, job.wp)
                job.chunk = min(job.chunk * 2, MAX_CHUNK)
                continue
            # Ring (nearly) full: sleep for about the time the loader needs to free a chunk.
            if await self.core.dhcsr() & (S_HALT | S_LOCKUP):
                raise await self.failure(total, what="loader stopped early")
            await anyio.sleep(max((min(job.chunk, MIN_CHUNK) - free) / unit_rate, 0.001))
        return await self.wait_done(ring_used(job.wp, last_rp, lay), unit_rate, on_progress, total)

    async def _write_ring(self, wp: int, chunk: bytes) -> int:
        lay = self.layout
        while chunk:
            room = lay.ring_end - wp
            part, chunk = chunk[:room], chunk[room:]
            await self.probe.write_memory(wp, part)
            wp += len(part)
            if wp == lay.ring_end:
                wp = lay.ring_start
        return wp

    async def wait_done(self, pending: int, unit_rate: float, on_progress, total: int) -> LoaderResult:
        """Wait for the breakpoint: sleep through the work still queued (re-reading RP so the
        estimate stays honest), then poll closely; time out at three times the estimate."""
        lay = self.layout
        deadline = anyio.current_time() + 0.5 + 3 * pending / unit_rate
        while not await self.core.is_halted():
            if anyio.current_time() > deadline:
                raise await self.failure(total, what="loader did not finish in time")
            remaining = await self.core.read32(lay.cb_addr + CB_REMAINING)
            on_progress(total - remaining)
            await anyio.sleep(max(remaining / unit_rate * 0.9, 0.0005))
        result = LoaderResult(*[await self.core.read_reg(i) for i in range(4)])
        pc = await self.core.read_reg(15)
        if result.status == Status.DONE and self._in_blob(pc):
            on_progress(total)
            return result
        raise await self.failure(total, result=result)

    def _in_blob(self, pc: int) -> bool:
        start = self.layout.code_addr
        return start <= pc < start + len(self.blob.code)

    # ------------------------------------------------------------------ diagnosis
    async def failure(self, total: int, *, what: str = "", result: LoaderResult | None = None):
        """Read the chip's registers (before anything else touches the core) and build the error
        a technician can act on."""
        shot = await self.core.snapshot(halt=True)
        sticky = self.core.take_sticky()
        flash_sr = await self._safe_read(self.blob.flash_regs + self.blob.sr_offset)
        reset_flags = await self._safe_read(self.rcc_base + RESET_FLAGS.get(self.generation, 0x24))
        cb_status = await self._safe_read(self.layout.cb_addr + CB_STATUS)
        volts = None
        try:
            volts = await self.probe.target_voltage()
        except Exception:                                   # noqa: BLE001 - diagnosis goes on
            pass
        message, cls = explain(shot, sticky=sticky, flash_sr=flash_sr, reset_flags=reset_flags,
                               result=result, in_blob=self._in_blob(shot.regs.get("pc", 0)),
                               describe_sr=self.describe_sr, wrp_bits=self.wrp_bits, volts=volts,
                               generation=self.generation, what=what, cb_status=cb_status)
        # Where to resume: the loader publishes DEST (the unit in flight) in SRAM, which a
        # reset does not clear.
        address = result.dest if result else await self._safe_read(self.layout.cb_addr + CB_DEST)
        log.info("loader failure: %s (%s)", message, shot.describe())
        return cls(message, sr=flash_sr, snapshot=shot, address=address)

    async def _safe_read(self, address: int) -> int | None:
        try:
            return await self.core.read32(address)
        except Exception:                                   # noqa: BLE001 - diagnosis goes on
            return None


def ring_used(wp: int, rp: int, lay: Layout) -> int:
    return (wp - rp) % (lay.ring_end - lay.ring_start)


def explain(shot: CoreSnapshot, *, sticky: int, flash_sr: int | None, reset_flags: int | None,
            result: LoaderResult | None, in_blob: bool, describe_sr, wrp_bits: int,
            volts: float | None, generation: str, what: str, cb_status: int | None):
    """From registers to one sentence and an error class. Order matters: the most specific
    evidence wins (a watchdog reset explains a lockup that followed it, not the reverse)."""
    pc = shot.regs.get("pc")
    if volts is not None and volts < 1.0:
        return "target lost power during programming (target voltage %.2f V)" % volts, LoaderFailed
    if reset_flags is not None and reset_flags & IWDGRSTF:
        return ("watchdog reset the chip during programming (RCC reset flags show IWDG): the firmware "
                "or option bytes start the independent watchdog; it must be frozen and reloaded"), LoaderFailed
    if sticky & S_RESET_ST or shot.dhcsr & S_RESET_ST or shot.dfsr & DFSR_VCATCH:
        return "the chip reset during programming (NRST, brown-out or a reset request)", LoaderFailed
    if result is not None and result.status == Status.FLASH_ERROR:
        sr = result.sr if flash_sr is None else flash_sr
        if (result.sr | (sr or 0)) & wrp_bits:
            return (f"page 0x{result.dest:08X} is write-protected (option bytes WRP): remove the "
                    f"protection or keep the image out of it"), WriteProtected
        return (f"programming failed at 0x{result.dest:08X}: {describe_sr(result.sr)} "
                f"(flash SR 0x{result.sr:08X})"), ProgramFailed
    if result is not None and result.status == Status.VERIFY:
        return (f"flash at 0x{result.dest:08X} reads back different data after programming "
                f"(stuck bits or a worn cell)"), VerifyFailed
    if shot.locked_up or (shot.dhcsr & S_LOCKUP):
        if shot.thumb_clear:
            return "core locked up: Thumb bit was clear (xPSR.T = 0 when the loader started)", LoaderFailed
        return (f"core locked up (fault inside a fault handler): {shot.describe()}"), LoaderFailed
    if pc is not None and not in_blob:
        where = "the old firmware in flash" if 0x08000000 <= pc < 0x10000000 or pc < 0x00100000 else "outside the loader"
        return (f"the core left the loader: PC 0x{pc:08X} is in {where} (an interrupt or fault "
                f"handler took over)"), LoaderFailed
    if shot.dhcsr & S_SLEEP:
        return "core asleep (WFI/WFE) instead of running the loader", LoaderFailed
    if generation == "f1" and flash_sr is not None and flash_sr & 1 and what:
        return ("flash controller stays busy: its clock (HSI) is not running, or it hangs "
                f"(flash SR 0x{flash_sr:08X})"), ClockMissing
    detail = f"{what}; " if what else ""
    status = f"loader status {cb_status}" if cb_status is not None else "loader status unknown"
    return f"flash loader did not finish: {detail}{status}, {shot.describe()}", LoaderFailed
