"""Flash controller generations and their datasheet timings, as data.

STM32 flash controllers come in a few generations that share a register map and a programming
unit; the family database points each line at one of the instances below. Timings are what the
flash layer budgets time-outs and progress with, so every number says where it comes from, and
the ones not found in a public text are flagged ``estimate=True`` (the report of this module's
issue lists them). Durations are in seconds.

Generations (``FlashController.generation``):

* ``"f1"``: the F0/F1/F3 FPEC at 0x40022000: half-word writes, pages, clocked by HSI. F1 XL
  drives bank 2 through a second register set at +0x40.
* ``"f4"``: F2/F4/F7 at 0x40023C00: sectors, PSIZE selects the write width *and* the erase
  parallelism, so timings exist per parallelism (x32 is the default: 2.7-3.6 V).
* ``"l4"``: L4/L4+/G0/G4 at 0x40022000: 64-bit double words (ECC), pages, BKER for bank 2.
* ``"l0"`` / ``"l1"``: the PECR-style NVM (L0 at 0x40022000, L1 at 0x40023C00): erased cells read
  0x00, words or half-pages written, no controller mass erase (only an RDP 1 -> 0 regression).
* ``"h7"``: H7 at 0x52002000 (bank 2 registers at +0x100): 256-bit flash words (128-bit on
  H7A/B), 128 KiB sectors (8 KiB on H7A/B).
"""

from __future__ import annotations

from dataclasses import dataclass

from gangflash.target.errors import GeometryError

KiB = 1024
_MS = 1e-3
_US = 1e-6


@dataclass(frozen=True)
class Duration:
    """A datasheet duration: typical and maximum (seconds), the minimum where one is given."""

    typical: float | None
    maximum: float
    minimum: float | None = None
    estimate: bool = False          # True: not confirmed from a public text
    source: str = ""

    @property
    def nominal(self) -> float:
        """What to expect: the typical value, else the middle of the range, else the maximum."""
        if self.typical is not None:
            return self.typical
        if self.minimum is not None:
            return (self.minimum + self.maximum) / 2
        return self.maximum


@dataclass(frozen=True)
class FlashTimings:
    """Durations of one controller at one write/erase parallelism."""

    parallelism: int | None         # PSIZE width in bits (8/16/32/64) where selectable
    program_unit: int               # bytes written by one programming operation
    program: Duration               # one programming unit
    erase: tuple[tuple[int, Duration], ...]   # (erase-unit size in bytes, duration)
    mass_erase: Duration | None     # None: the controller has no mass erase

    def erase_time(self, unit_size: int) -> Duration:
        """Erase duration for a page/sector of ``unit_size`` bytes."""
        for size, duration in self.erase:
            if size == unit_size:
                return duration
        known = ", ".join(f"{s // KiB} KiB" if s >= KiB else f"{s} B" for s, _ in self.erase)
        raise GeometryError(f"no erase timing for a {unit_size}-byte unit (known: {known})")


@dataclass(frozen=True)
class FlashController:
    """One flash controller generation as a line uses it."""

    generation: str                 # "f1", "f4", "l4", "l0", "l1", "h7"
    register_base: int
    erased_value: int               # what an erased byte reads as
    timings: tuple[FlashTimings, ...]   # first entry is the default parallelism
    bank2_register_offset: int | None = None   # F1 XL +0x40, H7 +0x100
    needs_hsi: bool = False         # program/erase clocked by HSI: it must be on (F0/F1/F3)

    def timing(self, parallelism: int | None = None) -> FlashTimings:
        """Timings at a PSIZE width (bits); ``None`` = the default (first) entry."""
        if parallelism is None:
            return self.timings[0]
        for timing in self.timings:
            if timing.parallelism == parallelism:
                return timing
        known = ", ".join(f"x{t.parallelism}" for t in self.timings if t.parallelism)
        raise GeometryError(f"{self.generation} controller has no timing for x{parallelism}"
                            f" (known: {known or 'fixed width only'})")

    @property
    def program_unit(self) -> int:
        """Bytes per programming operation at the default parallelism."""
        return self.timings[0].program_unit


# --- F0 / F1 / F3: half-word FPEC ----------------------------------------------------------------

_F103 = "F103x8/xB and xC/xE datasheets (reference sheet stm32-flash.md)"
_F1_PROGRAM = Duration(52.5 * _US, 70 * _US, 40 * _US, source=_F103)
_F1_ERASE_1K = Duration(None, 40 * _MS, 20 * _MS, source=_F103)
_F1_ERASE_2K = Duration(None, 40 * _MS, 20 * _MS, estimate=True,
                        source="2 KiB page of HD/XL/CL parts: assumed equal to the 1 KiB figure")
_F1_MASS = Duration(None, 40 * _MS, 20 * _MS, source=_F103)
_F1_TIMING = FlashTimings(None, 2, _F1_PROGRAM, ((1 * KiB, _F1_ERASE_1K), (2 * KiB, _F1_ERASE_2K)),
                          _F1_MASS)

F1_FLASH = FlashController("f1", 0x40022000, 0xFF, (_F1_TIMING,), needs_hsi=True)
F1_XL_FLASH = FlashController("f1", 0x40022000, 0xFF, (_F1_TIMING,), bank2_register_offset=0x40,
                              needs_hsi=True)

# F0 (F030/F051 datasheets) and F3 (F303 datasheet) print the same FPEC figures: 40 / 53.5 / 60 µs
# per half-word, 20-40 ms per page and per mass erase. Recalled, not found in a public text.
_FX_SOURCE = "F0/F3 datasheets, 'Flash memory characteristics' (recalled)"
_FX_PROGRAM = Duration(53.5 * _US, 60 * _US, 40 * _US, estimate=True, source=_FX_SOURCE)
_FX_ERASE = Duration(None, 40 * _MS, 20 * _MS, estimate=True, source=_FX_SOURCE)
_FX_TIMING = FlashTimings(None, 2, _FX_PROGRAM, ((1 * KiB, _FX_ERASE), (2 * KiB, _FX_ERASE)),
                          _FX_ERASE)
# RM0364 (F334): "the internal RC oscillator (HSI) must be ON"; F0 assumed alike (same FPEC).
F0_FLASH = FlashController("f1", 0x40022000, 0xFF, (_FX_TIMING,), needs_hsi=True)
F3_FLASH = FlashController("f1", 0x40022000, 0xFF, (_FX_TIMING,), needs_hsi=True)


# --- F2 / F4 / F7: PSIZE sectors -----------------------------------------------------------------

def _psize_timings(erase_ms: dict[int, dict[int, tuple[float, float]]],
                   mass_s: dict[int, tuple[float, float]], *, estimate: bool,
                   source: str) -> tuple[FlashTimings, ...]:
    """Timings per parallelism, x32 first. ``erase_ms[width][size_kib] = (typ, max)``.

    The datasheets give one programming time per write (16 µs typ, 100 µs max) whatever the
    width, so the byte rate scales with PSIZE."""
    program = Duration(16 * _US, 100 * _US, estimate=estimate, source=source)
    result = []
    for width in (32, 16, 8):
        erase = tuple((kib * KiB, Duration(t * _MS, m * _MS, estimate=estimate, source=source))
                      for kib, (t, m) in sorted(erase_ms[width].items()))
        mass = Duration(mass_s[width][0], mass_s[width][1], estimate=estimate, source=source)
        result.append(FlashTimings(width, width // 8, program, erase, mass))
    return tuple(result)


_F4_ERASE_MS = {
    32: {16: (250, 500), 64: (550, 1100), 128: (1000, 2000)},
    16: {16: (300, 600), 64: (700, 1400), 128: (1300, 2600)},
    8: {16: (400, 800), 64: (1200, 2400), 128: (2000, 4000)},
}
_F4_MASS_S = {32: (8, 16), 16: (11, 22), 8: (16, 32)}
_F4_TIMINGS = _psize_timings(_F4_ERASE_MS, _F4_MASS_S, estimate=False,
                             source="F407 datasheet (reference sheet stm32-flash.md)")

F4_FLASH = FlashController("f4", 0x40023C00, 0xFF, _F4_TIMINGS)
F2_FLASH = FlashController("f4", 0x40023C00, 0xFF, _psize_timings(
    _F4_ERASE_MS, _F4_MASS_S, estimate=True, source="F2 assumed equal to the F407 figures"))

# F7: single-bank F74x/F76x use 32/128/256 KiB sectors, F72x and the dual-bank F76x map 16/64/128.
# 32 and 256 KiB from the F746 datasheet (recalled); 16/64/128 KiB keep the F407 figures (assumed;
# the more conservative where the F746 table was recalled lower).
_F7_ERASE_MS = {
    32: {**_F4_ERASE_MS[32], 32: (200, 500), 256: (1100, 2000)},
    16: {**_F4_ERASE_MS[16], 32: (250, 600), 256: (1500, 2600)},
    8: {**_F4_ERASE_MS[8], 32: (400, 800), 256: (2100, 4000)},
}
F7_FLASH = FlashController("f4", 0x40023C00, 0xFF, _psize_timings(
    _F7_ERASE_MS, {32: (8, 16), 16: (10, 20), 8: (16, 32)}, estimate=True,
    source="F746 datasheet (recalled); 16/64 KiB sectors from the F407 figures"))


# --- L4 / L4+ / G0 / G4: double-word pages -------------------------------------------------------

def _dword_timing(program: Duration, pages: tuple[int, ...], erase: Duration,
                  mass: Duration) -> tuple[FlashTimings, ...]:
    """One fixed-width timing set: 8-byte programming unit, the same erase time per page size."""
    return (FlashTimings(None, 8, program, tuple((p, erase) for p in pages), mass),)


_L476 = "L476 datasheet (reference sheet stm32-flash.md; OpenOCD stm32l4x.c: erase <= 25 ms)"
L4_FLASH = FlashController("l4", 0x40022000, 0xFF, _dword_timing(
    Duration(81.7 * _US, 90.8 * _US, source=_L476), (2 * KiB,),
    Duration(22.0 * _MS, 24.5 * _MS, source=_L476),
    Duration(22.1 * _MS, 25.0 * _MS, source=_L476)))

_L4P = "L4R/L4P datasheets: assumed equal to the L476 figures for 4/8 KiB pages"
L4PLUS_FLASH = FlashController("l4", 0x40022000, 0xFF, _dword_timing(
    Duration(81.7 * _US, 90.8 * _US, estimate=True, source=_L4P), (4 * KiB, 8 * KiB),
    Duration(22.0 * _MS, 24.5 * _MS, estimate=True, source=_L4P),
    Duration(22.1 * _MS, 25.0 * _MS, estimate=True, source=_L4P)))

_G4 = "G474 datasheet (recalled: same figures as L476)"
G4_FLASH = FlashController("l4", 0x40022000, 0xFF, _dword_timing(
    Duration(81.7 * _US, 90.8 * _US, estimate=True, source=_G4), (2 * KiB, 4 * KiB),
    Duration(22.0 * _MS, 24.5 * _MS, estimate=True, source=_G4),
    Duration(22.1 * _MS, 25.0 * _MS, estimate=True, source=_G4)))

_G0 = "G071 datasheet (recalled)"
G0_FLASH = FlashController("l4", 0x40022000, 0xFF, _dword_timing(
    Duration(85 * _US, 125 * _US, estimate=True, source=_G0), (2 * KiB,),
    Duration(22.0 * _MS, 40 * _MS, estimate=True, source=_G0),
    Duration(22.1 * _MS, 40 * _MS, estimate=True, source=_G0)))


# --- L0 / L1: PECR NVM, erased value 0x00, half-page programming ---------------------------------

# ~3.2 ms for a page erase, a word or a half-page (L053 datasheet as quoted by a vendor note);
# 3.94 ms maximum recalled. L1 (L151 datasheet, recalled): 3.28 typ / 3.94 max. No controller
# mass erase: OpenOCD's stm32lx.c mass erase is an RDP 1 -> 0 regression.
_L0 = "L0x3 datasheet (typ via vendor note, max recalled)"
_L0_OP = Duration(3.2 * _MS, 3.94 * _MS, estimate=True, source=_L0)
L0_FLASH = FlashController("l0", 0x40022000, 0x00,
                           (FlashTimings(None, 64, _L0_OP, ((128, _L0_OP),), None),))
_L1_OP = Duration(3.28 * _MS, 3.94 * _MS, estimate=True, source="L151 datasheet (recalled)")
L1_FLASH = FlashController("l1", 0x40023C00, 0x00,
                           (FlashTimings(None, 128, _L1_OP, ((256, _L1_OP),), None),))


# --- H7 -----------------------------------------------------------------------------------------

def _h7_timings() -> tuple[FlashTimings, ...]:
    """H743 datasheet figures (recalled): per 256-bit word, per 128 KiB sector, mass erase."""
    source = "H743 datasheet (recalled); OpenOCD stm32h7x.c: erase up to ~1 s"
    table = {   # width: (program µs typ/max, sector s typ/max, mass s typ/max)
        32: ((130, 260), (1.1, 2.2), (6, 12)),
        64: ((100, 200), (1.0, 2.0), (5, 10)),
        16: ((180, 360), (1.8, 3.6), (8, 16)),
        8: ((290, 580), (2.0, 4.0), (13, 26)),
    }
    result = []
    for width, (prog, sector, mass) in table.items():
        result.append(FlashTimings(
            width, 32, Duration(prog[0] * _US, prog[1] * _US, estimate=True, source=source),
            ((128 * KiB, Duration(sector[0], sector[1], estimate=True, source=source)),),
            Duration(mass[0], mass[1], estimate=True, source=source)))
    return tuple(result)


H7_FLASH = FlashController("h7", 0x52002000, 0xFF, _h7_timings(), bank2_register_offset=0x100)

_H7AB = "no H7A/B figure found: bounds borrowed from the H74x x64 maxima (conservative)"
H7AB_FLASH = FlashController("h7", 0x52002000, 0xFF, (FlashTimings(
    None, 16, Duration(None, 200 * _US, estimate=True, source=_H7AB),
    ((8 * KiB, Duration(None, 2.0, estimate=True, source=_H7AB)),),
    Duration(None, 10.0, estimate=True, source=_H7AB)),), bank2_register_offset=0x100)


__all__ = [
    "Duration", "FlashTimings", "FlashController",
    "F0_FLASH", "F1_FLASH", "F1_XL_FLASH", "F3_FLASH", "F2_FLASH", "F4_FLASH", "F7_FLASH",
    "L0_FLASH", "L1_FLASH", "L4_FLASH", "L4PLUS_FLASH", "G0_FLASH", "G4_FLASH",
    "H7_FLASH", "H7AB_FLASH",
]
