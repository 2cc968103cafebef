"""One stlink-server client connection: a thread with a blocking socket that frames requests
out of the byte stream, hands each to the server and writes the reply.

Blocking sockets cost a fraction of an event loop's per-request overhead (measured: about 11 µs
against 49 µs of server CPU per request with asyncio), which is most of what lets the server keep
up with OpenOCD's busy polling; probe work runs outside the server's lock, so Unicorn (which
releases the GIL) can run several boards' cores at once.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from typing import TYPE_CHECKING

from .stlink_server_protocol import ServerStatus, Unframeable, request_length, status_word

if TYPE_CHECKING:
    from .stlink_server import StlinkServer

log = logging.getLogger("gangflash.sim.stlink_server")

TRUNCATION_TIMEOUT_S = 1.0     # OpenOCD's own read deadline is 1 s


class _Connection:
    """One client socket, served by its own thread with blocking I/O."""

    def __init__(self, server: "StlinkServer", sock: socket.socket, peer: str) -> None:
        self.server, self.sock, self.peer = server, sock, peer
        self._timeout: float | None = None
        self.thread = threading.Thread(target=self.run, name=f"stlink-server {peer}", daemon=True)

    def _set_timeout(self, timeout: float | None) -> None:
        if timeout != self._timeout:            # each change is a syscall: only when needed
            self.sock.settimeout(timeout)
            self._timeout = timeout

    def run(self) -> None:
        try:
            self._serve()
        except OSError as exc:
            if not self.server._stopping:
                log.info("client %s: %s", self.peer, exc)
        finally:
            self.server._disconnected(self)
            with contextlib.suppress(OSError):
                self.sock.close()
            log.info("client %s disconnected", self.peer)

    def _serve(self) -> None:
        sock, server = self.sock, self.server
        buf = bytearray()
        started = 0.0                 # wall time the pending request's first byte arrived
        while True:
            if not buf:
                self._set_timeout(None)
                data = sock.recv(65536)
                if not data:
                    return            # clean close between requests
                started = time.perf_counter()
                buf += data
            try:
                need = request_length(buf)
            except Unframeable as exc:
                log.warning("client %s: %s; closing", self.peer, exc)
                return self._fail(exc.status)
            if need is None or len(buf) < need:
                self._set_timeout(TRUNCATION_TIMEOUT_S)
                try:
                    data = sock.recv(65536)
                except socket.timeout:
                    data = None
                if not data:
                    log.warning("client %s: request truncated (%d bytes, then %s); closing",
                                self.peer, len(buf), "silence" if data is None else "EOF")
                    return self._fail(ServerStatus.TRUNCATED)
                buf += data
                continue
            req = bytes(buf[:need])
            del buf[:need]
            arrived, started = started, time.perf_counter()
            try:
                reply = server.handle(self, req, arrived)
            except Unframeable as exc:
                log.warning("client %s: %s; closing", self.peer, exc)
                return self._fail(exc.status)
            except Exception:   # a server bug costs this client its session, not the server
                log.exception("client %s: request failed; closing", self.peer)
                return self._fail(ServerStatus.TCP_ERROR)
            sock.sendall(reply)

    def _fail(self, status: int) -> None:
        """Answer ``status`` and close cleanly: FIN after the status, then drain what the client
        still sends for a moment, so unread bytes do not turn the close into a reset that could
        destroy the status before the client reads it."""
        with contextlib.suppress(OSError):
            self.sock.sendall(status_word(status))
            self.sock.shutdown(socket.SHUT_WR)
            self._set_timeout(0.5)
            while self.sock.recv(65536):
                pass

    def drop(self) -> None:
        """Server shutdown: wake the thread's blocking recv."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
