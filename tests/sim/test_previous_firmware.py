"""The previous firmware's bytes in the repo are exactly what its assembly source builds to."""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources

import pytest

import gangflash.sim.firmware as firmware


def test_previous_firmware_reassembles_to_the_committed_bytes(tmp_path):
    assert shutil.which("arm-none-eabi-as"), "binutils-arm-none-eabi missing: run ./dev.sh setup"
    source = resources.files(firmware).joinpath("previous.s")
    committed = resources.files(firmware).joinpath("previous.bin").read_bytes()
    obj, elf, binary = tmp_path / "p.o", tmp_path / "p.elf", tmp_path / "p.bin"
    subprocess.run(["arm-none-eabi-as", "-mcpu=cortex-m3", "-mthumb", str(source), "-o", str(obj)], check=True)
    subprocess.run(["arm-none-eabi-ld", "-Ttext=0x08000000", "-e", "reset", str(obj), "-o", str(elf)], check=True)
    subprocess.run(["arm-none-eabi-objcopy", "-O", "binary", str(elf), str(binary)], check=True)
    assert binary.read_bytes() == committed


def test_configuration_words_select_the_states():
    image = firmware.previous_firmware(watchdog=True, systick=False, sleep=True, core_hz=16_000_000)
    assert image[0x40] == firmware.FLAG_IWDG | firmware.FLAG_SLEEP
    assert int.from_bytes(image[0x44:0x48], "little") == 15999
