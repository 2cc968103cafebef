"""Pure encoding and decoding of ST-Link commands: no I/O, no state, easy to test exhaustively.

The driver (``driver.py``) decides what to send and when; this module knows what the bytes look
like: command blocks, version fields and the features they unlock, reply layouts, clock tables and
how a memory range is cut into commands the probe accepts.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

from .constants import (
    COM_FREQ_MAX_ENTRIES, COMMAND_SIZE, FIRMWARE_UPDATE_HINT, MAX_WIDE_TRANSFER,
    MIN_V2_JTAG_VERSION, MIN_V3_JTAG_VERSION, RW8_LARGE, RW8_SMALL, V2_J_CSW, V2_J_DAP_REG,
    V2_J_INIT_AP, V2_J_MEM16, V2_J_RW_STATUS2, V2_J_SWD_FREQ, V2_J_TARGET_VOLTAGE,
    V2_SWD_DIVISORS, V3_J_RW8_512,
)
from .errors import FirmwareTooOld, FrequencyNotSupported, StlinkProtocolError, UnsupportedProbe


def block(*head: int, payload: bytes = b"") -> bytes:
    """A 16-byte command block: opcode bytes, then a packed payload, zero padded.

    Unused bytes must be zero (bytes 12-15 of memory commands are a reserved "TCP id" field).
    """
    raw = bytes(head) + payload
    if len(raw) > COMMAND_SIZE:
        raise ValueError(f"command block of {len(raw)} bytes exceeds {COMMAND_SIZE}")
    return raw.ljust(COMMAND_SIZE, b"\0")


def memory_block(command: int, sub: int, address: int, length: int, apsel: int = 0,
                 csw: int = 0) -> bytes:
    """READMEM/WRITEMEM block: address LE32, length LE16, APSEL, CSW bits 31:8 (LE, 3 bytes).

    Firmware before V2J32 / V3J2 ignores APSEL and CSW; callers pass zeros there.
    """
    csw_hi = (csw >> 8) & 0xFFFFFF
    return block(command, sub, payload=struct.pack("<IHB", address, length, apsel)
                 + csw_hi.to_bytes(3, "little"))


def u32(reply: bytes, offset: int) -> int:
    """LE32 at ``offset`` of a reply already checked for length."""
    return int.from_bytes(reply[offset:offset + 4], "little")


# --- version -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProbeVersion:
    """What GET_VERSION (and GET_VERSION_EX on V3) report."""

    stlink: int             # hardware generation: 2, 3 (V3) or 4 (V3PWR reports 3 or 4)
    jtag: int               # JTAG/SWD firmware version "J": what the command gates depend on
    swim: int = 0           # SWIM version (V2, V3 EX)
    msd: int = 0            # mass-storage / VCP version (V2-1, V3 EX)
    bridge: int = 0         # bridge version (V3 EX)
    power: int = 0          # power version (V3PWR/V4 EX)
    vid: int = 0
    pid: int = 0

    @property
    def is_v3(self) -> bool:
        return self.stlink >= 3

    def __str__(self) -> str:
        """The firmware name ST prints on labels and in its upgrade tool: V2J37M26, V3J7M3B2."""
        parts = [f"V{self.stlink}", f"J{self.jtag}"]
        for letter, value in (("S", self.swim), ("M", self.msd), ("B", self.bridge),
                              ("P", self.power)):
            if value:
                parts.append(f"{letter}{value}")
        return "".join(parts)


def parse_version(reply: bytes, *, swim_field: bool) -> ProbeVersion:
    """GET_VERSION: bytes 0-1 big-endian packed stlink:4 / jtag:6 / low:6, then VID, PID (LE).

    The low field is the SWIM version on the original V2 and the mass-storage version on V2-1;
    ``swim_field`` says which (the driver knows from the PID). V3 reports J and low as 0.
    """
    if len(reply) < 6:
        raise StlinkProtocolError(f"GET_VERSION reply of {len(reply)} bytes, expected 6")
    packed = int.from_bytes(reply[0:2], "big")
    low = packed & 0x3F
    vid, pid = struct.unpack_from("<HH", reply, 2)
    return ProbeVersion(stlink=packed >> 12, jtag=(packed >> 6) & 0x3F,
                        swim=low if swim_field else 0, msd=0 if swim_field else low,
                        vid=vid, pid=pid)


def parse_version_ex(reply: bytes) -> ProbeVersion:
    """GET_VERSION_EX (V3): one byte per component, VID and PID LE16 at 8 and 10."""
    if len(reply) < 12:
        raise StlinkProtocolError(f"GET_VERSION_EX reply of {len(reply)} bytes, expected 12")
    vid, pid = struct.unpack_from("<HH", reply, 8)
    return ProbeVersion(stlink=reply[0], swim=reply[1], jtag=reply[2], msd=reply[3],
                        bridge=reply[4], power=reply[5], vid=vid, pid=pid)


@dataclass(frozen=True)
class Capabilities:
    """The features a firmware version unlocks: named gates, so the driver does no version
    arithmetic."""

    rw_status2: bool        # GETLASTRWSTATUS2 (12 bytes, fault address) vs GETLASTRWSTATUS
    mem16: bool             # READ/WRITEMEM_16BIT
    dap_registers: bool     # READ/WRITE_DAP_REG
    init_ap: bool           # INIT_AP / CLOSE_AP_DBG
    csw: bool               # APSEL and CSW honoured in memory commands
    target_voltage: bool
    v2_swd_divisor: bool    # SWD_SET_FREQ (V2 only)
    v3_com_freq: bool       # GET/SET_COM_FREQ (V3)
    max_rw8: int            # largest 8-bit transfer

    @classmethod
    def for_version(cls, version: ProbeVersion, max_packet: int) -> Capabilities:
        j, v3 = version.jtag, version.is_v3
        rw8 = RW8_LARGE if v3 and j >= V3_J_RW8_512 else RW8_SMALL
        return cls(
            rw_status2=v3 or j >= V2_J_RW_STATUS2,
            mem16=v3 or j >= V2_J_MEM16,
            dap_registers=v3 or j >= V2_J_DAP_REG,
            init_ap=v3 or j >= V2_J_INIT_AP,
            csw=j >= 2 if v3 else j >= V2_J_CSW,
            target_voltage=v3 or j >= V2_J_TARGET_VOLTAGE,
            v2_swd_divisor=not v3 and j >= V2_J_SWD_FREQ,
            v3_com_freq=v3,
            # Never more than one packet: a full-speed V2 cannot take 512 whatever it claims.
            max_rw8=min(rw8, max_packet) if max_packet else rw8,
        )


def check_firmware(version: ProbeVersion, *, serial: str | None = None) -> None:
    """Refuse probes we cannot drive correctly, saying what is missing and how to fix it."""
    if version.stlink not in (2, 3, 4):
        raise UnsupportedProbe(
            f"ST-Link generation {version.stlink} ({version}) is not supported; "
            "gangflash drives ST-Link/V2, V2-1 and V3", serial=serial, command="GET_VERSION")
    if version.jtag == 0:
        raise FirmwareTooOld(
            f"firmware {version} has no SWD/JTAG support; {FIRMWARE_UPDATE_HINT}",
            serial=serial, command="GET_VERSION")
    minimum = MIN_V3_JTAG_VERSION if version.is_v3 else MIN_V2_JTAG_VERSION
    if version.jtag < minimum:
        why = ("" if version.is_v3 else
               " (16-bit memory access for halfword flash programming, DAP register access)")
        raise FirmwareTooOld(
            f"firmware {version} is too old: gangflash needs V{version.stlink}J{minimum} or "
            f"newer{why}; {FIRMWARE_UPDATE_HINT}", serial=serial, command="GET_VERSION")


# --- replies -----------------------------------------------------------------------------------
def parse_voltage(reply: bytes) -> float | None:
    """GET_TARGET_VOLTAGE: two ADC readings (reference a0, target a1); volts = 2 * a1 * 1.2 / a0."""
    a0, a1 = struct.unpack_from("<II", reply, 0)
    if a0 == 0:
        return None
    return 2.0 * a1 * 1.2 / a0


def parse_com_freqs(reply: bytes) -> tuple[int, list[int]]:
    """GET_COM_FREQ (V3): current kHz at 4, count at 8, up to 10 LE32 kHz values from 12."""
    current = u32(reply, 4)
    count = min(u32(reply, 8), COM_FREQ_MAX_ENTRIES)
    values = [u32(reply, 12 + 4 * i) for i in range(count)]
    return current, [v for v in values if v]


def pick_frequency(available: list[int] | tuple[int, ...], khz: int, *,
                   serial: str | None = None) -> int:
    """The fastest supported clock not above ``khz``. Never rounds up: a board wired for 1 MHz
    must not be driven at 1.2 MHz because that happens to be "nearer"."""
    fitting = [f for f in available if 0 < f <= khz]
    if not fitting:
        slowest = min((f for f in available if f > 0), default=None)
        raise FrequencyNotSupported(
            f"no SWD clock at or below {khz} kHz (slowest supported: {slowest} kHz)",
            serial=serial, command="SET_SWD_FREQ")
    return max(fitting)


def pick_v2_divisor(khz: int, *, serial: str | None = None) -> tuple[int, int]:
    """(nominal kHz, divisor) for SWD_SET_FREQ on a V2."""
    chosen = pick_frequency(list(V2_SWD_DIVISORS), khz, serial=serial)
    return chosen, V2_SWD_DIVISORS[chosen]


@dataclass(frozen=True)
class CoreRegisters:
    """READALLREGS: R0-R15, xPSR, MSP, PSP and two firmware-specific words."""

    r: tuple[int, ...]      # R0..R15 (R13 = SP, R14 = LR, R15 = PC)
    xpsr: int
    msp: int
    psp: int
    extra: tuple[int, int]

    @property
    def sp(self) -> int:
        return self.r[13]

    @property
    def lr(self) -> int:
        return self.r[14]

    @property
    def pc(self) -> int:
        return self.r[15]


def parse_all_registers(reply: bytes) -> CoreRegisters:
    """READALLREGS (API v2): status in 0-3, then 21 LE32 words at 4-87."""
    words = struct.unpack_from("<21I", reply, 4)
    return CoreRegisters(r=tuple(words[0:16]), xpsr=words[16], msp=words[17], psp=words[18],
                         extra=(words[19], words[20]))


# --- memory chunking ---------------------------------------------------------------------------
class Chunk(NamedTuple):
    """One memory command: access width in bytes (1, 2, 4), start address, length in bytes."""

    width: int
    address: int
    length: int


def plan_chunks(address: int, length: int, width: int, *, max_rw8: int,
                max_wide: int = MAX_WIDE_TRANSFER) -> list[Chunk]:
    """Cut [address, address + length) into commands the probe accepts.

    - ``width`` 1: 8-bit commands of at most ``max_rw8`` bytes (one USB packet).
    - ``width`` 2 or 4: bytes before the first aligned address and after the last aligned one go
      through 8-bit commands; the aligned middle goes through ``width`` commands of at most
      ``max_wide`` bytes (rounded down to a multiple of the width).
    - No split at the 1 KiB TAR auto-increment boundary: the firmware wraps TAR itself (pyOCD sends
      6144-byte reads from any word address and relies on it); splitting there as OpenOCD does
      would cost up to six commands per 6 KiB, each a USB round trip, for nothing.
    """
    if width not in (1, 2, 4):
        raise ValueError(f"access width must be 1, 2 or 4 bytes, not {width}")
    if length < 0 or address < 0 or address + length > 1 << 32:
        raise ValueError(f"range 0x{address:X}+{length} is outside the 32-bit address space")
    chunks: list[Chunk] = []

    def bytes8(start: int, count: int) -> None:
        for offset in range(0, count, max_rw8):
            chunks.append(Chunk(1, start + offset, min(max_rw8, count - offset)))

    if width == 1:
        bytes8(address, length)
        return chunks
    head = -address % width
    middle = (length - head) // width * width if length > head else 0
    if middle == 0:
        bytes8(address, length)
        return chunks
    bytes8(address, head)
    step = max_wide // width * width
    start = address + head
    for offset in range(0, middle, step):
        chunks.append(Chunk(width, start + offset, min(step, middle - offset)))
    bytes8(start + middle, length - head - middle)
    return chunks
