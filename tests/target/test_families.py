"""Family database: every DEV_ID of the reference sheet resolves, geometries match the manuals."""

from __future__ import annotations

import pytest

from gangflash.sim.chips import CHIPS
from gangflash.target.errors import (AddressNotInFlash, CoreMismatch, FlashSizeError,
                                     GeometryError, TargetError, UnknownDevice)
from gangflash.target.families import IDCODE_ADDRESSES, PARTS, identify, idcode_addresses_for
from gangflash.target.geometry import KiB

BASE = 0x08000000
CPUID_M0, CPUID_M3, CPUID_M4 = 0x410CC200, 0x411FC231, 0x410FC241

# Every DEV_ID row of shared/reference/stm32-flash.md, with its family.
SHEET_DEV_IDS = {
    **dict.fromkeys((0x412, 0x410, 0x414, 0x430, 0x418, 0x420, 0x428), "F1"),
    **dict.fromkeys((0x440, 0x444, 0x445, 0x448, 0x442), "F0"),
    **dict.fromkeys((0x422, 0x438, 0x446, 0x439, 0x432), "F3"),
    **dict.fromkeys((0x413, 0x419, 0x434, 0x423, 0x433, 0x458, 0x431, 0x441, 0x421, 0x463), "F4"),
    **dict.fromkeys((0x449, 0x451, 0x452), "F7"),
    **dict.fromkeys((0x415, 0x435, 0x462, 0x464, 0x461, 0x470, 0x471), "L4"),
    **dict.fromkeys((0x457, 0x425, 0x417, 0x447), "L0"),
    **dict.fromkeys((0x466, 0x456, 0x460, 0x467), "G0"),
    **dict.fromkeys((0x468, 0x469, 0x479), "G4"),
    **dict.fromkeys((0x450, 0x480, 0x483), "H7"),
}


# Lines beyond the sheet's table: L1 (OpenOCD stm32lx.c) and F2 (the ID F4 rev A also reports).
OTHER_DEV_IDS = {**dict.fromkeys((0x416, 0x429, 0x427, 0x436, 0x437), "L1"), 0x411: "F2"}


@pytest.mark.parametrize("dev_id,family", sorted({**SHEET_DEV_IDS, **OTHER_DEV_IDS}.items()))
def test_every_sheet_dev_id_resolves_to_its_family(dev_id, family):
    part = identify(dev_id)
    assert part.family == family
    assert part.dev_id == dev_id
    assert part.idcode_address in IDCODE_ADDRESSES


def test_full_idcode_with_revision_resolves_by_its_dev_id_bits():
    assert identify(0x20036410).line == "F10x medium-density"


@pytest.mark.parametrize("part", PARTS.values(), ids=lambda p: f"{p.dev_id:03X}")
def test_every_line_has_a_geometry_at_its_largest_size(part):
    geometry = part.geometry(part.max_flash_kib)
    assert geometry.base == part.flash_base
    assert sum(u.size for u in geometry.units) == part.max_flash_kib * KiB
    assert part.controller.timing().erase_time(geometry.units[0].size).maximum > 0


def test_idcode_addresses_are_in_probe_order():
    assert IDCODE_ADDRESSES == (0xE0042000, 0x40015800, 0x5C001000, 0xE0044000)
    assert idcode_addresses_for(CPUID_M0) == (0x40015800,)
    assert idcode_addresses_for(None) == IDCODE_ADDRESSES


def test_f103c8_has_64_pages_of_1_kib():
    geometry = identify(0x410).geometry(64)
    assert len(geometry.units) == 64
    assert {u.size for u in geometry.units} == {1 * KiB}
    assert geometry.flash_end == BASE + 64 * KiB


def test_f103rc_has_128_pages_of_2_kib():
    geometry = identify(0x414).geometry(256)
    assert len(geometry.units) == 128
    assert {u.size for u in geometry.units} == {2 * KiB}


def test_f412zg_sectors_are_4x16_64_7x128():
    geometry = identify(0x441).geometry(1024)
    assert [u.size // KiB for u in geometry.units] == [16] * 4 + [64] + [128] * 7
    assert geometry.units[5].start == 0x08020000


def test_f429zi_2mib_is_dual_bank_with_sector_12_at_0x08100000():
    geometry = identify(0x419).geometry(2048)
    assert len(geometry.units) == 24 and geometry.dual_bank
    twelve = geometry.units[12]
    assert (twelve.index, twelve.start, twelve.size, twelve.bank, twelve.bank_index) == (
        12, 0x08100000, 16 * KiB, 1, 0)
    assert geometry.units[-1].index == 23 and geometry.flash_end == BASE + 2048 * KiB


def test_f42x_1mib_is_single_bank_unless_db1m_then_sectors_12_to_19_at_0x08080000():
    part = identify(0x419)
    assert [u.index for u in part.geometry(1024).units] == list(range(12))
    dual = part.geometry(1024, dual_bank=True)
    assert [u.index for u in dual.units] == list(range(8)) + list(range(12, 20))
    assert dual.unit_containing(0x08080000).index == 12
    assert [u.size // KiB for u in dual.bank_units(1)] == [16] * 4 + [64] + [128] * 3


def test_f42x_2mib_refuses_single_bank_mode():
    with pytest.raises(GeometryError, match="always dual-bank"):
        identify(0x419).geometry(2048, dual_bank=False)


def test_l432kc_has_128_pages_of_2_kib():
    geometry = identify(0x435).geometry(256)
    assert len(geometry.units) == 128 and not geometry.dual_bank


def test_l475vg_bank_2_starts_at_half_the_flash():
    geometry = identify(0x415).geometry(1024)
    page = geometry.unit_containing(0x08080000)
    assert (page.bank, page.bank_index, page.index) == (1, 0, 256)
    assert len(geometry.bank_units(0)) == len(geometry.bank_units(1)) == 256


def test_l4plus_pages_are_4_kib_dual_bank_and_8_kib_single_bank():
    part = identify(0x470)
    assert {u.size for u in part.geometry(2048).units} == {4 * KiB}
    assert {u.size for u in part.geometry(2048, dual_bank=False).units} == {8 * KiB}


def test_f1_xl_bank_2_starts_after_512_kib_and_uses_registers_at_plus_0x40():
    part = identify(0x430)
    geometry = part.geometry(768)
    assert geometry.unit_containing(0x08080000).bank == 1
    assert len(geometry.bank_units(0)) == 256 and len(geometry.bank_units(1)) == 128
    assert part.controller.bank2_register_offset == 0x40


def test_g4_cat3_trimmed_dual_bank_leaves_a_gap_before_bank_2():
    geometry = identify(0x469).geometry(128)
    assert geometry.regions == ((0x08000000, 0x08010000), (0x08040000, 0x08050000))
    with pytest.raises(AddressNotInFlash, match="0x08020000"):
        geometry.unit_containing(0x08020000)


def test_h743_1mib_puts_bank_2_at_0x08100000():
    geometry = identify(0x450).geometry(1024)
    assert geometry.regions[1][0] == 0x08100000
    assert geometry.units_overlapping(0x0807FFF0, 0x08100010)[-1].bank == 1


def test_units_overlapping_returns_every_touched_unit():
    geometry = identify(0x441).geometry(1024)
    touched = geometry.units_overlapping(0x08003FFF, 0x08010001)
    assert [u.index for u in touched] == [0, 1, 2, 3, 4]
    assert geometry.units_overlapping(0x08004000, 0x08004000) == ()


def test_unit_containing_outside_flash_names_the_address_and_range():
    geometry = identify(0x410).geometry(64)
    with pytest.raises(AddressNotInFlash) as caught:
        geometry.unit_containing(0x08010000)
    assert "0x08010000" in str(caught.value) and "0x08000000-0x0800FFFF" in str(caught.value)


def test_unknown_dev_id_is_a_typed_error_naming_the_idcode():
    with pytest.raises(UnknownDevice) as caught:
        identify(0x10006999)
    assert "0x10006999" in str(caught.value)
    assert caught.value.dev_id == 0x999 and isinstance(caught.value, TargetError)


def test_f4_rev_a_reporting_the_f2_id_is_an_f405_when_cpuid_says_m4():
    assert identify(0x411, cpuid=CPUID_M4).dev_id == 0x413
    assert identify(0x411, cpuid=CPUID_M3).family == "F2"


def test_cpuid_of_another_core_is_refused():
    with pytest.raises(CoreMismatch, match="Cortex-M0"):
        identify(0x410, cpuid=CPUID_M0)


def test_flash_size_register_values_are_checked_and_decoded():
    assert identify(0x410, flash_size_kib=64).dev_id == 0x410
    with pytest.raises(FlashSizeError, match="0xFFFF"):
        identify(0x410, flash_size_kib=0xFFFF)
    with pytest.raises(FlashSizeError):
        identify(0x410, flash_size_kib=256)       # more than any medium-density part has
    l1_cat4 = identify(0x436)
    assert l1_cat4.decode_flash_size(0) == 384 and l1_cat4.decode_flash_size(1) == 256
    assert identify(0x429).decode_flash_size(0xFF80) == 128     # low byte only on this line


def test_size_off_the_sector_boundaries_is_refused():
    with pytest.raises(GeometryError, match="boundary"):
        identify(0x441).geometry(80)


def test_l0_and_l1_read_erased_as_zero_and_have_a_gapped_unique_id():
    l0 = identify(0x417)
    assert l0.controller.erased_value == 0x00 and l0.controller.generation == "l0"
    assert l0.unique_id_addresses == (0x1FF80050, 0x1FF80054, 0x1FF80064)
    assert identify(0x437).unique_id_addresses[0] == 0x1FF800D0


def test_datasheet_timings_from_the_brief():
    approx = pytest.approx
    f1 = identify(0x410).controller.timing()
    assert (f1.program.typical, f1.program.maximum, f1.program_unit) == approx((52.5e-6, 70e-6, 2))
    page = f1.erase_time(1 * KiB)
    assert (page.minimum, page.maximum) == approx((20e-3, 40e-3))
    f4 = identify(0x441).controller
    assert f4.timing().parallelism == 32 and f4.program_unit == 4
    assert f4.timing().program.typical == approx(16e-6)
    typical = {w: [f4.timing(w).erase_time(s * KiB).typical for s in (16, 64, 128)]
               for w in (32, 16, 8)}
    assert typical == {32: approx([0.25, 0.55, 1.0]), 16: approx([0.3, 0.7, 1.3]),
                       8: approx([0.4, 1.2, 2.0])}
    assert f4.timing().mass_erase.typical == 8 and not f4.timing().program.estimate
    l4 = identify(0x435).controller.timing()
    assert (l4.program.typical, l4.program.maximum) == approx((81.7e-6, 90.8e-6))
    assert (l4.erase_time(2 * KiB).typical, l4.mass_erase.maximum) == approx((22e-3, 25e-3))
    assert identify(0x447).controller.timing().mass_erase is None


def test_watchdog_freeze_crc_clock_and_rdp_per_family():
    f1, f4, l4, g0 = identify(0x410), identify(0x413), identify(0x435), identify(0x466)
    assert (f1.debug.iwdg_freeze.register, f1.debug.iwdg_freeze.bit) == (0xE0042004, 8)
    assert (f4.debug.iwdg_freeze.register, f4.debug.iwdg_freeze.bit) == (0xE0042008, 12)
    assert (g0.debug.iwdg_freeze.register, g0.debug.iwdg_freeze.bit) == (0x40015808, 12)
    assert f1.controller.needs_hsi and f1.clocks.hsi_on.mask == 1
    assert (f1.crc.clock_enable.register, f1.crc.clock_enable.bit) == (0x40021014, 6)
    assert (f4.crc.clock_enable.register, f4.crc.clock_enable.bit) == (0x40023830, 12)
    assert (l4.crc.clock_enable.register, g0.crc.clock_enable.register) == (0x40021048, 0x40021038)
    assert f1.rdp.option_level0 == 0xA5 and f1.rdp.level(0x03FFFFFC) == 0
    assert f1.rdp.level(0x03FFFFFE) == 1
    assert f4.rdp.level(0x0FFFAAED) == 0 and f4.rdp.level(0x0FFFCCED) == 2
    assert l4.rdp.level(0xFFEFF8AA) == 0 and l4.rdp.level(0xFFEFF800) == 1


@pytest.mark.parametrize("chip", CHIPS.values(), ids=lambda c: c.name)
def test_database_agrees_with_the_simulated_chips(chip):
    part = identify(chip.idcode, cpuid=chip.cpuid, flash_size_kib=chip.flash_size // KiB)
    geometry = part.geometry(chip.flash_size // KiB)
    assert tuple(u.size for u in geometry.units) == chip.sectors
    assert part.flash_size_register == chip.flash_size_reg
    assert part.unique_id_address == chip.uid_addr
    assert part.controller.register_base == chip.flash_reg_base
    assert part.controller.program_unit == chip.program_unit
    assert part.clocks.rcc_base == chip.rcc_base
