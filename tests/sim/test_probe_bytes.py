"""Byte-level tests of the simulated ST-Link: command blocks in, exact reply bytes out.

A small host plays pyOCD's part (one OUT per command block, one OUT for the data phase, one IN of
max(len, wMaxPacketSize)) on a ManualClock it advances by every cost the probe reports.
"""

from __future__ import annotations

import pytest

from gangflash.sim.clock import ManualClock
from gangflash.sim.errors import UsbGone, UsbStall, UsbTimeout
from gangflash.sim.faults import ProbeFaults
from gangflash.sim.probe import SimProbe
from gangflash.sim.probe_target import WAIT_RETRIES
from gangflash.sim.stlink_protocol import Mode

from .fake_target import RAM_BASE, RAM_SIZE, FakeTarget

SERIAL = "0668FF323637414257071827"
BOTH = pytest.mark.parametrize("model", ["V2", "V3"])


class Host:
    """Drives a probe the way pyOCD does and keeps the virtual clock honest."""

    def __init__(self, probe: SimProbe, clock: ManualClock) -> None:
        self.probe, self.clock = probe, clock

    def out(self, data: bytes) -> None:
        self.clock.advance(self.probe.bulk_out(self.probe.out_ep, data))

    def read(self, n: int) -> bytes:
        data, cost = self.probe.bulk_in(self.probe.in_ep, max(n, self.probe.max_packet))
        self.clock.advance(cost)
        return data

    def cmd(self, block: bytes, data: bytes | None = None, reply: int = 0) -> bytes | None:
        self.out(block.ljust(16, b"\0"))
        if data is not None:
            self.out(data)
        return self.read(reply) if reply else None

    def enter(self) -> None:
        assert self.cmd(b"\xF2\x30\xA3", reply=2) == b"\x80\x00"

    def rw_status2(self) -> bytes:
        return self.cmd(b"\xF2\x3E", reply=12)


def make(model: str = "V2", *, target: FakeTarget | None | str = "fake", serial: str = SERIAL,
         faults: ProbeFaults | None = None, jtag: int | None = None,
         enter: bool = False) -> tuple[Host, FakeTarget | None]:
    tgt = FakeTarget() if target == "fake" else target
    clock = ManualClock()
    probe = SimProbe(serial=serial, target=tgt, clock=clock, model=model, faults=faults,
                     jtag_version=jtag)
    host = Host(probe, clock)
    if enter:
        host.enter()
    return host, tgt


def mem(op: int, addr: int, length: int, apsel: int = 0) -> bytes:
    return (bytes([0xF2, op]) + addr.to_bytes(4, "little") + length.to_bytes(2, "little")
            + bytes([apsel]))


def le32(value: int) -> bytes:
    return value.to_bytes(4, "little")


# --- descriptors ----------------------------------------------------------------------------------
# bLength, type, bcdUSB 2.00, class triple, bMaxPacketSize0 64, VID, PID, bcdDevice 1.00,
# strings 1/2/3, one configuration (OpenOCD doc/usb_adapters/stlink dumps)
@pytest.mark.parametrize("model, expected", [
    ("V2", "12 01 0002 00 00 00 40 8304 4837 0001 01 02 03 01"),
    ("V2-1", "12 01 0002 EF 02 01 40 8304 4B37 0001 01 02 03 01"),
    ("V3", "12 01 0002 EF 02 01 40 8304 4F37 0001 01 02 03 01"),
    ("V3E", "12 01 0002 EF 02 01 40 8304 4E37 0001 01 02 03 01"),
])
def test_device_descriptor_is_st_vid_usb2_and_variant_pid(model, expected):
    host, _ = make(model)
    assert host.probe.device_descriptor() == bytes.fromhex(expected)


def test_v2_config_descriptor_matches_the_standalone_dump():
    host, _ = make("V2")
    assert host.probe.config_descriptor() == bytes.fromhex(
        "09 02 2700 01 01 00 80 32"          # 39 bytes, 1 interface, bus powered, 100 mA
        " 09 04 00 00 03 FF FF FF 04"         # interface 0, vendor class, "ST Link"
        " 07 05 81 02 4000 00"                # bulk IN 64
        " 07 05 02 02 4000 00"                # bulk OUT 64
        " 07 05 83 02 4000 00")               # SWV bulk IN 64


@pytest.mark.parametrize("model, total, interfaces, packet, swv_packet, config_string", [
    ("V2-1", 128, 4, 64, 32, 0), ("V3", 151, 5, 512, 512, 4), ("V3E", 128, 4, 512, 512, 4)])
def test_config_descriptor_length_and_debug_endpoints(model, total, interfaces, packet,
                                                      swv_packet, config_string):
    host, _ = make(model)
    cfg = host.probe.config_descriptor()
    assert len(cfg) == total and int.from_bytes(cfg[2:4], "little") == total
    assert cfg[4] == interfaces and cfg[5] == 1 and cfg[6] == config_string
    p = packet.to_bytes(2, "little").hex()
    s = swv_packet.to_bytes(2, "little").hex()
    assert cfg[18:39] == bytes.fromhex(f"07058102{p}00" f"07050102{p}00" f"07058202{s}00")
    assert (host.probe.in_ep, host.probe.out_ep, host.probe.swv_ep) == (0x81, 0x01, 0x82)
    assert host.probe.max_packet == packet


def test_string_descriptors():
    host, _ = make("V2")
    p = host.probe
    assert p.string_descriptor(0) == bytes.fromhex("04030904")
    assert p.string_descriptor(1) == bytes([38, 3]) + "STMicroelectronics".encode("utf-16-le")
    assert p.string_descriptor(2) == bytes([26, 3]) + "STM32 STLink".encode("utf-16-le")
    assert p.string_descriptor(3) == bytes([50, 3]) + SERIAL.encode("utf-16-le")
    assert p.string_descriptor(4) == bytes([16, 3]) + "ST Link".encode("utf-16-le")
    assert (p.manufacturer, p.product, p.serial, p.serial_string) == (
        "STMicroelectronics", "STM32 STLink", SERIAL, SERIAL)
    with pytest.raises(UsbStall):
        p.string_descriptor(9)


def test_old_v2_twelve_byte_serial_is_raw_units_hosts_hex_encode():
    raw = "\x85m\x01\x01\x10\x13GS8LN\x00"      # the units of a real clone (pyOCD #1523)
    host, _ = make("V2", serial=raw)
    assert host.probe.string_descriptor(3) == bytes([26, 3]) + bytes.fromhex(
        "8500 6d00 0100 0100 1000 1300 4700 5300 3800 4c00 4e00 0000")
    assert host.probe.serial == "856D010110134753384C4E00"
    assert host.probe.serial_string == raw


def test_twelve_character_serial_is_refused_off_v2():
    with pytest.raises(ValueError):
        make("V3", serial="ABCDEFGHIJKL")


# --- version, mode, voltage -----------------------------------------------------------------------
@pytest.mark.parametrize("model, jtag, expected", [
    ("V2", None, "294783044837"), ("V2", 21, "254783044837"), ("V2-1", None, "295A83044B37"),
    ("V3", None, "300083044F37"), ("V3E", None, "300083044E37")])
def test_get_version(model, jtag, expected):
    host, _ = make(model, jtag=jtag)
    assert host.cmd(b"\xF1", reply=6) == bytes.fromhex(expected)


def test_get_version_ex_on_v3_and_unknown_on_v2():
    host, _ = make("V3")
    assert host.cmd(b"\xFB", reply=12) == bytes.fromhex("03010A0703000000 83044F37")
    host, _ = make("V3", jtag=6)
    assert host.cmd(b"\xFB", reply=12)[2] == 6
    host, _ = make("V2")
    assert host.cmd(b"\xFB", reply=12) == b"\x42\x00"


@BOTH
def test_modes_enter_and_exit(model):
    host, target = make(model)
    assert host.cmd(b"\xF5", reply=2) == b"\x01\x00"
    host.enter()
    assert host.cmd(b"\xF5", reply=2) == b"\x02\x00"
    host.cmd(b"\xF2\x21")
    with pytest.raises(UsbTimeout):
        host.read(2)                                # EXIT has no IN phase
    assert host.cmd(b"\xF5", reply=2) == b"\x01\x00"


def test_dfu_and_swim_exit():
    host, _ = make("V2")
    host.probe.mode = Mode.DFU
    assert host.cmd(b"\xF5", reply=2) == b"\x00\x00"
    host.cmd(b"\xF3\x07")
    assert host.cmd(b"\xF5", reply=2) == b"\x01\x00"
    host.probe.mode = Mode.SWIM
    host.cmd(b"\xF4\x01")
    assert host.cmd(b"\xF5", reply=2) == b"\x01\x00"
    assert host.cmd(b"\xF3\x08", reply=2) == b"\x42\x00"


@BOTH
def test_target_voltage_readings(model):
    host, target = make(model)
    assert host.cmd(b"\xF7", reply=8) == le32(1600) + le32(2200)      # 2*2200*1.2/1600 = 3.3
    target.powered = False
    assert host.cmd(b"\xF7", reply=8) == le32(1600) + le32(0)
    host, _ = make(model, target=None)
    assert host.cmd(b"\xF7", reply=8) == le32(1600) + le32(0)
    host, _ = make("V2", jtag=12)
    assert host.cmd(b"\xF7", reply=8) == b"\x42\x00"


# --- core control through DHCSR -------------------------------------------------------------------
@BOTH
def test_getstatus_forcedebug_runcore_stepcore(model):
    host, target = make(model, enter=True)
    assert host.cmd(b"\xF2\x01", reply=2) == b"\x80\x00"
    assert host.cmd(b"\xF2\x02", reply=2) == b"\x80\x00"
    assert target.halted and host.cmd(b"\xF2\x01", reply=2) == b"\x81\x00"
    target.regs[15] = 0x20000100
    assert host.cmd(b"\xF2\x0A", reply=2) == b"\x80\x00"
    assert target.regs[15] == 0x20000102 and target.halted
    assert host.cmd(b"\xF2\x09", reply=2) == b"\x80\x00"
    assert not target.halted and host.cmd(b"\xF2\x01", reply=2) == b"\x80\x00"


@BOTH
def test_readcoreid_read_idcodes_resetsys(model):
    host, target = make(model, enter=True)
    assert host.cmd(b"\xF2\x22", reply=4) == bytes.fromhex("7714A01B")
    assert host.cmd(b"\xF2\x31", reply=12) == bytes.fromhex("80000000 7714A01B 00000000")
    assert host.cmd(b"\xF2\x32", reply=2) == b"\x80\x00" and target.reset_count == 1


@BOTH
def test_core_registers_through_dcrsr(model):
    host, target = make(model, enter=True)
    host.cmd(b"\xF2\x02", reply=2)
    target.regs[1] = 0x12345678
    assert host.cmd(b"\xF2\x33\x01", reply=8) == bytes.fromhex("8000000078563412")
    assert host.cmd(b"\xF2\x34\x02" + le32(0xDEADBEEF), reply=2) == b"\x80\x00"
    assert target.regs[2] == 0xDEADBEEF
    target.regs.update({i: 0x100 + i for i in range(21)})
    assert host.cmd(b"\xF2\x3A", reply=88) == (
        b"\x80\x00\x00\x00" + b"".join(le32(0x100 + i) for i in range(21)))


@BOTH
def test_register_access_on_a_running_core_reports_fault(model):
    host, target = make(model, enter=True)
    assert host.cmd(b"\xF2\x33\x00", reply=8) == bytes.fromhex("8100000000000000")
    assert host.cmd(b"\xF2\x34\x00" + le32(1), reply=2) == b"\x81\x00"


@BOTH
def test_debug_register_read_write(model):
    host, target = make(model, enter=True)
    addr = le32(RAM_BASE + 0x40)
    assert host.cmd(b"\xF2\x35" + addr + le32(0xCAFEF00D), reply=2) == b"\x80\x00"
    assert host.cmd(b"\xF2\x36" + addr, reply=8) == b"\x80\x00\x00\x00" + le32(0xCAFEF00D)
    assert host.cmd(b"\xF2\x36" + le32(0x60000000), reply=8) == bytes.fromhex("1100000000000000")
    assert host.cmd(b"\xF2\x36" + le32(RAM_BASE + 2), reply=8) == bytes.fromhex("0A00000000000000")


@BOTH
def test_drive_nrst(model):
    host, target = make(model)
    assert host.cmd(b"\xF2\x3C\x00", reply=2) == b"\x80\x00"
    assert host.cmd(b"\xF2\x3C\x01", reply=2) == b"\x80\x00"
    before = host.clock()
    assert host.cmd(b"\xF2\x3C\x02", reply=2) == b"\x80\x00"
    assert target.nrst_log == [True, False, True, False] and target.reset_count == 2
    assert target.sync_times[-1] > before and host.clock() >= target.sync_times[-1]
    assert host.cmd(b"\xF2\x3C\x03", reply=2) == b"\x06\x00"


# --- memory ---------------------------------------------------------------------------------------
@BOTH
def test_memory_32bit_write_then_read_and_status(model):
    host, target = make(model, enter=True)
    payload = bytes(range(16))
    assert host.cmd(mem(0x08, RAM_BASE + 0x100, 16), payload) is None
    assert host.rw_status2() == bytes(12).replace(b"\x00", b"\x80", 1)
    assert target.ram[0x100:0x110] == payload
    assert host.cmd(mem(0x07, RAM_BASE + 0x100, 16), reply=16) == payload
    assert host.cmd(b"\xF2\x3B", reply=2) == b"\x80\x00"


@BOTH
def test_memory_8bit_and_16bit(model):
    host, target = make(model, enter=True)
    host.cmd(mem(0x0D, RAM_BASE + 3, 3), b"\xAA\xBB\xCC")
    assert target.ram[3:6] == b"\xAA\xBB\xCC"
    assert host.cmd(mem(0x0C, RAM_BASE + 4, 1), reply=2) == b"\xBB\x00"   # 1 byte -> 2 bytes
    assert host.cmd(mem(0x0C, RAM_BASE + 3, 3), reply=3) == b"\xAA\xBB\xCC"
    host.cmd(mem(0x48, RAM_BASE + 0x10, 4), b"\x34\x12\x78\x56")
    assert host.cmd(mem(0x47, RAM_BASE + 0x10, 4), reply=4) == b"\x34\x12\x78\x56"
    assert host.rw_status2()[0] == 0x80


@BOTH
def test_memory_no_address_increment(model):
    host, target = make(model, enter=True)
    host.cmd(mem(0x50, RAM_BASE, 12), le32(1) + le32(2) + le32(3))
    assert target.ram[0:8] == le32(3) + bytes(4)
    assert host.cmd(mem(0x54, RAM_BASE, 8), reply=8) == le32(3) * 2


@BOTH
def test_read_crossing_a_1kib_tar_block_is_one_command(model):
    host, target = make(model, enter=True)
    target.ram[0x3F8:0x408] = bytes(range(16))
    assert host.cmd(mem(0x07, RAM_BASE + 0x3F8, 16), reply=16) == bytes(range(16))
    assert host.rw_status2()[0] == 0x80


@BOTH
def test_memory_fault_reports_ap_fault_with_address(model):
    host, target = make(model, enter=True)
    end = RAM_BASE + RAM_SIZE
    assert host.cmd(mem(0x07, end - 8, 16), reply=16) == bytes(16)
    assert host.rw_status2() == b"\x11\x00\x00\x00" + le32(end) + bytes(4)
    assert host.cmd(b"\xF2\x3B", reply=2) == b"\x11\x00"
    host.cmd(mem(0x08, 0x60000000, 4), b"abcd")
    assert host.rw_status2() == b"\x11\x00\x00\x00" + le32(0x60000000) + bytes(4)


# --- limits ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("model, jtag, limit", [("V2", None, 64), ("V3", None, 512),
                                                ("V3", 5, 64)])
def test_8bit_transfer_is_limited_to_one_packet(model, jtag, limit):
    host, target = make(model, jtag=jtag, enter=True)
    assert host.cmd(mem(0x0C, RAM_BASE, limit), reply=limit) == bytes(limit)
    assert host.rw_status2()[0] == 0x80
    assert host.cmd(mem(0x0C, RAM_BASE, limit + 1), reply=limit + 1) == bytes(limit + 1)
    assert host.rw_status2() == b"\x06" + bytes(11)
    host.cmd(mem(0x0D, RAM_BASE, limit + 1), b"\xFF" * (limit + 1))
    assert host.rw_status2()[0] == 0x06 and target.ram[0] == 0


@BOTH
def test_32bit_alignment_and_6144_byte_read_limit(model):
    """Reads stop at 6144 bytes; WRITEMEM_32BIT does not (test_write32_streaming.py)."""
    host, target = make(model, enter=True)
    assert host.cmd(mem(0x07, RAM_BASE + 2, 4), reply=4) == bytes(4)
    assert host.rw_status2() == b"\x0A\x00\x00\x00" + le32(RAM_BASE + 2) + bytes(4)
    assert host.cmd(mem(0x07, RAM_BASE, 6), reply=6) == bytes(6)
    assert host.rw_status2()[0] == 0x0A
    host.cmd(mem(0x48, RAM_BASE + 1, 2), b"\x01\x02")
    assert host.rw_status2()[0] == 0x0A and target.ram[1] == 0
    assert len(host.cmd(mem(0x07, RAM_BASE, 6144), reply=6144)) == 6144
    assert host.rw_status2()[0] == 0x80
    assert host.cmd(mem(0x07, RAM_BASE, 6148), reply=6148) == bytes(6148)
    assert host.rw_status2()[0] == 0x06
    host.cmd(mem(0x48, RAM_BASE, 6146), b"\x55" * 6146)        # 16-bit writes keep the cap
    assert host.rw_status2()[0] == 0x06 and target.ram[0] == 0
    assert host.cmd(b"\xF1", reply=6)[4:6] == host.probe.pid.to_bytes(2, "little")   # in sync


# --- version gates --------------------------------------------------------------------------------
def test_16bit_memory_needs_v2j26():
    host, target = make("V2", jtag=25, enter=True)
    assert host.cmd(mem(0x47, RAM_BASE, 4), reply=4) == b"\x42\x00"
    host.cmd(mem(0x48, RAM_BASE, 2), b"\x01\x02")          # data phase still consumed
    assert host.read(2) == b"\x42\x00" and target.ram[0] == 0
    assert host.cmd(b"\xF1", reply=6)[:2] == bytes.fromhex("2647")
    host, _ = make("V2", jtag=26, enter=True)
    assert host.cmd(mem(0x47, RAM_BASE, 4), reply=4) == bytes(4)


@pytest.mark.parametrize("block, reply, closed_jtag, open_jtag", [
    (b"\xF2\x3E", 12, 14, 15),                          # GETLASTRWSTATUS2
    (b"\xF2\x43\x01", 2, 21, 22),                        # SWD_SET_FREQ
    (b"\xF2\x45\xFF\xFF\x00\x00", 8, 23, 24),            # READ_DAP_REG
    (b"\xF2\x4B\x00", 2, 27, 28),                        # INIT_AP
    (b"\xF2\x56", 128, 35, 36),                          # GET_BOARD_IDENTIFIERS
    (b"\xF2\x54" + le32(RAM_BASE) + b"\x04\x00", 4, 31, 32),   # READMEM_32BIT_NO_ADDR_INC
])
def test_v2_version_gates(block, reply, closed_jtag, open_jtag):
    host, _ = make("V2", jtag=closed_jtag, enter=True)
    assert host.cmd(block, reply=reply) == b"\x42\x00"
    host, _ = make("V2", jtag=open_jtag, enter=True)
    answer = host.cmd(block, reply=reply)
    assert len(answer) == reply and answer[0] in (0x80, 0x00)


def test_v2_only_and_v3_only_opcodes():
    host, _ = make("V3", enter=True)
    assert host.cmd(b"\xF2\x43\x01", reply=2) == b"\x42\x00"
    host, _ = make("V2", enter=True)
    for sub in (0x61, 0x62, 0x63):
        assert host.cmd(bytes([0xF2, sub]), reply=8) == b"\x42\x00"
    host, _ = make("V3", jtag=5)
    assert host.cmd(b"\xF2\x56", reply=128) == b"\x42\x00"


@BOTH
def test_unknown_commands_answer_unknown(model):
    host, _ = make(model, enter=True)
    for block in (b"\xF2\x99", b"\x00", b"\xF2\x3D", b"\xF4\x00", b"\xF2\x55"):
        assert host.cmd(block, reply=2) == b"\x42\x00"


# --- debug-mode commands outside debug mode -------------------------------------------------------
@BOTH
def test_target_commands_before_enter_are_refused(model):
    host, target = make(model)
    assert host.cmd(mem(0x07, RAM_BASE, 4), reply=4) == bytes(4)
    assert host.rw_status2() == b"\x06" + bytes(11)
    assert host.cmd(b"\xF2\x45\xFF\xFF\x00\x00", reply=8) == b"\x06" + bytes(7)
    assert host.cmd(b"\xF2\x01", reply=2) == b"\x06\x00"
    assert host.cmd(b"\xF2\x22", reply=4) == bytes(4)
    assert target.accesses == 0


# --- DP / AP --------------------------------------------------------------------------------------
@BOTH
def test_dap_register_access(model):
    host, target = make(model, enter=True)
    assert host.cmd(b"\xF2\x45\xFF\xFF\x00\x00", reply=8) == bytes.fromhex("800000007714A01B")
    assert host.cmd(b"\xF2\x46\xFF\xFF\x04\x00" + le32(0x50000F00), reply=2) == b"\x80\x00"
    assert host.cmd(b"\xF2\x45\xFF\xFF\x04\x00", reply=8) == b"\x80\x00\x00\x00" + le32(0xF0000F00)
    assert host.cmd(b"\xF2\x46\xFF\xFF\x00\x00" + le32(0x1E), reply=2) == b"\x80\x00"
    assert target.abort_writes == [0x1E]
    assert host.cmd(b"\xF2\x45\x00\x00\xFC\x00", reply=8) == bytes.fromhex("8000000011007714")
    assert host.cmd(b"\xF2\x45\x01\x00\xFC\x00", reply=8) == bytes(8).replace(b"\x00", b"\x80", 1)
    assert host.cmd(b"\xF2\x45\x00\x01\xFC\x00", reply=8) == b"\x1D" + bytes(7)


def test_banked_dp_registers_need_j32():
    host, _ = make("V2", jtag=31, enter=True)
    assert host.cmd(b"\xF2\x45\xFF\xFF\x14\x00", reply=8) == b"\x06" + bytes(7)
    host, _ = make("V2", jtag=32, enter=True)
    assert host.cmd(b"\xF2\x45\xFF\xFF\x14\x00", reply=8)[0] == 0x80


@BOTH
def test_init_and_close_ap(model):
    host, target = make(model, enter=True)
    assert host.cmd(b"\xF2\x4B\x00\x00", reply=2) == b"\x80\x00"
    assert host.cmd(b"\xF2\x4B\x01\x00", reply=2) == b"\x1D\x00"          # no AP 1
    assert host.cmd(mem(0x07, RAM_BASE, 4, apsel=1), reply=4) == bytes(4)
    assert host.rw_status2()[0] == 0x1D                                       # not opened
    assert host.cmd(b"\xF2\x4C\x00", reply=2) == b"\x80\x00"


def test_close_ap_on_j28_answers_the_bogus_status():
    host, _ = make("V2", jtag=28, enter=True)
    assert host.cmd(b"\xF2\x4C\x00", reply=2) == b"\x1D\x00"


# --- clocks and board id --------------------------------------------------------------------------
def test_v2_swd_set_freq():
    host, _ = make("V2")
    assert host.probe.firmware.swd_hz == 1.8e6
    assert host.cmd(b"\xF2\x43\x03", reply=2) == b"\x80\x00"
    assert host.probe.firmware.swd_hz == 950e3


def test_v3_com_freq_commands():
    host, _ = make("V3")
    assert host.cmd(b"\xF2\x63\x01", reply=8) == b"\x40" + bytes(7)
    assert host.cmd(b"\xF2\x63\x03", reply=8) == b"\x06" + bytes(7)
    assert host.cmd(b"\xF2\x61\x00\x00" + le32(1000), reply=8) == b"\x80\x00\x00\x00" + le32(1000)
    assert host.cmd(b"\xF2\x61\x00\x00" + le32(30000), reply=8) == b"\x80\x00\x00\x00" + le32(24000)
    assert host.cmd(b"\xF2\x61\x00\x00" + le32(4), reply=8) == b"\x41" + bytes(7)
    assert host.probe.firmware.swd_hz == 24e6
    khz = (24000, 8000, 3333, 1000, 200, 50, 5)
    assert host.cmd(b"\xF2\x62\x00", reply=52) == (
        b"\x80\x00\x00\x00" + le32(24000) + le32(7) + b"".join(map(le32, khz))).ljust(52, b"\0")


@BOTH
def test_board_identifiers_and_trace(model):
    host, _ = make(model)
    assert host.cmd(b"\xF2\x56", reply=128) == b"\x80\x000000".ljust(128, b"\0")
    assert host.cmd(b"\xF2\x40\x00\x10" + le32(2000000), reply=2) == b"\x20\x00"
    assert host.cmd(b"\xF2\x41", reply=2) == b"\x80\x00"
    assert host.cmd(b"\xF2\x42", reply=2) == b"\x00\x00"


# --- framing --------------------------------------------------------------------------------------
def test_framing_short_block_big_buffer_partial_reads():
    host, _ = make("V2")
    host.out(b"\xF1")                                        # 1 byte: the rest reads as zero
    data, _ = host.probe.bulk_in(0x81, 4)
    assert data == bytes.fromhex("29478304")
    data, _ = host.probe.bulk_in(0x81, 512)
    assert data == bytes.fromhex("4837")
    host.out(b"\xF1".ljust(16, b"\0"))
    host.out(b"\xF5".ljust(16, b"\0"))
    assert host.read(64) == bytes.fromhex("294783044837")  # never two replies in one read
    assert host.read(64) == b"\x01\x00"
    with pytest.raises(UsbTimeout):
        host.read(64)
    with pytest.raises(UsbTimeout):
        host.probe.bulk_in(0x83, 64)                         # no SWO data


def test_data_phase_may_arrive_in_pieces():
    host, target = make("V2", enter=True)
    host.out(mem(0x08, RAM_BASE, 8).ljust(16, b"\0"))
    host.out(b"\x01\x02\x03")
    assert target.ram[0:3] == bytes(3)                       # not yet executed
    host.out(b"\x04\x05\x06\x07\x08")
    assert target.ram[0:8] == bytes(range(1, 9))


def test_usb_reset_drops_a_half_received_command():
    host, target = make("V2", enter=True)
    host.out(mem(0x08, RAM_BASE, 8).ljust(16, b"\0"))
    cost = host.probe.usb_reset()
    assert cost == pytest.approx(0.020, abs=0.002)
    assert host.cmd(b"\xF1", reply=6) == bytes.fromhex("294783044837")
    assert host.cmd(b"\xF5", reply=2) == b"\x02\x00"          # mode survives
    assert host.probe.stats["usb_resets"] == 1


def test_sync_before_target_commands_only():
    host, target = make("V2")
    host.cmd(b"\xF1", reply=6)
    assert target.sync_times == []
    host.enter()
    host.cmd(mem(0x07, RAM_BASE, 4), reply=4)
    assert len(target.sync_times) == 2 and target.sync_times[-1] <= host.clock()


# --- fault knobs ---------------------------------------------------------------------------------
@BOTH
def test_usb_timeout_on_nth_transfer_fires_once(model):
    host, _ = make(model, faults=ProbeFaults(usb_timeout_on=2))
    host.out(b"\xF1".ljust(16, b"\0"))
    with pytest.raises(UsbTimeout):
        host.read(6)
    assert host.read(6)[:2] in (bytes.fromhex("2947"), bytes.fromhex("3000"))   # reply kept
    assert host.cmd(b"\xF5", reply=2) == b"\x01\x00"
    assert host.probe.stats["faults"]["usb_timeout"] == 1


def test_usb_timeout_on_an_out_transfer_loses_the_command():
    host, _ = make("V2", faults=ProbeFaults(usb_timeout_on=1))
    with pytest.raises(UsbTimeout):
        host.out(b"\xF1".ljust(16, b"\0"))
    with pytest.raises(UsbTimeout):
        host.read(6)
    assert host.cmd(b"\xF1", reply=6) == bytes.fromhex("294783044837")
    assert host.probe.stats["commands"] == 1


@BOTH
def test_usb_stall_on_nth_transfer_fires_once(model):
    host, _ = make(model, faults=ProbeFaults(usb_stall_on=1))
    with pytest.raises(UsbStall):
        host.out(b"\xF5".ljust(16, b"\0"))
    assert host.cmd(b"\xF5", reply=2) == b"\x01\x00"
    assert host.probe.stats["faults"]["usb_stall"] == 1


def test_unplug_after_bytes_is_forever():
    host, _ = make("V2", faults=ProbeFaults(unplug_after_bytes=20))
    host.out(b"\xF1".ljust(16, b"\0"))
    with pytest.raises(UsbGone):
        host.read(6)                                         # 16 + 6 > 20
    assert host.probe.unplugged
    for call in (lambda: host.out(b"\xF5"), lambda: host.read(2), host.probe.usb_reset,
                 host.probe.device_descriptor):
        with pytest.raises(UsbGone):
            call()


def test_unplug_exactly_at_the_limit_completes_that_transfer():
    host, _ = make("V2", faults=ProbeFaults(unplug_after_bytes=22))
    assert host.cmd(b"\xF1", reply=6) == bytes.fromhex("294783044837")
    with pytest.raises(UsbGone):
        host.cmd(b"\xF5", reply=2)


def test_unplug_mid_data_phase_loses_the_partial_command():
    host, target = make("V2", faults=ProbeFaults(unplug_after_bytes=16 + 2 + 16 + 4))
    host.enter()
    with pytest.raises(UsbGone):
        host.cmd(mem(0x08, RAM_BASE, 8), bytes(range(1, 9)))
    assert target.ram[0:8] == bytes(8)


@BOTH
def test_short_wait_burst_is_absorbed(model):
    host, target = make(model, enter=True)
    host.probe.faults.swd_wait_burst = WAIT_RETRIES
    target.ram[0:4] = b"\x11\x22\x33\x44"
    assert host.cmd(mem(0x07, RAM_BASE, 4), reply=4) == b"\x11\x22\x33\x44"
    assert host.rw_status2()[0] == 0x80
    assert host.probe.stats["faults"]["swd_wait"] == WAIT_RETRIES


@BOTH
def test_long_wait_burst_is_reported(model):
    host, target = make(model, faults=ProbeFaults(swd_wait_burst=2 * (WAIT_RETRIES + 1),
                                                  swd_wait_on_command=2))
    host.enter()                                             # command 1: before the burst
    assert host.cmd(mem(0x07, RAM_BASE, 4), reply=4) == bytes(4)
    assert host.rw_status2() == b"\x10\x00\x00\x00" + le32(RAM_BASE) + bytes(4)
    assert host.cmd(b"\xF2\x45\xFF\xFF\x04\x00", reply=8) == b"\x14" + bytes(7)
    assert host.cmd(b"\xF2\x45\xFF\xFF\x00\x00", reply=8)[0] == 0x80      # burst over
    assert host.probe.stats["faults"]["swd_wait_reported"] == 2


def test_waits_from_the_target_are_retried_too():
    host, target = make("V2", enter=True)
    target.wait_next = WAIT_RETRIES
    assert host.cmd(b"\xF2\x45\xFF\xFF\x00\x00", reply=8) == bytes.fromhex("800000007714A01B")
    target.wait_next = WAIT_RETRIES + 1
    assert host.cmd(b"\xF2\x45\xFF\xFF\x00\x00", reply=8) == b"\x14" + bytes(7)


@BOTH
def test_unpowered_or_missing_target(model):
    host, target = make(model)
    target.powered = False
    assert host.cmd(b"\xF2\x30\xA3", reply=2) == b"\x09\x00"
    assert host.cmd(b"\xF5", reply=2) == b"\x02\x00"
    assert host.cmd(b"\xF2\x31", reply=12) == b"\x09" + bytes(11)
    assert host.cmd(mem(0x07, RAM_BASE, 4), reply=4) == bytes(4)
    assert host.rw_status2()[0] == 0x12
    assert host.cmd(b"\xF2\x45\xFF\xFF\x04\x00", reply=8) == b"\x16" + bytes(7)
    target.powered = True
    host.enter()
    host, _ = make(model, target=None)
    assert host.cmd(b"\xF2\x30\xA3", reply=2) == b"\x09\x00"
    assert host.cmd(b"\xF2\x30\xA4", reply=2) == b"\x06\x00"          # JTAG is not simulated


# --- timing and stats -----------------------------------------------------------------------------
@pytest.mark.parametrize("model, low, high", [("V2", 0.95e-3, 1.1e-3), ("V3", 110e-6, 260e-6)])
def test_small_command_round_trip_rate(model, low, high):
    host, _ = make(model, enter=True)
    start = host.clock()
    for _ in range(100):
        host.cmd(b"\xF2\x45\xFF\xFF\x00\x00", reply=8)
    per_command = (host.clock() - start) / 100
    assert low <= per_command <= high


def test_block_read_costs_follow_swd_clock_and_generation():
    def read_cost(model: str, setup: bytes | None) -> float:
        host, _ = make(model, enter=True)
        if setup:
            host.cmd(setup, reply=len(setup) and (2 if setup[1] == 0x43 else 8))
        start = host.clock()
        host.cmd(mem(0x07, RAM_BASE, 6144), reply=6144)
        return host.clock() - start

    v2_slow = read_cost("V2", None)                                   # 1.8 MHz default
    v2_fast = read_cost("V2", b"\xF2\x43\x00")                        # 4.6 MHz
    v3_fast = read_cost("V3", b"\xF2\x61\x00\x00" + le32(24000))
    assert 0.045 < v2_slow < 0.070                                    # ~39 ms SWD + 5 ms USB
    assert v2_fast < v2_slow and v3_fast < v2_fast / 5


def test_stats_count_commands_bytes_and_time():
    host, _ = make("V2")
    host.cmd(b"\xF1", reply=6)
    host.enter()
    host.cmd(mem(0x08, RAM_BASE, 8), bytes(8))
    s = host.probe.stats
    assert s["commands"] == 3
    assert s["by_opcode"]["GET_VERSION"] == 1
    assert s["by_opcode"]["DEBUG.ENTER"] == 1 and s["by_opcode"]["DEBUG.WRITEMEM_32BIT"] == 1
    assert s["bytes_out"] == 16 * 3 + 8 and s["bytes_in"] == 6 + 2
    assert s["transfers_out"] == 4 and s["transfers_in"] == 2
    assert s["virtual_time"] == pytest.approx(host.clock()) and s["swd_time"] > 0
