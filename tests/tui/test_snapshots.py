"""What the technician sees, as SVG snapshots (regenerate with ``pytest --snapshot-update``,
then look at them: ``snapshot_report.html`` shows any difference; never edit an SVG by hand).

Every scene is the scripted mix of states at a fixed time (``scripted.NOW``): no wall clock
reaches the screen, so the pictures are the same on every machine and every run.
"""

from __future__ import annotations

import pytest

from gangflash.tui.app import DashboardApp
from gangflash.tui.scripted import NOW, ScriptedBatch, mixed_states


def scene(slots: int) -> DashboardApp:
    config, script = mixed_states(slots)
    return DashboardApp(ScriptedBatch(config, script, clock=lambda: NOW), clock=lambda: NOW)


async def drained(pilot) -> None:
    """Wait until the worker has applied the whole script, then draw once."""
    app = pilot.app
    for _ in range(200):
        await pilot.pause()
        if app.model.events_seen >= app.batch.emitted:
            break
    app.refresh_dashboard()
    await pilot.pause()


@pytest.mark.parametrize("slots, size", [
    pytest.param(8, (80, 24), id="8-tiles-80x24"),
    pytest.param(32, (80, 24), id="32-tiles-80x24"),
    pytest.param(8, (160, 48), id="8-tiles-160x48"),
    pytest.param(32, (160, 48), id="32-tiles-160x48"),
])
def test_mixed_states(snap_compare, slots, size):
    assert snap_compare(scene(slots), terminal_size=size, run_before=drained)


def test_details_of_a_failed_board(snap_compare):
    """S3 failed in erase: its full cause, diagnostics and stage timeline beside the grid."""
    assert snap_compare(scene(8), terminal_size=(120, 36), run_before=drained, press=["right", "right", "enter"])


def test_quit_with_boards_in_flight_asks_first(snap_compare):
    assert snap_compare(scene(8), terminal_size=(80, 24), run_before=drained, press=["q"])


def test_failures_only_log(snap_compare):
    assert snap_compare(scene(32), terminal_size=(100, 30), run_before=drained, press=["f"])
