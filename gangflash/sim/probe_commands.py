"""The simulated ST-Link firmware: decodes a command block and answers it.

The USB side (``probe.SimProbe``) frames transfers into commands; this module decides what a
command means for a given firmware, in this order:
1. unknown to this firmware (opcode never existed, or its version gate is closed): answer
   ``[0x42, 0x00]`` (JTAG_UNKNOWN_CMD), never silent success. The firmware does not know how
   long a reply the host expects, so the answer is always those two bytes; a host expecting more
   sees a short read, as it would on hardware. A known write opcode's data phase is still
   consumed, so one stray command cannot turn its payload into a stream of bogus commands (a
   modelling choice: what old firmware does with such bytes is unconfirmed).
2. needs debug mode but the probe is in DFU/mass-storage/SWIM mode: the command's normal reply
   shape with status 0x06 (ST: "command ignored (unknown parameter or wrong ST-Link mode)").
3. executed; a failure becomes the command's normal reply shape with the status in byte 0.
Memory commands are in ``probe_memory``; target access, WAIT retries and status mapping in
``probe_target``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from .faults import ProbeFaults
from .probe_memory import MEMORY_COMMANDS, MemoryCommands, parse_memory_block
from .probe_misc import MiscCommands, rw_misc_out_length
from .probe_target import (C_DEBUGEN, C_HALT, C_STEP, DBGKEY, DHCSR, DP_IDR, AP_IDR,
                           S_HALT, CommandError, TargetLink)
from .probe_timing import (HIGH_SPEED, FULL_SPEED, NRST_PULSE_S, V3_JTAG_KHZ, V3_SWD_KHZ,
                           GenerationTiming, v2_swd_hz)
from .stlink_protocol import (DEFAULT_BOARD_ID, DP_PORT, Command, ComPort, CoreState,
                              DebugCommand, DfuCommand, EnterMode, FirmwareFeatures, Mode,
                              NrstAction, Status, SwimCommand)
from .usb_descriptors import VID_ST, Variant

log = logging.getLogger(__name__)

UNKNOWN_REPLY = bytes([Status.UNKNOWN_CMD, 0])
_VOLTAGE_REF_ADC = 1600   # a0: the reference reading; a1 = V * a0 / 2.4 gives 2*a1*1.2/a0 = V


def _u32(value: int) -> bytes:
    return (value & 0xFFFFFFFF).to_bytes(4, "little")


@dataclass(frozen=True)
class _Spec:
    """How the firmware treats one debug sub-opcode."""

    handler: Callable[["ProbeFirmware", bytes, bytes], bytes | None]
    reply_len: int                 # for error replies: 0 = no IN phase
    gate: str | None = None        # FirmwareFeatures property that must be true
    needs_debug: bool = True
    touches_target: bool = True
    status_first: bool = True      # False: reply has no status field (READCOREID)


class ProbeFirmware(MemoryCommands, MiscCommands):
    """Firmware state (mode, clocks, open APs, last R/W status) and the command handlers."""

    def __init__(self, variant: Variant, target: Any, faults: ProbeFaults,
                 fault_stats: dict[str, int], jtag_version: int | None = None) -> None:
        self.variant = variant
        self.target = target
        self.jtag = variant.default_jtag if jtag_version is None else int(jtag_version)
        if variant.hw_major < 3 and not 0 <= self.jtag < 64:
            raise ValueError("a V2 J version is a 6-bit field (0..63)")
        self.features = FirmwareFeatures(variant.hw_major, self.jtag)
        self.timing: GenerationTiming = HIGH_SPEED if variant.high_speed else FULL_SPEED
        self.link = TargetLink(target, faults, fault_stats)
        # Mass-storage mode after plug-in: stlink-org/stlink #276 shows a V2 (PID 0x3748)
        # reporting "mass" at first contact (what every firmware reports is unconfirmed).
        self.mode = Mode.MASS
        self.swd_hz = self.timing.default_swd_hz
        self.com_khz = {ComPort.SWD: int(self.swd_hz // 1000), ComPort.JTAG: 1000}  # estimates
        self.prescaler = 1
        self._now = 0.0
        self.open_aps: set[int] = {0}
        self.last_rw_status, self.last_rw_address = int(Status.OK), 0
        self.misc_result = None

    # --- framing help for the USB side ------------------------------------------------------------
    def data_phase_length(self, cmd: bytes) -> int:
        """OUT bytes that follow this command block (known write opcodes, even if gated)."""
        if cmd[0] == Command.DEBUG and cmd[1] in MEMORY_COMMANDS:
            _, writes, _ = MEMORY_COMMANDS[cmd[1]]
            if writes:
                return parse_memory_block(cmd)[1]
        if cmd[0] == Command.DEBUG and cmd[1] == DebugCommand.RW_MISC_OUT:
            return rw_misc_out_length(cmd, self.misc_max_items())
        return 0

    def touches_target(self, cmd: bytes) -> bool:
        """Whether the chip must be brought up to date (``target.sync``) before this command."""
        if cmd[0] == Command.GET_TARGET_VOLTAGE:
            return True
        if cmd[0] != Command.DEBUG:
            return False
        if cmd[1] in MEMORY_COMMANDS:
            return True
        spec = _DEBUG_SPECS.get(cmd[1])
        return spec is not None and spec.touches_target

    # --- execution ------------------------------------------------------------------------------
    def execute(self, cmd: bytes, data: bytes, now: float) -> bytes | None:
        """Run one complete command (its data phase included); return the reply, if any."""
        self._now = now
        top = cmd[0]
        if top == Command.DEBUG:          # first: nearly every command a session sends
            return self._debug(cmd, data)
        if top == Command.GET_VERSION:
            return self._get_version()
        if top == Command.GET_VERSION_EX:
            return self._get_version_ex() if self.features.apiv3_freq else UNKNOWN_REPLY
        if top == Command.GET_CURRENT_MODE:
            return bytes([self.mode, 0])
        if top == Command.GET_TARGET_VOLTAGE:
            return self._target_voltage() if self.features.target_voltage else UNKNOWN_REPLY
        if top == Command.DFU and cmd[1] == DfuCommand.EXIT:
            if self.mode == Mode.DFU:
                self.mode = Mode.MASS
            return None
        if top == Command.SWIM and cmd[1] == SwimCommand.EXIT:
            if self.mode == Mode.SWIM:
                self.mode = Mode.MASS
            return None
        log.debug("unknown command %s", cmd.hex())
        return UNKNOWN_REPLY

    def _debug(self, cmd: bytes, data: bytes) -> bytes | None:
        sub = cmd[1]
        if sub in MEMORY_COMMANDS:
            gate = _MEMORY_GATES.get(sub)
            if gate is not None and not getattr(self.features, gate):
                return UNKNOWN_REPLY
            return self.memory_command(sub, cmd, data)
        spec = _DEBUG_SPECS.get(sub)
        if spec is None or (spec.gate is not None and not getattr(self.features, spec.gate)):
            log.debug("debug sub-command 0x%02X unknown to %s J%d", sub, self.variant.name,
                      self.jtag)
            return UNKNOWN_REPLY
        try:
            if spec.needs_debug and self.mode != Mode.DEBUG:
                raise CommandError(Status.INTERNAL_ERROR)
            return spec.handler(self, cmd, data)
        except CommandError as err:
            if spec.reply_len == 0:
                return None
            if not spec.status_first:
                return bytes(spec.reply_len)
            return bytes([err.status]) + bytes(spec.reply_len - 1)

    # --- top-level commands -----------------------------------------------------------------------
    def _ids(self) -> bytes:
        return VID_ST.to_bytes(2, "little") + self.variant.pid.to_bytes(2, "little")

    def _get_version(self) -> bytes:
        v = self.variant
        if v.hw_major >= 3:   # V3 reports J and the low field as 0: hosts must ask 0xFB
            packed = v.hw_major << 12
        else:
            packed = (v.hw_major << 12) | (self.jtag << 6) | (v.default_low & 0x3F)
        return packed.to_bytes(2, "big") + self._ids()

    def _get_version_ex(self) -> bytes:
        v = self.variant
        return (bytes([v.hw_major, v.default_swim, self.jtag, v.default_low, v.default_bridge,
                       0, 0, 0]) + self._ids())

    def _target_voltage(self) -> bytes:
        volts = float(self.target.voltage()) if self.target is not None else 0.0
        a1 = max(0, round(volts * _VOLTAGE_REF_ADC / 2.4))
        return _u32(_VOLTAGE_REF_ADC) + _u32(a1)

    # --- debug commands ---------------------------------------------------------------------------
    def _ok(self) -> bytes:
        return bytes([Status.OK, 0])

    def _h_getstatus(self, cmd: bytes, data: bytes) -> bytes:
        halted = self.link.read32(DHCSR) & S_HALT
        return bytes([CoreState.HALTED if halted else CoreState.RUNNING, 0])

    def _h_forcedebug(self, cmd: bytes, data: bytes) -> bytes:
        self.link.write32(DHCSR, DBGKEY | C_HALT | C_DEBUGEN)
        return self._ok()

    def _h_runcore(self, cmd: bytes, data: bytes) -> bytes:
        self.link.write32(DHCSR, DBGKEY | C_DEBUGEN)
        return self._ok()

    def _h_stepcore(self, cmd: bytes, data: bytes) -> bytes:
        self.link.write32(DHCSR, DBGKEY | C_STEP | C_DEBUGEN)
        return self._ok()

    def _h_exit(self, cmd: bytes, data: bytes) -> None:
        if self.mode == Mode.DEBUG:
            self.mode = Mode.MASS
            self.open_aps = {0}
        return None

    def _h_readcoreid(self, cmd: bytes, data: bytes) -> bytes:
        return _u32(self.link.dp_read(DP_IDR, no_target=Status.GET_IDCODE_ERROR))

    def _h_enter(self, cmd: bytes, data: bytes) -> bytes:
        if cmd[2] != EnterMode.SWD:
            # JTAG entries (0x00, 0xA4) are real but the simulated targets speak SWD only.
            log.warning("ENTER 0x%02X: only SWD is simulated", cmd[2])
            raise CommandError(Status.INTERNAL_ERROR)
        # The probe is in debug mode from here on even if the target does not answer.
        self.mode = Mode.DEBUG
        self.open_aps = {0}
        self.last_rw_status, self.last_rw_address = int(Status.OK), 0
        self.link.connect()
        return self._ok()

    def _h_read_idcodes(self, cmd: bytes, data: bytes) -> bytes:
        idcode = self.link.dp_read(DP_IDR, no_target=Status.GET_IDCODE_ERROR)
        return bytes([Status.OK, 0, 0, 0]) + _u32(idcode) + bytes(4)

    def _h_resetsys(self, cmd: bytes, data: bytes) -> bytes:
        self.link.reset_system()
        return self._ok()

    def _h_readreg(self, cmd: bytes, data: bytes) -> bytes:
        return bytes([Status.OK, 0, 0, 0]) + _u32(self.link.read_core_register(cmd[2]))

    def _h_writereg(self, cmd: bytes, data: bytes) -> bytes:
        self.link.write_core_register(cmd[2], int.from_bytes(cmd[3:7], "little"))
        return self._ok()

    def _h_writedebugreg(self, cmd: bytes, data: bytes) -> bytes:
        address = int.from_bytes(cmd[2:6], "little")
        if address % 4:
            raise CommandError(Status.ALIGNMENT_ERROR, address)
        self.link.write32(address, int.from_bytes(cmd[6:10], "little"))
        return self._ok()

    def _h_readdebugreg(self, cmd: bytes, data: bytes) -> bytes:
        address = int.from_bytes(cmd[2:6], "little")
        if address % 4:
            raise CommandError(Status.ALIGNMENT_ERROR, address)
        return bytes([Status.OK, 0, 0, 0]) + _u32(self.link.read32(address))

    def _h_readallregs(self, cmd: bytes, data: bytes) -> bytes:
        # REGSEL 0-20: R0-R15, xPSR, MSP, PSP, then what stlink calls rw (19) and rw2 (20).
        values = b"".join(_u32(self.link.read_core_register(r)) for r in range(21))
        return bytes([Status.OK, 0, 0, 0]) + values

    def _h_getlastrwstatus(self, cmd: bytes, data: bytes) -> bytes:
        return self.last_rw_status_reply()

    def _h_getlastrwstatus2(self, cmd: bytes, data: bytes) -> bytes:
        return self.last_rw_status2_reply()

    def _h_drive_nrst(self, cmd: bytes, data: bytes) -> bytes:
        action = cmd[2]
        if action not in tuple(NrstAction):
            raise CommandError(Status.INTERNAL_ERROR)
        if self.target is not None:
            if action in (NrstAction.LOW, NrstAction.PULSE):
                self.target.set_nrst(True)
            if action == NrstAction.PULSE:
                self.link.meter.extra_s += NRST_PULSE_S
                self.target.sync(self._now + NRST_PULSE_S)
            if action in (NrstAction.HIGH, NrstAction.PULSE):
                self.target.set_nrst(False)
        return self._ok()

    def _h_start_trace(self, cmd: bytes, data: bytes) -> bytes:
        return bytes([Status.SWV_NOT_AVAILABLE, 0])    # the simulated probes capture no SWO

    def _h_stop_trace(self, cmd: bytes, data: bytes) -> bytes:
        return self._ok()

    def _h_get_trace_nb(self, cmd: bytes, data: bytes) -> bytes:
        return bytes(2)                                 # no SWO bytes waiting

    def _h_swd_set_freq(self, cmd: bytes, data: bytes) -> bytes:
        self.swd_hz = v2_swd_hz(int.from_bytes(cmd[2:4], "little"))
        return self._ok()

    def _h_jtag_set_freq(self, cmd: bytes, data: bytes) -> bytes:
        return self._ok()                               # JTAG is not simulated beyond this

    def _dap_port(self, cmd: bytes) -> tuple[int, int]:
        port, addr = int.from_bytes(cmd[2:4], "little"), int.from_bytes(cmd[4:6], "little")
        if port == DP_PORT:
            if addr & 0xF0 and not self.features.csw_apsel:
                raise CommandError(Status.INTERNAL_ERROR)   # banked DP needs J32+ / V3J2+
        elif port > 0xFF:
            raise CommandError(Status.BAD_AP)
        return port, addr

    def _h_read_dap_reg(self, cmd: bytes, data: bytes) -> bytes:
        port, addr = self._dap_port(cmd)
        value = self.link.dp_read(addr) if port == DP_PORT else self.link.ap_read(port, addr)
        return bytes([Status.OK, 0, 0, 0]) + _u32(value)

    def _h_write_dap_reg(self, cmd: bytes, data: bytes) -> bytes:
        port, addr = self._dap_port(cmd)
        value = int.from_bytes(cmd[6:10], "little")
        if port == DP_PORT:
            self.link.dp_write(addr, value)
        else:
            self.link.ap_write(port, addr, value)
        return self._ok()

    def _h_init_ap(self, cmd: bytes, data: bytes) -> bytes:
        apsel = cmd[2]
        if self.link.ap_read(apsel, AP_IDR) == 0:
            raise CommandError(Status.BAD_AP)           # no AP there (estimate of the check)
        self.open_aps.add(apsel)
        return self._ok()

    def _h_close_ap(self, cmd: bytes, data: bytes) -> bytes:
        if cmd[2] != 0:
            self.open_aps.discard(cmd[2])
        if self.features.close_ap_bogus_status:
            return bytes([Status.BAD_AP, 0])
        return self._ok()

    def _h_board_ids(self, cmd: bytes, data: bytes) -> bytes:
        return (bytes([Status.OK, 0]) + DEFAULT_BOARD_ID).ljust(128, b"\x00")

    def _com_port(self, cmd: bytes) -> ComPort:
        if cmd[2] not in tuple(ComPort):
            raise CommandError(Status.INTERNAL_ERROR)
        return ComPort(cmd[2])

    def _h_set_com_freq(self, cmd: bytes, data: bytes) -> bytes:
        port = self._com_port(cmd)
        wanted = int.from_bytes(cmd[4:8], "little")
        table = V3_SWD_KHZ if port == ComPort.SWD else V3_JTAG_KHZ
        fitting = [khz for khz in table if khz <= wanted]
        if not fitting:
            raise CommandError(Status.FREQ_NOT_SUPPORTED)
        self.com_khz[port] = max(fitting)
        if port == ComPort.SWD:
            self.swd_hz = self.com_khz[port] * 1e3
        return bytes([Status.OK, 0, 0, 0]) + _u32(self.com_khz[port])

    def _h_get_com_freq(self, cmd: bytes, data: bytes) -> bytes:
        port = self._com_port(cmd)
        table = V3_SWD_KHZ if port == ComPort.SWD else V3_JTAG_KHZ
        body = (bytes([Status.OK, 0, 0, 0]) + _u32(self.com_khz[port]) + _u32(len(table))
                + b"".join(_u32(khz) for khz in table[:10]))
        return body.ljust(52, b"\x00")

    def _h_switch_stlink_freq(self, cmd: bytes, data: bytes) -> bytes:
        if cmd[2] not in (1, 2, 4):
            raise CommandError(Status.INTERNAL_ERROR)
        self.prescaler = cmd[2]
        return bytes([Status.CONF_CHANGED]) + bytes(7)


_D = DebugCommand
_DEBUG_SPECS: dict[int, _Spec] = {
    _D.GETSTATUS: _Spec(ProbeFirmware._h_getstatus, 2),
    _D.FORCEDEBUG: _Spec(ProbeFirmware._h_forcedebug, 2),
    _D.RUNCORE: _Spec(ProbeFirmware._h_runcore, 2),
    _D.STEPCORE: _Spec(ProbeFirmware._h_stepcore, 2),
    _D.EXIT: _Spec(ProbeFirmware._h_exit, 0, needs_debug=False, touches_target=False),
    _D.READCOREID: _Spec(ProbeFirmware._h_readcoreid, 4, status_first=False),
    _D.ENTER: _Spec(ProbeFirmware._h_enter, 2, needs_debug=False),
    _D.READ_IDCODES: _Spec(ProbeFirmware._h_read_idcodes, 12),
    _D.RESETSYS: _Spec(ProbeFirmware._h_resetsys, 2),
    _D.READREG: _Spec(ProbeFirmware._h_readreg, 8),
    _D.WRITEREG: _Spec(ProbeFirmware._h_writereg, 2),
    _D.WRITEDEBUGREG: _Spec(ProbeFirmware._h_writedebugreg, 2),
    _D.READDEBUGREG: _Spec(ProbeFirmware._h_readdebugreg, 8),
    _D.READALLREGS: _Spec(ProbeFirmware._h_readallregs, 88),
    _D.GETLASTRWSTATUS: _Spec(ProbeFirmware._h_getlastrwstatus, 2, needs_debug=False,
                              touches_target=False),
    _D.GETLASTRWSTATUS2: _Spec(ProbeFirmware._h_getlastrwstatus2, 12, gate="rw_status2",
                               needs_debug=False, touches_target=False),
    _D.DRIVE_NRST: _Spec(ProbeFirmware._h_drive_nrst, 2, needs_debug=False),
    _D.START_TRACE_RX: _Spec(ProbeFirmware._h_start_trace, 2, gate="trace",
                                 needs_debug=False, touches_target=False),
    _D.STOP_TRACE_RX: _Spec(ProbeFirmware._h_stop_trace, 2, gate="trace",
                                 needs_debug=False, touches_target=False),
    _D.GET_TRACE_NB: _Spec(ProbeFirmware._h_get_trace_nb, 2, gate="trace",
                                 needs_debug=False, touches_target=False),
    _D.SWD_SET_FREQ: _Spec(ProbeFirmware._h_swd_set_freq, 2, gate="swd_set_freq",
                           needs_debug=False, touches_target=False),
    _D.JTAG_SET_FREQ: _Spec(ProbeFirmware._h_jtag_set_freq, 2, gate="jtag_set_freq",
                            needs_debug=False, touches_target=False),
    _D.READ_DAP_REG: _Spec(ProbeFirmware._h_read_dap_reg, 8, gate="dap_registers"),
    _D.WRITE_DAP_REG: _Spec(ProbeFirmware._h_write_dap_reg, 2, gate="dap_registers"),
    _D.INIT_AP: _Spec(ProbeFirmware._h_init_ap, 2, gate="init_ap"),
    _D.CLOSE_AP_DBG: _Spec(ProbeFirmware._h_close_ap, 2, gate="init_ap", touches_target=False),
    # RW_MISC checks the mode per batch itself (its statuses travel in the F2 52 reply).
    _D.RW_MISC_OUT: _Spec(MiscCommands.rw_misc_out, 0, gate="rw_misc", needs_debug=False),
    _D.RW_MISC_IN: _Spec(MiscCommands.rw_misc_in, 0, gate="rw_misc", needs_debug=False,
                         touches_target=False),
    _D.GET_BOARD_IDENTIFIERS: _Spec(ProbeFirmware._h_board_ids, 128, gate="board_ids",
                                    needs_debug=False, touches_target=False),
    _D.SET_COM_FREQ: _Spec(ProbeFirmware._h_set_com_freq, 8, gate="apiv3_freq",
                           needs_debug=False, touches_target=False),
    _D.GET_COM_FREQ: _Spec(ProbeFirmware._h_get_com_freq, 52, gate="apiv3_freq",
                           needs_debug=False, touches_target=False),
    _D.SWITCH_STLINK_FREQ: _Spec(ProbeFirmware._h_switch_stlink_freq, 8, gate="apiv3_freq",
                                 needs_debug=False, touches_target=False),
}

_MEMORY_GATES: dict[int, str] = {
    _D.READMEM_16BIT: "mem16",
    _D.WRITEMEM_16BIT: "mem16",
    _D.WRITEMEM_32BIT_NO_ADDR_INC: "write32_no_inc",
    _D.READMEM_32BIT_NO_ADDR_INC: "csw_apsel",
}
