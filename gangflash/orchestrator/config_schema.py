"""The batch config as frozen dataclasses: what :func:`gangflash.orchestrator.config.load_config`
returns once every check has passed.

Frozen because one config drives a whole batch from many tasks at once; nobody may change it
under a running board. Paths are absolute (resolved against the config file's folder) so the
journal records where things really were. Defaults live here, next to the fields, so the
documentation (``docs/config.md``) and the code have one place to agree on.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from gangflash.target.image import Image

from .partnumbers import PartNumber

MODES = ("batch", "auto")
FIRMWARE_FORMATS = ("bin", "hex", "elf", "srec")
ERASE_MODES = ("auto", "sectors", "mass")
VERIFY_MODES = ("crc", "readback", "none")
SERIAL_FORMATS = ("counter", "csv")
SERIAL_ENCODINGS = ("ascii", "u32le")
ON_FAILURE = ("burn", "reuse")
UID_BYTES = 12          # the STM32 96-bit unique ID


@dataclass(frozen=True)
class FirmwareSpec:
    """``[firmware]``: the image every board gets."""

    path: Path                        # absolute
    format: str                       # one of FIRMWARE_FORMATS: as given, or detected from the suffix
    base_address: int | None          # where a .bin starts; None for formats that carry addresses
    sha256: str                       # the file's SHA-256 (lower-case hex), what sha256sum prints
    size: int                         # file size in bytes
    content_sha256: str = ""          # format-independent hash of what is written (target.image.Image.sha256)
    expected_sha256: str | None = None  # as written in the config (already checked equal)
    segments: tuple[tuple[int, int], ...] = ()  # (start, end) flash ranges the image writes
    image: Image | None = field(default=None, compare=False, repr=False)  # parsed once, at load


@dataclass(frozen=True)
class TargetSpec:
    """``[target]``: the chip every board must be; a board with another chip fails before erase."""

    chip: str | None = None           # normalized part name, e.g. "STM32F103C8"
    family: str | None = None         # normalized family, e.g. "F1" (derived from chip when only chip given)
    part: PartNumber | None = None    # decoded ``chip``: flash size for the fit checks

    @property
    def flash_size(self) -> int | None:
        return self.part.flash_size if self.part else None


@dataclass(frozen=True)
class SlotSpec:
    """One ``[[slot]]``: a fixture position, bound to a probe serial and/or a USB port path."""

    label: str
    probe: str | None = None          # as written: serial or "tcp://host:port/SERIAL"
    serial: str | None = None         # the probe serial (from either form)
    server: str | None = None         # "host:port" of an stlink-server for the tcp form
    port: str | None = None           # USB port path such as "1-1.4.2"


@dataclass(frozen=True)
class PipelineSpec:
    """``[pipeline]``: how each board is programmed."""

    erase: str = "auto"               # ERASE_MODES
    verify: str = "crc"               # VERIFY_MODES
    connect_under_reset: bool = False
    swd_khz: int = 4000
    reset_after: bool = True          # reset and run the new firmware after programming
    unlock: bool = False              # allow RDP 1 -> 0 (which mass-erases the chip)
    rdp_after: int = 0                # readout protection level to set after programming (0 or 1)
    halt_reset: bool = True           # reset-and-halt before the loader; False: halt + C_MASKINTS only
    stage_timeout_s: float = 60.0     # deadline of each pipeline stage


@dataclass(frozen=True)
class RetrySpec:
    """``[retry]``: how often a failed board is tried again before it is reported failed."""

    attempts: int = 2                 # total attempts per board, >= 1
    delay_s: float = 0.5


@dataclass(frozen=True)
class SerialNumberSpec:
    """``[serial_number]``: a unique number written into each board's flash.

    It is also the *serial source* the journal allocates from (:class:`SerialSource` protocol in
    ``journal``): ``source`` names the sequence and ``value_at(index)`` renders its index-th value,
    so the journal alone decides which index is next and never hands a value out twice.
    """

    address: int
    format: str                       # SERIAL_FORMATS
    start: int = 0                    # counter
    step: int = 1                     # counter
    template: str = "%d"              # counter + ascii: printf-like, e.g. "SN-%06d"
    file: Path | None = None          # csv (absolute)
    column: str | None = None         # csv: column name (default: the first)
    csv_values: tuple[str, ...] = ()  # csv: the column's values in file order, read at load
    encoding: str = "ascii"           # SERIAL_ENCODINGS; u32le only with counter
    length: int = 0                   # bytes reserved for the number (text zero-padded)
    include_uid: bool = False         # also write the chip's 96-bit UID right after the number
    on_failure: str = "burn"          # ON_FAILURE

    @property
    def source(self) -> str:
        """Identity of the sequence: a changed template or start is a new sequence."""
        if self.format == "csv":
            return f"csv:{self.file}:{self.column}"
        return f"counter:{self.encoding}:{self.template}:start={self.start}:step={self.step}"

    @property
    def area_size(self) -> int:
        """Bytes written at ``address``: the number, then the UID if included."""
        return self.length + (UID_BYTES if self.include_uid else 0)

    @property
    def area(self) -> tuple[int, int]:
        """``(start, end)`` of the flash area the serial number occupies."""
        return self.address, self.address + self.area_size

    def value_at(self, index: int) -> str | None:
        """The ``index``-th value (0-based) as text, or None when the sequence has run out
        (CSV rows exhausted, a counter past what ``length`` bytes or a u32 can hold)."""
        if index < 0:
            raise ValueError("serial index must be >= 0")
        if self.format == "csv":
            return self.csv_values[index] if index < len(self.csv_values) else None
        number = self.start + index * self.step
        if self.encoding == "u32le":
            return str(number) if 0 <= number <= 0xFFFFFFFF else None
        text = render_template(self.template, number)
        if text is None or len(text.encode("ascii", "replace")) > self.length:
            return None
        return text

    def encode(self, value: str, uid: bytes | None = None) -> bytes:
        """The bytes to program at ``address`` for ``value`` (and the chip's UID if included)."""
        if self.encoding == "u32le":
            body = struct.pack("<I", int(value))
        else:
            body = value.encode("ascii")
        if len(body) > self.length:
            raise ValueError(f"serial number {value!r} needs {len(body)} bytes, {self.length} reserved")
        body = body.ljust(self.length, b"\x00")
        if self.include_uid:
            if uid is None or len(uid) != UID_BYTES:
                raise ValueError(f"include_uid needs the chip's {UID_BYTES}-byte UID")
            body += uid
        return body


def render_template(template: str, number: int) -> str | None:
    """``template % number``, or None when the template does not take exactly one number."""
    try:
        text = template % (number,)
    except (TypeError, ValueError):
        return None
    return text if text.isascii() else None


@dataclass(frozen=True)
class SimBoard:
    """One simulated probe with its board (``[[sim.board]]`` or one entry of ``--sim``).

    ``faults`` and ``probe_faults`` map knob names of ``gangflash.sim.faults.TargetFaults`` and
    ``ProbeFaults`` to values already converted to the knob's type; ``config.make_sim_probe``
    turns them into the simulator's objects.
    """

    chip: str                         # simulator chip name, e.g. "F103C8"
    probe_model: str = "V2"
    serial: str = ""                  # always set after loading (deterministic default per index)
    label: str | None = None          # slot label for this board when slots are [slots] all
    faults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    probe_faults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class SimSpec:
    """``[sim]``: run against simulated probes instead of USB."""

    pace: float = 1.0                 # 1.0 = real time, 0 = as fast as the host can
    boards: tuple[SimBoard, ...] = ()


@dataclass(frozen=True)
class BatchConfig:
    """A whole, validated batch config."""

    path: Path                        # the config file (absolute)
    name: str
    journal: Path                     # absolute; default "<config stem>.journal.db" beside the config
    mode: str                         # MODES
    firmware: FirmwareSpec
    target: TargetSpec
    slots: tuple[SlotSpec, ...]       # empty when all_probes
    all_probes: bool                  # [slots] all = true: every probe present is a slot
    label_prefix: str                 # [slots] label_prefix: labels of all_probes slots (S1, S2...)
    pipeline: PipelineSpec
    retry: RetrySpec
    serial_number: SerialNumberSpec | None = None
    sim: SimSpec | None = None
