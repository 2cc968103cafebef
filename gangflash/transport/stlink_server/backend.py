"""``StlinkServerBackend``: the probes one stlink-server shares, as a ``Backend``.

ST's stlink-server (or ``gangflash sim serve``) owns the USB side and lets several programs share
its probes over TCP. Each enumeration uses a short-lived connection of its own; each opened probe
gets its own connection too (the server keeps one session per socket, and a socket per probe means
one slow or broken probe never stalls another). Probes are found again by serial on every open, so
a server restarted or re-enumerated in between is no problem.

Errors name the server: ServerUnreachable (nothing listening), ProbeNotFound (the server does not
list that serial), ProbeBusy (another client holds it), ProbeGone (the connection dropped).
"""

from __future__ import annotations

import dataclasses
import logging

import anyio

from ..backend import ProbeInfo
from ..errors import ProbeBusy, ProbeNotFound, TransportError
from ..variants import FULL_SPEED_PACKET, variant_for
from .link import StlinkServerLink
from .wire import DEFAULT_PORT, OLD_API_MAX_TRANSFER, DeviceEntry, ServerConnection

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 3.0       # s to accept a connection
REQUEST_TIMEOUT = 2.0       # s for a management request (version, device list, open)
REOPEN_WINDOW = 1.0         # s a reconnecting link waits for the server to release its old session
REOPEN_POLL = 0.02


def probe_url(address: str, serial: str) -> str:
    """``tcp://HOST:PORT/SERIAL``: how configs and ``--probe`` name a probe behind a server."""
    return f"tcp://{address}/{serial}"


class StlinkServerBackend:
    """The ``Backend`` for probes behind one stlink-server at ``host:port``."""

    name = "tcp"

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *,
                 connect_timeout: float = CONNECT_TIMEOUT,
                 request_timeout: float = REQUEST_TIMEOUT) -> None:
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.api: int | None = None             # the server's API version, once contacted
        self.server_version: str | None = None
        self._links: set[StlinkServerLink] = set()
        self._closed = False

    @property
    def address(self) -> str:
        """``host:port``, as a config's ``server`` names it."""
        return f"{self.host}:{self.port}"

    # --- enumeration ------------------------------------------------------------------------
    async def enumerate(self) -> list[ProbeInfo]:
        """Every ST-Link debug probe the server lists now (in use or not), in its order."""
        self._check_open()
        conn = await self._dial()
        try:
            entries = await self._devices(conn)
        finally:
            await conn.aclose()
        infos = []
        for entry in entries:
            info = self._info(entry)
            if info is not None:
                infos.append(info)
        return infos

    def _info(self, entry: DeviceEntry) -> ProbeInfo | None:
        variant = variant_for(entry.vid, entry.pid)
        if variant is None:
            log.debug("stlink-server %s: device %d (%04X:%04X) is not an ST-Link we drive",
                      self.address, entry.index, entry.vid, entry.pid)
            return None
        return ProbeInfo(
            serial=entry.serial, vid=entry.vid, pid=entry.pid, variant=variant.name,
            port_path=probe_url(self.address, entry.serial), backend=self.name,
            max_packet=variant.max_packet or FULL_SPEED_PACKET, in_ep=variant.in_ep,
            out_ep=variant.out_ep,
            max_transfer=OLD_API_MAX_TRANSFER if self.api is not None and self.api < 2 else 0)

    # --- opening ----------------------------------------------------------------------------
    async def open(self, info: ProbeInfo) -> StlinkServerLink:
        """Open the probe with ``info.serial`` on its own connection."""
        self._check_open()
        if info.backend != self.name:
            raise ProbeNotFound(f"not a probe behind stlink-server {self.address} "
                                f"(backend {info.backend!r})", serial=info.serial)
        conn, connect_id = await self.attach(info.serial)
        current = info
        if self.api is not None and self.api < 2 and not info.max_transfer:
            current = dataclasses.replace(info, max_transfer=OLD_API_MAX_TRANSFER)
        link = StlinkServerLink(self, current, conn, connect_id)
        self._links.add(link)
        log.info("opened ST-Link %s %s on stlink-server %s", info.variant, info.serial, self.address)
        return link

    async def attach(self, serial: str, *, reopening: bool = False) -> tuple[ServerConnection, int]:
        """Dial, find ``serial`` in the server's list and OPEN_DEV it: (connection, connect id).
        ``reopening`` (a link redialling) waits a moment for the server to notice that the old
        connection closed and release the probe."""
        deadline = anyio.current_time() + (REOPEN_WINDOW if reopening else 0.0)
        while True:
            try:
                return await self._attach_once(serial)
            except ProbeBusy:
                if anyio.current_time() >= deadline:
                    raise
            await anyio.sleep(REOPEN_POLL)

    async def _attach_once(self, serial: str) -> tuple[ServerConnection, int]:
        conn = await self._dial(serial)
        try:
            entries = await self._devices(conn, serial)
            entry = next((e for e in entries if e.serial.upper() == serial.upper()), None)
            if entry is None:
                listed = ", ".join(e.serial for e in entries) or "none"
                raise ProbeNotFound(f"stlink-server {self.address} has no probe {serial} "
                                    f"(it lists: {listed})", serial=serial)
            if entry.in_use:
                raise ProbeBusy(f"in use by another client of stlink-server {self.address}",
                                serial=serial)
            connect_id = await conn.open_device(entry, timeout=self.request_timeout)
        except BaseException:
            await conn.aclose()
            raise
        return conn, connect_id

    async def _dial(self, serial: str | None = None) -> ServerConnection:
        """A new connection, the server's API version read (the first thing every client asks)."""
        conn = await ServerConnection.connect(self.host, self.port, timeout=self.connect_timeout,
                                              serial=serial)
        try:
            api, version = await conn.server_version(timeout=self.request_timeout)
        except BaseException:
            await conn.aclose()
            raise
        if api != self.api:
            log.info("stlink-server %s: version %s, API %d", self.address, version, api)
            if api < 2:
                log.warning("stlink-server %s speaks API %d: memory transfers capped at %d bytes",
                            self.address, api, OLD_API_MAX_TRANSFER)
        self.api, self.server_version = api, version
        return conn

    async def _devices(self, conn: ServerConnection, serial: str | None = None) -> list[DeviceEntry]:
        try:
            return await conn.devices(timeout=self.request_timeout)
        except TransportError as exc:
            exc.add_context(serial=serial)
            raise

    # --- lifetime ---------------------------------------------------------------------------
    def forget(self, link: StlinkServerLink) -> None:
        """Called by a link once closed."""
        self._links.discard(link)

    async def aclose(self) -> None:
        """Close every link opened here (CLOSE_DEV each). Idempotent."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            for link in list(self._links):
                await link.aclose()

    def _check_open(self) -> None:
        if self._closed:
            raise TransportError(f"the stlink-server backend for {self.address} is closed")
