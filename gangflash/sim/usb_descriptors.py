"""USB identity of each simulated probe variant: device, configuration and string descriptors.

Hosts enumerate by these bytes (libusb under umockdev reads them raw; pyOCD reads the endpoint
table and wMaxPacketSize), so they copy real probes field for field. Source: the lsusb dumps in
OpenOCD ``doc/usb_adapters/stlink/`` (0483_3748 V2 standalone, 0483_374b Nucleo V2-1,
0483_374e Nucleo V3E, 0483_374f V3SET), summarised in ``shared/reference/stlink-protocol.md``.
Only interface 0 matters to debuggers; the mass-storage, VCP and bridge interfaces are described
so the configuration descriptor has the real length and layout, but nothing behind them works.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

VID_ST = 0x0483
LANGID_EN_US = 0x0409
MANUFACTURER = "STMicroelectronics"

_DESC_DEVICE, _DESC_CONFIG, _DESC_STRING, _DESC_INTERFACE, _DESC_ENDPOINT = 1, 2, 3, 4, 5
_DESC_IAD, _CS_INTERFACE = 0x0B, 0x24
_BULK, _INTERRUPT = 2, 3


@dataclass(frozen=True)
class Variant:
    """One probe model: what enumeration shows and what GET_VERSION reports by default."""

    name: str
    pid: int
    hw_major: int          # GET_VERSION bits 15-12
    product: str           # iProduct
    out_ep: int
    in_ep: int
    swv_ep: int
    max_packet: int        # wMaxPacketSize of the debug bulk endpoints
    swv_packet: int        # the V2-1 trace endpoint is 32 bytes, not 64
    layout: str            # which configuration descriptor: "v2", "v2-1", "v3e", "v3"
    default_jtag: int      # J of a current firmware (V2J37S7 / V2J37M26 / V3J10M7B3)
    default_low: int       # V2: SWIM (S) or, on V2-1, mass-storage (M) version; V3: MSD
    default_swim: int = 0
    default_bridge: int = 0
    max_power_ma: int = 100

    @property
    def high_speed(self) -> bool:
        """V3 enumerates at high speed: 512-byte packets, 125 µs microframes."""
        return self.max_packet == 512


VARIANTS: dict[str, Variant] = {
    "V2": Variant("V2", 0x3748, 2, "STM32 STLink", 0x02, 0x81, 0x83, 64, 64, "v2", 37, 7),
    # The V2-1 low field is the mass-storage version; M26 also avoids OpenOCD's SWIM-only
    # misdetection of PID 0x374B firmware reporting 7..12 there (libusb-tools-under-umockdev.md).
    "V2-1": Variant("V2-1", 0x374B, 2, "STM32 STLink", 0x01, 0x81, 0x82, 64, 32, "v2-1", 37, 26),
    "V3": Variant("V3", 0x374F, 3, "STLINK-V3", 0x01, 0x81, 0x82, 512, 512, "v3", 10, 7,
                  default_swim=1, default_bridge=3, max_power_ma=500),
    "V3E": Variant("V3E", 0x374E, 3, "STLINK-V3", 0x01, 0x81, 0x82, 512, 512, "v3e", 10, 7,
                   default_swim=1, default_bridge=3, max_power_ma=500),
}


def _endpoint(address: int, attributes: int, size: int, interval: int = 0) -> bytes:
    return struct.pack("<BBBBHB", 7, _DESC_ENDPOINT, address, attributes, size, interval)


def _interface(number: int, endpoints: int, cls: int, subclass: int, protocol: int,
               string: int) -> bytes:
    return struct.pack("<9B", 9, _DESC_INTERFACE, number, 0, endpoints, cls, subclass, protocol,
                       string)


def _debug_interface(v: Variant, string: int) -> bytes:
    return (_interface(0, 3, 0xFF, 0xFF, 0xFF, string)
            + _endpoint(v.in_ep, _BULK, v.max_packet)
            + _endpoint(v.out_ep, _BULK, v.max_packet)
            + _endpoint(v.swv_ep, _BULK, v.swv_packet))


def _vcp_interfaces(v: Variant, ctrl_string: int, data_string: int) -> bytes:
    """Interface association + CDC-ACM control (2) + CDC data (3), as the dumps show them."""
    hs = v.high_speed
    iad = struct.pack("<8B", 8, _DESC_IAD, 2, 2, 0x02, 0x02, 0x01, ctrl_string)
    functional = (bytes([5, _CS_INTERFACE, 0x00, 0x10, 0x01])     # header, bcdCDC 1.10
                  + bytes([5, _CS_INTERFACE, 0x01, 0x00, 0x03])   # call management, data if 3
                  + bytes([4, _CS_INTERFACE, 0x02, 0x06])         # ACM: break, line coding
                  + bytes([5, _CS_INTERFACE, 0x06, 0x02, 0x03]))  # union: 2 master, 3 slave
    notify = _endpoint(0x84, _INTERRUPT, 10 if hs else 2, 16 if hs else 255)
    ctrl = _interface(2, 1, 0x02, 0x02, 0x01, ctrl_string) + functional + notify
    data = (_interface(3, 2, 0x0A, 0x00, 0x00, data_string)
            + _endpoint(0x05, _BULK, 512 if hs else 8)
            + _endpoint(0x85, _BULK, 512 if hs else 16))
    return iad + ctrl + data


def _msd_interface(v: Variant, string: int) -> bytes:
    return (_interface(1, 2, 0x08, 0x06, 0x50, string)
            + _endpoint(0x83, _BULK, v.max_packet)
            + _endpoint(0x03, _BULK, v.max_packet))


def _bridge_interface(string: int) -> bytes:
    return (_interface(4, 2, 0xFF, 0xFF, 0xFF, string)
            + _endpoint(0x86, _BULK, 512) + _endpoint(0x06, _BULK, 512))


def strings_for(v: Variant, serial_string: str) -> dict[int, str]:
    """String descriptor table by index (0, the LANGID list, is handled separately)."""
    table = {1: MANUFACTURER, 2: v.product, 3: serial_string}
    if v.layout == "v2":
        table[4] = "ST Link"
    elif v.layout == "v2-1":
        table.update({4: "ST-Link Debug", 5: "ST-Link mass storage", 6: "ST-Link VCP Ctrl",
                      7: "ST-Link VCP Data"})
    else:
        table.update({4: "Default Config", 5: "ST-Link Debug", 6: "ST-Link mass storage",
                      7: "ST-Link VCP Ctrl", 8: "ST-Link VCP Data"})
        if v.layout == "v3":
            table[9] = "ST-Link Bridge"
    return table


def device_descriptor(v: Variant) -> bytes:
    """18 bytes; V2-1 and V3 declare the interface-association class triple (EF/02/01)."""
    cls = (0, 0, 0) if v.layout == "v2" else (0xEF, 0x02, 0x01)
    return struct.pack("<BBHBBBBHHHBBBB", 18, _DESC_DEVICE, 0x0200, *cls, 64, VID_ST, v.pid,
                       0x0100, 1, 2, 3, 1)


def config_descriptor(v: Variant) -> bytes:
    """The full configuration (wTotalLength bytes): 39 on V2, 128 on V2-1/V3E, 151 on V3."""
    if v.layout == "v2":
        body, interfaces, config_string = _debug_interface(v, 4), 1, 0
    elif v.layout == "v2-1":
        body = _debug_interface(v, 4) + _msd_interface(v, 5) + _vcp_interfaces(v, 6, 7)
        interfaces, config_string = 4, 0
    else:
        body = _debug_interface(v, 5) + _msd_interface(v, 6) + _vcp_interfaces(v, 7, 8)
        interfaces, config_string = 4, 4
        if v.layout == "v3":
            body += _bridge_interface(9)
            interfaces = 5
    header = struct.pack("<BBHBBBBB", 9, _DESC_CONFIG, 9 + len(body), interfaces, 1,
                         config_string, 0x80, v.max_power_ma // 2)
    return header + body


def string_descriptor(table: dict[int, str], index: int) -> bytes | None:
    """Descriptor bytes for ``index``, or None when the device would STALL the request."""
    if index == 0:
        return struct.pack("<BBH", 4, _DESC_STRING, LANGID_EN_US)
    text = table.get(index)
    if text is None:
        return None
    # Each character is one UTF-16 unit; the old-V2 serial's raw bytes are chars U+0000..U+00FF,
    # which is exactly how that firmware sends them (low byte = raw byte, high byte 0).
    payload = text.encode("utf-16-le")
    return bytes([2 + len(payload), _DESC_STRING]) + payload


def decode_serial(serial_string: str) -> str:
    """What hosts display: pyOCD, OpenOCD and stlink hex-encode a 12-unit serial (length rule)."""
    if len(serial_string) == 12:
        return "".join(f"{ord(ch) & 0xFF:02X}" for ch in serial_string)
    return serial_string
