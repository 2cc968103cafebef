"""The dashboard on a real ``Batch`` of simulated boards, in virtual time (seconds of board time
take milliseconds): tiles follow the real event stream, keys reach the real scheduler."""

from __future__ import annotations

import anyio
import pytest

from gangflash.orchestrator.config import load_config, make_sim_probes
from gangflash.orchestrator.scheduler import Batch
from gangflash.transport.sim_backend import SimBackend
from gangflash.tui.app import DashboardApp
from gangflash.tui.confirm import ConfirmScreen
from gangflash.tui.model import FINISHED, Status
from orchestrator.batchhelp import write_config

from .helpers import tile_text

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]

CLEAN = 'chip = "F103C8"'
PROTECTED = 'chip = "F103C8"\nfaults = { write_protected = [0, 1, 2, 3] }'


def real_batch(tmp_path, boards, **options) -> Batch:
    config = load_config(write_config(tmp_path, boards, attempts=1))
    return Batch(config, lambda: SimBackend(make_sim_probes(config.sim.boards, clock=anyio.current_time)),
                 keep_alive=True, **options)


async def wait_until(pilot, condition, *, seconds: float = 120.0) -> None:
    """Let (virtual) time pass until ``condition()``; fail after ``seconds`` of board time."""
    app = pilot.app
    with anyio.fail_after(seconds):
        while not condition():
            await pilot.pause(0.05)
    app.refresh_dashboard()
    await pilot.pause()


def all_finished(app: DashboardApp) -> bool:
    boards = app.model.boards.values()
    return bool(boards) and all(board.status in FINISHED for board in boards)


async def test_simulated_batch_passes_and_fails_with_the_cause_and_r_retries(tmp_path):
    batch = real_batch(tmp_path, [CLEAN, 'chip = "L432KC"\nprobe_model = "V3"', PROTECTED])
    app = DashboardApp(batch)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: app.model.count(Status.RUNNING) > 0)
        await wait_until(pilot, lambda: all_finished(app))
        statuses = {slot: board.status for slot, board in app.model.boards.items()}
        assert statuses == {"S1": Status.PASSED, "S2": Status.PASSED, "S3": Status.FAILED}
        assert "write-protected" in app.model.tile_view("S3", app.now()).message
        assert "FAIL plan" in tile_text(app, "S3") and "F10x" in tile_text(app, "S3")
        assert "SN SN-" in tile_text(app, "S1")
        counts = " ".join(app.header.counts.render().plain.split())
        assert "2 passed 1 failed 0 running" in counts and "yield 66.7%" in counts
        assert "DONE" in app.header.identity.render().plain

        await pilot.press("r")                       # still write-protected: fails again, second try
        await wait_until(pilot, lambda: app.model.boards["S3"].tries == 2 and all_finished(app))
        assert "try 2" in tile_text(app, "S3") and "FAIL" in tile_text(app, "S3")
        assert app.model.boards["S1"].tries == 1    # passed boards are left alone

        await pilot.press("q")                       # nothing in flight: stops without asking
        await wait_until(pilot, lambda: not app.batch_running)
    assert app.return_value == 1


async def test_quitting_mid_batch_asks_then_the_scheduler_stops_the_boards_safely(tmp_path):
    batch = real_batch(tmp_path, [CLEAN, CLEAN], stop_grace=0.05)
    app = DashboardApp(batch)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.model.count(Status.RUNNING) == 2)   # a board takes ~1 s
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await wait_until(pilot, lambda: not app.batch_running)
    statuses = {board.status for board in app.model.boards.values()}
    assert Status.ABORTED in statuses and statuses <= {Status.ABORTED, Status.PASSED}
    assert app.return_value == 1
    assert app.model.finished_at is not None            # BatchFinished reached the model
