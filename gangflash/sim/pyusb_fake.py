"""Simulated probes as pyusb devices, for clients that find ST-Links through pyusb (pyOCD).

pyOCD's ST-Link plugin enumerates with ``pyocd.probe.stlink.usb.usb_find`` and then only touches
a handful of pyusb attributes (listed in `shared/reference/pyocd-as-client.md`, section a).
``patch_pyocd`` swaps that one function for one that returns these fake devices, so pyOCD runs
unmodified against the simulator: same ST-Link driver, same flash algorithms, same byte stream.
Time is the probe's ``ManualClock``, advanced by the cost each transfer reports.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Iterable, Iterator

from .clock import ManualClock
from .errors import UsbGone, UsbStall, UsbTimeout

log = logging.getLogger(__name__)


class _Endpoint:
    def __init__(self, device: "FakePyusbDevice", address: int, max_packet: int) -> None:
        self.device = device
        self.bEndpointAddress = address
        self.wMaxPacketSize = max_packet

    def write(self, data, timeout=None) -> int:
        return self.device._write(self.bEndpointAddress, bytes(data), timeout)

    def read(self, size, timeout=None):
        return self.device._read(self.bEndpointAddress, size, timeout)


class _Interface:
    def __init__(self, endpoints: list[_Endpoint]) -> None:
        self._endpoints = endpoints

    def __iter__(self):
        return iter(self._endpoints)


class _Configuration:
    def __init__(self, interface: _Interface) -> None:
        self._interface = interface

    def __getitem__(self, key):
        if key in ((0, 0), 0):
            return self._interface
        raise IndexError(key)


class _Context:
    """What pyusb's util functions reach through ``device._ctx``."""

    def dispose(self, device) -> None:
        device.claimed = False

    def managed_claim_interface(self, device, interface) -> None:
        device.claimed = True

    def managed_release_interface(self, device, interface) -> None:
        device.claimed = False


class FakePyusbDevice:
    """One simulated probe dressed as a ``usb.core.Device``."""

    def __init__(self, probe, clock: ManualClock) -> None:
        self.probe = probe
        self.clock = clock
        self.idVendor = probe.vid
        self.idProduct = probe.pid
        self.claimed = False
        self._ctx = _Context()
        endpoints = [_Endpoint(self, probe.out_ep, probe.max_packet), _Endpoint(self, probe.in_ep, probe.max_packet)]
        if getattr(probe, "swv_ep", None):
            endpoints.append(_Endpoint(self, probe.swv_ep, probe.max_packet))
        self._configuration = _Configuration(_Interface(endpoints))

    @property
    def serial_number(self) -> str:
        return self.probe.serial_string

    @property
    def manufacturer(self) -> str:
        return self.probe.manufacturer

    @property
    def product(self) -> str:
        return self.probe.product

    def get_active_configuration(self):
        self._check_present()
        return self._configuration

    def __repr__(self) -> str:
        return f"<simulated ST-Link {self.idVendor:04x}:{self.idProduct:04x} {self.probe.serial}>"

    def _check_present(self) -> None:
        import usb.core
        if self.probe.unplugged:
            raise usb.core.USBError("No such device", errno=19)

    def _write(self, endpoint: int, data: bytes, timeout) -> int:
        import usb.core
        try:
            cost = self.probe.bulk_out(endpoint, data)
        except UsbTimeout:
            self.clock.advance((timeout or 1000) / 1000)
            raise usb.core.USBTimeoutError("Operation timed out", errno=110)
        except UsbStall:
            raise usb.core.USBError("Pipe error", errno=32)
        except UsbGone:
            raise usb.core.USBError("No such device", errno=19)
        self.clock.advance(cost)
        return len(data)

    def _read(self, endpoint: int, size: int, timeout):
        import array

        import usb.core
        try:
            data, cost = self.probe.bulk_in(endpoint, size)
        except UsbTimeout:
            self.clock.advance((timeout or 1000) / 1000)
            raise usb.core.USBTimeoutError("Operation timed out", errno=110)
        except UsbStall:
            raise usb.core.USBError("Pipe error", errno=32)
        except UsbGone:
            raise usb.core.USBError("No such device", errno=19)
        self.clock.advance(cost)
        return array.array("B", data)


def fake_find(devices: Iterable[FakePyusbDevice]):
    """A replacement for pyusb's ``find(find_all=True, custom_match=...)``."""
    devices = list(devices)

    def find(*, find_all: bool = False, custom_match=None, **_ignored):
        matched = [d for d in devices if not d.probe.unplugged and (custom_match is None or custom_match(d))]
        if find_all:
            return iter(matched)
        return matched[0] if matched else None

    return find


@contextlib.contextmanager
def patch_pyocd(probes, clock: ManualClock) -> Iterator[list[FakePyusbDevice]]:
    """Within the block, pyOCD's ST-Link plugin sees exactly ``probes`` (and nothing else)."""
    from pyocd.probe.stlink import usb as stlink_usb

    devices = [FakePyusbDevice(p, clock) for p in probes]
    original = stlink_usb.usb_find
    stlink_usb.usb_find = fake_find(devices)
    try:
        yield devices
    finally:
        stlink_usb.usb_find = original
