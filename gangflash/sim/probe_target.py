"""The probe firmware's end of the SWD cable: every target access goes through here.

Three jobs, kept in one place so every command gets them the same way:
- WAIT handling as real firmware does it: an access that answers WAIT is retried a bounded number
  of times and only reported (0x10 AP / 0x14 DP) if the WAIT outlasts the retries. pyOCD's notes
  say real firmware absorbs WAITs (pyOCD does not retry; OpenOCD retries 8 times host-side).
  The ``swd_wait_burst`` fault knob injects WAITs here, before the target is even asked.
- Mapping what the target raises to the status byte the firmware reports (table below).
- Metering: each access adds its SWD transfers to the command's ``SwdMeter`` so the USB side can
  charge the right virtual time.

Status per failure and access kind (codes: ``stlink_protocol.Status``):

    =================  ===========  ===========  ==============================================
    target raised      DP access    AP / memory  source / reasoning
    =================  ===========  ===========  ==============================================
    SwdWait (retries   0x14         0x10         WAIT codes per pyOCD/OpenOCD tables
    exhausted)
    BusFault           0x15         0x11         OpenOCD: reading outside RAM gives SWD_AP_FAULT
                                                 (comment on ac6 commit 657e3e88); pyOCD treats
                                                 0x11 from GETLASTRWSTATUS2 as a memory fault
    SwdNoTarget        0x16         0x12         no ACK = protocol error; estimate
    SwdNoTarget at     0x09                      pyOCD users with unpowered/asleep targets see
    connect / IDCODE                             "STLink error (9): Get IDCODE error" at ENTER
                                                 (pyOCD #772, #1145, #1523)
    =================  ===========  ===========  ==============================================
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from .errors import BusFault, SwdNoTarget, SwdWait
from .faults import ProbeFaults
from .probe_timing import SWD_BITS_PER_WAIT, SWD_CONNECT_BITS, SwdMeter, mem_transfers
from .stlink_protocol import Status

log = logging.getLogger(__name__)

# Retries after a WAIT before the firmware gives up and reports it: "a few" (estimate; no public
# source gives the firmware's count). An access is tried at most 1 + WAIT_RETRIES times.
WAIT_RETRIES = 4

# Cortex-M debug registers the firmware drives for its core-register commands
# (ARMv7-M ARM C1.6; shared/reference/cortex-m-debug.md).
DHCSR, DCRSR, DCRDR, AIRCR = 0xE000EDF0, 0xE000EDF4, 0xE000EDF8, 0xE000ED0C
DBGKEY = 0xA05F << 16
C_DEBUGEN, C_HALT, C_STEP = 1 << 0, 1 << 1, 1 << 2
S_REGRDY, S_HALT = 1 << 16, 1 << 17
DCRSR_REGWNR = 1 << 16
# MEM-AP registers (ADIv5)
AP_CSW, AP_TAR, AP_DRW, AP_IDR = 0x00, 0x04, 0x0C, 0xFC
DP_IDR, DP_SELECT = 0x0, 0x8

_KIND_STATUS = {
    "dp": (Status.SWD_DP_WAIT, Status.SWD_DP_FAULT, Status.SWD_DP_ERROR),
    "ap": (Status.SWD_AP_WAIT, Status.SWD_AP_FAULT, Status.SWD_AP_ERROR),
}


class CommandError(Exception):
    """A command failed with an ST-Link status; ``address`` feeds GETLASTRWSTATUS2."""

    def __init__(self, status: int, address: int | None = None) -> None:
        super().__init__(f"ST-Link status 0x{status:02X}"
                         + (f" at 0x{address:08X}" if address is not None else ""))
        self.status = int(status)
        self.address = address


class TargetLink:
    """SWD access layer between the firmware's command handlers and the simulated target."""

    def __init__(self, target: Any, faults: ProbeFaults, fault_stats: dict[str, int]) -> None:
        self.target = target
        self.faults = faults                 # the probe's own copy: knobs are consumed here
        self.fault_stats = fault_stats
        self.meter = SwdMeter()
        self.command_number = 0
        self._select: tuple[int, int] | None = None   # (APSEL, AP bank) last put in DP SELECT
        self._dp_bank = 0

    def begin_command(self, number: int) -> SwdMeter:
        """Start metering a new command (numbered from 1, as ``swd_wait_on_command`` counts)."""
        self.command_number = number
        self.meter = SwdMeter()
        return self.meter

    def forget_select(self) -> None:
        """After a reconnect or a host write to SELECT the firmware's cached SELECT is stale."""
        self._select = None
        self._dp_bank = 0

    # --- the one path every access takes ---------------------------------------------------------
    def _wait_injected(self) -> bool:
        f = self.faults
        if f.swd_wait_burst <= 0:
            return False
        if f.swd_wait_on_command is not None and self.command_number < f.swd_wait_on_command:
            return False
        f.swd_wait_burst -= 1
        self.fault_stats["swd_wait"] = self.fault_stats.get("swd_wait", 0) + 1
        return True

    def _run(self, kind: str, fn: Callable[..., Any], *args: Any, transfers: int = 1,
             bits: int | None = None, address: int | None = None,
             no_target: int | None = None) -> Any:
        wait_status, fault_status, error_status = _KIND_STATUS[kind]
        if self.target is None:
            self.meter.add(1, SWD_BITS_PER_WAIT)
            raise CommandError(no_target or error_status, address)
        attempts = 0
        while True:
            attempts += 1
            try:
                if self._wait_injected():
                    raise SwdWait(dp=(kind == "dp"))
                result = fn(*args)
            except SwdWait as exc:
                self.meter.add(1, SWD_BITS_PER_WAIT)
                if attempts <= WAIT_RETRIES:
                    continue
                status = Status.SWD_DP_WAIT if (exc.dp or kind == "dp") else wait_status
                self.fault_stats["swd_wait_reported"] = (
                    self.fault_stats.get("swd_wait_reported", 0) + 1)
                log.debug("WAIT outlasted %d retries: status 0x%02X", WAIT_RETRIES, status)
                raise CommandError(status, address) from exc
            except BusFault as exc:
                self.meter.add(transfers, bits)
                raise CommandError(fault_status, exc.address) from exc
            except SwdNoTarget as exc:
                self.meter.add(1, SWD_BITS_PER_WAIT)
                raise CommandError(no_target or error_status, address) from exc
            self.meter.add(transfers, bits)
            return result

    def _ap_select(self, apsel: int, addr: int) -> int:
        """Extra SELECT write when the AP or its register bank changes."""
        wanted = (apsel, addr & 0xF0)
        if self._select == wanted:
            return 0
        self._select = wanted
        return 1

    # --- DP / AP ----------------------------------------------------------------------------------
    def connect(self) -> int:
        """Line reset, JTAG-to-SWD, IDR read, DP power-up: the ENTER command's target work."""
        self.forget_select()
        return self._run("dp", self.target.swd_connect if self.target else None,
                         transfers=5, bits=SWD_CONNECT_BITS,
                         no_target=Status.GET_IDCODE_ERROR)

    def dp_read(self, addr: int, *, no_target: int | None = None) -> int:
        """DP register read; ``no_target`` overrides the no-answer status (IDCODE commands)."""
        extra = self._dp_bank_switch(addr)
        return self._run("dp", self.target.dp_read if self.target else None, addr,
                         transfers=1 + extra, no_target=no_target) & 0xFFFFFFFF

    def dp_write(self, addr: int, value: int) -> None:
        """DP register write; a host write to SELECT invalidates the firmware's cached SELECT."""
        extra = self._dp_bank_switch(addr)
        self._run("dp", self.target.dp_write if self.target else None, addr, value,
                  transfers=1 + extra)
        if addr & 0x0F == DP_SELECT:
            self.forget_select()

    def _dp_bank_switch(self, addr: int) -> int:
        bank = (addr >> 4) & 0xF
        if addr & 0x0F != 0x4 or bank == self._dp_bank:
            return 0
        self._dp_bank = bank
        return 1

    def ap_read(self, apsel: int, addr: int) -> int:
        """AP register read: costs a SELECT write when the AP or bank changes, and the
        RDBUFF read that collects the posted result."""
        extra = self._ap_select(apsel, addr)
        return self._run("ap", self.target.ap_read if self.target else None, apsel, addr,
                         transfers=2 + extra) & 0xFFFFFFFF

    def ap_write(self, apsel: int, addr: int, value: int) -> None:
        """AP register write (plus a SELECT write when the AP or bank changes)."""
        extra = self._ap_select(apsel, addr)
        self._run("ap", self.target.ap_write if self.target else None, apsel, addr, value,
                  transfers=1 + extra)

    # --- memory through AP 0 ----------------------------------------------------------------------
    def mem_read(self, addr: int, length: int, width: int) -> bytes:
        """One memory block through AP 0: one target access, metered as the firmware's CSW,
        TAR (per 1 KiB) and DRW transfers."""
        extra = self._ap_select(0, AP_CSW)
        data = self._run("ap", self.target.mem_read if self.target else None, addr, length,
                         width, address=addr,
                         transfers=mem_transfers(addr, length, width, read=True) + extra)
        return bytes(data)

    def mem_write(self, addr: int, data: bytes, width: int) -> None:
        """One memory block write through AP 0, metered like ``mem_read``."""
        extra = self._ap_select(0, AP_CSW)
        self._run("ap", self.target.mem_write if self.target else None, addr, bytes(data),
                  width, address=addr,
                  transfers=mem_transfers(addr, len(data), width, read=False) + extra)

    def read32(self, addr: int) -> int:
        """A single word, as READDEBUGREG and the DHCSR-based commands use."""
        return int.from_bytes(self.mem_read(addr, 4, 4), "little")

    def write32(self, addr: int, value: int) -> None:
        """A single word write (WRITEDEBUGREG, DHCSR/DCRSR/DCRDR)."""
        self.mem_write(addr, (value & 0xFFFFFFFF).to_bytes(4, "little"), 4)

    def reset_system(self) -> None:
        """RESETSYS: the firmware requests a system reset (an AIRCR write on the wire)."""
        self._run("ap", self.target.reset_system if self.target else None, address=AIRCR,
                  transfers=2)

    # --- core registers through DCRSR/DCRDR (how the firmware implements READREG & co) ----------
    REGRDY_POLLS = 8    # DHCSR polls for S_REGRDY before giving up (estimate)

    def _wait_regrdy(self) -> None:
        for _ in range(self.REGRDY_POLLS):
            if self.read32(DHCSR) & S_REGRDY:
                return
        # A register transfer that never completes (core not halted): the firmware's generic
        # debug fault, 0x81 (estimate; API v1's general error code).
        raise CommandError(Status.FAULT)

    def read_core_register(self, regsel: int) -> int:
        """READREG as the firmware does it: DCRSR select, wait for S_REGRDY, read DCRDR."""
        self.write32(DCRSR, regsel & 0x7F)
        self._wait_regrdy()
        return self.read32(DCRDR)

    def write_core_register(self, regsel: int, value: int) -> None:
        """WRITEREG: value into DCRDR, DCRSR with REGWnR, wait for S_REGRDY."""
        self.write32(DCRDR, value)
        self.write32(DCRSR, (regsel & 0x7F) | DCRSR_REGWNR)
        self._wait_regrdy()


__all__ = ["CommandError", "TargetLink", "WAIT_RETRIES"]
