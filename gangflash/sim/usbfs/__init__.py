"""Simulated probes as USB devices on a umockdev testbed, for unmodified libusb programs.

umockdev's preload library (``libumockdev-preload.so.0``) redirects /sys and /dev of a process
into a temporary testbed directory and forwards every ioctl on a device node to a handler object
in the process that owns the testbed. Here that handler answers as the kernel's usbfs would, from
a simulated probe (``SimProbe``): so st-flash, OpenOCD, pyOCD or our own libusb backend enumerate,
claim and transfer through their own libusb code, unmodified.

- ``environment``: whether this machine can do it, and how to install what is missing.
- ``node``: one device node's ioctl handler (URBs, reaping, the readiness FIFO), and the clock
  each served transfer advances.
- ``testbed``: the bus: a umockdev testbed holding probes (and hubs), described the way libusb
  reads sysfs.
- ``tool``: run a program under the preload against a testbed, and clean up on every exit path.

Facts followed: ``shared/reference/usb-testing.md`` (handler, struct layouts, FIFO trick) and
``shared/reference/libusb-tools-under-umockdev.md`` (what st-flash/OpenOCD need from the devices).
``node``, ``testbed`` and ``tool`` import PyGObject: import them only after ``environment.missing()``
returned None.
"""
