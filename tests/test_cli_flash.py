"""``gangflash flash``: one board programmed from the command line, simulated, in virtual time.

Most tests run ``cli.main`` in-process with ``--sim CHIP --virtual-time``. Tests that need the
same board across runs (a re-flash, a Ctrl-C whose aftermath is inspected) offer simulated probes
as the "USB bus" instead, so the board outlives each run; each run's virtual clock starts later
than the last one ended, as a real clock would.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys

import anyio
import looptime
import pytest
from intelhex import IntelHex

from gangflash import cli, cli_flash
from gangflash.sim.bench import make_probe
from gangflash.sim.faults import ProbeFaults, TargetFaults
from gangflash.target.flash.progress import StageProgress
from gangflash.transport.sim_backend import SimBackend

FLASH = 0x08000000
F1_CR, F1_LOCK = 0x10, 0x80            # FLASH_CR offset and its LOCK bit (RM0008)


# --- helpers -------------------------------------------------------------------------------------

@pytest.fixture
def firmware(tmp_path):
    """Write firmware files: ``firmware("fw.bin", size)`` or ``firmware("fw.hex", size)``."""
    def write(name: str, size: int = 16 * 1024, *, seed: int = 1, address: int = FLASH) -> tuple[str, bytes]:
        data = random.Random(seed).randbytes(size)
        path = tmp_path / name
        if name.endswith(".hex"):
            hexfile = IntelHex()
            hexfile.frombytes(data, offset=address)
            hexfile.write_hex_file(str(path))
        else:
            path.write_bytes(data)
        return str(path), data
    return write


def flash(capsys, *args: str) -> tuple[int, str, str]:
    """``gangflash flash ARGS``: (exit status, stdout, stderr)."""
    status = cli.main(["flash", *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return status, out, err


class RecordingBackend(SimBackend):
    """A SimBackend that keeps every link it opened, to check they were all closed."""

    def __init__(self, probes, links: list) -> None:
        super().__init__(probes)
        self.links = links

    async def open(self, info):
        link = await super().open(info)
        self.links.append(link)
        return link


class Bench:
    """Simulated boards kept across runs, offered to ``gangflash flash`` as the USB bus."""

    def __init__(self, chips: tuple[str, ...] = ("F103C8",), **faults) -> None:
        self.chips = chips
        self.faults = faults
        self.probes: list | None = None
        self.links: list = []

    def backend(self) -> SimBackend:
        if self.probes is None:        # built inside the first run: sim objects read the loop clock
            self.probes = [make_probe(chip, clock=anyio.current_time, index=index,
                                      target_faults=TargetFaults(**self.faults))
                           for index, chip in enumerate(self.chips)]
        return RecordingBackend(self.probes, self.links)

    @property
    def target(self):
        return self.probes[0].target

    def serials(self) -> list[str]:
        async def listing() -> list[str]:
            return [info.serial for info in await SimBackend(self.probes).enumerate()]
        return anyio.run(listing)


@pytest.fixture
def bench(monkeypatch):
    """A one-board bench on the USB path, with a virtual clock that only moves forward."""
    starts = itertools.count(0, 100)
    monkeypatch.setitem(cli.ANYIO_BACKEND_OPTIONS, "loop_factory",
                        lambda: looptime.new_event_loop(start=next(starts)))
    made = Bench()
    monkeypatch.setattr(cli, "_usb_backend", made.backend)
    return made


SIM = ("--sim", "F103C8", "--virtual-time")


@pytest.fixture(scope="module")
def sim_serial() -> str:
    """The serial the simulated probe of ``--sim`` enumerates with."""
    async def first() -> str:
        return (await SimBackend([make_probe("F103C8", clock=lambda: 0.0)]).enumerate())[0].serial
    return anyio.run(first)


# --- passing -------------------------------------------------------------------------------------

def test_bin_at_an_address_passes_and_names_the_chip(capsys, firmware):
    path, _ = firmware("fw.bin")
    status, out, err = flash(capsys, path, "--address", "0x08000000", *SIM)
    assert status == 0
    assert out.splitlines() == [out.strip()]                        # one line
    assert out.startswith("PASS STM32F1 F10x medium-density 64 KiB  programmed 16384 B in ")
    assert out.strip().endswith("(verified)")
    for stage in ("attach", "erase", "program", "verify", "reset"):
        assert f"  {stage} done in " in err


def test_hex_file_passes_on_an_f4_behind_a_v3(capsys, firmware):
    path, _ = firmware("fw.hex", 8 * 1024)
    status, out, _ = flash(capsys, path, "--sim", "F412ZG", "--sim-model", "V3", "--virtual-time")
    assert status == 0
    assert out.startswith("PASS STM32F4 F412 1024 KiB  programmed 8192 B")


def test_progress_off_a_terminal_is_a_line_per_ten_percent(capsys, firmware):
    path, _ = firmware("fw.bin")
    _, _, err = flash(capsys, path, "--address", "0x08000000", *SIM)
    assert "\r" not in err
    percents = [int(line.split()[1].rstrip("%")) for line in err.splitlines()
                if line.startswith("  program ") and line.endswith("%")]
    assert percents[-1] == 100 and len(percents) <= 10
    assert len({p // 10 for p in percents}) == len(percents)       # never two in one decile


def test_the_same_image_again_skips_every_page(capsys, firmware, bench):
    path, data = firmware("fw.bin", 8 * 1024)
    assert flash(capsys, path, "--address", "0x08000000", "--no-reset")[0] == 0
    assert bench.target.controller.read_reg(F1_CR, 4) & F1_LOCK      # --no-reset still locks the FPEC
    status, out, _ = flash(capsys, path, "--address", "0x08000000", "--json")
    result = json.loads(out)
    assert status == 0 and result["result"] == "passed"
    assert result["skipped"] == result["units"] == 8 and result["programmed"] == 0
    status, out, _ = flash(capsys, path, "--address", "0x08000000")
    assert status == 0
    assert "skipped all 8 pages (already up to date)" in out
    assert bench.target.flash_contents(FLASH, len(data)) == data


def test_a_running_watchdog_does_not_stop_it(capsys, firmware):
    path, _ = firmware("fw.bin")
    status, out, _ = flash(capsys, path, "--address", "0x08000000", *SIM, "--sim-fault", "watchdog_running")
    assert status == 0, out


# --- failing (exit 1) ----------------------------------------------------------------------------

def test_write_protected_pages_fail_with_the_cause(capsys, firmware):
    path, _ = firmware("fw.bin")
    status, out, _ = flash(capsys, path, "--address", "0x08000000", *SIM, "--sim-fault", "write_protected=0,1")
    assert status == 1
    assert out.startswith("FAIL page 0x08000000 is write-protected (option bytes WRP)")
    assert "during plan" in out


def test_a_controller_error_prints_its_registers_decoded(capsys, firmware):
    path, _ = firmware("fw.bin")
    status, out, _ = flash(capsys, path, "--address", "0x08000000", *SIM,
                           "--sim-fault", "write_protected=20", "--erase", "mass")
    assert status == 1
    cause, registers = out.splitlines()
    assert cause.startswith("FAIL mass erase") and "write-protected" in cause
    assert registers.strip() == "flash SR 0x00000010 WRPRTERR"


def test_an_unplugged_probe_fails_naming_it(capsys, firmware, sim_serial):
    path, _ = firmware("fw.bin")
    status, out, _ = flash(capsys, path, "--address", "0x08000000", *SIM, "--sim-fault", "unplug_after_bytes=20000")
    assert status == 1
    assert out.startswith("FAIL probe unplugged during program")
    assert f"probe {sim_serial}" in out


def test_a_usb_timeout_fails_naming_the_probe(capsys, firmware, sim_serial):
    path, _ = firmware("fw.bin")
    # Transfer 200 falls in the erase stage, where a lost reply fails the run; most other single
    # lost transfers are recovered (resynchronisation) and the board passes.
    status, out, _ = flash(capsys, path, "--address", "0x08000000", *SIM, "--sim-fault", "usb_timeout_on=200")
    assert status == 1
    assert out.startswith("FAIL probe stopped answering (USB timeout)")
    assert f"probe {sim_serial}" in out


def test_readout_protection_names_the_option(capsys, firmware):
    path, _ = firmware("fw.bin", 1024)
    status, out, _ = flash(capsys, path, "--address", "0x08000000", *SIM, "--sim-fault", "rdp_level1")
    assert status == 1 and "readout protection" in out and "--unlock" in out
    status, out, _ = flash(capsys, path, "--address", "0x08000000", *SIM, "--sim-fault", "rdp_level1", "--unlock")
    assert status == 0, out


def test_no_probe_on_the_bus(capsys, firmware, monkeypatch):
    path, _ = firmware("fw.bin", 1024)
    monkeypatch.setattr(cli, "_usb_backend", lambda: SimBackend([]))
    status, out, _ = flash(capsys, path, "--address", "0x08000000")
    assert (status, out.strip()) == (1, "FAIL no ST-Link probes found")


def test_no_usb_at_all_is_no_probe(capsys, firmware, monkeypatch):
    path, _ = firmware("fw.bin", 1024)
    def broken():
        raise OSError("libusb-1.0.so: cannot open shared object file")
    monkeypatch.setattr(cli, "_usb_backend", broken)
    status, out, _ = flash(capsys, path, "--address", "0x08000000")
    assert status == 1 and out.startswith("FAIL no ST-Link probes found (USB unavailable: libusb")


# --- usage and configuration errors (exit 2) -----------------------------------------------------

@pytest.mark.parametrize("name, content, expected", [
    ("missing.bin", None, "missing.bin: no such image file"),
    ("bad.hex", ":020000040800F2\n:10000000000102030405060708090A0B0C0D0E0F00\n:00000001FF\n",
     "bad.hex, line 2: Intel HEX record checksum does not match"),
])
def test_bad_firmware_files_exit_2_naming_the_file(capsys, tmp_path, name, content, expected):
    if content is not None:
        (tmp_path / name).write_text(content)
    status, out, err = flash(capsys, str(tmp_path / name), *SIM)
    assert status == 2 and out == ""
    assert expected in err


def test_an_image_too_big_for_the_chip_exits_2_with_address_and_range(capsys, firmware):
    path, _ = firmware("big.bin", 80 * 1024)
    status, out, err = flash(capsys, path, "--address", "0x08000000", *SIM)
    assert status == 2 and out == ""
    assert "big.bin: writes 0x08010000, outside the flash of" in err
    assert "0x08000000-0x0800FFFF, 64 KiB" in err


def test_a_raw_binary_needs_its_address(capsys, firmware):
    path, _ = firmware("fw.bin", 1024)
    status, _, err = flash(capsys, path, *SIM)
    assert status == 2 and "fw.bin: a raw binary has no addresses" in err and "--address" in err


def test_an_unknown_sim_chip_lists_the_known_ones(capsys, firmware):
    path, _ = firmware("fw.bin", 1024)
    status, _, err = flash(capsys, path, "--address", "0x08000000", "--sim", "F999", "--virtual-time")
    assert status == 2 and "no simulated chip 'F999'" in err and "STM32F412ZG" in err


@pytest.mark.parametrize("knob, expected", [
    ("watchdog", "unknown simulator fault knob 'watchdog' (did you mean watchdog_running?)"),
    ("usb_timeout_on", "usb_timeout_on needs a value: usb_timeout_on=N"),
    ("write_protected=one", "expected write_protected=INDEX,INDEX,..."),
    ("rdp_level1=maybe", "rdp_level1 takes true or false"),
])
def test_bad_fault_knobs_exit_2_listing_what_is_accepted(capsys, firmware, knob, expected):
    path, _ = firmware("fw.bin", 1024)
    status, _, err = flash(capsys, path, "--address", "0x08000000", *SIM, "--sim-fault", knob)
    assert status == 2 and expected in err
    if "unknown" in expected:
        assert "hsi_off" in err and "unplug_after_bytes" in err


def test_simulator_options_need_sim(capsys, firmware):
    path, _ = firmware("fw.bin", 1024)
    status, _, err = flash(capsys, path, "--address", "0x08000000", "--virtual-time")
    assert status == 2 and "--virtual-time needs --sim CHIP" in err


def test_an_unknown_probe_serial_exits_2_listing_the_present_ones(capsys, firmware, sim_serial):
    path, _ = firmware("fw.bin", 1024)
    status, out, err = flash(capsys, path, "--address", "0x08000000", *SIM, "--probe", "066DFF515")
    assert status == 2 and out == ""
    assert f"no ST-Link probe with serial 066DFF515; present: {sim_serial}" in err


def test_several_probes_need_probe_and_it_picks_one(capsys, firmware, bench):
    bench.chips = ("F103C8", "L432KC")
    path, data = firmware("fw.bin", 2048)
    status, _, err = flash(capsys, path, "--address", "0x08000000")
    assert status == 2 and "2 ST-Link probes present" in err and "--probe SERIAL" in err
    second = bench.serials()[1]
    status, out, _ = flash(capsys, path, "--address", "0x08000000", "--probe", second.lower())
    assert status == 0 and out.startswith("PASS STM32L4 L43x-L44x 256 KiB")
    assert bench.probes[1].target.flash_contents(FLASH, len(data)) == data
    assert bench.probes[0].target.flash_contents(FLASH, len(data)) != data


# --- --json --------------------------------------------------------------------------------------

def test_json_output_is_one_object(capsys, firmware):
    path, _ = firmware("fw.hex", 4096)
    status, out, _ = flash(capsys, path, *SIM, "--json")
    result = json.loads(out)
    assert status == 0 and result["result"] == "passed" and result["exit"] == 0
    assert result["chip"] == "STM32F1 F10x medium-density 64 KiB"
    assert result["idcode"] == "0x20000410" and len(bytes.fromhex(result["uid"])) == 12
    assert result["programmed"] == 4096 and result["skipped"] == 0 and result["seconds"] > 0
    assert result["cause"] is None and result["notes"]


def test_json_failure_and_error_carry_the_cause(capsys, firmware, tmp_path):
    path, _ = firmware("fw.bin")
    status, out, _ = flash(capsys, path, "--address", "0x08000000", *SIM, "--json",
                           "--sim-fault", "write_protected=20", "--erase", "mass")
    result = json.loads(out)
    assert status == 1 and result["result"] == "failed" and result["stage"] == "erase"
    assert "write-protected" in result["cause"] and "WRPRTERR" in result["diagnostics"]
    assert result["cleanup"] == "core halted, flash controller locked"
    status, out, _ = flash(capsys, str(tmp_path / "none.hex"), *SIM, "--json")
    result = json.loads(out)
    assert status == 2 and result["result"] == "error" and "none.hex" in result["cause"]


# --- Ctrl-C --------------------------------------------------------------------------------------

def test_ctrl_c_mid_program_halts_locks_and_closes(capsys, firmware, bench, monkeypatch):
    printer = cli_flash.ProgressPrinter

    class InterruptingPrinter(printer):
        def __call__(self, event):
            super().__call__(event)
            if isinstance(event, StageProgress) and event.stage == "program" and event.done:
                os.kill(os.getpid(), signal.SIGINT)
    monkeypatch.setattr(cli_flash, "ProgressPrinter", InterruptingPrinter)
    path, data = firmware("fw.bin")
    status, out, _ = flash(capsys, path, "--address", "0x08000000")
    assert status == 130
    assert out.strip() == ("FAIL interrupted (Ctrl-C) during program: core halted, flash controller locked")
    target = bench.target
    assert target.core.halted and target.controller.read_reg(F1_CR, 4) & F1_LOCK
    assert bench.links and all(link._closed for link in bench.links)   # the probe was released
    monkeypatch.setattr(cli_flash, "ProgressPrinter", printer)
    assert flash(capsys, path, "--address", "0x08000000")[0] == 0    # and the next run just works
    assert target.flash_contents(FLASH, len(data)) == data


def test_ctrl_c_through_the_console_entry_point(tmp_path):
    """A real SIGINT at real-time pace: exit 130, one FAIL line, no traceback."""
    image = tmp_path / "fw.bin"
    image.write_bytes(random.Random(3).randbytes(32 * 1024))
    process = subprocess.Popen([sys.executable, "-m", "gangflash.cli", "flash", str(image), "--address",
                                "0x08000000", "--sim", "F103C8"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    seen = []
    for line in process.stderr:
        seen.append(line)
        if line.strip() == "erase ...":
            process.send_signal(signal.SIGINT)
            break
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, "".join(seen) + err
    assert out.startswith("FAIL interrupted (Ctrl-C) during erase: core halted, flash controller locked")
    assert "Traceback" not in err


# --- pieces --------------------------------------------------------------------------------------

def test_fault_knobs_parse_by_their_type():
    target, probe = cli_flash.parse_sim_faults(
        ["write_protected=0,1", "stuck_bits=0x08000010:0x01,0x08000400:0x80", "watchdog_running",
         "hsi_off=false", "power_loss_at=0.5", "usb_timeout_on=12", "swd-wait-burst=3", "usb_stall_on=none"],
        TargetFaults, ProbeFaults)
    assert target == {"write_protected": (0, 1), "stuck_bits": {0x08000010: 0x01, 0x08000400: 0x80},
                      "watchdog_running": True, "hsi_off": False, "power_loss_at": 0.5}
    assert probe == {"usb_timeout_on": 12, "swd_wait_burst": 3, "usb_stall_on": None}


def test_a_terminal_gets_one_live_bar_per_stage():
    import io
    from gangflash.target.flash.progress import StageFinished, StageStarted
    stream = io.StringIO()
    printer = cli_flash.ProgressPrinter(stream, live=True)
    printer(StageStarted("program"))
    for done in range(0, 101):
        printer(StageProgress("program", done, 100))
    printer(StageFinished("program", 1.25))
    text = stream.getvalue()
    assert text.count("\r  program  [") == 101 and text.count("\n") == 1
    assert text.endswith("\r\x1b[K  program done in 1.25 s\n")
