"""Other people's tools, unmodified, against simulated probes through ``gangflash sim exec``
(issue 9): st-info lists the probes, st-flash writes and reads back, OpenOCD's USB path programs
and verifies, pyOCD flashes with no patching. Each run builds fresh boards; the flash contents
are checked through the simulator's back door after the tool exits (``exec_boards`` returns the
boards), and through the tools' own readback.

These run in the main pytest (the test process owns the testbed; only the tool gets the preload).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gangflash.cli_sim_exec import exec_boards
from gangflash.orchestrator.config_sim import sim_boards_from_spec
from gangflash.sim.bench import sim_serial

pytestmark = pytest.mark.sim_exec

REPO = Path(__file__).resolve().parents[2]
IMAGE = REPO / "configs" / "firmware" / "demo-16k.bin"     # vector table, a "b ." loop, filler
FLASH = 0x08000000
GANGFLASH = [sys.executable, "-c", "import sys; from gangflash.cli import main; sys.exit(main())"]
OPENOCD_QUIET = ["-c", "gdb_port disabled", "-c", "tcl_port disabled", "-c", "telnet_port disabled"]


def sim_exec(*words: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``gangflash sim exec WORDS`` as a user runs it: a process of its own."""
    return subprocess.run([*GANGFLASH, "sim", "exec", *words], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def flash_of(result, index: int = 0) -> bytes:
    """What the simulated chip's flash holds now (the back door, not a debug read)."""
    target = result.probes[index].target
    return target.flash.read(FLASH, IMAGE.stat().st_size)


def test_st_info_probe_lists_three_simulated_probes_with_serials_and_chips():
    run = sim_exec("--sim", "F103C8,F412ZG,L432KC", "--", "st-info", "--probe")
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "Found 3 stlink programmers" in out
    for index in range(3):
        assert f"serial:     {sim_serial(index)}" in out
    for chip_id, description in (("0x0410", "F1xx Medium-density"), ("0x0441", "F412"),
                                 ("0x0435", "L43x/L44x")):
        assert f"chipid:     {chip_id}" in out and f"descr:      {description}" in out
    assert "flash:      65536 (pagesize: 1024)" in out        # the F103C8's 64 KiB in 1 KiB pages


def test_st_flash_write_then_read_leaves_the_image_in_the_simulated_f103c8(tmp_path, capfd):
    readback = tmp_path / "readback.bin"
    script = (f"st-flash write {IMAGE} 0x08000000 && "
              f"st-flash read {readback} 0x08000000 {IMAGE.stat().st_size}")
    result = exec_boards(sim_boards_from_spec("F103C8"), ["sh", "-c", script])
    out, err = capfd.readouterr()
    assert result.exit_status == 0, out + err
    assert "Flash written and verified! jolly good!" in out + err
    assert readback.read_bytes() == IMAGE.read_bytes()
    assert flash_of(result) == IMAGE.read_bytes()
    assert result.probes[0].stats["by_opcode"]["DEBUG.WRITEDEBUGREG"] > 0   # API v2 register path


def test_openocd_usb_path_programs_verifies_and_resets(capfd):
    argv = ["openocd", *OPENOCD_QUIET, "-f", "interface/stlink.cfg", "-f", "target/stm32f1x.cfg",
            "-c", f"program {IMAGE} 0x08000000 verify reset exit"]
    result = exec_boards(sim_boards_from_spec("F103C8"), argv)
    out, err = capfd.readouterr()
    assert result.exit_status == 0, out + err
    log = out + err
    assert "STLINK V2J37S7 (API v2) VID:PID 0483:3748" in log
    assert "** Verified OK **" in log
    assert "timed out" not in log and "Error" not in log      # the CRC algorithm halted in time
    assert flash_of(result) == IMAGE.read_bytes()


def test_pyocd_flashes_through_sim_exec_with_no_patching(capfd):
    argv = [sys.executable, "-m", "pyocd", "load", "-t", "stm32f103rc", "-a", "0x08000000", str(IMAGE)]
    result = exec_boards(sim_boards_from_spec("F103RC"), argv)
    out, err = capfd.readouterr()
    assert result.exit_status == 0, out + err
    assert "programmed 16384 bytes" in out + err
    assert flash_of(result) == IMAGE.read_bytes()


def test_openocd_picks_the_probe_named_by_its_serial(capfd):
    """Two probes: ``adapter serial`` selects the second, and only that chip is programmed."""
    argv = ["openocd", *OPENOCD_QUIET, "-f", "interface/stlink.cfg", "-c", f"adapter serial {sim_serial(1)}",
            "-f", "target/stm32f1x.cfg", "-c", f"program {IMAGE} 0x08000000 verify exit"]
    result = exec_boards(sim_boards_from_spec("F103C8,F103C8"), argv)
    out, err = capfd.readouterr()
    assert result.exit_status == 0, out + err
    assert flash_of(result, 1) == IMAGE.read_bytes()
    assert flash_of(result, 0) == b"\xff" * IMAGE.stat().st_size
    assert result.probes[0].stats["commands"] == 0
