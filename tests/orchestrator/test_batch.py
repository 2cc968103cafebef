"""The scheduler with simulated boards in virtual time: isolation, retries, stop, auto mode."""

from __future__ import annotations

import anyio
import pytest

from gangflash.orchestrator import events as ev
from gangflash.orchestrator.config import load_config
from gangflash.orchestrator.config_sim import make_sim_probes
from gangflash.orchestrator.journal import Journal
from gangflash.orchestrator.scheduler import Batch
from gangflash.transport.sim_backend import SimBackend

from .batchhelp import write_config

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]


def batch_for(config_path, **kw):
    config = load_config(config_path)
    holder = {}

    def factory():
        holder["probes"] = make_sim_probes(config.sim.boards, clock=anyio.current_time)
        return SimBackend(holder["probes"])

    return Batch(config, factory, **kw), holder


async def collect(batch):
    seen = []
    stream = batch.events.subscribe()

    async def drain():
        async with stream:
            async for event in stream:
                seen.append(event)

    async with anyio.create_task_group() as tg:
        tg.start_soon(drain)
        summary = await batch.run()
    return summary, seen


async def test_an_unplugged_probe_fails_alone(tmp_path):
    path = write_config(tmp_path, ['chip = "F103C8"', 'chip = "F103C8"\nprobe_faults = { unplug_after_bytes = 6000 }',
                                   'chip = "L432KC"'])
    batch, _ = batch_for(path)
    summary, seen = await collect(batch)
    assert (summary.passed, summary.failed) == (2, 1)
    fault = [e for e in seen if isinstance(e, ev.BoardFailed)]
    assert len(fault) == 1 and fault[0].slot == "S2" and fault[0].probe_fault and not fault[0].will_retry
    assert "unplugged" in fault[0].cause


async def test_a_transient_failure_is_retried_and_passes(tmp_path):
    # An SWD WAIT storm on the first attempt only: the second attempt passes.
    path = write_config(tmp_path, ['chip = "F103C8"\nprobe_faults = { swd_wait_burst = 45, swd_wait_on_command = 30 }'])
    batch, _ = batch_for(path)
    summary, seen = await collect(batch)
    assert summary.passed == 1
    failed = [e for e in seen if isinstance(e, ev.BoardFailed)]
    assert failed and failed[0].will_retry
    rows = Journal.open(batch.journal_path).attempts()
    assert [r.result for r in rows] == ["failed", "passed"]


async def test_stop_aborts_boards_in_flight_and_journals_them(tmp_path):
    path = write_config(tmp_path, ['chip = "F412ZG"', 'chip = "F412ZG"'], serial=False)
    batch, _ = batch_for(path, stop_grace=0.05)

    async def stop_soon():
        await anyio.sleep(0.3)
        batch.request_stop()

    async with anyio.create_task_group() as tg:
        tg.start_soon(stop_soon)
        summary, seen = await collect(batch)
    assert summary.aborted == 2 and summary.passed == 0
    assert [e.slot for e in seen if isinstance(e, ev.BoardAborted)] == ["S1", "S2"] or \
        sorted(e.slot for e in seen if isinstance(e, ev.BoardAborted)) == ["S1", "S2"]
    rows = Journal.open(batch.journal_path).attempts()
    assert sorted(r.result for r in rows) == ["aborted", "aborted"]


async def test_write_protected_board_is_not_retried(tmp_path):
    path = write_config(tmp_path, ['chip = "F103C8"\nfaults = { write_protected = [0] }'], attempts=3)
    batch, _ = batch_for(path)
    summary, seen = await collect(batch)
    assert summary.failed == 1
    assert len([e for e in seen if isinstance(e, ev.BoardStarted)]) == 1


async def test_auto_mode_flashes_each_board_as_it_appears(tmp_path):
    path = write_config(tmp_path, ['chip = "F103C8"'], extra='', serial=True)
    batch, holder = batch_for(path, auto=True)

    async def operator():
        await anyio.sleep(2.0)                          # first board flashed by now
        target = holder["probes"][0].target
        target.sync(anyio.current_time())
        target.power_off()                              # board removed...
        await anyio.sleep(1.0)
        target.sync(anyio.current_time())
        target.power_on()                               # ...the next one inserted
        await anyio.sleep(2.5)
        batch.request_stop()

    async with anyio.create_task_group() as tg:
        tg.start_soon(operator)
        summary, seen = await collect(batch)
    assert summary.passed == 2
    assert len([e for e in seen if isinstance(e, ev.BoardWaiting)]) >= 2
    serials = [e.serial_number for e in seen if isinstance(e, ev.BoardPassed)]
    assert len(set(serials)) == 2                       # each board its own serial number


async def test_a_wedged_probe_is_isolated_and_reset_once(tmp_path):
    path = write_config(tmp_path, ['chip = "F103C8"', 'chip = "F103C8"\nprobe_faults = { hang_after_transfers = 40 }',
                                   'chip = "F103C8"'], attempts=3)
    batch, holder = batch_for(path)
    summary, seen = await collect(batch)
    assert (summary.passed, summary.failed) == (2, 1)
    faults = [e for e in seen if isinstance(e, ev.BoardFailed) and e.slot == "S2"]
    assert all(e.probe_fault for e in faults)
    assert "wedged; tried one USB reset" in faults[-1].cause and not faults[-1].will_retry
    assert holder["probes"][1].stats["usb_resets"] >= 1
    assert len(faults) == 2                             # isolated after the second timeout, not retried a third time


async def test_auto_mode_picks_up_a_probe_plugged_in_and_retires_one_pulled(tmp_path):
    from gangflash.sim.bench import make_probe
    path = write_config(tmp_path, ['chip = "F103C8"', 'chip = "L432KC"'], serial=False)
    batch, holder = batch_for(path, auto=True)
    extra = {}

    async def operator():
        await anyio.sleep(1.5)
        holder["probes"][1].unplug()                    # pulled
        extra["probe"] = make_probe("F412ZG", clock=anyio.current_time, index=7)
        batch.backend.add(extra["probe"])               # plugged in
        await anyio.sleep(4.0)
        batch.request_stop()

    async with anyio.create_task_group() as tg:
        tg.start_soon(operator)
        summary, seen = await collect(batch)
    passed = [e.slot for e in seen if isinstance(e, ev.BoardPassed)]
    assert "S3" in passed                                # the new probe's board was flashed
    notes = [e.text for e in seen if isinstance(e, ev.BoardNote)]
    assert any("plugged in" in n for n in notes) and any("slot retired" in n for n in notes)
    assert extra["probe"].target.flash_contents(0x08000000, 16) != b"\xff" * 16


async def test_a_board_retried_from_the_dashboard_counts_by_its_latest_outcome(tmp_path):
    # An SWD WAIT storm fails the only attempt; the technician's retry (dashboard key r) passes.
    path = write_config(tmp_path, ['chip = "F103C8"\nprobe_faults = { swd_wait_burst = 45, swd_wait_on_command = 30 }'],
                        attempts=1)
    batch, holder = batch_for(path, keep_alive=True)

    async def technician():
        await anyio.sleep(1.0)
        assert batch.summary.failed == 1
        batch.request_retry()
        await anyio.sleep(3.0)
        batch.request_stop()

    async with anyio.create_task_group() as tg:
        tg.start_soon(technician)
        summary, _ = await collect(batch)
    assert (summary.passed, summary.failed) == (1, 0)
