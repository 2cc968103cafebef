"""``gangflash probes``: the table for simulated probes, and a calm answer when there is no USB."""

from __future__ import annotations

import subprocess
import sys

import looptime
import pytest

from gangflash import cli
from gangflash.sim.bench import sim_serial
from gangflash.target.identify import identify
from gangflash.transport.sim_backend import SimBackend
from gangflash.transport.stlink import Stlink

from .fakes import FakeStlink
from .simhelp import sim_probe


@pytest.fixture
def virtual_time(monkeypatch):
    """Run the CLI's event loop on virtual time: simulated probes answer instantly."""
    monkeypatch.setitem(cli.ANYIO_BACKEND_OPTIONS, "loop_factory", looptime.new_event_loop)


def test_probes_sim_4_lists_four_rows_with_serial_and_chip(capsys, virtual_time):
    assert cli.main(["probes", "--sim", "4"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:3] == ["PORT", "SERIAL", "VARIANT"]
    rows = lines[1:]
    assert len(rows) == 4
    chips = ["STM32F1 F10x medium-density", "STM32F4 F412", "STM32L4 L43x-L44x",
             "STM32F1 F10x high-density"]
    for index, (row, chip) in enumerate(zip(rows, chips)):
        assert row.startswith(f"sim:{index} ")
        assert sim_serial(index) in row
        assert chip in row
        assert "V2J37S7" in row and "3.30 V" in row


@pytest.mark.parametrize("failure", [ImportError("No module named 'usb1'"),
                                     OSError("libusb-1.0.so: cannot open shared object file")])
def test_probes_without_libusb_says_no_probes_and_exits_0(capsys, monkeypatch, failure):
    def broken():
        raise failure
    monkeypatch.setattr(cli, "_usb_backend", broken)
    assert cli.main(["probes"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "no ST-Link probes found"
    assert "Traceback" not in out


def test_probes_with_empty_bus_says_no_probes(capsys, monkeypatch):
    monkeypatch.setattr(cli, "_usb_backend", lambda: SimBackend([]))
    assert cli.main(["probes"]) == 0
    assert capsys.readouterr().out.strip() == "no ST-Link probes found"


def test_probes_console_script_never_tracebacks():
    """The real entry point, whatever USB this machine has: exit 0, no traceback."""
    done = subprocess.run([sys.executable, "-c", "import sys; from gangflash.cli import main; "
                           "sys.exit(main(['probes']))"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stdout.strip()


def test_rows_explain_old_firmware_and_missing_target(capsys, monkeypatch, virtual_time):
    monkeypatch.setattr(cli, "_usb_backend", lambda: SimBackend([
        sim_probe(index=0), sim_probe(index=1, jtag_version=21), sim_probe(None, index=2)]))
    assert cli.main(["probes"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()[1:]
    assert len(rows) == 3
    assert "STM32F1" in rows[0]
    assert "V2J21" in rows[1] and "too old" in rows[1] and "V2J26" in rows[1]
    assert "no target" in rows[2]


def test_unknown_or_missing_subcommand(capsys):
    assert cli.main([]) == 2
    with pytest.raises(SystemExit):
        cli.main(["nonsense"])


def test_subcommands_register_by_decorator():
    @cli.subcommand("hello-test", "say hello")
    def hello(args):
        return 7
    try:
        assert cli.main(["hello-test"]) == 7
        with pytest.raises(ValueError):
            cli.subcommand("hello-test", "again")(hello)
    finally:
        del cli.SUBCOMMANDS["hello-test"]


# --- chip identification behind the table ------------------------------------------------------
def _store_u32(fake, address: int, value: int) -> None:
    for i in range(4):
        fake.memory[address + i] = (value >> (8 * i)) & 0xFF


@pytest.mark.asyncio
@pytest.mark.parametrize(("cpuid", "location", "idcode", "family"), [
    (0x410CC200, 0x40015800, 0x20006440, "STM32F0"),     # Cortex-M0: DBGMCU on the APB
    (0x410CC601, 0x40015800, 0x10006460, "STM32G0"),     # Cortex-M0+
    (0x411FC231, 0xE0042000, 0x20000410, "STM32F1"),     # Cortex-M3
    (0x411FC271, 0x5C001000, 0x10036450, "STM32H7"),     # Cortex-M7: H7 keeps it elsewhere
])
async def test_identify_reads_dbgmcu_where_the_core_keeps_it(cpuid, location, idcode, family):
    fake = FakeStlink()
    _store_u32(fake, 0xE000ED00, cpuid)
    _store_u32(fake, location, idcode)
    probe = await Stlink.open(fake)
    await probe.connect()
    chip = await identify(probe)
    assert chip is not None and chip.family == family
    assert chip.idcode_address == location and chip.dev_id == idcode & 0xFFF
    assert f"DEV_ID 0x{idcode & 0xFFF:03X}" in chip.describe()


@pytest.mark.asyncio
async def test_identify_unknown_part_and_unreadable_target():
    fake = FakeStlink()
    _store_u32(fake, 0xE000ED00, 0x411FC231)
    _store_u32(fake, 0xE0042000, 0x10000999)
    probe = await Stlink.open(fake)
    await probe.connect()
    chip = await identify(probe)
    assert chip.family is None and chip.describe().startswith("unknown Cortex-M3")
    fake.fault_ranges.append((0xE000ED00, 0xE000ED04))
    assert await identify(probe) is None
