"""Decide what to erase and what to write, before touching the chip.

From the image and the chip's erase units: which units the image touches; the full content each
touched unit must end with (image bytes, plus the unit's current bytes where the image leaves a
hole, so data outside the image survives the erase); which of them already hold exactly that
(skipped: a re-flash of an unchanged image does almost nothing); and whether one mass erase is
cheaper than erasing unit by unit (only when nothing outside the image would be lost).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from .controllers import Unit


@dataclass
class UnitWork:
    """One erase unit the image touches."""

    unit: Unit
    content: bytearray                      # what the unit must hold afterwards
    image_ranges: list[tuple[int, int]]     # (offset, length) within the unit coming from the image
    skip: bool = False                      # already holds ``content``

    @property
    def needs_fill(self) -> bool:
        return sum(n for _, n in self.image_ranges) < self.unit.size


@dataclass
class FlashPlan:
    """The decisions; ``describe`` says them in one line for the log and the journal."""

    work: list[UnitWork]
    mass_erase: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def to_program(self) -> list[UnitWork]:
        return [w for w in self.work if not w.skip]

    @property
    def program_bytes(self) -> int:
        return sum(w.unit.size for w in self.to_program)

    def describe(self) -> str:
        todo = self.to_program
        erase = "mass erase" if self.mass_erase else f"erase {len(todo)} unit(s)"
        return (f"{len(self.work)} unit(s) touched, {len(self.work) - len(todo)} already up to date; "
                f"{erase}, program {self.program_bytes} bytes")


def touched_units(segments: Iterable[tuple[int, bytes]], units: Sequence[Unit]) -> list[UnitWork]:
    """Units overlapping the image, each with the image's bytes placed (holes left erased for now)."""
    by_index: dict[int, UnitWork] = {}
    for address, data in segments:
        end = address + len(data)
        for unit in units:
            if unit.end <= address or unit.start >= end:
                continue
            work = by_index.get(unit.index)
            if work is None:
                work = by_index[unit.index] = UnitWork(unit, bytearray(b"\xff" * unit.size), [])
            lo, hi = max(address, unit.start), min(end, unit.end)
            work.content[lo - unit.start:hi - unit.start] = data[lo - address:hi - address]
            work.image_ranges.append((lo - unit.start, hi - lo))
    return [by_index[i] for i in sorted(by_index)]


def fill_holes(work: UnitWork, current: bytes) -> None:
    """Keep the unit's current bytes wherever the image does not write."""
    merged = bytearray(current)
    for offset, length in work.image_ranges:
        merged[offset:offset + length] = work.content[offset:offset + length]
    work.content = merged


def choose_erase(work: list[UnitWork], units: Sequence[Unit], *, strategy: str,
                 unit_erase_s: Callable[[Unit], float], mass_erase_s: float, blank_elsewhere: bool) -> bool:
    """Mass erase when asked, or when it is cheaper by the datasheet times and nothing outside
    the image would be lost (every other unit is blank or the image covers the whole flash)."""
    todo = [w for w in work if not w.skip]
    if strategy == "mass":
        return True
    if strategy == "sectors" or not todo:
        return False
    covers_all = len(work) == len(units)
    if not (covers_all or blank_elsewhere):
        return False
    if any(w.skip for w in work):
        return False                                 # mass erase would undo a skipped unit
    return mass_erase_s < sum(unit_erase_s(w.unit) for w in todo)
