"""The driver against simulated V2 and V3 probes with real simulated STM32s behind them."""

from __future__ import annotations

import dataclasses

import pytest

from gangflash.sim.stlink_protocol import Mode as SimMode
from gangflash.transport.stlink import (
    DP_PORT, BadAp, CoreState, FirmwareTooOld, MemoryFault, NoTarget, NrstLevel, Stlink,
    UnknownCommand,
)

from .simhelp import connected, open_probe, sim_probe

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]
BOTH = pytest.mark.parametrize("model", ["V2", "V3"])
SRAM = 0x20000000
DHCSR = 0xE000EDF0


def ops(probe, name: str) -> int:
    """How many commands of a kind the simulated probe executed."""
    return probe.stats["by_opcode"][f"DEBUG.{name}"]


# --- version, modes, clock ---------------------------------------------------------------------
@pytest.mark.parametrize(("model", "version", "rw8"), [
    ("V2", "V2J37S7", 64), ("V2-1", "V2J37M26", 64), ("V3", "V3J10S1M7B3", 512),
])
async def test_version_detected_per_generation(model, version, rw8):
    stlink = await open_probe(sim_probe(model=model))
    assert str(stlink.version) == version
    assert stlink.caps.max_rw8 == rw8
    assert stlink.caps.v3_com_freq == (model == "V3")


@pytest.mark.parametrize("jtag", [13, 24, 25])
async def test_too_old_v2_firmware_refused_with_minimum_and_update_hint(jtag):
    probe = sim_probe(jtag_version=jtag)
    with pytest.raises(FirmwareTooOld) as info:
        await open_probe(probe)
    message = str(info.value)
    assert f"J{jtag}" in message and "V2J26 or newer" in message
    assert "STSW-LINK007" in message and probe.serial in message


async def test_oldest_accepted_v2_firmware_works_end_to_end():
    stlink = await open_probe(sim_probe(jtag_version=26))
    await stlink.connect(swd_khz=1800)
    await stlink.write_memory(SRAM + 1, b"\x01\x02\x03\x04\x05", width=2)
    assert await stlink.read_memory(SRAM + 1, 5, width=2) == b"\x01\x02\x03\x04\x05"


@pytest.mark.parametrize("mode", [SimMode.DFU, SimMode.SWIM, SimMode.DEBUG])
async def test_open_leaves_dfu_swim_and_stale_debug_mode(mode):
    probe = sim_probe()
    probe.mode = mode
    stlink = await open_probe(probe)
    assert probe.mode == SimMode.MASS
    await stlink.connect()
    assert probe.mode == SimMode.DEBUG


async def test_v2_clock_is_nearest_divisor_not_above():
    stlink, probe = await connected(swd_khz=1000)
    assert stlink.swd_khz == 950
    assert probe.firmware.swd_hz == pytest.approx(950e3)


async def test_v3_clock_list_read_from_probe_and_nearest_not_above_applied():
    from gangflash.sim.probe_timing import V3_SWD_KHZ     # what the simulated firmware lists
    stlink, probe = await connected(model="V3", swd_khz=4000)
    listed = await stlink.swd_frequencies()
    assert listed == sorted(V3_SWD_KHZ, reverse=True)
    assert stlink.swd_khz == max(f for f in listed if f <= 4000)
    assert probe.firmware.swd_hz == pytest.approx(stlink.swd_khz * 1e3)
    assert await stlink.set_swd_frequency(listed[0]) == listed[0]
    assert await stlink.set_swd_frequency(listed[1] - 1) == listed[2]


async def test_command_unknown_to_the_firmware_is_typed_and_leaves_probe_in_sync():
    stlink, probe = await connected()
    stlink.caps = dataclasses.replace(stlink.caps, v3_com_freq=True)   # pretend: a V2 asked V3
    with pytest.raises(UnknownCommand) as info:
        await stlink.swd_frequencies()
    assert info.value.command == "GET_COM_FREQ" and info.value.status == 0x42
    assert probe.stats["usb_resets"] == 0
    assert await stlink.read_idcode() == 0x1BA01477


@BOTH
async def test_voltage_and_idcode(model):
    stlink, _ = await connected("F412ZG", model=model)
    assert await stlink.target_voltage() == pytest.approx(3.3, abs=0.01)
    assert await stlink.read_idcode() == 0x2BA01477


async def test_probe_without_target_reports_no_target():
    stlink = await open_probe(sim_probe(None))
    with pytest.raises(NoTarget) as info:
        await stlink.connect()
    assert (info.value.serial, info.value.command, info.value.status) == (
        stlink.serial, "ENTER_SWD", 0x09)


# --- memory ------------------------------------------------------------------------------------
@BOTH
@pytest.mark.parametrize(("address", "length"), [
    (SRAM, 4), (SRAM + 1, 3), (SRAM + 3, 1), (SRAM + 2, 6), (SRAM + 0x3FE, 5),  # across 1 KiB
    (SRAM + 0x3F1, 0x20F), (SRAM + 7, 6145), (SRAM, 13000), (SRAM + 1, 63), (SRAM + 5, 513),
])
@pytest.mark.parametrize("width", [1, 2, 4])
async def test_memory_round_trip_any_alignment_and_length(model, address, length, width):
    stlink, probe = await connected(model=model)
    data = bytes((i * 7 + 3) & 0xFF for i in range(length))
    await stlink.write_memory(address, data, width=width)
    assert await stlink.read_memory(address, length, width=width) == data
    # neighbours untouched
    assert await stlink.read_memory(address - 1, 1) == b"\x00"
    assert await stlink.read_memory(address + length, 1) == b"\x00"
    # each memory command was followed by its status request
    memory = sum(probe.stats["by_opcode"][k] for k in probe.stats["by_opcode"]
                 if "MEM_" in k)
    assert ops(probe, "GETLASTRWSTATUS2") == memory


@BOTH
async def test_8bit_chunks_are_one_packet(model):
    stlink, probe = await connected(model=model)
    packet = 64 if model == "V2" else 512
    await stlink.write_memory(SRAM, bytes(range(256)) * 8, width=1)     # 2048 bytes
    assert ops(probe, "WRITEMEM_8BIT") == 2048 // packet


async def test_large_word_read_crosses_1k_boundaries_in_6144_byte_commands():
    stlink, probe = await connected()
    await stlink.read_memory(SRAM + 0x100, 12288)
    assert ops(probe, "READMEM_32BIT") == 2


async def test_unaligned_plan_uses_8bit_only_for_head_and_tail():
    stlink, probe = await connected()
    await stlink.read_memory(SRAM + 3, 4 * 100 + 1 + 2)
    assert ops(probe, "READMEM_8BIT") == 2 and ops(probe, "READMEM_32BIT") == 1


async def test_flash_reads_erased_and_u32_helpers():
    stlink, _ = await connected()
    assert await stlink.read_memory(0x08000000 + 0x8000, 64) == b"\xFF" * 64
    await stlink.write_u32(SRAM + 0x100, 0xDEADBEEF)
    assert await stlink.read_u32(SRAM + 0x100) == 0xDEADBEEF


@BOTH
async def test_memory_fault_names_address_and_probe_stays_usable(model):
    stlink, _ = await connected(model=model)
    with pytest.raises(MemoryFault) as info:
        await stlink.read_memory(0x60000000, 64)
    assert info.value.address == 0x60000000
    assert info.value.serial == stlink.serial and info.value.command == "READMEM_32BIT"
    # sticky error cleared: the next access works
    await stlink.write_u32(SRAM, 0x12345678)
    assert await stlink.read_u32(SRAM) == 0x12345678


async def test_fault_in_the_middle_of_a_write_reports_its_chunk():
    stlink, _ = await connected()
    end_of_sram = SRAM + 20 * 1024
    with pytest.raises(MemoryFault) as info:
        await stlink.write_memory(end_of_sram - 8, bytes(16))
    assert end_of_sram - 8 <= info.value.address <= end_of_sram


# --- core, debug, DAP registers, reset ---------------------------------------------------------
@BOTH
async def test_halt_step_run_status(model):
    stlink, _ = await connected(model=model)
    await stlink.halt()
    assert await stlink.core_state() == CoreState.HALTED
    # a fresh chip has erased flash (locked up): give the core NOPs in SRAM and a Thumb xPSR
    await stlink.write_memory(SRAM + 0x400, b"\x00\xBF" * 64)     # NOP
    await stlink.write_core_register(15, SRAM + 0x400)
    await stlink.write_core_register(16, 0x01000000)
    await stlink.step()
    assert await stlink.core_state() == CoreState.HALTED
    assert await stlink.read_core_register(15) == SRAM + 0x402
    await stlink.run()
    assert await stlink.core_state() == CoreState.RUNNING
    await stlink.halt()
    assert await stlink.read_debug_register(DHCSR) & (1 << 17)     # S_HALT


@BOTH
async def test_core_registers_read_write_and_all(model):
    stlink, _ = await connected(model=model)
    await stlink.halt()
    await stlink.write_core_register(0, 0xCAFEF00D)
    await stlink.write_core_register(13, SRAM + 0x1000)
    assert await stlink.read_core_register(0) == 0xCAFEF00D
    regs = await stlink.read_all_core_registers()
    assert regs.r[0] == 0xCAFEF00D and regs.sp == SRAM + 0x1000
    assert regs.pc == await stlink.read_core_register(15)
    assert regs.xpsr == await stlink.read_core_register(16)


async def test_debug_registers_write_then_read():
    stlink, _ = await connected()
    await stlink.write_debug_register(DHCSR, 0xA05F0003)
    assert await stlink.read_debug_register(DHCSR) & 0x3 == 0x3
    await stlink.write_debug_register(SRAM + 8, 0x55AA55AA)
    assert await stlink.read_u32(SRAM + 8) == 0x55AA55AA


@BOTH
async def test_dap_registers(model):
    stlink, _ = await connected("L432KC", model=model)
    assert await stlink.read_dap_register(DP_PORT, 0x00) == 0x2BA01477
    assert await stlink.read_dap_register(0, 0xFC) == 0x24770011      # AHB-AP IDR
    csw = await stlink.read_dap_register(0, 0x00)
    await stlink.write_dap_register(0, 0x00, csw)
    assert await stlink.read_dap_register(0, 0x00) == csw


@BOTH
async def test_init_ap_opens_existing_ap_and_refuses_a_missing_one(model):
    stlink, _ = await connected(model=model)
    await stlink.init_ap(0)
    with pytest.raises(BadAp) as info:
        await stlink.init_ap(1)
    assert info.value.command == "INIT_AP"


async def test_resetsys_and_nrst_reset_the_chip():
    stlink, probe = await connected()
    target = probe.target
    before = len(target.resets)
    await stlink.reset_system()
    assert target.resets[-1][1] == "software"
    await stlink.drive_nrst(NrstLevel.LOW)
    await stlink.drive_nrst(NrstLevel.HIGH)
    assert target.resets[-1][1] == "nrst"
    await stlink.drive_nrst(NrstLevel.PULSE)
    assert [cause for _, cause in target.resets[before:]] == ["software", "nrst", "nrst"]


async def test_close_leaves_debug_mode_and_releases_the_probe():
    stlink, probe = await connected()
    async with stlink:
        pass
    assert probe.mode == SimMode.MASS
    again = await open_probe(probe)      # a released probe can be opened again
    assert isinstance(again, Stlink)
