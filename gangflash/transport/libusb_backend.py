"""Real ST-Link probes through libusb (python-libusb1 over the libusb shipped by libusb-package).

Pieces, one file each:

* ``libusb_events``: loading libusb, and ``LibusbContext``, one libusb context plus the single
  thread handling its events (why a thread and not pollfds on the loop is explained there).
* ``libusb_scan``: enumeration (fresh context per scan, port paths, serials and their cache).
* ``libusb_link``: ``LibusbLink``, an opened probe; bulk I/O through libusb's asynchronous
  transfers, cancellation, error mapping.
* this module: ``LibusbBackend`` (enumerate, open, watch hot-plug, close) and ``HotplugEvent``.

Usage::

    backend = LibusbBackend()
    try:
        probes = await backend.enumerate()        # [] when there is no USB (or no libusb)
        link = await backend.open(probes[0])      # claims interface 0
        await link.write(block, timeout=1.0)
        reply = await link.read(64, timeout=1.0)
        await link.aclose()
    finally:
        await backend.aclose()

Enumeration
    Every scan uses a fresh, short-lived libusb context (see ``libusb_scan``), so it shows the
    bus as it is now even where a long-lived context's device list goes stale.

Opening
    Opened probes live on a long-lived I/O context with one event thread. ``open`` finds the probe
    by port path and product ID and checks its serial; if that context's device list is stale
    (the probe is missing from it, or its node has gone), a new I/O context replaces it for new
    opens, and the old one is closed once its last link is. So there is one event thread in the
    normal case, never one per probe.

Hot-plug
    ``watch()`` is an async iterator of ``HotplugEvent`` (``ARRIVED`` / ``LEFT``) diffing
    successive scans. It rescans at once when libusb reports a hot-plug event (where libusb
    supports hot-plug: Linux, macOS) and otherwise every ``poll_interval`` seconds, which also
    catches what a deaf hot-plug monitor misses. Close it when done (``contextlib.aclosing``).

Errors are only those of ``transport.errors``: ProbeNotFound (not present any more),
ProbeBusy (claimed by another program, or no permission: the message names the udev fix),
ProbeGone, UsbTimeout, UsbStall, TransportError. Real time only: never run under a virtual clock.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import usb1

from .backend import ProbeInfo
from .errors import ProbeBusy, ProbeGone, ProbeNotFound, TransportError
from .libusb_events import LibusbContext, load_libusb
from .libusb_link import LibusbLink
from .libusb_scan import ACCESS_HINT, ProbeScanner, port_path
from .variants import DEBUG_INTERFACE, STLINK_VID

log = logging.getLogger(__name__)

SETTLE_AFTER_HOTPLUG = 0.05     # s: let the OS finish setting up a new node before rescanning

BUSY_HINT = (
    "the probe's debug interface is claimed by another program (OpenOCD, st-util, "
    "STM32CubeProgrammer, pyOCD or another gangflash?); close it and retry"
)


class HotplugKind(enum.Enum):
    """What happened to a probe."""

    ARRIVED = "arrived"
    LEFT = "left"


@dataclass(frozen=True)
class HotplugEvent:
    """A probe appeared on or disappeared from the bus. ``probe`` is what enumeration said about
    it (for LEFT: when it was last seen)."""

    kind: HotplugKind
    probe: ProbeInfo


class _StaleDeviceList(Exception):
    """The I/O context does not know the probe (any more): its device list is stale."""


def _probe_key(info: ProbeInfo) -> tuple[str, str, int]:
    return (info.port_path, info.serial, info.pid)


class LibusbBackend:
    """The ``Backend`` for ST-Links on USB (every variant of ``transport.variants``)."""

    name = "usb"

    def __init__(self, *, interface: int = DEBUG_INTERFACE) -> None:
        self._interface = interface
        self._io: LibusbContext | None = None           # where new probes are opened
        self._contexts: list[LibusbContext] = []        # every open I/O context (current last)
        self._io_lock = anyio.Lock()
        self._links: set[LibusbLink] = set()
        self._scanner = ProbeScanner(self.name)
        self._closed = False

    # --- enumeration ----------------------------------------------------------------------------
    async def enumerate(self) -> list[ProbeInfo]:
        """Every ST-Link on the bus now, sorted by port path. [] (logged at debug level) when
        libusb cannot be loaded or initialised, e.g. on a machine without USB."""
        self._check_open()
        return await anyio.to_thread.run_sync(self._scanner.scan)

    # --- opening --------------------------------------------------------------------------------
    async def open(self, info: ProbeInfo) -> LibusbLink:
        """Open and claim the probe's debug interface. ProbeNotFound if it is not there (any
        more), ProbeBusy if another program holds it or permissions forbid it.

        Opens run one at a time (a few milliseconds each), so no context is retired while a
        probe is being opened on it.
        """
        self._check_open()
        if info.backend != self.name:
            raise ProbeNotFound(f"not a USB probe (backend {info.backend!r})", serial=info.serial)
        loop = asyncio.get_running_loop()
        async with self._io_lock:
            ctx = self._io or await self._new_context()
            try:
                handle = await anyio.to_thread.run_sync(self._open_sync, ctx, info)
            except _StaleDeviceList:
                log.debug("%s is not in the I/O context's device list: trying a fresh context",
                          info.port_path)
                handle, ctx = await self._open_on_fresh_context(info)
            link = LibusbLink(info, handle, ctx, self._interface, loop, self._forget)
            ctx.links.add(link)
            self._links.add(link)
        log.info("opened ST-Link %s %s at %s", info.variant, info.serial, info.port_path)
        return link

    async def _open_on_fresh_context(self, info: ProbeInfo
                                     ) -> tuple[usb1.USBDeviceHandle, LibusbContext]:
        """The current context's device list is stale, or the probe is gone: look on a new
        context. If the probe is there, that context becomes current and the old one closes once
        it has no links; if not, the new one is dropped again. Called under ``_io_lock``."""
        ctx = await self._new_context()
        try:
            handle = await anyio.to_thread.run_sync(self._open_sync, ctx, info)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._close_context(ctx)
            if isinstance(exc, _StaleDeviceList):
                raise ProbeNotFound(f"no ST-Link at {info.port_path}",
                                    serial=info.serial) from None
            raise
        old, self._io = self._io, ctx
        if old is not None and not old.links:
            await self._close_context(old)
        return handle, ctx

    def _open_sync(self, ctx: LibusbContext, info: ProbeInfo) -> usb1.USBDeviceHandle:
        """Worker thread: find the device in ``ctx``, open it, check its serial, claim it."""
        for device in ctx.usb.getDeviceIterator(skip_on_error=True):
            if (device.getVendorID(), device.getProductID()) == (info.vid, info.pid) \
                    and port_path(device) == info.port_path:
                break
        else:
            raise _StaleDeviceList
        try:
            handle = device.open()
        except usb1.USBErrorAccess as exc:
            raise ProbeBusy(ACCESS_HINT, serial=info.serial) from exc
        except usb1.USBErrorBusy as exc:
            raise ProbeBusy(BUSY_HINT, serial=info.serial) from exc
        except (usb1.USBErrorNoDevice, usb1.USBErrorNotFound) as exc:
            raise _StaleDeviceList from exc
        except usb1.USBError as exc:
            raise TransportError(f"cannot open the probe: {exc}", serial=info.serial) from exc
        try:
            serial = self._scanner.serial(device, info.port_path)
            if info.serial and serial and serial != info.serial:
                raise ProbeNotFound(f"the probe at {info.port_path} is now {serial}",
                                    serial=info.serial)
            handle.claimInterface(self._interface)
        except (usb1.USBErrorBusy, usb1.USBErrorAccess) as exc:
            handle.close()
            raise ProbeBusy(BUSY_HINT if isinstance(exc, usb1.USBErrorBusy) else ACCESS_HINT,
                            serial=info.serial) from exc
        except (usb1.USBErrorNoDevice, usb1.USBErrorNotFound) as exc:
            handle.close()
            raise ProbeGone("probe vanished while being opened", serial=info.serial) from exc
        except usb1.USBError as exc:
            handle.close()
            raise TransportError(f"cannot claim the debug interface: {exc}",
                                 serial=info.serial) from exc
        except BaseException:
            handle.close()
            raise
        return handle

    async def _new_context(self) -> LibusbContext:
        """Start a libusb context and its event thread; the first becomes current."""
        try:
            ctx = await anyio.to_thread.run_sync(LibusbContext.open, "gangflash-usb")
        except (OSError, usb1.USBError) as exc:
            raise ProbeNotFound(f"libusb is not available: {exc}") from exc
        self._contexts.append(ctx)
        if self._io is None:
            self._io = ctx
        return ctx

    async def _forget(self, link: LibusbLink) -> None:
        """Called by a link once closed: drop it; close its context if retired and now empty."""
        self._links.discard(link)
        ctx = link.context
        ctx.links.discard(link)
        if ctx is not self._io and not ctx.links:
            await self._close_context(ctx)

    async def _close_context(self, ctx: LibusbContext) -> None:
        """Stop a context's thread and free it; the first caller does it, later ones return."""
        if ctx not in self._contexts:
            return
        self._contexts.remove(ctx)
        if self._io is ctx:
            self._io = None
        await anyio.to_thread.run_sync(ctx.close)

    # --- hot-plug -------------------------------------------------------------------------------
    async def watch(self, *, poll_interval: float = 1.0,
                    initial: bool = True) -> AsyncIterator[HotplugEvent]:
        """Probes arriving and leaving, as they happen, until the backend is closed.

        The first scan yields ARRIVED for every probe already present when ``initial``. Then
        each rescan (on a libusb hot-plug event, else every ``poll_interval`` s) yields LEFT
        for probes gone, then ARRIVED for new ones. A probe counts as new when its port, serial
        or PID changes. Wrap in ``contextlib.aclosing`` to deregister promptly when done.
        """
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        registration = await self._register_hotplug(loop, wake)
        try:
            known: dict[tuple[str, str, int], ProbeInfo] = {}
            first = True
            while not self._closed:
                current = {_probe_key(p): p for p in await self.enumerate()}
                if not first or initial:
                    for key in known.keys() - current.keys():
                        yield HotplugEvent(HotplugKind.LEFT, known[key])
                    for key in sorted(current.keys() - known.keys()):
                        yield HotplugEvent(HotplugKind.ARRIVED, current[key])
                known, first = current, False
                with anyio.move_on_after(poll_interval):
                    await wake.wait()
                if wake.is_set():
                    await anyio.sleep(SETTLE_AFTER_HOTPLUG)     # and coalesce a burst
                    wake.clear()
        finally:
            if registration is not None:
                ctx, handle = registration
                if not ctx.closed:
                    ctx.usb.hotplugDeregisterCallback(handle)

    async def _register_hotplug(self, loop: asyncio.AbstractEventLoop, wake: asyncio.Event
                                ) -> tuple[LibusbContext, int] | None:
        """Ask libusb to set ``wake`` on every ST-Link hot-plug event; None where unsupported."""
        if not load_libusb() or not usb1.hasCapability(usb1.CAP_HAS_HOTPLUG):
            log.debug("libusb has no hot-plug support here: polling only")
            return None
        try:
            async with self._io_lock:
                ctx = self._io or await self._new_context()
        except ProbeNotFound:
            return None

        def on_hotplug(_context: usb1.USBContext, _device: usb1.USBDevice, _event: int) -> bool:
            # Event thread, inside libusb's event handling: no libusb calls, just wake the scan.
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:
                pass    # loop closed
            return False    # stay registered

        handle = ctx.usb.hotplugRegisterCallback(
            on_hotplug, events=usb1.HOTPLUG_EVENT_DEVICE_ARRIVED | usb1.HOTPLUG_EVENT_DEVICE_LEFT,
            flags=0, vendor_id=STLINK_VID)
        return ctx, handle

    # --- lifetime -------------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Close every link opened here, then stop the event threads. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            for link in list(self._links):
                await link.aclose()
            self._io = None
            for ctx in list(self._contexts):
                await self._close_context(ctx)

    def _check_open(self) -> None:
        if self._closed:
            raise TransportError("the USB backend is closed")

