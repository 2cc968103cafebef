"""Flash geometry: how a part's flash is cut into erase units, for the size the chip reports.

A line of parts (one DEV_ID) shares a *layout*: the sequence of erase-unit sizes from the start of
a bank (uniform pages, or the F2/F4/F7 sector map whose last size repeats), whether the flash is
split into two banks, where bank 2 starts and how its units are numbered. The flash size comes
from the chip's flash-size register at run time, so the geometry is computed, never tabulated per
part number. Dual-bank mode is fixed by hardware on some sizes and chosen by an option bit on
others; the caller that has read the option bytes passes the truth, otherwise the factory default
applies.

Numbering: ``EraseUnit.index`` follows the reference manuals (F42x/43x bank-2 sectors are 12-23,
also in the 1 MiB DB1M layout; L4 bank-2 pages continue after bank 1), ``bank_index`` counts from
the start of its bank (what L4/G0/G4 PNB with BKER and H7 bank-2 SNB expect). How a number is
encoded into a control register is the flash layer's business.
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass, field
from functools import cached_property

from gangflash.target.errors import AddressNotInFlash, GeometryError

log = logging.getLogger(__name__)

KiB = 1024


@dataclass(frozen=True)
class EraseUnit:
    """One page or sector: the smallest piece of flash the controller erases."""

    start: int
    size: int
    index: int          # reference-manual number (page n / sector n)
    bank: int           # 0 = bank 1, 1 = bank 2
    bank_index: int     # position inside its bank, from 0

    @property
    def end(self) -> int:
        """First address after the unit."""
        return self.start + self.size

    def __contains__(self, address: int) -> bool:
        return self.start <= address < self.end


@dataclass(frozen=True)
class FlashLayout:
    """How one line's flash is cut, for any size it comes in.

    ``single`` / ``dual`` list erase-unit sizes (bytes) from the start of a bank; the last size
    repeats until the bank is full. ``dual_always`` / ``dual_optional`` are the flash sizes (KiB)
    where dual-bank mode is fixed by hardware / chosen by an option bit; ``None`` means every size.
    ``bank1_kib`` fixes bank 1's size (F1 XL: 512 KiB), otherwise the banks split evenly.
    ``bank2_offset`` fixes where bank 2 starts relative to the flash base (G4 cat 3 and H7 leave a
    gap on trimmed sizes), otherwise it follows bank 1. ``bank2_first_index`` is the reference
    number of bank 2's first unit (F4: 12), otherwise numbering continues. ``dual_option_name``
    names the option bit that selects the mode where software can (for the code that reads it
    and for messages).
    """

    single: tuple[int, ...]
    dual: tuple[int, ...] | None = None
    dual_always: frozenset[int] | None = frozenset()
    dual_optional: frozenset[int] | None = frozenset()
    dual_default: bool = False
    dual_option_name: str = ""
    bank1_kib: int | None = None
    bank2_offset: int | None = None
    bank2_first_index: int | None = None

    @staticmethod
    def _applies(sizes: frozenset[int] | None, size_kib: int) -> bool:
        return sizes is None or size_kib in sizes

    def dual_bank_for(self, size_kib: int, requested: bool | None) -> bool:
        """Resolve the bank mode for a size: hardware-fixed, else the request, else the factory
        default. Raises GeometryError for a request the part cannot honour."""
        if self.dual is not None and self._applies(self.dual_always, size_kib):
            if requested is False:
                raise GeometryError(f"a {size_kib} KiB part of this line is always dual-bank; "
                                    "single-bank mode was requested")
            return True
        if self.dual is not None and self._applies(self.dual_optional, size_kib):
            if requested is None:
                log.debug("bank mode of a %d KiB part: factory default of %s (%s bank)", size_kib,
                          self.dual_option_name or "the option bytes",
                          "dual" if self.dual_default else "single")
                return self.dual_default
            return requested
        if requested:
            raise GeometryError(f"a {size_kib} KiB part of this line has no dual-bank mode"
                                " (or its layout is unconfirmed)")
        return False

    def build(self, base: int, size_kib: int, *, dual_bank: bool | None = None) -> FlashGeometry:
        """The geometry of a part of this line with ``size_kib`` of flash at ``base``."""
        if size_kib <= 0:
            raise GeometryError(f"flash size must be positive, got {size_kib} KiB")
        size = size_kib * KiB
        dual = self.dual_bank_for(size_kib, dual_bank)
        if not dual:
            units = _cut(self.single, base, size, bank=0, first_index=0)
            return FlashGeometry(base=base, size=size, units=tuple(units), dual_bank=False)
        assert self.dual is not None
        bank1 = self.bank1_kib * KiB if self.bank1_kib is not None else size // 2
        if not 0 < bank1 < size:
            raise GeometryError(f"a {size_kib} KiB part cannot hold a {bank1 // KiB} KiB bank 1")
        bank2 = size - bank1
        bank2_start = base + (self.bank2_offset if self.bank2_offset is not None else bank1)
        if bank2_start < base + bank1:
            raise GeometryError(f"bank 2 at 0x{bank2_start:08X} would overlap bank 1")
        first = _cut(self.dual, base, bank1, bank=0, first_index=0)
        second_index = (self.bank2_first_index if self.bank2_first_index is not None
                        else len(first))
        second = _cut(self.dual, bank2_start, bank2, bank=1, first_index=second_index)
        return FlashGeometry(base=base, size=size, units=tuple(first + second), dual_bank=True)


def _cut(pattern: tuple[int, ...], start: int, size: int, *, bank: int,
         first_index: int) -> list[EraseUnit]:
    """Cut ``size`` bytes at ``start`` into units following ``pattern`` (last size repeats)."""
    units: list[EraseUnit] = []
    offset = 0
    while offset < size:
        unit_size = pattern[min(len(units), len(pattern) - 1)]
        if offset + unit_size > size:
            raise GeometryError(
                f"{size // KiB} KiB does not end on an erase-unit boundary of this layout "
                f"(unit {len(units)} of {unit_size // KiB} KiB at offset 0x{offset:X} overruns)")
        units.append(EraseUnit(start=start + offset, size=unit_size,
                               index=first_index + len(units), bank=bank,
                               bank_index=len(units)))
        offset += unit_size
    return units


@dataclass(frozen=True)
class FlashGeometry:
    """The erase units of one chip's flash, in address order, with lookups by address."""

    base: int
    size: int                       # bytes of flash (the banks' sum; gaps not counted)
    units: tuple[EraseUnit, ...]
    dual_bank: bool = False
    _starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_starts", tuple(u.start for u in self.units))

    @property
    def flash_end(self) -> int:
        """First address after the last erase unit (exclusive end)."""
        return self.units[-1].end

    @cached_property
    def regions(self) -> tuple[tuple[int, int], ...]:
        """Contiguous (start, end) spans of flash; two when a gap separates the banks."""
        spans: list[tuple[int, int]] = []
        for unit in self.units:
            if spans and spans[-1][1] == unit.start:
                spans[-1] = (spans[-1][0], unit.end)
            else:
                spans.append((unit.start, unit.end))
        return tuple(spans)

    def contains(self, address: int) -> bool:
        """True if ``address`` is inside some erase unit."""
        position = bisect.bisect_right(self._starts, address) - 1
        return position >= 0 and address in self.units[position]

    def unit_containing(self, address: int) -> EraseUnit:
        """The erase unit holding ``address``; AddressNotInFlash if none does."""
        position = bisect.bisect_right(self._starts, address) - 1
        if position >= 0 and address in self.units[position]:
            return self.units[position]
        spans = ", ".join(f"0x{s:08X}-0x{e - 1:08X}" for s, e in self.regions)
        raise AddressNotInFlash(f"0x{address:08X} is not in flash ({spans})", address=address)

    def units_overlapping(self, start: int, end: int) -> tuple[EraseUnit, ...]:
        """Erase units intersecting [start, end), in address order (gaps simply hold none)."""
        if end <= start:
            return ()
        first = max(bisect.bisect_right(self._starts, start) - 1, 0)
        last = bisect.bisect_left(self._starts, end)
        return tuple(u for u in self.units[first:last] if u.end > start and u.start < end)

    def bank_units(self, bank: int) -> tuple[EraseUnit, ...]:
        """The units of one bank (0 or 1)."""
        return tuple(u for u in self.units if u.bank == bank)


__all__ = ["KiB", "EraseUnit", "FlashLayout", "FlashGeometry"]
