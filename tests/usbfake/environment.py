"""Whether this process can run the umockdev-backed USB tests, and why not."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def preload_active() -> bool:
    """True when libumockdev-preload is mapped into this process (umockdev-wrapper was used)."""
    try:
        return "libumockdev-preload" in Path("/proc/self/maps").read_text()
    except OSError:
        return False


def missing() -> str | None:
    """None when the USB tests can run here; else what is missing and how to get it."""
    if importlib.util.find_spec("gi") is None:
        return ('PyGObject is not installed (pip install "PyGObject<3.52"; it needs the Debian '
                "packages libgirepository1.0-dev and libcairo2-dev; ./dev.sh setup does both)")
    try:
        import gi

        gi.require_version("UMockdev", "1.0")
        from gi.repository import UMockdev  # noqa: F401
    except (ImportError, ValueError) as exc:
        return f"the UMockdev typelib is missing (apt-get install gir1.2-umockdev-1.0): {exc}"
    if not preload_active():
        return ("not running under umockdev's preload: run pytest as "
                "'umockdev-wrapper python -m pytest -m usb' (./dev.sh test does)")
    return None
