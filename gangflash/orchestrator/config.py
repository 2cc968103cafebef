"""Load and check a batch config (TOML) before any board is touched.

``load_config(path)`` returns a frozen :class:`BatchConfig` or raises :class:`ConfigErrors` listing
*every* problem (unknown keys with the closest known one, wrong types, missing files, a bad
SHA-256, duplicate slots, an image that does not fit the expected chip, a serial-number area
outside flash or over the image), each naming the file, the key path and the line. A production
line finds a broken config at the bench, not after a fixture of boards has been erased.

Pieces: ``config_schema`` (the frozen dataclasses and their defaults), ``config_errors`` (error
types, the line locator, the collecting reader), ``config_serial`` (``[serial_number]``) and
``config_sim`` (``[sim]``, the only module here that imports the simulator). This module reads
the other sections, cross-checks them and re-exports what callers need. The documented
reference of every key is ``docs/config.md``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tomllib
from dataclasses import fields
from pathlib import Path

from gangflash.target.errors import ImageError, ImageOutOfRange
from gangflash.target.image import Image, check_fits, detect_format, load_image
from gangflash.transport.stlink_server import parse_probe_url

from .config_errors import (
    MISSING, BadImage, BadValue, ChecksumMismatch, Collector, ConfigError, ConfigErrors,
    ConfigSyntaxError, ConflictingKeys, DuplicateLabel, DuplicateProbe, ImageDoesNotFit, MissingFile,
    MissingKey, WrongType, at_least, format_errors, suggest,
)
from .config_schema import (
    ERASE_MODES, FIRMWARE_FORMATS, MODES, VERIFY_MODES, BatchConfig, FirmwareSpec,
    PipelineSpec, RetrySpec, SlotSpec, TargetSpec,
)
from .config_serial import read_serial_number
from .config_sim import make_sim_probes, read_sim_section, sim_boards_from_spec
from .partnumbers import FLASH_BASE, PartNumberError, decode_part_number, format_size, normalize_family

__all__ = ["BatchConfig", "ConfigError", "ConfigErrors", "format_errors", "load_config",
           "parse_config", "sim_boards_from_spec", "make_sim_probes", "known_families"]

log = logging.getLogger(__name__)

_PORT_PATH = re.compile(r"^\d+-\d+(\.\d+)*$")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_SERIAL_TEXT = re.compile(r"^[\x21-\x7e]+$")
MAX_SWD_KHZ = 24000     # ST-Link V3's top SWD clock; V2 stops at 4000 and rounds down


def known_families() -> list[str]:
    """Families the target layer's part database can program ("F1", "F4", "L4"...): what
    ``[target] family`` (or the family of ``[target] chip``) may name."""
    from gangflash.target.part_table import PART_LIST
    return sorted({part.family for part in PART_LIST})


# --- loading -------------------------------------------------------------------------------------

_TOP_KEYS = ("batch", "firmware", "target", "slot", "slots", "pipeline", "retry", "serial_number", "sim")


def load_config(path: str | Path) -> BatchConfig:
    """Read, parse and check the batch config at ``path``; raise :class:`ConfigErrors` if anything
    is wrong (all problems at once). Relative paths inside resolve against the file's folder."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigErrors([MissingFile(f"cannot read the config: {exc.strerror or exc}", file=file)]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigErrors([ConfigSyntaxError(f"not UTF-8 text: {exc.reason}", file=file)]) from exc
    return parse_config(text, file)


def parse_config(text: str, path: str | Path) -> BatchConfig:
    """Check ``text`` as the content of the config at ``path`` (used for messages and relative paths)."""
    file = Path(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        where = re.search(r"\(at line (\d+), column (\d+)\)", message)
        if where:
            message = message[:where.start()].strip()
        raise ConfigErrors([ConfigSyntaxError(
            f"not valid TOML: {message}", file=file,
            line=int(where[1]) if where else None, column=int(where[2]) if where else None)]) from exc
    ck = Collector(file, text)
    folder = file.resolve().parent
    ck.known(data, "", _TOP_KEYS)
    name, journal, mode = _batch(ck, data, file, folder)
    target = _target(ck, data)
    firmware = _firmware(ck, data, folder, target)
    slots, all_probes, prefix = _slots(ck, data)
    pipeline = _pipeline(ck, data)
    retry = _retry(ck, data)
    serial = read_serial_number(ck, data, folder, target, firmware)
    sim = read_sim_section(ck, data)
    if ck.errors or firmware is None or name is None:     # None only ever comes with an error
        raise ConfigErrors(ck.errors)
    return BatchConfig(path=file.resolve(), name=name, journal=journal, mode=mode, firmware=firmware,
                       target=target, slots=slots, all_probes=all_probes, label_prefix=prefix,
                       pipeline=pipeline, retry=retry, serial_number=serial, sim=sim)


def _batch(ck: Collector, data: dict, file: Path, folder: Path) -> tuple[str | None, Path, str]:
    table = ck.table(data, "batch", ("name", "journal", "mode"), required=True) or {}
    name = ck.get(table, "batch.name", str, required=True,
                  check=lambda v: "must not be empty" if not v.strip() else None, allowed="any text")
    journal_text = ck.get(table, "batch.journal", str, f"{file.stem}.journal.db")
    journal = (folder / journal_text).resolve()
    if not ck.failed("batch.journal") and not journal.parent.is_dir():
        ck.add(MissingFile, "batch.journal", f"folder {journal.parent} does not exist",
               hint="the journal is created there; create the folder or change the path")
    mode = ck.get(table, "batch.mode", str, "batch", choices=MODES)
    return name, journal, mode


def _target(ck: Collector, data: dict) -> TargetSpec:
    table = ck.table(data, "target", ("chip", "family"))
    if table is None:
        return TargetSpec()
    families = known_families()
    chip = ck.get(table, "target.chip", str)
    family = ck.get(table, "target.family", str)
    part = None
    if chip is not None:
        try:
            part = decode_part_number(chip)
        except PartNumberError as exc:
            ck.add(BadValue, "target.chip", exc.reason,
                   allowed="an STM32 part number such as 'STM32F103C8', 'STM32F412ZG', 'STM32L432KC'")
        else:
            if part.family not in families:
                ck.add(BadValue, "target.chip", f"{part.name} is of family {part.family}, which gangflash "
                       "cannot program", allowed="families " + ", ".join(families))
    if family is not None:
        family = normalize_family(family)
        if family not in families:
            ck.add(BadValue, "target.family", f"unknown family {family!r}", allowed=", ".join(families),
                   hint=suggest(family, families))
        elif part is not None and part.family != family:
            ck.add(ConflictingKeys, "target.family", f"family {family} contradicts target.chip "
                   f"{part.name} (family {part.family})", hint="give one of them, or make them agree")
    if ck.failed("target"):
        return TargetSpec()
    return TargetSpec(chip=part.name if part else None, family=family or (part.family if part else None),
                      part=part)


def _firmware(ck: Collector, data: dict, folder: Path, target: TargetSpec) -> FirmwareSpec | None:
    table = ck.table(data, "firmware", ("path", "format", "base_address", "sha256"), required=True)
    if table is None:
        return None
    text = ck.get(table, "firmware.path", str, required=True, allowed="a file path, relative to the config")
    fmt = ck.get(table, "firmware.format", str, None, choices=FIRMWARE_FORMATS)
    base = ck.get(table, "firmware.base_address", int,
                  check=lambda v: None if v >= 0 else "must not be negative", allowed="e.g. 0x08000000")
    expected = ck.get(table, "firmware.sha256", str,
                      check=lambda v: None if _SHA256.match(v) else "is not a SHA-256 (64 hex digits)",
                      allowed="64 hexadecimal digits, as printed by sha256sum")
    if text is None:
        return None
    path = (folder / text).resolve()
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        ck.add(MissingFile, "firmware.path", f"firmware file {path} does not exist")
        return None
    except OSError as exc:
        ck.add(MissingFile, "firmware.path", f"cannot read firmware file {path}: {exc.strerror or exc}")
        return None
    if fmt is None and not ck.failed("firmware.format"):
        fmt = detect_format(path, content[:64]) or ("bin" if base is not None else None)
        if fmt is None:
            ck.add(BadValue, "firmware.path", f"cannot tell the image format of {path.name} from its "
                   "suffix or content", allowed=", ".join(FIRMWARE_FORMATS), hint="set firmware.format")
    if fmt == "bin" and "base_address" not in table:
        ck.add(MissingKey, "firmware.base_address", "is required for a bin image (it carries no addresses)",
               allowed=f"the flash address of the first byte, usually 0x{FLASH_BASE:08X}")
    if fmt not in (None, "bin") and "base_address" in table:
        ck.add(ConflictingKeys, "firmware.base_address", f"only applies to bin images; a {fmt} image "
               "carries its own addresses", hint="remove it")
    digest = hashlib.sha256(content).hexdigest()
    if expected is not None and expected.lower() != digest:
        ck.add(ChecksumMismatch, "firmware.sha256", f"{path.name} has SHA-256 {digest}, the config "
               f"expects {expected.lower()}", hint="wrong or modified image; check the file before the batch")
    if ck.failed("firmware"):
        return None
    image = _load_image(ck, path, fmt, base, target)
    if image is None:
        return None
    return FirmwareSpec(path=path, format=fmt, base_address=base, sha256=digest, size=len(content),
                        content_sha256=image.sha256, expected_sha256=expected.lower() if expected else None,
                        segments=tuple((segment.address, segment.end) for segment in image.segments),
                        image=image)


def _load_image(ck: Collector, path: Path, fmt: str, base: int | None, target: TargetSpec) -> Image | None:
    """Parse the image with the target layer's loader and check it fits the expected chip."""
    try:
        image = load_image(path, format=fmt, base_address=base)
    except ImageError as exc:
        where = f" (line {exc.line} of the image)" if exc.line and f"line {exc.line}" not in exc.detail else ""
        ck.add(BadImage, "firmware.path", f"{exc.detail}{where}", allowed=f"a valid {fmt} image")
        return None
    part = target.part
    if part is not None:
        try:
            check_fits(image, FLASH_BASE, part.flash_end, part_name=part.name)
        except ImageOutOfRange as exc:
            ck.add(ImageDoesNotFit, "firmware.path", f"{exc.detail} (image 0x{image.start:08X}..0x{image.end:08X}, "
                   f"{image.size} bytes)",
                   allowed=f"0x{FLASH_BASE:08X}..0x{part.flash_end:08X} ({format_size(part.flash_size)} of "
                   f"{part.name} flash)")
            return None
    return image


def _parse_probe(text: str) -> tuple[str, str | None]:
    """``"066D..."`` -> (serial, None); ``"tcp://host:7184/SERIAL"`` -> (serial, "host:7184"); the
    port may be left out (7184), as on the command line (one parser for both)."""
    if text.startswith("tcp://"):
        host, port, serial = parse_probe_url(text)
        return serial, f"{host}:{port}"
    if "://" in text:
        raise ValueError(f"unknown scheme {text.split('://', 1)[0]!r}; only tcp:// is supported")
    if not _SERIAL_TEXT.match(text):
        raise ValueError("a probe serial is printable text without spaces")
    return text, None


def _slots(ck: Collector, data: dict) -> tuple[tuple[SlotSpec, ...], bool, str]:
    group = ck.table(data, "slots", ("all", "label_prefix"))
    listed = data.get("slot", MISSING)
    if listed is not MISSING and not (isinstance(listed, list) and all(isinstance(s, dict) for s in listed)):
        ck.add(WrongType, "slot", "must be an array of tables", hint="write each slot as [[slot]]")
        listed = []
    all_probes, prefix = False, "S"
    if group is not None:
        all_probes = ck.get(group, "slots.all", bool, False, required=True, allowed="true")
        if "all" in group and all_probes is False and not ck.failed("slots.all"):
            ck.add(BadValue, "slots.all", "must be true", allowed="true",
                   hint="to list probes one by one use [[slot]] tables")
        prefix = ck.get(group, "slots.label_prefix", str, "S",
                        check=lambda v: "must not be empty" if not v else None, allowed="text such as 'S'")
        if listed is not MISSING:
            ck.add(ConflictingKeys, "slots.all", "[slots] all = true cannot be used together with "
                   "[[slot]] tables", hint="keep one of them")
    elif listed is MISSING:
        ck.add(MissingKey, "slot", "no slots: the batch needs [[slot]] tables or [slots] all = true")
    if listed is MISSING:
        return (), all_probes, prefix
    if not listed and group is None and not ck.failed("slot"):
        ck.add(MissingKey, "slot", "no slots: the batch needs [[slot]] tables or [slots] all = true")
    slots: list[SlotSpec] = []
    for number, table in enumerate(listed, start=1):
        path = f"slot[{number}]"
        ck.known(table, path, ("label", "probe", "port"))
        label = ck.get(table, f"{path}.label", str, required=True, allowed="a unique name such as 'A1'",
                       check=lambda v: "must not be empty" if not v.strip() else None)
        probe = ck.get(table, f"{path}.probe", str, allowed="a probe serial or tcp://HOST:PORT/SERIAL")
        port = ck.get(table, f"{path}.port", str, allowed="a USB port path such as '1-1.4.2'",
                      check=lambda v: None if _PORT_PATH.match(v) else f"{v!r} is not a USB port path")
        serial = server = None
        if probe is not None:
            try:
                serial, server = _parse_probe(probe)
            except ValueError as exc:
                ck.add(BadValue, f"{path}.probe", f"{probe!r}: {exc}",
                       allowed="a probe serial such as '066DFF...' or tcp://HOST:PORT/SERIAL")
        if server is not None and port is not None:
            ck.add(ConflictingKeys, f"{path}.port", "a tcp:// probe is reached through its stlink-server, "
                   "it has no USB port here", hint="remove port, or name the probe by serial")
        if "probe" not in table and "port" not in table:
            ck.add(MissingKey, f"{path}.probe", "a slot needs a probe serial, a USB port path, or both",
                   allowed="probe = SERIAL and/or port = '1-1.4.2'")
        slots.append(SlotSpec(label=label or "", probe=probe, serial=serial, server=server, port=port))
    _check_slot_duplicates(ck, slots)
    return tuple(slots), all_probes, prefix


def _check_slot_duplicates(ck: Collector, slots: list[SlotSpec]) -> None:
    for j, later in enumerate(slots):
        for i, earlier in enumerate(slots[:j]):
            first = f"slot[{i + 1}]"
            here = f"slot[{j + 1}]"
            if later.label and later.label == earlier.label:
                ck.add(DuplicateLabel, f"{here}.label", f"label {later.label!r} is already used by {first}"
                       f" (line {ck.index.line_of(first + '.label')})", allowed="a label unique in the file")
            same_probe = (later.serial is not None and later.serial == earlier.serial
                          and later.server == earlier.server)
            if later.port and later.port == earlier.port:
                ck.add(DuplicateProbe, f"{here}.port", f"USB port {later.port!r} is already bound to {first}"
                       f" (line {ck.index.line_of(first + '.port')})", allowed="one slot per port")
            elif same_probe and not (later.port and earlier.port):
                ck.add(DuplicateProbe, f"{here}.probe", f"probe {later.serial!r} is already claimed by "
                       f"{first} (line {ck.index.line_of(first + '.probe')})",
                       hint="two probes reporting one serial can be told apart only by different port paths")


def _pipeline(ck: Collector, data: dict) -> PipelineSpec:
    keys = [f.name for f in fields(PipelineSpec)]
    table = ck.table(data, "pipeline", keys) or {}
    d = PipelineSpec()
    return PipelineSpec(
        erase=ck.get(table, "pipeline.erase", str, d.erase, choices=ERASE_MODES),
        verify=ck.get(table, "pipeline.verify", str, d.verify, choices=VERIFY_MODES),
        connect_under_reset=ck.get(table, "pipeline.connect_under_reset", bool, d.connect_under_reset),
        swd_khz=ck.get(table, "pipeline.swd_khz", int, d.swd_khz, allowed=f"1..{MAX_SWD_KHZ}",
                       check=lambda v: None if 1 <= v <= MAX_SWD_KHZ else f"{v} kHz is out of range"),
        reset_after=ck.get(table, "pipeline.reset_after", bool, d.reset_after),
        unlock=ck.get(table, "pipeline.unlock", bool, d.unlock),
        rdp_after=ck.get(table, "pipeline.rdp_after", int, d.rdp_after, allowed="0 or 1",
                         check=lambda v: None if v in (0, 1) else (
                             "level 2 is permanent (debug disabled forever); gangflash never sets it"
                             if v == 2 else f"{v} is not a readout protection level")),
        halt_reset=ck.get(table, "pipeline.halt_reset", bool, d.halt_reset),
        stage_timeout_s=ck.get(table, "pipeline.stage_timeout_s", float, d.stage_timeout_s,
                               check=at_least(0, exclusive=True), allowed="seconds > 0"),
    )


def _retry(ck: Collector, data: dict) -> RetrySpec:
    table = ck.table(data, "retry", ("attempts", "delay_s")) or {}
    d = RetrySpec()
    return RetrySpec(
        attempts=ck.get(table, "retry.attempts", int, d.attempts, check=at_least(1), allowed="an integer >= 1"),
        delay_s=ck.get(table, "retry.delay_s", float, d.delay_s, check=at_least(0), allowed="seconds >= 0"),
    )

