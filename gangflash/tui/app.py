"""The dashboard app: header, tile grid, detail pane, log and footer around one running batch.

Data flow, one way:

* one worker (:meth:`DashboardApp._drive`) runs ``batch.run()`` and, beside it, drains the batch's
  event stream into the :class:`~gangflash.tui.model.DashboardModel` as fast as events come —
  applying an event costs microseconds and never touches a widget;
* a 50 ms timer (:meth:`DashboardApp.refresh_dashboard`) hands the widgets new views for what
  changed, so the screen is redrawn at most 20 times a second however many events arrive;
* keys call the batch's controls (retry, pause, auto, restart, stop) and note them in the log.

Quitting while boards are in flight asks first, then calls ``batch.request_stop()`` and waits for
``run()`` to return: the orchestrator brings boards in flight to a safe point (or aborts and
journals them), the dashboard never cancels them itself. Everything works from the keyboard
alone (SSH, tmux); the mouse can select tiles and scroll.

:func:`run_dashboard` is what ``gangflash run`` calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

import anyio
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Footer

from gangflash.orchestrator.config_schema import BatchConfig
from gangflash.orchestrator.events import Event, EventBus

from .confirm import ConfirmScreen
from .detail import BoardDetail
from .grid import TileGrid
from .header import BatchHeader
from .log import BatchLog
from .model import DashboardModel, Status

REPAINT_INTERVAL_S = 0.05      # at most 20 redraws a second
BUSY_TILES = 8                 # more tiles than this changed: redraw only every BUSY_EVERY-th tick
BUSY_EVERY = 4                 # (5 Hz: each redraw costs about the same however many tiles changed)
DRAIN_BATCH = 2000             # events applied per turn of the loop before letting the UI run
RETRYABLE = (Status.FAILED, Status.PROBE_FAULT, Status.ABORTED)


class BatchControl(Protocol):
    """What the dashboard needs of a batch (``gangflash.orchestrator.scheduler.Batch`` is one)."""

    events: EventBus
    config: BatchConfig
    in_flight: int

    async def run(self) -> Any: ...                       # returns a summary: passed, failed, aborted
    def request_retry(self, slots: list[str] | None = None) -> None: ...
    def set_paused(self, paused: bool) -> None: ...
    def set_auto(self, auto: bool) -> None: ...
    def request_restart(self) -> None: ...
    def request_stop(self) -> None: ...


def summary_exit_code(summary: Any) -> int:
    """0 when every board passed, 1 otherwise (also when the batch never ran)."""
    if summary is None:
        return 1
    code = getattr(summary, "exit_code", None)
    if code is not None:
        return int(code)
    return 0 if summary.failed == 0 and summary.aborted == 0 else 1


def _expected_chip(config: BatchConfig) -> str:
    target = config.target
    return target.chip or (f"STM32{target.family}" if target.family else "any")


class DashboardApp(App[int]):
    """The live view of one batch. ``clock`` defaults to the event loop's (the events' clock);
    tests and screenshots pass a fixed one. With ``autostart`` off, ``s`` starts the batch."""

    CSS_PATH = "dashboard.tcss"
    TITLE = "gangflash"
    ENABLE_COMMAND_PALETTE = False
    VERTICAL_BREAKPOINTS = [(0, "-short"), (40, "-tall")]
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]

    BINDINGS = [
        Binding("s", "start", "start"),
        Binding("s", "restart", "restart"),
        Binding("r", "retry", "retry"),
        Binding("a", "toggle_auto", "auto"),
        Binding("p", "pause", "pause"),
        Binding("p", "resume", "resume"),
        Binding("enter", "toggle_details", "details", key_display="⏎"),
        Binding("escape", "close_details", "close", show=False),
        Binding("f", "toggle_filter", "failures"),
        Binding("q", "quit", "quit"),
        Binding("ctrl+q", "quit", "quit", show=False, priority=True),
    ]

    def __init__(self, batch: BatchControl, *, clock: Callable[[], float] | None = None,
                 autostart: bool = True, repaint_interval: float = REPAINT_INTERVAL_S) -> None:
        super().__init__()
        self.batch = batch
        self.model = DashboardModel()
        self.autostart = autostart
        self.repaint_interval = repaint_interval
        self.summary: Any = None
        self.error: BaseException | None = None
        self.batch_running = False        # run() is active
        self.stopping = False             # request_stop() was called for quitting
        self.paused = False
        config = batch.config
        self.auto = bool(getattr(batch, "auto", config.mode == "auto"))
        self._clock = clock
        self._layout_version = -1
        self._second: int | None = None
        self._tick = 0
        self._deferred: set[str] = set()          # changed tiles waiting for the next busy-time redraw
        self.model.configure(
            batch=config.name, firmware=str(config.firmware.path), sha256=config.firmware.sha256,
            chip=_expected_chip(config), mode="auto" if self.auto else "batch",
            slots=[(slot.label, slot.serial or slot.port or "") for slot in config.slots])
        self.header = BatchHeader(id="header")
        self.grid = TileGrid(id="grid")
        self.detail = BoardDetail(id="detail")
        self.log_pane = BatchLog(id="log")

    # --- layout ----------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield self.header
        with Horizontal(id="body"):
            yield self.grid
            yield self.detail
        yield self.log_pane
        yield Footer()

    def on_mount(self) -> None:
        self.detail.display = False
        self.grid.empty_text = ("Waiting for the batch to start…" if self.autostart
                                else "Press s to start the batch.")
        self.grid.focus()
        self.refresh_dashboard()
        self.set_interval(self.repaint_interval, self._on_timer)
        if self.autostart:
            self.start_batch()

    def now(self) -> float:
        """The event clock: the loop's time unless a clock was injected."""
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    # --- the batch -------------------------------------------------------------------------------

    def start_batch(self) -> None:
        """Run the batch in the one worker that also drains its events."""
        if self.batch_running:
            return
        self.batch_running = True
        self.refresh_bindings()
        self.run_worker(self._drive(), name="batch", group="batch", exclusive=True, exit_on_error=True)

    async def _drive(self) -> None:
        error: Exception | None = None
        stream = self.batch.events.subscribe()
        try:
            with stream:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._drain, stream)
                    try:
                        self.summary = await self.batch.run()
                    except Exception as exc:             # handed to run_dashboard's caller, unwrapped
                        error = exc
                    tg.cancel_scope.cancel()
                self._drain_buffered(stream)
        finally:
            self.batch_running = False
            self.refresh_bindings()
        if error is not None:
            self.error = error
            self.exit(1, return_code=1)
        elif self.stopping:
            self.exit(self.exit_code, return_code=self.exit_code)
        else:
            self.refresh_dashboard()

    async def _drain(self, stream) -> None:
        apply = self.model.apply
        async for event in stream:
            apply(event)
            for _ in range(DRAIN_BATCH):                  # take what is queued without yielding
                try:
                    apply(stream.receive_nowait())
                except anyio.WouldBlock:
                    break
                except anyio.EndOfStream:
                    return

    def _drain_buffered(self, stream) -> None:
        while True:
            try:
                self.model.apply(stream.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                return

    def apply_events(self, events: list[Event]) -> None:
        """Feed events to the model directly (scripted screenshots; the worker does this live)."""
        self.model.apply_all(events)

    @property
    def exit_code(self) -> int:
        """0 if the batch ran and every board passed, else 1."""
        return summary_exit_code(self.summary)

    # --- drawing ---------------------------------------------------------------------------------

    def _on_timer(self) -> None:
        self.refresh_dashboard(throttle=True)

    def refresh_dashboard(self, *, throttle: bool = False) -> None:
        """Hand the widgets views for whatever changed (the 50 ms timer calls this).

        With ``throttle`` (the timer) and more than :data:`BUSY_TILES` tiles changed, the redraw
        waits for every :data:`BUSY_EVERY`-th tick (5 Hz). Textual redraws every widget inside
        the box around all changed regions, so a frame with many scattered tiles costs nearly a
        full-screen redraw: at 64 boards, 20 such frames a second took most of a core, 5 take a
        fraction (``benchmarks/tui_cpu.py``). A few boards still redraw at 20 Hz."""
        model, now = self.model, self.now()
        if model.layout_version != self._layout_version:
            self._layout_version = model.layout_version
            self.grid.set_slots(model.slots)
            self._deferred.clear()
        changed = model.take_changed() | self._deferred
        self._tick += 1
        second = int(now)
        ticked = second != self._second
        if ticked:                                        # elapsed times and stale rates move on
            self._second = second
            changed.update(slot for slot, board in model.boards.items() if board.status is Status.RUNNING)
        if throttle and len(changed) > BUSY_TILES and self._tick % BUSY_EVERY:
            self._deferred = changed                      # busy: wait for the next 5 Hz tick
            return
        self._deferred = set()
        for slot in changed:
            self.grid.show(slot, model.tile_view(slot, now))
        if model.take_header_dirty() or changed or ticked:
            self.header.view = model.header_view(now)
        lines = model.take_log()
        if lines:
            self.log_pane.add((model.log_offset(entry), entry) for entry in lines)
        self._refresh_detail(now)

    def _refresh_detail(self, now: float) -> None:
        if self.detail.display:
            slot = self.grid.selected
            self.detail.view = self.model.detail_view(slot, now) if slot in self.model.boards else None

    @on(TileGrid.Selected)
    def _selected(self) -> None:
        self._refresh_detail(self.now())

    @on(TileGrid.Activated)
    def _activated(self) -> None:
        self.action_toggle_details()

    # --- keys ------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide the binding that does not apply (start vs restart, pause vs resume); dim batch
        controls while stopping."""
        if action == "start":
            return not self.batch_running and not self.stopping
        if action == "restart":
            return None if self.stopping else self.batch_running
        if action == "pause":
            return not self.paused and (None if self.stopping else True)
        if action == "resume":
            return self.paused and (None if self.stopping else True)
        if action in ("retry", "toggle_auto"):
            return None if self.stopping else True
        return True

    def _note(self, text: str) -> None:
        self.model.note(text, self.now())
        self.refresh_dashboard()

    def action_start(self) -> None:
        self.start_batch()

    def action_restart(self) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes and self.batch_running and not self.stopping:
                self.batch.request_restart()
                self.model.new_round()
                self._note("restart requested: every board is programmed again")
        self.push_screen(ConfirmScreen(
            "Start the batch again?",
            "Every board is programmed again, passed ones too. Boards in flight finish first.",
            yes="Restart", no="Cancel"), confirmed)

    def action_retry(self) -> None:
        failed = [slot for slot, board in self.model.boards.items() if board.status in RETRYABLE]
        if not self.batch_running:
            self.notify("The batch is not running.", severity="warning")
        elif not failed:
            self.notify("No failed boards to retry.")
        else:
            self.batch.request_retry(None)
            self._note(f"retry requested for {len(failed)} board(s): {', '.join(failed)}")

    def action_toggle_auto(self) -> None:
        self.auto = not self.auto
        self.batch.set_auto(self.auto)
        self.model.mode = "auto" if self.auto else "batch"
        self._note("auto mode on: each board is programmed as it is placed" if self.auto
                   else "auto mode off: batch mode")

    def action_pause(self) -> None:
        self._set_paused(True)

    def action_resume(self) -> None:
        self._set_paused(False)

    def _set_paused(self, paused: bool) -> None:
        self.paused = self.model.paused = paused
        self.batch.set_paused(paused)
        self.refresh_bindings()
        self._note("paused: no new boards start; boards in flight finish" if paused else "resumed")

    def action_toggle_details(self) -> None:
        self.detail.display = not self.detail.display
        self._refresh_detail(self.now())

    def action_close_details(self) -> None:
        self.detail.display = False

    def action_toggle_filter(self) -> None:
        log = self.log_pane
        log.failures_only = not log.failures_only
        model = self.model
        log.replace((model.log_offset(entry), entry) for entry in model.log_entries(failures_only=log.failures_only))

    async def action_quit(self) -> None:
        """Quit; while the batch runs, stop it safely first (asking when boards are in flight)."""
        if not self.batch_running:
            self.exit(self.exit_code, return_code=self.exit_code)
            return
        if self.stopping:
            self.notify(f"Stopping: {self.batch.in_flight} board(s) in flight are brought to a safe point.")
            return
        in_flight = self.batch.in_flight
        if not in_flight:
            self._stop()
            return

        def confirmed(yes: bool | None) -> None:
            if yes and self.batch_running and not self.stopping:
                self._stop()
        self.push_screen(ConfirmScreen(
            f"{in_flight} board(s) are being programmed. Stop and quit?",
            "No new boards start. Boards in flight are brought to a safe point; any still running "
            "after the grace period are aborted (left locked and halted) and journaled ABORTED.",
            yes="Stop and quit", no="Keep running"), confirmed)

    def _stop(self) -> None:
        self.stopping = self.model.stopping = True
        self.batch.request_stop()
        self.refresh_bindings()
        self._note(f"stop requested ({self.batch.in_flight} board(s) in flight): quitting when they are safe")


def run_dashboard(batch: BatchControl, *, headless: bool = False, **options: Any) -> int:
    """Show the dashboard for ``batch`` until the technician quits; the exit status: 0 when every
    board passed, 1 when any failed or was aborted (or the batch never ran). An exception from
    ``batch.run()`` (``BatchError``...) is raised here once the screen is restored. ``options``
    go to :class:`DashboardApp` (``clock``, ``autostart``); ``headless`` runs without a terminal."""
    loop = options.pop("loop", None)
    app = DashboardApp(batch, **options)
    result = app.run(headless=headless, loop=loop)
    if app.error is not None:
        raise app.error
    return result if isinstance(result, int) else app.exit_code
