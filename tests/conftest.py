"""Shared pytest configuration. Each section is self-contained and says what it is for."""

from __future__ import annotations

import os
import shutil

import pytest

# --- USB tests under umockdev -----------------------------------------------------------------
# Tests marked ``usb`` drive the real libusb against fake ST-Links (tests/usbfake). They need
# PyGObject and the umockdev preload from process start: ``./dev.sh test`` runs them in a second
# pytest under ``umockdev-wrapper``. Where that is missing they skip with the reason, except in CI
# (CI=true), where a USB test that cannot run is a failure, never a silent pass.


def _usb_unavailable() -> str | None:
    from usbfake.environment import missing

    return missing()


# --- gangflash sim exec tests ------------------------------------------------------------------
# Tests marked ``sim_exec`` run real tools (st-info, st-flash, openocd, pyocd) against simulated
# probes through ``gangflash sim exec``. The test process owns the testbed and needs no preload,
# so they run in the main pytest; they need PyGObject, umockdev and the tools (./dev.sh setup
# installs them on Debian). Same policy: skipped with the reason locally, a failure in CI.
SIM_EXEC_TOOLS = ("st-info", "st-flash", "openocd")


def _sim_exec_unavailable() -> str | None:
    from gangflash.sim.usbfs.environment import missing

    reason = missing()
    if reason is not None:
        return reason
    absent = [tool for tool in SIM_EXEC_TOOLS if shutil.which(tool) is None]
    if absent:
        return f"missing {', '.join(absent)} (apt-get install stlink-tools openocd; ./dev.sh setup does)"
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sim_exec: runs real tools under gangflash sim exec "
                                       "(needs umockdev, PyGObject, stlink-tools, openocd)")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("sim_exec") is not None:
        reason = _sim_exec_unavailable()
    elif item.get_closest_marker("usb") is not None:
        reason = _usb_unavailable()
    else:
        return
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"test cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def fake_usb_bus():
    """An empty fake USB bus (umockdev testbed); add probes with ``add_probe``."""
    from usbfake.testbed import FakeUsbBus

    with FakeUsbBus() as bus:
        yield bus
