"""Fake ST-Links on a fake USB bus, for testing the libusb backend with the real libusb.

umockdev's preload library redirects /sys and /dev into a temporary testbed and forwards every
ioctl on a fake device node to a handler in this process (``usbfs.FakeUsbfsNode``), which answers
as the kernel's usbfs would, from a device model (``model``). libusb and python-libusb1 run
unmodified on top: enumeration, string descriptors, async transfers, timeouts, cancellation,
STALL and unplug all go through libusb's own code. ``testbed.FakeUsbBus`` builds the bus.

The machinery itself lives in the product (``gangflash.sim.usbfs``, which ``gangflash sim exec``
serves tools with); this package adapts it for tests. Needs PyGObject (``gi``) with the UMockdev
typelib, and the process started under ``umockdev-wrapper``; ``environment.missing()`` says what
is absent. Import ``testbed``/``usbfs`` only after checking: they import ``gi``.
"""
