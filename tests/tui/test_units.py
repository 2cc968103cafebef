"""How sizes, rates and times are written on tiles."""

from __future__ import annotations

import pytest

from gangflash.tui import units


@pytest.mark.parametrize("count, text", [(512, "512B"), (16384, "16K"), (12390, "12.1K"), (2 * 1024 * 1024, "2.0M")])
def test_size(count, text):
    assert units.size(count) == text


def test_progress_in_bytes_and_in_steps():
    assert units.progress(8192, 16384, in_bytes=True) == "8.0/16K"
    assert units.progress(3, 16, in_bytes=False) == "3/16"


def test_rate_has_a_decimal_only_when_small():
    assert units.rate(24576) == "24KB/s"
    assert units.rate(5120) == "5.0KB/s"
    assert units.rate(None) == ""


def test_clock():
    assert [units.clock(s) for s in (7, 754, 3723)] == ["0:07", "12:34", "1:02:03"]


def test_short_chip_fits_a_tile():
    assert units.short_chip("STM32F103C8") == "F103C8"
    assert units.short_chip("F1 F10x medium-density (DEV_ID 0x410)") == "F10x"


def test_tail_and_clip_mark_the_cut():
    assert units.tail("066DFF485457725187092638", 8) == "…7092638"
    assert units.clip("write-protected pages", 10) == "write-pro…"
