"""Which STM32 is behind a probe: CPUID picks where DBGMCU_IDCODE lives, DEV_ID names the line.

A deliberately small table until the family database lands (a later issue): enough to label a
chip in ``gangflash probes``. DEV_ID values from ``shared/reference/stm32-flash.md`` (stlink
``inc/stm32.h`` and ``config/chips``); DBGMCU_IDCODE addresses and CPUID part numbers from the same
sheet and ``cortex-m-debug.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

from gangflash.transport.stlink import Stlink, StlinkError

CPUID_ADDRESS = 0xE000ED00

# CPUID PARTNO (bits 15:4) -> (core name, where DBGMCU_IDCODE may live, in the order to try).
# F0/G0/L0 (Cortex-M0/M0+) keep DBGMCU on the APB at 0x40015800; H7 (M7) at 0x5C001000 while F7
# (also M7) uses the usual 0xE0042000; L5/U5 (M33) at 0xE0044000.
_CORES: dict[int, tuple[str, tuple[int, ...]]] = {
    0xC20: ("Cortex-M0", (0x40015800,)),
    0xC60: ("Cortex-M0+", (0x40015800,)),
    0xC23: ("Cortex-M3", (0xE0042000,)),
    0xC24: ("Cortex-M4", (0xE0042000,)),
    0xC27: ("Cortex-M7", (0xE0042000, 0x5C001000)),
    0xD21: ("Cortex-M33", (0xE0044000,)),
}
_DEFAULT_LOCATIONS = (0xE0042000, 0x40015800)

# DEV_ID -> (family, line).
DEV_IDS: dict[int, tuple[str, str]] = {
    0x412: ("STM32F1", "F10x low-density"),
    0x410: ("STM32F1", "F10x medium-density"),
    0x414: ("STM32F1", "F10x high-density"),
    0x430: ("STM32F1", "F10x XL-density"),
    0x418: ("STM32F1", "F105/F107 connectivity"),
    0x420: ("STM32F1", "F100 value line low/medium-density"),
    0x428: ("STM32F1", "F100 value line high-density"),
    0x440: ("STM32F0", "F05x"),
    0x444: ("STM32F0", "F03x"),
    0x445: ("STM32F0", "F04x"),
    0x448: ("STM32F0", "F07x"),
    0x442: ("STM32F0", "F09x"),
    0x422: ("STM32F3", "F302/F303 B-C"),
    0x438: ("STM32F3", "F303 6-8, F334"),
    0x446: ("STM32F3", "F303 D-E"),
    0x439: ("STM32F3", "F301, F302 6-8"),
    0x432: ("STM32F3", "F37x"),
    0x413: ("STM32F4", "F405-F417"),
    0x419: ("STM32F4", "F42x-F43x"),
    0x434: ("STM32F4", "F469-F479"),
    0x423: ("STM32F4", "F401 B-C"),
    0x433: ("STM32F4", "F401 D-E"),
    0x458: ("STM32F4", "F410"),
    0x431: ("STM32F4", "F411"),
    0x441: ("STM32F4", "F412"),
    0x421: ("STM32F4", "F446"),
    0x463: ("STM32F4", "F413"),
    0x449: ("STM32F7", "F74x-F75x"),
    0x451: ("STM32F7", "F76x-F77x"),
    0x452: ("STM32F7", "F72x-F73x"),
    0x415: ("STM32L4", "L47x-L48x"),
    0x435: ("STM32L4", "L43x-L44x"),
    0x462: ("STM32L4", "L45x-L46x"),
    0x464: ("STM32L4", "L41x-L42x"),
    0x461: ("STM32L4", "L49x-L4Ax"),
    0x470: ("STM32L4", "L4R-L4S"),
    0x471: ("STM32L4", "L4P-L4Q"),
    0x457: ("STM32L0", "category 1"),
    0x425: ("STM32L0", "category 2"),
    0x417: ("STM32L0", "category 3"),
    0x447: ("STM32L0", "category 5"),
    0x466: ("STM32G0", "G03x-G04x"),
    0x456: ("STM32G0", "G05x-G06x"),
    0x460: ("STM32G0", "G07x-G08x"),
    0x467: ("STM32G0", "G0Bx-G0Cx"),
    0x468: ("STM32G4", "category 2"),
    0x469: ("STM32G4", "category 3"),
    0x479: ("STM32G4", "category 4"),
    0x450: ("STM32H7", "H74x-H75x"),
    0x480: ("STM32H7", "H7Ax-H7Bx"),
    0x483: ("STM32H7", "H72x-H73x"),
}


@dataclass(frozen=True)
class ChipId:
    """What a quick look at the target says it is."""

    idcode: int             # DBGMCU_IDCODE as read
    idcode_address: int
    cpuid: int
    core: str

    @property
    def dev_id(self) -> int:
        return self.idcode & 0xFFF

    @property
    def rev_id(self) -> int:
        return self.idcode >> 16

    @property
    def family(self) -> str | None:
        known = DEV_IDS.get(self.dev_id)
        return known[0] if known else None

    @property
    def line(self) -> str | None:
        known = DEV_IDS.get(self.dev_id)
        return known[1] if known else None

    def describe(self) -> str:
        """One line for tables: "STM32F1 F10x medium-density (DEV_ID 0x410 rev 0x2000)"."""
        ids = f"DEV_ID 0x{self.dev_id:03X} rev 0x{self.rev_id:04X}"
        if self.family:
            return f"{self.family} {self.line} ({ids})"
        return f"unknown {self.core} ({ids})"


def core_for_cpuid(cpuid: int) -> tuple[str, tuple[int, ...]]:
    """(core name, DBGMCU_IDCODE addresses to try) for a CPUID value."""
    return _CORES.get((cpuid >> 4) & 0xFFF, (f"CPUID 0x{cpuid:08X}", _DEFAULT_LOCATIONS))


async def identify(probe: Stlink) -> ChipId | None:
    """Read CPUID, then DBGMCU_IDCODE where that core's STM32s keep it. The probe must be in SWD
    mode. Returns None if nothing readable answers (not an STM32, or its debug port is locked)."""
    try:
        cpuid = await probe.read_u32(CPUID_ADDRESS)
    except StlinkError:
        return None
    core, locations = core_for_cpuid(cpuid)
    for address in locations:
        try:
            idcode = await probe.read_u32(address)
        except StlinkError:
            continue
        if idcode & 0xFFF:
            return ChipId(idcode=idcode, idcode_address=address, cpuid=cpuid, core=core)
    return None


__all__ = ["ChipId", "DEV_IDS", "identify", "core_for_cpuid", "CPUID_ADDRESS"]
