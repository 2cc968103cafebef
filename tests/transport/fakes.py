"""A scripted fake ST-Link link for driver unit tests.

Small on purpose: it answers the commands the driver sends from a sparse memory, records every
command block so tests can assert what went over the wire (chunk plans, opcodes), and lets a test
script statuses, WAIT bursts, lost transfers and unplugs at exact points. The full-fidelity
simulator (``gangflash.sim``) is exercised by the integration tests; this fake pins down protocol
details the simulator's model is free to change.
"""

from __future__ import annotations

import struct
from collections import defaultdict, deque

from gangflash.transport.backend import ProbeInfo
from gangflash.transport.errors import ProbeGone, UsbStall, UsbTimeout

READS = {0x07: 4, 0x0C: 1, 0x47: 2}
WRITES = {0x08: 4, 0x0D: 1, 0x48: 2}


class FakeStlink:
    """A ProbeLink whose far end is a scripted ST-Link.

    ``statuses[sub]`` is a queue of status bytes to answer for debug sub-opcode ``sub`` (for
    memory commands: what GETLASTRWSTATUS2 reports next); ``fail_transfer[n]`` makes the n-th
    transfer (1-based, OUT and IN counted) raise the given exception class.
    """

    def __init__(self, *, stlink: int = 2, jtag: int = 37, low: int = 26, pid: int = 0x374B,
                 max_packet: int | None = None, serial: str = "FAKE0001", mode: int = 0x01,
                 voltage: tuple[int, int] = (1490, 1855), idcode: int = 0x1BA01477,
                 com_freqs: tuple[int, ...] = (24000, 8000, 3300, 1000, 200, 50, 5)) -> None:
        v3 = stlink >= 3
        self.info = ProbeInfo(serial=serial, vid=0x0483, pid=pid, variant="V3" if v3 else "V2-1",
                              port_path="fake:0", backend="fake",
                              max_packet=max_packet or (512 if v3 else 64))
        self.stlink, self.jtag, self.low, self.pid = stlink, jtag, low, pid
        self.mode = mode
        self.voltage = voltage
        self.idcode = idcode
        self.com_freqs = com_freqs
        self.com_khz = 0
        self.divisor: int | None = None
        self.memory: dict[int, int] = defaultdict(int)
        self.fault_ranges: list[tuple[int, int]] = []
        self.regs = [0] * 21
        self.debug_regs: dict[int, int] = {}
        self.dap_writes: list[tuple[int, int, int]] = []
        self.nrst: list[int] = []
        self.core = 0x80
        self.statuses: dict[int, deque[int]] = defaultdict(deque)
        self.fail_transfer: dict[int, type[Exception]] = {}
        self.transfers = 0
        self.commands: list[bytes] = []
        self.writes: list[tuple[int, int, int]] = []   # (opcode, address, length) of memory writes
        self.pending = bytearray()
        self.expect_data: tuple[int, int, int] | None = None   # (opcode, address, length)
        self.last_rw = (0x80, 0)
        self.resets = 0
        self.closed = False
        self.unplugged = False

    # --- ProbeLink -----------------------------------------------------------------------------
    def _count(self) -> None:
        if self.unplugged:
            raise ProbeGone("fake unplugged", serial=self.info.serial)
        self.transfers += 1
        failure = self.fail_transfer.pop(self.transfers, None)
        if failure is ProbeGone:
            self.unplugged = True
        if failure is not None:
            raise failure("scripted", serial=self.info.serial)

    async def write(self, data: bytes, timeout: float) -> None:
        self._count()
        if self.expect_data is not None:
            op, address, length = self.expect_data
            self.expect_data = None
            self._store(op, address, data[:length])
            return
        self.commands.append(bytes(data))
        self._command(bytes(data))

    async def read(self, size: int, timeout: float) -> bytes:
        self._count()
        if not self.pending:
            raise UsbTimeout("nothing queued", serial=self.info.serial)
        out = bytes(self.pending[:size])
        del self.pending[:size]
        return out

    async def reset(self) -> None:
        self.resets += 1
        self.pending.clear()
        self.expect_data = None

    async def aclose(self) -> None:
        self.closed = True

    # --- the far end ---------------------------------------------------------------------------
    def _status(self, sub: int) -> int:
        queue = self.statuses.get(sub)
        return queue.popleft() if queue else 0x80

    def _faults(self, address: int, length: int) -> int | None:
        for start, end in self.fault_ranges:
            if address < end and start < address + length:
                return max(address, start)
        return None

    def _store(self, op: int, address: int, data: bytes) -> None:
        self.writes.append((op, address, len(data)))
        fault = self._faults(address, len(data))
        status = self._status(op)
        if fault is not None:
            self.last_rw = (0x11, fault)
            return
        self.last_rw = (status, 0)
        if status == 0x80:
            for i, b in enumerate(data):
                self.memory[address + i] = b

    def _reply(self, data: bytes) -> None:
        self.pending += data

    def _command(self, cmd: bytes) -> None:
        op = cmd[0]
        if op == 0xF1:
            packed = (self.stlink << 12) | ((0 if self.stlink >= 3 else self.jtag) << 6) | (
                0 if self.stlink >= 3 else self.low)
            self._reply(packed.to_bytes(2, "big") + struct.pack("<HH", 0x0483, self.pid))
        elif op == 0xFB:
            self._reply(bytes([self.stlink, 0, self.jtag, self.low, 0, 0, 0, 0])
                        + struct.pack("<HH", 0x0483, self.pid))
        elif op == 0xF5:
            self._reply(bytes([self.mode, 0]))
        elif op == 0xF3:
            self.mode = 0x01
        elif op == 0xF4:
            self.mode = 0x01
        elif op == 0xF7:
            self._reply(struct.pack("<II", *self.voltage))
        elif op == 0xF2:
            self._debug(cmd[1], cmd)
        else:
            raise UsbStall(f"unknown opcode {op:#x}", serial=self.info.serial)

    def _debug(self, sub: int, cmd: bytes) -> None:
        ok = bytes([0x80, 0])
        if sub in READS:
            address, length = struct.unpack_from("<IH", cmd, 2)
            fault = self._faults(address, length)
            status = self._status(sub)
            self.last_rw = (0x11, fault) if fault is not None else (status, 0)
            data = bytes(self.memory[address + i] for i in range(length))
            if sub == 0x0C and length == 1:
                data += b"\xEE"     # real probes answer a 1-byte 8-bit read with 2 bytes
            self._reply(data)
        elif sub in WRITES:
            address, length = struct.unpack_from("<IH", cmd, 2)
            self.expect_data = (sub, address, length)
        elif sub == 0x3E:
            status, address = self.last_rw
            self._reply(bytes([status, 0, 0, 0]) + struct.pack("<I", address) + bytes(4))
        elif sub == 0x3B:
            self._reply(bytes([self.last_rw[0], 0]))
        elif sub == 0x21:
            self.mode = 0x01
        elif sub == 0x30:
            status = self._status(sub)
            if status == 0x80:
                self.mode = 0x02
            self._reply(bytes([status, 0]))
        elif sub == 0x31:
            self._reply(bytes([self._status(sub), 0, 0, 0]) + struct.pack("<I", self.idcode)
                        + bytes(4))
        elif sub == 0x33:
            self._reply(bytes([self._status(sub), 0, 0, 0]) + struct.pack("<I", self.regs[cmd[2]]))
        elif sub == 0x34:
            self.regs[cmd[2]] = struct.unpack_from("<I", cmd, 3)[0]
            self._reply(ok)
        elif sub == 0x3A:
            self._reply(bytes([self._status(sub), 0, 0, 0]) + struct.pack("<21I", *self.regs))
        elif sub == 0x36:
            address = struct.unpack_from("<I", cmd, 2)[0]
            self._reply(bytes([self._status(sub), 0, 0, 0])
                        + struct.pack("<I", self.debug_regs.get(address, 0)))
        elif sub == 0x35:
            address, value = struct.unpack_from("<II", cmd, 2)
            self.debug_regs[address] = value
            self._reply(ok)
        elif sub == 0x45:
            self._reply(bytes([self._status(sub), 0, 0, 0]) + struct.pack("<I", 0x1BA01477))
        elif sub == 0x46:
            self.dap_writes.append(struct.unpack_from("<HHI", cmd, 2))
            self._reply(bytes([self._status(sub), 0]))
        elif sub == 0x43:
            self.divisor = struct.unpack_from("<H", cmd, 2)[0]
            self._reply(bytes([self._status(sub), 0]))
        elif sub == 0x62:
            freqs = list(self.com_freqs) + [0] * (10 - len(self.com_freqs))
            self._reply(bytes([0x80, 0, 0, 0]) + struct.pack("<II10I", self.com_khz,
                                                              len(self.com_freqs), *freqs))
        elif sub == 0x61:
            self.com_khz = struct.unpack_from("<I", cmd, 4)[0]
            self._reply(bytes([self._status(sub), 0, 0, 0]) + struct.pack("<I", self.com_khz))
        elif sub == 0x3C:
            self.nrst.append(cmd[2])
            self._reply(bytes([self._status(sub), 0]))
        elif sub in (0x02, 0x09, 0x0A, 0x32):
            self.core = {0x02: 0x81, 0x09: 0x80, 0x0A: 0x81, 0x32: self.core}[sub]
            self._reply(bytes([self._status(sub), 0]))
        elif sub == 0x01:
            self._reply(bytes([self.core, 0]))
        else:
            self._reply(bytes([0x42, 0]))

    # --- helpers for assertions ----------------------------------------------------------------
    def memory_ops(self) -> list[tuple[int, int, int]]:
        """(opcode, address, length) of every memory command seen, in order."""
        out = []
        for cmd in self.commands:
            if cmd[0] == 0xF2 and (cmd[1] in READS or cmd[1] in WRITES):
                address, length = struct.unpack_from("<IH", cmd, 2)
                out.append((cmd[1], address, length))
        return out

    def subs(self) -> list[int]:
        """Debug sub-opcodes in order (0xF2 commands only)."""
        return [cmd[1] for cmd in self.commands if cmd[0] == 0xF2]
