"""``gangflash sim exec``: simulated probes as USB devices for a libusb tool (placeholder, being built)."""

from __future__ import annotations

import argparse

DESCRIPTION = "Run a libusb tool against simulated ST-Link probes under umockdev."


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of ``sim exec`` beyond the board choice."""


def run(args: argparse.Namespace, boards: list) -> int:
    raise NotImplementedError("gangflash sim exec is not built yet")
