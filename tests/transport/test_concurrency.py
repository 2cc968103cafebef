"""Many probes at once: one lock per probe, nothing shared, so 32 boards cost the time of one.

Virtual time (looptime) makes the claim measurable: each simulated transfer costs what the probe
model says, awaited on the loop clock, so any serialisation between probes (a shared lock, a
blocking call) would show up as lost virtual time.
"""

from __future__ import annotations

import anyio
import pytest

from gangflash.sim.bench import DEFAULT_MIX
from gangflash.transport.errors import ProbeGone, TransportError
from gangflash.transport.sim_backend import SimBackend
from gangflash.transport.stlink import Stlink

from .simhelp import sim_probe

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]
SRAM = 0x20000000
IMAGE = bytes((i * 31 + 7) & 0xFF for i in range(8 * 1024 + 3))


async def workload(backend: SimBackend, info) -> bytes:
    """What a gang job does to each probe, in small: open, connect, write, read back, close."""
    async with await Stlink.open(await backend.open(info)) as stlink:
        await stlink.connect(swd_khz=4000)
        assert await stlink.read_idcode() in (0x1BA01477, 0x2BA01477)
        await stlink.write_memory(SRAM + 1, IMAGE)
        return await stlink.read_memory(SRAM + 1, len(IMAGE))


async def run_gang(count: int, *, model: str = "V2", unplug: int | None = None,
                   ) -> tuple[float, dict[int, bytes | Exception]]:
    """Run the workload on ``count`` fresh probes at once; (virtual seconds, result per probe)."""
    probes = [sim_probe(DEFAULT_MIX[i % len(DEFAULT_MIX)], model=model, index=i)
              for i in range(count)]
    if unplug is not None:
        probes[unplug].faults.unplug_after_bytes = 2000
    backend = SimBackend(probes)
    infos = await backend.enumerate()
    results: dict[int, bytes | Exception] = {}

    async def one(index: int) -> None:
        try:
            results[index] = await workload(backend, infos[index])
        except TransportError as exc:      # a failing probe must not cancel the others
            results[index] = exc

    start = anyio.current_time()
    async with anyio.create_task_group() as tg:
        for index in range(count):
            tg.start_soon(one, index)
    return anyio.current_time() - start, results


@pytest.mark.parametrize("model", ["V2", "V3"])
async def test_32_probes_finish_in_about_the_time_of_one(model):
    single, results = await run_gang(1, model=model)
    assert results[0] == IMAGE
    gang, results = await run_gang(32, model=model)
    assert all(results[i] == IMAGE for i in range(32))
    print(f"\n{model}: 1 probe {single * 1e3:.1f} ms, 32 probes {gang * 1e3:.1f} ms (virtual)")
    assert single > 0.005                   # the measurement measures something
    assert gang < 1.5 * single


async def test_one_probe_unplugged_does_not_disturb_the_others():
    single, _ = await run_gang(1)
    gang, results = await run_gang(32, unplug=5)
    assert isinstance(results[5], ProbeGone)
    assert all(results[i] == IMAGE for i in range(32) if i != 5)
    assert gang < 1.5 * single


async def test_one_probe_serialises_its_own_callers():
    """Two tasks on one probe take about twice as long as one: the per-probe lock holds."""
    probe = sim_probe()
    backend = SimBackend([probe])
    [info] = await backend.enumerate()
    stlink = await Stlink.open(await backend.open(info))
    await stlink.connect(swd_khz=4000)

    async def job(offset: int) -> None:
        await stlink.write_memory(SRAM + offset, IMAGE)

    start = anyio.current_time()
    await job(0)
    one = anyio.current_time() - start
    start = anyio.current_time()
    async with anyio.create_task_group() as tg:
        tg.start_soon(job, 0)
        tg.start_soon(job, 0x2400)
    two = anyio.current_time() - start
    assert two == pytest.approx(2 * one, rel=0.2)
    assert await stlink.read_memory(SRAM + 0x2400, len(IMAGE)) == IMAGE
