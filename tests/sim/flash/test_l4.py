"""L4 FLASH model against RM0394 and the L4 datasheet timings (L432KC, single bank)."""

from __future__ import annotations

import pytest

from gangflash.sim.errors import BusFault

from .conftest import KEY1, KEY2, OPTKEY1, OPTKEY2

ACR, KEYR, OPTKEYR, SR, CR, OPTR, WRP1AR, WRP1BR = 0x00, 0x08, 0x0C, 0x10, 0x14, 0x20, 0x2C, 0x30
EOP, OPERR, PROGERR, WRPERR, PGAERR, SIZERR, PGSERR = 1, 2, 8, 16, 32, 64, 128
BSY, PEMPTY, ALL_ERRORS = 1 << 16, 1 << 17, 0xC3FA
PG, PER, MER1, MER2, STRT, OPTSTRT = 1, 2, 4, 1 << 15, 1 << 16, 1 << 17
EOPIE, ERRIE, OBL_LAUNCH, OPTLOCK, LOCK = 1 << 24, 1 << 25, 1 << 27, 1 << 30, 1 << 31
BASE = 0x08000000
DW, PAGE, MASS = 81.7e-6, 22.0e-3, 22.1e-3


def unlocked(rig, **faults):
    b = rig("L432KC", **faults)
    b.w(KEYR, KEY1)
    b.w(KEYR, KEY2)
    assert b.r(CR) == OPTLOCK
    return b


def program_dw(b, address, value):
    """The pyOCD L4 algorithm's per-double-word sequence."""
    b.w(CR, PG)
    b.store(address, value & 0xFFFFFFFF, 4)
    b.store(address + 4, value >> 32, 4)
    b.poll(SR, BSY)
    b.w(CR, 0)


def erase_page(b, page):
    b.w(SR, ALL_ERRORS)
    b.w(CR, PER | page << 3)
    start = b.t
    b.setbits(CR, STRT)
    b.poll(SR, BSY)
    b.w(CR, 0)
    return b.t - start


def test_reset_values(rig):
    b = rig("L432KC")
    assert b.r(CR) == 0xC0000000
    assert b.r(SR) == PEMPTY                    # blank chip
    assert b.r(OPTR) == 0xFFEFF8AA and b.r(OPTR) & (1 << 21)
    assert b.r(WRP1AR) == 0xFF and b.r(ACR) == 0x600
    assert b.ctrl.read_option_area(0x1FFF7800, 8) == 0x00100755_FFEFF8AA


def test_wrong_key_bus_error_locked_until_reset(rig):
    b = rig("L432KC")
    with pytest.raises(BusFault):
        b.w(KEYR, KEY2)
    with pytest.raises(BusFault):
        b.w(KEYR, KEY1)
    assert b.r(CR) & LOCK
    b.ctrl.system_reset()
    b.w(KEYR, KEY1)
    b.w(KEYR, KEY2)
    assert not b.r(CR) & LOCK


def test_double_word_buffered_until_second_word(rig):
    b = unlocked(rig)
    b.w(CR, PG)
    b.store(BASE + 8, 0x11111111, 4)
    assert not b.ctrl.busy() and b.u32(BASE + 8) == 0xFFFFFFFF
    b.store(BASE + 12, 0x22222222, 4)
    assert b.ctrl.next_event() == pytest.approx(DW)
    b.poll(SR, BSY)
    assert b.t == pytest.approx(DW) and b.r(SR) & 0xFFFF == 0     # no EOP without EOPIE
    assert b.read(BASE + 8, 8) == bytes.fromhex("1111111122222222")
    b.w(CR, PG | EOPIE)
    b.store(BASE + 16, 0, 4)
    b.store(BASE + 20, 0, 4)
    b.poll(SR, BSY)
    assert b.r(SR) & EOP


def test_sizerr_for_byte_and_halfword(rig):
    b = unlocked(rig)
    b.w(CR, PG)
    b.store(BASE, 0x12, 1)
    assert b.r(SR) & SIZERR
    b.w(SR, SIZERR)
    b.store(BASE, 0x1234, 2)
    assert b.r(SR) & SIZERR and b.u16(BASE) == 0xFFFF


def test_pgaerr_misaligned_and_wrong_second_word(rig):
    b = unlocked(rig)
    b.w(CR, PG)
    b.store(BASE + 4, 0, 4)
    assert b.r(SR) & PGAERR
    b.w(SR, PGAERR)
    b.store(BASE, 0, 4)
    b.store(BASE + 12, 0, 4)                    # not the second half of the double word
    assert b.r(SR) & PGAERR and b.read(BASE, 16) == b"\xFF" * 16


def test_store_without_pg_is_pgserr(rig):
    b = unlocked(rig)
    b.w(CR, ERRIE)
    b.store(BASE, 0, 4)
    assert b.r(SR) & 0xFFFF == PGSERR | OPERR


def test_progerr_on_programmed_double_word_even_all_ones(rig):
    b = unlocked(rig)
    program_dw(b, BASE, (1 << 64) - 1)          # ECC written although the data reads erased
    program_dw(b, BASE, 0x1234)
    assert b.r(SR) & PROGERR and b.u32(BASE) == 0xFFFFFFFF
    b.w(SR, ALL_ERRORS)
    program_dw(b, BASE, 0)                      # all zeros is allowed
    assert b.r(SR) & 0xFFFF == 0 and b.u32(BASE) == 0


def test_programming_errors_block_next_operation(rig):
    b = unlocked(rig)
    b.w(CR, PG)
    b.store(BASE, 0, 2)                         # SIZERR
    b.store(BASE, 0, 4)
    b.store(BASE + 4, 0, 4)
    assert b.r(SR) & (SIZERR | PGSERR) == SIZERR | PGSERR and b.u32(BASE) == 0xFFFFFFFF


def test_stale_flags_unlocked_block_program_and_erase(rig):
    b = rig("L432KC", flash_unlocked_stale_flags=True)
    assert not b.r(CR) & LOCK and b.r(SR) & 0xFFFF == PROGERR | PGSERR
    b.w(SR, PGSERR)                             # clearing only some of them is not enough
    program_dw(b, BASE, 0)
    assert b.u32(BASE) == 0xFFFFFFFF and b.r(SR) & PGSERR
    b.w(CR, PER | 1 << 3)
    b.setbits(CR, STRT)
    assert not b.ctrl.busy()
    b.w(SR, ALL_ERRORS)
    program_dw(b, BASE, 0)
    assert b.u32(BASE) == 0


def test_stale_flags_locked(rig):
    b = rig("L432KC", flash_locked_stale_flags=True)
    assert b.r(CR) == 0xC0000000 and b.r(SR) & 0xFFFF == PROGERR | PGSERR
    b.ctrl.system_reset()
    assert b.r(SR) & 0xFFFF == 0


def test_page_erase_time_and_extent(rig):
    b = unlocked(rig)
    program_dw(b, BASE + 0x800, 0)
    program_dw(b, BASE + 0xFF8, 0)
    program_dw(b, BASE + 0x1000, 0)
    assert erase_page(b, 1) == pytest.approx(PAGE)
    assert b.read(BASE + 0x800, 0x800) == b"\xFF" * 0x800 and b.u32(BASE + 0x1000) == 0
    program_dw(b, BASE + 0x800, 0x55)           # erased again: programmable
    assert b.r(SR) & 0xFFFF == 0


def test_mass_erase_time(rig):
    b = unlocked(rig)
    program_dw(b, BASE + 0x3FFF8, 0)
    b.w(SR, ALL_ERRORS)
    b.w(CR, MER1 | MER2)
    start = b.t
    b.setbits(CR, STRT)
    b.poll(SR, BSY)
    assert b.t - start == pytest.approx(MASS) and b.u32(BASE + 0x3FFF8) == 0xFFFFFFFF


def test_write_protection_area(rig):
    b = unlocked(rig, write_protected=(3, 4, 5))
    assert b.r(WRP1AR) == 0x00050003 and b.r(WRP1BR) == 0xFF
    b.w(CR, PER | 4 << 3)
    b.setbits(CR, STRT)
    assert b.r(SR) & WRPERR and not b.ctrl.busy()
    b.w(SR, ALL_ERRORS)
    program_dw(b, BASE + 5 * 0x800, 0)
    assert b.r(SR) & WRPERR and b.u32(BASE + 5 * 0x800) == 0xFFFFFFFF
    b.w(SR, ALL_ERRORS)
    b.w(CR, MER1)
    b.setbits(CR, STRT)
    assert b.r(SR) & WRPERR and not b.ctrl.busy()
    b.w(SR, ALL_ERRORS)
    assert erase_page(b, 6) == pytest.approx(PAGE)


def test_rdp_level1_blocks_debug_and_regression(rig):
    b = unlocked(rig, rdp_level1=True)
    assert b.ctrl.rdp_level() == 1 and b.r(OPTR) & 0xFF == 0xBB
    assert not b.ctrl.flash_readable(BASE, from_debugger=True)
    program_dw(b, BASE + 0x1000, 0)
    assert b.r(SR) & WRPERR
    b.debugger = False
    b.w(SR, ALL_ERRORS)
    program_dw(b, BASE + 0x1000, 0)
    b.debugger = True
    b.w(OPTKEYR, OPTKEY1)
    b.w(OPTKEYR, OPTKEY2)
    assert not b.r(CR) & OPTLOCK
    b.w(OPTR, (b.r(OPTR) & ~0xFF) | 0xAA)
    start = b.t
    b.setbits(CR, OPTSTRT)
    b.poll(SR, BSY)
    assert b.t - start == pytest.approx(PAGE + MASS)
    assert b.u32(BASE + 0x1000) == 0xFFFFFFFF
    assert b.ctrl.rdp_level() == 1
    b.ctrl.system_reset()                       # a plain reset does not load options on L4
    assert b.ctrl.rdp_level() == 1
    b.w(KEYR, KEY1)
    b.w(KEYR, KEY2)
    b.w(OPTKEYR, OPTKEY1)
    b.w(OPTKEYR, OPTKEY2)
    b.setbits(CR, OBL_LAUNCH)
    assert b.resets == 1 and b.ctrl.rdp_level() == 0 and b.r(OPTR) == 0xFFEFF8AA
    assert b.ctrl.flash_readable(BASE, from_debugger=True)


def test_option_registers_locked(rig):
    b = unlocked(rig)
    b.w(OPTR, 0)
    assert b.r(OPTR) == 0xFFEFF8AA
    with pytest.raises(BusFault):
        b.w(OPTKEYR, KEY1)


def test_lock_sets_optlock_and_cr_is_frozen(rig):
    b = unlocked(rig)
    b.w(OPTKEYR, OPTKEY1)
    b.w(OPTKEYR, OPTKEY2)
    b.w(CR, LOCK)                               # the pyOCD UnInit
    assert b.r(CR) == 0xC0000000
    b.w(CR, PG)
    assert b.r(CR) == 0xC0000000


def test_hardware_watchdog_option(rig):
    b = rig("L432KC", hardware_watchdog=True)
    assert b.ctrl.hardware_watchdog() and not b.r(OPTR) & (1 << 16)


def test_power_lost_mid_program_and_mid_erase(rig):
    b = unlocked(rig)
    b.w(CR, PG)
    b.store(BASE, 0, 4)
    b.store(BASE + 4, 0, 4)
    b.advance(DW / 2)
    b.ctrl.power_lost()
    assert b.read(BASE, 8) not in (b"\xFF" * 8, b"\x00" * 8)
    b.ctrl.power_on_reset()
    b.w(KEYR, KEY1)
    b.w(KEYR, KEY2)
    program_dw(b, BASE, 0x1234)                 # the half-programmed double word is not erased
    assert b.r(SR) & PROGERR
    b.w(SR, ALL_ERRORS)
    for offset in range(0x800, 0x1000, 8):
        program_dw(b, BASE + offset, 0x0123456789ABCDEF ^ offset)
    old = b.read(BASE + 0x800, 0x800)
    b.w(CR, PER | 1 << 3)
    b.setbits(CR, STRT)
    b.advance(PAGE / 3)
    b.ctrl.power_lost()
    page = b.read(BASE + 0x800, 0x800)
    assert page != old and page != b"\xFF" * 0x800


def test_power_lost_during_option_change_sets_optverr(rig):
    b = unlocked(rig)
    b.w(OPTKEYR, OPTKEY1)
    b.w(OPTKEYR, OPTKEY2)
    b.setbits(CR, OPTSTRT)
    b.advance(PAGE / 2)
    b.ctrl.power_lost()
    b.ctrl.power_on_reset()
    assert b.r(SR) & (1 << 15) and b.ctrl.rdp_level() == 1


def test_pyocd_algorithm_sequence(rig):
    b = rig("L432KC")
    b.w(KEYR, KEY1)
    b.w(KEYR, KEY2)
    b.w(ACR, 0)
    b.w(SR, ALL_ERRORS)
    assert b.r(OPTR) & (1 << 16)                # IWDG_SW: no watchdog setup
    assert erase_page(b, 0) == pytest.approx(PAGE)
    assert b.r(SR) & ALL_ERRORS == 0
    b.w(SR, ALL_ERRORS)
    b.w(CR, 0)
    for i in range(4):
        program_dw(b, BASE + 8 * i, 0x1111111100000000 + i)
    assert b.r(SR) & ALL_ERRORS == 0 and b.u32(BASE + 24) == 3 and b.u32(BASE + 28) == 0x11111111
    b.w(CR, 0x80000000)
    assert b.r(CR) & LOCK
