"""The stlink-server TCP protocol as the simulator's server speaks it: opcodes, status words,
request framing and reply layouts.

The simulator keeps its own tables (it is the other side of the cable; the tool's client keeps
separate ones), from ``shared/reference/stlink-server-tcp.md``: one socket per client, strict
request/response, no length prefix, everything little-endian. The server derives each request's
length from its opcode (SEND_USB_CMD: from its direction and length fields), and every reply has
exactly the length the client expects, so a client never waits for bytes that are not coming.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum, unique

# Transfer limits of ST's server (the reference sheet): header + OUT data, and IN data.
MAX_REQUEST = 10240
MAX_IN = 10236
USB_CMD_HEADER = 32
DEVICE_INFO_SIZE = 41      # TDeviceInfo2, packed: cookie, 32-byte serial, VID, PID, in-use
SERIAL_FIELD = 32


@unique
class Op(IntEnum):
    """Byte 0 of a request."""

    REFRESH_DEVICE_LIST = 0x00
    GET_NB_DEV = 0x01
    GET_DEV_INFO = 0x02
    OPEN_DEV = 0x03
    CLOSE_DEV = 0x04
    SEND_USB_CMD = 0x05
    GET_SERVER_VERSION = 0x06
    GET_NB_OF_DEV_CLIENTS = 0x07   # layout unconfirmed: answered "command not available"


@unique
class ServerStatus(IntEnum):
    """The u32 that starts every reply except GET_SERVER_VERSION and GET_NB_DEV."""

    OK = 0x1
    MEMORY = 0x1000
    TIMEOUT = 0x1001
    BAD_PARAMETER = 0x1002
    OPEN_ERROR = 0x1003
    TRUNCATED = 0x1052
    NOT_AVAILABLE = 0x1053
    TCP_ERROR = 0x2001
    CANT_CONNECT = 0x2002
    CLOSE_ERROR = 0x2003
    BUSY = 0x2004
    WIN32_ERROR = 0x10000


@unique
class Direction(IntEnum):
    """SEND_USB_CMD byte 24."""

    OUT = 0      # N data bytes follow the header; reply is the status only
    IN = 1       # reply: status + exactly N bytes from the debug IN endpoint
    TRACE = 3    # reply: status + exactly N bytes from the SWO endpoint


# Fixed request lengths; SEND_USB_CMD is 32 + OUT data (see ``request_length``).
FIXED_LENGTH: dict[int, int] = {
    Op.REFRESH_DEVICE_LIST: 2,
    Op.GET_NB_DEV: 1,
    Op.GET_DEV_INFO: 8,
    Op.OPEN_DEV: 8,
    Op.CLOSE_DEV: 8,
    Op.GET_SERVER_VERSION: 4,
}


class Unframeable(Exception):
    """The request cannot be delimited (unknown opcode, bad direction, oversized data phase):
    the server answers ``status`` and closes the connection, since it cannot find the next
    request's first byte."""

    def __init__(self, status: ServerStatus, why: str) -> None:
        super().__init__(why)
        self.status = status


@dataclass(frozen=True)
class UsbCmd:
    """A parsed SEND_USB_CMD header."""

    connect_id: int
    block: bytes          # the 16-byte ST-Link command block
    direction: int
    length: int


def parse_usb_header(header: bytes) -> UsbCmd:
    """Fields of the 32-byte SEND_USB_CMD header."""
    connect_id, = struct.unpack_from("<I", header, 4)
    length, = struct.unpack_from("<I", header, 28)
    return UsbCmd(connect_id, bytes(header[8:24]), header[24], length)


def request_length(head: bytes) -> int | None:
    """Total bytes of the request that starts ``head``; None if more header bytes are needed
    to know. Raises Unframeable when no length can be trusted."""
    op = head[0]
    fixed = FIXED_LENGTH.get(op)
    if fixed is not None:
        return fixed
    if op != Op.SEND_USB_CMD:
        raise Unframeable(ServerStatus.NOT_AVAILABLE, f"unknown opcode 0x{op:02X}")
    if len(head) < USB_CMD_HEADER:
        return None
    cmd = parse_usb_header(head)
    if cmd.direction == Direction.OUT:
        if USB_CMD_HEADER + cmd.length > MAX_REQUEST:
            raise Unframeable(ServerStatus.BAD_PARAMETER,
                              f"OUT data phase of {cmd.length} bytes exceeds {MAX_REQUEST - USB_CMD_HEADER}")
        return USB_CMD_HEADER + cmd.length
    if cmd.direction in (Direction.IN, Direction.TRACE):
        if cmd.length > MAX_IN:
            raise Unframeable(ServerStatus.BAD_PARAMETER,
                              f"IN data phase of {cmd.length} bytes exceeds {MAX_IN}")
        return USB_CMD_HEADER
    raise Unframeable(ServerStatus.BAD_PARAMETER, f"unknown direction {cmd.direction}")


def status_word(status: int) -> bytes:
    return struct.pack("<I", status)


def server_version_reply(api: int, major: int, minor: int, build: int) -> bytes:
    """16 bytes, no status: server API, then the server's version."""
    return struct.pack("<IIII", api, major, minor, build)


def device_info(cookie: int, serial: str, vid: int, pid: int, in_use: bool) -> bytes:
    """TDeviceInfo2 (41 bytes, packed)."""
    raw = serial.encode("ascii", "replace")[:SERIAL_FIELD].ljust(SERIAL_FIELD, b"\x00")
    return struct.pack("<I", cookie) + raw + struct.pack("<HHB", vid, pid, 1 if in_use else 0)


def usb_cmd_reply_length(cmd: UsbCmd) -> int:
    """Bytes the client reads back for a SEND_USB_CMD: the status, plus N for IN/TRACE."""
    return 4 if cmd.direction == Direction.OUT else 4 + cmd.length
