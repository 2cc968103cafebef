"""``gangflash sim serve``: the simulated probes as an stlink-server on TCP (placeholder, being built)."""

from __future__ import annotations

import argparse

DESCRIPTION = "Serve simulated ST-Link probes in the stlink-server TCP protocol."


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of ``sim serve`` beyond the board choice."""


def run(args: argparse.Namespace, boards: list) -> int:
    raise NotImplementedError("gangflash sim serve is not built yet")
