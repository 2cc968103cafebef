"""A simulated board behind a simulated probe, attached through the real driver, for engine
tests in virtual time (build inside the running test: sim objects read the loop clock)."""

from __future__ import annotations

import contextlib
import random

import anyio

from gangflash.sim.bench import make_probe
from gangflash.sim.faults import ProbeFaults, TargetFaults
from gangflash.target.flash.session import Target
from gangflash.target.image import Image
from gangflash.target.image_formats import Chunk
from gangflash.transport.sim_backend import SimBackend
from gangflash.transport.stlink import Stlink

FLASH = 0x08000000


def image(size: int, *, seed: int = 1, address: int = FLASH) -> tuple[Image, bytes]:
    data = random.Random(seed).randbytes(size)
    return Image.from_chunks([Chunk(address, data, "test")], path="test.bin", format="bin"), data


@contextlib.asynccontextmanager
async def board(chip: str = "F103C8", *, model: str = "V2", probe_faults: ProbeFaults | None = None,
                **faults):
    """Yields (probe driver, sim probe); the chip is ``sim_probe.target``."""
    sim = make_probe(chip, clock=anyio.current_time, model=model, probe_faults=probe_faults,
                     target_faults=TargetFaults(**faults))
    backend = SimBackend([sim])
    info = (await backend.enumerate())[0]
    stlink = await Stlink.open(await backend.open(info))
    try:
        yield stlink, sim
    finally:
        with anyio.CancelScope(shield=True):
            try:
                await stlink.aclose()
            except Exception:           # noqa: BLE001 - a test may have unplugged it
                pass


async def attach(stlink) -> Target:
    return await Target.attach(stlink)
