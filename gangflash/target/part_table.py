"""The family database: one ``Part`` per DEV_ID, built from per-family traits.

Each family block states what all its lines share (IDCODE register, flash-size and unique-ID
addresses, controller, DBGMCU, RCC, CRC clock, RDP location); each line then adds its DEV_ID,
name, largest flash size, erase layout and the SRAM of its smallest member. SRAM sizes are the
contiguous block at the SRAM base (CCM, SRAM2 aliases and TCMs elsewhere are not counted), from
the datasheets' memory tables; see the issue report for those not confirmed from a public text.
"""

from __future__ import annotations

from functools import partial

from gangflash.target import flash_specs as fc
from gangflash.target.geometry import KiB, FlashLayout
from gangflash.target.parts import (BitRef, ClockControl, Core, CrcUnit, DebugSupport, Part,
                                    ReadProtection)

SRAM = 0x20000000
CRC_BASE = 0x40023000

# --- erase layouts --------------------------------------------------------------------------------

PAGES_128 = FlashLayout(single=(128,))
PAGES_256 = FlashLayout(single=(256,))
PAGES_1K = FlashLayout(single=(1 * KiB,))
PAGES_2K = FlashLayout(single=(2 * KiB,))
SECTORS_F4 = (16 * KiB,) * 4 + (64 * KiB, 128 * KiB)        # 4x16, 64, then 128 KiB repeated
SECTORS_F7 = (32 * KiB,) * 4 + (128 * KiB, 256 * KiB)       # F74x and single-bank F76x

F1_XL = FlashLayout(single=(2 * KiB,), dual=(2 * KiB,), dual_always=None, bank1_kib=512)
F4_SINGLE = FlashLayout(single=SECTORS_F4)
# F42x/43x and F469/479: 2 MiB always two banks of the F4 map, bank 2 sectors numbered 12-23;
# 1 MiB parts are single-bank unless DB1M=1 (factory 0), then 2 x (4x16 + 64 + 3x128), 12-19.
F4_DUAL = FlashLayout(single=SECTORS_F4, dual=SECTORS_F4, dual_always=frozenset({2048}),
                      dual_optional=frozenset({1024}), dual_default=False,
                      dual_option_name="DB1M", bank2_first_index=12)
F7_SINGLE = FlashLayout(single=SECTORS_F7)
# F76x/77x 2 MiB: nDBANK=1 (single bank, the factory setting) gives the F7 map; nDBANK=0 two banks
# of the F4 map at 0x08000000 / 0x08100000. 1 MiB dual-bank is refused: RM places bank 2 at
# 0x08080000, users report it at 0x08100000 (ST community, F765), so it stays unconfirmed.
F7_DUAL = FlashLayout(single=SECTORS_F7, dual=SECTORS_F4, dual_optional=frozenset({2048}),
                      dual_default=False, dual_option_name="nDBANK", bank2_first_index=12)
# L47x/48x, L49x/4Ax: 1 MiB always dual; 256/512 KiB dual unless DUALBANK=0 (factory 1).
L4_DUAL = FlashLayout(single=(2 * KiB,), dual=(2 * KiB,), dual_always=frozenset({1024}),
                      dual_optional=None, dual_default=True, dual_option_name="DUALBANK")
# L4R/S, L4P/Q: single bank 8 KiB pages, dual bank 4 KiB (DBANK / DB1M, factory dual).
L4PLUS = FlashLayout(single=(8 * KiB,), dual=(4 * KiB,), dual_optional=None, dual_default=True,
                     dual_option_name="DBANK/DB1M")
# G0Bx/G0Cx: DUAL_BANK (factory 1) on 256/512 KiB; banks contiguous, PNB counted per bank.
G0_DUAL = FlashLayout(single=(2 * KiB,), dual=(2 * KiB,), dual_optional=frozenset({256, 512}),
                      dual_default=True, dual_option_name="DUAL_BANK")
# G47x/48x: single bank 4 KiB pages, dual (DBANK, factory 1) 2 KiB pages with bank 2 always at
# 0x08040000, leaving a gap on 128/256 KiB parts (OpenOCD stm32l4x.c "dual bank WITH gap").
G4_CAT3 = FlashLayout(single=(4 * KiB,), dual=(2 * KiB,), dual_optional=None, dual_default=True,
                      dual_option_name="DBANK", bank2_offset=256 * KiB)
# L0 cat 5: 128/192 KiB dual bank, halves (OpenOCD stm32lx.c); 64 KiB single.
L0_CAT5 = FlashLayout(single=(128,), dual=(128,), dual_always=frozenset({128, 192}))
L1_CAT4 = FlashLayout(single=(256,), dual=(256,), dual_always=frozenset({384}))
L1_CAT56 = FlashLayout(single=(256,), dual=(256,), dual_always=None)
# H74x/75x, H7A/B: two banks at 0x08000000 / 0x08100000 even on 1 MiB parts (RM0433 table 16);
# H750 / H7B0 (128 KiB) single bank.
H7_DUAL = FlashLayout(single=(128 * KiB,), dual=(128 * KiB,),
                      dual_always=frozenset({1024, 2048}), bank2_offset=1024 * KiB)
H7AB_DUAL = FlashLayout(single=(8 * KiB,), dual=(8 * KiB,),
                        dual_always=frozenset({1024, 2048}), bank2_offset=1024 * KiB)
H7_SINGLE = FlashLayout(single=(128 * KiB,))

# --- shared per-family traits ---------------------------------------------------------------------

_FPEC_RDP_F1 = ReadProtection(0x4002201C, 1, 1, 0, None, 0x1FFFF800, 0xA5)   # OBR.RDPRT
_FPEC_RDP_F0 = ReadProtection(0x4002201C, 1, 2, 0b00, 0b11, 0x1FFFF800, 0xAA)  # RDPRT[2:1]
_OPTCR_RDP = partial(ReadProtection, 0x40023C14, 8, 8, 0xAA, 0xCC)             # F2/F4/F7
_OPTR_RDP = ReadProtection(0x40022020, 0, 8, 0xAA, 0xCC, 0x1FFF7800, 0xAA)      # L4/G0/G4

_DBG_CORTEX = DebugSupport(0xE0042004, BitRef(0xE0042008, 12))       # APB1 freeze, IWDG bit 12
_DBG_APB = DebugSupport(0x40015804, BitRef(0x40015808, 12))          # F0/L0/G0
_RCC_FPEC = ClockControl(0x40021000, hsi_on=BitRef(0x40021000, 0), hsi_ready=BitRef(0x40021000, 1))

_f0 = partial(
    Part, family="F0", core=Core.M0, idcode_address=0x40015800, flash_size_register=0x1FFFF7CC,
    controller=fc.F0_FLASH, unique_id_address=0x1FFFF7AC, unique_id_offsets=(0, 4, 8),
    sram_base=SRAM, debug=_DBG_APB, clocks=_RCC_FPEC,
    crc=CrcUnit(CRC_BASE, BitRef(0x40021014, 6)), rdp=_FPEC_RDP_F0)
_f1 = partial(
    Part, family="F1", core=Core.M3, idcode_address=0xE0042000, flash_size_register=0x1FFFF7E0,
    controller=fc.F1_FLASH, unique_id_address=0x1FFFF7E8, unique_id_offsets=(0, 4, 8),
    sram_base=SRAM, debug=DebugSupport(0xE0042004, BitRef(0xE0042004, 8)), clocks=_RCC_FPEC,
    crc=CrcUnit(CRC_BASE, BitRef(0x40021014, 6)), rdp=_FPEC_RDP_F1)
_f3 = partial(
    Part, family="F3", core=Core.M4, idcode_address=0xE0042000, flash_size_register=0x1FFFF7CC,
    controller=fc.F3_FLASH, unique_id_address=0x1FFFF7AC, unique_id_offsets=(0, 4, 8),
    sram_base=SRAM, debug=_DBG_CORTEX, clocks=_RCC_FPEC, layout=PAGES_2K,
    crc=CrcUnit(CRC_BASE, BitRef(0x40021014, 6)), rdp=_FPEC_RDP_F0)
_f24 = partial(
    Part, idcode_address=0xE0042000, flash_size_register=0x1FFF7A22,
    unique_id_address=0x1FFF7A10, unique_id_offsets=(0, 4, 8), sram_base=SRAM,
    debug=_DBG_CORTEX, clocks=ClockControl(0x40023800),
    crc=CrcUnit(CRC_BASE, BitRef(0x40023830, 12)), rdp=_OPTCR_RDP(0x1FFFC001, 0xAA))
_f4 = partial(_f24, family="F4", core=Core.M4, controller=fc.F4_FLASH)
_f7 = partial(
    Part, family="F7", core=Core.M7, idcode_address=0xE0042000, flash_size_register=0x1FF0F442,
    controller=fc.F7_FLASH, unique_id_address=0x1FF0F420, unique_id_offsets=(0, 4, 8),
    sram_base=SRAM, debug=_DBG_CORTEX, clocks=ClockControl(0x40023800),
    crc=CrcUnit(CRC_BASE, BitRef(0x40023830, 12)), rdp=_OPTCR_RDP(0x1FFF0001, 0xAA))
_l0 = partial(
    Part, family="L0", core=Core.M0PLUS, idcode_address=0x40015800,
    flash_size_register=0x1FF8007C, controller=fc.L0_FLASH, unique_id_address=0x1FF80050,
    unique_id_offsets=(0, 4, 0x14), sram_base=SRAM, debug=_DBG_APB,
    clocks=ClockControl(0x40021000), crc=CrcUnit(CRC_BASE, BitRef(0x40021030, 12)),
    rdp=ReadProtection(0x4002201C, 0, 8, 0xAA, 0xCC, 0x1FF80000, 0xAA))   # FLASH_OPTR.RDPROT
_l1 = partial(
    Part, family="L1", core=Core.M3, idcode_address=0xE0042000, controller=fc.L1_FLASH,
    unique_id_offsets=(0, 4, 0x14), sram_base=SRAM, debug=_DBG_CORTEX,
    clocks=ClockControl(0x40023800), crc=CrcUnit(CRC_BASE, BitRef(0x4002381C, 12)),
    rdp=ReadProtection(0x40023C1C, 0, 8, 0xAA, 0xCC, 0x1FF80000, 0xAA))   # FLASH_OBR.RDPRT
_l1_small = partial(_l1, flash_size_register=0x1FF8004C, unique_id_address=0x1FF80050)
_l1_big = partial(_l1, flash_size_register=0x1FF800CC, unique_id_address=0x1FF800D0)
_l4_common = partial(
    Part, flash_size_register=0x1FFF75E0, unique_id_address=0x1FFF7590,
    unique_id_offsets=(0, 4, 8), sram_base=SRAM, clocks=ClockControl(0x40021000), rdp=_OPTR_RDP)
_l4 = partial(_l4_common, family="L4", core=Core.M4, idcode_address=0xE0042000,
              controller=fc.L4_FLASH, debug=_DBG_CORTEX,
              crc=CrcUnit(CRC_BASE, BitRef(0x40021048, 12)))
_g0 = partial(_l4_common, family="G0", core=Core.M0PLUS, idcode_address=0x40015800,
              controller=fc.G0_FLASH, debug=_DBG_APB,
              crc=CrcUnit(CRC_BASE, BitRef(0x40021038, 12)))
_g4 = partial(_l4_common, family="G4", core=Core.M4, idcode_address=0xE0042000,
              controller=fc.G4_FLASH, debug=_DBG_CORTEX,
              crc=CrcUnit(CRC_BASE, BitRef(0x40021048, 12)))
_h7 = partial(
    Part, family="H7", core=Core.M7, idcode_address=0x5C001000, flash_size_register=0x1FF1E880,
    controller=fc.H7_FLASH, unique_id_address=0x1FF1E800, unique_id_offsets=(0, 4, 8),
    sram_base=0x24000000,    # AXI SRAM (DTCM at 0x20000000 is not on every bus master's path)
    debug=DebugSupport(0x5C001004, BitRef(0x5C001054, 18)),   # APB4FZ1.DBG_IWDG1
    clocks=ClockControl(0x58024400), crc=CrcUnit(0x58024C00, BitRef(0x580244E0, 19)),
    rdp=ReadProtection(0x5200201C, 8, 8, 0xAA, 0xCC, None, 0xAA))        # FLASH_OPTSR_CUR

# --- the lines ------------------------------------------------------------------------------------

PART_LIST: tuple[Part, ...] = (
    # F0 (RM0091: 1 KiB pages up to 64 KiB parts, 2 KiB on F07x/F09x)
    _f0(dev_id=0x444, line="F03x", max_flash_kib=32, layout=PAGES_1K, sram_loader_kib=4),
    _f0(dev_id=0x445, line="F04x, F070x6", max_flash_kib=32, layout=PAGES_1K, sram_loader_kib=6),
    _f0(dev_id=0x440, line="F05x, F030x8", max_flash_kib=64, layout=PAGES_1K, sram_loader_kib=8),
    _f0(dev_id=0x448, line="F07x", max_flash_kib=128, layout=PAGES_2K, sram_loader_kib=16),
    _f0(dev_id=0x442, line="F09x, F030xC", max_flash_kib=256, layout=PAGES_2K,
        sram_loader_kib=32),
    # F1
    _f1(dev_id=0x412, line="F10x low-density", max_flash_kib=32, layout=PAGES_1K,
        sram_loader_kib=4),
    _f1(dev_id=0x410, line="F10x medium-density", max_flash_kib=128, layout=PAGES_1K,
        sram_loader_kib=10),
    _f1(dev_id=0x414, line="F10x high-density", max_flash_kib=512, layout=PAGES_2K,
        sram_loader_kib=32),
    _f1(dev_id=0x430, line="F10x XL-density", max_flash_kib=1024, layout=F1_XL,
        controller=fc.F1_XL_FLASH, sram_loader_kib=80),
    _f1(dev_id=0x418, line="F105/F107 connectivity", max_flash_kib=256, layout=PAGES_2K,
        sram_loader_kib=64),
    _f1(dev_id=0x420, line="F100 value line low/medium-density", max_flash_kib=128,
        layout=PAGES_1K, sram_loader_kib=4),
    _f1(dev_id=0x428, line="F100 value line high-density", max_flash_kib=512, layout=PAGES_2K,
        sram_loader_kib=24),
    # F3
    _f3(dev_id=0x422, line="F302/F303 B-C", max_flash_kib=256, sram_loader_kib=32),
    _f3(dev_id=0x438, line="F303 6-8, F334", max_flash_kib=64, sram_loader_kib=12),
    _f3(dev_id=0x446, line="F302/F303 D-E", max_flash_kib=512, sram_loader_kib=64),
    _f3(dev_id=0x439, line="F301, F302 6-8", max_flash_kib=64, sram_loader_kib=16),
    _f3(dev_id=0x432, line="F37x", max_flash_kib=256, sram_loader_kib=16),
    # F2 (also what F4 rev A reports; families.identify maps that case to 0x413)
    _f24(dev_id=0x411, family="F2", line="F20x-F21x", core=Core.M3, controller=fc.F2_FLASH,
         max_flash_kib=1024, layout=F4_SINGLE, sram_loader_kib=64),
    # F4
    _f4(dev_id=0x413, line="F405-F417", max_flash_kib=1024, layout=F4_SINGLE,
        sram_loader_kib=128),
    _f4(dev_id=0x419, line="F42x-F43x", max_flash_kib=2048, layout=F4_DUAL, sram_loader_kib=192),
    _f4(dev_id=0x434, line="F469-F479", max_flash_kib=2048, layout=F4_DUAL, sram_loader_kib=320),
    _f4(dev_id=0x423, line="F401 B-C", max_flash_kib=256, layout=F4_SINGLE, sram_loader_kib=64),
    _f4(dev_id=0x433, line="F401 D-E", max_flash_kib=512, layout=F4_SINGLE, sram_loader_kib=96),
    _f4(dev_id=0x458, line="F410", max_flash_kib=128, layout=F4_SINGLE, sram_loader_kib=32),
    _f4(dev_id=0x431, line="F411", max_flash_kib=512, layout=F4_SINGLE, sram_loader_kib=128),
    _f4(dev_id=0x441, line="F412", max_flash_kib=1024, layout=F4_SINGLE, sram_loader_kib=256),
    _f4(dev_id=0x421, line="F446", max_flash_kib=512, layout=F4_SINGLE, sram_loader_kib=128),
    _f4(dev_id=0x463, line="F413-F423", max_flash_kib=1536, layout=F4_SINGLE,
        sram_loader_kib=320),
    # F7 (SRAM from 0x20000000 = DTCM + SRAM1 + SRAM2, contiguous)
    _f7(dev_id=0x449, line="F74x-F75x", max_flash_kib=1024, layout=F7_SINGLE,
        sram_loader_kib=320),
    _f7(dev_id=0x451, line="F76x-F77x", max_flash_kib=2048, layout=F7_DUAL, sram_loader_kib=512),
    _f7(dev_id=0x452, line="F72x-F73x", max_flash_kib=512, layout=F4_SINGLE,
        flash_size_register=0x1FF07A22, unique_id_address=0x1FF07A10, sram_loader_kib=256),
    # L0
    _l0(dev_id=0x457, line="category 1", max_flash_kib=16, layout=PAGES_128, sram_loader_kib=2),
    _l0(dev_id=0x425, line="category 2", max_flash_kib=32, layout=PAGES_128, sram_loader_kib=8),
    _l0(dev_id=0x417, line="category 3", max_flash_kib=64, layout=PAGES_128, sram_loader_kib=8),
    _l0(dev_id=0x447, line="category 5", max_flash_kib=192, layout=L0_CAT5, sram_loader_kib=20),
    # L1 (categories per RM0038; 0x436 codes its size as 0 = 384 KiB, 1 = 256 KiB)
    _l1_small(dev_id=0x416, line="category 1", max_flash_kib=128, layout=PAGES_256,
              sram_loader_kib=4),
    _l1_small(dev_id=0x429, line="category 2", max_flash_kib=128, layout=PAGES_256,
              sram_loader_kib=4, flash_size_mask=0xFF),
    _l1_big(dev_id=0x427, line="category 3", max_flash_kib=256, layout=PAGES_256,
            sram_loader_kib=16),
    _l1_big(dev_id=0x436, line="category 4, category 3 (-A)", max_flash_kib=384,
            layout=L1_CAT4, sram_loader_kib=32, flash_size_codes=((0, 384), (1, 256))),
    _l1_big(dev_id=0x437, line="category 5-6", max_flash_kib=512, layout=L1_CAT56,
            sram_loader_kib=80),
    # L4 / L4+ (SRAM1 only; SRAM2 sits at 0x10000000)
    _l4(dev_id=0x415, line="L47x-L48x", max_flash_kib=1024, layout=L4_DUAL, sram_loader_kib=96),
    _l4(dev_id=0x435, line="L43x-L44x", max_flash_kib=256, layout=PAGES_2K, sram_loader_kib=48),
    _l4(dev_id=0x462, line="L45x-L46x", max_flash_kib=512, layout=PAGES_2K, sram_loader_kib=128),
    _l4(dev_id=0x464, line="L41x-L42x", max_flash_kib=128, layout=PAGES_2K, sram_loader_kib=32),
    _l4(dev_id=0x461, line="L49x-L4Ax", max_flash_kib=1024, layout=L4_DUAL, sram_loader_kib=256),
    _l4(dev_id=0x470, line="L4R-L4S (L4+)", max_flash_kib=2048, layout=L4PLUS,
        controller=fc.L4PLUS_FLASH, sram_loader_kib=192),
    _l4(dev_id=0x471, line="L4P-L4Q (L4+)", max_flash_kib=1024, layout=L4PLUS,
        controller=fc.L4PLUS_FLASH, sram_loader_kib=128),
    # G0
    _g0(dev_id=0x466, line="G03x-G04x", max_flash_kib=64, layout=PAGES_2K, sram_loader_kib=8),
    _g0(dev_id=0x456, line="G05x-G06x", max_flash_kib=64, layout=PAGES_2K, sram_loader_kib=18),
    _g0(dev_id=0x460, line="G07x-G08x", max_flash_kib=128, layout=PAGES_2K, sram_loader_kib=36),
    _g0(dev_id=0x467, line="G0Bx-G0Cx", max_flash_kib=512, layout=G0_DUAL, sram_loader_kib=144),
    # G4 (SRAM1 + SRAM2, contiguous at 0x20000000; CCM not counted)
    _g4(dev_id=0x468, line="category 2 (G43x-G44x)", max_flash_kib=128, layout=PAGES_2K,
        sram_loader_kib=22),
    _g4(dev_id=0x469, line="category 3 (G47x-G48x)", max_flash_kib=512, layout=G4_CAT3,
        sram_loader_kib=96),
    _g4(dev_id=0x479, line="category 4 (G49x-G4Ax)", max_flash_kib=512, layout=PAGES_2K,
        sram_loader_kib=96),
    # H7 (loader SRAM: AXI SRAM at 0x24000000)
    _h7(dev_id=0x450, line="H74x-H75x", max_flash_kib=2048, layout=H7_DUAL, sram_loader_kib=512),
    _h7(dev_id=0x480, line="H7Ax-H7Bx", max_flash_kib=2048, layout=H7AB_DUAL,
        controller=fc.H7AB_FLASH, flash_size_register=0x08FFF80C, unique_id_address=0x08FFF800,
        sram_loader_kib=256),
    _h7(dev_id=0x483, line="H72x-H73x", max_flash_kib=1024, layout=H7_SINGLE,
        sram_loader_kib=128),
)

__all__ = ["PART_LIST"]
