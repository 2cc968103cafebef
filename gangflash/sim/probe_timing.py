"""What each USB transfer and SWD access of a simulated probe costs, in virtual seconds.

Nothing here sleeps or reads a clock: the probe asks the model what a transfer costs given the
virtual time it was submitted at, and returns that cost to the host, which advances its own
clock (ManualClock) or awaits it (event-loop time). Each number names its source; "estimate"
marks the ones no source settles, chosen to reproduce the orders of magnitude the reference
sheets record (about 1000 small commands/s on a full-speed V2, several thousand on a V3;
``shared/reference/stlink-protocol.md``, Limits, itself an estimate).

The shape of the model:
- A command's OUT transfer goes out as soon as the bus is free, except that a new command block
  waits until the firmware finished the previous command (it NAKs meanwhile).
- The firmware then executes: a fixed decode overhead plus the SWD time of the target accesses
  it made (bits at the SWD clock, plus a per-transfer firmware gap). That time is charged to the
  transfer that completed the command, so the host's clock is past the execution before it
  sends anything else.
- The first IN transfer of a reply completes at the next (micro)frame boundary at or after the
  reply is ready: host controllers retry a NAKed bulk IN in the next (micro)frame, which is what
  caps a full-speed probe near one command per 1 ms frame (estimate of the mechanism; the rate
  matches the reference's observation).
- Payload bytes move at the bus's bulk ceiling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# --- USB 2.0 bus facts --------------------------------------------------------------------------
FS_FRAME_S = 1e-3            # full-speed frame: one SOF per 1 ms (USB 2.0 §8.4.3.1)
HS_MICROFRAME_S = 125e-6     # high-speed microframe: 125 µs (USB 2.0 §8.4.3.1)
# Bulk ceilings: at most 19 x 64-byte bulk transactions per full-speed frame (USB 2.0 Table 5-9)
# and 13 x 512-byte per high-speed microframe (Table 5-10). The probe firmware is assumed to
# keep up; SWD is the bottleneck long before the bus (see flash-loader-design.md, Probe).
FS_BULK_BYTES_PER_S = 19 * 64 / FS_FRAME_S          # 1 216 000 B/s
HS_BULK_BYTES_PER_S = 13 * 512 / HS_MICROFRAME_S    # 53 248 000 B/s
# Port reset: the hub drives reset for at least 10 ms (TDRST, USB 2.0 §7.1.7.5) and the device
# gets 10 ms of reset recovery before the host talks to it again (TRSTRCY, §7.1.7.3).
USB_RESET_S = 10e-3 + 10e-3

# --- SWD facts ----------------------------------------------------------------------------------
# One 32-bit SWD transfer: 8-bit request, 1 turnaround, 3-bit ACK, 32 data + 1 parity, and one
# more turnaround (before the data on writes, after it on reads): 46 clocks (ARM ADIv5 SW-DP
# protocol; the reference's "≥46 SWD clocks per 32-bit AP write").
SWD_BITS_PER_TRANSFER = 46
# A WAIT answer ends after the ACK: request + turnaround + ACK + turnaround.
SWD_BITS_PER_WAIT = 8 + 1 + 3 + 1
# Connect: line reset (≥50 ones), 16-bit JTAG-to-SWD select, line reset again, ≥2 idle clocks
# (ADIv5 SWJ-DP switching sequence), then the DP IDR read and the firmware's DP power-up
# (CTRL/STAT write + a few polls: about 4 transfers, estimate).
SWD_CONNECT_BITS = 50 + 16 + 50 + 2 + 5 * SWD_BITS_PER_TRANSFER

# --- V2 SWD clock table -------------------------------------------------------------------------
# SWD_SET_FREQ divisor -> nominal kHz. pyOCD's table (constants.py SWD_FREQ_MAP, matching ST's
# list in phryniszak/jstlink stLinkConst.js) plus OpenOCD's lower entries (stlink_usb.c).
V2_SWD_DIVISOR_KHZ = {0: 4600, 1: 1800, 2: 1200, 3: 950, 5: 650, 7: 480, 9: 400, 10: 360,
                      15: 240, 25: 150, 31: 125, 40: 100, 79: 50, 158: 25, 265: 15, 798: 5}
V2_DEFAULT_SWD_HZ = 1.8e6    # power-on default: scope trace in stlink-org/stlink PR #534;
                             # OpenOCD and ST both label divisor 1 "default"


def v2_swd_hz(divisor: int) -> float:
    """Clock for any divisor: the table where it has an entry, else 72 MHz / (20 (d + 1)),
    the relation Black Magic Debug's hosted ST-Link driver uses (it reproduces 1.8 MHz at 1 and
    4505 Hz at 798, the table's ends)."""
    if divisor in V2_SWD_DIVISOR_KHZ:
        return V2_SWD_DIVISOR_KHZ[divisor] * 1e3
    return 72e6 / (20 * (divisor + 1))


# --- V3 frequency tables (SET_COM_FREQ / GET_COM_FREQ) -------------------------------------------
# SWD: 24 MHz, then 8000 and 3333 kHz (blackmagic-debug PR #1908 reading ST's UM2448; 24 MHz
# also pyOCD PR #1283); the lower entries are ST tools' usual list from memory: unconfirmed.
V3_SWD_KHZ = (24000, 8000, 3333, 1000, 200, 50, 5)
# JTAG: tops out at 21333 kHz (blackmagic-debug PR #1908); the rest is an estimate.
V3_JTAG_KHZ = (21333, 16000, 12000, 8000, 4000, 2000, 1000, 500, 250, 125)
V3_DEFAULT_SWD_HZ = 1.0e6    # estimate: a moderate start until the host sets a clock


@dataclass(frozen=True)
class GenerationTiming:
    """Per-generation constants of the cost model."""

    name: str
    frame_s: float
    bulk_bytes_per_s: float
    command_overhead_s: float   # firmware decode + reply set-up per command (estimate)
    swd_gap_s: float            # firmware time between consecutive SWD transfers (estimate)
    default_swd_hz: float


# V2 (STM32F103 at 72 MHz): gap chosen so a 4 MHz block write lands near 230 KB/s, inside the
# 150-250 KB/s the reference guesses for a V2 at 4 MHz (flash-loader-design.md, Probe; estimate).
FULL_SPEED = GenerationTiming("full-speed", FS_FRAME_S, FS_BULK_BYTES_PER_S,
                              command_overhead_s=30e-6, swd_gap_s=6e-6,
                              default_swd_hz=V2_DEFAULT_SWD_HZ)
# V3 (STM32F723 at up to 216 MHz): a faster MCU and SPI-driven SWD (estimate).
HIGH_SPEED = GenerationTiming("high-speed", HS_MICROFRAME_S, HS_BULK_BYTES_PER_S,
                              command_overhead_s=10e-6, swd_gap_s=0.5e-6,
                              default_swd_hz=V3_DEFAULT_SWD_HZ)

NRST_PULSE_S = 1e-3          # DRIVE_NRST pulse width: estimate (no source gives the firmware's)


def mem_transfers(address: int, length: int, width: int, *, read: bool) -> int:
    """SWD transfers the firmware spends on one memory block: a CSW write, a TAR write per
    1 KiB auto-increment block touched, one DRW access per unit, and the RDBUFF read that
    collects the last posted read."""
    if length <= 0:
        return 0
    units = math.ceil(length / width)
    blocks = (address + length - 1) // 1024 - address // 1024 + 1
    return 1 + blocks + units + (1 if read else 0)


class SwdMeter:
    """SWD activity of the command being executed, turned into seconds at the end."""

    def __init__(self) -> None:
        self.transfers = 0
        self.bits = 0
        self.extra_s = 0.0

    def add(self, transfers: int = 1, bits: int | None = None) -> None:
        """Count SWD transfers; ``bits`` overrides the full-transfer size (WAITs are shorter)."""
        self.transfers += transfers
        self.bits += SWD_BITS_PER_TRANSFER * transfers if bits is None else bits

    def seconds(self, swd_hz: float, gen: GenerationTiming) -> float:
        """Time on the wire at the current SWD clock plus the firmware's per-transfer gaps."""
        return self.bits / swd_hz + self.transfers * gen.swd_gap_s + self.extra_s


def _next_boundary(t: float, period: float) -> float:
    """The first (micro)frame start at or after ``t`` (tolerant of float noise)."""
    return math.ceil(t / period - 1e-9) * period


class UsbTimeline:
    """When the bus and the firmware are next free, so costs stay right even for a host that
    does not advance its clock between calls."""

    def __init__(self, gen: GenerationTiming) -> None:
        self.gen = gen
        self.bus_free_at = 0.0
        self.firmware_free_at = 0.0

    def wire_s(self, nbytes: int) -> float:
        """Payload time at the bulk ceiling (a zero-length packet still takes a slot)."""
        return max(nbytes, 1) / self.gen.bulk_bytes_per_s

    def out_transfer(self, now: float, nbytes: int, *, new_command: bool) -> float:
        """Return when an OUT transfer submitted at ``now`` completes."""
        start = max(now, self.bus_free_at)
        if new_command:
            start = max(start, self.firmware_free_at)
        end = start + self.wire_s(nbytes)
        self.bus_free_at = end
        return end

    def command_done(self, at: float) -> None:
        """The firmware is busy until ``at``; a new command block NAKs until then."""
        self.firmware_free_at = max(self.firmware_free_at, at)

    def in_transfer(self, now: float, nbytes: int, ready_at: float, *, first: bool) -> float:
        """Return when an IN transfer submitted at ``now`` for a reply ready at ``ready_at``
        completes; only a reply's first transfer waits for a (micro)frame boundary."""
        start = max(now, self.bus_free_at, ready_at)
        if first:
            start = _next_boundary(start, self.gen.frame_s)
        end = start + self.wire_s(nbytes)
        self.bus_free_at = end
        return end

    def port_reset(self, now: float) -> float:
        """Return when a port reset started at ``now`` lets the host talk again."""
        end = max(now, self.bus_free_at) + USB_RESET_S
        self.bus_free_at = end
        self.firmware_free_at = min(self.firmware_free_at, end)
        return end
