"""The host-side description of the loaders: SRAM layout, control blocks, ring arithmetic."""

from __future__ import annotations

import struct

import pytest

from gangflash.target.loaders import (CB_DEST, CB_FLAGS, CB_FLASH_REGS, CB_REMAINING, CB_RING_END, CB_RING_START,
                                      CB_RP, CB_SIZE, CB_WP, CJ_SIZE, MAX_RING, MIN_RING, RING_GUARD, STACK_SIZE,
                                      F1, F4, L4, LOADERS, loader_for, ring_free)

SRAM = 0x20000000


@pytest.mark.parametrize("blob", [F1, F4, L4], ids=lambda b: b.name)
def test_layout_regions_are_ordered_aligned_and_disjoint(blob):
    lay = blob.layout(SRAM, 20 * 1024)
    assert lay.code_addr == SRAM and lay.program_pc == SRAM and lay.crc_pc == SRAM + 4
    assert lay.exit_lr == SRAM + 8 + 1
    assert lay.code_addr + len(blob.code) <= lay.cb_addr
    assert lay.cb_addr + CB_SIZE <= lay.crc_job_addr
    assert lay.crc_job_addr + CJ_SIZE <= lay.ring_start
    assert lay.ring_start % 16 == 0 and lay.ring_size % 16 == 0
    assert lay.ring_size == MAX_RING
    assert lay.ring_end <= lay.stack_top - STACK_SIZE
    assert lay.stack_top == SRAM + 20 * 1024
    assert lay.ring_start == lay.crc_table_addr < lay.crc_out_addr
    assert lay.crc_out_addr + 4 * lay.crc_max_pages <= lay.ring_end


@pytest.mark.parametrize("blob", [F1, F4, L4], ids=lambda b: b.name)
def test_small_sram_gets_a_smaller_ring_down_to_min_ram(blob):
    lay = blob.layout(SRAM, blob.min_ram)
    assert lay.ring_size == MIN_RING
    with pytest.raises(ValueError):
        blob.layout(SRAM, blob.min_ram - 16)
    assert blob.layout(SRAM, 8 * 1024).ring_size < MAX_RING


def test_explicit_ring_size_is_checked():
    assert F1.layout(SRAM, 20 * 1024, ring_size=4096).ring_size == 4096
    for bad in (4100, 256, 32 * 1024):
        with pytest.raises(ValueError):
            F1.layout(SRAM, 20 * 1024, ring_size=bad)


def test_control_block_words():
    lay = F4.layout(SRAM, 64 * 1024)
    cb = struct.unpack("<12I", F4.control_block(lay, 0x08004000, 1024, F4.flags(verify=True)))
    assert cb[CB_WP // 4] == cb[CB_RP // 4] == lay.ring_start == cb[CB_RING_START // 4]
    assert cb[CB_RING_END // 4] == lay.ring_end
    assert cb[CB_DEST // 4] == 0x08004000 and cb[CB_REMAINING // 4] == 1024
    assert cb[CB_FLASH_REGS // 4] == 0x40023C00
    assert cb[CB_FLAGS // 4] == (2 << 8) | 2


def test_control_block_refuses_partial_units():
    lay = L4.layout(SRAM, 64 * 1024)
    with pytest.raises(ValueError):
        L4.control_block(lay, 0x08000000, 12)
    with pytest.raises(ValueError):
        L4.control_block(lay, 0x08000004, 16)
    F4.control_block(F4.layout(SRAM, 64 * 1024), 0x08000001, 3, F4.flags(psize=0))   # x8: any byte
    with pytest.raises(ValueError):
        F4.control_block(F4.layout(SRAM, 64 * 1024), 0x08000002, 2)                # x32 default


def test_flags():
    assert F1.flags() == 0 and F1.flags(iwdg=True, verify=True) == 3
    assert F4.flags() == 2 << 8 and F4.flags(psize=0) == 0
    with pytest.raises(ValueError):
        F1.flags(psize=1)
    with pytest.raises(ValueError):
        F4.flags(psize=3)
    assert [F4.unit_for(p) for p in (0, 1, 2)] == [1, 2, 4] and F4.unit_for() == 4


def test_ring_free_keeps_the_guard():
    start, end = 0x1000, 0x1100
    assert ring_free(start, start, start, end) == 0x100 - RING_GUARD           # empty
    assert ring_free(start + 0x10, start + 0x10, start, end) == 0x100 - RING_GUARD
    assert ring_free(start + 0xF8, start, start, end) == 0                      # full
    assert ring_free(start + 0x08, start + 0x10, start, end) == 0               # full, wrapped
    assert ring_free(start + 0x80, start + 0x40, start, end) == 0x100 - 0x40 - RING_GUARD


def test_loader_lookup():
    assert loader_for("F1") is F1 and loader_for("f3") is F1
    assert loader_for("F7") is F4 and loader_for("G4") is L4
    assert set(LOADERS) == {"f1", "f4", "l4"}
    with pytest.raises(KeyError):
        loader_for("h7")
