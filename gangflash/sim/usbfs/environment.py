"""Whether this machine can put simulated probes on a umockdev testbed, and what to install if not.

The owner of the testbed needs PyGObject (``gi``) with the UMockdev typelib; the program it runs
needs umockdev's preload library. Both are Linux only. A missing piece is reported as a sentence
saying how to get it, so ``gangflash sim exec`` never answers a missing package with a traceback.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

PRELOAD = "libumockdev-preload.so.0"
INSTALL_HINT = ("on Debian, as root: ./dev.sh setup (it installs the packages umockdev, "
                "gir1.2-umockdev-1.0, libgirepository1.0-dev and libcairo2-dev, then the "
                "sim-exec extra: pip install 'gangflash[sim-exec]', which builds PyGObject<3.52)")


def preload_active() -> bool:
    """True when libumockdev-preload is mapped into this process (it ran under umockdev-wrapper)."""
    try:
        return "libumockdev-preload" in Path("/proc/self/maps").read_text()
    except OSError:
        return False


def _library_dirs() -> list[Path]:
    """Where the dynamic loader looks for the preload library by its soname (the common places)."""
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    for base in ("/usr/local/lib", "/usr/lib", "/lib", "/usr/lib64", "/lib64"):
        if multiarch:
            dirs.append(f"{base}/{multiarch}")
        dirs.append(base)
    return [Path(d) for d in dirs]


def preload_library() -> Path | None:
    """The preload library's path, or None when the umockdev package is not installed."""
    return next((d / PRELOAD for d in _library_dirs() if (d / PRELOAD).exists()), None)


def missing() -> str | None:
    """None when this process can own a testbed and run a program under the preload; else what
    is missing and how to install it."""
    if not sys.platform.startswith("linux"):
        return f"simulated USB devices need umockdev, which runs on Linux only (this is {sys.platform})"
    try:
        import gi
    except ImportError:
        return f"PyGObject (the Python module gi) is not installed; {INSTALL_HINT}"
    try:
        gi.require_version("UMockdev", "1.0")
        from gi.repository import UMockdev  # noqa: F401
    except (ImportError, ValueError) as exc:
        return f"the UMockdev GObject typelib is missing ({exc}); {INSTALL_HINT}"
    if preload_library() is None:
        return f"umockdev's preload library {PRELOAD} is not installed; {INSTALL_HINT}"
    return None
