"""``StlinkServerLink``: one probe opened through an stlink-server, one TCP connection of its own.

The server speaks whole ST-Link commands (SEND_USB_CMD carries the 16-byte block, the write data
or the reply length, and answers with a status word and the reply), so this link offers
``transact`` and the driver's ``CommandChannel`` uses it instead of separate bulk writes and
reads: one round trip per command. ``write`` / ``read`` exist only to satisfy ``ProbeLink`` and
refuse: there is no way to send half a command over this protocol.

Recovery: a TCP stream has no stale bytes to drain, but a reply that never came (timeout) or a
request cancelled half way leaves the socket out of step. The link then drops that connection;
the next command (or ``reset``) dials again and reopens the probe by serial. ``reset`` always
reopens the session (CLOSE_DEV when the old socket is still in step, a new socket, OPEN_DEV):
only the server, which sees the USB side, can put a probe that lost a data phase or a reply back
in step, and a fresh session is how a client asks for that. The probe's firmware mode and its
target keep their state across the reconnect, as when one program closes it and another opens it.

A failed USB call (0x10000) or a connect id the server no longer knows (0x1002) may mean the
probe went away behind the server: the link lists the server's devices again, and raises
ProbeGone if the serial is gone; otherwise 0x10000 is a UsbStall.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio

from ..backend import ProbeInfo
from ..errors import ProbeGone, TransportError, UsbStall
from .wire import (BAD_PARAMETER, BUSY_STATUS, OK, WIN32_ERROR, ServerConnection,
                   status_exception, status_text, usb_command)

if TYPE_CHECKING:
    from .backend import StlinkServerBackend

log = logging.getLogger(__name__)

REPLY_SLACK = 1.0       # s added to the driver's timeout: the server times the USB transfer
                        # itself (status 0x1001); our deadline only catches a silent server
BUSY_RETRIES = 8        # status 0x2004 (server busy) is a WAIT: retried like OpenOCD does
BUSY_BACKOFF = 0.001    # s, doubled after each busy answer
CLOSE_TIMEOUT = 1.0     # s for CLOSE_DEV on the way out


class StlinkServerLink:
    """An opened probe behind an stlink-server. Not concurrency-safe (the driver serialises)."""

    def __init__(self, backend: StlinkServerBackend, info: ProbeInfo, conn: ServerConnection,
                 connect_id: int) -> None:
        self.info = info
        self._backend = backend
        self._conn: ServerConnection | None = conn
        self._connect_id = connect_id
        self._closed = False
        self.reconnects = 0

    @property
    def server(self) -> str:
        return self._backend.address

    # --- commands ---------------------------------------------------------------------------
    async def transact(self, cmd: bytes, data: bytes | None, reply: int, timeout: float) -> bytes:
        """One ST-Link command: ``cmd`` (the 16-byte block), then ``data`` for a write command,
        or exactly ``reply`` bytes back (0 for commands that answer nothing). Busy answers are
        retried with backoff; other non-OK statuses raise typed errors naming the server."""
        conn, connect_id = await self._connection()
        payload, reply_size = usb_command(connect_id, cmd, data, reply)
        delay = BUSY_BACKOFF
        for attempt in range(1, BUSY_RETRIES + 1):
            answer = await conn.request(payload, reply_size, timeout=timeout + REPLY_SLACK,
                                        serial=self.info.serial)
            status = int.from_bytes(answer[:4], "little")
            if status == OK:
                return answer[4:]
            if status != BUSY_STATUS or attempt == BUSY_RETRIES:
                break
            log.debug("%s: stlink-server %s busy, retry %d in %.0f ms", self.info.serial,
                      self.server, attempt, delay * 1e3)
            await anyio.sleep(delay)
            delay *= 2
        if status in (WIN32_ERROR, BAD_PARAMETER):
            raise await self._failed_usb_call(conn, status)
        raise status_exception(status, "SEND_USB_CMD", server=self.server, serial=self.info.serial)

    async def _failed_usb_call(self, conn: ServerConnection, status: int) -> TransportError:
        """The error for 0x10000 / 0x1002: ProbeGone if the server no longer lists the probe,
        else UsbStall (0x10000) or the server's error (0x1002; the session is reopened before
        the next command, since the server may have dropped our connect id)."""
        serial = self.info.serial
        what = f"stlink-server {self.server}: SEND_USB_CMD failed with status {status_text(status)}"
        try:
            entries = await conn.devices(timeout=self._backend.request_timeout)
        except TransportError as exc:
            log.debug("%s: cannot list the devices of stlink-server %s: %s", serial, self.server,
                      exc)
            entries = None
        if entries is not None and not any(e.serial.upper() == serial.upper() for e in entries):
            await conn.aclose()
            return ProbeGone(f"{what}; stlink-server {self.server} no longer lists probe {serial} "
                             f"(unplugged?)", serial=serial)
        if status == WIN32_ERROR:
            return UsbStall(f"{what} (the server's USB transfer failed)", serial=serial)
        await conn.aclose()             # connect id unknown to the server: reopen next time
        return status_exception(status, "SEND_USB_CMD", server=self.server, serial=serial)

    async def write(self, data: bytes, timeout: float) -> None:
        raise TransportError("an stlink-server link carries whole commands (use transact)",
                             serial=self.info.serial)

    async def read(self, size: int, timeout: float) -> bytes:
        raise TransportError("an stlink-server link carries whole commands (use transact)",
                             serial=self.info.serial)

    # --- recovery and lifetime --------------------------------------------------------------
    async def _connection(self) -> tuple[ServerConnection, int]:
        """The connection in use, redialled first if the last one fell out of step."""
        if self._closed:
            raise ProbeGone("link is closed", serial=self.info.serial)
        if self._conn is None or not self._conn.in_step:
            await self.reset()
        assert self._conn is not None
        return self._conn, self._connect_id

    async def reset(self) -> None:
        """The TCP counterpart of a USB port reset: drop the connection and reopen the probe on
        a new one. ProbeGone if the server or the probe is no longer there."""
        if self._closed:
            raise ProbeGone("link is closed", serial=self.info.serial)
        old, self._conn = self._conn, None
        with anyio.CancelScope(shield=True):
            await self._end_session(old)
        log.info("%s: reconnecting to stlink-server %s", self.info.serial, self.server)
        try:
            self._conn, self._connect_id = await self._backend.attach(self.info.serial,
                                                                      reopening=True)
        except ProbeGone:
            raise
        except TransportError as exc:
            raise ProbeGone(f"cannot reopen the probe on stlink-server {self.server}: {exc.detail}",
                            serial=self.info.serial) from exc
        self.reconnects += 1

    async def aclose(self) -> None:
        """CLOSE_DEV (bounded, best effort) and close the socket; idempotent."""
        if self._closed:
            return
        self._closed = True
        conn, self._conn = self._conn, None
        with anyio.CancelScope(shield=True):
            await self._end_session(conn)
            self._backend.forget(self)

    async def _end_session(self, conn) -> None:
        """CLOSE_DEV when the connection is in step (bounded, best effort: the server then resets
        its side), then close the socket. Callers shield it."""
        if conn is None:
            return
        if conn.in_step:
            try:
                await conn.close_device(self._connect_id, timeout=CLOSE_TIMEOUT, serial=self.info.serial)
            except TransportError as exc:
                log.debug("%s: CLOSE_DEV failed: %s", self.info.serial, exc)
        await conn.aclose()
