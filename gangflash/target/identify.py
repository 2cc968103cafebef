"""Which STM32 is behind a probe, quickly: the label ``gangflash probes`` prints.

CPUID says which core answers, and so where that core's STM32s keep DBGMCU_IDCODE; the family
database (``families.py``) names the line. Nothing here decides whether a chip may be
programmed: the flash session identifies again, strictly (flash-size register, core cross-check).
"""

from __future__ import annotations

from dataclasses import dataclass

from gangflash.target.errors import TargetError
from gangflash.target.families import Part, core_from_cpuid, idcode_addresses_for
from gangflash.target.families import identify as identify_part
from gangflash.transport.stlink import Stlink, StlinkError

CPUID_ADDRESS = 0xE000ED00


@dataclass(frozen=True)
class ChipId:
    """What a quick look at the target says it is."""

    idcode: int             # DBGMCU_IDCODE as read
    idcode_address: int
    cpuid: int
    core: str
    part: Part | None = None        # None: a DEV_ID the family database does not describe

    @property
    def dev_id(self) -> int:
        return self.idcode & 0xFFF

    @property
    def rev_id(self) -> int:
        return self.idcode >> 16

    @property
    def family(self) -> str | None:
        return f"STM32{self.part.family}" if self.part else None

    @property
    def line(self) -> str | None:
        return self.part.line if self.part else None

    def describe(self) -> str:
        """One line for tables: "STM32F1 F10x medium-density (DEV_ID 0x410 rev 0x2000)"."""
        ids = f"DEV_ID 0x{self.dev_id:03X} rev 0x{self.rev_id:04X}"
        if self.part:
            return f"{self.family} {self.line} ({ids})"
        return f"unknown {self.core} ({ids})"


def core_name(cpuid: int) -> str:
    core = core_from_cpuid(cpuid)
    return f"Cortex-{core}" if core else f"CPUID 0x{cpuid:08X}"


async def identify(probe: Stlink) -> ChipId | None:
    """Read CPUID, then DBGMCU_IDCODE where that core's STM32s keep it. The probe must be in SWD
    mode. Returns None if nothing readable answers (not an STM32, or its debug port is locked)."""
    try:
        cpuid = await probe.read_u32(CPUID_ADDRESS)
    except StlinkError:
        return None
    for address in idcode_addresses_for(cpuid):
        try:
            idcode = await probe.read_u32(address)
        except StlinkError:
            continue
        if idcode & 0xFFF not in (0, 0xFFF):
            try:
                part: Part | None = identify_part(idcode, cpuid=cpuid)
            except TargetError:
                part = None
            return ChipId(idcode=idcode, idcode_address=address, cpuid=cpuid, core=core_name(cpuid), part=part)
    return None


__all__ = ["ChipId", "identify", "CPUID_ADDRESS"]
