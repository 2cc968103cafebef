"""The ``[serial_number]`` section of a batch config: where each board's unique number goes, how
it is made (a counter or a CSV column) and encoded, and checks that its flash area is sane.

The numbers themselves are handed out by the journal (``journal.Journal.allocate_serial``), which
alone knows which ones are taken; this module only validates the recipe and reads the CSV once,
so a missing column or a repeated value stops the batch before the first board.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from .config_errors import (
    BadValue, Collector, ConflictingKeys, MissingFile, SerialNumberPlacement, at_least, suggest,
)
from .config_schema import (
    ON_FAILURE, SERIAL_ENCODINGS, SERIAL_FORMATS, FirmwareSpec, SerialNumberSpec, TargetSpec,
    render_template,
)
from .partnumbers import FLASH_BASE

__all__ = ["read_serial_number"]

_SERIAL_KEYS = ("address", "format", "start", "step", "template", "file", "column", "encoding",
                "length", "include_uid", "on_failure")
_COUNTER_ONLY = ("start", "step", "template")
_CSV_ONLY = ("file", "column")


def read_serial_number(ck: Collector, data: dict, folder: Path, target: TargetSpec,
                       firmware: FirmwareSpec | None) -> SerialNumberSpec | None:
    """The ``[serial_number]`` recipe, or None when absent (or wrong: the problems are in ``ck``).

    ``target`` and ``firmware`` are the already-read sections, for the placement checks.
    """
    table = ck.table(data, "serial_number", _SERIAL_KEYS)
    if table is None:
        return None
    p = "serial_number"
    address = ck.get(table, f"{p}.address", int, required=True, allowed="a flash address such as 0x0800FC00",
                     check=lambda v: None if v >= 0 else "must not be negative")
    fmt = ck.get(table, f"{p}.format", str, required=True, choices=SERIAL_FORMATS)
    encoding = ck.get(table, f"{p}.encoding", str, "ascii", choices=SERIAL_ENCODINGS)
    include_uid = ck.get(table, f"{p}.include_uid", bool, False)
    on_failure = ck.get(table, f"{p}.on_failure", str, "burn", choices=ON_FAILURE)
    length = ck.get(table, f"{p}.length", int, None, check=at_least(1), allowed="bytes >= 1")
    for key in _CSV_ONLY if fmt == "counter" else _COUNTER_ONLY if fmt == "csv" else ():
        if key in table:
            ck.add(ConflictingKeys, f"{p}.{key}", f"only applies to format = "
                   f"{'csv' if fmt == 'counter' else 'counter'}, not {fmt!r}", hint="remove it")
    spec: dict[str, Any] = {}
    if fmt == "counter":
        spec = _counter(ck, table, encoding)
    elif fmt == "csv":
        spec = _csv_values(ck, table, folder)
        if encoding == "u32le":
            ck.add(ConflictingKeys, f"{p}.encoding", "u32le only works with format = 'counter'",
                   allowed="'ascii' for csv")
    if ck.failed(p) or address is None:
        return None
    needed = _serial_needed_length(fmt, encoding, spec)
    if length is None:
        length = needed
    elif needed and length < needed:
        ck.add(BadValue, f"{p}.length", f"{length} bytes cannot hold the serial number ({needed} needed)",
               allowed=f"at least {needed}")
        return None
    result = SerialNumberSpec(address=address, format=fmt, encoding=encoding, length=length,
                              include_uid=include_uid, on_failure=on_failure, **spec)
    _check_serial_area(ck, result, target, firmware)
    return result


def _counter(ck: Collector, table: dict, encoding: str) -> dict[str, Any]:
    p = "serial_number"
    start = ck.get(table, f"{p}.start", int, required=True, allowed="an integer, the first number")
    step = ck.get(table, f"{p}.step", int, 1, check=lambda v: "must not be 0" if v == 0 else None,
                  allowed="a non-zero integer")
    if encoding == "u32le":
        if "template" in table:
            ck.add(ConflictingKeys, f"{p}.template", "a u32le serial is written as a binary number, "
                   "not text", hint="remove template or use encoding = 'ascii'")
        if start is not None and not 0 <= start <= 0xFFFFFFFF:
            ck.add(BadValue, f"{p}.start", f"{start} does not fit 32 bits", allowed="0..4294967295")
        return {"start": start or 0, "step": step, "template": "%d"}
    template = ck.get(table, f"{p}.template", str, "%d", allowed="printf-like text with one integer, e.g. 'SN-%06d'")
    if start is not None and render_template(template, start) is None:
        ck.add(BadValue, f"{p}.template", f"{template!r} does not render one number as ASCII text",
               allowed="printf-like text with exactly one integer conversion, e.g. 'SN-%06d'")
    return {"start": start or 0, "step": step, "template": template}


def _csv_values(ck: Collector, table: dict, folder: Path) -> dict[str, Any]:
    p = "serial_number"
    text = ck.get(table, f"{p}.file", str, required=True, allowed="a CSV file path, relative to the config")
    column = ck.get(table, f"{p}.column", str)
    if text is None:
        return {}
    path = (folder / text).resolve()
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError:
        ck.add(MissingFile, f"{p}.file", f"serial-number file {path} does not exist")
        return {}
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        ck.add(MissingFile, f"{p}.file", f"cannot read {path}: {exc}")
        return {}
    if not rows or not rows[0]:
        ck.add(BadValue, f"{p}.file", f"{path.name} is empty", allowed="a header line, then one row per serial")
        return {}
    header = [name.strip() for name in rows[0]]
    column = column if column is not None else header[0]
    if column not in header:
        ck.add(BadValue, f"{p}.column", f"{path.name} has no column {column!r}", allowed=", ".join(header),
               hint=suggest(column, header))
        return {}
    at = header.index(column)
    values: list[str] = []
    first_row: dict[str, int] = {}
    for number, row in enumerate(rows[1:], start=2):
        value = row[at].strip() if at < len(row) else ""
        if not row or not any(cell.strip() for cell in row):
            continue                                    # blank line
        if not value or not value.isascii():
            ck.add(BadValue, f"{p}.file", f"{path.name} line {number}: {column} is "
                   f"{'empty' if not value else 'not ASCII'}", allowed="one non-empty ASCII value per row")
            continue
        if value in first_row:
            ck.add(BadValue, f"{p}.file", f"{path.name} line {number}: {value!r} repeats line "
                   f"{first_row[value]}", allowed="each serial number once")
            continue
        first_row[value] = number
        values.append(value)
    if not values and not ck.failed(f"{p}.file"):
        ck.add(BadValue, f"{p}.file", f"{path.name} has no serial numbers in column {column!r}")
    return {"file": path, "column": column, "csv_values": tuple(values)}


def _serial_needed_length(fmt: str, encoding: str, spec: dict[str, Any]) -> int:
    """Bytes the serial needs: 4 for u32le, the first rendered counter, the longest CSV value."""
    if encoding == "u32le":
        return 4
    if fmt == "csv":
        return max((len(v) for v in spec.get("csv_values", ())), default=0)
    text = render_template(spec["template"], spec["start"])
    return len(text) if text else 0


def _check_serial_area(ck: Collector, spec: SerialNumberSpec, target: TargetSpec,
                       firmware: FirmwareSpec | None) -> None:
    start, end = spec.area
    key = "serial_number.address"
    if start < FLASH_BASE:
        ck.add(SerialNumberPlacement, key, f"0x{start:08X} is below flash (STM32 flash starts at "
               f"0x{FLASH_BASE:08X})", allowed="an address inside the chip's flash")
        return
    if target.part is not None and end > target.part.flash_end:
        ck.add(SerialNumberPlacement, key, f"the serial area 0x{start:08X}..0x{end:08X} ({spec.area_size} "
               f"bytes) runs past {target.part.name} flash, which ends at 0x{target.part.flash_end:08X}",
               allowed=f"0x{FLASH_BASE:08X}..0x{target.part.flash_end - spec.area_size:08X}")
        return
    for seg_start, seg_end in firmware.segments if firmware else ():
        if start < seg_end and seg_start < end:
            ck.add(SerialNumberPlacement, key, f"the serial area 0x{start:08X}..0x{end:08X} overlaps the "
                   f"image at 0x{max(start, seg_start):08X}..0x{min(end, seg_end):08X}",
                   hint="put it in flash the image does not use (e.g. the last page)")
            return


