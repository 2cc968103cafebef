"""One board's pipeline: connect, identify, unlock, plan, erase, program, verify, unique data,
option bytes, reset — each stage an event on the batch stream.

The flash engine (``target.flash``) does unlock to verify; this module adds what belongs to a
production run: identity checks against the config, the board's serial number (allocated in the
journal before anything is written, merged into the image so it is programmed and verified with
it), readout protection after programming, and the final reset. Typed target errors become one
line a technician can act on; everything else propagates.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import anyio

from ..target.errors import TargetError
from ..target.flash import progress as fp
from ..target.flash.program import FlashEngine, FlashOptions
from ..target.flash.session import Target
from ..target.image import Image
from ..target.image_formats import Chunk
from . import events as ev
from .config_schema import BatchConfig

log = logging.getLogger(__name__)


class BoardRejected(TargetError):
    """The board is not the one the batch is for (chip, family)."""


@dataclass
class AttemptContext:
    """What one attempt learns; the scheduler journals it."""

    slot: str
    attempt_id: int | None = None
    idcode: int | None = None
    uid: bytes | None = None
    chip: str = ""
    serial_number: str | None = None
    serial_written: bool = False
    stages: dict[str, float] = field(default_factory=dict)
    stage: str = "connect"
    stlink: object = None           # the probe driver (for the abort path)
    target: object = None           # the attached target, once known


class Pipeline:
    """Runs the stages for one board through one opened probe."""

    def __init__(self, config: BatchConfig, bus: ev.EventBus, *, allocate_serial=None, record=None) -> None:
        self.config = config
        self.publish = bus.publish
        self.emit = bus.emit
        self.allocate_serial = allocate_serial  # async (ctx) -> str | None
        self.record = record                    # async (ctx) -> None: identity known (journal, UID check)

    async def _stage(self, ctx: AttemptContext, name: str):
        ctx.stage = name
        await self.publish(ev.StageStarted(ctx.slot, name))
        return anyio.current_time()

    async def _done(self, ctx: AttemptContext, name: str, started: float) -> None:
        seconds = anyio.current_time() - started
        ctx.stages[name] = ctx.stages.get(name, 0.0) + seconds
        await self.publish(ev.StageFinished(ctx.slot, name, seconds))

    async def run(self, stlink, ctx: AttemptContext) -> None:
        cfg = self.config
        pipe = cfg.pipeline
        t = await self._stage(ctx, "connect")
        target = await Target.attach(stlink, swd_khz=pipe.swd_khz, connect_under_reset=pipe.connect_under_reset)
        ctx.target = target
        await self._done(ctx, "connect", t)

        t = await self._stage(ctx, "identify")
        ctx.idcode, ctx.uid, ctx.chip = target.idcode, target.uid, target.part.name
        await self.publish(ev.BoardIdentified(ctx.slot, target.part.name, target.idcode, target.uid.hex(),
                                              target.flash_kib * 1024))
        self._check_identity(target)
        if self.record:
            await self.record(ctx)
        await self._done(ctx, "identify", t)

        image = cfg.firmware.image
        if cfg.serial_number is not None:
            t = await self._stage(ctx, "unique data")
            image = await self._with_serial(image, target, ctx)
            await self._done(ctx, "unique data", t)

        options = FlashOptions(erase=pipe.erase, verify=pipe.verify, reset_halt=pipe.halt_reset,
                               unlock=pipe.unlock, reset_after=False)
        emit = self.emit

        def sink(event) -> None:                 # the engine's typed progress -> batch events
            if isinstance(event, fp.StageStarted):
                ctx.stage = event.stage
                emit(ev.StageStarted(ctx.slot, event.stage))
            elif isinstance(event, fp.StageProgress):
                emit(ev.StageProgress(ctx.slot, event.stage, event.done, event.total))
            elif isinstance(event, fp.StageFinished):
                ctx.stages[event.stage] = ctx.stages.get(event.stage, 0.0) + event.seconds
                emit(ev.StageFinished(ctx.slot, event.stage, event.seconds))
            elif isinstance(event, fp.Note):
                emit(ev.BoardNote(ctx.slot, event.text))

        await FlashEngine(target, options, sink).run(image)
        if ctx.serial_number is not None:
            ctx.serial_written = True

        if pipe.rdp_after:
            t = await self._stage(ctx, "option bytes")
            await target.flash.set_rdp_level1()
            await self._done(ctx, "option bytes", t)

        t = await self._stage(ctx, "reset")
        await target.flash.lock_cr()
        if pipe.reset_after:
            await target.core.reset_and_run()
        await self._done(ctx, "reset", t)

    def _check_identity(self, target: Target) -> None:
        want = self.config.target
        part = target.part
        if want.family and part.family != want.family.removeprefix("STM32"):
            raise BoardRejected(f"wrong chip: found {part.name}, the batch is for STM32{want.family}")
        if want.chip and want.part is not None and want.part.flash_size:
            if target.flash_kib * 1024 < want.part.flash_size:
                raise BoardRejected(f"wrong chip: found {part.name} with {target.flash_kib} KiB flash, "
                                    f"the batch is for {want.chip} ({want.part.flash_size // 1024} KiB)")

    async def _with_serial(self, image: Image, target: Target, ctx: AttemptContext) -> Image:
        spec = self.config.serial_number
        value = await self.allocate_serial(ctx)
        ctx.serial_number = value
        data = spec.encode(value, target.uid if spec.include_uid else None)
        await self.publish(ev.BoardNote(ctx.slot, f"serial number {value} at 0x{spec.address:08X}"))
        chunks = [Chunk(s.address, s.data, "image") for s in image.segments]
        chunks.append(Chunk(spec.address, data, "serial number"))
        return Image.from_chunks(chunks, path=image.path, format=image.format, file_sha256=image.file_sha256)
