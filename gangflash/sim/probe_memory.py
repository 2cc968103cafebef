"""Memory commands of the simulated probe firmware: READMEM/WRITEMEM in 8, 16 and 32 bits,
the no-address-increment forms, and the "last R/W status" they leave behind.

Memory commands carry no status in their own reply: the host asks GETLASTRWSTATUS (2 bytes) or,
from V2J15, GETLASTRWSTATUS2 (12 bytes, with the faulting address). A read always answers with
exactly the bytes the host will read (``len``, or 2 for a 1-byte 8-bit read, as OpenOCD
expects), so a failed command never leaves the host waiting; when it failed those bytes are
zeros (what real firmware puts there is unconfirmed). A write always consumes its data phase.

Checks, in the order the firmware is modelled to make them, with the status each reports:
- not in debug mode: 0x06 (ST: "command ignored ... wrong ST-Link mode when called")
- 8-bit longer than one packet (64, or 512 on V3 from J6), or a 16/32-bit command longer than
  6144 bytes other than WRITEMEM_32BIT: 0x06 ("unknown parameter"; the real firmware's reaction
  is unconfirmed)
- WRITEMEM_32BIT has no limit below its 16-bit length field. 6144 bytes is the probe's buffer
  for data it must *send back* (reads); a write is streamed from the OUT endpoint to the AP.
  Evidence: stlink (st-flash 1.7.0 included) has sent each F2/F4/F7/L4 loader buffer as one
  WRITEMEM_32BIT of up to 0x8000 bytes since 2012 (``stlink_flashloader_write``: buf_size 0x8000
  when SRAM > 32 KiB; ``write_buffer_to_sram``: one ``stlink_write_mem32``), which real probes
  flash with; stlink PR #1157 (2021, "Removed limit check for WRITEMEM_32BIT", a regression fix
  for #1154) dropped a host-side cap that broke it; stlink's API documents writes "at most
  Q_BUF_LEN" but reads "at 6 KiB or below: larger reads can stall an ST-LINK/V2" (PR #372 clamps
  reads to 0x1800). Refusing the write made st-flash's F4/L4 loader program an unwritten buffer.
- address or length not a multiple of the access size: 0x0A (JTAG_ALIGNMENT_ERROR)
- APSEL other than 0 not opened with INIT_AP: 0x1D (BAD_AP, "incorrect access port index")
- then target errors as mapped by ``probe_target``.
Crossing a 1 KiB TAR auto-increment boundary inside one command is fine: the firmware rewrites
TAR itself (pyOCD relies on it, sending 6144-byte reads from any word address).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .probe_target import AP_CSW, AP_DRW, AP_TAR, CommandError
from .stlink_protocol import MAX_RW_BLOCK, MAX_WRITE32_BLOCK, DebugCommand, Mode, Status

if TYPE_CHECKING:
    from .probe_target import TargetLink
    from .stlink_protocol import FirmwareFeatures

log = logging.getLogger(__name__)

# opcode -> (access width, writes?, address increments?)
MEMORY_COMMANDS: dict[int, tuple[int, bool, bool]] = {
    DebugCommand.READMEM_32BIT: (4, False, True),
    DebugCommand.WRITEMEM_32BIT: (4, True, True),
    DebugCommand.READMEM_16BIT: (2, False, True),
    DebugCommand.WRITEMEM_16BIT: (2, True, True),
    DebugCommand.READMEM_8BIT: (1, False, True),
    DebugCommand.WRITEMEM_8BIT: (1, True, True),
    DebugCommand.READMEM_32BIT_NO_ADDR_INC: (4, False, False),
    DebugCommand.WRITEMEM_32BIT_NO_ADDR_INC: (4, True, False),
}


def parse_memory_block(cmd: bytes) -> tuple[int, int, int, int]:
    """(address, length, APSEL, CSW bits 31:8) from a memory command block."""
    address = int.from_bytes(cmd[2:6], "little")
    length = int.from_bytes(cmd[6:8], "little")
    return address, length, cmd[8], int.from_bytes(cmd[9:12], "little")


def read_reply_length(opcode: int, length: int) -> int:
    """Bytes a read command answers with: a 1-byte 8-bit read sends 2 (OpenOCD reads 2)."""
    if opcode == DebugCommand.READMEM_8BIT and length == 1:
        return 2
    return length


class MemoryCommands:
    """Mixin for the firmware model: needs ``link``, ``features``, ``mode``, ``open_aps``."""

    link: "TargetLink"
    features: "FirmwareFeatures"
    mode: Mode
    open_aps: set[int]
    last_rw_status: int
    last_rw_address: int

    def memory_command(self, opcode: int, cmd: bytes, data: bytes) -> bytes | None:
        """Run one memory command; its outcome goes to the last R/W status, never the reply."""
        width, writes, increment = MEMORY_COMMANDS[opcode]
        address, length, apsel, csw_hi = parse_memory_block(cmd)
        if not self.features.csw_apsel:     # older firmware: AP 0 and its own CSW
            apsel, csw_hi = 0, 0
        reply_len = 0 if writes else read_reply_length(opcode, length)
        status, fault, result = Status.OK, 0, b""
        try:
            self._check_memory_request(opcode, width, address, length, apsel)
            if length:
                if writes:
                    self._write_block(apsel, csw_hi, address, bytes(data[:length]), width,
                                      increment)
                else:
                    result = self._read_block(apsel, csw_hi, address, length, width, increment)
        except CommandError as err:
            status = err.status
            fault = err.address if err.address is not None else 0
            result = b""
            log.debug("%s 0x%08X+%d failed: status 0x%02X at 0x%08X",
                      DebugCommand(opcode).name, address, length, status, fault)
        self.last_rw_status, self.last_rw_address = status, fault
        if writes or reply_len == 0:
            return None
        return result.ljust(reply_len, b"\x00")[:reply_len]

    def _length_limit(self, opcode: int, width: int) -> int:
        """Largest length the firmware takes for this opcode (see the module docstring)."""
        if width == 1:
            return self.features.rw8_max
        if opcode == DebugCommand.WRITEMEM_32BIT:
            return MAX_WRITE32_BLOCK
        return MAX_RW_BLOCK

    def _check_memory_request(self, opcode: int, width: int, address: int, length: int,
                              apsel: int) -> None:
        if self.mode != Mode.DEBUG:
            raise CommandError(Status.INTERNAL_ERROR)
        if length > self._length_limit(opcode, width):
            raise CommandError(Status.INTERNAL_ERROR)
        if address % width or length % width:
            raise CommandError(Status.ALIGNMENT_ERROR, address)
        if apsel != 0 and apsel not in self.open_aps:
            raise CommandError(Status.BAD_AP)

    def _read_block(self, apsel: int, csw_hi: int, address: int, length: int, width: int,
                    increment: bool) -> bytes:
        if apsel != 0:
            return self._ap_path_read(apsel, csw_hi, address, length, width, increment)
        if increment:
            return self.link.mem_read(address, length, width)
        return b"".join(self.link.mem_read(address, 4, 4) for _ in range(length // 4))

    def _write_block(self, apsel: int, csw_hi: int, address: int, data: bytes, width: int,
                     increment: bool) -> None:
        if apsel != 0:
            self._ap_path_write(apsel, csw_hi, address, data, width, increment)
        elif increment:
            self.link.mem_write(address, data, width)
        else:
            for offset in range(0, len(data), 4):
                self.link.mem_write(address, data[offset:offset + 4], 4)

    # --- APs other than 0: CSW, TAR and DRW accesses, as the firmware does for any MEM-AP -------
    def _ap_path_setup(self, apsel: int, csw_hi: int, width: int, increment: bool) -> None:
        size = {1: 0, 2: 1, 4: 2}[width]
        self.link.ap_write(apsel, AP_CSW, (csw_hi << 8) | (0x10 if increment else 0) | size)

    def _ap_path_read(self, apsel: int, csw_hi: int, address: int, length: int, width: int,
                      increment: bool) -> bytes:
        self._ap_path_setup(apsel, csw_hi, width, increment)
        out = bytearray()
        for offset in range(0, length, width):
            at = address + offset if increment else address
            if offset == 0 or (increment and at % 1024 == 0):
                self.link.ap_write(apsel, AP_TAR, at)
            word = self.link.ap_read(apsel, AP_DRW)
            lane = (at & 3) * 8
            out += ((word >> lane) & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
        return bytes(out)

    def _ap_path_write(self, apsel: int, csw_hi: int, address: int, data: bytes, width: int,
                       increment: bool) -> None:
        self._ap_path_setup(apsel, csw_hi, width, increment)
        for offset in range(0, len(data), width):
            at = address + offset if increment else address
            if offset == 0 or (increment and at % 1024 == 0):
                self.link.ap_write(apsel, AP_TAR, at)
            unit = int.from_bytes(data[offset:offset + width], "little")
            self.link.ap_write(apsel, AP_DRW, unit << ((at & 3) * 8))

    # --- status queries ------------------------------------------------------------------------
    def last_rw_status_reply(self) -> bytes:
        """GETLASTRWSTATUS: the status alone (what firmware before J15 offers)."""
        return bytes([self.last_rw_status, 0])

    def last_rw_status2_reply(self) -> bytes:
        """GETLASTRWSTATUS2: status, then the faulting address at offset 4."""
        return (bytes([self.last_rw_status, 0, 0, 0])
                + self.last_rw_address.to_bytes(4, "little") + bytes(4))
