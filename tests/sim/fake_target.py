"""A stand-in for ``gangflash.sim.target.SimTarget`` with exactly the interface the probe drives.

Just enough chip for byte-level probe tests: 20 KiB of RAM at 0x20000000 (anything past it, and
any unmapped address, raises BusFault at the first faulting unit), read-only "flash" with a
counting pattern, a DHCSR/DCRSR/DCRDR model good enough for the register commands, a DP with
power-up acknowledge bits, and AP 0 as an AHB-AP (other APs read 0, as absent APs do).
Knobs for tests: ``powered`` (False: every SWD access raises SwdNoTarget, voltage 0 V) and
``wait_next`` (the target itself answers WAIT to the next N SWD accesses).
"""

from __future__ import annotations

from gangflash.sim.errors import BusFault, SwdNoTarget, SwdWait

RAM_BASE, RAM_SIZE = 0x20000000, 20 * 1024
FLASH_BASE, FLASH_SIZE = 0x08000000, 64 * 1024
DHCSR, DCRSR, DCRDR, DEMCR, AIRCR, CPUID = (0xE000EDF0, 0xE000EDF4, 0xE000EDF8, 0xE000EDFC,
                                            0xE000ED0C, 0xE000ED00)
C_DEBUGEN, C_HALT, C_STEP = 1, 2, 4
S_REGRDY, S_HALT, S_RESET_ST = 1 << 16, 1 << 17, 1 << 25


class FakeTarget:
    """Deterministic fake chip; records what the probe did to it."""

    DP_IDR = 0x1BA01477
    AP0_IDR = 0x14770011

    def __init__(self) -> None:
        self.powered = True
        self.wait_next = 0
        self.ram = bytearray(RAM_SIZE)
        self.flash = bytes(i & 0xFF for i in range(FLASH_SIZE))
        self.scs: dict[int, int] = {CPUID: 0x411FC231, DEMCR: 0}
        self.regs: dict[int, int] = {i: 0 for i in range(21)}
        self.dhcsr_ctrl = 0
        self.halted = False
        self.reset_sticky = False
        self.dcrdr = 0
        self.ctrl_stat = 0
        self.select = 0
        self.abort_writes: list[int] = []
        self.ap0 = {0x00: 0x03000040, 0x04: 0, 0xF4: 0, 0xF8: 0xE00FF003, 0xFC: self.AP0_IDR}
        self.nrst_log: list[bool] = []
        self.reset_count = 0
        self.sync_times: list[float] = []
        self.accesses = 0

    # --- plumbing ------------------------------------------------------------------------------
    def _swd(self, dp: bool = False) -> None:
        self.accesses += 1
        if not self.powered:
            raise SwdNoTarget("target unpowered")
        if self.wait_next > 0:
            self.wait_next -= 1
            raise SwdWait(dp=dp)

    def sync(self, now: float) -> None:
        self.sync_times.append(now)

    def voltage(self) -> float:
        return 3.3 if self.powered else 0.0

    def swd_connect(self) -> int:
        self._swd(dp=True)
        return self.DP_IDR

    def set_nrst(self, low: bool) -> None:
        if self.nrst_log and self.nrst_log[-1] and not low:
            self.reset_count += 1
            self.reset_sticky = True
        self.nrst_log.append(low)

    def reset_system(self) -> None:
        self._swd()
        self.reset_count += 1
        self.reset_sticky = True

    # --- DP / AP ---------------------------------------------------------------------------------
    def dp_read(self, addr: int) -> int:
        self._swd(dp=True)
        reg = addr & 0xF
        if reg == 0x0:
            return self.DP_IDR
        if reg == 0x4:
            # power-up requests (bits 30, 28) are acknowledged at once (bits 31, 29)
            return self.ctrl_stat | ((self.ctrl_stat << 1) & 0xA0000000)
        if reg == 0x8:
            return self.select
        return 0

    def dp_write(self, addr: int, value: int) -> None:
        self._swd(dp=True)
        reg = addr & 0xF
        if reg == 0x0:
            self.abort_writes.append(value)
        elif reg == 0x4:
            self.ctrl_stat = value
        elif reg == 0x8:
            self.select = value

    def ap_read(self, apsel: int, addr: int) -> int:
        self._swd()
        if apsel != 0:
            return 0
        if addr == 0x0C:
            value = int.from_bytes(self._read_unit(self.ap0[0x04] & ~3, 4), "little")
            self.ap0[0x04] += 4
            return value
        return self.ap0.get(addr, 0)

    def ap_write(self, apsel: int, addr: int, value: int) -> None:
        self._swd()
        if apsel != 0:
            return
        if addr == 0x0C:
            self._write_unit(self.ap0[0x04] & ~3, value.to_bytes(4, "little"))
            self.ap0[0x04] += 4
        else:
            self.ap0[addr] = value

    # --- memory ----------------------------------------------------------------------------------
    def mem_read(self, addr: int, length: int, width: int) -> bytes:
        self._swd()
        return b"".join(self._read_unit(addr + off, width) for off in range(0, length, width))

    def mem_write(self, addr: int, data: bytes, width: int) -> None:
        self._swd()
        for off in range(0, len(data), width):
            self._write_unit(addr + off, data[off:off + width])

    def _read_unit(self, addr: int, width: int) -> bytes:
        if RAM_BASE <= addr and addr + width <= RAM_BASE + RAM_SIZE:
            return bytes(self.ram[addr - RAM_BASE:addr - RAM_BASE + width])
        if FLASH_BASE <= addr and addr + width <= FLASH_BASE + FLASH_SIZE:
            return self.flash[addr - FLASH_BASE:addr - FLASH_BASE + width]
        if width == 4 and addr == DHCSR:
            return self._dhcsr_read().to_bytes(4, "little")
        if width == 4 and addr == DCRDR:
            return self.dcrdr.to_bytes(4, "little")
        if width == 4 and addr in self.scs:
            return self.scs[addr].to_bytes(4, "little")
        raise BusFault(addr, "unmapped")

    def _write_unit(self, addr: int, data: bytes) -> None:
        value = int.from_bytes(data, "little")
        if RAM_BASE <= addr and addr + len(data) <= RAM_BASE + RAM_SIZE:
            self.ram[addr - RAM_BASE:addr - RAM_BASE + len(data)] = data
        elif len(data) == 4 and addr == DHCSR:
            self._dhcsr_write(value)
        elif len(data) == 4 and addr == DCRSR:
            self._dcrsr_write(value)
        elif len(data) == 4 and addr == DCRDR:
            self.dcrdr = value
        elif len(data) == 4 and addr == AIRCR:
            if value >> 16 == 0x05FA and value & 4:
                self.reset_count += 1
                self.reset_sticky = True
        elif len(data) == 4 and addr in self.scs:
            self.scs[addr] = value
        else:
            raise BusFault(addr, "unmapped or read-only")

    # --- core debug -------------------------------------------------------------------------------
    def _dhcsr_read(self) -> int:
        value = self.dhcsr_ctrl
        if self.halted:
            value |= S_HALT | S_REGRDY
        if self.reset_sticky:
            value |= S_RESET_ST
            self.reset_sticky = False
        return value

    def _dhcsr_write(self, value: int) -> None:
        if value >> 16 != 0xA05F:
            return
        self.dhcsr_ctrl = value & 0xF
        if not value & C_DEBUGEN:
            self.halted = False
        elif value & C_HALT:
            self.halted = True
        elif value & C_STEP and self.halted:
            self.regs[15] = (self.regs[15] + 2) & 0xFFFFFFFF
        else:
            self.halted = False

    def _dcrsr_write(self, value: int) -> None:
        if not self.halted:
            return                       # no S_REGRDY: the transfer never completes
        regsel = value & 0x7F
        if value & (1 << 16):
            self.regs[regsel] = self.dcrdr
        else:
            self.dcrdr = self.regs.get(regsel, 0)
