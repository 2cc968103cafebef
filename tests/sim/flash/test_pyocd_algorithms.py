"""pyOCD 0.46's built-in STM32 flash algorithms, run unchanged in Unicorn against the models.

A minimal bus (no target model): SRAM as plain memory, the flash controller block, main flash,
IWDG and DBGMCU as MMIO calling the controller; virtual time moves only through the
controller's stalls (SR polling), which is enough for BSY to behave as on the chip.
"""

from __future__ import annotations

import struct

import pytest

from .conftest import Rig

unicorn = pytest.importorskip("unicorn")
builtin = pytest.importorskip("pyocd.target.builtin")
from unicorn import arm_const  # noqa: E402

PAGE = 0x1000


class Bench(Rig):
    def __init__(self, chip_name: str, algo: dict, **faults) -> None:
        super().__init__(chip_name, **faults)
        self.algo = algo
        self.iwdg_writes: list[tuple[int, int]] = []
        uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS)
        uc.mem_map(0x20000000, 0x10000)
        chip = self.chip
        uc.mmio_map(chip.flash_base, chip.flash_size, self._flash_read, None, self._flash_write, None)
        block = self.ctrl.reg_base & ~(PAGE - 1)
        uc.mmio_map(block, PAGE, self._reg_read, block, self._reg_write, block)
        uc.mmio_map(0x40003000, PAGE, lambda *a: 0, None, self._iwdg_write, None)
        uc.mmio_map(0xE0042000, PAGE, self._dbgmcu_read, None, lambda *a: None, None)
        words = algo["instructions"]
        uc.mem_write(algo["load_address"], struct.pack(f"<{len(words)}I", *words))
        self.uc = uc

    def _flash_read(self, uc, offset, size, _):
        return int.from_bytes(self.memory.read(self.chip.flash_base + offset, size), "little")

    def _flash_write(self, uc, offset, size, value, _):
        self.ctrl.flash_store(self.chip.flash_base + offset, value, size, from_debugger=False)

    def _reg_read(self, uc, offset, size, block):
        offset = block + offset - self.ctrl.reg_base
        return self.ctrl.read_reg(offset, size) if 0 <= offset < 0x400 else 0

    def _reg_write(self, uc, offset, size, value, block):
        offset = block + offset - self.ctrl.reg_base
        if 0 <= offset < 0x400:
            self.ctrl.write_reg(offset, value, size)

    def _iwdg_write(self, uc, offset, size, value, _):
        self.iwdg_writes.append((offset, value))

    def _dbgmcu_read(self, uc, offset, size, _):
        return self.chip.idcode if offset == 0 else 0

    def call(self, pc: int, *args: int, init: bool = False) -> int:
        uc, algo = self.uc, self.algo
        for reg, value in zip((arm_const.UC_ARM_REG_R0, arm_const.UC_ARM_REG_R1,
                               arm_const.UC_ARM_REG_R2), args):
            uc.reg_write(reg, value)
        if init:
            uc.reg_write(arm_const.UC_ARM_REG_R9, algo["static_base"])
            uc.reg_write(arm_const.UC_ARM_REG_SP, algo["begin_stack"])
        uc.reg_write(arm_const.UC_ARM_REG_LR, algo["load_address"] + 1)
        uc.emu_start(pc | 1, algo["load_address"], count=5_000_000)
        assert uc.reg_read(arm_const.UC_ARM_REG_PC) == algo["load_address"], "routine did not return"
        return uc.reg_read(arm_const.UC_ARM_REG_R0)

    def run_program(self, address: int, data: bytes) -> int:
        buffer = self.algo["page_buffers"][0]
        self.uc.mem_write(buffer, data)
        return self.call(self.algo["pc_program_page"], address, len(data), buffer)


def image(length: int, seed: int = 7) -> bytes:
    return bytes((i * 37 + seed) & 0xFF for i in range(length))


def bench(chip, module, **faults) -> Bench:
    return Bench(chip, getattr(builtin, module).FLASH_ALGO, **faults)


BASE = 0x08000000


def test_f103rc_algorithm_erase_and_program():
    b = bench("F103RC", "target_STM32F103RC")
    a = b.algo
    b.memory.write_raw(BASE, b"\x00" * 0x800)
    assert b.call(a["pc_init"], BASE, 0, 1, init=True) == 0
    t = b.t
    assert b.call(a["pc_erase_sector"], BASE) == 0
    assert b.t - t == pytest.approx(30e-3)
    assert b.read(BASE, 0x800) == b"\xFF" * 0x800
    data = image(0x800)
    t = b.t
    assert b.run_program(BASE, data) == 0
    assert b.t - t == pytest.approx(1024 * 52.5e-6)
    assert b.read(BASE, 0x800) == data


def test_f103rc_algorithm_reports_stuck_bits_and_wrp():
    b = bench("F103RC", "target_STM32F103RC", stuck_bits={BASE + 0x10: 0x80}, write_protected=(2,))
    a = b.algo
    b.call(a["pc_init"], BASE, 0, 2, init=True)
    data = bytearray(0x800)
    data[0x10] = 0xFF                                            # needs the stuck bit at 1
    assert b.run_program(BASE, bytes(data)) == 1                 # verify catches the stuck bit
    assert b.call(a["pc_erase_sector"], BASE + 0x1000) == 0      # the blob ignores WRPRTERR...
    assert b.run_program(BASE + 0x1000, b"\x00" * 0x800) == 1    # ...its verify does not
    assert b.r(0x0C) & 0x10


def test_f103rc_algorithm_hangs_without_hsi():
    b = bench("F103RC", "target_STM32F103RC")
    b.hsi = False
    b.call(b.algo["pc_init"], BASE, 0, 1, init=True)
    with pytest.raises(AssertionError, match="did not return"):
        b.call(b.algo["pc_erase_sector"], BASE)


def test_f412_algorithm_erase_and_program():
    b = bench("F412ZG", "target_STM32F412xx", flash_unlocked_stale_flags=True)
    a = b.algo
    b.memory.write_raw(BASE, b"\x00" * 0x4000)
    assert b.call(a["pc_init"], BASE, 0, 1, init=True) == 0     # clears the stale flags
    t = b.t
    assert b.call(a["pc_erase_sector"], BASE) == 0
    assert b.t - t == pytest.approx(0.400)                       # x8: the blob leaves PSIZE 0
    assert any(v == 0xAAAA for _, v in b.iwdg_writes)            # reloads during BSY
    assert b.read(BASE, 0x4000) == b"\xFF" * 0x4000
    data = image(0x1000)
    t = b.t
    assert b.run_program(BASE, data) == 0
    assert b.t - t == pytest.approx(1024 * 16e-6)
    assert b.read(BASE, 0x1000) == data
    b.call(a["pc_unInit"], 2)
    assert b.r(0x10) & (1 << 31)


def test_f412_algorithm_fails_on_protected_sector_and_sets_up_hardware_watchdog():
    b = bench("F412ZG", "target_STM32F412xx", write_protected=(1,), hardware_watchdog=True)
    a = b.algo
    b.call(a["pc_init"], BASE, 0, 1, init=True)
    assert (0, 0x5555) in b.iwdg_writes                          # WDG_SW = 0 path taken
    assert b.call(a["pc_erase_sector"], BASE + 0x4000) == 1


def test_l432_algorithm_erase_and_program():
    b = bench("L432KC", "target_STM32L432xx", flash_locked_stale_flags=True)
    a = b.algo
    b.memory.write_raw(BASE + 0x800, b"\x00" * 0x800)
    assert b.call(a["pc_init"], BASE, 0, 1, init=True) == 0
    t = b.t
    assert b.call(a["pc_erase_sector"], BASE + 0x800) == 0
    assert b.t - t == pytest.approx(22.0e-3)
    assert b.read(BASE + 0x800, 0x800) == b"\xFF" * 0x800
    data = image(0x400)
    t = b.t
    assert b.run_program(BASE + 0x800, data) == 0
    assert b.t - t == pytest.approx(128 * 81.7e-6)
    assert b.read(BASE + 0x800, 0x400) == data
    assert b.run_program(BASE + 0x800, data) == 1                # PROGERR: not erased
    b.call(a["pc_unInit"], 2)
    assert b.r(0x14) == 0xC0000000
