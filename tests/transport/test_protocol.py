"""Pure protocol pieces: version decoding, firmware gates, clocks, chunk plans, variants, errors."""

from __future__ import annotations

import struct

import pytest

from gangflash.transport.stlink import (
    ApWait, DpWait, FirmwareTooOld, FrequencyNotSupported, MemoryFault, NoTarget, StlinkFault,
    UnknownCommand, UnsupportedProbe, plan_chunks,
)
from gangflash.transport.stlink.constants import (
    MAX_WIDE_TRANSFER, STATUS_TEXT, V2_SWD_DIVISORS, DebugCommand, Status,
)
from gangflash.transport.stlink.errors import status_error
from gangflash.transport.stlink.protocol import (
    Capabilities, ProbeVersion, block, check_firmware, memory_block, parse_com_freqs,
    parse_version, parse_version_ex, parse_voltage, pick_frequency, pick_v2_divisor,
)
from gangflash.transport.variants import (
    VARIANTS, decode_serial, decode_serial_descriptor, is_stlink, variant_for,
)


# --- version and gates -------------------------------------------------------------------------
def test_v2_version_is_big_endian_bit_packed():
    packed = (2 << 12) | (37 << 6) | 26
    v = parse_version(packed.to_bytes(2, "big") + struct.pack("<HH", 0x0483, 0x374B),
                      swim_field=False)
    assert (v.stlink, v.jtag, v.msd, v.swim, v.pid) == (2, 37, 26, 0, 0x374B)
    assert str(v) == "V2J37M26"


def test_original_v2_low_field_is_swim():
    packed = (2 << 12) | (29 << 6) | 7
    v = parse_version(packed.to_bytes(2, "big") + bytes(4), swim_field=True)
    assert (v.swim, v.msd) == (7, 0)
    assert str(v) == "V2J29S7"


def test_v3_version_ex_field_order():
    v = parse_version_ex(bytes([3, 1, 7, 3, 2, 0, 0, 0]) + struct.pack("<HH", 0x0483, 0x374E))
    assert (v.stlink, v.swim, v.jtag, v.msd, v.bridge) == (3, 1, 7, 3, 2)
    assert v.is_v3 and v.pid == 0x374E
    assert str(v) == "V3J7S1M3B2"


@pytest.mark.parametrize("jtag", [14, 24, 25])
def test_v2_below_j26_refused_naming_minimum_and_update(jtag):
    with pytest.raises(FirmwareTooOld) as info:
        check_firmware(ProbeVersion(stlink=2, jtag=jtag, msd=20), serial="ABC")
    text = str(info.value)
    assert f"V2J{jtag}" in text and "V2J26" in text
    assert "STM32CubeProgrammer" in text and "ABC" in text


def test_v2_j26_and_any_v3_accepted():
    check_firmware(ProbeVersion(stlink=2, jtag=26))
    check_firmware(ProbeVersion(stlink=3, jtag=1))


def test_j0_and_unknown_generation_refused():
    with pytest.raises(FirmwareTooOld, match="no SWD"):
        check_firmware(ProbeVersion(stlink=3, jtag=0))
    with pytest.raises(UnsupportedProbe):
        check_firmware(ProbeVersion(stlink=1, jtag=10))


def test_capabilities_follow_documented_gates():
    old = Capabilities.for_version(ProbeVersion(stlink=2, jtag=14), 64)
    assert not old.rw_status2 and not old.mem16 and not old.dap_registers
    j26 = Capabilities.for_version(ProbeVersion(stlink=2, jtag=26), 64)
    assert j26.rw_status2 and j26.mem16 and j26.dap_registers and not j26.init_ap
    assert j26.v2_swd_divisor and not j26.v3_com_freq and j26.max_rw8 == 64
    v3_old = Capabilities.for_version(ProbeVersion(stlink=3, jtag=5), 512)
    v3_new = Capabilities.for_version(ProbeVersion(stlink=3, jtag=6), 512)
    assert (v3_old.max_rw8, v3_new.max_rw8) == (64, 512)
    assert v3_new.v3_com_freq and not v3_new.v2_swd_divisor
    # a V3 seen at full speed never gets a transfer larger than one packet
    assert Capabilities.for_version(ProbeVersion(stlink=3, jtag=9), 64).max_rw8 == 64


# --- blocks and replies ------------------------------------------------------------------------
def test_blocks_are_16_bytes_zero_padded():
    assert block(0xF1) == b"\xF1" + bytes(15)
    with pytest.raises(ValueError):
        block(0xF2, 0x07, payload=bytes(15))


def test_memory_block_layout():
    cmd = memory_block(0xF2, DebugCommand.READMEM_32BIT, 0x08000400, 6144, apsel=1,
                       csw=0xA2000012)
    assert cmd[:2] == b"\xF2\x07"
    assert struct.unpack_from("<IHB", cmd, 2) == (0x08000400, 6144, 1)
    assert cmd[9:12] == bytes([0x00, 0x00, 0xA2])   # CSW bits 31:8, least significant first
    assert cmd[12:] == bytes(4)


def test_voltage_formula_and_no_reading():
    assert parse_voltage(struct.pack("<II", 1500, 2063)) == pytest.approx(3.3, abs=0.01)
    assert parse_voltage(bytes(8)) is None


def test_com_freq_list_parsed_and_zero_entries_dropped():
    reply = bytes([0x80, 0, 0, 0]) + struct.pack("<II10I", 1000, 4, 24000, 8000, 0, 1000,
                                                  *([0] * 6))
    assert parse_com_freqs(reply) == (1000, [24000, 8000, 1000])


# --- clocks ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("asked", "expected"), [
    (4600, (4600, 0)), (5000, (4600, 0)), (4000, (1800, 1)), (1000, (950, 3)), (1799, (1200, 2)),
    (100, (100, 40)), (99, (50, 79)), (5, (5, 798)),
])
def test_v2_divisor_never_above_request(asked, expected):
    assert pick_v2_divisor(asked) == expected


def test_v2_divisor_table_covers_both_reference_tables():
    for khz, div in {4600: 0, 1800: 1, 1200: 2, 950: 3, 480: 7, 240: 15, 125: 31, 100: 40,
                     50: 79, 25: 158, 15: 265, 5: 798, 650: 5, 400: 9, 360: 10, 150: 25}.items():
        assert V2_SWD_DIVISORS[khz] == div


def test_frequency_below_slowest_refused():
    with pytest.raises(FrequencyNotSupported, match="slowest supported: 5 kHz"):
        pick_v2_divisor(4)
    with pytest.raises(FrequencyNotSupported):
        pick_frequency([24000, 8000], 7999 // 2)


def test_v3_pick_is_fastest_not_above():
    assert pick_frequency([24000, 8000, 3300, 1000], 4000) == 3300
    assert pick_frequency([24000, 8000, 3300, 1000], 24000) == 24000


# --- chunking ----------------------------------------------------------------------------------
def _covers(chunks, address, length):
    """Chunks tile the range exactly, in order, and respect their width's alignment."""
    at = address
    for width, start, size in chunks:
        assert start == at and size > 0
        assert start % width == 0 and size % width == 0
        at += size
    assert at == address + length


def test_aligned_32bit_read_is_6144_byte_chunks_ignoring_1k_boundaries():
    chunks = plan_chunks(0x20000000, 16384, 4, max_rw8=64)
    assert [c.length for c in chunks] == [6144, 6144, 4096]
    assert {c.width for c in chunks} == {4}
    _covers(chunks, 0x20000000, 16384)


def test_range_across_1k_boundary_is_one_command():
    chunks = plan_chunks(0x200003F0, 64, 4, max_rw8=64)
    assert chunks == [(4, 0x200003F0, 64)]


def test_unaligned_head_and_tail_go_8bit():
    chunks = plan_chunks(0x20000001, 4 + 3 + 8 + 2, 4, max_rw8=64)
    assert chunks == [(1, 0x20000001, 3), (4, 0x20000004, 12), (1, 0x20000010, 2)]


def test_short_unaligned_range_is_all_8bit():
    assert plan_chunks(0x20000001, 2, 4, max_rw8=64) == [(1, 0x20000001, 2)]
    assert plan_chunks(0x20000003, 4, 4, max_rw8=64) == [(1, 0x20000003, 4)]


def test_8bit_respects_packet_limit():
    chunks = plan_chunks(0x20000000, 200, 1, max_rw8=64)
    assert [c.length for c in chunks] == [64, 64, 64, 8]
    chunks = plan_chunks(0x20000000, 1100, 1, max_rw8=512)
    assert [c.length for c in chunks] == [512, 512, 76]


def test_16bit_odd_start_and_odd_length():
    chunks = plan_chunks(0x08000001, 10, 2, max_rw8=64)
    assert chunks == [(1, 0x08000001, 1), (2, 0x08000002, 8), (1, 0x0800000A, 1)]


def test_zero_length_is_no_command():
    assert plan_chunks(0x1000, 0, 4, max_rw8=64) == []


@pytest.mark.parametrize("address", [0x20000000, 0x20000001, 0x20000002, 0x200003FF])
@pytest.mark.parametrize("length", [1, 3, 63, 64, 65, 1023, 1025, 6145, 12291])
@pytest.mark.parametrize("width", [1, 2, 4])
def test_plans_always_tile_the_range_within_limits(address, length, width):
    chunks = plan_chunks(address, length, width, max_rw8=64)
    _covers(chunks, address, length)
    for c in chunks:
        assert c.length <= (64 if c.width == 1 else MAX_WIDE_TRANSFER)
        assert c.width in (1, width)


def test_bad_width_and_range_rejected():
    with pytest.raises(ValueError):
        plan_chunks(0, 4, 3, max_rw8=64)
    with pytest.raises(ValueError):
        plan_chunks(0xFFFFFFFC, 8, 4, max_rw8=64)


# --- status table ------------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "cls"), [
    (0x10, ApWait), (0x14, DpWait), (0x05, NoTarget), (0x42, UnknownCommand),
    (0x81, StlinkFault), (0x99, StlinkFault),
])
def test_status_maps_to_typed_error_with_context(status, cls):
    error = status_error(status, serial="S1", command="READMEM_32BIT", address=0x20000000)
    assert type(error) is cls
    assert (error.serial, error.command, error.address, error.status) == (
        "S1", "READMEM_32BIT", 0x20000000, status)
    assert "S1" in str(error) and "0x20000000" in str(error)


def test_every_named_status_has_text():
    assert set(STATUS_TEXT) == set(Status)


def test_memory_reading_of_fault_codes():
    for code in (0x01, 0x11, 0x15, 0x18, 0x19, 0x81):
        assert isinstance(status_error(code, serial=None, command="x", memory=True), MemoryFault)
    assert isinstance(status_error(0x10, serial=None, command="x", memory=True), ApWait)


# --- variants and serials ----------------------------------------------------------------------
def test_variant_table_endpoints():
    assert (VARIANTS[0x3748].out_ep, VARIANTS[0x3748].in_ep, VARIANTS[0x3748].trace_ep) == (
        0x02, 0x81, 0x83)
    for pid in (0x374A, 0x374B, 0x3752, 0x374E, 0x374F, 0x3753, 0x3754, 0x3755, 0x3757):
        v = VARIANTS[pid]
        assert (v.out_ep, v.in_ep, v.trace_ep) == (0x01, 0x81, 0x82)
        assert v.max_packet == (512 if v.is_v3 else 64)
    assert variant_for(0x0483, 0x374E).name == "V3E"
    assert variant_for(0x0483, 0x3757).name == "V3PWR"
    assert not is_stlink(0x0483, 0x3744) and not is_stlink(0x0483, 0x374D)
    assert not is_stlink(0x1366, 0x3748)


def test_serial_12_chars_becomes_hex_of_low_bytes():
    raw = "".join(chr(0xFF00 | b) if b > 0x7F else chr(b) for b in bytes.fromhex(
        "55FF6B065177495619420887"))
    assert decode_serial(raw) == "55FF6B065177495619420887"
    # length rule, not printability rule: 12 printable characters are still hex-encoded
    assert decode_serial("ABCDEFGHIJKL") == "4142434445464748494A4B4C"
    assert decode_serial("0670FF484957847167071621") == "0670FF484957847167071621"


def test_serial_from_raw_descriptor():
    units = bytes.fromhex("55FF6B065177495619420887")
    desc = bytes([26, 3]) + b"".join(bytes([b, 0]) for b in units)
    assert decode_serial_descriptor(desc) == "55FF6B065177495619420887"
    text = "0670FF484957847167071621"
    desc = bytes([50, 3]) + text.encode("utf-16-le")
    assert decode_serial_descriptor(desc) == text
