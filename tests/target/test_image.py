"""Firmware images: every format, gaps kept, merging, hashes; errors name file, line, address."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pytest
from intelhex import IntelHex

from gangflash.target.errors import (ChecksumError, EmptyImage, ImageCorrupt, ImageError,
                                     ImageFormatError, ImageNotFound, ImageOutOfRange,
                                     ImageOverlap, MissingBaseAddress, TruncatedImage)
from gangflash.target.families import identify
from gangflash.target.image import Segment, check_fits, load_image

FLASH = 0x08000000

# --- fixtures ----------------------------------------------------------------------------------


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def make_hex(tmp_path, name="fw.hex", *, blocks, start=None):
    """An Intel HEX file written by the intelhex library."""
    hexfile = IntelHex()
    for address, data in blocks:
        hexfile.puts(address, data)
    if start is not None:
        hexfile.start_addr = {"EIP": start}
    path = tmp_path / name
    hexfile.write_hex_file(str(path))
    return path


def need_binutils():
    if shutil.which("arm-none-eabi-as") and shutil.which("arm-none-eabi-ld"):
        return
    if os.environ.get("CI") == "true":
        pytest.fail("arm-none-eabi binutils missing in CI (dev.sh installs them)", pytrace=False)
    pytest.skip("arm-none-eabi binutils not installed (./dev.sh setup installs them)")


def build_elf(tmp_path, source, script, name="fw.elf", ld_flags=()):
    """Assemble and link with arm-none-eabi binutils into tmp_path."""
    need_binutils()
    (tmp_path / "fw.s").write_text(source)
    (tmp_path / "fw.ld").write_text(script)
    subprocess.run(["arm-none-eabi-as", "fw.s", "-o", "fw.o"], cwd=tmp_path, check=True)
    subprocess.run(["arm-none-eabi-ld", *ld_flags, "-T", "fw.ld", "fw.o", "-o", name],
                   cwd=tmp_path, check=True)
    return tmp_path / name


ELF_SOURCE = """
    .syntax unified
    .thumb
    .section .isr_vector, "a"
    .word 0x20005000
    .word _start + 1
    .text
    .global _start
_start:
    b _start
    .align 2
    .section .data, "aw"
    .word 0xDEADBEEF
    .word 0x0BADF00D
    .section .bss, "aw", %nobits
    .space 64
    .section .tail, "a"
    .word 0xCAFEF00D
"""
# .data runs at 0x20000000 (p_vaddr) but is stored after .text in flash (p_paddr, AT> FLASH);
# .bss shares its segment, so that segment's p_memsz exceeds p_filesz by the 64 zero bytes.
ELF_SCRIPT = """
MEMORY { FLASH (rx) : ORIGIN = 0x08000000, LENGTH = 64K
         RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 20K }
ENTRY(_start)
SECTIONS {
  .isr_vector : { KEEP(*(.isr_vector)) } > FLASH
  .text : { *(.text*) } > FLASH
  .data : { *(.data*) } > RAM AT> FLASH
  .bss : { *(.bss*) } > RAM
  .tail 0x08001000 : { KEEP(*(.tail)) } > FLASH
}
"""

SREC = "\n".join([
    "S00600004844521B",                                  # header "HDR"
    "S31508000000000102030405060708090A0B0C0D0E0F6A",    # 16 bytes at 0x08000000
    "S30D0800001010111213141516173E",                    # 8 bytes at 0x08000010 (adjacent)
    "S30908000100AABBCCDDDF",                            # 4 bytes at 0x08000100 (after a gap)
    "S5030003F9",                                        # 3 data records
    "S70508000000F2",                                    # start address 0x08000000
]) + "\n"


# --- Intel HEX ---------------------------------------------------------------------------------

def test_hex_keeps_gaps_and_merges_adjacent_records(tmp_path):
    path = make_hex(tmp_path, blocks=[(FLASH, bytes(range(40))), (FLASH + 0x800, b"\x01\x02")],
                    start=FLASH + 0x101)
    image = load_image(path)
    assert image.format == "hex"
    assert [(s.address, s.size) for s in image] == [(FLASH, 40), (FLASH + 0x800, 2)]
    assert image.segments[0].data == bytes(range(40))     # 3 records of <= 16 bytes, one segment
    assert (image.size, image.start, image.end) == (42, FLASH, FLASH + 0x802)
    assert image.entry_point == FLASH + 0x101


def test_hex_bad_checksum_names_file_and_line(tmp_path):
    good = make_hex(tmp_path, blocks=[(FLASH, bytes(range(48)))]).read_text().splitlines()
    good[2] = good[2][:-2] + ("00" if good[2][-2:] != "00" else "01")
    path = write(tmp_path, "bad.hex", "\n".join(good) + "\n")
    with pytest.raises(ChecksumError) as caught:
        load_image(path)
    assert "bad.hex" in str(caught.value) and "line 3" in str(caught.value)
    assert caught.value.line == 3 and caught.value.path == path


def test_hex_writing_an_address_twice_is_refused_even_with_the_same_data(tmp_path):
    record = ":040000001122334452"
    text = f":020000040800F2\n{record}\n{record}\n:00000001FF\n"
    with pytest.raises(ImageOverlap) as caught:
        load_image(write(tmp_path, "twice.hex", text))
    message = str(caught.value)
    assert "twice.hex" in message and "line 3" in message and "0x08000000" in message
    assert caught.value.address == FLASH


def test_hex_without_end_of_file_record_is_truncated(tmp_path):
    text = ":020000040800F2\n:0400000011223344\n"[:-1] + "52\n"
    with pytest.raises(TruncatedImage, match="end-of-file record") as caught:
        load_image(write(tmp_path, "cut.hex", text))
    assert "cut.hex" in str(caught.value)


def test_hex_records_after_end_of_file_are_refused(tmp_path):
    one = make_hex(tmp_path, "a.hex", blocks=[(FLASH, b"\x01\x02")]).read_text()
    two = make_hex(tmp_path, "b.hex", blocks=[(FLASH + 0x100, b"\x03")]).read_text()
    with pytest.raises(ImageCorrupt, match="line 4") as caught:
        load_image(write(tmp_path, "both.hex", one + two))
    assert "concatenated" in str(caught.value)


def test_hex_with_only_an_end_record_is_empty(tmp_path):
    with pytest.raises(EmptyImage, match="empty.hex"):
        load_image(write(tmp_path, "empty.hex", ":00000001FF\n"))


# --- raw binary --------------------------------------------------------------------------------

def test_bin_needs_a_base_address(tmp_path):
    path = write(tmp_path, "fw.bin", b"\x01\x02\x03\x04")
    with pytest.raises(MissingBaseAddress, match="fw.bin.*base_address"):
        load_image(path)
    image = load_image(path, base_address=FLASH)
    assert image.segments == (Segment(FLASH, b"\x01\x02\x03\x04"),)


def test_bin_keeps_erased_looking_bytes_as_data(tmp_path):
    image = load_image(write(tmp_path, "fw.bin", b"\xff" * 8), base_address=FLASH)
    assert image.size == 8


def test_empty_bin_is_refused(tmp_path):
    with pytest.raises(EmptyImage, match="fw.bin"):
        load_image(write(tmp_path, "fw.bin", b""), base_address=FLASH)


def test_base_address_is_refused_for_formats_that_carry_addresses(tmp_path):
    path = make_hex(tmp_path, blocks=[(FLASH, b"\x01")])
    with pytest.raises(ImageFormatError, match="raw binaries only"):
        load_image(path, base_address=FLASH)


# --- ELF ---------------------------------------------------------------------------------------

def test_elf_uses_physical_addresses_and_drops_the_bss_zero_fill(tmp_path):
    image = load_image(build_elf(tmp_path, ELF_SOURCE, ELF_SCRIPT))
    assert image.format == "elf"
    # vectors (8) + text (4) + .data initialiser (8) stored at its LMA right after .text,
    # then .tail after a gap; nothing at the RAM address 0x20000000, no 64 zero bytes of .bss.
    assert [(s.address, s.size) for s in image] == [(FLASH, 20), (FLASH + 0x1000, 4)]
    assert image.segments[0].data[12:] == bytes.fromhex("EFBEADDE0DF0AD0B")
    assert image.segments[1].data == bytes.fromhex("0DF0FECA")
    assert image.entry_point == FLASH + 8


def test_elf_segments_writing_the_same_address_are_refused(tmp_path):
    source = '.section .one, "a"\n.word 0x11111111\n.section .two, "a"\n.word 0x22222222\n'
    script = "SECTIONS { .one 0x08000000 : { KEEP(*(.one)) } .two 0x08000000 : { KEEP(*(.two)) } }"
    path = build_elf(tmp_path, source, script, ld_flags=("--no-check-sections",))
    with pytest.raises(ImageOverlap) as caught:
        load_image(path)
    message = str(caught.value)
    assert "fw.elf" in message and "0x08000000-0x08000003" in message
    assert "program header 0" in message and "program header 1" in message


def test_truncated_elf_is_reported_as_truncated(tmp_path):
    data = build_elf(tmp_path, ELF_SOURCE, ELF_SCRIPT).read_bytes()
    for length in (40, 200):       # headers cut / segment data cut
        path = write(tmp_path, f"cut{length}.elf", data[:length])
        with pytest.raises(TruncatedImage, match=f"cut{length}.elf"):
            load_image(path)


def test_non_elf_with_elf_extension_is_corrupt(tmp_path):
    with pytest.raises(ImageCorrupt, match=r"fake\.elf: not an ELF file"):
        load_image(write(tmp_path, "fake.elf", b"MZ\x90\x00 not an ELF at all"))


def test_elf_for_another_machine_is_refused(tmp_path):
    data = bytearray(build_elf(tmp_path, ELF_SOURCE, ELF_SCRIPT).read_bytes())
    data[18:20] = (62).to_bytes(2, "little")         # e_machine = EM_X86_64
    with pytest.raises(ImageFormatError, match="EM_X86_64.*EM_ARM"):
        load_image(write(tmp_path, "x86.elf", bytes(data)))


# --- Motorola S-record -------------------------------------------------------------------------

def test_srec_keeps_gaps_merges_adjacent_records_and_reads_the_start_address(tmp_path):
    image = load_image(write(tmp_path, "fw.srec", SREC))
    assert image.format == "srec"
    assert [(s.address, s.size) for s in image] == [(FLASH, 24), (FLASH + 0x100, 4)]
    assert image.segments[0].data == bytes(range(24))
    assert image.entry_point == FLASH


def test_srec_accepts_s1_s2_with_their_terminators(tmp_path):
    s1 = load_image(write(tmp_path, "a.s19", "S10510000102E7\nS9031000EC\n"))
    s2 = load_image(write(tmp_path, "b.s28", "S2060100000102F5\nS804010000FA\n"))
    assert (s1.start, s1.entry_point, s2.start, s2.entry_point) == (0x1000, 0x1000,
                                                                     0x10000, 0x10000)


def test_srec_bad_checksum_names_file_and_line(tmp_path):
    text = SREC.replace("S30908000100AABBCCDDDF", "S30908000100AABBCCDDDE")
    with pytest.raises(ChecksumError) as caught:
        load_image(write(tmp_path, "bad.srec", text))
    assert "bad.srec, line 4" in str(caught.value) and "expected 0xDF" in str(caught.value)


def test_srec_record_count_mismatch_is_refused(tmp_path):
    text = SREC.replace("S5030003F9", "S5030002FA")
    with pytest.raises(ImageCorrupt, match="line 5: S5 count says 2 data records.* has 3"):
        load_image(write(tmp_path, "count.srec", text))


def test_srec_without_termination_record_is_truncated(tmp_path):
    text = SREC.replace("S70508000000F2\n", "")
    with pytest.raises(TruncatedImage, match="cut.srec: no S7/S8/S9"):
        load_image(write(tmp_path, "cut.srec", text))


def test_srec_overlapping_records_name_both_lines(tmp_path):
    text = SREC.replace("S5030003F9\n", "S307080000080809D7\n")
    with pytest.raises(ImageOverlap) as caught:
        load_image(write(tmp_path, "twice.srec", text))
    message = str(caught.value)
    assert "0x08000008-0x08000009" in message and "line 2" in message and "line 5" in message
    assert caught.value.line == 5


def test_srec_garbage_line_is_corrupt(tmp_path):
    with pytest.raises(ImageCorrupt, match="junk.srec, line 2: not an S-record"):
        load_image(write(tmp_path, "junk.srec", "S00600004844521B\nhello\n"))


# --- detection, files, hashes ------------------------------------------------------------------

def test_format_is_detected_from_content_when_the_extension_says_nothing(tmp_path):
    hexfile = make_hex(tmp_path, blocks=[(FLASH, b"\x01")])
    assert load_image(write(tmp_path, "a.dat", hexfile.read_bytes())).format == "hex"
    assert load_image(write(tmp_path, "b.dat", SREC)).format == "srec"
    elf = build_elf(tmp_path, ELF_SOURCE, ELF_SCRIPT)
    assert load_image(write(tmp_path, "c.dat", elf.read_bytes())).format == "elf"
    with pytest.raises(ImageFormatError, match="cannot tell the format"):
        load_image(write(tmp_path, "d.dat", b"\x00\x01"))
    assert load_image(tmp_path / "d.dat", base_address=FLASH).format == "bin"


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(ImageNotFound, match="nothere.hex: no such image file"):
        load_image(tmp_path / "nothere.hex")


def test_unknown_format_name_lists_the_allowed_ones(tmp_path):
    with pytest.raises(ImageFormatError, match="bin, hex, elf, srec"):
        load_image(write(tmp_path, "fw.bin", b"\x01"), format="uf2")


def test_content_hash_is_format_independent_and_file_hash_is_the_files(tmp_path):
    data = bytes(range(256)) * 4
    from_bin = load_image(write(tmp_path, "fw.bin", data), base_address=FLASH)
    from_hex = load_image(make_hex(tmp_path, blocks=[(FLASH, data)]))
    assert from_bin.sha256 == from_hex.sha256
    assert from_bin.file_sha256 == hashlib.sha256(data).hexdigest()
    assert from_hex.file_sha256 != from_bin.file_sha256
    moved = load_image(tmp_path / "fw.bin", base_address=FLASH + 4)
    assert moved.sha256 != from_bin.sha256


def test_clipped_returns_the_parts_inside_a_range(tmp_path):
    image = load_image(write(tmp_path, "fw.srec", SREC))
    assert image.clipped(FLASH + 0x10, FLASH + 0x102) == [
        Segment(FLASH + 0x10, bytes(range(16, 24))), Segment(FLASH + 0x100, b"\xAA\xBB")]


def test_image_errors_carry_board_context_added_later(tmp_path):
    with pytest.raises(ImageError) as caught:
        load_image(tmp_path / "gone.bin", base_address=FLASH)
    caught.value.add_context(board="slot-3", stage="load")
    assert str(caught.value).endswith("(board slot-3, during load)")


# --- fitting the chip --------------------------------------------------------------------------

def test_image_inside_flash_fits(tmp_path):
    image = load_image(write(tmp_path, "fw.srec", SREC))
    check_fits(image, FLASH, FLASH + 64 * 1024, part_name="STM32F103C8")


def test_image_past_the_flash_end_names_first_address_and_range(tmp_path):
    image = load_image(write(tmp_path, "big.bin", bytes(70 * 1024)), base_address=FLASH)
    with pytest.raises(ImageOutOfRange) as caught:
        check_fits(image, FLASH, FLASH + 64 * 1024, part_name="STM32F103C8")
    message = str(caught.value)
    assert "big.bin" in message and "0x08010000" in message and "STM32F103C8" in message
    assert "0x08000000-0x0800FFFF" in message and caught.value.address == 0x08010000


def test_image_below_the_flash_base_is_refused(tmp_path):
    image = load_image(write(tmp_path, "ram.bin", b"\x01\x02"), base_address=0x20000000)
    with pytest.raises(ImageOutOfRange, match="writes 0x20000000"):
        check_fits(image, FLASH, FLASH + 64 * 1024, part_name="STM32F103C8")


def test_image_in_the_gap_between_banks_is_refused(tmp_path):
    part = identify(0x469)                  # G47x, 128 KiB dual bank: bank 2 at 0x08040000
    geometry = part.geometry(128)
    image = load_image(write(tmp_path, "gap.bin", b"\x01" * 16), base_address=0x08020000)
    check_fits(load_image(tmp_path / "gap.bin", base_address=0x08040000), geometry.base,
               geometry.flash_end, part_name=part.name, regions=geometry.regions)
    with pytest.raises(ImageOutOfRange, match="writes 0x08020000"):
        check_fits(image, geometry.base, geometry.flash_end, part_name=part.name,
                   regions=geometry.regions)


def test_crlf_line_endings_are_accepted_and_lines_still_counted(tmp_path):
    image = load_image(write(tmp_path, "dos.srec", SREC.replace("\n", "\r\n")))
    assert image.size == 28
    bad = SREC.replace("S30908000100AABBCCDDDF", "S30908000100AABBCCDDDE").replace("\n", "\r\n")
    with pytest.raises(ChecksumError, match="line 4"):
        load_image(write(tmp_path, "dos-bad.srec", bad))


def test_non_ascii_byte_in_a_text_format_names_its_line(tmp_path):
    with pytest.raises(ImageCorrupt, match=r"odd.hex, line 2: byte 0xC3 is not ASCII"):
        load_image(write(tmp_path, "odd.hex", ":00000001FF\n\xe9\n"))


def test_hex_record_with_wrong_length_is_corrupt_with_its_line(tmp_path):
    text = ":020000040800F2\n:0500000011223344FF\n:00000001FF\n"
    with pytest.raises(ImageCorrupt, match=r"len.hex, line 2: invalid Intel HEX record.*count"):
        load_image(write(tmp_path, "len.hex", text))
