"""The dashboard model alone: events in, state, counts, yield and rates out (no Textual)."""

from __future__ import annotations

import pytest

from gangflash.orchestrator import events as ev
from gangflash.tui.model import DashboardModel, Status
from gangflash.tui.scripted import NOW, T0, mixed_states

SLOTS = ("S1", "S2", "S3", "S4")


def started(at: float = 0.0, slots=SLOTS, mode: str = "batch") -> ev.BatchStarted:
    return ev.BatchStarted("line", tuple(slots), "/fw/app.bin", "ab" * 32, "STM32F103C8", mode, at=at)


def board_run(slot: str, at: float, *, attempt: int = 1) -> list[ev.Event]:
    return [ev.BoardStarted(slot, f"PROBE-{slot}", attempt, 10, at=at),
            ev.StageStarted(slot, "connect", at=at),
            ev.StageFinished(slot, "connect", 0.1, at=at + 0.1)]


def model_with(*events: ev.Event) -> DashboardModel:
    model = DashboardModel()
    model.apply_all(events)
    return model


def test_batch_started_lists_every_slot_idle():
    model = model_with(started())
    assert model.slots == list(SLOTS)
    assert {board.status for board in model.boards.values()} == {Status.IDLE}
    view = model.header_view(5.0)
    assert (view.batch, view.firmware, view.sha256, view.chip, view.mode) == (
        "line", "app.bin", "abababab", "STM32F103C8", "batch")
    assert view.elapsed == 5 and view.run_state == "RUNNING"


def test_a_board_moves_through_its_stages_to_pass():
    model = model_with(started(), *board_run("S1", 1.0))
    assert model.boards["S1"].status is Status.RUNNING
    model.apply(ev.BoardIdentified("S1", "STM32F103C8", 0x20036410, "00112233445566778899aabb", 65536, at=1.2))
    model.apply(ev.StageStarted("S1", "erase", at=1.3))
    assert model.tile_view("S1", 1.35).stage == "erase"
    model.apply(ev.StageProgress("S1", "erase", 3, 16, at=1.4))
    tile = model.tile_view("S1", 1.4)
    assert (tile.done, tile.total, tile.in_bytes, tile.rate) == (3, 16, False, None)
    model.apply(ev.StageFinished("S1", "erase", 0.5, at=1.8))
    model.apply(ev.StageStarted("S1", "program", at=1.8))
    model.apply(ev.StageProgress("S1", "program", 4096, 16384, at=2.0))
    tile = model.tile_view("S1", 2.0)
    assert (tile.stage, tile.done, tile.total, tile.in_bytes, tile.chip) == ("program", 4096, 16384, True, "STM32F103C8")
    model.apply(ev.StageFinished("S1", "program", 0.5, at=2.3))
    model.apply(ev.BoardPassed("S1", 1.5, "SN-00042", at=2.5))
    tile = model.tile_view("S1", 10.0)
    assert tile.status is Status.PASSED and tile.message == "SN SN-00042"
    assert tile.elapsed == 1                          # frozen at the pass, not still counting
    assert tile.rate == pytest.approx(32768, abs=60)  # average of the program stage: 16 KiB in 0.5 s
    assert model.passed == 1 and model.count(Status.RUNNING) == 0
    detail = model.detail_view("S1", 10.0)
    assert [(s.name, s.state) for s in detail.stages] == [
        ("connect", "done"), ("erase", "done"), ("program", "done")]
    assert detail.uid == "00112233445566778899AABB" and detail.serial_number == "SN-00042"


def test_rate_is_bytes_over_event_time_in_the_last_second():
    model = model_with(started(), *board_run("S1", 0.0), ev.StageStarted("S1", "program", at=1.0))
    for step in range(1, 201):                       # 10 ms apart, 256 bytes each: 25.6 KB/s
        model.apply(ev.StageProgress("S1", "program", 256 * step, 65536, at=1.0 + step * 0.01))
    board = model.boards["S1"]
    assert board.rate(3.0) == pytest.approx(25600, rel=0.02)
    assert len(board.samples) <= 102                  # only about one second of samples is kept
    assert model.tile_view("S1", 3.0).rate == pytest.approx(25600, abs=52)


def test_rate_follows_a_slowdown_and_drops_when_progress_stalls():
    model = model_with(started(), *board_run("S1", 0.0), ev.StageStarted("S1", "program", at=1.0))
    done = 0
    for step in range(1, 101):                       # 1 s fast: 51.2 KB/s
        done += 512
        model.apply(ev.StageProgress("S1", "program", done, 1 << 20, at=1.0 + step * 0.01))
    for step in range(1, 201):                       # 2 s slow: 12.8 KB/s
        done += 128
        model.apply(ev.StageProgress("S1", "program", done, 1 << 20, at=2.0 + step * 0.01))
    assert model.boards["S1"].rate(4.0) == pytest.approx(12800, rel=0.03)
    assert model.boards["S1"].rate(5.5) is None       # nothing for 1.5 s: unknown, not a stale number


def test_failure_keeps_cause_diagnostics_and_the_failed_stage():
    model = model_with(started(), *board_run("S2", 0.0), ev.StageStarted("S2", "erase", at=0.2),
                       ev.BoardFailed("S2", "erase", "write-protected: pages 0-3", "FLASH_SR=0x14 (WRPRTERR)",
                                      at=0.9))
    tile = model.tile_view("S2", 5.0)
    assert (tile.status, tile.stage, tile.message) == (Status.FAILED, "erase", "write-protected: pages 0-3")
    detail = model.detail_view("S2", 5.0)
    assert detail.diagnostics == "FLASH_SR=0x14 (WRPRTERR)" and detail.failed_stage == "erase"
    assert [(s.name, s.state) for s in detail.stages][-1] == ("erase", "failed")
    assert detail.stages[-1].seconds == pytest.approx(0.7)
    assert model.failed == 1 and model.yield_ratio == 0.0
    assert [entry.kind for entry in model.log_entries(failures_only=True)] == ["fail"]


def test_will_retry_is_retrying_not_yet_failed():
    model = model_with(started(), *board_run("S1", 0.0),
                       ev.BoardFailed("S1", "program", "flash busy", will_retry=True, at=1.0))
    assert model.boards["S1"].status is Status.RETRYING
    assert model.failed == 0
    model.apply_all(board_run("S1", 1.5, attempt=2))
    assert model.tile_view("S1", 1.6).attempt == 2
    assert model.detail_view("S1", 1.6).history[0].status is Status.RETRYING


def test_probe_fault_is_its_own_state_and_left_out_of_the_yield():
    model = model_with(started(), *board_run("S1", 0.0), *board_run("S2", 0.0),
                       ev.BoardPassed("S1", 1.0, at=1.0),
                       ev.BoardFailed("S2", "connect", "probe does not answer", probe_fault=True, at=2.0))
    assert model.boards["S2"].status is Status.PROBE_FAULT
    assert (model.passed, model.failed, model.probe_faults) == (1, 0, 1)
    assert model.yield_ratio == 1.0


def test_a_retried_board_counts_once_with_its_latest_outcome():
    model = model_with(started(), *board_run("S1", 0.0), ev.BoardFailed("S1", "erase", "x", at=1.0))
    assert (model.passed, model.failed) == (0, 1)
    model.apply_all([*board_run("S1", 5.0, attempt=2), ev.BoardPassed("S1", 1.0, at=6.0)])
    assert (model.passed, model.failed) == (1, 0)
    assert model.yield_ratio == 1.0


def test_a_new_board_in_auto_mode_adds_to_the_counts():
    model = model_with(started(mode="auto"), *board_run("S1", 0.0), ev.BoardPassed("S1", 1.0, at=1.0),
                       ev.BoardWaiting("S1", "PROBE-S1", at=2.0))
    assert model.boards["S1"].status is Status.WAITING
    assert model.tile_view("S1", 3.0).elapsed is None
    model.apply_all([*board_run("S1", 4.0), ev.BoardFailed("S1", "erase", "x", at=5.0)])
    assert (model.passed, model.failed) == (1, 1)


def test_new_round_counts_boards_again_after_a_restart():
    model = model_with(started(), *board_run("S1", 0.0), ev.BoardPassed("S1", 1.0, at=1.0))
    model.new_round()
    model.apply_all([*board_run("S1", 4.0), ev.BoardPassed("S1", 1.0, at=5.0)])
    assert model.passed == 2


def test_boards_per_hour_counts_finished_boards_over_batch_time():
    model = model_with(started(at=100.0), *board_run("S1", 100.0), *board_run("S2", 100.0),
                       ev.BoardPassed("S1", 1.0, at=110.0), ev.BoardFailed("S2", "erase", "x", at=120.0))
    assert model.per_hour(100.0 + 360.0) == pytest.approx(20.0)      # 2 boards in 6 minutes
    assert model.header_view(460.0).per_hour == 20.0
    assert DashboardModel().per_hour(0.0) is None


def test_elapsed_stops_when_the_batch_finishes():
    model = model_with(started(at=10.0), ev.BatchFinished(0, 0, 0, at=70.0))
    assert model.elapsed(500.0) == 60.0
    assert model.run_state() == "FINISHED"


def test_run_state_reports_paused_done_and_stopping():
    model = model_with(started(slots=("S1",)), *board_run("S1", 0.0))
    model.paused = True
    assert model.run_state() == "PAUSED"
    model.paused = False
    model.apply(ev.BoardPassed("S1", 1.0, at=1.0))
    assert model.run_state() == "DONE"
    model.stopping = True
    assert model.run_state() == "STOPPING"


def test_aborted_board_shows_the_reason():
    model = model_with(started(), *board_run("S3", 0.0), ev.StageStarted("S3", "program", at=0.5),
                       ev.BoardAborted("S3", "stopped during program", at=0.7))
    tile = model.tile_view("S3", 1.0)
    assert (tile.status, tile.message) == (Status.ABORTED, "stopped during program")
    assert model.aborted == 1
    assert model.detail_view("S3", 1.0).stages[-1].state == "aborted"


def test_serial_number_from_the_pipeline_note_before_the_pass():
    model = model_with(started(), *board_run("S1", 0.0),
                       ev.BoardNote("S1", "serial number SN-00007 at 0x0800FC00", at=0.3),
                       ev.BoardFailed("S1", "verify", "CRC differs", at=0.9))
    assert model.detail_view("S1", 1.0).serial_number == "SN-00007"


def test_equal_views_when_nothing_visible_changed():
    model = model_with(started(), *board_run("S1", 0.0), ev.StageStarted("S1", "program", at=0.5),
                       ev.StageProgress("S1", "program", 1024, 16384, at=0.6))
    assert model.tile_view("S1", 0.61) == model.tile_view("S1", 0.62)   # same second, same picture
    assert model.header_view(0.61) == model.header_view(0.62)


def test_only_touched_slots_are_reported_changed():
    model = model_with(started())
    model.take_changed()
    model.apply_all(board_run("S3", 0.0))
    assert model.take_changed() == {"S3"}
    assert model.take_changed() == set()


def test_log_entries_are_offsets_from_the_batch_start_and_filterable():
    model = model_with(started(at=50.0), *board_run("S1", 60.0), ev.BoardFailed("S1", "erase", "x", at=61.0))
    entries = list(model.log_entries())
    assert [entry.kind for entry in entries] == ["batch", "start", "fail"]
    assert model.log_offset(entries[-1]) == 11.0
    assert len(model.take_log()) == 3 and model.take_log() == []


def test_mixed_scene_has_every_state():
    config, script = mixed_states(8)
    model = model_with(*script)
    states = {model.tile_view(slot, NOW).status for slot in model.slots}
    assert states == {Status.PASSED, Status.RUNNING, Status.FAILED, Status.WAITING, Status.PROBE_FAULT,
                      Status.RETRYING}
    assert model.header_view(NOW).elapsed == int(NOW - T0)
    running = [model.tile_view(slot, NOW) for slot in model.slots if model.boards[slot].status is Status.RUNNING]
    assert all(view.rate and view.done for view in running)
