"""Tile lines alone (no screen): always the state word, always exactly the tile's width."""

from __future__ import annotations

import pytest
from rich.cells import cell_len

from gangflash.tui.detail import describe
from gangflash.tui.model import DetailView, StageView, Status, TileView
from gangflash.tui.tile import tile_lines


def text(line) -> str:
    return "".join(piece for piece, _ in line)


VIEWS = [
    TileView("S1", "066DFF485457725187092638", "STM32F103C8", 1, Status.RUNNING, "program", 7, 9830, 16384, True,
             24576.0),
    TileView("S2", "066DFF48", "STM32F103C8", 2, Status.FAILED, "erase", 3,
             message="write-protected: pages 0-3 are locked by the option bytes (WRP)"),
    TileView("S3", "066DFF48", "", 1, Status.PROBE_FAULT, "connect", 2, message="probe 066DFF48 does not answer"),
    TileView("S4", "066DFF48", status=Status.WAITING),
    TileView("S5", "066DFF48", "STM32F103C8", 1, Status.PASSED, "reset", 9, total=16384, rate=28672.0,
             message="SN L3-001041"),
    TileView("S6", "066DFF48", "STM32F103C8", 1, Status.RETRYING, "program", 2, message="flash busy"),
    TileView("S7", "066DFF48", "STM32F103C8", 1, Status.ABORTED, "program", 2, message="stopped during program"),
    TileView("S8"),
]


@pytest.mark.parametrize("width", [12, 22, 40])
@pytest.mark.parametrize("height", [3, 4])
@pytest.mark.parametrize("view", VIEWS, ids=[v.status.name for v in VIEWS])
def test_every_line_is_exactly_the_width_and_names_the_state(view, width, height):
    lines = tile_lines(view, width, height)
    assert len(lines) == height
    assert all(cell_len(text(line)) == width for line in lines)
    word = view.status.value
    assert word[: width - 3] in text(lines[1])


def test_running_tile_shows_stage_bytes_rate_and_elapsed():
    heading, status, bar = (text(line) for line in tile_lines(VIEWS[0], 30, 3))
    assert heading.startswith("S1  F103C8") and heading.endswith("…7092638")
    assert "RUNNING" in status and "program" in status and status.endswith("0:07")
    assert "9.6/16K" in bar and "24KB/s" in bar and "█" in bar


def test_tall_failed_tile_gives_the_cause_two_lines():
    lines = [text(line) for line in tile_lines(VIEWS[1], 26, 4)]
    assert "try 2" in lines[0]
    assert lines[2].startswith("write-protected: pages")
    assert lines[3].strip().endswith("…")


def test_selected_tile_is_marked_in_text_not_only_colour():
    assert text(tile_lines(VIEWS[0], 30, 3, selected=True)[0]).startswith("▶ S1")


def test_detail_text_has_timeline_cause_diagnostics_and_journal_row():
    view = DetailView("S2", "066DFF48", Status.FAILED, 2, 14, "STM32F103C8", 0x20036410, "3F00", 65536, "SN-7",
                      4, stages=(StageView("connect", 0.06, "done"), StageView("erase", 0.1, "failed")),
                      failed_stage="erase", cause="write-protected", diagnostics="FLASH_SR=0x14\nWRPR=0xFE")
    out = describe(view).plain
    for expected in ("S2", "FAIL", "IDCODE 0x20036410", "64 KiB", "2 (row 14)", "SN-7", "UID", "3F00",
                     "connect", "0.06 s", "✘ 0.10 s", "Cause (in erase)", "write-protected", "FLASH_SR=0x14",
                     "WRPR=0xFE"):
        assert expected in out
