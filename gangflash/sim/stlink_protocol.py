"""The simulated probe firmware's own view of the ST-Link wire protocol.

These tables belong to the simulator on purpose: the tool keeps separate ones in
``gangflash.transport``, so a wrong value on either side shows up as a disagreement on the wire
instead of silently agreeing with itself. Values come from ``shared/reference/stlink-protocol.md``
(checked there against pyOCD 0.46 ``pyocd/probe/stlink/constants.py`` and OpenOCD
``src/jtag/drivers/stlink_usb.c``); one ``IntEnum`` per group, each ``@unique`` so a typo that
aliases two members fails at import.

Firmware feature gates live here too, because they are facts about the protocol (which firmware
answers which opcode), not about how the simulator implements it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, unique

COMMAND_SIZE = 16          # every command block, unused bytes zero
MAX_RW_BLOCK = 6144        # 16/32-bit bytes per command: the probe's buffer (STLINK_DATA_SIZE)
MAX_WRITE32_BLOCK = 0xFFFC  # WRITEMEM_32BIT: streamed, bounded only by the u16 length field
TAR_AUTOINC_BLOCK = 1024   # ADIv5 only guarantees TAR auto-increment on the low 10 bits
DP_PORT = 0xFFFF           # READ/WRITE_DAP_REG port value selecting the DP rather than an AP
DEFAULT_BOARD_ID = b"0000"  # GET_BOARD_IDENTIFIERS: "generic firmware" to pyOCD (no board lookup)


@unique
class Command(IntEnum):
    """Byte 0 of a command block."""

    GET_VERSION = 0xF1
    DEBUG = 0xF2
    DFU = 0xF3
    SWIM = 0xF4
    GET_CURRENT_MODE = 0xF5
    GET_TARGET_VOLTAGE = 0xF7
    GET_VERSION_EX = 0xFB      # V3 and later only


@unique
class DfuCommand(IntEnum):
    """Byte 1 after ``Command.DFU``."""

    EXIT = 0x07


@unique
class SwimCommand(IntEnum):
    """Byte 1 after ``Command.SWIM`` (the simulator implements leaving SWIM mode only)."""

    ENTER = 0x00
    EXIT = 0x01


@unique
class DebugCommand(IntEnum):
    """Byte 1 after ``Command.DEBUG`` (API v2 numbering; API v1 forms are not modelled)."""

    GETSTATUS = 0x01
    FORCEDEBUG = 0x02
    READMEM_32BIT = 0x07
    WRITEMEM_32BIT = 0x08
    RUNCORE = 0x09
    STEPCORE = 0x0A
    READMEM_8BIT = 0x0C
    WRITEMEM_8BIT = 0x0D
    EXIT = 0x21
    READCOREID = 0x22
    ENTER = 0x30
    READ_IDCODES = 0x31
    RESETSYS = 0x32
    READREG = 0x33
    WRITEREG = 0x34
    WRITEDEBUGREG = 0x35
    READDEBUGREG = 0x36
    READALLREGS = 0x3A
    GETLASTRWSTATUS = 0x3B
    DRIVE_NRST = 0x3C
    GETLASTRWSTATUS2 = 0x3E
    START_TRACE_RX = 0x40
    STOP_TRACE_RX = 0x41
    GET_TRACE_NB = 0x42
    SWD_SET_FREQ = 0x43
    JTAG_SET_FREQ = 0x44
    READ_DAP_REG = 0x45
    WRITE_DAP_REG = 0x46
    READMEM_16BIT = 0x47
    WRITEMEM_16BIT = 0x48
    INIT_AP = 0x4B
    CLOSE_AP_DBG = 0x4C
    WRITEMEM_32BIT_NO_ADDR_INC = 0x50
    RW_MISC_OUT = 0x51
    RW_MISC_IN = 0x52
    READMEM_32BIT_NO_ADDR_INC = 0x54
    GET_BOARD_IDENTIFIERS = 0x56
    SET_COM_FREQ = 0x61
    GET_COM_FREQ = 0x62
    SWITCH_STLINK_FREQ = 0x63


@unique
class Status(IntEnum):
    """First byte of a status reply (pyOCD also requires the second byte to be 0).

    Names follow pyOCD's ``Status``; 0x1B-0x1D and 0x40 are named in OpenOCD's defines and in
    phryniszak/jstlink ``modules/stLinkConst.js`` (a WebUSB ST-Link driver), which also carries ST's
    one-line meanings quoted in the comments.
    """

    OK = 0x80
    FAULT = 0x81                      # API v1's general error; "core halted" in GETSTATUS replies
    UNKNOWN_ERROR = 0x01
    SPI_ERROR = 0x02
    DMA_ERROR = 0x03
    UNKNOWN_JTAG_CHAIN = 0x04
    NO_DEVICE_CONNECTED = 0x05
    INTERNAL_ERROR = 0x06             # "command ignored (unknown parameter or wrong ST-Link mode)"
    CMD_WAIT = 0x07
    CMD_ERROR = 0x08                  # "bad parameter when setting JTAG frequency"
    GET_IDCODE_ERROR = 0x09           # no answer to the IDCODE read at connect
    ALIGNMENT_ERROR = 0x0A
    DBG_POWER_ERROR = 0x0B
    WRITE_ERROR = 0x0C
    WRITE_VERIF_ERROR = 0x0D
    ALREADY_OPENED_IN_OTHER_MODE = 0x0E
    SWD_AP_WAIT = 0x10
    SWD_AP_FAULT = 0x11
    SWD_AP_ERROR = 0x12
    SWD_AP_PARITY_ERROR = 0x13
    SWD_DP_WAIT = 0x14
    SWD_DP_FAULT = 0x15
    SWD_DP_ERROR = 0x16
    SWD_DP_PARITY_ERROR = 0x17
    SWD_AP_WDATA_ERROR = 0x18
    SWD_AP_STICKY_ERROR = 0x19
    SWD_AP_STICKYORUN_ERROR = 0x1A
    AP_ALREADY_USED = 0x1B
    TRACE_AP_TURNAROUND = 0x1C
    BAD_AP = 0x1D                     # "incorrect access port index"
    SWV_NOT_AVAILABLE = 0x20
    CONF_CHANGED = 0x40               # the expected answer to SWITCH_STLINK_FREQ
    FREQ_NOT_SUPPORTED = 0x41
    UNKNOWN_CMD = 0x42


@unique
class CoreState(IntEnum):
    """GETSTATUS reply byte 0 (shares values with ``Status.OK`` / ``Status.FAULT``)."""

    RUNNING = 0x80
    HALTED = 0x81


@unique
class Mode(IntEnum):
    """GET_CURRENT_MODE reply byte 0."""

    DFU = 0x00
    MASS = 0x01
    DEBUG = 0x02
    SWIM = 0x03
    BOOTLOADER = 0x04


@unique
class EnterMode(IntEnum):
    """ENTER byte 2."""

    JTAG_WITH_RESET = 0x00
    SWD = 0xA3
    JTAG_NO_RESET = 0xA4


@unique
class NrstAction(IntEnum):
    """DRIVE_NRST byte 2."""

    LOW = 0x00
    HIGH = 0x01
    PULSE = 0x02


@unique
class ComPort(IntEnum):
    """SET_COM_FREQ / GET_COM_FREQ byte 2."""

    SWD = 0x00
    JTAG = 0x01


def command_name(block: bytes) -> str:
    """A stable name for statistics and logs; unknown opcodes keep their bytes."""
    try:
        top = Command(block[0])
    except ValueError:
        return f"UNKNOWN_{block[0]:02X}"
    sub_enum = {Command.DEBUG: DebugCommand, Command.DFU: DfuCommand,
                Command.SWIM: SwimCommand}.get(top)
    if sub_enum is None:
        return top.name
    try:
        return f"{top.name}.{sub_enum(block[1]).name}"
    except ValueError:
        return f"{top.name}.UNKNOWN_{block[1]:02X}"


@dataclass(frozen=True)
class FirmwareFeatures:
    """Which commands a given firmware answers, from its hardware major and J version.

    Gates per the reference sheet (OpenOCD ``STLINK_F_*`` flags and pyOCD ``MIN_JTAG_VERSION_*``);
    a command whose gate is closed is unknown to that firmware and answered as such.
    """

    major: int      # 2 for V2/V2-1, 3 for V3
    jtag: int       # the "J" version

    def _v2(self, j: int) -> bool:
        return self.major == 2 and self.jtag >= j

    def _v3(self, j: int = 0) -> bool:
        return self.major >= 3 and self.jtag >= j

    @property
    def target_voltage(self) -> bool:
        """OpenOCD sends F7 from V2J13."""
        return self._v2(13) or self._v3()

    @property
    def trace(self) -> bool:
        """START/STOP_TRACE_RX, GET_TRACE_NB: V2J13+."""
        return self._v2(13) or self._v3()

    @property
    def rw_status2(self) -> bool:
        """GETLASTRWSTATUS2: V2J15+, all V3."""
        return self._v2(15) or self._v3()

    @property
    def swd_set_freq(self) -> bool:
        """0x43: V2 only, J22+."""
        return self._v2(22)

    @property
    def jtag_set_freq(self) -> bool:
        """0x44: V2 only, J24+."""
        return self._v2(24)

    @property
    def dap_registers(self) -> bool:
        """READ/WRITE_DAP_REG: V2J24+, all V3."""
        return self._v2(24) or self._v3()

    @property
    def mem16(self) -> bool:
        """16-bit memory commands: V2J26+, all V3."""
        return self._v2(26) or self._v3()

    @property
    def write32_no_inc(self) -> bool:
        """0x50: V2J26+, all V3."""
        return self._v2(26) or self._v3()

    @property
    def init_ap(self) -> bool:
        """INIT_AP / CLOSE_AP_DBG: V2J28+, all V3."""
        return self._v2(28) or self._v3()

    @property
    def close_ap_bogus_status(self) -> bool:
        """OpenOCD ignores CLOSE_AP's status before J29: that firmware answers a bogus error."""
        return self.major == 2 and self.jtag == 28

    @property
    def csw_apsel(self) -> bool:
        """APSEL/CSW honoured, banked DP, 0x54: V2J32+ / V3J2+."""
        return self._v2(32) or self._v3(2)

    @property
    def rw_misc(self) -> bool:
        """RW_MISC_OUT / RW_MISC_IN batched accesses: V2J32+ / V3J2+ (OpenOCD STLINK_F_HAS_RW_MISC)."""
        return self._v2(32) or self._v3(2)

    @property
    def board_ids(self) -> bool:
        """GET_BOARD_IDENTIFIERS: V2J36+ / V3J6+."""
        return self._v2(36) or self._v3(6)

    @property
    def apiv3_freq(self) -> bool:
        """0x61 / 0x62 / 0x63 and GET_VERSION_EX: V3 only."""
        return self._v3()

    @property
    def rw8_max(self) -> int:
        """8-bit transfers fit one USB packet: 64 bytes, 512 on V3 from J6."""
        return 512 if self._v3(6) else 64
