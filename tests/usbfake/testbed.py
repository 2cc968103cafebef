"""A fake USB bus: a umockdev testbed holding fake ST-Links (and hubs), each node answered by a
``FakeUsbfsNode``.

The process must run with ``libumockdev-preload.so`` loaded from its start (``umockdev-wrapper``);
``conftest.py`` checks that and skips or fails the ``usb`` tests otherwise. One bus at a time per
process: the testbed redirects /sys and /dev for the whole process while it exists.

Device descriptions are written in umockdev-record format from the model's own descriptors (see
``shared/reference/usb-testing.md`` for the fields libusb needs: busnum/devnum/speed/
bConfigurationValue attributes and the raw ``descriptors`` file).
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass

import gi

gi.require_version("UMockdev", "1.0")
from gi.repository import UMockdev  # noqa: E402

from .model import make_probe  # noqa: E402
from .usbfs import FakeUsbfsNode  # noqa: E402

log = logging.getLogger(__name__)

BUS = 1
CONTROLLER = "/devices/pci0000:00/0000:00:14.0"
# A plain 4-port USB 2.0 hub (Genesys GL850G IDs), so probes can sit behind one: libusb builds
# port paths from each device's parent chain, and a parent missing from sysfs cuts the chain.
HUB_DESCRIPTORS = bytes.fromhex(
    "12010002090001404305" "0806" "0100" "000100" "01"
    "09021900010100e032" "090400000109000000" "0705810301000c")


@dataclass
class FakeDevice:
    """One device on the fake bus."""

    port_path: str          # "1-2", "1-3.1"
    devnum: int
    syspath: str            # "/sys/devices/.../usb1/1-3/1-3.1"
    node: FakeUsbfsNode | None      # None for hubs (nothing talks to them)

    @property
    def devnode(self) -> str:
        return f"/dev/bus/usb/{BUS:03d}/{self.devnum:03d}"


def _sysfs_dir(port_path: str) -> str:
    """"1-3.1" -> ".../usb1/1-3/1-3.1": each hub level is a parent directory."""
    bus, ports = port_path.split("-")
    parts = ports.split(".")
    chain = [f"{bus}-{'.'.join(parts[:i + 1])}" for i in range(len(parts))]
    return f"{CONTROLLER}/usb{bus}/" + "/".join(chain)


def _description(port_path: str, devnum: int, descriptors: bytes, *, speed: int,
                 serial: str | None) -> str:
    vid = int.from_bytes(descriptors[8:10], "little")
    pid = int.from_bytes(descriptors[10:12], "little")
    bcd = int.from_bytes(descriptors[12:14], "little")
    minor = (BUS - 1) * 128 + devnum - 1
    lines = [
        f"P: {_sysfs_dir(port_path)}",
        f"N: bus/usb/{BUS:03d}/{devnum:03d}",
        f"E: DEVNAME=/dev/bus/usb/{BUS:03d}/{devnum:03d}",
        "E: DEVTYPE=usb_device",
        "E: DRIVER=usb",
        f"E: PRODUCT={vid:x}/{pid:x}/{bcd:x}",
        "E: TYPE=0/0/0",
        f"E: BUSNUM={BUS:03d}",
        f"E: DEVNUM={devnum:03d}",
        "E: MAJOR=189",
        f"E: MINOR={minor}",
        "E: SUBSYSTEM=usb",
        f"A: busnum={BUS}\\n",
        f"A: devnum={devnum}\\n",
        f"A: devpath={port_path.split('-', 1)[1]}\\n",
        f"A: speed={speed}\\n",
        "A: bConfigurationValue=1\\n",
        "A: bNumConfigurations=1\\n",
        f"A: idVendor={vid:04x}\\n",
        f"A: idProduct={pid:04x}\\n",
        f"A: dev=189:{minor}",
    ]
    if serial is not None and serial.isascii() and serial.isprintable():
        lines.append(f"A: serial={serial}\\n")
    lines.append(f"H: descriptors={descriptors.hex().upper()}")
    return "\n".join(lines) + "\n"


class FakeUsbBus:
    """A umockdev testbed with fake ST-Links. Use as a context manager (or call ``close``)."""

    def __init__(self) -> None:
        self.testbed = UMockdev.Testbed.new()
        self.root = self.testbed.get_root_dir()
        self.devices: dict[str, FakeDevice] = {}
        self._unplugged: list[FakeDevice] = []
        self._next_devnum = 2

    def __enter__(self) -> FakeUsbBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_hub(self, port_path: str) -> FakeDevice:
        """A hub at ``port_path`` (needed before adding devices behind it)."""
        return self._add(port_path, HUB_DESCRIPTORS, speed=480, serial=None)

    def add_probe(self, port_path: str, variant: str = "V2",
                  serial_string: str = "0670FF485550755187103520", model=None) -> FakeDevice:
        """A fake ST-Link at ``port_path`` answering from ``model`` (default: a new probe model
        of ``variant`` with ``serial_string``). Hubs on its path must be added first."""
        model = model if model is not None else make_probe(variant, serial_string)
        descriptors = model.device_descriptor() + model.config_descriptor()
        device = self._add(port_path, descriptors, speed=480 if model.max_packet == 512 else 12,
                           serial=model.serial_string)
        device.node = FakeUsbfsNode(model, self.root + device.devnode)
        if not self.testbed.attach_ioctl(device.devnode, device.node.handler):
            raise RuntimeError(f"umockdev refused an ioctl handler for {device.devnode}")
        return device

    def _add(self, port_path: str, descriptors: bytes, *, speed: int,
             serial: str | None) -> FakeDevice:
        if port_path in self.devices:
            raise ValueError(f"port {port_path} is taken")
        devnum = self._next_devnum
        self._next_devnum += 1
        text = _description(port_path, devnum, descriptors, speed=speed, serial=serial)
        if not self.testbed.add_from_string(text):
            raise RuntimeError(f"umockdev rejected the description of {port_path}")
        device = FakeDevice(port_path, devnum, "/sys" + _sysfs_dir(port_path), None)
        self.devices[port_path] = device
        return device

    def unplug(self, port_path: str) -> None:
        """Pull the device out: in-flight URBs end with ENODEV, its sysfs entry and node go."""
        device = self.devices.pop(port_path)
        self._unplugged.append(device)
        if device.node is not None:
            device.node.unplug()    # stays attached: open handles keep getting ENODEV
        self.testbed.remove_device(device.syspath)

    def close(self) -> None:
        """Free the testbed (its temporary root goes with it) and close the fake nodes."""
        if self.testbed is None:
            return
        devices = [*self.devices.values(), *self._unplugged]
        for device in self.devices.values():
            if device.node is not None:
                self.testbed.detach_ioctl(device.devnode)
        self.testbed = None
        gc.collect()
        for device in devices:
            if device.node is not None:
                device.node.close()
        self.devices.clear()
        self._unplugged.clear()
