"""A fake USB bus for the libusb backend tests: the product's umockdev testbed
(``gangflash.sim.usbfs.testbed``) with a test-friendly ``add_probe`` that builds the probe.

The process must run with ``libumockdev-preload.so`` loaded from its start (``umockdev-wrapper``);
``conftest.py`` checks that and skips or fails the ``usb`` tests otherwise.
"""

from __future__ import annotations

from gangflash.sim.usbfs.testbed import BusDevice, UsbTestbed

from .model import make_probe

FakeDevice = BusDevice

__all__ = ["FakeDevice", "FakeUsbBus"]


class FakeUsbBus(UsbTestbed):
    """A umockdev testbed with fake ST-Links. Use as a context manager (or call ``close``)."""

    def add_probe(self, port_path: str, variant: str = "V2",
                  serial_string: str = "0670FF485550755187103520", model=None) -> BusDevice:
        """A fake ST-Link at ``port_path`` answering from ``model`` (default: a new probe model
        of ``variant`` with ``serial_string``, on the real clock). Hubs on its path must be
        added first."""
        model = model if model is not None else make_probe(variant, serial_string)
        return super().add_probe(port_path, model)
