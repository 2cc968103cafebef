"""The previous firmware the simulator puts in a chip before the debugger arrives.

``previous.s`` is the source, ``previous.bin`` its assembled bytes (both in the repo; a test
reassembles the source with binutils-arm-none-eabi and compares).
"""

from __future__ import annotations

import struct
from importlib import resources

CONFIG_OFFSET = 0x40
FLAG_IWDG, FLAG_SYSTICK, FLAG_SLEEP = 1, 2, 4
COUNTER_ADDRESS = 0x20000000


def previous_firmware(*, watchdog: bool, systick: bool, sleep: bool, core_hz: int) -> bytes:
    """The image with its configuration words set: which states the firmware sets up at reset."""
    image = bytearray(resources.files(__package__).joinpath("previous.bin").read_bytes())
    flags = (FLAG_IWDG if watchdog else 0) | (FLAG_SYSTICK if systick else 0) | (FLAG_SLEEP if sleep else 0)
    struct.pack_into("<II", image, CONFIG_OFFSET, flags, core_hz // 1000 - 1)
    return bytes(image)
