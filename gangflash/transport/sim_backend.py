"""The in-process "cable" to simulated probes: a Backend serving ``gangflash.sim`` SimProbes.

The only transport module allowed to import ``gangflash.sim``. A SimProbe answers bulk transfers
synchronously and reports how long each took in virtual seconds; ``SimLink`` awaits that cost on the
event loop's clock, so with a looptime loop 32 probes overlap in virtual time exactly as 32 real
probes overlap in real time, and any serialisation shows up as lost virtual time.

Sim errors map to transport errors: UsbTimeout costs the caller's whole timeout (as a real
timeout does) then raises UsbTimeout; UsbStall raises UsbStall; UsbGone raises ProbeGone.
Hot-plug: ``add`` / ``remove`` change the list the next ``enumerate`` sees; unplugged probes vanish.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import anyio

from gangflash.sim import errors as sim_errors

from .backend import ProbeInfo, STLINK_VID
from .errors import ProbeBusy, ProbeGone, ProbeNotFound, TransportError, UsbStall, UsbTimeout
from .variants import decode_serial, variant_for

if TYPE_CHECKING:
    from gangflash.sim.probe import SimProbe


class SimLink:
    """An opened simulated probe: its two bulk endpoints, with virtual-time costs charged."""

    def __init__(self, probe: SimProbe, info: ProbeInfo, backend: SimBackend) -> None:
        self.probe = probe
        self.info = info
        self._backend = backend
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise ProbeGone("link is closed", serial=self.info.serial)

    async def _charge(self, cost: float, timeout: float | None) -> None:
        """Spend ``cost`` virtual seconds; a transfer slower than the host's timeout is a timeout
        (the host gives up at ``timeout``; what the probe did meanwhile stays done)."""
        if timeout is not None and cost > timeout:
            await anyio.sleep(timeout)
            raise UsbTimeout(f"transfer needed {cost * 1e3:.1f} ms, timeout {timeout * 1e3:.0f} ms",
                             serial=self.info.serial)
        await anyio.sleep(cost)

    async def _lost(self, exc: sim_errors.UsbFault, timeout: float | None) -> TransportError:
        """The transport error a real backend would raise for a sim USB fault; a timeout first
        costs the caller's whole timeout, as a real one does."""
        serial = self.info.serial
        if isinstance(exc, sim_errors.UsbGone):
            return ProbeGone("no device (unplugged)", serial=serial)
        if isinstance(exc, sim_errors.UsbStall):
            return UsbStall("endpoint stalled", serial=serial)
        if timeout:
            await anyio.sleep(timeout)
        return UsbTimeout(f"no answer within {(timeout or 0) * 1e3:.0f} ms", serial=serial)

    async def write(self, data: bytes, timeout: float) -> None:
        """One bulk OUT transfer."""
        self._check_open()
        try:
            cost = self.probe.bulk_out(self.info.out_ep, bytes(data))
        except sim_errors.UsbFault as exc:
            raise await self._lost(exc, timeout) from exc
        await self._charge(cost, timeout)

    async def read(self, size: int, timeout: float) -> bytes:
        """One bulk IN transfer of up to ``size`` bytes."""
        self._check_open()
        try:
            data, cost = self.probe.bulk_in(self.info.in_ep, size)
        except sim_errors.UsbFault as exc:
            raise await self._lost(exc, timeout) from exc
        await self._charge(cost, timeout)
        return bytes(data)

    async def reset(self) -> None:
        """USB port reset of the simulated probe."""
        self._check_open()
        try:
            cost = self.probe.usb_reset()
        except sim_errors.UsbFault as exc:
            raise await self._lost(exc, None) from exc
        await anyio.sleep(cost)

    async def aclose(self) -> None:
        """Release the probe for the next opener."""
        if not self._closed:
            self._closed = True
            self._backend._release(self.probe)


class SimBackend:
    """A source of simulated probes. ``probes`` is live: add or remove to hot-plug."""

    name = "sim"

    def __init__(self, probes: Iterable[SimProbe] = ()) -> None:
        self._slots: dict[int, SimProbe] = {}   # port number -> probe, in plug order
        self._next_slot = 0
        self._open: set[int] = set()            # id() of probes with an open link
        for probe in probes:
            self.add(probe)

    @property
    def probes(self) -> list[SimProbe]:
        return list(self._slots.values())

    def add(self, probe: SimProbe) -> None:
        """Plug a probe in; it gets the next free "sim:N" port path."""
        self._slots[self._next_slot] = probe
        self._next_slot += 1

    def remove(self, probe: SimProbe) -> None:
        """Take a probe out of the list (it keeps running; it is just no longer found)."""
        for slot, candidate in list(self._slots.items()):
            if candidate is probe:
                del self._slots[slot]

    def _info(self, slot: int, probe: SimProbe) -> ProbeInfo:
        variant = variant_for(probe.vid, probe.pid)
        return ProbeInfo(
            serial=decode_serial(probe.serial_string) if probe.serial_string else probe.serial,
            vid=probe.vid, pid=probe.pid,
            variant=variant.name if variant else str(probe.variant),
            port_path=f"sim:{slot}", backend=self.name, max_packet=probe.max_packet,
            in_ep=probe.in_ep, out_ep=probe.out_ep)

    async def enumerate(self) -> list[ProbeInfo]:
        """Every plugged, present ST-Link, in plug order."""
        return [self._info(slot, probe) for slot, probe in self._slots.items()
                if not probe.unplugged and probe.vid == STLINK_VID]

    async def open(self, info: ProbeInfo) -> SimLink:
        """Claim a probe by port path (or serial if the path is not ours)."""
        for slot, probe in self._slots.items():
            current = self._info(slot, probe)
            if current.port_path == info.port_path or (
                    not info.port_path.startswith("sim:") and current.serial == info.serial):
                if probe.unplugged:
                    raise ProbeGone("probe was unplugged", serial=info.serial)
                if id(probe) in self._open:
                    raise ProbeBusy("probe is already open", serial=info.serial)
                self._open.add(id(probe))
                return SimLink(probe, current, self)
        raise ProbeNotFound(f"no simulated probe at {info.port_path}", serial=info.serial)

    def _release(self, probe: SimProbe) -> None:
        self._open.discard(id(probe))

    async def aclose(self) -> None:
        """Nothing to free: the probes belong to whoever built them."""
        self._open.clear()
