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
        self.detail = message
        super().__init__(self._text())

    def _text(self) -> str:
        context = []
        if self.serial:
            context.append(f"probe {self.serial}")
        if self.command:
            context.append(self.command)
        if self.address is not None:
            context.append(f"at 0x{self.address:08X}")
        return f"{self.detail} ({', '.join(context)})" if context else self.detail

    def add_context(self, *, serial: str | None = None, command: str | None = None,
                    address: int | None = None) -> None:
        """Fill in what a lower layer could not know (which command, which probe); what the
        error already says is kept."""
        self.serial = self.serial or serial
        self.command = self.command or command
        self.address = self.address if self.address is not None else address
        self.args = (self._text(),)


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
