"""The fake usbfs node of the libusb backend tests: the product's ``UsbfsNode``
(``gangflash.sim.usbfs.node``), which ``gangflash sim exec`` serves tools with."""

from __future__ import annotations

from gangflash.sim.usbfs.node import ReadinessFifo, UsbfsNode

FakeUsbfsNode = UsbfsNode

__all__ = ["FakeUsbfsNode", "ReadinessFifo"]
