"""The committed loader blobs are exactly what their sources assemble to, and the constants the
Python side uses are the ones the assembly uses.

Needs binutils-arm-none-eabi (./dev.sh installs it). Where it is missing the assembling tests
skip, except in CI (CI=true), where they fail: a blob nobody can rebuild must not pass silently.
"""

from __future__ import annotations

import os
import pathlib
import re

import pytest

import gangflash.target.loaders as loaders
from gangflash.target.loaders import build

SOURCE_DIR = pathlib.Path(loaders.__file__).parent
NAMES = ("f1", "f4", "l4")


def require_binutils() -> None:
    missing = build.missing_tools()
    if not missing:
        return
    message = f"binutils for ARM missing ({', '.join(missing)}): apt-get install binutils-arm-none-eabi"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def equates(*names: str) -> dict[str, int]:
    """``.equ NAME, expr`` of the given sources, evaluated (shifts, ors, parentheses only)."""
    values: dict[str, int] = {}
    for name in names:
        for line in (SOURCE_DIR / name).read_text().splitlines():
            match = re.match(r"\s*\.equ\s+(\w+),\s*([^@]+)", line)
            if match:
                expr = match.group(2).strip()
                assert re.fullmatch(r"[\w\s()<>|+\-x]+", expr), expr
                values[match.group(1)] = eval(expr, {}, dict(values))   # noqa: S307 - our own sources
    return values


def branch_target(code: bytes, offset: int) -> int:
    """Target of the Thumb-2 ``b.w`` (encoding T4) at ``offset``."""
    hw1 = int.from_bytes(code[offset:offset + 2], "little")
    hw2 = int.from_bytes(code[offset + 2:offset + 4], "little")
    assert hw1 >> 11 == 0b11110 and hw2 >> 14 == 0b10 and (hw2 >> 12) & 1, f"no b.w at +{offset}"
    s = (hw1 >> 10) & 1
    j1, j2 = (hw2 >> 13) & 1, (hw2 >> 11) & 1
    i1, i2 = 1 ^ j1 ^ s, 1 ^ j2 ^ s
    imm = (s << 24) | (i1 << 23) | (i2 << 22) | ((hw1 & 0x3FF) << 12) | ((hw2 & 0x7FF) << 1)
    if s:
        imm -= 1 << 25
    return offset + 4 + imm


@pytest.mark.parametrize("name", NAMES)
def test_source_reassembles_to_the_committed_bin(name):
    require_binutils()
    code, symbols = build.assemble(name)
    committed = (SOURCE_DIR / f"{name}.bin").read_bytes()
    assert code == committed, f"{name}.bin is stale: run python -m gangflash.target.loaders.build"
    blob = loaders.loader_for(name)
    assert blob.code == committed
    # the entry table the Python side relies on
    assert branch_target(code, blob.program_entry) == symbols["program_entry"]
    assert branch_target(code, blob.crc_entry) == symbols["crc_entry"]
    assert code[blob.exit_bkpt:blob.exit_bkpt + 2] == b"\x00\xbe"           # bkpt #0


def test_build_check_mode_agrees(capsys):
    require_binutils()
    assert build.main(["--check"]) == 0
    assert capsys.readouterr().out.count("matches") == len(NAMES)


def test_protocol_constants_match_the_assembly():
    shared = equates("protocol.s")
    prefixes = ("CB_", "CJ_", "FLAG_", "IWDG_")
    for name, value in shared.items():
        if name.startswith(prefixes):
            assert getattr(loaders, name) == value, name
    for status in loaders.Status:
        assert shared[f"STATUS_{status.name}"] == status.value


@pytest.mark.parametrize("name", NAMES)
def test_controller_constants_match_the_assembly(name):
    values = equates("protocol.s", f"{name}.s")
    blob = loaders.loader_for(name)
    assert values["FLASH_SR"] == blob.sr_offset
    assert values["FLASH_CR"] == blob.cr_offset
    assert values["SR_BSY"] == blob.bsy_mask
    assert values["SR_ERRORS"] == blob.error_mask
    if "UNIT" in values:
        assert values["UNIT"] == blob.unit


def test_loader_sizes_are_reported():
    """Not a limit, a record: f1 and l4 are ~400 bytes (streaming part ~250, CRC ~150); f4
    holds its streaming loop three times, one per PSIZE."""
    for name in NAMES:
        blob = loaders.loader_for(name)
        print(f"{name}: {len(blob.code)} bytes of code, min_ram {blob.min_ram}")
        assert len(blob.code) < 1024
