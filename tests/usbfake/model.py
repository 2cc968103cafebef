"""The device behind a fake ST-Link node: the project's simulated probe, ``SimProbe``.

The usbfs handler uses only its USB face: ``vid``, ``pid``, ``serial_string``, ``out_ep``,
``in_ep``, ``max_packet``, ``device_descriptor()``, ``config_descriptor()``,
``string_descriptor(index)`` (UsbStall when absent), ``bulk_out(ep, data) -> cost``,
``bulk_in(ep, size) -> (data, cost)`` (UsbTimeout while nothing is queued), ``usb_reset()`` and
``unplug()``. Costs are ignored: the libusb backend runs on real time, so the probe gets the real
monotonic clock rather than a virtual one.
"""

from __future__ import annotations

import time

from gangflash.sim.probe import SimProbe


def make_probe(variant: str, serial_string: str) -> SimProbe:
    """A simulated probe of ``variant`` ("V2", "V2-1", "V3", "V3E") without a target: enough for
    GET_VERSION, GET_CURRENT_MODE and the other probe-only commands."""
    return SimProbe(serial=serial_string, target=None, clock=time.monotonic, model=variant)
