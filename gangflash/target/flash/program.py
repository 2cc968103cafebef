"""The flash engine: plan, erase, program through the streaming loader, verify, reset.

Separate pieces, probe-rs style: ``plan`` decides, ``runner`` runs the loader, ``controllers``
drive the flash interface, ``progress`` reports. This module sequences them for one board and
applies the recovery policy: after a loader failure, reset-halt, restore the known state and
resume from the first unit not yet programmed; after the retries, program through the debug port
without a loader (slow, but it needs nothing from the core).
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field

import anyio

from ...transport.stlink import StlinkError
from ..image import Image, check_fits
from ..loaders import LoaderBlob, crc32_mpeg2, loader_for
from .errors import ClockMissing, FlashError, ReadoutProtected, VerifyFailed, WriteProtected
from .plan import FlashPlan, UnitWork, choose_erase, fill_holes, touched_units
from .progress import Note, ProgressSink, Stage, StageStarted, ignore
from .runner import LoaderRunner
from .session import Target

log = logging.getLogger(__name__)

FINAL = (WriteProtected, ReadoutProtected, VerifyFailed, ClockMissing)   # retrying cannot help


@dataclass
class FlashOptions:
    """How to program; the batch config's [pipeline] section maps onto this."""

    erase: str = "auto"              # auto | sectors | mass
    verify: str = "crc"              # crc | readback | none
    reset_halt: bool = True          # known state through reset; False: halt + C_MASKINTS only
    unlock: bool = False             # allow RDP 1 -> 0 (mass-erases the chip)
    reset_after: bool = True         # reset and run the new firmware at the end
    retries: int = 2                 # loader recoveries before the debug-port fallback
    verify_units: bool = False       # the loader reads every unit back as it goes (the CRC verify
                                     # catches the same faults; this costs ~4 % at the L4's 4 MHz)


@dataclass
class FlashResult:
    plan: FlashPlan
    programmed: int                  # bytes written
    skipped: int                     # units already up to date
    seconds: float
    notes: list[str] = field(default_factory=list)


class FlashEngine:
    """Programs one image into one attached target."""

    def __init__(self, target: Target, options: FlashOptions | None = None, sink: ProgressSink = ignore) -> None:
        self.target = target
        self.options = options or FlashOptions()
        self._sink = sink
        self._stage: str | None = None
        self.sink = self._track
        part = target.part
        self.blob: LoaderBlob = loader_for(part.controller.generation)
        self.timing = part.controller.timing()
        self.layout = _big_ring_layout(self.blob, part.sram_base, part.sram_loader_kib * 1024)
        self.runner = LoaderRunner(
            target.core, self.blob, self.layout, generation=part.controller.generation,
            rcc_base=part.clocks.rcc_base, unit_seconds=self.timing.program.nominal,
            describe_sr=target.flash.describe_status, wrp_bits=target.flash.wrp_bits)
        self.notes: list[str] = []
        self.jobs: list = []

    @property
    def stage(self) -> str | None:
        return self._stage

    def _track(self, event) -> None:
        if isinstance(event, StageStarted):
            self._stage = event.stage
        self._sink(event)

    def note(self, text: str) -> None:
        log.info("%s: %s", self.target.serial, text)
        self.notes.append(text)
        self.sink(Note(text))

    # ------------------------------------------------------------------ the sequence
    async def run(self, image: Image) -> FlashResult:
        """The whole sequence. A target that stops answering mid-way (the probe still there)
        is diagnosed from the target voltage: power lost, or contact lost."""
        try:
            return await self._run(image)
        except StlinkError as err:
            raise await self._lost_target(err) from err
        except FlashError:
            await self._relock_quietly()
            raise

    async def _relock_quietly(self) -> None:
        """After a failure: lock the flash controller again (it may hold erase bits too), so the
        board is not left with its flash writable until the next reset. Best effort, bounded:
        the failure being reported matters more than this."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
            try:
                await self.target.flash.lock_cr()
            except Exception as exc:                        # noqa: BLE001 - keep the first error
                log.debug("relocking the flash controller after a failure: %s", exc)

    async def _lost_target(self, err: StlinkError) -> FlashError:
        stage = self.stage or "connect"
        try:
            volts = await self.target.probe.target_voltage()
        except Exception:                                   # noqa: BLE001 - keep the first error
            volts = None
        if volts is not None and volts < 1.0:
            return FlashError(f"target lost power during {stage} (target voltage {volts:.2f} V)",
                              stage=stage, address=err.address)
        return FlashError(f"lost contact with the target during {stage}: {err.detail}",
                          stage=stage, address=err.address)

    async def _run(self, image: Image) -> FlashResult:
        target, opts = self.target, self.options
        started = anyio.current_time()
        geometry = target.geometry
        check_fits(image, geometry.base, geometry.flash_end, part_name=target.part.name, regions=geometry.regions)
        async with Stage(self.sink, "unlock"):
            await target.bring_to_known_state(reset=opts.reset_halt, unlock_rdp=opts.unlock)
            for text in target.notes:
                self.note(text)
            target.notes.clear()
        async with Stage(self.sink, "plan"):
            plan = await self.make_plan(image)
            self.note(plan.describe())
        self.make_jobs(plan)
        async with Stage(self.sink, "erase") as stage:
            await self.erase(plan, stage)
        async with Stage(self.sink, "program") as stage:
            programmed = await self.program(plan, stage)
        if opts.verify != "none":
            async with Stage(self.sink, "verify") as stage:
                await self.verify(plan, stage)
        await target.flash.lock_cr()            # never leave the controller unlocked
        if opts.reset_after:
            async with Stage(self.sink, "reset"):
                await target.core.reset_and_run()
        return FlashResult(plan, programmed, len(plan.work) - len(plan.to_program),
                           anyio.current_time() - started, self.notes)

    # ------------------------------------------------------------------ plan
    async def make_plan(self, image: Image) -> FlashPlan:
        target, geometry = self.target, self.target.geometry
        work = touched_units(((s.address, s.data) for s in image.segments), geometry.units)
        protected = {u.index for u in await target.flash.protected_units(list(geometry.units))}
        for w in work:
            if w.unit.index in protected:
                raise WriteProtected(f"page 0x{w.unit.start:08X} is write-protected (option bytes WRP): "
                                     "remove the protection or keep the image out of it", address=w.unit.start)
        await self.runner.load()
        for w in work:
            if w.needs_fill:
                fill_holes(w, await target.probe.read_memory(w.unit.start, w.unit.size))
        crcs = await self.unit_crcs([w.unit for w in work])
        for w, crc in zip(work, crcs):
            w.skip = crc == crc32_mpeg2(bytes(w.content))
        plan = FlashPlan(work)
        erase_time = lambda unit: self.timing.erase_time(unit.size).nominal  # noqa: E731
        mass = self.timing.mass_erase.nominal if self.timing.mass_erase else float("inf")
        # Only a full-flash image is mass-erased automatically: the rest of the flash is not
        # checked for blankness, so data outside the image could be lost.
        plan.mass_erase = choose_erase(work, geometry.units, strategy=self.options.erase,
                                       unit_erase_s=erase_time, mass_erase_s=mass, blank_elsewhere=False)
        if plan.mass_erase:
            for w in work:
                w.skip = False          # a mass erase wipes up-to-date units too: write them all again
        return plan

    async def unit_crcs(self, units) -> list[int]:
        """CRC of each unit computed on the target: through the chip's CRC unit (CRC-32/MPEG-2,
        compare with :func:`crc32_mpeg2`), a few cycles per byte even at reset clocks."""
        results: list[int] = []
        core, probe, lay = self.target.core, self.target.probe, self.layout
        crc = self.target.part.crc
        enable = crc.clock_enable
        await core.write32(enable.register, await core.read32(enable.register) | enable.mask)
        groups: list[list] = []
        for unit in units:
            if groups and groups[-1][-1].end == unit.start and groups[-1][-1].size == unit.size \
                    and len(groups[-1]) < lay.crc_max_pages:
                groups[-1].append(unit)
            else:
                groups.append([unit])
        for group in groups:
            job = self.blob.crc_unit_job(lay, group[0].start, group[0].size, len(group), crc.base, iwdg=True)
            await probe.write_memory(lay.crc_job_addr, job)
            await self.runner.start(lay.crc_unit_pc, lay.crc_job_addr)
            seconds = 0.2 + 10 * group[0].size * len(group) / self.target.core_hz
            await core.wait_for_halt(seconds, what="finish the CRC routine")
            raw = await probe.read_memory(lay.crc_out_addr, 4 * len(group))
            results += list(struct.unpack(f"<{len(group)}I", raw))
        return results

    # ------------------------------------------------------------------ erase
    async def erase(self, plan: FlashPlan, stage: Stage) -> None:
        """Erase what the plan says; meanwhile the first programming job's ring fills up."""
        flash, todo = self.target.flash, plan.to_program
        if not todo:
            return
        first = self.jobs[0] if self.jobs else None
        flash.idle = (lambda: self.runner.fill(first)) if first is not None else None
        try:
            if plan.mass_erase:
                mass = self.timing.mass_erase
                await flash.mass_erase(mass.maximum * 1.5 + 1.0, expected=mass.nominal)
                stage.progress(1, 1)
                return
            for done, w in enumerate(todo, 1):
                duration = self.timing.erase_time(w.unit.size)
                await flash.erase_unit(w.unit, duration.maximum * 1.5 + 0.5, expected=duration.nominal)
                stage.progress(done, len(todo))
            await flash.end_erase()
        finally:
            flash.idle = None

    # ------------------------------------------------------------------ program
    def make_jobs(self, plan: FlashPlan) -> None:
        flags = self.blob.flags(iwdg=True, verify=self.options.verify_units,
                                psize=self.target.flash.psize if self.blob.psize_units else None)
        self.jobs = []
        for dest, data in _contiguous_runs(plan.to_program):
            dest, data = _trim_erased(dest, data, self.blob.unit, self.target.flash.erased)
            if data:
                self.jobs.append(self.runner.stream(dest, data, flags))

    async def program(self, plan: FlashPlan, stage: Stage) -> int:
        total = sum(len(job.data) for job in self.jobs)
        done_before = 0
        for job in self.jobs:
            await self.program_job(job, lambda n, base=done_before: stage.progress(base + n, total))
            done_before += len(job.data)
        stage.progress(total, total)
        return total

    async def program_job(self, job, on_progress) -> None:
        attempt = 0
        while True:
            try:
                await self.runner.program(job, on_progress=on_progress)
                return
            except FINAL:
                raise
            except FlashError as err:
                attempt += 1
                if attempt > self.options.retries:
                    self.note(f"loader failed {attempt} times ({err.detail}); programming through the debug port")
                    await self.recover()
                    await self.program_direct(job.dest, job.data, on_progress)
                    return
                self.note(f"recovering from: {err.detail}")
                resume = await self.recover(resume_from=err.address)
                dest, data = job.dest, job.data
                if resume is not None and dest < resume < dest + len(data):
                    data, dest = data[resume - dest:], resume
                await self.reerase_from(dest)
                job = self.runner.stream(dest, data, job.flags)

    async def recover(self, resume_from: int | None = None) -> int | None:
        """Back to a known state (reset-halt), loader reloaded; where to resume."""
        await self.target.bring_to_known_state(reset=True, unlock_rdp=False)
        await self.runner.load()
        if resume_from is None:
            return None
        unit = self.target.geometry.unit_containing(resume_from)
        return unit.start

    async def reerase_from(self, address: int, end: int | None = None) -> None:
        """The unit holding ``address`` may be half-programmed: erase it again (and every unit
        up to ``end`` when earlier attempts may have written there)."""
        for unit in self.target.geometry.units_overlapping(address, end or address + 1):
            duration = self.timing.erase_time(unit.size)
            await self.target.flash.erase_unit(unit, duration.maximum * 1.5 + 0.5, expected=duration.nominal)
        await self.target.flash.end_erase()

    async def program_direct(self, dest: int, data: bytes, on_progress) -> None:
        """No loader: the debug port writes each programming unit with the controller set up."""
        await self.reerase_from(dest, dest + len(data))
        await self.target.flash.program_direct(dest, data, on_progress)

    # ------------------------------------------------------------------ verify
    async def verify(self, plan: FlashPlan, stage: Stage) -> None:
        work = plan.to_program
        if self.options.verify == "readback":
            for done, w in enumerate(work, 1):
                got = await self.target.probe.read_memory(w.unit.start, w.unit.size)
                if got != bytes(w.content):
                    bad = next(i for i, (a, b) in enumerate(zip(got, w.content)) if a != b)
                    raise VerifyFailed(f"flash at 0x{w.unit.start + bad:08X} reads back 0x{got[bad]:02X}, "
                                       f"image has 0x{w.content[bad]:02X}", address=w.unit.start + bad)
                stage.progress(done, len(work))
            return
        crcs = await self.unit_crcs([w.unit for w in work])
        for w, crc in zip(work, crcs):
            expected = crc32_mpeg2(bytes(w.content))
            if crc != expected:
                raise VerifyFailed(f"page 0x{w.unit.start:08X}: CRC 0x{crc:08X} on the chip, 0x{expected:08X} "
                                   "expected (stuck bits, or programming did not take)", address=w.unit.start)
        stage.progress(len(work), len(work))


def _big_ring_layout(blob: LoaderBlob, ram_base: int, ram_size: int):
    """The loader's SRAM layout with the biggest ring the SRAM allows: on parts with plenty of
    SRAM the ring can swallow much of the image while the flash is still being erased."""
    small = blob.layout(ram_base, ram_size)
    room = (small.stack_top - 64 - small.ring_start) // 16 * 16
    return blob.layout(ram_base, ram_size, ring_size=room)


def _contiguous_runs(work: list[UnitWork]) -> list[tuple[int, bytes]]:
    runs: list[tuple[int, bytearray]] = []
    for w in work:
        if runs and runs[-1][0] + len(runs[-1][1]) == w.unit.start:
            runs[-1][1].extend(w.content)
        else:
            runs.append((w.unit.start, bytearray(w.content)))
    return [(a, bytes(d)) for a, d in runs]


def _trim_erased(dest: int, data: bytes, unit: int, erased: int) -> tuple[int, bytes]:
    """Drop leading and trailing erased bytes (whole programming units): they are erased already."""
    blank = bytes([erased]) * unit
    start, end = 0, len(data)
    while start < end and data[start:start + unit] == blank:
        start += unit
    while end > start and data[end - unit:end] == blank:
        end -= unit
    return dest + start, data[start:end]


async def flash_image(target: Target, image: Image, options: FlashOptions | None = None,
                      sink: ProgressSink = ignore) -> FlashResult:
    """Program ``image`` into ``target``: the whole sequence, with recovery."""
    return await FlashEngine(target, options, sink).run(image)
