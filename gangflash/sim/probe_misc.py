"""RW_MISC (F2 51 / F2 52): the firmware's batched DAP accesses, V2J32+ and V3J2+.

A host that queues many single-word accesses (OpenOCD's dapdirect driver, when a server lets it)
sends them in one OUT command and collects every result with one IN command, instead of a
command and a status query per word. Layout (facts from OpenOCD ``src/jtag/drivers/stlink_usb.c``,
``stlink_usb_misc_rw_segment`` and ``stlink_usb_rw_misc_out/_in``; ST publishes none):

- F2 51, bytes 2..5: item count N (u32). Data phase: N one-byte item opcodes, zero-padded to a
  multiple of 4, then N u32 values, one per item. Opcodes: 1 ADDRESS (value: the address the
  next WRITE uses), 2 WRITE (value: the word to write), 3 READ (value: the address to read),
  5 APNUM (value: the MEM-AP later items use). No reply.
- F2 52, no parameters: 8·N bytes: N u32 values (a READ's word; other items echo their value),
  then N u32 statuses (the usual ST-Link status byte, 0x80 OK, in the low byte).
- At most 64 items on V2 and 1227 on V3 (OpenOCD's values, pending RW_MISC_GET_MAX, F2 53).

Modelling choices (the firmware's own behaviour is not public): items run in order and the
first failure stops the batch, every later item carrying that failure's status, so a host never
mistakes an unexecuted write for a done one; a batch over the item limit, an unknown item
opcode or a probe not in debug mode fails the items with 0x06 ("unknown parameter or wrong
mode"); a batch over the item limit is refused whole (its data phase is not taken, and F2 52
then has nothing to send), as is F2 52 before any F2 51 (no reply: the host's read times out). Each
access goes through ``TargetLink`` like every other command (WAIT retries, status mapping,
metering), 32-bit only, through AP 0's default CSW or, for another AP, its CSW with the
firmware's 32-bit size and increment bits.
"""

from __future__ import annotations

import logging
import struct
from typing import TYPE_CHECKING

from .probe_target import CommandError
from .stlink_protocol import Mode, Status

if TYPE_CHECKING:
    from .probe_target import TargetLink
    from .stlink_protocol import FirmwareFeatures

log = logging.getLogger(__name__)

ITEM_ADDRESS, ITEM_WRITE, ITEM_READ, ITEM_APNUM = 1, 2, 3, 5
MAX_ITEMS_V2, MAX_ITEMS_V3 = 64, 1227


def _align4(n: int) -> int:
    return (n + 3) & ~3


def rw_misc_out_length(cmd: bytes, max_items: int) -> int:
    """Data-phase bytes of an F2 51 block: opcodes padded to 4, then a u32 per item (none when
    the count is over the firmware's limit: it refuses the block)."""
    items = int.from_bytes(cmd[2:6], "little")
    return _align4(items) + 4 * items if items <= max_items else 0


class MiscCommands:
    """Mixin for the firmware model: needs ``link``, ``features``, ``mode``, ``open_aps``."""

    link: "TargetLink"
    features: "FirmwareFeatures"
    mode: Mode
    open_aps: set[int]
    misc_result: tuple[list[int], list[int]] | None = None

    def misc_max_items(self) -> int:
        return MAX_ITEMS_V3 if self.features.major >= 3 else MAX_ITEMS_V2

    def rw_misc_out(self, cmd: bytes, data: bytes) -> None:
        """Run a batch; keep values and statuses for the next F2 52."""
        items = int.from_bytes(cmd[2:6], "little")
        if items > self.misc_max_items() or len(data) < _align4(items) + 4 * items:
            log.debug("RW_MISC batch of %d items refused", items)
            self.misc_result = None
            return None
        opcodes = data[:items]
        values = list(struct.unpack_from(f"<{items}I", data, _align4(items)))
        statuses = [int(Status.OK)] * items
        if self.mode != Mode.DEBUG:
            self.misc_result = (values, [int(Status.INTERNAL_ERROR)] * items)
            return None
        apsel, address = 0, 0
        for i in range(items):
            op, value = opcodes[i], values[i]
            try:
                if op == ITEM_APNUM:
                    if value != 0 and value not in self.open_aps:
                        raise CommandError(Status.BAD_AP)
                    apsel = value
                elif op == ITEM_ADDRESS:
                    address = value
                elif op == ITEM_WRITE:
                    self._misc_write(apsel, address, value)
                elif op == ITEM_READ:
                    values[i] = self._misc_read(apsel, value)
                else:
                    raise CommandError(Status.INTERNAL_ERROR)
            except CommandError as err:
                log.debug("RW_MISC item %d (op %d) failed: status 0x%02X", i, op, err.status)
                statuses[i:] = [err.status] * (items - i)
                break
        self.misc_result = (values, statuses)
        return None

    def rw_misc_in(self, cmd: bytes, data: bytes) -> bytes | None:
        """The last batch's values, then its statuses."""
        if self.misc_result is None:
            return None
        values, statuses = self.misc_result
        return struct.pack(f"<{len(values)}I", *values) + struct.pack(f"<{len(statuses)}I", *statuses)

    def _misc_read(self, apsel: int, address: int) -> int:
        if address % 4:
            raise CommandError(Status.ALIGNMENT_ERROR, address)
        if apsel == 0:
            return self.link.read32(address)
        return int.from_bytes(self._ap_path_read(apsel, 0, address, 4, 4, True), "little")

    def _misc_write(self, apsel: int, address: int, value: int) -> None:
        if address % 4:
            raise CommandError(Status.ALIGNMENT_ERROR, address)
        if apsel == 0:
            self.link.write32(address, value)
        else:
            self._ap_path_write(apsel, 0, address, value.to_bytes(4, "little"), 4, True)
