"""pyOCD, unmodified, against the simulated probe and chips: the simulator's acceptance test.

pyOCD's own ST-Link driver talks to the simulated probe byte for byte (through the pyusb seam in
``gangflash.sim.pyusb_fake``), identifies the chip, runs its built-in flash algorithm on the
simulated core and reads the image back. If the probe model, the debug model, the flash
controller or the bus were wrong, one of these steps fails.
"""

from __future__ import annotations

import logging
import random

import pytest

from gangflash.sim.bench import make_probe
from gangflash.sim.clock import ManualClock
from gangflash.sim.pyusb_fake import patch_pyocd

from pyocd.core.helpers import ConnectHelper
from pyocd.flash.file_programmer import FileProgrammer

IMAGE_SIZE = 64 * 1024


@pytest.mark.parametrize("chip, pyocd_target, model", [
    ("F103RC", "stm32f103rc", "V2"),
    ("F412ZG", "stm32f412xg", "V3"),
    ("L432KC", "stm32l432kc", "V2-1"),
])
def test_pyocd_flashes_and_reads_back(tmp_path, chip, pyocd_target, model):
    logging.getLogger("pyocd").setLevel(logging.WARNING)
    clock = ManualClock()
    probe = make_probe(chip, clock=clock, model=model)
    image = random.Random(chip).randbytes(IMAGE_SIZE)
    path = tmp_path / "image.bin"
    path.write_bytes(image)
    options = {"frequency": 1_000_000, "chip_erase": "sector", "smart_flash": True,
               "resume_on_disconnect": False}
    with patch_pyocd([probe], clock):
        with ConnectHelper.session_with_chosen_probe(
                blocking=False, unique_id=probe.serial, target_override=pyocd_target,
                options=options) as session:
            assert session is not None, "pyOCD did not find the simulated probe"
            FileProgrammer(session).program(str(path), base_address=0x08000000, file_format="bin")
        # A second session reads the image back through the debug port.
        with ConnectHelper.session_with_chosen_probe(
                blocking=False, unique_id=probe.serial, target_override=pyocd_target,
                options=options) as session:
            read_back = bytes(session.target.read_memory_block8(0x08000000, IMAGE_SIZE))
    assert read_back == image
    target = probe.target
    assert target.flash_contents(0x08000000, IMAGE_SIZE) == image
    # The rest of the flash was never touched (sector erase of the image's sectors only).
    tail = target.flash_contents(0x08000000 + IMAGE_SIZE, target.chip.flash_size - IMAGE_SIZE)
    assert tail == b"\xff" * len(tail)
    assert clock() > 0, "the probe charged no virtual time"
