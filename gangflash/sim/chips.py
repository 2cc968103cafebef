"""The simulated STM32 parts: identity, memory map and flash geometry.

Values from the reference sheets (`shared/reference/stm32-flash.md`, `cortex-m-debug.md`,
`pyocd-as-client.md`): DBGMCU DEV_ID, CPUID, DP/AP IDR, flash and SRAM sizes, page and sector maps.
The simulator keeps its own table on purpose; the tool's family database is separate.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ChipSpec:
    """Everything that makes one part number different from another."""

    name: str
    family: str                    # "F1", "F4", "L4": selects the flash controller model
    dev_id: int                    # DBGMCU_IDCODE bits 11:0
    rev_id: int                    # DBGMCU_IDCODE bits 31:16
    core: str                      # "M3" or "M4"
    cpuid: int
    dp_idr: int
    ap_idr: int
    flash_base: int
    flash_size: int
    sectors: tuple[int, ...]       # erase unit sizes in address order (pages or sectors)
    sram_regions: tuple[tuple[int, int], ...]   # (base, size); aliases listed separately
    sram_aliases: tuple[tuple[int, int, int], ...] = ()  # (alias base, target base, size)
    dbgmcu_idcode_addr: int = 0xE0042000
    flash_size_reg: int = 0x1FFFF7E0
    uid_addr: int = 0x1FFFF7E8
    system_memory: tuple[int, int] = (0x1FFFF000, 0x800)
    flash_reg_base: int = 0x40022000
    rcc_base: int = 0x40021000
    hsi_hz: int = 8_000_000        # reset SYSCLK
    program_unit: int = 2          # bytes per programming operation (F1 halfword, L4 double word)
    unique_id: bytes = field(default=bytes(range(0x30, 0x3C)))

    @property
    def idcode(self) -> int:
        return (self.rev_id << 16) | self.dev_id

    @property
    def flash_end(self) -> int:
        return self.flash_base + self.flash_size

    def sector_of(self, address: int) -> tuple[int, int, int]:
        """Return (index, start, size) of the erase unit holding ``address``."""
        start = self.flash_base
        for index, size in enumerate(self.sectors):
            if start <= address < start + size:
                return index, start, size
            start += size
        raise ValueError(f"0x{address:08X} is outside {self.name} flash")


def _pages(total: int, page: int) -> tuple[int, ...]:
    return (page,) * (total // page)


_KB = 1024

F103C8 = ChipSpec(
    name="STM32F103C8", family="F1", dev_id=0x410, rev_id=0x2000, core="M3",
    cpuid=0x411FC231, dp_idr=0x1BA01477, ap_idr=0x14770011,
    flash_base=0x08000000, flash_size=64 * _KB, sectors=_pages(64 * _KB, 1 * _KB),
    sram_regions=((0x20000000, 20 * _KB),),
    unique_id=bytes.fromhex("ff3fd2053043353843172543"),
)

F103RC = ChipSpec(
    name="STM32F103RC", family="F1", dev_id=0x414, rev_id=0x1001, core="M3",
    cpuid=0x411FC231, dp_idr=0x1BA01477, ap_idr=0x14770011,
    flash_base=0x08000000, flash_size=256 * _KB, sectors=_pages(256 * _KB, 2 * _KB),
    # The real part has 48 KiB; pyOCD's target file (and its algorithm layout) assumes 64 KiB
    # (RD/RE value), so the model implements 64 KiB as the RD/RE die does.
    sram_regions=((0x20000000, 64 * _KB),),
    unique_id=bytes.fromhex("0a3fd1053142363745196743"),
)

F412ZG = ChipSpec(
    name="STM32F412ZG", family="F4", dev_id=0x441, rev_id=0x1001, core="M4",
    cpuid=0x410FC241, dp_idr=0x2BA01477, ap_idr=0x24770011,
    flash_base=0x08000000, flash_size=1024 * _KB,
    sectors=(16 * _KB,) * 4 + (64 * _KB,) + (128 * _KB,) * 7,
    sram_regions=((0x20000000, 256 * _KB),),
    flash_size_reg=0x1FFF7A22, uid_addr=0x1FFF7A10, system_memory=(0x1FFF0000, 0x7800),
    flash_reg_base=0x40023C00, rcc_base=0x40023800, hsi_hz=16_000_000, program_unit=4,
    unique_id=bytes.fromhex("2f0035000c51353038383737"),
)

L432KC = ChipSpec(
    name="STM32L432KC", family="L4", dev_id=0x435, rev_id=0x1001, core="M4",
    cpuid=0x410FC241, dp_idr=0x2BA01477, ap_idr=0x24770011,
    flash_base=0x08000000, flash_size=256 * _KB, sectors=_pages(256 * _KB, 2 * _KB),
    sram_regions=((0x20000000, 48 * _KB), (0x10000000, 16 * _KB)),
    sram_aliases=((0x2000C000, 0x10000000, 16 * _KB),),
    flash_size_reg=0x1FFF75E0, uid_addr=0x1FFF7590, system_memory=(0x1FFF0000, 0x7000),
    flash_reg_base=0x40022000, rcc_base=0x40021000, hsi_hz=4_000_000, program_unit=8,
    unique_id=bytes.fromhex("3c0026001351373036313432"),
)

CHIPS: dict[str, ChipSpec] = {c.name: c for c in (F103C8, F103RC, F412ZG, L432KC)}
ALIASES = {"F103C8": F103C8, "F103RC": F103RC, "F412": F412ZG, "F412ZG": F412ZG,
           "L432": L432KC, "L432KC": L432KC}


def chip_by_name(name: str) -> ChipSpec:
    """Look a simulated part up by full or short name (``STM32F103C8``, ``F103C8``, ``f412``)."""
    key = name.upper().removeprefix("STM32")
    for candidate in (name.upper(), key):
        if candidate in CHIPS:
            return CHIPS[candidate]
        if candidate in ALIASES:
            return ALIASES[candidate]
    known = ", ".join(sorted(CHIPS))
    raise KeyError(f"no simulated chip {name!r}; known: {known}")
