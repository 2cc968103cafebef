"""``CompositeBackend``: several backends seen as one, e.g. the USB bus plus two stlink-servers.

A batch whose slots name probes on USB and behind stlink-servers (``tcp://HOST:PORT/SERIAL``)
still has one ``Backend``: this one lists every child's probes and routes ``open`` to the child
that listed the probe (by ``ProbeInfo.backend``, and for TCP probes by the server address in the
port path), so the scheduler and the driver above never know how a probe is reached.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import anyio

from .backend import Backend, ProbeInfo, ProbeLink
from .errors import ProbeNotFound

log = logging.getLogger(__name__)


def _owns(backend: Backend, info: ProbeInfo) -> bool:
    if backend.name != info.backend:
        return False
    address = getattr(backend, "address", None)     # an stlink-server: the port path names it
    return address is None or info.port_path.startswith(f"tcp://{address}/")


class CompositeBackend:
    """Every probe of every child backend. Enumeration fails if any child fails (a server that is
    down must not look like "no probes there"); the error names the child."""

    name = "composite"

    def __init__(self, children: Sequence[Backend]) -> None:
        if not children:
            raise ValueError("a composite backend needs at least one child")
        self.children = list(children)

    async def enumerate(self) -> list[ProbeInfo]:
        infos: list[ProbeInfo] = []
        for child in self.children:
            infos.extend(await child.enumerate())
        return infos

    async def open(self, info: ProbeInfo) -> ProbeLink:
        for child in self.children:
            if _owns(child, info):
                return await child.open(info)
        raise ProbeNotFound(f"no backend serves {info.port_path} ({info.backend})", serial=info.serial)

    async def aclose(self) -> None:
        """Close every child, even if one fails."""
        with anyio.CancelScope(shield=True):
            for child in self.children:
                try:
                    await child.aclose()
                except Exception as exc:        # noqa: BLE001 - the others must still close
                    log.warning("closing the %s backend failed: %s", child.name, exc)
