"""WRITEMEM_32BIT longer than the probe's 6144-byte read buffer.

st-flash 1.7.0 writes each F2/F4/F7/L4 loader buffer (32 KiB when SRAM > 32 KiB) with a single
WRITEMEM_32BIT and never looks at the status byte of GETLASTRWSTATUS2. Real ST-Links take such
writes (stlink has relied on it since 2012; PR #1157 removed a host-side cap that broke it), so
the simulated firmware must too: when it refused them with 0x06, the loader programmed the
untouched (all-zero) SRAM buffer and st-flash failed "Verification of flash failed at offset: 0"
on the F412ZG and L432KC while the F103C8 (1 KiB chunks) passed. Reads keep the 6144-byte limit.
"""

from __future__ import annotations

import random

import pytest

from gangflash.sim.bench import make_probe
from gangflash.sim.clock import ManualClock

from .test_probe_bytes import Host, mem

SRAM = 0x20000000
FLASH = 0x08000000


def host_for(chip: str, model: str) -> tuple[Host, object]:
    clock = ManualClock()
    probe = make_probe(chip, clock=clock, model=model)
    host = Host(probe, clock)
    host.enter()
    return host, probe.target


@pytest.mark.parametrize("model", ["V2", "V3"])
@pytest.mark.parametrize("chip, length", [("F412ZG", 0x8000), ("L432KC", 0x8000),
                                          ("F412ZG", 0xFFFC)])
def test_one_write32_command_fills_a_loader_sized_buffer(chip, length, model):
    """The shape st-flash uses: the buffer right after a 48/52-byte loader, crossing 1 KiB TAR
    blocks, all in one command; every byte lands and the status is OK."""
    host, target = host_for(chip, model)
    data = random.Random(length).randbytes(length)
    at = SRAM + 0x30
    host.cmd(mem(0x08, at, length), data)
    assert host.rw_status2()[0] == 0x80
    assert target.mem_read(at, length, 4) == data
    assert host.cmd(b"\xF1", reply=6)[4:6] == host.probe.pid.to_bytes(2, "little")   # in sync


def test_reads_and_other_wide_writes_keep_the_6144_byte_limit():
    host, target = host_for("F412ZG", "V2")
    host.cmd(mem(0x08, SRAM, 8192), b"\xA5" * 8192)
    assert host.rw_status2()[0] == 0x80
    assert host.cmd(mem(0x07, SRAM, 6148), reply=6148) == bytes(6148)
    assert host.rw_status2()[0] == 0x06
    host.cmd(mem(0x48, SRAM, 6146), b"\x00" * 6146)
    assert host.rw_status2()[0] == 0x06
    assert target.mem_read(SRAM, 4, 4) == b"\xA5" * 4


# --- the tool itself --------------------------------------------------------------------------------
@pytest.mark.sim_exec
@pytest.mark.parametrize("chip", ["F412ZG", "L432KC"])
def test_st_flash_writes_64k_through_its_32k_loader_buffers(chip, tmp_path, capfd):
    from gangflash.cli_sim_exec import exec_boards
    from gangflash.orchestrator.config_sim import sim_boards_from_spec

    image = tmp_path / "img.bin"
    image.write_bytes(random.Random(chip).randbytes(0x10000))
    # st-flash gives each loader run 500 ms of wall time, and a 32 KiB L4 buffer is ~335 ms of
    # flash programming. The simulator's own computing is never credited to the chip, so on a
    # loaded CI host the chip could fall behind the wall clock: pace 4 keeps this test about the
    # transfer size, not the host's load.
    result = exec_boards(sim_boards_from_spec(chip),
                         ["st-flash", "write", str(image), hex(FLASH)], pace=4.0)
    out, err = capfd.readouterr()
    assert result.exit_status == 0, out + err
    assert "Flash written and verified! jolly good!" in out + err
    probe = result.probes[0]
    # the loader, then one command per 32 KiB buffer: nothing split, nothing refused
    assert probe.stats["by_opcode"]["DEBUG.WRITEMEM_32BIT"] == 3
    assert probe.target.flash_contents(FLASH, 0x10000) == image.read_bytes()
