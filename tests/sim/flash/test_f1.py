"""F1 FPEC model against PM0075 and the F103 datasheet timings."""

from __future__ import annotations

import pytest

from gangflash.sim.errors import BusFault

from .conftest import KEY1, KEY2

KEYR, OPTKEYR, SR, CR, AR, OBR, WRPR = 0x04, 0x08, 0x0C, 0x10, 0x14, 0x1C, 0x20
BSY, PGERR, WRPRTERR, EOP = 1, 4, 16, 32
PG, PER, MER, OPTPG, OPTER, STRT, LOCK, OPTWRE = 1, 2, 4, 16, 32, 64, 128, 512
BASE = 0x08000000
PROGRAM, PAGE_ERASE, MASS_ERASE = 52.5e-6, 30e-3, 30e-3


def unlocked(rig, chip="F103C8", **faults):
    b = rig(chip, **faults)
    b.w(KEYR, KEY1)
    b.w(KEYR, KEY2)
    assert not b.r(CR) & LOCK
    return b


def program(b, address, value):
    b.setbits(CR, PG)
    b.store(address, value, 2)
    b.poll(SR, BSY)
    b.clearbits(CR, PG)


def test_reset_values(rig):
    b = rig("F103RC")
    assert b.r(CR) == 0x80
    assert b.r(SR) == 0
    assert b.r(OBR) == 0x03FFFFFC
    assert b.r(WRPR) == 0xFFFFFFFF
    assert b.ctrl.read_option_area(0x1FFFF800, 4) == 0x00FF5AA5
    assert b.ctrl.rdp_level() == 0 and not b.ctrl.hardware_watchdog()


def test_unlock_lock_and_relock(rig):
    b = unlocked(rig)
    b.setbits(CR, LOCK)
    assert b.r(CR) & LOCK
    b.w(CR, 0)                                  # CR writes are ignored while locked
    assert b.r(CR) == LOCK
    b.w(KEYR, KEY1)
    b.w(KEYR, KEY2)
    assert b.r(CR) == 0


def test_wrong_key_locks_until_reset_without_bus_error(rig):
    b = rig("F103C8")
    b.w(KEYR, KEY1)
    b.w(KEYR, 0x12345678)                       # no BusFault on F1
    b.w(KEYR, KEY1)
    b.w(KEYR, KEY2)
    assert b.r(CR) & LOCK
    b.ctrl.system_reset()
    b.w(KEYR, KEY1)
    b.w(KEYR, KEY2)
    assert not b.r(CR) & LOCK


def test_program_halfword_busy_for_datasheet_time_and_eop(rig):
    b = unlocked(rig)
    b.setbits(CR, PG)
    b.store(BASE, 0x1234, 2)
    assert b.u16(BASE) == 0x1234                # readable as soon as BSY clears (already set)
    assert b.ctrl.busy() and b.ctrl.next_event() == pytest.approx(PROGRAM)
    assert b.r(SR) & BSY
    b.poll(SR, BSY)
    assert b.t == pytest.approx(PROGRAM)        # the polling loop consumed exactly tprog
    assert max(b.stalls) <= 50e-6               # poll quantum
    assert b.r(SR) == EOP                       # EOP always on F1
    b.w(SR, EOP)
    assert b.r(SR) == 0


def test_only_halfword_stores_program(rig):
    b = unlocked(rig)
    b.setbits(CR, PG)
    with pytest.raises(BusFault):
        b.store(BASE, 0x12345678, 4)
    with pytest.raises(BusFault):
        b.store(BASE, 0x12, 1)
    assert b.read(BASE, 4) == b"\xFF" * 4 and b.r(SR) == 0


def test_store_without_pg_is_ignored(rig):
    b = unlocked(rig)
    b.store(BASE, 0x1234, 2)
    assert b.u16(BASE) == 0xFFFF and b.r(SR) == 0 and not b.ctrl.busy()


def test_pgerr_on_non_erased_halfword_except_zero(rig):
    b = unlocked(rig)
    program(b, BASE, 0x1234)
    b.w(SR, EOP)
    program(b, BASE, 0x0034)                    # would only clear bits, still refused
    assert b.r(SR) == PGERR and b.u16(BASE) == 0x1234
    b.w(SR, PGERR)
    assert b.r(SR) == 0
    program(b, BASE, 0x0000)                    # the documented exception
    assert b.u16(BASE) == 0 and b.r(SR) == EOP


def test_page_erase_time_strt_and_extent(rig):
    b = unlocked(rig, "F103RC")                 # 2 KiB pages
    for address in (BASE + 0x800, BASE + 0xFFE, BASE + 0x1000):
        program(b, address, 0x5A5A)
    b.w(SR, EOP)
    start = b.t
    b.setbits(CR, PER)
    b.w(AR, BASE + 0x900)
    b.setbits(CR, STRT)
    assert b.r(CR) & STRT and b.ctrl.next_event() == pytest.approx(start + PAGE_ERASE)
    reads = b.poll(SR, BSY)
    assert b.t - start == pytest.approx(PAGE_ERASE) and reads >= PAGE_ERASE / 50e-6
    assert not b.r(CR) & STRT and b.r(SR) == EOP
    assert b.read(BASE + 0x800, 0x800) == b"\xFF" * 0x800
    assert b.u16(BASE + 0x1000) == 0x5A5A


def test_mass_erase(rig):
    b = unlocked(rig)
    program(b, BASE + 0xFFFE, 0x0001)
    start = b.t
    b.setbits(CR, MER)
    b.setbits(CR, STRT)
    b.poll(SR, BSY)
    assert b.t - start == pytest.approx(MASS_ERASE)
    assert b.u16(BASE + 0xFFFE) == 0xFFFF


def test_erase_with_pg_left_set_does_nothing(rig):
    b = unlocked(rig)
    program(b, BASE, 0x1111)
    b.w(SR, EOP)
    b.setbits(CR, PG | PER)
    b.w(AR, BASE)
    b.setbits(CR, STRT)
    assert not b.ctrl.busy() and b.r(SR) == 0 and b.u16(BASE) == 0x1111


def test_store_while_busy_stalls_the_bus(rig):
    b = unlocked(rig)
    b.setbits(CR, PG)
    b.store(BASE, 0x1111, 2)
    b.store(BASE + 2, 0x2222, 2)                # held until the first program ends
    assert b.stalls == [pytest.approx(PROGRAM)]
    assert b.ctrl.next_event() == pytest.approx(2 * PROGRAM)
    assert b.u16(BASE + 2) == 0x2222


def test_lock_does_not_stop_a_pg_left_set(rig):
    b = unlocked(rig)
    b.setbits(CR, PG)
    b.setbits(CR, LOCK)
    b.store(BASE, 0x4321, 2)
    assert b.u16(BASE) == 0x4321


def test_write_protection_groups_of_four_pages(rig):
    b = unlocked(rig, write_protected=(2,))     # F103C8: WRP bit 0 covers pages 0-3
    assert b.r(WRPR) == 0xFFFFFFFE
    assert b.ctrl.read_option_area(0x1FFFF808, 2) == 0x01FE      # WRP0 = 0xFE, complement 0x01
    b.setbits(CR, PG)
    b.store(BASE + 0x400, 0x1234, 2)
    assert b.r(SR) == WRPRTERR and b.u16(BASE + 0x400) == 0xFFFF
    b.store(BASE + 0x1000, 0x1234, 2)           # page 4 is free
    b.poll(SR, BSY)
    assert b.u16(BASE + 0x1000) == 0x1234
    b.w(SR, WRPRTERR | EOP)
    b.w(CR, PER)
    b.w(AR, BASE + 0xC00)
    b.setbits(CR, STRT)
    assert b.r(SR) == WRPRTERR and not b.ctrl.busy()
    b.w(SR, WRPRTERR)
    b.w(CR, MER | STRT)
    assert b.r(SR) == WRPRTERR and b.u16(BASE + 0x1000) == 0x1234


def test_hd_wrp_bit_31_covers_the_rest(rig):
    b = rig("F103RC", write_protected=(100,))
    assert b.r(WRPR) == 0x7FFFFFFF


def test_rdp_level1_blocks_debug_reads_and_first_4k(rig):
    b = unlocked(rig, rdp_level1=True)
    assert b.ctrl.rdp_level() == 1 and b.r(OBR) & 2
    assert not b.ctrl.flash_readable(BASE + 0x2000, from_debugger=True)
    assert not b.ctrl.flash_readable(BASE, from_debugger=False)       # SRAM code under debug
    b.debugger = False
    assert b.ctrl.flash_readable(BASE, from_debugger=False)
    b.debugger = True
    b.setbits(CR, PG)
    b.store(BASE + 0xFFE, 0x1234, 2)
    assert b.r(SR) == WRPRTERR
    b.store(BASE + 0x1000, 0x1234, 2)
    b.poll(SR, BSY)
    assert b.u16(BASE + 0x1000) == 0x1234


def test_rdp_regression_mass_erases_and_applies_at_reset(rig):
    b = unlocked(rig, rdp_level1=True)
    program(b, BASE + 0x2000, 0xBEEF)
    b.w(OPTKEYR, KEY1)
    b.w(OPTKEYR, KEY2)
    assert b.r(CR) & OPTWRE
    b.w(CR, OPTER | OPTWRE)
    b.setbits(CR, STRT)
    b.poll(SR, BSY)
    assert b.ctrl.read_option_area(0x1FFFF800, 4) == 0xFFFFFFFF
    b.w(CR, OPTPG | OPTWRE)
    start = b.t
    b.ctrl.option_store(0x1FFFF800, 0x00A5, 2, from_debugger=True)     # only the low byte counts
    b.poll(SR, BSY)
    assert b.t - start == pytest.approx(MASS_ERASE + PROGRAM)
    assert b.u16(BASE + 0x2000) == 0xFFFF
    assert b.ctrl.read_option_area(0x1FFFF800, 2) == 0x5AA5
    assert b.ctrl.rdp_level() == 1 and not b.ctrl.flash_readable(BASE, True)
    b.ctrl.system_reset()
    assert b.ctrl.rdp_level() == 0 and b.ctrl.flash_readable(BASE, True)
    assert b.r(OBR) == 0x03FFFFFC               # erased USER/Data (0xFFFF) load without OPTERR


def test_option_write_needs_optwre(rig):
    b = unlocked(rig)
    b.w(OPTKEYR, KEY1)
    b.w(OPTKEYR, 0)                             # wrong: OPTWRE cannot be set until reset
    b.w(OPTKEYR, KEY1)
    b.w(OPTKEYR, KEY2)
    assert not b.r(CR) & OPTWRE
    b.w(CR, OPTER)
    b.setbits(CR, STRT)
    assert not b.ctrl.busy() and b.ctrl.read_option_area(0x1FFFF800, 2) == 0x5AA5


def test_stuck_bits_make_verify_fail(rig):
    b = unlocked(rig, stuck_bits={BASE + 0x400: 0x01})
    program(b, BASE + 0x400, 0x00FF)
    assert b.u16(BASE + 0x400) == 0x00FE


def test_stale_flags_locked(rig):
    b = rig("F103C8", flash_locked_stale_flags=True)
    assert b.r(CR) & LOCK and b.r(SR) == PGERR | WRPRTERR
    b.ctrl.system_reset()
    assert b.r(SR) == 0


def test_stale_flags_unlocked_do_not_block_but_stay_visible(rig):
    b = rig("F103C8", flash_unlocked_stale_flags=True)
    assert not b.r(CR) & LOCK
    program(b, BASE, 0xA5A5)
    assert b.u16(BASE) == 0xA5A5                # not blocked
    assert b.r(SR) == PGERR | WRPRTERR | EOP     # a naive "SR == EOP" check reports failure


def test_hsi_off_operation_never_progresses(rig):
    b = unlocked(rig)
    b.hsi = False
    b.setbits(CR, PG)
    b.store(BASE, 0x1234, 2)
    assert b.ctrl.next_event() is None
    for _ in range(1000):
        assert b.r(SR) & BSY
    assert b.u16(BASE) == 0xFFFF
    t = b.t
    b.store(BASE + 2, 0x5678, 2)                # the bus would hang: charged and dropped
    assert b.t - t == pytest.approx(1.0) and b.u16(BASE + 2) == 0xFFFF
    b.hsi = True
    start = b.t
    b.poll(SR, BSY)
    assert b.t - start == pytest.approx(PROGRAM) and b.u16(BASE) == 0x1234


def test_hardware_watchdog_option(rig):
    b = rig("F103C8", hardware_watchdog=True)
    assert b.ctrl.hardware_watchdog() and not b.r(OBR) & (1 << 2)


def test_power_lost_mid_erase_leaves_garbage(rig):
    b = unlocked(rig)
    b.w(CR, PG)
    for offset in range(0, 0x400, 2):
        b.store(BASE + offset, 0x1234 ^ offset, 2)
    b.poll(SR, BSY)
    old = b.read(BASE, 0x400)
    b.w(CR, PER)
    b.w(AR, BASE)
    b.setbits(CR, STRT)
    b.advance(PAGE_ERASE / 2)
    b.ctrl.power_lost()
    page = b.read(BASE, 0x400)
    assert page != old and page != b"\xFF" * 0x400
    b.ctrl.power_on_reset()
    assert b.r(CR) == LOCK and not b.ctrl.busy()


def test_system_reset_mid_program_is_not_a_clean_program(rig):
    b = unlocked(rig)
    b.setbits(CR, PG)
    b.store(BASE, 0x0000, 2)
    b.ctrl.system_reset()
    assert b.u16(BASE) not in (0x0000, 0xFFFF)  # cut off: neither old nor programmed
    assert b.r(CR) == LOCK and b.r(SR) == 0


def test_byte_reads_of_registers(rig):
    b = unlocked(rig)
    b.setbits(CR, PG)
    b.store(BASE, 0x1234, 2)
    assert b.r(SR, 1) & BSY
    assert b.r(CR + 1, 1) == 0
