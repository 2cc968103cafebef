"""Driving the dashboard in tests: a settable clock, waiting for the worker, reading tiles."""

from __future__ import annotations

from textual.pilot import Pilot

from gangflash.orchestrator import events as ev
from gangflash.tui.app import DashboardApp
from gangflash.tui.scripted import ScriptedBatch, scripted_config


class FakeClock:
    """The event clock, set by the test (``clock.now = 12.5``)."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_app(slots: int = 4, script: list[ev.Event] | None = None, *, clock: FakeClock | None = None,
             **options) -> tuple[DashboardApp, ScriptedBatch, FakeClock]:
    clock = clock or FakeClock(1.0)
    config = scripted_config(slots)
    if script is None:
        script = [ev.BatchStarted(config.name, tuple(s.label for s in config.slots), config.firmware.path.name,
                                  config.firmware.sha256, "STM32F103C8", "batch", at=0.0)]
    batch = ScriptedBatch(config, script, clock=clock)
    return DashboardApp(batch, clock=clock, **options), batch, clock


async def settle(pilot: Pilot, app: DashboardApp) -> None:
    """Let the worker drain everything published so far, then draw (as the 50 ms timer would)."""
    for _ in range(50):
        await pilot.pause()
        if app.model.events_seen >= app.batch.emitted:
            break
    app.refresh_dashboard()
    await pilot.pause()


def tile_text(app: DashboardApp, slot: str) -> str:
    """The lines of a tile as the technician reads them (edge dropped, runs of spaces as one)."""
    return "\n".join(" ".join(line.lstrip("▌").split()) for line in app.grid.tiles[slot].lines())


def run_board(slot: str, at: float, *, attempt: int = 1) -> list[ev.Event]:
    return [ev.BoardStarted(slot, f"066DFF{slot}", attempt, 7, at=at), ev.StageStarted(slot, "connect", at=at)]
