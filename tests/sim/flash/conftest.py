"""A bench for driving one flash controller model without Unicorn: a virtual clock we move by
hand, a stall that advances it (as the target's bus does), and switches for HSI and the debugger."""

from __future__ import annotations

import pytest

from gangflash.sim.chips import chip_by_name
from gangflash.sim.faults import TargetFaults
from gangflash.sim.flash.base import FlashEnv, FlashMemory, make_controller

KEY1, KEY2 = 0x45670123, 0xCDEF89AB
OPTKEY1, OPTKEY2 = 0x08192A3B, 0x4C5D6E7F


class Rig:
    def __init__(self, chip_name: str, **faults) -> None:
        self.chip = chip_by_name(chip_name)
        self.t = 0.0
        self.stalls: list[float] = []
        self.hsi = True
        self.debugger = True
        self.resets = 0
        self.charge = True                      # False: a master the target cannot charge (halted core)
        self.faults = TargetFaults(**faults)
        self.memory = FlashMemory(self.chip.flash_base, self.chip.flash_size)
        env = FlashEnv(now=lambda: self.t, stall=self._stall, hsi_on=lambda: self.hsi,
                       debugger_connected=lambda: self.debugger, system_reset=self._reset,
                       faults=self.faults)
        self.ctrl = make_controller(self.chip, self.memory, env)

    def _stall(self, seconds: float) -> None:
        assert seconds >= 0
        self.stalls.append(seconds)
        if self.charge:
            self.t += seconds

    def _reset(self) -> None:
        self.resets += 1
        self.ctrl.system_reset()

    # registers
    def r(self, offset: int, size: int = 4) -> int:
        return self.ctrl.read_reg(offset, size)

    def w(self, offset: int, value: int, size: int = 4) -> None:
        self.ctrl.write_reg(offset, value, size)

    def setbits(self, offset: int, bits: int) -> None:
        self.w(offset, self.r(offset) | bits)

    def clearbits(self, offset: int, bits: int) -> None:
        self.w(offset, self.r(offset) & ~bits)

    # flash
    def store(self, address: int, value: int, size: int) -> None:
        self.ctrl.flash_store(address, value, size, from_debugger=False)

    def read(self, address: int, length: int) -> bytes:
        return self.memory.read(address, length)

    def u16(self, address: int) -> int:
        return int.from_bytes(self.read(address, 2), "little")

    def u32(self, address: int) -> int:
        return int.from_bytes(self.read(address, 4), "little")

    def poll(self, sr: int, bsy: int, limit: int = 10_000_000) -> int:
        """Poll SR until BSY clears, as a loader's loop does; returns the number of reads."""
        for n in range(1, limit):
            if not self.r(sr) & bsy:
                return n
        raise AssertionError("BSY never cleared")

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def rig():
    return Rig
