"""The simulator as an stlink-server: simulated probes shared over TCP, so unmodified tools
(OpenOCD's ``hla_stlink_backend tcp`` / ``st-link backend tcp``) program simulated boards.

Wire format: ``stlink_server_protocol`` (from ``shared/reference/stlink-server-tcp.md``). Each
SEND_USB_CMD becomes the USB transfers a real server would make (command block OUT, data OUT,
reply IN) on the ``SimProbe``; the probe firmware does the rest, exactly as for the in-process
backends.

Choices the sheet leaves open, made here and kept stable:
- Opening is exclusive: OPEN_DEV of a probe another client holds answers 0x1003 (open error),
  and GET_DEV_INFO shows it in use, so OpenOCD refuses it up front ("already used"). Two tools
  interleaving commands on one probe would corrupt each other's multi-command sequences (OpenOCD
  itself avoids RW_MISC before server API 3 for that reason); a simulated farm gains nothing from
  sharing. The same client opening again gets its existing connect id.
- A client that disconnects, or dies, releases what it opened; the probe and its target keep
  their state (firmware mode, halted core, flash), as the hardware would.
- USB faults of the probe (``ProbeFaults``) become status words: timeout 0x1001 (the clock is
  charged the host's 1 s USB timeout, as the pyusb seam does); stall 0x10000 (the host OS's USB
  call failed); gone 0x10000 for the failing command, after which the probe is released, its
  connect id answers 0x1002, and it disappears from GET_NB_DEV / GET_DEV_INFO. IN data is always
  exactly the N bytes asked for, zero-padded when the probe answered fewer or nothing.
- The server owns the USB side and knows each command's framing, so a timeout or stall inside a
  SEND_USB_CMD never leaves the probe out of step: if the probe still waits for write data or
  holds an unread reply, the server resets its USB port (dropping both; the reset's cost is
  charged to the probe's clock) before answering the error status. A fresh OPEN_DEV (a new
  owner) likewise starts from a clean probe: leftovers of an earlier session are dropped the
  same way. Firmware mode, target connection and the chip's state are kept.
- Requests that cannot be delimited (unknown opcode, 0x07 whose layout is unconfirmed, an
  unknown direction, a data phase over the server's limits) get their status (0x1053 / 0x1002)
  and the connection is closed: the server cannot find the next request's first byte. A bad
  connect id, cookie or device index gets 0x1002 with a reply of the normal length and the
  connection stays usable. A request left incomplete for ``TRUNCATION_TIMEOUT_S`` or cut by EOF
  gets 0x1052 (if the socket still takes it), then the connection is closed.

Virtual time: each probe has its own ``ManualClock``, advanced by the cost of each transfer the
probe reports (like ``pyusb_fake``). With ``pace`` > 0 the wall-clock gap between a reply and
that client's next request on the same probe is also credited (times ``pace``): clients sleep
expecting the chip to make progress, as it would on hardware. The server's own processing time
is never credited, so a slow host does not make the simulated hardware slower or faster.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import anyio
import anyio.from_thread
import anyio.to_thread

from .clock import ManualClock
from .errors import UsbGone, UsbStall, UsbTimeout
from .probe import SimProbe
from .stlink_server_conn import TRUNCATION_TIMEOUT_S, _Connection
from .stlink_server_protocol import (DEVICE_INFO_SIZE, MAX_IN, Direction, Op, ServerStatus,
                                     Unframeable, UsbCmd, device_info, parse_usb_header,
                                     server_version_reply, status_word)

log = logging.getLogger(__name__)

__all__ = ["StlinkServer", "ListenError", "serving_in_thread", "TRUNCATION_TIMEOUT_S",
           "USB_TIMEOUT_S"]

_ACCEPT_POLL_S = 0.25          # the accept thread checks for shutdown this often
USB_TIMEOUT_S = 1.0            # what a timed-out USB transfer costs the probe's clock
SERVER_VERSION = (2, 1, 0)     # major, minor, build reported beside the API (ST's 2.1.x line)
_COOKIE_BASE = 0x5E000000      # device cookies: opaque to clients, distinct per probe


class ListenError(OSError):
    """The server cannot listen on its address (port in use, unknown host, no permission)."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"cannot listen on {host}:{port}: {reason}")
        self.host, self.port, self.reason = host, port, reason


@dataclass(eq=False)
class _Device:
    """One served probe and who holds it."""

    probe: SimProbe
    clock: ManualClock
    cookie: int
    owner: "_Connection | None" = None
    connect_id: int = 0
    requests: int = 0
    usb_commands: int = 0
    clients: int = 0
    model: str = ""
    chip: str = ""
    last_reply: dict = field(default_factory=dict)

    @property
    def gone(self) -> bool:
        return self.probe.unplugged


class StlinkServer:
    """Serves ``devices`` (each a probe with its own clock) to any number of TCP clients."""

    def __init__(self, devices: Sequence[tuple[SimProbe, ManualClock]], *, host: str = "127.0.0.1",
                 port: int = 7184, api: int = 3, pace: float = 1.0) -> None:
        if api not in (2, 3):
            raise ValueError(f"server API {api} is not served; 2 or 3")
        if pace < 0:
            raise ValueError("pace must be >= 0")
        self.host, self.port, self.api, self.pace = host, port, api, float(pace)
        self._devices = [_Device(probe, clock, _COOKIE_BASE + i, model=probe.variant,
                                 chip=getattr(getattr(probe.target, "chip", None), "name", "") or "")
                         for i, (probe, clock) in enumerate(devices)]
        self._by_connect_id: dict[int, _Device] = {}
        self._next_connect_id = 0x1000
        self._connections: set[_Connection] = set()
        self._lock = threading.RLock()     # the device table; probe work runs outside it
        self._stopping = False
        self._listener: socket.socket | None = None
        self.total_requests = 0

    # --- serving ----------------------------------------------------------------------------------
    def bind(self) -> None:
        """Create the listening socket now (``serve`` does it otherwise), so a caller can report
        a busy port before starting anything; ListenError says why it failed. The address
        family follows ``host`` (``::1`` listens on IPv6). Port 0 picks a free port: ``port``
        then holds the bound one. Idempotent."""
        if self._listener is not None:
            return
        try:
            infos = socket.getaddrinfo(self.host or None, self.port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise ListenError(self.host, self.port, exc.strerror or str(exc)) from exc
        family, _type, _proto, _name, sockaddr = infos[0]
        try:
            listener = socket.create_server(sockaddr, family=family)
        except OSError as exc:      # create_server's text repeats the address: keep the cause
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise ListenError(self.host, self.port, reason) from exc
        listener.settimeout(_ACCEPT_POLL_S)
        self.port = listener.getsockname()[1]
        self._listener = listener

    async def serve(self, *, task_status=anyio.TASK_STATUS_IGNORED) -> None:
        """Listen (``bind`` first if not done; ListenError before ``task_status`` if that
        fails), report the bound port through ``task_status``, serve until cancelled.
        Connections are served by threads (see ``_Connection``), so any anyio backend works."""
        self.bind()
        listener, self._listener = self._listener, None
        assert listener is not None
        with self._lock:
            self._stopping = False
        acceptor = threading.Thread(target=self._accept_loop, args=(listener,),
                                    name=f"stlink-server :{self.port}", daemon=True)
        acceptor.start()
        log.info("stlink-server (API %d) on %s:%d serving %d probes", self.api, self.host,
                 self.port, len(self._devices))
        task_status.started(self.port)
        try:
            await anyio.sleep_forever()
        finally:
            with self._lock:            # _admit checks it under the lock: no late additions
                self._stopping = True
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            with self._lock:
                connections = list(self._connections)
            for conn in connections:
                conn.drop()
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._join, acceptor, connections)
            listener.close()
            log.info("stlink-server on port %d stopped", self.port)

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stopping:
            try:
                sock, addr = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                if not self._stopping:
                    log.exception("stlink-server: accept failed")
                return
            if self._admit(sock, addr) is None:
                return

    def _admit(self, sock: socket.socket, addr) -> "_Connection | None":
        """Register and start a freshly accepted connection; None (socket closed) when the
        server is stopping. The check and the registration share the lock ``serve`` takes to
        set ``_stopping``, so a connection is either in the list ``serve`` drops and joins or
        never started."""
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Connection(self, sock, f"{addr[0]}:{addr[1]}")
        with self._lock:
            if self._stopping:
                late = True
            else:
                late = False
                self._connections.add(conn)
        if late:
            log.debug("client %s arrived during shutdown: dropped", conn.peer)
            with contextlib.suppress(OSError):
                sock.close()
            return None
        log.info("client %s connected", conn.peer)
        conn.thread.start()
        return conn

    @staticmethod
    def _join(acceptor: threading.Thread, connections: list["_Connection"]) -> None:
        acceptor.join(timeout=2)
        for conn in connections:
            conn.thread.join(timeout=2)

    def _disconnected(self, conn: "_Connection") -> None:
        """A client went away (closed, killed, or failed): release what it held."""
        with self._lock:
            self._connections.discard(conn)
            for dev in self._devices:
                dev.last_reply.pop(conn, None)
                if dev.owner is conn:
                    self._release(dev)

    def stats(self) -> list[dict]:
        """Per probe: what it served and where its virtual time stands."""
        with self._lock:
            return [{"serial": d.probe.serial, "chip": d.chip, "model": d.model,
                     "requests": d.requests, "usb_commands": d.usb_commands,
                     "virtual_time": d.clock(), "clients": d.clients,
                     "in_use": d.owner is not None, "gone": d.gone}
                    for d in self._devices]

    # --- device table -----------------------------------------------------------------------------
    def _visible(self) -> list[_Device]:
        return [d for d in self._devices if not d.gone]

    def _release(self, dev: _Device) -> None:
        if dev.owner is not None:
            log.info("probe %s released (connect id 0x%X)", dev.probe.serial, dev.connect_id)
        self._by_connect_id.pop(dev.connect_id, None)
        dev.owner, dev.connect_id = None, 0

    def _open(self, conn: "_Connection", cookie: int) -> tuple[int, int]:
        dev = next((d for d in self._visible() if d.cookie == cookie), None)
        if dev is None:
            log.warning("OPEN_DEV: no device with cookie 0x%08X", cookie)
            return ServerStatus.BAD_PARAMETER, 0
        dev.requests += 1
        if dev.owner is conn:
            return ServerStatus.OK, dev.connect_id
        if dev.owner is not None:
            log.info("OPEN_DEV: probe %s is in use by another client", dev.probe.serial)
            return ServerStatus.OPEN_ERROR, 0
        self._clean_probe(dev, "a new session")
        self._next_connect_id += 1
        dev.owner, dev.connect_id = conn, self._next_connect_id
        dev.clients += 1
        dev.last_reply.clear()
        self._by_connect_id[dev.connect_id] = dev
        log.info("probe %s opened (connect id 0x%X)", dev.probe.serial, dev.connect_id)
        return ServerStatus.OK, dev.connect_id

    @staticmethod
    def _clean_probe(dev: _Device, why: str) -> None:
        """Reset the probe's USB port if it is out of step (a command waiting for write data, or
        an unread reply): the server knows the framing, its clients cannot see the USB side.
        The reset's cost goes on the probe's clock."""
        probe = dev.probe
        try:
            if probe.idle:
                return
            dev.clock.advance(probe.usb_reset())
        except UsbGone:
            return
        log.info("probe %s: USB port reset after %s (partial command / unread reply dropped)",
                 probe.serial, why)

    def _held(self, conn: "_Connection", connect_id: int) -> _Device | None:
        dev = self._by_connect_id.get(connect_id)
        if dev is None or dev.owner is not conn:
            return None
        if dev.gone:
            self._release(dev)
            return None
        return dev

    # --- requests ---------------------------------------------------------------------------------
    def handle(self, conn: "_Connection", req: bytes, arrived: float) -> bytes:
        """The reply to one complete, framed request."""
        self.total_requests += 1
        op = req[0]
        if op == Op.SEND_USB_CMD:
            return self._usb_cmd(conn, parse_usb_header(req), req[32:], arrived)
        with self._lock:
            return self._table_request(conn, op, req)

    def _table_request(self, conn: "_Connection", op: int, req: bytes) -> bytes:
        """Every request but SEND_USB_CMD: they read or change the device table only."""
        if op == Op.GET_SERVER_VERSION:
            return server_version_reply(self.api, *SERVER_VERSION)
        if op == Op.REFRESH_DEVICE_LIST:
            return status_word(ServerStatus.OK)
        if op == Op.GET_NB_DEV:
            return struct.pack("<I", len(self._visible()))
        if op == Op.GET_DEV_INFO:
            return self._dev_info(req[1], struct.unpack_from("<I", req, 4)[0])
        if op == Op.OPEN_DEV:
            status, connect_id = self._open(conn, struct.unpack_from("<I", req, 4)[0])
            return struct.pack("<II", status, connect_id)
        if op == Op.CLOSE_DEV:
            dev = self._held(conn, struct.unpack_from("<I", req, 4)[0])
            if dev is None:
                return status_word(ServerStatus.BAD_PARAMETER)
            dev.requests += 1
            self._release(dev)
            return status_word(ServerStatus.OK)
        raise AssertionError(f"unframed opcode 0x{op:02X}")   # request_length refused it

    def _dev_info(self, index: int, size: int) -> bytes:
        if size > MAX_IN:
            raise Unframeable(ServerStatus.BAD_PARAMETER, f"device info size {size}")
        visible = self._visible()
        if size != DEVICE_INFO_SIZE or index >= len(visible):
            log.warning("GET_DEV_INFO: index %d of %d, size %d", index, len(visible), size)
            return status_word(ServerStatus.BAD_PARAMETER) + bytes(size)
        d = visible[index]
        return status_word(ServerStatus.OK) + device_info(
            d.cookie, d.probe.serial, d.probe.vid, d.probe.pid, d.owner is not None)

    def _usb_cmd(self, conn: "_Connection", cmd: UsbCmd, payload: bytes, arrived: float) -> bytes:
        n_in = 0 if cmd.direction == Direction.OUT else cmd.length
        with self._lock:
            dev = self._held(conn, cmd.connect_id)
        if dev is None:
            log.warning("SEND_USB_CMD: bad connect id 0x%X", cmd.connect_id)
            return status_word(ServerStatus.BAD_PARAMETER) + bytes(n_in)
        dev.requests += 1
        dev.usb_commands += 1
        last = dev.last_reply.get(conn)
        if last is not None and self.pace > 0:
            dev.clock.advance((arrived - last) * self.pace)
        status, data = self._transfers(dev, cmd, payload, n_in)
        if dev.gone:
            with self._lock:
                self._release(dev)
        # the reply leaves right after this: from here on the client's time is the chip's
        dev.last_reply[conn] = time.perf_counter()
        if len(data) != n_in:
            data = data.ljust(n_in, b"\x00")[:n_in]
        return status_word(status) + data

    def _transfers(self, dev: _Device, cmd: UsbCmd, payload: bytes, n_in: int) -> tuple[int, bytes]:
        """The USB transfers a real server makes for one SEND_USB_CMD, on the simulated probe."""
        probe, clock = dev.probe, dev.clock
        try:
            clock.advance(probe.bulk_out(probe.out_ep, cmd.block))
            if cmd.direction == Direction.OUT:
                if payload:
                    clock.advance(probe.bulk_out(probe.out_ep, payload))
                return ServerStatus.OK, b""
            if n_in == 0:
                return ServerStatus.OK, b""
            ep = probe.in_ep if cmd.direction == Direction.IN else probe.swv_ep
            data, cost = probe.bulk_in(ep, n_in)
            clock.advance(cost)
            return ServerStatus.OK, data
        except UsbTimeout as exc:
            clock.advance(USB_TIMEOUT_S)
            log.warning("probe %s: %s", probe.serial, exc)
            self._clean_probe(dev, "a USB timeout")
            return ServerStatus.TIMEOUT, b""
        except UsbStall as exc:
            log.warning("probe %s: %s", probe.serial, exc)
            self._clean_probe(dev, "a USB stall")
            return ServerStatus.WIN32_ERROR, b""
        except UsbGone as exc:
            log.warning("probe %s: %s", probe.serial, exc)
            return ServerStatus.WIN32_ERROR, b""


@contextlib.contextmanager
def serving_in_thread(devices: Sequence[tuple[SimProbe, ManualClock]], **kwargs) -> Iterator[StlinkServer]:
    """Run ``StlinkServer(devices, **kwargs).serve()`` on its own asyncio loop in a background
    thread: for tests and benchmarks that drive external clients (OpenOCD) synchronously.
    Yields once listening; stops the server and joins the thread on exit."""
    server = StlinkServer(devices, **kwargs)
    with anyio.from_thread.start_blocking_portal(backend="asyncio") as portal:
        future, _port = portal.start_task(server.serve)
        try:
            yield server
        finally:
            future.cancel()
            with contextlib.suppress(BaseException):
                future.result(timeout=10)
