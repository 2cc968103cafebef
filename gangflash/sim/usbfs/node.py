"""One usbfs device node answered from Python: every ioctl a libusb program sends to the node of
a simulated probe is handled here, against that probe's USB face (``SimProbe``: ``bulk_out``,
``bulk_in``, descriptors, ``usb_reset``, ``unplug``).

Facts this follows are in ``shared/reference/usb-testing.md`` (measured with libusb 1.0.26 and
1.0.30): struct layouts, ioctl numbers, status codes, and the FIFO trick. In short:

* SUBMITURB: OUT data goes to the probe at once and the URB completes (or parks, if the probe
  loses it); IN URBs park until the probe has a reply; control URBs (string descriptors)
  complete from the probe's descriptors.
* REAPURBNDELAY hands back one completion (EAGAIN when none, ENODEV after unplug).
* DISCARDURB completes a parked URB with -ECONNRESET (libusb reports CANCELLED or TIMED_OUT).
* Readiness: the node is a FIFO kept full (not writable) while no completion is waiting, and
  made writable (one page read out) while one is: usbfs signals a reapable URB with POLLOUT, so
  libusb's event loop sleeps when idle instead of spinning on a regular file (a tool waiting on
  the probe costs no CPU).

Handlers run on umockdev's worker thread; tests inject faults from their own thread, so all
state is under one lock. Every ioctl is completed, exceptions included (an uncompleted ioctl
blocks the libusb thread forever). With a ``TransferClock`` each served transfer advances the
board's virtual clock (see ``clocking``); without one the probe keeps whatever clock it has.
"""

from __future__ import annotations

import errno
import logging
import os
import struct
import threading
from collections import Counter, deque
from dataclasses import dataclass

import gi

gi.require_version("UMockdev", "1.0")
from gi.repository import UMockdev  # noqa: E402

from ..errors import UsbGone, UsbStall, UsbTimeout  # noqa: E402
from .clocking import TransferClock  # noqa: E402

log = logging.getLogger(__name__)

# ioctl request numbers (x86-64, from the kernel headers via usb-testing.md)
SUBMITURB = 0x8038550A
DISCARDURB = 0x550B
REAPURB = 0x4008550C
REAPURBNDELAY = 0x4008550D
CLAIMINTERFACE = 0x8004550F
RELEASEINTERFACE = 0x80045510
GET_CAPABILITIES = 0x8004551A
GETDRIVER = 0x41045508
IOCTL = 0xC0105512
CLEAR_HALT = 0x80045515
RESET = 0x5514
IOCTL_NAMES = {
    SUBMITURB: "SUBMITURB", DISCARDURB: "DISCARDURB", REAPURB: "REAPURB",
    REAPURBNDELAY: "REAPURBNDELAY", CLAIMINTERFACE: "CLAIMINTERFACE",
    RELEASEINTERFACE: "RELEASEINTERFACE", GET_CAPABILITIES: "GET_CAPABILITIES",
    GETDRIVER: "GETDRIVER", IOCTL: "IOCTL", CLEAR_HALT: "CLEAR_HALT", RESET: "RESET",
}

# struct usbdevfs_urb (56 bytes): type @0, endpoint @1, status @4, flags @8, buffer @16,
# buffer_length @24, actual_length @28, ...
URB_SIZE = 56
URB_HEAD = struct.Struct("<BBxxiI4xQii")
STATUS_OFFSET, ACTUAL_OFFSET, BUFFER_OFFSET = 4, 28, 16
URB_TYPE_CONTROL, URB_TYPE_BULK = 2, 3
CAPS = 0x07     # ZERO_PACKET | BULK_CONTINUATION | NO_PACKET_SIZE_LIM
SETUP_SIZE = 8
GET_DESCRIPTOR = 6
PAGE = 4096


@dataclass
class Urb:
    """A URB as submitted: its address in the client process, type, endpoint and length."""

    address: int
    type: int
    endpoint: int
    length: int

    @property
    def is_in(self) -> bool:
        return bool(self.endpoint & 0x80)


@dataclass
class Completion:
    urb: Urb
    status: int
    actual: int = 0
    data: bytes = b""


class ReadinessFifo:
    """The device node as a FIFO whose writability says "a URB is ready to reap"."""

    def __init__(self, path: str) -> None:
        if os.path.lexists(path):
            os.remove(path)
        os.mkfifo(path, 0o666)
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        self.ready = False
        self._fill()

    def _fill(self) -> None:
        page = bytes(PAGE)
        while True:
            try:
                os.write(self.fd, page)
            except BlockingIOError:
                return

    def set_ready(self, ready: bool) -> None:
        if ready == self.ready:
            return
        if ready:
            os.read(self.fd, PAGE)      # one free page: poll reports POLLOUT
        else:
            self._fill()
        self.ready = ready

    def close(self) -> None:
        os.close(self.fd)


class UsbfsNode:
    """The ioctl handler of one device node. ``ioctl_counts`` counts requests by name (tests
    check the idle cost with it)."""

    def __init__(self, model, node_path: str, clock: TransferClock | None = None) -> None:
        self.model = model
        self.clock = clock
        self.ioctl_counts: Counter[str] = Counter()
        self._lock = threading.RLock()
        self._parked: dict[int, Urb] = {}
        self._done: deque[Completion] = deque()
        self._stall_next: set[int] = set()
        self._unplugged = False
        self.claim_errno: int | None = None     # set to e.g. errno.EBUSY: CLAIMINTERFACE fails
        self._fifo = ReadinessFifo(node_path)
        self.handler = UMockdev.IoctlBase()
        self.handler.connect("handle-ioctl", self._on_ioctl)

    # --- what tests call ------------------------------------------------------------------------
    def stall(self, endpoint: int) -> None:
        """The next transfer on ``endpoint`` (or the one parked there now) ends with STALL."""
        with self._lock:
            urb = next((u for u in self._parked.values() if u.endpoint == endpoint), None)
            if urb is None:
                self._stall_next.add(endpoint)
                return
            del self._parked[urb.address]
            self._complete(urb, -errno.EPIPE)

    def unplug(self) -> None:
        """Parked URBs complete with -ENODEV; every later request fails with ENODEV."""
        with self._lock:
            self._unplugged = True
            self.model.unplug()
            for urb in list(self._parked.values()):
                self._complete(urb, -errno.ENODEV)
            self._parked.clear()

    def parked(self) -> int:
        """How many URBs are waiting (IN ones for the model to have data)."""
        with self._lock:
            return len(self._parked)

    def close(self) -> None:
        """Close the FIFO (after the testbed is gone)."""
        self._fifo.close()

    # --- ioctl dispatch (umockdev's worker thread) ----------------------------------------------
    def _on_ioctl(self, _handler, client) -> bool:
        try:
            with self._lock:
                result, err = self._dispatch(client.get_request(), client.get_arg())
        except Exception:
            log.exception("usbfs handler failed on %s", IOCTL_NAMES.get(client.get_request(), "ioctl"))
            result, err = -1, errno.EIO
        client.complete(result, err)
        return True

    def _dispatch(self, request: int, arg) -> tuple[int, int]:
        self.ioctl_counts[IOCTL_NAMES.get(request, hex(request))] += 1
        if request in (REAPURBNDELAY, REAPURB):
            return self._reap(arg)
        if request == DISCARDURB:
            return self._discard(arg)
        if self._unplugged:
            return -1, errno.ENODEV
        if request == SUBMITURB:
            return self._submit(arg)
        if request == GET_CAPABILITIES:
            arg.resolve(0, 4).update(0, struct.pack("<I", CAPS))
            return 0, 0
        if request == CLAIMINTERFACE and self.claim_errno is not None:
            return -1, self.claim_errno
        if request == RESET:
            self.model.usb_reset()
            return 0, 0
        if request in (CLAIMINTERFACE, RELEASEINTERFACE, CLEAR_HALT):
            return 0, 0
        if request in (GETDRIVER, IOCTL):
            return -1, errno.ENODATA
        return -1, errno.ENOTTY

    def _submit(self, arg) -> tuple[int, int]:
        (address,) = struct.unpack("<Q", bytes(arg.retrieve()))
        urb_mem = arg.resolve(0, URB_SIZE)
        kind, endpoint, _status, _flags, _buf, length, _actual = URB_HEAD.unpack(
            bytes(urb_mem.retrieve())[:URB_HEAD.size])
        urb = Urb(address, kind, endpoint, length)
        if self.clock is not None:
            self.clock.before()
        if kind == URB_TYPE_CONTROL:
            self._control(urb, bytes(urb_mem.resolve(BUFFER_OFFSET, length).retrieve()))
            return 0, 0
        if kind != URB_TYPE_BULK:
            return -1, errno.EINVAL
        if endpoint in self._stall_next:
            self._stall_next.discard(endpoint)
            self._complete(urb, -errno.EPIPE)
            return 0, 0
        if urb.is_in:
            self._parked[address] = urb
        else:
            data = bytes(urb_mem.resolve(BUFFER_OFFSET, length).retrieve()) if length else b""
            try:
                cost = self.model.bulk_out(endpoint, data)
            except UsbTimeout:                 # a lost OUT (fault knob): libusb times it out
                self._parked[address] = urb
                return 0, 0
            except (UsbStall, ValueError):     # ValueError: not the model's OUT endpoint
                self._complete(urb, -errno.EPIPE)
                return 0, 0
            except UsbGone:
                self._complete(urb, -errno.ENODEV)
                return 0, 0
            self._charge(cost)
            self._complete(urb, 0, actual=length)
        self._serve_parked()
        return 0, 0

    def _serve_parked(self) -> None:
        """Complete parked IN URBs, oldest first, while the model has replies."""
        for urb in list(self._parked.values()):
            if not urb.is_in:
                continue
            try:
                data, cost = self.model.bulk_in(urb.endpoint, urb.length)
            except UsbTimeout:
                continue
            except (UsbStall, ValueError):
                status, data = -errno.EPIPE, b""
            except UsbGone:
                status, data = -errno.ENODEV, b""
            else:
                self._charge(cost)
                status = 0 if len(data) <= urb.length else -errno.EOVERFLOW
                data = data[:urb.length]
            del self._parked[urb.address]
            self._complete(urb, status, actual=len(data), data=data)

    def _charge(self, cost: float) -> None:
        if self.clock is not None:
            self.clock.after(cost)

    def _control(self, urb: Urb, buffer: bytes) -> None:
        request_type, request, value, _index, length = struct.unpack("<BBHHH", buffer[:SETUP_SIZE])
        if request_type == 0x80 and request == GET_DESCRIPTOR:
            kind, index = value >> 8, value & 0xFF
            try:
                descriptor = {1: self.model.device_descriptor, 2: self.model.config_descriptor,
                              3: lambda: self.model.string_descriptor(index)}[kind]()
            except (KeyError, UsbStall):
                self._complete(urb, -errno.EPIPE)
                return
            data = bytes(descriptor[:length])
            self._complete(urb, 0, actual=len(data), data=data)
        elif request_type & 0x80:
            self._complete(urb, -errno.EPIPE)     # no other IN request is answered
        else:
            self._complete(urb, 0)                # SET_* requests: accepted

    def _discard(self, arg) -> tuple[int, int]:
        (address,) = struct.unpack("<Q", bytes(arg.retrieve()))
        urb = self._parked.pop(address, None)
        if urb is None:
            return -1, errno.EINVAL
        self._complete(urb, -errno.ECONNRESET)
        return 0, 0

    def _complete(self, urb: Urb, status: int, *, actual: int = 0, data: bytes = b"") -> None:
        self._done.append(Completion(urb, status, actual, data))
        self._fifo.set_ready(True)

    def _reap(self, arg) -> tuple[int, int]:
        if not self._done:
            return -1, errno.ENODEV if self._unplugged else errno.EAGAIN
        done = self._done.popleft()
        slot = arg.resolve(0, 8)
        slot.update(0, struct.pack("<Q", done.urb.address))
        urb_mem = slot.resolve(0, URB_SIZE)
        urb_mem.update(STATUS_OFFSET, struct.pack("<i", done.status))
        urb_mem.update(ACTUAL_OFFSET, struct.pack("<i", done.actual))
        if done.data:
            offset = SETUP_SIZE if done.urb.type == URB_TYPE_CONTROL else 0
            urb_mem.resolve(BUFFER_OFFSET, offset + len(done.data)).update(offset, done.data)
        if not self._done:
            self._fifo.set_ready(False)
        return 0, 0
