"""Finding ST-Links with libusb: which devices are probes, where they sit, what their serial is.

Every scan uses a fresh, short-lived libusb context, so it shows the bus as it is now even where
a long-lived context's device list goes stale (libusb-package's netlink hot-plug monitor sees no
events inside many containers, nor under umockdev). Serial numbers are read from the iSerial
string descriptor once per (bus, address, port, PID) and cached: reading one means opening the
device and a control transfer, too much to repeat on every poll. Where the device cannot be
opened (no udev rule) Linux's sysfs copy of the serial is used instead.

Everything here blocks (libusb's sync API): call it from a worker thread.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

import usb1

from .backend import ProbeInfo
from .libusb_events import load_libusb
from .variants import decode_serial, decode_serial_descriptor, variant_for

log = logging.getLogger(__name__)

DESCRIPTOR_TIMEOUT_MS = 1000    # string descriptor reads during enumeration
SYSFS_USB_DEVICES = Path("/sys/bus/usb/devices")

ACCESS_HINT = (
    "permission denied opening the probe: give your user access to ST-Link devices with a udev "
    "rule (e.g. the 49-stlinkv*.rules files of the stlink package, or SUBSYSTEM==\"usb\", "
    "ATTR{idVendor}==\"0483\", MODE=\"0660\", GROUP=\"plugdev\" in /etc/udev/rules.d/), reload the "
    "rules (udevadm control --reload) and replug the probe"
)


def port_path(device: usb1.USBDevice) -> str:
    """"bus-port.port...", the name Linux gives the device in sysfs ("1-1.4.2"). Falls back to
    "bus@address" where the port chain is unknown."""
    bus = device.getBusNumber()
    try:
        ports = device.getPortNumberList()
    except usb1.USBError:
        ports = []
    if not ports:
        return f"{bus}@{device.getDeviceAddress()}"
    return f"{bus}-{'.'.join(str(p) for p in ports)}"


def read_serial(device: usb1.USBDevice) -> str:
    """Read and decode the iSerial string descriptor (opens the device briefly).

    python-libusb1's ``getSerialNumber`` asks libusb for an ASCII copy, which turns the raw bytes
    of old V2 serials into '?': read the raw descriptor and decode it with the variants rule.
    """
    index = device.getSerialNumberDescriptor()
    if not index:
        return ""
    handle = device.open()
    try:
        languages = handle.getSupportedLanguageList() or [0x0409]
        raw = handle.controlRead(
            usb1.ENDPOINT_IN | usb1.TYPE_STANDARD | usb1.RECIPIENT_DEVICE,
            usb1.REQUEST_GET_DESCRIPTOR, (usb1.DT_STRING << 8) | index, languages[0], 255,
            timeout=DESCRIPTOR_TIMEOUT_MS)
    finally:
        handle.close()
    return decode_serial_descriptor(bytes(raw))


def sysfs_serial(path: str) -> str | None:
    """Linux keeps a copy of the serial readable by everyone; None elsewhere or if absent."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        text = (SYSFS_USB_DEVICES / path / "serial").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return decode_serial(text.rstrip("\n"))


class ProbeScanner:
    """Scans the bus for ST-Links and remembers their serials. Thread-safe: one scan at a time."""

    def __init__(self, backend_name: str) -> None:
        self.backend_name = backend_name
        self._serials: dict[tuple[int, int, str, int], str] = {}
        self._lock = threading.RLock()

    def scan(self) -> list[ProbeInfo]:
        """Every ST-Link present, sorted by port path; [] (logged at debug level) when libusb
        cannot be loaded or initialised, e.g. on a machine without USB."""
        if not load_libusb():
            return []
        with self._lock:
            try:
                with usb1.USBContext() as ctx:
                    found = [info for dev in ctx.getDeviceIterator(skip_on_error=True)
                             if (info := self.describe(dev)) is not None]
            except usb1.USBError as exc:
                log.debug("libusb cannot enumerate (no USB here?): %s", exc)
                return []
            present = {(p.port_path, p.pid) for p in found}
            for key in [k for k in self._serials if (k[2], k[3]) not in present]:
                del self._serials[key]
        return sorted(found, key=lambda p: p.port_path)

    def describe(self, device: usb1.USBDevice) -> ProbeInfo | None:
        """ProbeInfo for an ST-Link debug probe, None for anything else (or if it vanished)."""
        try:
            vid, pid = device.getVendorID(), device.getProductID()
            variant = variant_for(vid, pid)
            if variant is None:
                return None
            path = port_path(device)
            try:
                max_packet = device.getMaxPacketSize(variant.in_ep)
            except usb1.USBError:
                max_packet = variant.max_packet
            serial = self.serial(device, path)
        except usb1.USBError as exc:
            log.debug("skipping a device that vanished during the scan: %s", exc)
            return None
        return ProbeInfo(serial=serial, vid=vid, pid=pid, variant=variant.name, port_path=path,
                         backend=self.backend_name, max_packet=max_packet, in_ep=variant.in_ep,
                         out_ep=variant.out_ep)

    def serial(self, device: usb1.USBDevice, path: str) -> str:
        """The decoded serial ("" if unreadable), cached per (bus, address, port, PID): an
        address is not reused while the device stays plugged in."""
        key = (device.getBusNumber(), device.getDeviceAddress(), path, device.getProductID())
        with self._lock:
            cached = self._serials.get(key)
            if cached is not None:
                return cached
            try:
                serial = read_serial(device)
            except usb1.USBErrorNoDevice:
                raise
            except (usb1.USBError, ValueError) as exc:
                serial = sysfs_serial(path)
                if serial is None:
                    hint = f": {ACCESS_HINT}" if isinstance(exc, usb1.USBErrorAccess) else ""
                    log.warning("cannot read the serial of the ST-Link at %s (%s)%s", path, exc,
                                hint)
                    return ""     # not cached: the next scan tries again
            self._serials[key] = serial
            return serial
