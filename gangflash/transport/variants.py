"""Every ST-Link by USB product ID, and how to read its serial number.

Discovery data only, with no libusb import, so every backend (libusb, simulator, TCP) and the CLI
share one table. Facts from ``shared/reference/stlink-protocol.md`` (checked there against pyOCD's
``USB_PID_EP_MAP`` and OpenOCD's PID defines and descriptor dumps).

Behaviour is driven by the version the probe reports (``GET_VERSION``), not by the PID: the
variant name here is a label for humans and the endpoint map is what a backend needs to open the
debug interface (interface 0, alternate setting 0).
"""

from __future__ import annotations

from dataclasses import dataclass

STLINK_VID = 0x0483
DEBUG_INTERFACE = 0         # interface 0, alternate setting 0, on every variant
FULL_SPEED_PACKET = 64      # V2 / V2-1 bulk wMaxPacketSize
HIGH_SPEED_PACKET = 512     # V3 bulk wMaxPacketSize
V2_PID = 0x3748             # the original V2: its GET_VERSION low field is SWIM, not mass storage


@dataclass(frozen=True)
class Variant:
    """One ST-Link product ID: label, generation and debug endpoints."""

    pid: int
    name: str               # label shown to users: "V2", "V2-1", "V3E", ...
    generation: int         # 2 for V2 / V2-1, 3 for V3 (V3PWR included)
    out_ep: int             # bulk OUT endpoint of the debug interface
    in_ep: int              # bulk IN endpoint of the debug interface
    trace_ep: int | None    # SWV trace IN endpoint, if any
    max_packet: int         # nominal wMaxPacketSize; a backend should prefer the descriptor's value
    note: str = ""

    @property
    def is_v3(self) -> bool:
        return self.generation >= 3


def _v21(pid: int, name: str, note: str = "") -> Variant:
    return Variant(pid, name, 2, 0x01, 0x81, 0x82, FULL_SPEED_PACKET, note)


def _v3(pid: int, name: str, note: str = "") -> Variant:
    return Variant(pid, name, 3, 0x01, 0x81, 0x82, HIGH_SPEED_PACKET, note)


VARIANTS: dict[int, Variant] = {v.pid: v for v in (
    # The original V2 is the only one with OUT endpoint 0x02 and trace on 0x83.
    Variant(V2_PID, "V2", 2, 0x02, 0x81, 0x83, FULL_SPEED_PACKET, "ST-Link/V2"),
    _v21(0x374A, "V2-1", "V2-1 variant (pyOCD: 'audio'; not in OpenOCD)"),
    _v21(0x374B, "V2-1", "V2-1 with mass storage (Nucleo, Discovery)"),
    _v21(0x3752, "V2-1", "V2-1 without mass storage"),
    _v3(0x374E, "V3E", "STLINK-V3E (on-board)"),
    _v3(0x374F, "V3S", "STLINK-V3SET / V3MINI"),
    _v3(0x3753, "V3", "STLINK-V3 with two virtual COM ports"),
    _v3(0x3754, "V3", "STLINK-V3E without mass storage"),
    # 0x3755: OpenOCD's descriptor dump shows the V3PWR in firmware-update mode (one "Usbloader"
    # interface, EPs 0x81/0x01); pyOCD still lists it as a debug probe. Listed so it is recognised
    # and named; opening it for debug is expected to fail on real hardware.
    _v3(0x3755, "V3PWR-loader", "STLINK-V3PWR in firmware-update mode"),
    _v3(0x3757, "V3PWR", "STLINK-V3PWR (pyOCD: also V4)"),
)}

# Known ST PIDs that are deliberately not debug probes we drive.
UNSUPPORTED_PIDS: dict[int, str] = {
    0x3744: "ST-Link/V1 (mass-storage SCSI wrapper; not supported)",
    0x374D: "STLINK-V3 USB loader (DFU; not a debug interface)",
}


def variant_for(vid: int, pid: int) -> Variant | None:
    """The variant for a USB ID, or None if it is not an ST-Link debug probe we drive."""
    if vid != STLINK_VID:
        return None
    return VARIANTS.get(pid)


def is_stlink(vid: int, pid: int) -> bool:
    """True for every (VID, PID) pair a backend should enumerate."""
    return variant_for(vid, pid) is not None


def decode_serial(text: str) -> str:
    """The serial the tools agree on, from the iSerial string descriptor's text.

    Old V2 firmware reports 12 raw bytes as 12 UTF-16 units; pyOCD, OpenOCD and stlink all turn
    exactly-12-character strings into 24 upper-case hex digits of each unit's low byte (a
    length rule, not a printability rule: OpenOCD keys on bLength 26). Anything else is used as is,
    so the serial a user copies from one tool matches ours.
    """
    if len(text) == 12:
        return "".join(f"{ord(ch) & 0xFF:02X}" for ch in text)
    return text


def decode_serial_descriptor(descriptor: bytes) -> str:
    """Same rule from the raw string descriptor (bLength, bDescriptorType, UTF-16LE units).

    For backends that read the descriptor themselves: bLength 26 means 12 raw units.
    """
    if len(descriptor) < 2:
        raise ValueError("string descriptor shorter than its header")
    length = min(descriptor[0], len(descriptor))
    units = descriptor[2:length]
    text = units.decode("utf-16-le", errors="surrogatepass") if len(units) % 2 == 0 else ""
    if len(units) == 24:    # bLength 26: the 12-unit form; decode from the raw low bytes
        return "".join(f"{units[i]:02X}" for i in range(0, 24, 2))
    return text
