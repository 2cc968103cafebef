"""The ST-Link driver: what callers use to talk to one probe and the target behind it.

``Stlink`` runs over any ``ProbeLink`` (libusb, simulator, TCP). It owns one probe: every command
goes through one ``anyio.Lock``, so commands to one probe are strictly serialised while different
probes (different ``Stlink`` objects) run concurrently. Statuses become typed exceptions
(``errors.py``); WAIT is retried with a bounded exponential backoff; lost transfers are recovered
by the channel before the error surfaces; a vanished probe raises ProbeGone at once.

Typical use::

    async with await Stlink.open(link) as probe:
        await probe.connect(swd_khz=1800)
        idcode = await probe.read_idcode()
        data = await probe.read_memory(0x08000000, 1024)
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from ..backend import ProbeInfo, ProbeLink
from ..errors import TransportError
from ..variants import V2_PID
from .channel import CommandChannel
from .constants import (
    ALLREGS_REPLY, DP_ABORT_CLEAR_ALL, DP_ABORT_REGISTER, DP_PORT, GET_COM_FREQ_REPLY,
    IDCODES_REPLY, MODE_REPLY, REG_REPLY, RW_STATUS2_REPLY, SET_COM_FREQ_REPLY, STATUS_REPLY,
    V2_SWD_DIVISORS, VERSION_EX_REPLY, VERSION_REPLY, VOLTAGE_REPLY, WAIT_STATUSES, Command,
    MAX_WIDE_TRANSFER, ComPort, CoreState, DebugCommand, DfuCommand, EnterMode, Mode, NrstLevel,
    Status, SwimCommand,
)
from .errors import (
    FirmwareTooOld, MemoryFault, ProbeModeError, StlinkError, StlinkProtocolError, status_error,
)
from .protocol import (
    Capabilities, Chunk, CoreRegisters, ProbeVersion, block, check_firmware, memory_block,
    parse_all_registers, parse_com_freqs, parse_version, parse_version_ex, parse_voltage,
    pick_frequency, pick_v2_divisor, plan_chunks, u32,
)

log = logging.getLogger(__name__.rsplit(".", 1)[0])   # gangflash.transport.stlink
T = TypeVar("T")

# Statuses that mean success. OpenOCD treats 0x0D (write verify error) as success
# (stlink_usb_error_check); we follow it, since gangflash verifies what it writes itself.
_OK = frozenset({Status.OK, Status.JTAG_WRITE_VERIF_ERROR})
_READ_OPS = {1: DebugCommand.READMEM_8BIT, 2: DebugCommand.READMEM_16BIT,
             4: DebugCommand.READMEM_32BIT}
_WRITE_OPS = {1: DebugCommand.WRITEMEM_8BIT, 2: DebugCommand.WRITEMEM_16BIT,
              4: DebugCommand.WRITEMEM_32BIT}


def _debug(sub: int, payload: bytes = b"") -> bytes:
    return block(Command.DEBUG, sub, payload=payload)


class Stlink:
    """One ST-Link probe (V2, V2-1, V3) and the SWD target behind it.

    Create with :meth:`open` (reads and checks the firmware version, leaves DFU / SWIM / a stale
    debug session), then :meth:`connect` (SWD clock, enter SWD). Close with :meth:`aclose` or
    ``async with``.

    ``timeout`` is the per-transfer USB timeout for short commands; memory transfers get more,
    scaled to the data size and the SWD clock. ``wait_retries`` (total tries) and
    ``wait_backoff`` (first delay, doubled each time) bound the WAIT retry; the defaults try 8
    times with 12.7 ms of backoff in all (OpenOCD also retries WAIT 8 times).
    """

    def __init__(self, link: ProbeLink, *, timeout: float = 1.0, wait_retries: int = 8,
                 wait_backoff: float = 100e-6) -> None:
        self.link = link
        self.info: ProbeInfo = link.info
        self.serial: str = link.info.serial
        self.log = log.getChild(self.serial)
        self.timeout = timeout
        self.wait_retries = max(1, wait_retries)
        self.wait_backoff = wait_backoff
        self.version: ProbeVersion | None = None
        self.caps: Capabilities | None = None
        self.swd_khz: int | None = None
        self.in_debug_mode = False
        self._channel = CommandChannel(link, self.log)
        self._lock = anyio.Lock()

    # --- lifecycle -----------------------------------------------------------------------------
    @classmethod
    async def open(cls, link: ProbeLink, *, timeout: float = 1.0, wait_retries: int = 8,
                   wait_backoff: float = 100e-6) -> Stlink:
        """Wrap an opened link, read the version (refusing firmware too old) and leave whatever
        mode the probe was in. The link is closed again if this fails."""
        probe = cls(link, timeout=timeout, wait_retries=wait_retries, wait_backoff=wait_backoff)
        try:
            await probe.start()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await link.aclose()
            raise
        return probe

    async def start(self) -> ProbeVersion:
        """Flush stale replies, read and check the version, leave DFU / SWIM / debug mode."""
        async with self._lock:
            await self._channel.drain()
        version = await self.read_version()
        check_firmware(version, serial=self.serial)
        await self.leave_mode()
        self.log.info("ST-Link %s (%s), firmware %s", self.serial, self.info.variant, version)
        return version

    async def connect(self, swd_khz: int | None = 1800) -> None:
        """Set the SWD clock (if given) and enter SWD mode. The clock is set first so that target
        discovery already runs at it (OpenOCD and pyOCD order it the same way)."""
        if swd_khz is not None:
            await self.set_swd_frequency(swd_khz)
        await self.enter_swd()

    async def aclose(self) -> None:
        """Leave debug mode (so other tools find the probe idle) and release the link."""
        with anyio.CancelScope(shield=True):
            try:
                if self.in_debug_mode and not self._channel.gone:
                    await self.exit_debug()
            except TransportError as exc:
                self.log.debug("leaving debug mode at close failed: %s", exc)
            finally:
                await self.link.aclose()

    async def __aenter__(self) -> Stlink:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # --- command core --------------------------------------------------------------------------
    def _require_caps(self) -> Capabilities:
        if self.caps is None:
            raise StlinkError("probe not started (call Stlink.open)", serial=self.serial)
        return self.caps

    async def _raw(self, name: str, cmd: bytes, *, reply: int = 0,
                   address: int | None = None) -> bytes:
        """One command, no status interpretation (replies without a status byte)."""
        async with self._lock:
            return await self._channel.transfer(cmd, name=name, reply=reply, timeout=self.timeout,
                                                address=address)

    async def _retry_wait(self, name: str, address: int | None,
                          exchange: Callable[[], Awaitable[tuple[int, T]]]) -> tuple[int, T]:
        """Run ``exchange`` (one locked command returning its status and result) again while the
        status is WAIT, sleeping 1x, 2x, 4x... ``wait_backoff`` in between (lock released), at
        most ``wait_retries`` times in all. Returns the last status and result."""
        delay = self.wait_backoff
        for attempt in range(1, self.wait_retries + 1):
            status, result = await exchange()
            if status not in WAIT_STATUSES or attempt == self.wait_retries:
                break
            where = f" 0x{address:08X}" if address is not None else ""
            self.log.debug("%s%s: WAIT (0x%02X), retry %d in %.0f us", name, where, status,
                           attempt, delay * 1e6)
            await anyio.sleep(delay)
            delay *= 2
        return status, result

    async def _command(self, name: str, cmd: bytes, *, reply: int = STATUS_REPLY,
                       address: int | None = None) -> bytes:
        """One command whose reply starts with a status byte; WAIT retried, errors typed."""
        async def exchange() -> tuple[int, bytes]:
            answer = await self._raw(name, cmd, reply=reply, address=address)
            return answer[0], answer

        status, answer = await self._retry_wait(name, address, exchange)
        if status not in _OK:
            raise status_error(status, serial=self.serial, command=name, address=address)
        return answer

    # --- identity and modes --------------------------------------------------------------------
    async def read_version(self) -> ProbeVersion:
        """GET_VERSION, plus GET_VERSION_EX on V3 and later (whose packed J field reads 0)."""
        raw = await self._raw("GET_VERSION", block(Command.GET_VERSION), reply=VERSION_REPLY)
        version = parse_version(raw, swim_field=self.info.pid == V2_PID)
        if version.stlink >= 3:
            raw = await self._raw("GET_VERSION_EX", block(Command.GET_VERSION_EX),
                                  reply=VERSION_EX_REPLY)
            version = parse_version_ex(raw)
        self.version = version
        self.caps = Capabilities.for_version(version, self.info.max_packet)
        return version

    async def current_mode(self) -> Mode | int:
        """GET_CURRENT_MODE: DFU, mass storage, debug, SWIM or bootloader."""
        raw = await self._raw("GET_CURRENT_MODE", block(Command.GET_CURRENT_MODE),
                              reply=MODE_REPLY)
        try:
            return Mode(raw[0])
        except ValueError:
            return raw[0]

    async def leave_mode(self) -> None:
        """Bring the probe to its idle state, from which SWD can be entered.

        DFU and SWIM are exited with their own commands; a debug session left by a crashed tool is
        exited so ours starts clean. Mass storage (and the bootloader report) is the idle state of
        the debug interface: nothing to leave.
        """
        mode = await self.current_mode()
        if mode == Mode.DFU:
            await self._raw("DFU_EXIT", block(Command.DFU, DfuCommand.EXIT))
        elif mode == Mode.SWIM:
            await self._raw("SWIM_EXIT", block(Command.SWIM, SwimCommand.EXIT))
        elif mode == Mode.DEBUG:
            await self.exit_debug()
        else:
            return
        if await self.current_mode() == Mode.DFU:
            raise ProbeModeError("probe stays in DFU mode after DFU_EXIT; unplug and replug it",
                                 serial=self.serial, command="DFU_EXIT")

    async def enter_swd(self) -> None:
        """Enter SWD debug mode without resetting the target."""
        await self._command("ENTER_SWD", _debug(DebugCommand.ENTER,
                                                bytes([EnterMode.SWD_NO_RESET, 0])))
        self.in_debug_mode = True

    async def exit_debug(self) -> None:
        """Leave debug mode (no reply)."""
        await self._raw("DEBUG_EXIT", _debug(DebugCommand.EXIT))
        self.in_debug_mode = False

    async def target_voltage(self) -> float | None:
        """Target supply in volts as the probe measures it on its VDD pin; None if unmeasurable."""
        if not self._require_caps().target_voltage:
            return None
        raw = await self._raw("GET_TARGET_VOLTAGE", block(Command.GET_TARGET_VOLTAGE),
                              reply=VOLTAGE_REPLY)
        return parse_voltage(raw)

    async def read_idcode(self) -> int:
        """The SW-DP IDCODE (e.g. 0x1BA01477 for a Cortex-M3)."""
        raw = await self._command("READ_IDCODES", _debug(DebugCommand.READ_IDCODES),
                                  reply=IDCODES_REPLY)
        return u32(raw, 4)

    # --- SWD clock -----------------------------------------------------------------------------
    async def swd_frequencies(self) -> list[int]:
        """Supported SWD clocks in kHz, fastest first: asked from a V3, from our table on a V2."""
        if self._require_caps().v3_com_freq:
            raw = await self._command("GET_COM_FREQ",
                                      _debug(DebugCommand.GET_COM_FREQ, bytes([ComPort.SWD])),
                                      reply=GET_COM_FREQ_REPLY)
            _, values = parse_com_freqs(raw)
            if not values:
                raise StlinkProtocolError("GET_COM_FREQ lists no SWD clock", serial=self.serial,
                                          command="GET_COM_FREQ")
            return sorted(values, reverse=True)
        return sorted(V2_SWD_DIVISORS, reverse=True)

    async def set_swd_frequency(self, khz: int) -> int:
        """Set the fastest supported SWD clock not above ``khz``; returns the clock applied."""
        caps = self._require_caps()
        if caps.v3_com_freq:
            chosen = pick_frequency(await self.swd_frequencies(), khz, serial=self.serial)
            raw = await self._command(
                "SET_COM_FREQ",
                _debug(DebugCommand.SET_COM_FREQ, struct.pack("<BBI", ComPort.SWD, 0, chosen)),
                reply=SET_COM_FREQ_REPLY)
            applied = u32(raw, 4) or chosen
        elif caps.v2_swd_divisor:
            applied, divisor = pick_v2_divisor(khz, serial=self.serial)
            await self._command("SWD_SET_FREQ",
                                _debug(DebugCommand.SWD_SET_FREQ, struct.pack("<H", divisor)))
        else:  # pragma: no cover - below the supported firmware minimum
            raise FirmwareTooOld("SWD clock setting needs V2J22", serial=self.serial)
        self.swd_khz = applied
        self.log.debug("SWD clock %d kHz (asked %d)", applied, khz)
        return applied

    # --- core control --------------------------------------------------------------------------
    async def core_state(self) -> CoreState:
        """GETSTATUS: running or halted."""
        raw = await self._raw("GETSTATUS", _debug(DebugCommand.GETSTATUS), reply=STATUS_REPLY)
        try:
            return CoreState(raw[0])
        except ValueError:
            raise status_error(raw[0], serial=self.serial, command="GETSTATUS") from None

    async def halt(self) -> None:
        """FORCEDEBUG: halt the core."""
        await self._command("FORCEDEBUG", _debug(DebugCommand.FORCEDEBUG))

    async def run(self) -> None:
        """RUNCORE: resume the core."""
        await self._command("RUNCORE", _debug(DebugCommand.RUNCORE))

    async def step(self) -> None:
        """STEPCORE: execute one instruction (core must be halted)."""
        await self._command("STEPCORE", _debug(DebugCommand.STEPCORE))

    async def reset_system(self) -> None:
        """RESETSYS: the probe's system reset of the target (SYSRESETREQ through the debug port)."""
        await self._command("RESETSYS", _debug(DebugCommand.RESETSYS))

    async def drive_nrst(self, level: NrstLevel | int) -> None:
        """DRIVE_NRST: hold the target's NRST pin low, release it high, or pulse it."""
        await self._command("DRIVE_NRST", _debug(DebugCommand.DRIVE_NRST,
                                                 bytes([NrstLevel(level)])))

    async def read_core_register(self, index: int) -> int:
        """READREG: one core register by DCRSR index (0-12 R0-R12, 13 SP, 14 LR, 15 PC,
        16 xPSR, 17 MSP, 18 PSP, 20 CONTROL/FAULTMASK/BASEPRI/PRIMASK)."""
        raw = await self._command("READREG", _debug(DebugCommand.READREG, bytes([index])),
                                  reply=REG_REPLY)
        return u32(raw, 4)

    async def write_core_register(self, index: int, value: int) -> None:
        """WRITEREG: one core register by DCRSR index."""
        await self._command("WRITEREG", _debug(DebugCommand.WRITEREG,
                                               struct.pack("<BI", index, value & 0xFFFFFFFF)))

    async def read_all_core_registers(self) -> CoreRegisters:
        """READALLREGS: R0-R15, xPSR, MSP, PSP in one command."""
        raw = await self._command("READALLREGS", _debug(DebugCommand.READALLREGS),
                                  reply=ALLREGS_REPLY)
        return parse_all_registers(raw)

    async def read_debug_register(self, address: int) -> int:
        """READDEBUGREG: one 32-bit word (any address; meant for DHCSR, DEMCR, ...)."""
        raw = await self._command("READDEBUGREG",
                                  _debug(DebugCommand.READDEBUGREG, struct.pack("<I", address)),
                                  reply=REG_REPLY, address=address)
        return u32(raw, 4)

    async def write_debug_register(self, address: int, value: int) -> None:
        """WRITEDEBUGREG: one 32-bit word."""
        await self._command("WRITEDEBUGREG",
                            _debug(DebugCommand.WRITEDEBUGREG,
                                   struct.pack("<II", address, value & 0xFFFFFFFF)),
                            address=address)

    # --- DAP -----------------------------------------------------------------------------------
    def _check_dap(self, port: int, register: int, command: str) -> None:
        caps = self._require_caps()
        if not caps.dap_registers:
            raise FirmwareTooOld(f"DAP register access needs V2J24 firmware ({self.version})",
                                 serial=self.serial, command=command)
        if port == DP_PORT and register & 0xF0 and not caps.csw:
            raise FirmwareTooOld(
                f"banked DP register 0x{register:02X} needs V2J32 / V3J2 firmware ({self.version})",
                serial=self.serial, command=command)

    async def read_dap_register(self, port: int, register: int) -> int:
        """READ_DAP_REG: a DP register (``port`` = DP_PORT) or an AP register (``port`` = APSEL).
        The probe manages DP SELECT itself."""
        self._check_dap(port, register, "READ_DAP_REG")
        raw = await self._command("READ_DAP_REG", _debug(DebugCommand.READ_DAP_REG,
                                                         struct.pack("<HH", port, register)),
                                  reply=REG_REPLY)
        return u32(raw, 4)

    async def write_dap_register(self, port: int, register: int, value: int) -> None:
        """WRITE_DAP_REG: a DP register (``port`` = DP_PORT) or an AP register."""
        self._check_dap(port, register, "WRITE_DAP_REG")
        await self._command("WRITE_DAP_REG",
                            _debug(DebugCommand.WRITE_DAP_REG,
                                   struct.pack("<HHI", port, register, value & 0xFFFFFFFF)))

    async def init_ap(self, apsel: int = 0) -> None:
        """INIT_AP (V2J28+, V3): prepare an AP for memory access. Older firmware needs nothing."""
        if self._require_caps().init_ap:
            await self._command("INIT_AP", _debug(DebugCommand.INIT_AP, bytes([apsel, 0])))

    # --- memory --------------------------------------------------------------------------------
    def _memory_timeout(self, length: int) -> float:
        """USB timeout for a memory command: the base timeout plus time for ``length`` bytes at
        the SWD clock with a 3x margin (8 bits a byte, ~1.5x SWD overhead, 2x safety)."""
        khz = self.swd_khz or 100
        return self.timeout + length * 24 / (khz * 1000)

    def plan(self, address: int, length: int, width: int) -> list[Chunk]:
        """The memory commands a transfer becomes (see ``protocol.plan_chunks``)."""
        caps = self._require_caps()
        if width == 2 and not caps.mem16:  # pragma: no cover - below the firmware minimum
            width = 1
        if self.info.max_transfer:      # e.g. an old stlink-server's 1 KiB limit
            return plan_chunks(address, length, width, max_rw8=min(caps.max_rw8, self.info.max_transfer),
                               max_wide=min(MAX_WIDE_TRANSFER, self.info.max_transfer))
        return plan_chunks(address, length, width, max_rw8=caps.max_rw8)

    async def read_memory(self, address: int, length: int, *, width: int = 4) -> bytes:
        """Read ``length`` bytes from any address. ``width`` (1, 2, 4) is the access size for the
        aligned part; unaligned head and tail bytes are read 8-bit."""
        parts = [await self._memory_chunk(chunk) for chunk in self.plan(address, length, width)]
        return b"".join(parts)

    async def write_memory(self, address: int, data: bytes, *, width: int = 4) -> None:
        """Write ``data`` at any address, with ``width`` accesses for the aligned part and 8-bit
        accesses for unaligned head and tail bytes."""
        for chunk in self.plan(address, len(data), width):
            offset = chunk.address - address
            await self._memory_chunk(chunk, bytes(data[offset:offset + chunk.length]))

    async def read_u32(self, address: int) -> int:
        """One aligned 32-bit word."""
        return int.from_bytes(await self.read_memory(address, 4), "little")

    async def write_u32(self, address: int, value: int) -> None:
        """One aligned 32-bit word."""
        await self.write_memory(address, (value & 0xFFFFFFFF).to_bytes(4, "little"))

    async def _memory_chunk(self, chunk: Chunk, data: bytes | None = None) -> bytes:
        """One memory command and its GETLASTRWSTATUS(2), as one locked transaction. WAIT is
        retried (a retried write re-sends its data); a fault raises MemoryFault at the faulting
        address."""
        width, address, length = chunk
        ops = _WRITE_OPS if data is not None else _READ_OPS
        name = ops[width].name
        cmd = memory_block(Command.DEBUG, ops[width], address, length)
        timeout = self._memory_timeout(length)

        async def exchange() -> tuple[int, tuple[bytes, int]]:
            async with self._lock:
                result = await self._channel.transfer(
                    cmd, name=name, data=data, reply=0 if data is not None else length,
                    timeout=timeout, address=address)
                status, fault_address = await self._last_rw_status(name, address, timeout)
            return status, (result, fault_address)

        status, (result, fault_address) = await self._retry_wait(name, address, exchange)
        if status in _OK:
            return result
        if not address <= fault_address < address + length:
            fault_address = address     # no (or a foreign) address reported: blame the chunk
        error = status_error(status, serial=self.serial, command=name, address=fault_address,
                             memory=True)
        if isinstance(error, MemoryFault):
            await self._clear_sticky_errors()
        raise error

    async def _last_rw_status(self, name: str, address: int, timeout: float) -> tuple[int, int]:
        """(status, fault address) of the last memory command; call with the lock held."""
        if self._require_caps().rw_status2:
            raw = await self._channel.transfer(_debug(DebugCommand.GETLASTRWSTATUS2),
                                               name=f"{name}/GETLASTRWSTATUS2",
                                               reply=RW_STATUS2_REPLY, timeout=timeout,
                                               address=address)
            return raw[0], u32(raw, 4)
        raw = await self._channel.transfer(_debug(DebugCommand.GETLASTRWSTATUS),
                                           name=f"{name}/GETLASTRWSTATUS", reply=STATUS_REPLY,
                                           timeout=timeout, address=address)
        return raw[0], address

    async def _clear_sticky_errors(self) -> None:
        """DP ABORT = 0x1E after a memory fault, so a sticky error does not refuse what follows.
        Firmware below V2J24 has no DAP register command, so there it is skipped."""
        if not self._require_caps().dap_registers:
            return
        try:
            await self.write_dap_register(DP_PORT, DP_ABORT_REGISTER, DP_ABORT_CLEAR_ALL)
        except StlinkError as exc:
            self.log.warning("clearing sticky errors after a memory fault failed: %s", exc)
