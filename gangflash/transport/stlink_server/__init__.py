"""Probes shared by an stlink-server (ST's, or ``gangflash sim serve``) over TCP.

* ``wire``: the protocol's requests, replies and status words; one TCP connection.
* ``link``: ``StlinkServerLink``, an opened probe (``transact``: one command per round trip).
* ``backend``: ``StlinkServerBackend``, enumeration and opening on one server.

Probes behind a server are named ``tcp://HOST:PORT/SERIAL`` (``parse_probe_url``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .backend import StlinkServerBackend, probe_url
from .link import StlinkServerLink
from .wire import DEFAULT_PORT, ServerError, ServerUnreachable


def parse_probe_url(text: str) -> tuple[str, int, str]:
    """``tcp://HOST:PORT/SERIAL`` -> (host, port, serial); ValueError says what is wrong. The
    port may be left out (the server's default, 7184)."""
    if not text.startswith("tcp://"):
        raise ValueError("expected tcp://HOST:PORT/SERIAL")
    parts = urlsplit(text)
    try:
        port = parts.port if parts.port is not None else DEFAULT_PORT
    except ValueError:
        raise ValueError(f"bad port in {text!r}; expected tcp://HOST:PORT/SERIAL") from None
    serial = parts.path.lstrip("/")
    if not parts.hostname or not serial or "/" in serial or parts.query:
        raise ValueError(f"{text!r}: expected tcp://HOST:PORT/SERIAL")
    return parts.hostname, port, serial


def split_server(address: str) -> tuple[str, int]:
    """``"host:port"`` (a config slot's ``server``) -> (host, port)."""
    host, _, port = address.rpartition(":")
    return host, int(port)


__all__ = ["StlinkServerBackend", "StlinkServerLink", "ServerError", "ServerUnreachable",
           "parse_probe_url", "probe_url", "split_server", "DEFAULT_PORT"]
