"""Typed transport errors. Each carries the probe serial and, where known, the command and address,
so the layer above can say which probe failed doing what."""

from __future__ import annotations


class TransportError(Exception):
    """Something between the host and a probe failed."""

    def __init__(self, message: str, *, serial: str | None = None, command: str | None = None,
                 address: int | None = None) -> None:
        self.serial = serial
        self.command = command
        self.address = address
        context = []
        if serial:
            context.append(f"probe {serial}")
        if command:
            context.append(command)
        if address is not None:
            context.append(f"at 0x{address:08X}")
        super().__init__(f"{message} ({', '.join(context)})" if context else message)
        self.detail = message


class UsbTimeout(TransportError):
    """A bulk transfer did not complete in time."""


class UsbStall(TransportError):
    """The probe answered a bulk transfer with STALL."""


class ProbeGone(TransportError):
    """The probe disappeared from the bus (unplugged, reset, powered off)."""


class ProbeNotFound(TransportError):
    """No probe with the requested serial / port path is present."""


class ProbeBusy(TransportError):
    """The probe is open by another process or client."""
