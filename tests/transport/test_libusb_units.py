"""libusb backend pieces that need no fake bus: behaviour without USB, and small conversions."""

from __future__ import annotations

from pathlib import Path

import pytest
import usb1

from gangflash.transport import libusb_scan
from gangflash.transport.backend import ProbeInfo
from gangflash.transport.libusb_backend import LibusbBackend
from gangflash.transport.libusb_link import libusb_timeout_ms
from gangflash.transport.libusb_scan import port_path


@pytest.mark.asyncio
async def test_enumerate_on_this_machine_returns_a_list_without_raising():
    backend = LibusbBackend()
    try:
        probes = await backend.enumerate()
    finally:
        await backend.aclose()
    if not Path("/sys/bus/usb").exists():      # no USB bus at all (the dev VM, CI)
        assert probes == []
    assert all(isinstance(p, ProbeInfo) for p in probes)


@pytest.mark.asyncio
async def test_enumerate_returns_nothing_when_libusb_cannot_initialise(monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise usb1.USBErrorOther

    monkeypatch.setattr(libusb_scan.usb1, "USBContext", refuse)
    backend = LibusbBackend()
    caplog.set_level("DEBUG", logger="gangflash.transport.libusb_scan")
    assert await backend.enumerate() == []
    assert "cannot enumerate" in caplog.text
    await backend.aclose()


@pytest.mark.asyncio
async def test_enumerate_returns_nothing_when_libusb_cannot_be_loaded(monkeypatch):
    monkeypatch.setattr(libusb_scan, "load_libusb", lambda: False)
    backend = LibusbBackend()
    assert await backend.enumerate() == []
    await backend.aclose()


def test_timeouts_round_up_to_whole_milliseconds_and_never_mean_forever():
    assert libusb_timeout_ms(1.0) == 1000
    assert libusb_timeout_ms(0.0001) == 1
    assert libusb_timeout_ms(0.0051) == 6
    assert libusb_timeout_ms(float("inf")) == 0
    assert libusb_timeout_ms(None) == 0
    with pytest.raises(ValueError):
        libusb_timeout_ms(0)


class _Device:
    def __init__(self, bus: int, ports: list[int], address: int = 7) -> None:
        self.bus, self.ports, self.address = bus, ports, address

    def getBusNumber(self) -> int:  # noqa: N802 (python-libusb1's names)
        return self.bus

    def getPortNumberList(self) -> list[int]:  # noqa: N802
        return self.ports

    def getDeviceAddress(self) -> int:  # noqa: N802
        return self.address


def test_port_path_names_the_hub_chain_like_linux_sysfs():
    assert port_path(_Device(1, [1])) == "1-1"
    assert port_path(_Device(3, [1, 4, 2])) == "3-1.4.2"
    assert port_path(_Device(2, [], address=9)) == "2@9"
