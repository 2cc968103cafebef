"""The seam between the ST-Link driver and whatever carries its bytes.

One driver (``transport.stlink``) runs over every backend: libusb1 for real probes, the
in-process simulator, and stlink-server over TCP. A backend enumerates probes and opens a
``ProbeLink``: the probe's bulk OUT and IN endpoints, nothing more; a link that can only carry
whole commands (stlink-server) also offers ``transact`` (see ``CommandLink``), which the driver
then uses instead. Backends raise only the errors
of ``transport.errors`` (UsbTimeout, UsbStall, ProbeGone...), never their library's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

STLINK_VID = 0x0483


@dataclass(frozen=True)
class ProbeInfo:
    """What enumeration tells about one probe, before it is opened."""

    serial: str            # decoded serial (V2's 12 raw bytes hex-encoded, upper case)
    vid: int
    pid: int
    variant: str           # "V2", "V2-1", "V3E", "V3S", ... from the PID table
    port_path: str         # physical position: "1-1.4.2" on USB, "sim:3" for simulated probes
    backend: str           # "usb", "sim", "tcp"
    max_packet: int        # wMaxPacketSize of the IN endpoint (64 full speed, 512 high speed)
    in_ep: int = 0x81
    out_ep: int = 0x01
    max_transfer: int = 0  # cap on one memory transfer in bytes; 0: the probe's own limits only
                           # (an stlink-server with API < 2 caps transfers at 1 KiB)

    @property
    def is_v3(self) -> bool:
        return self.variant.startswith("V3")


@runtime_checkable
class ProbeLink(Protocol):
    """An opened probe: its two bulk endpoints. Not safe for concurrent commands: the driver
    serialises them."""

    info: ProbeInfo

    async def write(self, data: bytes, timeout: float) -> None:
        """Send ``data`` on the OUT endpoint (one bulk transfer)."""

    async def read(self, size: int, timeout: float) -> bytes:
        """One bulk IN transfer of up to ``size`` bytes."""

    async def reset(self) -> None:
        """Reset the probe's USB port (recovering a wedged probe)."""

    async def aclose(self) -> None:
        """Release the interface; pending transfers are cancelled."""


@runtime_checkable
class CommandLink(ProbeLink, Protocol):
    """A link that carries whole commands in one round trip (stlink-server's SEND_USB_CMD)."""

    async def transact(self, cmd: bytes, data: bytes | None, reply: int, timeout: float) -> bytes:
        """Send the 16-byte block ``cmd`` and, for a write command, ``data``; else read exactly
        ``reply`` bytes (0: the command answers nothing). Returns the reply."""


@runtime_checkable
class Backend(Protocol):
    """A source of probes."""

    name: str

    async def enumerate(self) -> list[ProbeInfo]:
        """Every ST-Link present now."""

    async def open(self, info: ProbeInfo) -> ProbeLink:
        """Claim the probe's debug interface."""

    async def aclose(self) -> None:
        """Stop event handling and free the backend."""
