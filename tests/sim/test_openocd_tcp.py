"""Debian's OpenOCD 0.12, unmodified, programs simulated boards through the simulator's
stlink-server: a second, independent client vouching for the simulated probe and chips.

``program IMAGE 0x08000000 verify reset exit`` runs OpenOCD's own working-area flash loader and
its CRC verify on the simulated core; the tests check the flash through the simulator's back door
and that OpenOCD never fell back to its slow paths (it prints why when it does). OpenOCD is a
test dependency: when it is missing these tests fail, they never skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gangflash.sim.bench import make_probe
from gangflash.sim.clock import ManualClock
from gangflash.sim.stlink_server import serving_in_thread

TARGET_CFG = {"F103C8": "stm32f1x.cfg", "F412ZG": "stm32f4x.cfg", "L432KC": "stm32l4x.cfg"}
FLASH_BASE = 0x08000000
IMAGE_SIZE = 4096

# What OpenOCD 0.12 prints when its fast paths fail: the async loader ("falling back to single
# memory accesses", no working area), the CRC verify ("error executing cortex_m crc algorithm",
# then a binary compare), or a wait for halt that never ended.
FALLBACK_SIGNS = ("falling back", "crc algorithm", "attempting binary compare", "working area",
                  "timed out while waiting", "error executing flash", "slow fallback")


@pytest.fixture(scope="module")
def openocd() -> str:
    path = shutil.which("openocd")
    if path is None:
        pytest.fail("openocd is not installed (apt-get install openocd): these tests never skip")
    return path


@pytest.fixture
def image(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(IMAGE_SIZE)
    path = tmp_path / "image.bin"
    path.write_bytes(data)
    return path, data


def board(chip: str, index: int = 0, model: str = "V2-1"):
    clock = ManualClock()
    return make_probe(chip, clock=clock, model=model, index=index), clock


def program(openocd: str, port: int, serial: str, chip: str, driver: str,
            image: Path) -> subprocess.CompletedProcess:
    if driver == "hla":
        interface = ["-f", "interface/stlink.cfg", "-c", f"hla_stlink_backend tcp {port}"]
    else:
        interface = ["-f", "interface/stlink-dap.cfg", "-c", f"st-link backend tcp {port}"]
    cmd = [openocd, "-c", "gdb_port disabled", "-c", "tcl_port disabled",
           "-c", "telnet_port disabled", *interface, "-c", f"adapter serial {serial}",
           "-f", f"target/{TARGET_CFG[chip]}",
           "-c", f"program {image} {FLASH_BASE:#x} verify reset exit"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def check_programmed(result: subprocess.CompletedProcess, probe, data: bytes) -> None:
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    assert "** Verified OK **" in log, log
    for sign in FALLBACK_SIGNS:
        assert sign not in log.lower(), f"OpenOCD fell back ({sign!r}):\n{log}"
    assert probe.target.flash_contents(FLASH_BASE, len(data)) == data
    # The loader moved the image: OpenOCD's fallback writes flash one WRITEMEM_16BIT per
    # half-word (IMAGE_SIZE / 2 of them). The total command count is no evidence either way: with
    # pace 1 the number of status polls depends on how busy the host is.
    half_word_writes = probe.stats["by_opcode"].get("DEBUG.WRITEMEM_16BIT", 0)
    assert half_word_writes < IMAGE_SIZE // 64, probe.stats["by_opcode"]


@pytest.mark.parametrize("driver", ["hla", "dapdirect"])
@pytest.mark.parametrize("chip", ["F103C8", "F412ZG", "L432KC"])
def test_openocd_programs_and_verifies(openocd, image, chip, driver):
    probe, clock = board(chip)
    path, data = image
    with serving_in_thread([(probe, clock)], port=0) as server:
        result = program(openocd, server.port, probe.serial, chip, driver, path)
        stats = server.stats()[0]
    check_programmed(result, probe, data)
    assert stats["clients"] == 1 and not stats["in_use"]
    if driver == "dapdirect":
        assert probe.stats["by_opcode"]["DEBUG.RW_MISC_OUT"] > 0     # server API 3's batching


def test_openocd_with_server_api_2_avoids_rw_misc(openocd, image):
    probe, clock = board("F103C8")
    path, data = image
    with serving_in_thread([(probe, clock)], port=0, api=2) as server:
        result = program(openocd, server.port, probe.serial, "F103C8", "dapdirect", path)
    assert "stlink-server API v2" in result.stderr
    check_programmed(result, probe, data)
    assert probe.stats["by_opcode"]["DEBUG.RW_MISC_OUT"] == 0


def test_four_openocds_on_four_probes_at_once(openocd, image):
    plan = [("F103C8", "hla", "V2"), ("F412ZG", "dapdirect", "V3"), ("L432KC", "hla", "V2-1"),
            ("F103C8", "dapdirect", "V2-1")]
    boards = [board(chip, index=i, model=model) for i, (chip, _, model) in enumerate(plan)]
    path, data = image
    with serving_in_thread(boards, port=0) as server:
        with ThreadPoolExecutor(len(plan)) as pool:
            futures = [pool.submit(program, openocd, server.port, probe.serial, chip, driver, path)
                       for (probe, _), (chip, driver, _) in zip(boards, plan)]
            results = [f.result() for f in futures]
        stats = server.stats()
    for result, (probe, _) in zip(results, boards):
        check_programmed(result, probe, data)
    assert [s["clients"] for s in stats] == [1, 1, 1, 1]
