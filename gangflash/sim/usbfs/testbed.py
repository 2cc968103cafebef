"""A USB bus on a umockdev testbed: simulated probes (and hubs), each node answered by a
``UsbfsNode``.

The testbed redirects /sys and /dev for every process that runs with umockdev's preload and
``UMOCKDEV_DIR`` set to its root: this process when it was started under ``umockdev-wrapper``
(the usb tests), or a child started by ``tool.run_tool`` (``gangflash sim exec``; the owner
itself needs no preload). One bus at a time per process.

Device descriptions are written in umockdev-record format from each probe's own descriptors, with
the sysfs attributes libusb reads (``shared/reference/usb-testing.md``: busnum/devnum/speed, the
raw ``descriptors`` file, and ``bConfigurationValue``, without which st-flash stops at
"libusb_get_configuration()", ``libusb-tools-under-umockdev.md``). The serial is whatever the
probe reports: 24 characters, or the old V2's 12 raw bytes (which stlink hex-encodes).
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import signal
import threading
from dataclasses import dataclass

import gi

gi.require_version("UMockdev", "1.0")
from gi.repository import UMockdev  # noqa: E402

from .clocking import TransferClock  # noqa: E402
from .node import UsbfsNode  # noqa: E402

log = logging.getLogger(__name__)

BUS = 1
CONTROLLER = "/devices/pci0000:00/0000:00:14.0"
# A plain 4-port USB 2.0 hub (Genesys GL850G IDs), so probes can sit behind one: libusb builds
# port paths from each device's parent chain, and a parent missing from sysfs cuts the chain.
HUB_DESCRIPTORS = bytes.fromhex(
    "12010002090001404305" "0806" "0100" "000100" "01"
    "09021900010100e032" "090400000109000000" "0705810301000c")


@dataclass
class BusDevice:
    """One device on the bus."""

    port_path: str          # "1-2", "1-3.1"
    devnum: int
    syspath: str            # "/sys/devices/.../usb1/1-3/1-3.1"
    node: UsbfsNode | None      # None for hubs (nothing talks to them)

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


class TestbedError(RuntimeError):
    """umockdev refused a device description or an ioctl handler; the message names the port."""


class UsbTestbed:
    """A umockdev testbed with simulated probes. Use as a context manager (or call ``close``):
    closing frees the testbed, which removes its temporary root."""

    __test__ = False    # not a pytest class, whatever the name

    def __init__(self) -> None:
        self.testbed = UMockdev.Testbed.new()
        self.root = self.testbed.get_root_dir()
        self.devices: dict[str, BusDevice] = {}
        self._unplugged: list[BusDevice] = []
        self._next_devnum = 2

    def __enter__(self) -> "UsbTestbed":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_hub(self, port_path: str) -> BusDevice:
        """A hub at ``port_path`` (needed before adding devices behind it)."""
        return self._add(port_path, HUB_DESCRIPTORS, speed=480, serial=None)

    def add_probe(self, port_path: str, model, clock: TransferClock | None = None) -> BusDevice:
        """The simulated probe ``model`` (a ``SimProbe``) at ``port_path``; hubs on its path must
        be added first. With ``clock``, each transfer served advances the board's virtual time."""
        descriptors = model.device_descriptor() + model.config_descriptor()
        device = self._add(port_path, descriptors, speed=480 if model.max_packet == 512 else 12,
                           serial=model.serial_string)
        device.node = UsbfsNode(model, self.root + device.devnode, clock)
        if not self.testbed.attach_ioctl(device.devnode, device.node.handler):
            raise TestbedError(f"umockdev refused an ioctl handler for {device.devnode}")
        return device

    def _add(self, port_path: str, descriptors: bytes, *, speed: int,
             serial: str | None) -> BusDevice:
        if port_path in self.devices:
            raise ValueError(f"port {port_path} is taken")
        devnum = self._next_devnum
        self._next_devnum += 1
        text = _description(port_path, devnum, descriptors, speed=speed, serial=serial)
        if not self.testbed.add_from_string(text):
            raise TestbedError(f"umockdev rejected the description of {port_path}")
        device = BusDevice(port_path, devnum, "/sys" + _sysfs_dir(port_path), None)
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
        """Free the testbed (its temporary root goes with it) and close the nodes' FIFOs. The root
        is removed here too if umockdev left it (a reference still held somewhere).

        Ctrl-C, SIGTERM and SIGHUP arriving meanwhile are held until the cleanup is done and then
        delivered: a signal must not cut the removal of the root short."""
        if self.testbed is None:
            return
        if threading.current_thread() is not threading.main_thread():
            self._close()
            return
        held: list[int] = []
        saved = {signum: signal.signal(signum, lambda got, _frame: held.append(got))
                 for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            self._close()
        finally:
            for signum, handler in saved.items():
                signal.signal(signum, handler)
            for signum in held:
                signal.raise_signal(signum)

    def _close(self) -> None:
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
        if os.path.exists(self.root):
            log.warning("testbed root %s outlived the testbed; removing it", self.root)
            shutil.rmtree(self.root, ignore_errors=True)
