"""The STM32 family database: which part a DBGMCU IDCODE names, and everything about it.

Entry points:

* ``IDCODE_ADDRESSES``: where DBGMCU_IDCODE may be, in the order to try them. Most lines keep it
  at 0xE0042000 (F1, F2, F3, F4, F7, L1, L4, G4, WB); the Cortex-M0/M0+ lines at 0x40015800 (F0,
  G0, L0); H7 at 0x5C001000; L5/U5 at 0xE0044000. A read that faults or returns DEV_ID 0 / 0xFFF
  means "not here, try the next" (as OpenOCD's stm32l4x.c does).
* ``identify(dev_id, cpuid=..., flash_size_kib=...)``: the ``Part`` for an IDCODE, cross-checked
  with CPUID and the flash-size register before anything is erased.
* ``Part.geometry(size_kib)``: erase units for the chip's flash size (``geometry.py``).

The records are in ``part_table.py``, the types in ``parts.py``, the controller generations and
timings in ``flash_specs.py``. Lines described: F0, F1, F2, F3, F4, F7, L0, L1, L4, L4+, G0, G4,
H7. WB, L5 and U5 are known only by their IDCODE address; their DEV_IDs raise ``UnknownDevice``.
"""

from __future__ import annotations

import logging

from gangflash.target.flash_specs import Duration, FlashController, FlashTimings
from gangflash.target.errors import CoreMismatch, UnknownDevice
from gangflash.target.geometry import EraseUnit, FlashGeometry, FlashLayout
from gangflash.target.part_table import PART_LIST
from gangflash.target.parts import (BitRef, ClockControl, Core, CrcUnit, DebugSupport, Part,
                                    ReadProtection, core_from_cpuid)

log = logging.getLogger(__name__)

IDCODE_ADDRESSES: tuple[int, ...] = (0xE0042000, 0x40015800, 0x5C001000, 0xE0044000)
"""DBGMCU_IDCODE locations, in probe order (most common first)."""

IDCODE_FAMILIES: dict[int, tuple[str, ...]] = {
    0xE0042000: ("F1", "F2", "F3", "F4", "F7", "L1", "L4", "G4", "WB"),
    0x40015800: ("F0", "G0", "L0"),
    0x5C001000: ("H7",),
    0xE0044000: ("L5", "U5"),
}
"""Which families keep DBGMCU_IDCODE at each address (for messages and probing by core)."""

PARTS: dict[int, Part] = {part.dev_id: part for part in PART_LIST}
"""Every described line, by DEV_ID."""

F2_DEV_ID = 0x411
F405_DEV_ID = 0x413


def idcode_addresses_for(cpuid: int | None) -> tuple[int, ...]:
    """IDCODE addresses worth trying for a core, best first; all of them if the core is unknown.

    M0/M0+ lines use 0x40015800, M33 0xE0044000, M7 0xE0042000 (F7) or 0x5C001000 (H7)."""
    core = core_from_cpuid(cpuid) if cpuid is not None else None
    preferred = {
        Core.M0: (0x40015800,), Core.M0PLUS: (0x40015800,), Core.M3: (0xE0042000,),
        Core.M4: (0xE0042000,), Core.M7: (0xE0042000, 0x5C001000), Core.M33: (0xE0044000,),
    }.get(core) if core else None
    return preferred or IDCODE_ADDRESSES


def identify(dev_id: int, *, cpuid: int | None = None,
             flash_size_kib: int | None = None) -> Part:
    """The line a DBGMCU_IDCODE (or its DEV_ID bits 11:0) names.

    ``cpuid`` (the CPUID register), when given, resolves the F2/F4 ambiguity (F4 rev A reports
    the F2 DEV_ID 0x411; a Cortex-M4 there is an F405-F417, as OpenOCD's stm32f2x.c reasons) and is
    checked against the line's core: a mismatch means one of the reads came from the wrong place.
    ``flash_size_kib`` is the raw value of the line's flash-size register; it is decoded and must
    be a size the line has. Raises UnknownDevice, CoreMismatch or FlashSizeError."""
    idcode = dev_id
    device = idcode & 0xFFF
    core = core_from_cpuid(cpuid) if cpuid is not None else None
    if device == F2_DEV_ID and core is Core.M4:
        log.info("IDCODE 0x%08X names an F2 but CPUID 0x%08X is a Cortex-M4: STM32F4 rev A, "
                 "treated as DEV_ID 0x413", idcode, cpuid)
        device = F405_DEV_ID
    part = PARTS.get(device)
    if part is None:
        families = sorted({p.family for p in PARTS.values()})
        raise UnknownDevice(
            f"DBGMCU IDCODE 0x{idcode:08X} (DEV_ID 0x{device:03X}) is not a known STM32 line; "
            f"described families: {', '.join(families)}", idcode=idcode)
    if cpuid is not None:
        if core is None:
            log.warning("CPUID 0x%08X names no core we know; trusting DEV_ID 0x%03X (%s)",
                        cpuid, device, part.name)
        elif core is not part.core:
            raise CoreMismatch(
                f"DBGMCU IDCODE 0x{idcode:08X} names {part.name}, a Cortex-{part.core}, but "
                f"CPUID 0x{cpuid:08X} is a Cortex-{core}: IDCODE read from the wrong register "
                f"(this line keeps it at 0x{part.idcode_address:08X}) or not an STM32")
    if flash_size_kib is not None:
        part.decode_flash_size(flash_size_kib)
    log.debug("IDCODE 0x%08X -> %s", idcode, part.name)
    return part


__all__ = [
    "IDCODE_ADDRESSES", "IDCODE_FAMILIES", "PARTS", "identify", "idcode_addresses_for",
    "Part", "Core", "core_from_cpuid", "BitRef", "DebugSupport", "ClockControl", "CrcUnit",
    "ReadProtection", "FlashController", "FlashTimings", "Duration", "FlashLayout",
    "FlashGeometry", "EraseUnit",
]
