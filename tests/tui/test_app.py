"""The dashboard driven by Pilot against a scripted batch: keys reach the batch, tiles follow events."""

from __future__ import annotations

import pytest
from textual import events

from gangflash.orchestrator import events as ev
from gangflash.tui.confirm import ConfirmScreen
from gangflash.tui.model import Status

from .helpers import make_app, run_board, settle, tile_text

pytestmark = pytest.mark.asyncio


async def test_a_tile_moves_through_its_stages_to_pass():
    app, batch, clock = make_app(4)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        assert "IDLE" in tile_text(app, "S1")
        batch.play(run_board("S1", 1.0))
        clock.now = 1.5
        await settle(pilot, app)
        assert "RUNNING connect" in tile_text(app, "S1")
        batch.play([ev.BoardIdentified("S1", "STM32F103C8", 0x20036410, "aa" * 12, 65536, at=1.6),
                    ev.StageStarted("S1", "erase", at=1.7), ev.StageProgress("S1", "erase", 4, 16, at=1.8)])
        clock.now = 1.8
        await settle(pilot, app)
        text = tile_text(app, "S1")
        assert "F103C8" in text and "RUNNING erase" in text and "4/16" in text
        batch.play([ev.StageFinished("S1", "erase", 0.4, at=2.1), ev.StageStarted("S1", "program", at=2.1)]
                   + [ev.StageProgress("S1", "program", 256 * i, 16384, at=2.1 + 0.01 * i) for i in range(1, 33)])
        clock.now = 2.42
        await settle(pilot, app)
        text = tile_text(app, "S1")
        assert "RUNNING program" in text and "8.0/16K" in text and "25KB/s" in text and "0:01" in text
        batch.play([ev.StageFinished("S1", "program", 0.64, at=2.74), ev.BoardPassed("S1", 1.8, "SN-1", at=2.8)])
        clock.now = 3.0
        await settle(pilot, app)
        text = tile_text(app, "S1")
        assert "PASS" in text and "SN SN-1" in text
        assert "1 passed" in app.header.counts.render().plain


async def test_a_failing_board_shows_its_cause_on_the_tile_and_in_full_in_details():
    app, batch, clock = make_app(4)
    cause = "write-protected: pages 0-3 are locked by the option bytes (WRP)"
    async with app.run_test(size=(80, 24)) as pilot:
        batch.play(run_board("S2", 1.0) + [ev.StageStarted("S2", "erase", at=1.1),
                                            ev.BoardFailed("S2", "erase", cause, "FLASH_SR=0x14 (WRPRTERR)", at=1.3)])
        clock.now = 2.0
        await settle(pilot, app)
        text = tile_text(app, "S2")
        assert "FAIL erase" in text and "write-protected" in text
        await pilot.press("right", "enter")
        await settle(pilot, app)
        assert app.detail.display and app.grid.selected == "S2"
        detail = str(app.detail.body.render())
        assert cause in detail.replace("\n", " ") or all(word in detail for word in cause.split())
        assert "FLASH_SR=0x14 (WRPRTERR)" in detail and "Cause (in erase)" in detail
        await pilot.press("escape")
        assert not app.detail.display


async def test_r_retries_failed_boards_and_the_tile_runs_again():
    app, batch, clock = make_app(4)
    async with app.run_test(size=(80, 24)) as pilot:
        batch.play(run_board("S3", 1.0) + [ev.BoardFailed("S3", "verify", "CRC differs", at=1.5)])
        clock.now = 2.0
        await settle(pilot, app)
        assert "FAIL" in tile_text(app, "S3")
        await pilot.press("r")
        await settle(pilot, app)
        assert ("request_retry", None) in batch.calls
        text = tile_text(app, "S3")
        assert "RUNNING" in text and "try 2" in text
        assert "retry requested for 1 board(s): S3" in [entry.text for entry in app.model.log][-2]


async def test_r_with_nothing_failed_does_not_call_the_batch():
    app, batch, _ = make_app(2)
    async with app.run_test() as pilot:
        await settle(pilot, app)
        await pilot.press("r")
        assert not [call for call in batch.calls if call[0] == "request_retry"]


async def test_quitting_mid_batch_asks_first_then_stops_safely():
    app, batch, clock = make_app(4)
    async with app.run_test(size=(80, 24)) as pilot:
        batch.play(run_board("S1", 1.0))
        await settle(pilot, app)
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert "1 board(s) are being programmed" in app.screen.title_text
        await pilot.press("n")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert ("request_stop", None) not in batch.calls and app.is_running
        await pilot.press("q")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
    assert ("request_stop", None) in batch.calls
    assert app.return_value == 1                         # the board in flight was aborted
    assert app.model.boards["S1"].status is Status.ABORTED


async def test_quitting_with_no_board_in_flight_stops_without_asking():
    app, batch, _ = make_app(2)
    async with app.run_test() as pilot:
        batch.play(run_board("S1", 1.0) + [ev.BoardPassed("S1", 1.0, at=2.0)]
                   + run_board("S2", 1.0) + [ev.BoardPassed("S2", 1.0, at=2.0)])
        await settle(pilot, app)
        await pilot.press("q")
        await pilot.pause()
        await pilot.pause()
    assert ("request_stop", None) in batch.calls
    assert app.return_value == 0


async def test_pause_and_auto_keys_reach_the_batch_and_show_in_the_header():
    app, batch, _ = make_app(2)
    async with app.run_test(size=(100, 24)) as pilot:
        await settle(pilot, app)
        await pilot.press("p")
        await settle(pilot, app)
        assert ("set_paused", True) in batch.calls
        assert "PAUSED" in app.header.identity.render().plain
        assert "p" in app.screen.active_bindings and app.screen.active_bindings["p"].binding.action == "resume"
        await pilot.press("p")
        assert batch.calls[-1] == ("set_paused", False)
        await pilot.press("a")
        await settle(pilot, app)
        assert batch.calls[-1] == ("set_auto", True)
        assert "AUTO" in app.header.identity.render().plain


async def test_f_filters_the_log_to_failures():
    app, batch, _ = make_app(4)
    async with app.run_test(size=(100, 30)) as pilot:
        batch.play(run_board("S1", 1.0) + [ev.BoardPassed("S1", 1.0, at=2.0)]
                   + run_board("S2", 1.0) + [ev.BoardFailed("S2", "erase", "write-protected", at=2.0)])
        await settle(pilot, app)
        everything = app.log_pane.line_count
        await pilot.press("f")
        await pilot.pause()
        lines = app.log_pane.text_lines()
        assert app.log_pane.failures_only and len(lines) < everything
        assert len(lines) == 1 and "FAIL in erase: write-protected" in lines[0]
        await pilot.press("f")
        await pilot.pause()
        assert app.log_pane.line_count == everything


async def test_the_log_follows_the_newest_line_and_the_wheel_scrolls_back():
    app, batch, _ = make_app(2)
    async with app.run_test(size=(100, 24)) as pilot:
        for n in range(30):
            batch.play([ev.BoardNote("S1", f"note {n}", at=1.0 + n)])
        await settle(pilot, app)
        log = app.log_pane
        shown = [log.render_line(y).text for y in range(log.size.height)]
        assert "note 29" in shown[-1]
        log.post_message(events.MouseScrollUp(log, 1, 1, 0, -1, 0, False, False, False))
        await pilot.pause()
        assert log.back == 3 and "lines back" in log.border_title
        assert "note 26" in log.render_line(log.size.height - 1).text
        log.post_message(events.MouseScrollDown(log, 1, 1, 0, 1, 0, False, False, False))
        await pilot.pause()
        assert log.back == 0


async def test_arrow_keys_move_along_rows_and_columns():
    app, _, _ = make_app(8)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        assert app.grid.columns == 3 and app.grid.selected == "S1"
        await pilot.press("down")
        assert app.grid.selected == "S4"
        await pilot.press("right", "right")
        assert app.grid.selected == "S6"
        await pilot.press("end")
        assert app.grid.selected == "S8"
        await pilot.press("up", "left")
        assert app.grid.selected == "S4"


async def test_clicking_a_tile_selects_it_and_clicking_again_opens_details():
    app, _, _ = make_app(4)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        await pilot.click(app.grid.tiles["S3"])
        assert app.grid.selected == "S3" and not app.detail.display
        await pilot.click(app.grid.tiles["S3"])
        await pilot.pause()
        assert app.detail.display


async def test_the_grid_reflows_to_the_terminal_width():
    app, _, _ = make_app(32)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, app)
        assert app.grid.columns == 6
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert app.grid.columns == 3


async def test_events_apply_at_once_but_tiles_redraw_on_the_timer():
    app, batch, clock = make_app(2, repaint_interval=3600.0)
    async with app.run_test() as pilot:
        await settle(pilot, app)
        batch.play(run_board("S1", 1.0) + [ev.StageStarted("S1", "program", at=1.1)]
                   + [ev.StageProgress("S1", "program", 16 * i, 16384, at=1.1 + 0.001 * i) for i in range(1, 1001)])
        for _ in range(20):
            await pilot.pause()
        assert app.model.events_seen == batch.emitted                 # the model has every event...
        assert app.grid.tiles["S1"].view.status is Status.IDLE        # ...the screen waits for the timer
        app.refresh_dashboard()
        assert app.grid.tiles["S1"].view.done == 16000


async def test_s_starts_a_batch_that_was_not_started():
    app, batch, _ = make_app(2, autostart=False)
    async with app.run_test() as pilot:
        await pilot.pause()
        assert batch.calls == [] and "Press s" in str(app.grid._placeholder.render())
        assert app.screen.active_bindings["s"].binding.action == "start"
        await pilot.press("s")
        await settle(pilot, app)
        assert batch.calls == [("run", None)]
        assert app.screen.active_bindings["s"].binding.action == "restart"


async def test_s_while_running_asks_then_requests_a_restart():
    app, batch, _ = make_app(2)
    async with app.run_test() as pilot:
        await settle(pilot, app)
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await pilot.pause()
        assert ("request_restart", None) in batch.calls


async def test_when_the_batch_returns_the_dashboard_stays_and_q_exits_with_its_code():
    app, batch, _ = make_app(1)
    async with app.run_test() as pilot:
        batch.play(run_board("S1", 1.0) + [ev.BoardPassed("S1", 1.0, at=2.0)])
        batch.request_stop()                                  # the batch ends by itself (not by q)
        await settle(pilot, app)
        await pilot.pause()
        assert app.is_running and not app.batch_running
        assert "FINISHED" in app.header.identity.render().plain
        await pilot.press("q")
        await pilot.pause()
    assert app.return_value == 0
