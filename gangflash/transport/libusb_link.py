"""One opened ST-Link over libusb: its bulk endpoints, driven by libusb's asynchronous API.

Each ``write``/``read`` submits one ``USBTransfer`` and awaits an asyncio future. The transfer's
callback runs on the context's event thread (see ``libusb_events``); it copies the result and
hands it to the loop with ``call_soon_threadsafe``. All bookkeeping (which transfers are in
flight, which are free for reuse) happens on the loop thread, so it needs no lock.

Rules this module keeps, because python-libusb1 punishes breaking them:

* A cancelled call cancels its transfer and waits (shielded, bounded) for libusb's CANCELLED
  callback before the CancelledError propagates, so the transfer is never resubmitted while
  still in flight, and the link stays usable for the next command. Bytes that arrived in the
  same instant are dropped: after a cancelled read the driver must resynchronise.
* Closing cancels what is in flight, waits for it, then dooms every transfer before the handle
  is closed. Resubmitting a transfer after its handle closed aborts the whole process (libusb
  asserts on freed memory), so nothing is ever submitted once ``aclose`` has begun.
* Only ``transport.errors`` types escape: TIMED_OUT -> UsbTimeout, STALL -> UsbStall (after
  clearing the halt), NO_DEVICE -> ProbeGone, anything else -> TransportError.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING

import anyio
import usb1

from .backend import ProbeInfo
from .errors import ProbeGone, TransportError, UsbStall, UsbTimeout

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from .libusb_events import LibusbContext

log = logging.getLogger(__name__)

CANCEL_GRACE = 1.0      # s to wait for libusb's CANCELLED callback (normally well under 1 ms)
CLOSE_TIMEOUT = 5.0     # s to wait for in-flight transfers to come back when closing

_STATUS_NAMES = {
    usb1.TRANSFER_COMPLETED: "completed",
    usb1.TRANSFER_ERROR: "error",
    usb1.TRANSFER_TIMED_OUT: "timed out",
    usb1.TRANSFER_CANCELLED: "cancelled",
    usb1.TRANSFER_STALL: "stall",
    usb1.TRANSFER_NO_DEVICE: "no device",
    usb1.TRANSFER_OVERFLOW: "overflow",
}


def libusb_timeout_ms(timeout: float | None) -> int:
    """Seconds to libusb milliseconds. None or infinity means no timeout (libusb's 0); anything
    else is rounded up, so a positive timeout never becomes "wait forever"."""
    if timeout is None or math.isinf(timeout):
        return 0
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    return max(1, math.ceil(timeout * 1000))


class _Flight:
    """One submitted transfer and the future its completion resolves."""

    __slots__ = ("transfer", "future", "endpoint")

    def __init__(self, transfer: usb1.USBTransfer, future: asyncio.Future, endpoint: int) -> None:
        self.transfer = transfer
        self.future = future
        self.endpoint = endpoint


class LibusbLink:
    """A ProbeLink over libusb. Created by ``LibusbBackend.open``; not safe for concurrent
    commands (the driver serialises them), but concurrent calls do not corrupt its state."""

    def __init__(self, info: ProbeInfo, handle: usb1.USBDeviceHandle, context: LibusbContext,
                 interface: int, loop: asyncio.AbstractEventLoop,
                 on_closed: Callable[[LibusbLink], Awaitable[None]] | None = None) -> None:
        self.info = info
        self.context = context
        self._handle = handle
        self._interface = interface
        self._loop = loop
        self._on_closed = on_closed
        # Every transfer of this link is either idle (reusable) or in flight. A command needs one
        # OUT and one IN, so a link rarely holds more than two.
        self._idle: list[usb1.USBTransfer] = []
        self._flights: dict[usb1.USBTransfer, _Flight] = {}
        # Held around blocking calls on the handle in worker threads (clear halt, reset, close),
        # so the handle is never closed under one of them.
        self._handle_lock = anyio.Lock()
        self._closing = False
        self._closed = asyncio.Event()
        self._gone = False

    def __repr__(self) -> str:
        return f"<LibusbLink {self.info.serial} at {self.info.port_path}>"

    # --- ProbeLink ------------------------------------------------------------------------------
    async def write(self, data: bytes, timeout: float) -> None:
        """One bulk OUT transfer of ``data``."""
        ep = self.info.out_ep
        status, actual, _ = await self._transfer(ep, bytes(data), timeout)
        await self._check(status, ep)
        if actual != len(data):
            raise TransportError(f"short write on 0x{ep:02X}: {actual} of {len(data)} bytes",
                                 serial=self.info.serial)

    async def read(self, size: int, timeout: float) -> bytes:
        """One bulk IN transfer of up to ``size`` bytes.

        The buffer is rounded up to whole packets (a buffer ending inside a packet overflows on
        real USB if the probe sends more); a transfer ends at the first short packet, so this
        never makes a well-behaved reply wait. Bytes beyond ``size`` are dropped.
        """
        if size <= 0:
            raise ValueError(f"read size must be positive, got {size}")
        ep = self.info.in_ep
        mp = self.info.max_packet or 64
        status, actual, data = await self._transfer(ep, -(-size // mp) * mp, timeout)
        await self._check(status, ep)
        if actual > size:
            log.debug("%s: IN 0x%02X returned %d bytes, %d asked; dropping the rest",
                      self.info.serial, ep, actual, size)
        return data[:size]

    async def reset(self) -> None:
        """USB port reset. libusb re-claims the interface afterwards; if the probe re-enumerates
        instead, this raises ProbeGone and the probe must be found and opened again."""
        self._check_usable()
        with anyio.move_on_after(CLOSE_TIMEOUT):
            await self._cancel_all()
        try:
            async with self._handle_lock:
                await anyio.to_thread.run_sync(self._handle.resetDevice)
        except (usb1.USBErrorNotFound, usb1.USBErrorNoDevice) as exc:
            self._gone = True
            raise ProbeGone(f"probe re-enumerated or vanished during USB reset ({exc})",
                            serial=self.info.serial) from exc
        except usb1.USBError as exc:
            raise TransportError(f"USB reset failed: {exc}", serial=self.info.serial) from exc
        log.info("%s: USB port reset", self.info.serial)

    async def aclose(self) -> None:
        """Cancel and collect in-flight transfers, release the interface, close the handle.
        Idempotent; concurrent callers all wait for the one close."""
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        try:
            with anyio.CancelScope(shield=True):
                with anyio.move_on_after(CLOSE_TIMEOUT):
                    await self._cancel_all()
                if self._flights:
                    log.warning("%s: %d transfers did not come back; closing anyway",
                                self.info.serial, len(self._flights))
                for transfer in [*self._idle, *self._flights]:
                    transfer.doom()     # from here on, nothing can be resubmitted
                self._idle.clear()
                async with self._handle_lock:
                    await anyio.to_thread.run_sync(self._close_handle)
        finally:
            self._closed.set()
            if self._on_closed is not None:
                with anyio.CancelScope(shield=True):
                    await self._on_closed(self)

    @property
    def closed(self) -> bool:
        """True once ``aclose`` has begun: no transfer is submitted any more."""
        return self._closing

    # --- transfers ------------------------------------------------------------------------------
    async def _transfer(self, endpoint: int, data_or_size: bytes | int,
                        timeout: float) -> tuple[int, int, bytes]:
        """Submit one bulk transfer and await (status, actual_length, IN data)."""
        self._check_usable()
        timeout_ms = libusb_timeout_ms(timeout)
        transfer = self._idle.pop() if self._idle else self._handle.getTransfer()
        future = self._loop.create_future()
        transfer.setBulk(endpoint, data_or_size, callback=self._on_done_threaded,
                         timeout=timeout_ms)
        try:
            transfer.submit()
        except usb1.USBError as exc:
            self._release(transfer)
            raise self._submit_error(exc, endpoint) from exc
        flight = _Flight(transfer, future, endpoint)
        self._flights[transfer] = flight
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            await self._cancel_and_wait(flight)
            raise

    def _release(self, transfer: usb1.USBTransfer) -> None:
        """Back to the idle list, unless closing (then it is doomed with the rest)."""
        if not self._closing:
            self._idle.append(transfer)

    def _on_done_threaded(self, transfer: usb1.USBTransfer) -> None:
        """libusb completion callback, on the event thread: copy the result, hop to the loop.
        Must not raise (ctypes would only print the exception) and must not block."""
        try:
            status = transfer.getStatus()
            actual = transfer.getActualLength()
            data = b""
            if transfer.getEndpoint() & usb1.ENDPOINT_IN and actual:
                data = bytes(transfer.getBuffer()[:actual])
            self._loop.call_soon_threadsafe(self._on_done, transfer, status, actual, data)
        except RuntimeError:
            log.debug("%s: transfer completed after its event loop closed", self.info.serial)
        except Exception:
            log.exception("%s: error in the transfer callback", self.info.serial)

    def _on_done(self, transfer: usb1.USBTransfer, status: int, actual: int, data: bytes) -> None:
        """On the loop: the transfer is no longer in flight."""
        flight = self._flights.pop(transfer, None)
        self._release(transfer)
        if status == usb1.TRANSFER_NO_DEVICE:
            self._gone = True
        if flight is not None and not flight.future.done():
            flight.future.set_result((status, actual, data))

    async def _cancel_and_wait(self, flight: _Flight) -> None:
        """Cancel a transfer whose caller was cancelled; wait for libusb to give it back."""
        if flight.transfer not in self._flights:
            return
        self._cancel_transfer(flight.transfer)
        try:
            with anyio.CancelScope(shield=True):
                with anyio.move_on_after(CANCEL_GRACE) as scope:
                    await asyncio.shield(flight.future)
            if scope.cancelled_caught:
                log.warning("%s: cancelled transfer on 0x%02X not returned within %.1f s",
                            self.info.serial, flight.endpoint, CANCEL_GRACE)
        except asyncio.CancelledError:  # a plain asyncio cancel ignores anyio's shield
            pass

    def _cancel_transfer(self, transfer: usb1.USBTransfer) -> None:
        try:
            transfer.cancel()
        except (usb1.USBErrorNotFound, usb1.USBErrorNoDevice):
            pass    # already completed, or the device left: the callback is on its way
        except usb1.USBError as exc:
            log.debug("%s: cancelling a transfer failed: %s", self.info.serial, exc)

    async def _cancel_all(self) -> None:
        flights = list(self._flights.values())
        for flight in flights:
            self._cancel_transfer(flight.transfer)
        for flight in flights:
            await asyncio.shield(flight.future)

    def _close_handle(self) -> None:
        """Worker thread: release the interface and close the handle (libusb_close takes the
        event lock, so it waits briefly for the event thread)."""
        try:
            self._handle.releaseInterface(self._interface)
        except usb1.USBError as exc:
            log.debug("%s: release interface: %s", self.info.serial, exc)
        try:
            self._handle.close()
        except usb1.USBError as exc:
            log.debug("%s: close: %s", self.info.serial, exc)
        log.debug("%s: closed", self.info.serial)

    # --- errors ---------------------------------------------------------------------------------
    def _check_usable(self) -> None:
        if self._closing:
            raise TransportError("link is closed", serial=self.info.serial)
        if self._gone:
            raise ProbeGone("probe is gone", serial=self.info.serial)

    async def _check(self, status: int, endpoint: int) -> None:
        """Raise the transport error for a completed transfer's status."""
        if status == usb1.TRANSFER_COMPLETED:
            return
        serial = self.info.serial
        where = f"bulk {'IN' if endpoint & usb1.ENDPOINT_IN else 'OUT'} 0x{endpoint:02X}"
        if status == usb1.TRANSFER_TIMED_OUT:
            raise UsbTimeout(f"{where} timed out", serial=serial)
        if status == usb1.TRANSFER_STALL:
            await self._clear_halt(endpoint)
            raise UsbStall(f"{where} stalled", serial=serial)
        if status == usb1.TRANSFER_NO_DEVICE:
            self._gone = True
            raise ProbeGone(f"{where}: no device", serial=serial)
        if status == usb1.TRANSFER_OVERFLOW:
            raise TransportError(f"{where} overflowed: the probe sent more than the buffer holds",
                                 serial=serial)
        if status == usb1.TRANSFER_CANCELLED and self._closing:
            raise TransportError(f"{where} cancelled: link closed", serial=serial)
        raise TransportError(f"{where} failed: {_STATUS_NAMES.get(status, status)}", serial=serial)

    def _submit_error(self, exc: usb1.USBError, endpoint: int) -> TransportError:
        where = f"submitting bulk 0x{endpoint:02X}"
        if isinstance(exc, usb1.USBErrorNoDevice):
            self._gone = True
            return ProbeGone(f"{where}: no device", serial=self.info.serial)
        if isinstance(exc, usb1.USBErrorBusy):
            return TransportError(f"{where}: endpoint busy", serial=self.info.serial)
        return TransportError(f"{where} failed: {exc}", serial=self.info.serial)

    async def _clear_halt(self, endpoint: int) -> None:
        """After a STALL the endpoint stays halted until cleared; clear it so the next transfer
        can run. Best effort: a failure only leaves the next transfer stalling too."""
        try:
            async with self._handle_lock:
                if self._closing or self._gone:
                    return
                await anyio.to_thread.run_sync(self._handle.clearHalt, endpoint)
        except usb1.USBError as exc:
            log.debug("%s: clear halt on 0x%02X: %s", self.info.serial, endpoint, exc)
