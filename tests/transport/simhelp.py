"""Building simulated probes for transport tests, on the event loop's (virtual) clock.

Sim objects read the clock at construction, so they are built inside the running test, not in a
synchronous fixture.
"""

from __future__ import annotations

import anyio

from gangflash.sim.bench import make_probe, sim_serial
from gangflash.sim.faults import ProbeFaults, TargetFaults
from gangflash.sim.probe import SimProbe
from gangflash.sim.target import SimTarget
from gangflash.transport.sim_backend import SimBackend
from gangflash.transport.stlink import Stlink


def sim_probe(chip: str | None = "F103C8", *, model: str = "V2", index: int = 0,
              probe_faults: ProbeFaults | None = None, target_faults: TargetFaults | None = None,
              jtag_version: int | None = None) -> SimProbe:
    """One probe with a board; ``jtag_version`` builds it by hand (bench has no such knob)."""
    if jtag_version is None:
        return make_probe(chip, clock=anyio.current_time, model=model, index=index,
                          probe_faults=probe_faults, target_faults=target_faults)
    target = SimTarget(chip, anyio.current_time, target_faults) if chip else None
    return SimProbe(serial=sim_serial(index), target=target, clock=anyio.current_time,
                    model=model, faults=probe_faults, jtag_version=jtag_version)


async def open_probe(probe: SimProbe, backend: SimBackend | None = None, **options) -> Stlink:
    """Open ``probe`` through a SimBackend and wrap it in the driver (version read, mode left)."""
    backend = backend or SimBackend([probe])
    if probe not in backend.probes:
        backend.add(probe)
    info = next(i for i in await backend.enumerate() if i.serial == probe.serial)
    return await Stlink.open(await backend.open(info), **options)


async def connected(chip: str | None = "F103C8", *, model: str = "V2", swd_khz: int = 4000,
                    **kw) -> tuple[Stlink, SimProbe]:
    """A driver in SWD mode on a fresh simulated probe and board."""
    probe = sim_probe(chip, model=model, **kw)
    stlink = await open_probe(probe)
    await stlink.connect(swd_khz=swd_khz)
    return stlink, probe
