"""A simulated ST-Link probe as a host sees it on the USB cable.

``SimProbe`` is the USB side: descriptors, the bulk endpoints, command framing, the reply queue,
the cable's fault knobs and the virtual-time cost of every transfer. What a command *means* is
the firmware model's business (``probe_commands.ProbeFirmware``), which drives the simulated
target through ``probe_target``.

Framing, as on hardware (``shared/reference/stlink-protocol.md``, Command framing): a command is
one OUT transfer holding the 16-byte block (a shorter transfer is zero-padded); a write command's
data phase follows in as many OUT transfers as the host likes, exactly ``len`` bytes, and only
then does the command run; its reply, if any, waits for IN transfers. An IN transfer returns at
most the rest of the oldest queued reply, never bytes of two replies (each reply ends in a short
packet), so a host reading with a buffer larger than the reply (pyOCD reads at least
wMaxPacketSize) gets exactly the reply. With nothing queued an IN transfer times out, as a real
host sees it (pyOCD's open-time RX flush depends on that).

Fault knobs (``ProbeFaults``; the probe works on its own copy and consumes knobs as they fire):
- ``usb_timeout_on`` / ``usb_stall_on``: the Nth bulk transfer (1-based, OUT and IN counted
  together) raises UsbTimeout / UsbStall, once. Nothing crosses: a lost OUT never reaches the
  firmware; a lost IN leaves the reply queued for the next read.
- ``unplug_after_bytes``: once that many payload bytes crossed (both directions) the probe is
  gone. A transfer that would cross the limit fails with UsbGone and its bytes are lost (a partial
  command never runs); one that ends exactly on it completes, then the probe is gone.
- ``swd_wait_burst`` / ``swd_wait_on_command``: see ``probe_target``.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import threading
from typing import TYPE_CHECKING, Any

from .clock import Clock
from .errors import UsbGone, UsbStall, UsbTimeout
from .faults import ProbeFaults
from .probe_commands import ProbeFirmware
from .probe_timing import UsbTimeline
from .stlink_protocol import COMMAND_SIZE, Mode, command_name
from . import usb_descriptors as desc

if TYPE_CHECKING:
    from .target import SimTarget

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1024)
def _command_name(op: int, sub: int) -> str:
    """``command_name`` depends on the first two bytes only: cached, since every command needs
    it for the statistics and busy-polling hosts send tens of thousands a second."""
    return command_name(bytes([op, sub]))


class _Reply:
    """A queued reply: its unread bytes, when the firmware has it ready, whether an IN transfer
    took part of it yet. A slotted class: one is built per command."""

    __slots__ = ("data", "ready_at", "started")

    def __init__(self, data: bytearray, ready_at: float) -> None:
        self.data, self.ready_at, self.started = data, ready_at, False


class SimProbe:
    """One virtual ST-Link (V2, V2-1, V3 or V3E) with an optional target behind it.

    Thread-safe: a lock serialises every entry point, because hosts may drive the probe from a
    USB event thread (umockdev handler) while the test or dashboard inspects it.
    """

    def __init__(self, *, serial: str, target: "SimTarget | None", clock: Clock,
                 model: str = "V2", faults: ProbeFaults | None = None,
                 jtag_version: int | None = None) -> None:
        if model not in desc.VARIANTS:
            raise ValueError(f"unknown probe model {model!r}; one of {sorted(desc.VARIANTS)}")
        v = desc.VARIANTS[model]
        if len(serial) == 12 and model != "V2":
            raise ValueError("only old V2 firmware reports the 12-byte raw serial")
        self._variant = v
        self.variant = v.name
        self.vid, self.pid = desc.VID_ST, v.pid
        self.manufacturer, self.product = desc.MANUFACTURER, v.product
        self.serial_string = serial
        self.serial = desc.decode_serial(serial)
        self.out_ep, self.in_ep, self.swv_ep = v.out_ep, v.in_ep, v.swv_ep
        self.max_packet = v.max_packet
        self.target = target
        self._clock = clock
        self.faults = dataclasses.replace(faults) if faults is not None else ProbeFaults()
        self.stats: dict[str, Any] = {
            "commands": 0, "by_opcode": collections.Counter(), "transfers_out": 0,
            "transfers_in": 0, "bytes_out": 0, "bytes_in": 0, "virtual_time": 0.0,
            "swd_time": 0.0, "usb_resets": 0, "faults": collections.Counter(),
        }
        self.firmware = ProbeFirmware(v, target, self.faults, self.stats["faults"], jtag_version)
        self._timeline = UsbTimeline(self.firmware.timing)
        self._strings = desc.strings_for(v, serial)
        self._lock = threading.RLock()
        self._replies: collections.deque[_Reply] = collections.deque()
        self._pending: bytes | None = None       # command block waiting for its data phase
        self._pending_data = bytearray()
        self._pending_need = 0
        self._transfers = 0
        self._bytes_crossed = 0
        self.unplugged = False

    # --- identity ---------------------------------------------------------------------------------
    @property
    def mode(self) -> Mode:
        """The firmware mode GET_CURRENT_MODE reports (tests may set it, e.g. to DFU)."""
        return self.firmware.mode

    @mode.setter
    def mode(self, value: int) -> None:
        self.firmware.mode = Mode(value)

    def device_descriptor(self) -> bytes:
        """The 18 bytes a host reads at enumeration (VID, PID, bcdUSB, EP0 size, strings)."""
        with self._lock:
            self._alive()
            return desc.device_descriptor(self._variant)

    def config_descriptor(self) -> bytes:
        """The whole configuration: hosts find the debug endpoints and packet size here."""
        with self._lock:
            self._alive()
            return desc.config_descriptor(self._variant)

    def string_descriptor(self, index: int, langid: int = desc.LANGID_EN_US) -> bytes:
        """The probe answers every LANGID with its one language, as single-language devices do;
        an index it does not have STALLs the control request."""
        with self._lock:
            self._alive()
            data = desc.string_descriptor(self._strings, index)
            if data is None:
                raise UsbStall(f"string descriptor {index} does not exist")
            return data

    # --- USB plumbing -----------------------------------------------------------------------------
    def _alive(self) -> None:
        if self.unplugged:
            raise UsbGone(f"probe {self.serial} is unplugged")

    def _enter_transfer(self) -> None:
        """Refuse when gone (also when a byte limit of 0 means gone from the start), then
        number the transfer for the one-shot knobs. Runs twice per command: the knob checks
        are skipped while no knob is set."""
        self._alive()
        faults = self.faults
        if faults.unplug_after_bytes is not None:
            self._maybe_vanish_at_limit()
            self._alive()
        if (faults.hang_after_transfers is None and faults.usb_timeout_on is None
                and faults.usb_stall_on is None):
            self._transfers += 1
            return
        self._count_transfer()

    def _count_transfer(self) -> None:
        """Number this bulk transfer and fire the one-shot timeout / stall knobs."""
        self._transfers += 1
        hang = self.faults.hang_after_transfers
        if hang is not None and self._transfers > hang:
            self.stats["faults"]["usb_timeout"] += 1
            raise UsbTimeout(f"bulk transfer #{self._transfers} timed out (probe firmware hung)")
        if self.faults.usb_timeout_on == self._transfers:
            self.faults.usb_timeout_on = None
            self.stats["faults"]["usb_timeout"] += 1
            raise UsbTimeout(f"bulk transfer #{self._transfers} timed out (fault knob)")
        if self.faults.usb_stall_on == self._transfers:
            self.faults.usb_stall_on = None
            self.stats["faults"]["usb_stall"] += 1
            raise UsbStall(f"bulk transfer #{self._transfers} stalled (fault knob)")

    def _cross(self, nbytes: int) -> None:
        """Let ``nbytes`` of payload cross the cable, or unplug if that would pass the limit."""
        limit = self.faults.unplug_after_bytes
        if limit is not None and self._bytes_crossed + nbytes > limit:
            self._bytes_crossed = limit
            self._vanish()
            raise UsbGone(f"probe {self.serial} unplugged after {limit} bytes (fault knob)")
        self._bytes_crossed += nbytes

    def _vanish(self) -> None:
        self.unplugged = True
        self.stats["faults"]["unplug"] += 1
        self._drop_state()

    def _maybe_vanish_at_limit(self) -> None:
        limit = self.faults.unplug_after_bytes
        if limit is not None and self._bytes_crossed >= limit and not self.unplugged:
            self._vanish()

    def _drop_state(self) -> None:
        self._pending, self._pending_need = None, 0
        self._pending_data = bytearray()
        self._replies.clear()

    def _charge(self, cost: float) -> float:
        self.stats["virtual_time"] += cost
        return cost

    # --- bulk endpoints ---------------------------------------------------------------------------
    def bulk_out(self, ep: int, data: bytes) -> float:
        """One OUT transfer; returns the virtual seconds it took (command execution included
        when this transfer completes a command)."""
        with self._lock:
            self._alive()
            if ep != self.out_ep:
                raise ValueError(f"0x{ep:02X} is not this probe's OUT endpoint 0x{self.out_ep:02X}")
            self._enter_transfer()
            data = bytes(data)
            self._cross(len(data))
            self.stats["transfers_out"] += 1
            self.stats["bytes_out"] += len(data)
            now = self._clock()
            if self._pending is not None:
                end = self._timeline.out_transfer(now, len(data), new_command=False)
                take = data[:self._pending_need - len(self._pending_data)]
                if len(take) < len(data):
                    log.warning("probe %s: %d bytes beyond the data phase dropped", self.serial,
                                len(data) - len(take))
                self._pending_data += take
                if len(self._pending_data) < self._pending_need:
                    return self._charge(end - now)
                cmd, payload = self._pending, bytes(self._pending_data)
                self._pending, self._pending_need = None, 0
                self._pending_data = bytearray()
            else:
                end = self._timeline.out_transfer(now, len(data), new_command=True)
                if not data:
                    return self._charge(end - now)
                if len(data) > COMMAND_SIZE:
                    log.warning("probe %s: %d bytes after the command block dropped",
                                self.serial, len(data) - COMMAND_SIZE)
                cmd = data[:COMMAND_SIZE].ljust(COMMAND_SIZE, b"\x00")
                need = self.firmware.data_phase_length(cmd)
                if need > 0:
                    self._pending, self._pending_need = cmd, need
                    return self._charge(end - now)
                payload = b""
            done = self._execute(cmd, payload, end)
            self._maybe_vanish_at_limit()
            return self._charge(done - now)

    def _execute(self, cmd: bytes, payload: bytes, start: float) -> float:
        """Run a complete command; queue its reply; return when the firmware is done."""
        self.stats["commands"] += 1
        name = _command_name(cmd[0], cmd[1])
        self.stats["by_opcode"][name] += 1
        meter = self.firmware.link.begin_command(self.stats["commands"])
        now = self._clock()
        if self.target is not None and self.firmware.touches_target(cmd):
            self.target.sync(now)
        reply = self.firmware.execute(cmd, payload, now)
        swd_s = meter.seconds(self.firmware.swd_hz, self.firmware.timing)
        self.stats["swd_time"] += swd_s
        done = start + self.firmware.timing.command_overhead_s + swd_s
        self._timeline.command_done(done)
        if reply is not None:
            self._replies.append(_Reply(bytearray(reply), done))
        if log.isEnabledFor(logging.DEBUG):     # the reply's rendering is not free: skip it
            log.debug("probe %s: %s -> %s", self.serial, name,
                      reply.hex() if reply is not None and len(reply) <= 16 else
                      (f"{len(reply)} bytes" if reply is not None else "no reply"))
        return done

    def bulk_in(self, ep: int, size: int) -> tuple[bytes, float]:
        """One IN transfer of up to ``size`` bytes of the oldest queued reply."""
        with self._lock:
            self._alive()
            if ep not in (self.in_ep, self.swv_ep):
                raise ValueError(f"0x{ep:02X} is not an IN endpoint of this probe")
            self._enter_transfer()
            self.stats["transfers_in"] += 1
            if ep == self.swv_ep or not self._replies:
                raise UsbTimeout("nothing to read" if ep == self.in_ep else "no SWO data")
            head = self._replies[0]
            chunk = bytes(head.data[:max(0, size)])
            self._cross(len(chunk))
            now = self._clock()
            end = self._timeline.in_transfer(now, len(chunk), head.ready_at,
                                             first=not head.started)
            head.started = True
            del head.data[:len(chunk)]
            if not head.data:
                self._replies.popleft()
            self.stats["bytes_in"] += len(chunk)
            self._maybe_vanish_at_limit()
            return chunk, self._charge(end - now)

    @property
    def idle(self) -> bool:
        """True when no command waits for its data phase and no reply is queued: the next OUT
        transfer is taken as a command block and the next IN transfer reads its reply."""
        with self._lock:
            return self._pending is None and not self._replies

    def usb_reset(self) -> float:
        """Port reset: the firmware loses a half-received command and unread replies; its mode,
        clocks and the target connection stay (the probe MCU itself is not reset)."""
        with self._lock:
            self._alive()
            self._drop_state()
            self.stats["usb_resets"] += 1
            now = self._clock()
            return self._charge(self._timeline.port_reset(now) - now)

    def unplug(self) -> None:
        """Pull the cable: every later call raises UsbGone."""
        with self._lock:
            self.unplugged = True
            self._drop_state()

    def __repr__(self) -> str:
        return (f"SimProbe({self.variant} {self.serial} "
                f"J{self.firmware.jtag}{' unplugged' if self.unplugged else ''})")
