"""One ST-Link command on the wire: command block, optional data phase, reply; and recovery.

This is the only place that touches the ``ProbeLink``. It knows framing (16-byte block, OUT data,
IN reply read with at least one packet of buffer), byte traces, and what to do when a transfer is
lost: resynchronise (drain stale reply bytes, prove the probe answers a harmless command, reset
the port if it does not) before the error surfaces, so the next command starts clean. It does not
interpret statuses: that is the driver's job.

A link with ``transact`` (stlink-server over TCP) carries each command in one round trip and has
no stale bytes to drain; there a lost reply leaves the socket out of step, and the link itself
redials before its next command. What the probe behind the server still holds after a lost
transfer (write data it waits for, a reply nobody read) is invisible from here, so recovery over
a command link never starts with a probe command: that command could be swallowed as write data
or answered with a stale reply. It reopens the session first (``reset``: CLOSE_DEV, a new socket,
OPEN_DEV; the server puts its probe back in step) and only then proves the probe answers. A
failed write command (server status 0x1001 on direction 0) counts as a lost data phase.
"""

from __future__ import annotations

import logging

from ..backend import ProbeLink
from ..errors import ProbeGone, TransportError, UsbStall, UsbTimeout
from .constants import MODE_REPLY, STATUS_REPLY, Command, Mode, Status
from .errors import StlinkProtocolError, status_error
from .protocol import block

DRAIN_TIMEOUT = 0.005       # a probe with nothing queued answers an IN read with a timeout
MAX_DRAIN_READS = 128       # > 6144 / 64 packets: bounds the drain even if the probe keeps talking
RESYNC_TIMEOUT = 0.5        # for the harmless GET_CURRENT_MODE that proves the probe listens
TRACE_BYTES = 48            # bytes shown per transfer in DEBUG traces


class _UnknownCommandReply(Exception):
    """Internal: the probe answered "unknown command" in place of a longer reply."""


def _hex(data: bytes) -> str:
    shown = data[:TRACE_BYTES].hex(" ")
    return shown if len(data) <= TRACE_BYTES else f"{shown} ... (+{len(data) - TRACE_BYTES} bytes)"


class CommandChannel:
    """Three-phase transfers over one probe's bulk endpoints. Not concurrency-safe: the driver
    holds its lock around every call."""

    def __init__(self, link: ProbeLink, log: logging.Logger) -> None:
        self.link = link
        self.serial = link.info.serial
        self.max_packet = link.info.max_packet or 64
        self.log = log
        self.gone = False
        self._transact = getattr(link, "transact", None)     # a CommandLink (stlink-server)
        # What the probe may still be busy with if the current transfer stops half way: None
        # (nothing), "reply" (stale reply bytes queued) or "data" (collecting write data, so it
        # would swallow the next command block as data). Left set only when a transfer was
        # interrupted (cancelled); the next transfer recovers first.
        self._in_flight: str | None = None

    async def transfer(self, cmd: bytes, *, name: str, data: bytes | None = None, reply: int = 0,
                       timeout: float, address: int | None = None) -> bytes:
        """Send ``cmd`` (and ``data``), read ``reply`` bytes back. Returns exactly ``reply`` bytes.

        A lost transfer (timeout, stall, malformed reply) resynchronises the probe and then raises
        the error with this command's context; a vanished probe raises ProbeGone at once.
        """
        if self.gone:
            raise ProbeGone("probe is gone", serial=self.serial, command=name, address=address)
        if self._in_flight is not None:
            self.log.debug("previous command was interrupted: resynchronising first")
            await self.resync(reset_first=self._in_flight == "data")
        # Over TCP a half-sent request is discarded with its connection: never a "data" state.
        self._in_flight = "data" if data and self._transact is None else "reply"
        try:
            if self._transact is not None:
                result = await self._exchange(cmd, data, reply, timeout)
            else:
                await self._write(cmd, timeout)
                if data:
                    await self._write(data, timeout)
                    self._in_flight = "reply"
                result = await self._read(reply, timeout) if reply else b""
        except _UnknownCommandReply:
            self._in_flight = None
            raise status_error(Status.JTAG_UNKNOWN_CMD, serial=self.serial, command=name,
                               address=address) from None
        except ProbeGone as exc:
            self.gone = True
            self._in_flight = None
            raise ProbeGone(f"probe disappeared ({exc.detail})", serial=self.serial, command=name,
                            address=address) from exc
        except (UsbTimeout, UsbStall, StlinkProtocolError) as exc:
            # Over a command link a failed write command may have lost its data phase behind
            # the server: recover as after a lost data phase (resync reopens the session anyway).
            lost_data = self._in_flight == "data" or (self._transact is not None and bool(data))
            self._in_flight = None
            try:
                recovered = await self.resync(reset_first=lost_data)
            except ProbeGone as gone:
                raise ProbeGone(f"probe disappeared while recovering from: {exc.detail}",
                                serial=self.serial, command=name, address=address) from gone
            what = "probe resynchronised" if recovered else "probe did not recover"
            raise type(exc)(f"{exc.detail}; {what}", serial=self.serial, command=name,
                            address=address) from exc
        except TransportError as exc:       # e.g. an stlink-server error status: add our context
            self._in_flight = None
            exc.add_context(serial=self.serial, command=name, address=address)
            raise
        self._in_flight = None
        return result

    async def _exchange(self, cmd: bytes, data: bytes | None, reply: int, timeout: float) -> bytes:
        """One command through a link's ``transact``, traced like the bulk transfers."""
        debug = self.log.isEnabledFor(logging.DEBUG)
        if debug:
            self.log.debug("CMD %s", _hex(cmd))
            if data:
                self.log.debug("OUT %s", _hex(data))
        result = await self._transact(cmd, data or None, reply, timeout)
        if debug and reply:
            self.log.debug("IN  %s", _hex(result))
        if len(result) != reply:
            raise StlinkProtocolError(f"reply of {len(result)} bytes, expected {reply}")
        return result

    async def _write(self, data: bytes, timeout: float) -> None:
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("OUT %s", _hex(data))
        await self.link.write(data, timeout)

    async def _read(self, size: int, timeout: float) -> bytes:
        """Read a reply of ``size`` bytes. Each IN transfer asks for at least one packet (a buffer
        smaller than a packet overflows on real USB), and for whole packets otherwise; extra bytes
        (READMEM_8BIT of one byte answers two) are dropped."""
        mp = self.max_packet
        buf = bytearray()
        while len(buf) < size:
            want = size - len(buf)
            ask = max(-(-want // mp) * mp, mp)
            chunk = await self.link.read(ask, timeout)
            if self.log.isEnabledFor(logging.DEBUG):
                self.log.debug("IN  %s", _hex(chunk))
            buf += chunk
            short_packet = not chunk or len(chunk) % mp != 0
            if short_packet and len(buf) < size:
                if len(buf) == STATUS_REPLY and buf[0] == Status.JTAG_UNKNOWN_CMD and not buf[1]:
                    # Firmware that does not know a command answers with this 2-byte status
                    # whatever reply the host expected; the exchange itself is complete.
                    raise _UnknownCommandReply()
                raise StlinkProtocolError(f"reply of {len(buf)} bytes, expected {size}")
        return bytes(buf[:size])

    async def drain(self) -> int:
        """Read and drop whatever the probe still has queued; returns the byte count dropped.
        Nothing to do over a command link: its replies never outlive their request."""
        if self._transact is not None:
            return 0
        dropped = 0
        for _ in range(MAX_DRAIN_READS):
            try:
                chunk = await self.link.read(self.max_packet, DRAIN_TIMEOUT)
            except (UsbTimeout, UsbStall):
                break
            if not chunk:
                break
            dropped += len(chunk)
        if dropped:
            self.log.debug("drained %d stale bytes", dropped)
        return dropped

    async def _answers(self) -> bool:
        """True if the probe answers GET_CURRENT_MODE (harmless in every mode) with a mode: a
        stale reply read instead does not count."""
        try:
            if self._transact is not None:
                reply = await self._exchange(block(Command.GET_CURRENT_MODE), None, MODE_REPLY,
                                             RESYNC_TIMEOUT)
            else:
                await self.link.write(block(Command.GET_CURRENT_MODE), RESYNC_TIMEOUT)
                reply = await self._read(MODE_REPLY, RESYNC_TIMEOUT)
        except ProbeGone:
            raise
        except TransportError:
            return False
        return reply[0] in set(Mode) and reply[1] == 0

    async def resync(self, *, reset_first: bool = False) -> bool:
        """Bring the probe back to "idle, waiting for a command block". True on success.

        Drain, then ask something harmless; if that fails too, reset the USB port and ask again.
        ``reset_first`` skips straight to the reset: after a lost data phase the probe may still
        be collecting write data, and a harmless command block would land in target memory.
        Over a command link (stlink-server) the reset always comes first: it reopens the session,
        and the probe's USB side is out of our sight until then.
        ProbeGone propagates: a vanished probe is not retried.
        """
        try:
            if self._transact is not None:
                self.log.warning("%s; reopening the stlink-server session",
                                 "write data phase lost" if reset_first else "transfer lost")
            elif not reset_first:
                await self.drain()
                if await self._answers():
                    self.log.info("resynchronised")
                    return True
                self.log.warning("probe silent after drain; resetting its USB port")
            else:
                self.log.warning("write data phase lost; resetting the probe's USB port")
            await self.link.reset()
            await self.drain()
            ok = await self._answers()
        except ProbeGone:
            self.gone = True
            raise
        except TransportError as exc:
            self.log.warning("resynchronisation failed: %s", exc)
            return False
        if not ok:
            self.log.error("probe does not answer after a USB reset")
        return ok
