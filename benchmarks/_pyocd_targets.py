"""pyOCD target definitions the benchmarks need and pyOCD 0.46 does not ship.

pyOCD has no built-in STM32F103C8. Its STM32F103RC target drives the same F1 flash controller
(FPEC: same keys, registers and page-erase / mass-erase / half-word program sequence), so the
F103C8 is defined as a subclass keeping pyOCD's own flash algorithm and replacing only the memory
map: flash 0x08000000, 64 KiB, 1 KiB sectors and pages; SRAM 0x20000000, 20 KiB.

The algorithm's RAM layout is pyOCD's, unchanged; :func:`f103c8_ram_check` checks that every
address it uses (code, static data, page buffers, stack, CRC analyzer) lies inside the 20 KiB.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyocd.core.memory_map import FlashRegion, MemoryMap, RamRegion
from pyocd.target import TARGET
from pyocd.target.builtin.target_STM32F103RC import FLASH_ALGO as F103RC_FLASH_ALGO
from pyocd.target.builtin.target_STM32F103RC import STM32F103RC

F103C8_TARGET = "stm32f103c8_gfbench"
F103C8_FLASH = (0x08000000, 64 * 1024)
F103C8_PAGE = 0x400
F103C8_RAM = (0x20000000, 20 * 1024)
ANALYZER_BYTES = 0x600            # pyOCD flash.py: "at least 0x600 free bytes after this address"


class STM32F103C8(STM32F103RC):
    """STM32F103C8 (medium density): pyOCD's F103RC target with the C8 memory map."""

    MEMORY_MAP = MemoryMap(
        FlashRegion(start=F103C8_FLASH[0], length=F103C8_FLASH[1], sector_size=F103C8_PAGE,
                    page_size=F103C8_PAGE, is_boot_memory=True, algo=F103RC_FLASH_ALGO),
        RamRegion(start=F103C8_RAM[0], length=F103C8_RAM[1]),
    )


@dataclass(frozen=True)
class RamUse:
    what: str
    start: int
    end: int                       # exclusive

    @property
    def fits(self) -> bool:
        base, size = F103C8_RAM
        return base <= self.start and self.end <= base + size


def f103c8_ram_check() -> list[RamUse]:
    """Every SRAM range pyOCD's F103RC algorithm touches, as laid out for the C8's 1 KiB pages."""
    algo = F103RC_FLASH_ALGO
    code_end = algo["load_address"] + 4 * len(algo["instructions"])
    uses = [RamUse("algorithm code", algo["load_address"], code_end),
            RamUse("static base (R9)", algo["static_base"], algo["static_base"] + 4),
            ]
    for index, start in enumerate(algo["page_buffers"]):
        uses.append(RamUse(f"page buffer {index}", start, start + F103C8_PAGE))
    # The stack grows down from begin_stack: its room is what lies free below it.
    stack = algo["begin_stack"]
    floor = max([u.end for u in uses if u.end <= stack] + [code_end])
    uses.append(RamUse("stack (room below begin_stack)", floor, stack))
    if algo.get("analyzer_supported"):
        start = algo["analyzer_address"]
        uses.append(RamUse("CRC analyzer", start, start + ANALYZER_BYTES))
    return uses


def register() -> str:
    """Make the F103C8 target known to pyOCD's target lookup (idempotent); returns its name."""
    TARGET[F103C8_TARGET] = STM32F103C8
    return F103C8_TARGET
