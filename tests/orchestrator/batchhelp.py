"""Building batch configs with simulated boards in a temporary directory."""

from __future__ import annotations

import pathlib
import shutil

REPO = pathlib.Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "configs" / "firmware" / "demo-16k.bin"


def write_config(tmp: pathlib.Path, boards: list[str], *, extra: str = "", serial: bool = True,
                 attempts: int = 2, pace: float = 0.0, slots: str = "[slots]\nall = true\n") -> pathlib.Path:
    """A config with one [[sim.board]] per entry of ``boards`` (each a TOML body, e.g.
    'chip = "F103C8"'), the demo firmware, and a counter serial number."""
    (tmp / "firmware").mkdir(exist_ok=True)
    shutil.copy(FIRMWARE, tmp / "firmware" / "fw.bin")
    text = f"""
[batch]
name = "test"

[firmware]
path = "firmware/fw.bin"
base_address = 0x08000000

{slots}
[pipeline]
erase = "auto"

[retry]
attempts = {attempts}
delay_s = 0.1
"""
    if serial:
        text += """
[serial_number]
address = 0x0800FC00
format = "counter"
start = 100
template = "SN-%05d"
"""
    text += extra + f"\n[sim]\npace = {pace}\n"
    for body in boards:
        text += f"\n[[sim.board]]\n{body}\n"
    path = tmp / "batch.toml"
    path.write_text(text)
    return path
