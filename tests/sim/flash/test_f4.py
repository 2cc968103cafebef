"""F4 FLASH model against RM0090/RM0402 and the F4 datasheet timings (F412ZG sector map)."""

from __future__ import annotations

import pytest

from gangflash.sim.errors import BusFault

from .conftest import KEY1, KEY2, OPTKEY1, OPTKEY2

ACR, KEYR, OPTKEYR, SR, CR, OPTCR = 0x00, 0x04, 0x08, 0x0C, 0x10, 0x14
EOP, OPERR, WRPERR, PGAERR, PGPERR, PGSERR, BSY = 1, 2, 16, 32, 64, 128, 1 << 16
PG, SER, MER, STRT, EOPIE, ERRIE, LOCK = 1, 2, 4, 1 << 16, 1 << 24, 1 << 25, 1 << 31
X8, X16, X32 = 0 << 8, 1 << 8, 2 << 8
BASE = 0x08000000
SECTOR = [BASE + o for o in (0, 0x4000, 0x8000, 0xC000, 0x10000, 0x20000, 0x40000)]


def unlocked(rig, **faults):
    b = rig("F412ZG", **faults)
    b.w(KEYR, KEY1)
    b.w(KEYR, KEY2)
    assert b.r(CR) == 0
    return b


def program_word(b, address, value):
    b.w(CR, PG | X32)
    b.store(address, value, 4)
    b.poll(SR, BSY)
    b.w(CR, 0)


def erase_sector(b, sector, psize=X8):
    """The pyOCD F4 algorithm's EraseSector register sequence."""
    b.setbits(SR, 0xF0)
    b.w(CR, SER | psize)
    b.setbits(CR, sector << 3)
    start = b.t
    b.setbits(CR, STRT)
    b.poll(SR, BSY)
    b.clearbits(CR, SER)
    return b.t - start


def test_reset_values(rig):
    b = rig("F412ZG")
    assert b.r(CR) == 0x80000000 and b.r(SR) == 0
    assert b.r(OPTCR) == 0x0FFFAAED
    assert b.ctrl.rdp_level() == 0 and not b.ctrl.hardware_watchdog()
    assert b.ctrl.read_option_area(0x1FFFC000, 2) == 0xAAEC


def test_wrong_key_bus_error_and_locked_until_reset(rig):
    b = rig("F412ZG")
    b.w(KEYR, KEY1)
    with pytest.raises(BusFault):
        b.w(KEYR, KEY1)
    with pytest.raises(BusFault):
        b.w(KEYR, KEY1)
    assert b.r(CR) & LOCK
    b.ctrl.system_reset()
    b.w(KEYR, KEY1)
    b.w(KEYR, KEY2)
    assert not b.r(CR) & LOCK


def test_program_word_time_and_eop_only_with_eopie(rig):
    b = unlocked(rig)
    b.w(CR, PG | X32)
    b.store(BASE, 0x11223344, 4)
    assert b.ctrl.next_event() == pytest.approx(16e-6)
    b.poll(SR, BSY)
    assert b.t == pytest.approx(16e-6) and b.r(SR) == 0
    assert b.u32(BASE) == 0x11223344
    b.w(CR, PG | X32 | EOPIE)
    b.store(BASE + 4, 0x55667788, 4)
    b.poll(SR, BSY)
    assert b.r(SR) == EOP


def test_psize_mismatch_is_pgperr(rig):
    b = unlocked(rig)
    b.w(CR, PG | X32)
    b.store(BASE, 0x1234, 2)
    assert b.r(SR) == PGPERR and b.u16(BASE) == 0xFFFF and not b.ctrl.busy()
    b.w(SR, PGPERR)
    b.w(CR, PG | X8)
    b.store(BASE, 0x12, 1)
    b.poll(SR, BSY)
    assert b.read(BASE, 1) == b"\x12"
    b.w(CR, PG | (3 << 8))                      # x64: no single store matches
    b.store(BASE + 8, 0, 4)
    assert b.r(SR) & PGPERR


def test_store_without_pg_is_pgserr_with_operr_under_errie(rig):
    b = rig("F412ZG")                           # even locked: a stray write to flash
    b.store(BASE, 0, 4)
    assert b.r(SR) == PGSERR and b.u32(BASE) == 0xFFFFFFFF
    b.w(SR, PGSERR)
    b.w(KEYR, KEY1)
    b.w(KEYR, KEY2)
    b.w(CR, ERRIE)
    b.store(BASE, 0, 4)
    assert b.r(SR) == PGSERR | OPERR


def test_row_crossing_is_pgaerr(rig):
    b = unlocked(rig)
    b.w(CR, PG | X32)
    b.store(BASE + 0xE, 0, 4)
    assert b.r(SR) == PGAERR and b.read(BASE + 0xE, 4) == b"\xFF" * 4


def test_program_over_data_ands_bits(rig):
    b = unlocked(rig)
    program_word(b, BASE, 0xF0F0F0F0)
    program_word(b, BASE, 0xFF00FF00)
    assert b.u32(BASE) == 0xF000F000 and b.r(SR) == 0


@pytest.mark.parametrize("sector, psize, seconds", [
    (0, X8, 0.400), (0, X16, 0.300), (0, X32, 0.250),
    (4, X8, 1.2), (4, X32, 0.550), (5, X16, 1.3), (11, X32, 1.0)])
def test_sector_erase_time_by_size_and_psize(rig, sector, psize, seconds):
    b = unlocked(rig)
    start, size = b.ctrl.unit(sector)
    program_word(b, start, 0)
    program_word(b, start + size - 4, 0)
    assert erase_sector(b, sector, psize) == pytest.approx(seconds, abs=60e-6)
    assert b.u32(start) == 0xFFFFFFFF and b.u32(start + size - 4) == 0xFFFFFFFF
    assert not b.r(CR) & STRT and b.r(SR) & 0xF0 == 0


def test_sector_erase_leaves_neighbours(rig):
    b = unlocked(rig)
    program_word(b, SECTOR[1] - 4, 0x12345678)
    program_word(b, SECTOR[2], 0x9ABCDEF0)
    erase_sector(b, 1)
    assert b.u32(SECTOR[1] - 4) == 0x12345678 and b.u32(SECTOR[2]) == 0x9ABCDEF0


def test_mass_erase_time(rig):
    b = unlocked(rig)
    program_word(b, BASE + 0xFFFFC, 0)
    b.w(CR, MER | X32)
    start = b.t
    b.setbits(CR, STRT)
    assert b.ctrl.next_event() == pytest.approx(start + 8.0)
    b.poll(SR, BSY)
    assert b.t - start == pytest.approx(8.0, abs=60e-6) and b.u32(BASE + 0xFFFFC) == 0xFFFFFFFF


def test_cr_write_while_busy_stalls_until_done(rig):
    b = unlocked(rig)
    b.w(CR, SER | X32)
    b.setbits(CR, STRT)
    b.advance(0.1)
    b.w(CR, 0)                                  # held on the bus for the remaining 150 ms
    assert b.stalls[-1] == pytest.approx(0.15) and b.t == pytest.approx(0.25)
    assert b.r(CR) == 0 and not b.ctrl.busy()


def test_stale_flags_unlocked_block_until_cleared(rig):
    b = rig("F412ZG", flash_unlocked_stale_flags=True)
    assert not b.r(CR) & LOCK and b.r(SR) == PGSERR | PGPERR
    b.w(CR, PG | X32)
    b.store(BASE, 0, 4)
    assert b.u32(BASE) == 0xFFFFFFFF and not b.ctrl.busy()
    b.w(CR, SER | (1 << 3))
    b.setbits(CR, STRT)
    assert not b.ctrl.busy()
    b.setbits(SR, 0xF0)                         # what HAL and the pyOCD algorithm do first
    assert b.r(SR) == 0
    program_word(b, BASE, 0)
    assert b.u32(BASE) == 0 and b.r(SR) == 0


def test_stale_flags_locked(rig):
    b = rig("F412ZG", flash_locked_stale_flags=True)
    assert b.r(CR) == LOCK and b.r(SR) == PGSERR | PGPERR
    b.ctrl.system_reset()
    assert b.r(SR) == 0


def test_write_protected_sector(rig):
    b = unlocked(rig, write_protected=(1,))
    assert b.r(OPTCR) == 0x0FFDAAED
    b.w(CR, PG | X32)
    b.store(SECTOR[1], 0, 4)
    assert b.r(SR) == WRPERR and b.u32(SECTOR[1]) == 0xFFFFFFFF
    b.w(SR, WRPERR)
    b.w(CR, SER | (1 << 3))
    b.setbits(CR, STRT)
    assert b.r(SR) == WRPERR and not b.ctrl.busy()
    b.w(SR, WRPERR)
    b.w(CR, MER)
    b.setbits(CR, STRT)
    assert b.r(SR) == WRPERR and not b.ctrl.busy()
    program_word(b, SECTOR[2], 0)               # others are fine
    assert b.u32(SECTOR[2]) == 0


def test_rdp_level1_blocks_debug_access(rig):
    b = unlocked(rig, rdp_level1=True)
    assert b.ctrl.rdp_level() == 1
    assert not b.ctrl.flash_readable(BASE, from_debugger=True)
    b.w(CR, PG | X32)
    b.store(SECTOR[3], 0, 4)
    assert b.r(SR) == WRPERR
    b.debugger = False                          # firmware booted from flash, no debugger
    assert b.ctrl.flash_readable(BASE, from_debugger=False)


def test_rdp_regression_mass_erase_through_optcr(rig):
    b = unlocked(rig, rdp_level1=True)
    b.debugger = False
    program_word(b, SECTOR[5], 0x12345678)
    b.debugger = True
    b.w(OPTKEYR, OPTKEY1)
    b.w(OPTKEYR, OPTKEY2)
    assert not b.r(OPTCR) & 1
    b.w(OPTCR + 1, 0xAA, 1)                     # HAL writes the RDP byte alone
    start = b.t
    b.w(OPTCR, b.r(OPTCR, 1) | 2, 1)            # OPTSTRT by a byte write
    b.poll(SR, BSY)
    assert b.t - start == pytest.approx(16.0 + 0.25, abs=60e-6)   # mass erase at x8 + options
    assert b.u32(SECTOR[5]) == 0xFFFFFFFF
    assert b.ctrl.rdp_level() == 1              # effective at the next reset
    b.ctrl.system_reset()
    assert b.ctrl.rdp_level() == 0 and b.r(OPTCR) == 0x0FFFAAED


def test_option_keys_wrong_bus_error(rig):
    b = rig("F412ZG")
    with pytest.raises(BusFault):
        b.w(OPTKEYR, OPTKEY2)
    b.w(OPTCR, 0)                               # still locked: ignored
    assert b.r(OPTCR) == 0x0FFFAAED


def test_option_area_is_not_bus_writable(rig):
    b = rig("F412ZG")
    with pytest.raises(BusFault):
        b.ctrl.option_store(0x1FFFC000, 0, 2, from_debugger=True)


def test_hardware_watchdog_option(rig):
    b = rig("F412ZG", hardware_watchdog=True)
    assert b.ctrl.hardware_watchdog() and not b.r(OPTCR) & (1 << 5)


def test_power_lost_mid_sector_erase(rig):
    b = unlocked(rig)
    b.w(CR, PG | X32)
    for offset in range(0, 0x4000, 4):
        b.store(BASE + offset, offset * 0x01010101 & 0xFFFFFFFF, 4)
    b.poll(SR, BSY)
    old = b.read(BASE, 0x4000)
    b.w(CR, SER)
    b.setbits(CR, STRT)
    b.advance(0.2)
    b.ctrl.power_lost()
    now = b.read(BASE, 0x4000)
    assert now != old and now != b"\xFF" * 0x4000
    b.ctrl.power_on_reset()
    assert b.r(CR) == LOCK and b.r(SR) == 0


def test_power_lost_during_option_change_locks_the_chip(rig):
    b = unlocked(rig)
    b.w(OPTKEYR, OPTKEY1)
    b.w(OPTKEYR, OPTKEY2)
    b.w(OPTCR, b.r(OPTCR) & ~(1 << 16) | 2)     # protect sector 0
    b.advance(0.1)
    b.ctrl.power_lost()
    b.ctrl.power_on_reset()
    assert b.ctrl.rdp_level() == 1 and (b.r(OPTCR) >> 16) & 0xFFF == 0


def test_pyocd_init_sequence(rig):
    b = rig("F412ZG")
    b.w(KEYR, KEY1)
    b.w(KEYR, KEY2)
    b.w(ACR, 0)
    b.setbits(SR, 0xF0)
    assert b.r(OPTCR) & (1 << 5)                # software watchdog: no IWDG setup
    b.w(CR, 0)
    for i in range(4):
        b.setbits(CR, PG | X32)
        b.store(BASE + 4 * i, 0xA0 + i, 4)
        b.poll(SR, BSY)
        b.clearbits(CR, PG)
    assert b.r(SR) & 0xF0 == 0 and b.u32(BASE + 12) == 0xA3
    b.setbits(CR, LOCK)                         # UnInit
    assert b.r(CR) & LOCK
