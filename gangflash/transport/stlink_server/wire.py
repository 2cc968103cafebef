"""The stlink-server wire format, client side: request layouts, reply sizes, status words, and
one TCP connection that exchanges them.

Facts from ``shared/reference/stlink-server-tcp.md``. The protocol has no length prefix: each
request's length follows from its opcode, and each reply's from the request, so the client must
read exactly the bytes it asked for or the socket falls out of step for good. ``ServerConnection``
therefore tracks whether it is "in step" (no request half sent, no reply half read); a connection
out of step is closed, never reused. These constants are the tool's own: the simulator's server
(``gangflash.sim``) keeps its own copy, so the two implementations check each other.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
from dataclasses import dataclass

import anyio
from anyio.abc import SocketAttribute, SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from ..errors import ProbeBusy, ProbeGone, TransportError, UsbTimeout
from ..variants import decode_serial

log = logging.getLogger(__name__)

DEFAULT_PORT = 7184

# Opcodes (request byte 0).
REFRESH_DEVICE_LIST = 0x00
GET_NB_DEV = 0x01
GET_DEV_INFO = 0x02
OPEN_DEV = 0x03
CLOSE_DEV = 0x04
SEND_USB_CMD = 0x05
GET_SERVER_VERSION = 0x06

CLIENT_API = 1                  # what OpenOCD announces; the server's own API is what counts
DEV_INFO_SIZE = 41              # TDeviceInfo2: cookie, 32-byte serial, VID, PID, in-use flag
DIR_WRITE, DIR_READ = 0, 1      # SEND_USB_CMD directions (3, the trace endpoint, is unused here)
BLOCK_SIZE = 16                 # the ST-Link command block carried in SEND_USB_CMD

# Limits of ST's server (its socket buffers are 10240 bytes): never exceeded by the driver, whose
# largest transfer is 6144 bytes; checked anyway so a bug fails loudly instead of hanging.
MAX_OUT_DATA = 10208
MAX_IN_DATA = 10236
OLD_API_MAX_TRANSFER = 1024     # server API < 2: memory transfers above 1 KiB crashed old servers

# Status words (u32 at the start of most replies).
OK = 0x1
STATUS_NAMES = {
    0x1000: "memory problem", 0x1001: "USB timeout", 0x1002: "bad parameter", 0x1003: "open error",
    0x1052: "truncated data", 0x1053: "command not available", 0x2001: "TCP error",
    0x2002: "cannot connect", 0x2003: "close error", 0x2004: "busy", 0x10000: "Win32 error",
}
TIMEOUT_STATUS = 0x1001
BAD_PARAMETER = 0x1002
WIN32_ERROR = 0x10000           # the server's USB call failed (a stall, or the device went away)
BUSY_STATUS = 0x2004
OPEN_ERROR = 0x1003


class ServerError(TransportError):
    """The stlink-server answered a request with an error status (``status``), or spoke
    something this client does not understand."""

    def __init__(self, message: str, *, status: int | None = None, **context) -> None:
        super().__init__(message, **context)
        self.status = status


class ServerUnreachable(TransportError):
    """No stlink-server listens at the address (refused, unknown host, no route)."""


def status_text(status: int) -> str:
    return f"0x{status:X} ({STATUS_NAMES.get(status, 'unknown status')})"


def status_exception(status: int, what: str, *, server: str, serial: str | None = None
                     ) -> TransportError:
    """The typed error for a non-OK status word: a server-side USB timeout is a UsbTimeout (the
    probe did not answer), everything else a ServerError naming the server and the status."""
    message = f"stlink-server {server}: {what} failed with status {status_text(status)}"
    if status == TIMEOUT_STATUS:
        return UsbTimeout(message, serial=serial)
    return ServerError(message, status=status, serial=serial)


@dataclass(frozen=True)
class DeviceEntry:
    """One GET_DEV_INFO answer."""

    index: int
    cookie: int                 # the server's handle for OPEN_DEV
    serial: str                 # decoded as on USB (a 12-character legacy serial hex-expanded)
    vid: int
    pid: int
    in_use: bool


def parse_device_info(index: int, reply: bytes) -> DeviceEntry:
    """The 45-byte GET_DEV_INFO reply after its status word has been checked."""
    cookie, raw_serial, vid, pid, in_use = struct.unpack_from("<I32sHHB", reply, 4)
    text = raw_serial.split(b"\0", 1)[0].decode("ascii", errors="replace").strip()
    return DeviceEntry(index, cookie, decode_serial(text), vid, pid, bool(in_use))


def usb_command(connect_id: int, block: bytes, data: bytes | None, reply: int) -> tuple[bytes, int]:
    """A SEND_USB_CMD request and the size of its reply. With ``data`` the command is a write
    (direction 0, the data follows the header, the reply is the status word); otherwise a read of
    exactly ``reply`` bytes (direction 1; 0 for commands that answer nothing)."""
    if len(block) > BLOCK_SIZE:
        raise ValueError(f"command block of {len(block)} bytes exceeds {BLOCK_SIZE}")
    block = block.ljust(BLOCK_SIZE, b"\0")
    if data:
        if len(data) > MAX_OUT_DATA:
            raise ValueError(f"{len(data)} bytes of write data exceed the server's {MAX_OUT_DATA}")
        header = struct.pack("<B3xI16sB3xI", SEND_USB_CMD, connect_id, block, DIR_WRITE, len(data))
        return header + bytes(data), 4
    if reply > MAX_IN_DATA:
        raise ValueError(f"a {reply}-byte reply exceeds the server's {MAX_IN_DATA}")
    header = struct.pack("<B3xI16sB3xI", SEND_USB_CMD, connect_id, block, DIR_READ, reply)
    return header, 4 + reply


def _reason(exc: OSError) -> str:
    """The human text of a connect failure. A resolver error (gaierror) carries its own text;
    its errno is an EAI_* code that os.strerror does not know ("Unknown error -2")."""
    if isinstance(exc, socket.gaierror) or not exc.errno or exc.errno < 0:
        return exc.strerror or str(exc)
    return os.strerror(exc.errno)


class ServerConnection:
    """One TCP connection to an stlink-server: strict request/response, exactly sized replies.

    Transport failures come out typed and name the server: a closed or reset connection is
    ProbeGone (everything behind it is unreachable now), no complete reply within the deadline is
    UsbTimeout. After either, or after a cancellation mid-request, ``in_step`` is False and the
    connection is closed: its next bytes could belong to an old reply.
    """

    def __init__(self, stream: SocketStream, address: str) -> None:
        self.address = address
        self._stream = stream
        self._reader = BufferedByteReceiveStream(stream)
        self.in_step = True
        self.closed = False

    @classmethod
    async def connect(cls, host: str, port: int, *, timeout: float, serial: str | None = None
                      ) -> ServerConnection:
        """Dial the server (TCP_NODELAY: every request is small and waits for its answer)."""
        address = f"{host}:{port}"
        try:
            with anyio.fail_after(timeout):
                stream = await anyio.connect_tcp(host, port)
        except TimeoutError:
            raise ServerUnreachable(f"stlink-server {address} did not accept a connection within "
                                    f"{timeout:.1f} s", serial=serial) from None
        except OSError as exc:
            cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc   # anyio wraps
            reason = _reason(cause)
            raise ServerUnreachable(f"cannot reach stlink-server {address}: {reason} (is the "
                                    f"server running?)", serial=serial) from exc
        try:
            stream.extra(SocketAttribute.raw_socket).setsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, anyio.TypedAttributeLookupError):     # pragma: no cover - not TCP?
            pass
        return cls(stream, address)

    async def request(self, payload: bytes, reply_size: int, *, timeout: float,
                      serial: str | None = None) -> bytes:
        """Send one request and read exactly ``reply_size`` bytes back."""
        if self.closed or not self.in_step:
            raise ProbeGone(f"connection to stlink-server {self.address} is closed", serial=serial)
        self.in_step = False
        try:
            with anyio.fail_after(timeout):
                await self._stream.send(payload)
                reply = await self._reader.receive_exactly(reply_size) if reply_size else b""
        except TimeoutError:
            await self.aclose()
            raise UsbTimeout(f"no reply from stlink-server {self.address} within "
                             f"{timeout * 1e3:.0f} ms", serial=serial) from None
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError,
                anyio.ClosedResourceError, OSError) as exc:
            await self.aclose()
            raise ProbeGone(f"stlink-server {self.address} closed the connection",
                            serial=serial) from exc
        except BaseException:
            await self.aclose()         # cancelled half way: these bytes are lost to us
            raise
        self.in_step = True
        return reply

    async def checked(self, payload: bytes, reply_size: int, what: str, *, timeout: float,
                      serial: str | None = None) -> bytes:
        """A request whose reply starts with a status word; a non-OK status raises."""
        reply = await self.request(payload, reply_size, timeout=timeout, serial=serial)
        status = int.from_bytes(reply[:4], "little")
        if status != OK:
            raise status_exception(status, what, server=self.address, serial=serial)
        return reply

    # --- the management requests ------------------------------------------------------------
    async def server_version(self, *, timeout: float) -> tuple[int, str]:
        """(server API, "major.minor.build")."""
        reply = await self.request(struct.pack("<BB2x", GET_SERVER_VERSION, CLIENT_API), 16,
                                   timeout=timeout)
        api, major, minor, build = struct.unpack("<4I", reply)
        return api, f"{major}.{minor}.{build}"

    async def devices(self, *, timeout: float) -> list[DeviceEntry]:
        """REFRESH_DEVICE_LIST, GET_NB_DEV, then GET_DEV_INFO for each index."""
        await self.checked(struct.pack("<BB", REFRESH_DEVICE_LIST, 0), 4, "REFRESH_DEVICE_LIST",
                           timeout=timeout)
        count = int.from_bytes(await self.request(bytes([GET_NB_DEV]), 4, timeout=timeout), "little")
        entries = []
        for index in range(min(count, 255)):
            reply = await self.checked(struct.pack("<BB2xI", GET_DEV_INFO, index, DEV_INFO_SIZE),
                                       4 + DEV_INFO_SIZE, f"GET_DEV_INFO {index}", timeout=timeout)
            entries.append(parse_device_info(index, reply))
        return entries

    async def open_device(self, entry: DeviceEntry, *, timeout: float) -> int:
        """OPEN_DEV; returns the connect id. A refusal of a probe listed as in use is ProbeBusy."""
        reply = await self.request(struct.pack("<B3xI", OPEN_DEV, entry.cookie), 8,
                                   timeout=timeout, serial=entry.serial)
        status, connect_id = struct.unpack("<II", reply)
        if status == OK:
            return connect_id
        if status in (OPEN_ERROR, BUSY_STATUS):
            raise ProbeBusy(f"stlink-server {self.address} refused to open the probe with status "
                            f"{status_text(status)}: another client may be using it",
                            serial=entry.serial)
        raise status_exception(status, "OPEN_DEV", server=self.address, serial=entry.serial)

    async def close_device(self, connect_id: int, *, timeout: float, serial: str | None = None) -> None:
        await self.checked(struct.pack("<B3xI", CLOSE_DEV, connect_id), 4, "CLOSE_DEV",
                           timeout=timeout, serial=serial)

    async def aclose(self) -> None:
        """Close the socket (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self.in_step = False
        with anyio.CancelScope(shield=True):
            try:
                await self._stream.aclose()
            except (OSError, anyio.BrokenResourceError):    # pragma: no cover - already reset
                pass
