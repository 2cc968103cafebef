"""Whether this process can run the umockdev-backed USB tests, and why not.

The product's check (``gangflash.sim.usbfs.environment``) covers PyGObject, the typelib and the
preload library; these tests also need the preload in this very process from its start.
"""

from __future__ import annotations

from gangflash.sim.usbfs.environment import missing as _missing_for_owner
from gangflash.sim.usbfs.environment import preload_active

__all__ = ["missing", "preload_active"]


def missing() -> str | None:
    """None when the USB tests can run here; else what is missing and how to get it."""
    reason = _missing_for_owner()
    if reason is not None:
        return reason
    if not preload_active():
        return ("not running under umockdev's preload: run pytest as "
                "'umockdev-wrapper python -m pytest -m usb' (./dev.sh test does)")
    return None
