"""libusb loading, and one libusb context with the thread that handles its events.

Why an event thread, not pollfds on the asyncio loop
----------------------------------------------------
libusb completes asynchronous transfers only while some thread runs its event handler. There are
two ways to drive it from asyncio:

* register libusb's pollfds with the loop (``setPollFDNotifiers`` + ``add_reader``/``add_writer``)
  and call ``handleEventsTimeout(0)`` on the loop when one is ready; or
* run ``handleEventsTimeout`` in one dedicated thread per context, which hands each completion
  to the loop with ``loop.call_soon_threadsafe``.

We use the thread. ``libusb_get_pollfds`` does not exist on Windows (python-libusb1 raises
NotImplementedError there) and asyncio's Windows proactor loop has no ``add_reader``; macOS has no
timerfd, so a pollfd bridge must also schedule libusb's timeouts itself. The thread works the same
everywhere, never runs libusb's event handling (or a slow ioctl) on the loop, and costs one thread
per context, not one per probe: every probe opened through the context shares it. It sleeps in
``poll`` while nothing is pending; ``interruptEventHandler`` wakes it to stop (measured 0.1 ms).
The one thing it adds is a thread hop per completion (``call_soon_threadsafe``), tens of
microseconds against a USB round trip of about a millisecond.

The libusb backend always runs on real time (see ``shared/reference/virtual-time.md``); nothing
here is meant to run under a virtual-time loop.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import sys
import threading
import weakref

import libusb_package
import usb1

log = logging.getLogger(__name__)

# How long the event thread sleeps in libusb when nothing happens. Only bounds how late it would
# notice a stop request if libusb's own interrupt were lost; stopping normally takes 0.1 ms.
IDLE_WAKE = 1.0

_load_lock = threading.Lock()
_load_result: bool | None = None


def load_libusb() -> bool:
    """Load the libusb shipped by libusb-package into python-libusb1, once per process.

    Returns False (and logs at debug level) when no usable libusb can be loaded, so callers can
    report "no probes" instead of a traceback. If python-libusb1 already loaded a library (some
    other code imported it first), that one is kept.
    """
    global _load_result
    with _load_lock:
        if _load_result is not None:
            return _load_result
        try:
            path = libusb_package.get_library_path()
            if path is None:
                log.debug("libusb-package ships no libusb for this platform; using the system one")
                usb1.loadLibrary()
            else:
                loader = ctypes.WinDLL if sys.platform == "win32" else ctypes.CDLL
                lib = loader(str(path), use_errno=True, use_last_error=True)
                if not usb1.loadLibrary(lib):
                    log.debug("python-libusb1 already had a libusb loaded; keeping it")
            _load_result = True
        except OSError as exc:
            log.debug("cannot load libusb: %s", exc)
            _load_result = False
        return _load_result


class LibusbContext:
    """A libusb context plus the one thread handling its events.

    ``open()`` and ``close()`` block (libusb scans the bus on init; closing joins the thread):
    call them from a worker thread when on the event loop. Transfer callbacks run on the event
    thread and must not block; they hand results to asyncio with ``call_soon_threadsafe``.
    """

    def __init__(self, name: str = "libusb") -> None:
        self.name = name
        self.usb = usb1.USBContext()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.links: set[object] = set()     # open links using this context (owned by the backend)

    @classmethod
    def open(cls, name: str = "libusb") -> LibusbContext:
        """Initialise libusb and start the event thread. Raises OSError / usb1.USBError when
        libusb cannot be loaded or initialised."""
        if not load_libusb():
            raise OSError("libusb could not be loaded")
        ctx = cls(name)
        ctx.usb.open()
        ctx._thread = threading.Thread(target=ctx._run, name=f"{name}-events", daemon=True)
        ctx._thread.start()
        _live_contexts.add(ctx)
        log.debug("%s: context open, event thread started", name)
        return ctx

    @property
    def closed(self) -> bool:
        """True once ``close`` has begun."""
        return self._closed

    def _run(self) -> None:
        handle_events = self.usb.handleEventsTimeout
        while not self._stop.is_set():
            try:
                handle_events(IDLE_WAKE)
            except usb1.USBErrorInterrupted:
                continue
            except usb1.USBError as exc:  # never seen in practice; do not spin on it
                log.warning("%s: libusb event handling failed: %s", self.name, exc)
                self._stop.wait(0.01)
            except Exception:  # a bug in a callback wrapper must not kill event handling
                log.exception("%s: unexpected error in the libusb event thread", self.name)
                self._stop.wait(0.01)

    def close(self) -> None:
        """Stop the event thread, then free the context. Idempotent. Every handle of this context
        must be closed first (python-libusb1 would otherwise pump events itself while freeing)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self.usb.interruptEventHandler()
            self._thread.join()
        self.usb.close()
        _live_contexts.discard(self)
        log.debug("%s: context closed", self.name)


# Contexts still open at interpreter exit. python-libusb1's own finalizer would call libusb_exit
# while our thread may still be inside libusb; stop the threads first.
_live_contexts: weakref.WeakSet[LibusbContext] = weakref.WeakSet()


@atexit.register
def _close_live_contexts() -> None:
    for ctx in list(_live_contexts):
        try:
            ctx.close()
        except Exception:  # exit path: report, never raise
            log.debug("closing %s at exit failed", ctx.name, exc_info=True)
