"""The ST-Link USB protocol as tables: opcodes, status codes, firmware gates, limits.

The tool's own tables (the simulator keeps its own on purpose, so one cannot hide a mistake in
the other). Values from ``shared/reference/stlink-protocol.md``, which cites OpenOCD
``stlink_usb.c`` and pyOCD 0.46 ``probe/stlink/constants.py`` for each. One ``IntEnum`` per command
group, each ``@unique``, so a duplicated byte is an import-time error rather than a latent bug.
"""

from __future__ import annotations

from enum import IntEnum, unique

COMMAND_SIZE = 16           # every command block is 16 bytes, unused bytes zero
DP_PORT = 0xFFFF            # READ/WRITE_DAP_REG "port" meaning the DP rather than an AP


@unique
class Command(IntEnum):
    """Top-level opcodes (command byte 0)."""

    GET_VERSION = 0xF1
    DEBUG = 0xF2
    DFU = 0xF3
    SWIM = 0xF4
    GET_CURRENT_MODE = 0xF5
    GET_TARGET_VOLTAGE = 0xF7
    GET_VERSION_EX = 0xFB


@unique
class DfuCommand(IntEnum):
    """Byte 1 after ``Command.DFU``."""

    EXIT = 0x07


@unique
class SwimCommand(IntEnum):
    """Byte 1 after ``Command.SWIM``."""

    EXIT = 0x01


@unique
class DebugCommand(IntEnum):
    """Byte 1 after ``Command.DEBUG`` (API v2 forms; API v1 is not supported)."""

    GETSTATUS = 0x01
    FORCEDEBUG = 0x02
    READMEM_32BIT = 0x07
    WRITEMEM_32BIT = 0x08
    RUNCORE = 0x09
    STEPCORE = 0x0A
    READMEM_8BIT = 0x0C
    WRITEMEM_8BIT = 0x0D
    EXIT = 0x21
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
    SWD_SET_FREQ = 0x43
    READ_DAP_REG = 0x45
    WRITE_DAP_REG = 0x46
    READMEM_16BIT = 0x47
    WRITEMEM_16BIT = 0x48
    INIT_AP = 0x4B
    CLOSE_AP_DBG = 0x4C
    SET_COM_FREQ = 0x61
    GET_COM_FREQ = 0x62


@unique
class EnterMode(IntEnum):
    """Byte 2 of ``DebugCommand.ENTER``."""

    SWD_NO_RESET = 0xA3
    JTAG_NO_RESET = 0xA4


@unique
class Mode(IntEnum):
    """``GET_CURRENT_MODE`` reply byte 0."""

    DFU = 0x00
    MASS_STORAGE = 0x01
    DEBUG = 0x02
    SWIM = 0x03
    BOOTLOADER = 0x04


@unique
class NrstLevel(IntEnum):
    """``DRIVE_NRST`` byte 2."""

    LOW = 0x00
    HIGH = 0x01
    PULSE = 0x02


@unique
class ComPort(IntEnum):
    """Byte 2 of the V3 ``SET/GET_COM_FREQ`` commands."""

    SWD = 0x00
    JTAG = 0x01


@unique
class CoreState(IntEnum):
    """``GETSTATUS`` reply byte 0 (the same bytes as Status.OK / FAULT, another meaning)."""

    RUNNING = 0x80
    HALTED = 0x81


@unique
class Status(IntEnum):
    """First byte of every status reply."""

    JTAG_UNKNOWN_ERROR = 0x01
    JTAG_SPI_ERROR = 0x02
    JTAG_DMA_ERROR = 0x03
    JTAG_UNKNOWN_JTAG_CHAIN = 0x04
    JTAG_NO_DEVICE_CONNECTED = 0x05
    JTAG_INTERNAL_ERROR = 0x06
    JTAG_CMD_WAIT = 0x07
    JTAG_CMD_ERROR = 0x08
    JTAG_GET_IDCODE_ERROR = 0x09
    JTAG_ALIGNMENT_ERROR = 0x0A
    JTAG_DBG_POWER_ERROR = 0x0B
    JTAG_WRITE_ERROR = 0x0C
    JTAG_WRITE_VERIF_ERROR = 0x0D
    JTAG_ALREADY_OPENED_IN_OTHER_MODE = 0x0E
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
    SWD_AP_STICKY_ORUN_ERROR = 0x1A
    AP_ALREADY_USED = 0x1B
    TRACE_AP_TURNAROUND = 0x1C
    BAD_AP_ERROR = 0x1D
    SWV_NOT_AVAILABLE = 0x20
    JTAG_CONF_CHANGED = 0x40
    JTAG_FREQ_NOT_SUPPORTED = 0x41
    JTAG_UNKNOWN_CMD = 0x42
    OK = 0x80
    FAULT = 0x81


STATUS_TEXT: dict[int, str] = {
    Status.JTAG_UNKNOWN_ERROR: "unknown error",
    Status.JTAG_SPI_ERROR: "SPI error",
    Status.JTAG_DMA_ERROR: "DMA error",
    Status.JTAG_UNKNOWN_JTAG_CHAIN: "unknown JTAG chain",
    Status.JTAG_NO_DEVICE_CONNECTED: "no target connected",
    Status.JTAG_INTERNAL_ERROR: "probe internal error",
    Status.JTAG_CMD_WAIT: "command wait",
    Status.JTAG_CMD_ERROR: "command error",
    Status.JTAG_GET_IDCODE_ERROR: "cannot read the target's IDCODE",
    Status.JTAG_ALIGNMENT_ERROR: "alignment error",
    Status.JTAG_DBG_POWER_ERROR: "target debug power-up failed",
    Status.JTAG_WRITE_ERROR: "write error",
    Status.JTAG_WRITE_VERIF_ERROR: "write verify error",
    Status.JTAG_ALREADY_OPENED_IN_OTHER_MODE: "probe already opened in another mode",
    Status.SWD_AP_WAIT: "AP WAIT",
    Status.SWD_AP_FAULT: "AP FAULT",
    Status.SWD_AP_ERROR: "AP error",
    Status.SWD_AP_PARITY_ERROR: "AP parity error",
    Status.SWD_DP_WAIT: "DP WAIT",
    Status.SWD_DP_FAULT: "DP FAULT",
    Status.SWD_DP_ERROR: "DP error",
    Status.SWD_DP_PARITY_ERROR: "DP parity error",
    Status.SWD_AP_WDATA_ERROR: "AP write-data error",
    Status.SWD_AP_STICKY_ERROR: "AP sticky error",
    Status.SWD_AP_STICKY_ORUN_ERROR: "AP sticky overrun",
    Status.AP_ALREADY_USED: "AP already in use",
    Status.TRACE_AP_TURNAROUND: "trace AP turnaround error",
    Status.BAD_AP_ERROR: "bad AP (absent or not initialised)",
    Status.SWV_NOT_AVAILABLE: "SWV not available",
    Status.JTAG_CONF_CHANGED: "configuration changed",
    Status.JTAG_FREQ_NOT_SUPPORTED: "frequency not supported",
    Status.JTAG_UNKNOWN_CMD: "unknown command",
    Status.OK: "OK",
    Status.FAULT: "debug fault",
}

# Statuses from GETLASTRWSTATUS(2) that mean "the memory access faulted at the reported address"
# (pyOCD's set, plus the generic FAULT a firmware may report for the same condition).
MEMORY_FAULT_STATUSES = frozenset({
    Status.JTAG_UNKNOWN_ERROR, Status.SWD_AP_FAULT, Status.SWD_DP_FAULT,
    Status.SWD_AP_WDATA_ERROR, Status.SWD_AP_STICKY_ERROR, Status.FAULT,
})
WAIT_STATUSES = frozenset({Status.SWD_AP_WAIT, Status.SWD_DP_WAIT})

# DP ABORT value that clears every sticky flag (ORUNERRCLR, WDERRCLR, STKERRCLR, STKCMPCLR):
# written after a memory fault so the next access is not refused by a stale sticky error.
DP_ABORT_REGISTER = 0x00
DP_ABORT_CLEAR_ALL = 0x1E

# --- firmware gates (JTAG/SWD firmware version "J") --------------------------------------------
# V2: GETLASTRWSTATUS2 from J15, target voltage from J13, SWD_SET_FREQ from J22, DAP registers
# from J24, 16-bit memory from J26, INIT/CLOSE_AP from J28, APSEL/CSW in memory commands from J32.
V2_J_RW_STATUS2 = 15
V2_J_TARGET_VOLTAGE = 13
V2_J_SWD_FREQ = 22
V2_J_DAP_REG = 24
V2_J_MEM16 = 26
V2_J_INIT_AP = 28
V2_J_CSW = 32
V3_J_RW8_512 = 6            # V3 8-bit transfers grow from 64 to 512 bytes

# The oldest firmware gangflash accepts. V2J26: we need the DAP register commands (J24: DP ABORT
# after a memory fault, AP/DP inspection) and 16-bit memory commands (J26: halfword programming of
# F0/F1/F3 flash, which faults on byte and word writes). pyOCD stops at J24 and falls back to 8-bit,
# which would corrupt F1 programming, so we refuse one step later. Any V3 works (J1 was the first
# release and already has every command we send); J0 means "no SWD firmware" on every generation.
MIN_V2_JTAG_VERSION = 26
MIN_V3_JTAG_VERSION = 1
FIRMWARE_UPDATE_HINT = (
    "update the probe with STM32CubeProgrammer (Firmware upgrade) or ST's ST-LinkUpgrade "
    "tool (STSW-LINK007 on st.com)")

# --- transfer limits ---------------------------------------------------------------------------
MAX_WIDE_TRANSFER = 6144    # 16/32-bit memory commands: the probe's data buffer (OpenOCD, pyOCD)
RW8_SMALL = 64              # 8-bit commands: one full-speed packet (V2, V3 before J6)
RW8_LARGE = 512             # 8-bit commands on V3 from J6: one high-speed packet
TAR_AUTOINC_BLOCK = 1024    # MEM-AP TAR auto-increment wrap; not split at (protocol.plan_chunks)

# V2 SWD clock divisors (SWD_SET_FREQ), nominal kHz -> divisor; union of OpenOCD's and pyOCD's
# tables, which agree where they overlap except divisor 0 (OpenOCD 4000 kHz, pyOCD 4.6 MHz): we
# label it with the higher reading, so a request it satisfies ("never above the request") is
# satisfied whichever reading is true; a 4 MHz request gets 1.8 MHz.
V2_SWD_DIVISORS: dict[int, int] = {
    4600: 0, 1800: 1, 1200: 2, 950: 3, 650: 5, 480: 7, 400: 9, 360: 10, 240: 15, 150: 25,
    125: 31, 100: 40, 50: 79, 25: 158, 15: 265, 5: 798,
}

# --- reply sizes -------------------------------------------------------------------------------
VERSION_REPLY = 6
VERSION_EX_REPLY = 12
MODE_REPLY = 2
STATUS_REPLY = 2
VOLTAGE_REPLY = 8
IDCODES_REPLY = 12
REG_REPLY = 8               # READREG, READDEBUGREG, READ_DAP_REG: status then LE32 at offset 4
ALLREGS_REPLY = 88
RW_STATUS2_REPLY = 12
SET_COM_FREQ_REPLY = 8
GET_COM_FREQ_REPLY = 52
COM_FREQ_MAX_ENTRIES = 10
