"""CoreSight identification a debugger reads at connect: ROM table, component ID registers, FPB,
DWT, ITM and TPIU.

Values from `shared/reference/cortex-m-debug.md` and `pyocd-as-client.md` section c (public
captures of STM32F1 Cortex-M3 r1p1 and STM32F4/L4 Cortex-M4 r0p1). pyOCD will not find a core
unless the SCS component matches, so these tables are what makes a third-party debugger accept
the simulated chip.
"""

from __future__ import annotations

ROM_TABLE_BASE = 0xE00FF000

# Component bases in the private peripheral bus
SCS_BASE = 0xE000E000
DWT_BASE = 0xE0001000
FPB_BASE = 0xE0002000
ITM_BASE = 0xE0000000
TPIU_BASE = 0xE0040000
ETM_BASE = 0xE0041000

CIDR_ROM = 0xB105100D        # class 1: ROM table
CIDR_SCS = 0xB105E00D        # class 0xE: generic IP
CIDR_CORESIGHT = 0xB105900D  # class 9: CoreSight component

# PIDR as one 64-bit number: PIDR7..PIDR4 in bits 63:32, PIDR3..PIDR0 in bits 31:0
_PIDR = {
    "M3": {SCS_BASE: 0x4001BB000, DWT_BASE: 0x4001BB002, FPB_BASE: 0x4000BB003,
           ITM_BASE: 0x4001BB001, TPIU_BASE: 0x4001BB923},
    "M4": {SCS_BASE: 0x4000BB00C, DWT_BASE: 0x4003BB002, FPB_BASE: 0x4002BB003,
           ITM_BASE: 0x4003BB001, TPIU_BASE: 0x4000BB9A1, ETM_BASE: 0x4000BB925},
}

# CoreSight (class 9) components also answer DEVID / DEVTYPE
_DEVID = {"M3": {TPIU_BASE: 0xCA0}, "M4": {TPIU_BASE: 0xCA1}}
_DEVTYPE = {TPIU_BASE: 0x11, ETM_BASE: 0x13}


def rom_entries(core: str) -> list[int]:
    """ROM table entries (offset from the table base, 32-bit format, present), then the end."""
    entries = [0xFFF0F003, 0xFFF02003, 0xFFF03003, 0xFFF01003, 0xFFF41003]
    entries.append(0xFFF42003 if core == "M4" else 0xFFF42002)   # F1 logs show no ETM
    entries.append(0)
    return entries


def _id_word(pidr: int, cidr: int, offset: int) -> int | None:
    """PIDR4-7 at 0xFD0-0xFDC, PIDR0-3 at 0xFE0-0xFEC, CIDR0-3 at 0xFF0-0xFFC, a byte each."""
    if 0xFD0 <= offset <= 0xFDC:
        return (pidr >> (32 + 8 * ((offset - 0xFD0) // 4))) & 0xFF
    if 0xFE0 <= offset <= 0xFEC:
        return (pidr >> (8 * ((offset - 0xFE0) // 4))) & 0xFF
    if 0xFF0 <= offset <= 0xFFC:
        return (cidr >> (8 * ((offset - 0xFF0) // 4))) & 0xFF
    return None


def component_id_read(core: str, dev_id: int, address: int) -> int | None:
    """The value of an identification register at ``address``, or None if it is not one."""
    base = address & ~0xFFF
    offset = address & 0xFFF
    if base == ROM_TABLE_BASE:
        if offset < 0xF00:
            entries = rom_entries(core)
            index = offset // 4
            return entries[index] if index < len(entries) else 0
        if offset == 0xFCC:
            return 1                                            # MEMTYPE: system memory present
        # ST designer 0x020 (JEP106 continuation 0, code 0x20), part number = DEV_ID
        pidr = (dev_id & 0xFFF) | (0x20 << 12) | (1 << 19)   # JEDEC-used bit 19 in PIDR2
        return _id_word(pidr, CIDR_ROM, offset)
    pidrs = _PIDR.get(core, {})
    if base in pidrs:
        cidr = CIDR_SCS if base in (SCS_BASE, DWT_BASE, FPB_BASE, ITM_BASE) else CIDR_CORESIGHT
        value = _id_word(pidrs[base], cidr, offset)
        if value is not None:
            return value
        if cidr == CIDR_CORESIGHT:
            if offset == 0xFC8:
                return _DEVID.get(core, {}).get(base, 0)
            if offset == 0xFCC:
                return _DEVTYPE.get(base, 0)
            if offset in (0xFBC, 0xFC0, 0xFC4):
                return 0
    return None
