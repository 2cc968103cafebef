"""A minimal debugger over ``SimTarget``'s debug port, for chip-level tests.

It speaks only through the same methods the probe firmware uses (AHB-AP memory accesses and the
DHCSR/DCRSR/DCRDR registers), so what these tests show is what any debugger would see.
"""

from __future__ import annotations

import pathlib
import shutil
import struct
import subprocess
import tempfile

from gangflash.sim.clock import ManualClock
from gangflash.sim.target import SimTarget

DHCSR, DCRSR, DCRDR, DEMCR, AIRCR, DFSR = 0xE000EDF0, 0xE000EDF4, 0xE000EDF8, 0xE000EDFC, 0xE000ED0C, 0xE000ED30
S_HALT, S_SLEEP, S_LOCKUP, S_RESET_ST = 1 << 17, 1 << 18, 1 << 19, 1 << 25


def assemble(source: str, cpu: str = "cortex-m3") -> bytes:
    """Thumb machine code for ``source`` (binutils-arm-none-eabi, installed by ./dev.sh)."""
    assert shutil.which("arm-none-eabi-as"), "binutils-arm-none-eabi missing: run ./dev.sh setup"
    with tempfile.TemporaryDirectory() as tmp:
        src = pathlib.Path(tmp, "snippet.s")
        src.write_text(".syntax unified\n.thumb\n" + source + "\n.ltorg\n")
        obj, binary = src.with_suffix(".o"), src.with_suffix(".bin")
        subprocess.run(["arm-none-eabi-as", f"-mcpu={cpu}", "-o", str(obj), str(src)], check=True)
        subprocess.run(["arm-none-eabi-objcopy", "-O", "binary", str(obj), str(binary)], check=True)
        return binary.read_bytes()


class ChipDebugger:
    def __init__(self, target: SimTarget, clock: ManualClock) -> None:
        self.target = target
        self.clock = clock
        target.sync(clock())
        target.swd_connect()

    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.target.sync(self.clock())

    def r32(self, address: int) -> int:
        self.target.sync(self.clock())
        return struct.unpack("<I", self.target.mem_read(address, 4, 4))[0]

    def w32(self, address: int, value: int) -> None:
        self.target.sync(self.clock())
        self.target.mem_write(address, struct.pack("<I", value & 0xFFFFFFFF), 4)

    def w16(self, address: int, value: int) -> None:
        self.target.sync(self.clock())
        self.target.mem_write(address, struct.pack("<H", value & 0xFFFF), 2)

    def dhcsr(self) -> int:
        return self.r32(DHCSR)

    def halt(self, maskints: bool = False) -> None:
        self.w32(DHCSR, 0xA05F0003 | (8 if maskints else 0))
        assert self.dhcsr() & S_HALT

    def resume(self, maskints: bool = False) -> None:
        self.w32(DFSR, 0x1F)
        self.w32(DHCSR, 0xA05F0001 | (8 if maskints else 0))

    def reg(self, index: int) -> int:
        self.w32(DCRSR, index)
        return self.r32(DCRDR)

    def set_reg(self, index: int, value: int) -> None:
        self.w32(DCRDR, value)
        self.w32(DCRSR, index | 0x10000)

    def reset_halt(self) -> None:
        self.halt()
        self.w32(DEMCR, self.r32(DEMCR) | 1)
        self.w32(AIRCR, 0x05FA0004)
        assert self.dhcsr() & S_HALT
        self.w32(DEMCR, self.r32(DEMCR) & ~1)

    def load(self, address: int, code: bytes) -> None:
        self.target.sync(self.clock())
        self.target.mem_write(address, code + b"\0" * (-len(code) % 4), 4)

    def start(self, pc: int, sp: int = 0x20002000, xpsr: int | None = 0x01000000, maskints: bool = False) -> None:
        """Point the core at ``pc`` and resume; ``xpsr=None`` leaves xPSR as it is (naive)."""
        self.set_reg(15, pc)
        self.set_reg(13, sp)
        if xpsr is not None:
            self.set_reg(16, xpsr)
        self.resume(maskints)
