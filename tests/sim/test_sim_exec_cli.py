"""``gangflash sim exec`` itself: the tool's exit status, the ``--`` split, ``--report``, the
testbed's temporary root removed on every exit path (normal, crashing tool, Ctrl-C, SIGTERM),
near-zero idle cost, and a clear message where umockdev or PyGObject is missing (issue 9)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gangflash import cli
from gangflash.cli_sim_exec import exec_boards
from gangflash.orchestrator.config_sim import sim_boards_from_spec
from gangflash.sim.bench import sim_serial
from gangflash.sim.usbfs import environment

pytestmark = pytest.mark.sim_exec

REPO = Path(__file__).resolve().parents[2]
GANGFLASH = [sys.executable, "-c", "import sys; from gangflash.cli import main; sys.exit(main())"]
PRINT_ROOT = 'echo "root=$UMOCKDEV_DIR"; '


def sim_exec(*words: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*GANGFLASH, "sim", "exec", *words], capture_output=True, text=True,
                          timeout=60, cwd=REPO, **kwargs)


def root_in(output: str) -> Path:
    line = next(line for line in output.splitlines() if line.startswith("root="))
    return Path(line.removeprefix("root="))


def test_exit_status_is_the_tools_and_the_root_is_gone_after():
    run = sim_exec("--sim", "F103C8", "--", "sh", "-c", PRINT_ROOT + "test -d $UMOCKDEV_DIR/sys && exit 7")
    assert run.returncode == 7, run.stderr
    root = root_in(run.stdout)
    assert root.name.startswith("umockdev.") and not root.exists()


def test_a_crashing_tool_gives_128_plus_its_signal_and_the_root_is_removed():
    run = sim_exec("--", "sh", "-c", PRINT_ROOT + "kill -SEGV $$")
    assert run.returncode == 128 + signal.SIGSEGV
    assert not root_in(run.stdout).exists()


def test_words_after_the_double_dash_are_the_tools_even_our_own_options():
    run = sim_exec("--sim", "F412ZG", "--", "sh", "-c", 'echo "$0 $1"', "--sim", "--report")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "--sim --report"
    assert "sim exec:" not in run.stderr          # --report after -- was the tool's, not ours


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupting_sim_exec_stops_the_tool_and_removes_the_root(how):
    """Ctrl-C reaches the whole foreground group (tool and us); SIGTERM only us, and we pass it on."""
    proc = subprocess.Popen([*GANGFLASH, "sim", "exec", "--", "sh", "-c", PRINT_ROOT + "exec sleep 60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            start_new_session=True)
    try:
        root = Path(proc.stdout.readline().strip().removeprefix("root="))
        assert root.exists()
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM)
        status = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert status == 128 + (signal.SIGINT if how == "ctrl-c" else signal.SIGTERM)
    assert not root.exists()
    assert "Traceback" not in proc.stderr.read()


def test_report_names_each_probe_its_chip_commands_time_and_faults(tmp_path):
    config = tmp_path / "two.toml"
    config.write_text(
        '[batch]\nname = "t"\n[firmware]\npath = "fw.bin"\nbase_address = 0x08000000\n'
        '[slots]\nall = true\n[sim]\n'
        '[[sim.board]]\nchip = "F103C8"\n'
        '[[sim.board]]\nchip = "L432KC"\nprobe_model = "V3"\nfaults = { watchdog_running = true }\n')
    (tmp_path / "fw.bin").write_bytes(bytes(1024))
    run = sim_exec(str(config), "--report", "--", "st-info", "--probe")
    assert run.returncode == 0, run.stderr
    report = run.stderr
    assert "tool exited with status 0" in report
    assert f"probe 1-1: V2 serial {sim_serial(0)}, chip F103C8" in report
    assert f"probe 1-2: V3 serial {sim_serial(1)}, chip L432KC" in report
    assert "commands served: 15" in report         # st-info --probe's sequence, per probe
    assert "faults set: watchdog_running" in report and "faults set: none" in report
    assert "virtual time:" in report


def test_pace_credits_wall_clock_gaps_to_the_boards_virtual_time():
    argv = ["sh", "-c", "st-info --probe >/dev/null; sleep 0.3; st-info --probe >/dev/null"]
    paced = exec_boards(sim_boards_from_spec("F103C8"), argv, pace=1.0)
    flat = exec_boards(sim_boards_from_spec("F103C8"), argv, pace=0.0)
    assert paced.exit_status == flat.exit_status == 0
    modelled = flat.probes[0].stats["virtual_time"]
    assert flat.clocks[0].now() == pytest.approx(modelled)     # pace 0: only transfer costs
    assert paced.clocks[0].now() >= modelled + 0.3             # the sleep, at least, was credited


def test_a_tool_waiting_on_the_probe_costs_next_to_no_cpu(capfd):
    """A read with nothing to answer waits 1 s in libusb: with the readiness FIFO the tool's
    libusb sleeps in poll, so neither it nor our handler spins (usb-testing.md, FIFO trick)."""
    script = ("import usb1, time\n"
              "with usb1.USBContext() as ctx:\n"
              "    handle = ctx.openByVendorIDAndProductID(0x0483, 0x3748)\n"
              "    handle.claimInterface(0)\n"
              "    start = time.process_time()\n"
              "    try:\n"
              "        handle.bulkRead(0x81, 64, timeout=1000)\n"
              "    except usb1.USBErrorTimeout:\n"
              "        print('timeout', time.process_time() - start)\n")
    owner_cpu = time.process_time()
    result = exec_boards(sim_boards_from_spec("F103C8"), [sys.executable, "-c", script])
    owner_cpu = time.process_time() - owner_cpu
    assert result.exit_status == 0
    tool_cpu = float(capfd.readouterr().out.split("timeout")[1])
    assert owner_cpu < 0.3 and tool_cpu < 0.3     # a spinning libusb measured 0.7 CPU-s per idle second


def test_missing_pygobject_is_a_message_saying_how_to_install_not_a_traceback(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gi", None)        # "import gi" now fails
    status = cli.main(["sim", "exec", "--sim", "F103C8", "--", "st-info", "--probe"])
    err = capsys.readouterr().err
    assert status == 2
    assert "PyGObject" in err and "./dev.sh setup" in err and "umockdev" in err
    assert "Traceback" not in err


def test_missing_preload_library_is_a_message_too(monkeypatch, capsys):
    monkeypatch.setattr(environment, "PRELOAD", "libumockdev-preload-not-installed.so.0")
    status = cli.main(["sim", "exec", "--", "true"])
    err = capsys.readouterr().err
    assert status == 2
    assert "libumockdev-preload-not-installed.so.0 is not installed" in err
    assert "./dev.sh setup" in err and "Traceback" not in err


def test_no_tool_and_unknown_tool_are_usage_errors(capsys):
    assert cli.main(["sim", "exec", "--sim", "F103C8"]) == 2
    assert "no tool given" in capsys.readouterr().err
    assert cli.main(["sim", "exec", "--", "no-such-tool-gangflash"]) == 127
    assert "cannot run 'no-such-tool-gangflash': no such program" in capsys.readouterr().err


def test_a_signal_during_cleanup_waits_until_the_root_is_gone():
    from gangflash.sim.usbfs.testbed import UsbTestbed

    bed = UsbTestbed()
    root = bed.root
    inner = bed._close

    def interrupted_close():
        os.kill(os.getpid(), signal.SIGINT)      # Ctrl-C in the middle of the cleanup
        inner()

    bed._close = interrupted_close
    with pytest.raises(KeyboardInterrupt):
        bed.close()
    assert not os.path.exists(root)
