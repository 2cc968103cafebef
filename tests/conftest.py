"""Shared pytest configuration. Each section is self-contained and says what it is for."""

from __future__ import annotations

import os

import pytest

# --- USB tests under umockdev -----------------------------------------------------------------
# Tests marked ``usb`` drive the real libusb against fake ST-Links (tests/usbfake). They need
# PyGObject and the umockdev preload from process start: ``./dev.sh test`` runs them in a second
# pytest under ``umockdev-wrapper``. Where that is missing they skip with the reason, except in CI
# (CI=true), where a USB test that cannot run is a failure, never a silent pass.


def _usb_unavailable() -> str | None:
    from usbfake.environment import missing

    return missing()


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("usb") is None:
        return
    reason = _usb_unavailable()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"USB test cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def fake_usb_bus():
    """An empty fake USB bus (umockdev testbed); add probes with ``add_probe``."""
    from usbfake.testbed import FakeUsbBus

    with FakeUsbBus() as bus:
        yield bus
