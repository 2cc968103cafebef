"""Journal rows as records, and their export to CSV and JSON Lines.

Exports are what leaves the line: a quality system imports the CSV, a script reads the JSONL. Both
carry the same fields in the same order (:data:`EXPORT_FIELDS`); the IDCODE is written in hex
(``0x10036410``) as the reference manuals print it, stage durations as a JSON object (a JSON
string inside the CSV cell), times as ISO 8601 UTC.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, ClassVar


@dataclass(frozen=True)
class BatchRecord:
    """One row of the ``batch`` table."""

    id: int
    name: str
    config_path: str | None
    firmware_path: str | None
    firmware_sha256: str | None
    started: str
    ended: str | None


@dataclass(frozen=True)
class SerialRecord:
    """One row of the ``serial_number`` table."""

    value: str
    counter_index: int
    source: str
    state: str              # allocated | used | burnt | free
    attempt_id: int | None
    allocated: str


@dataclass(frozen=True)
class AttemptRecord:
    """One row of the ``attempt`` table: one try at one board."""

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "id", "batch_id", "slot", "probe_serial", "port_path", "chip_idcode", "chip_uid",
        "firmware_sha256", "serial_number", "started", "ended", "result", "cause", "diagnostics",
        "stages")

    id: int
    batch_id: int
    slot: str
    probe_serial: str | None
    port_path: str | None
    chip_idcode: int | None
    chip_uid: str | None            # upper-case hex, 24 digits for the 96-bit UID
    firmware_sha256: str | None
    serial_number: str | None       # the number assigned to this attempt, if any
    started: str                    # ISO 8601 UTC
    ended: str | None
    result: str                     # running | passed | failed | aborted | not_finished
    cause: str | None               # one line
    diagnostics: str | None
    stages: dict[str, float] = field(default_factory=dict)   # stage -> seconds

    @classmethod
    def from_row(cls, row: tuple) -> AttemptRecord:
        values = list(row)
        values[-1] = json.loads(values[-1]) if values[-1] else {}
        return cls(*values)

    @property
    def duration_s(self) -> float | None:
        """Wall time from start to end, when the attempt ended."""
        if self.ended is None:
            return None
        return (datetime.fromisoformat(self.ended) - datetime.fromisoformat(self.started)).total_seconds()

    def export(self) -> dict[str, Any]:
        """The exported fields, in :data:`EXPORT_FIELDS` order."""
        return {
            "attempt_id": self.id, "batch_id": self.batch_id, "slot": self.slot,
            "probe_serial": self.probe_serial, "port_path": self.port_path,
            "chip_idcode": f"0x{self.chip_idcode:08X}" if self.chip_idcode is not None else None,
            "chip_uid": self.chip_uid, "firmware_sha256": self.firmware_sha256,
            "serial_number": self.serial_number, "started": self.started, "ended": self.ended,
            "duration_s": round(self.duration_s, 3) if self.duration_s is not None else None,
            "result": self.result, "cause": self.cause, "diagnostics": self.diagnostics,
            "stages": dict(self.stages),
        }


EXPORT_FIELDS = ("attempt_id", "batch_id", "slot", "probe_serial", "port_path", "chip_idcode",
                 "chip_uid", "firmware_sha256", "serial_number", "started", "ended", "duration_s",
                 "result", "cause", "diagnostics", "stages")


@contextmanager
def _text_out(file: str | Path | IO[str]) -> Iterator[IO[str]]:
    if isinstance(file, (str, Path)):
        with open(file, "w", encoding="utf-8", newline="") as handle:
            yield handle
    else:
        yield file


def write_csv(records: Iterable[AttemptRecord], file: str | Path | IO[str]) -> int:
    """Header plus one row per attempt; empty cells for unknown values. Returns the row count."""
    count = 0
    with _text_out(file) as handle:
        writer = csv.DictWriter(handle, fieldnames=EXPORT_FIELDS, lineterminator="\n")
        writer.writeheader()
        for record in records:
            row = record.export()
            row["stages"] = json.dumps(row["stages"])
            writer.writerow({key: "" if value is None else value for key, value in row.items()})
            count += 1
    return count


def write_jsonl(records: Iterable[AttemptRecord], file: str | Path | IO[str]) -> int:
    """One JSON object per line per attempt (null for unknown values). Returns the count."""
    count = 0
    with _text_out(file) as handle:
        for record in records:
            handle.write(json.dumps(record.export(), ensure_ascii=False) + "\n")
            count += 1
    return count
