"""``gangflash flash``: program one board, from a technician's bench or a script.

::

    gangflash flash FIRMWARE [--address A] [--format bin|hex|elf|srec] [--probe SERIAL]
                    [--sim CHIP] [--sim-model V2|V2-1|V3|V3E] [--sim-fault KNOB[=VALUE] ...]
                    [--virtual-time] [--unlock] [--erase auto|sectors|mass]
                    [--verify crc|readback|none] [--no-reset] [--swd-khz N] [--json]

The image is read and checked before any probe is opened, so a wrong file never touches a board.
Without ``--sim`` the board is behind a USB ST-Link: the only one present, or the one named by
``--probe``. With ``--sim CHIP`` it is a simulated probe and board (``SimBackend``), running at
real-time pace on a normal event loop, or with ``--virtual-time`` on a looptime loop where a 10 s
flash returns at once (the same code, the same virtual durations in the output).

Simulator fault knobs (``gangflash.sim.faults``: every ``TargetFaults`` and ``ProbeFaults`` field)
are set with ``--sim-fault``, repeated for several; the value's form follows the knob's type:

* flag: ``--sim-fault watchdog_running`` (or ``=true`` / ``=false``)
* number: ``--sim-fault usb_timeout_on=120``, ``--sim-fault power_loss_at=0.5``
* list of unit indexes: ``--sim-fault write_protected=0,1``
* address masks: ``--sim-fault stuck_bits=0x08000010:0x01,0x08000400:0x80``

Output: progress on stderr while it runs (a line per stage with its duration, progress every
10 %, or one live bar when stderr is a terminal); on stdout one result line (``PASS <chip> ...`` or
``FAIL <cause>``, then the decoded registers on a second line when there are some), or with
``--json`` one JSON object. Exit status: 0 passed, 1 failed (or no probe), 2 a usage or
configuration error (bad option, image file, image that does not fit the chip, unknown chip,
knob or probe serial), 130 interrupted by Ctrl-C (target halted and flash locked first).
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import types
import typing
from collections.abc import Callable
from typing import Any, TextIO

import anyio

from gangflash import cli
from gangflash.cli import subcommand
from gangflash.cli_flash_session import ERROR, PASSED, FlashOutcome, FlashSettings, UsageProblem, run_flash
from gangflash.target.errors import ImageError, MissingBaseAddress
from gangflash.target.flash.program import FlashOptions
from gangflash.target.flash.progress import Note, ProgressEvent, StageFinished, StageProgress, StageStarted
from gangflash.target.image import FORMATS, Image, load_image
from gangflash.transport.backend import Backend

SIM_MODELS = ("V2", "V2-1", "V3", "V3E")
BAR_WIDTH = 30


# --- options -------------------------------------------------------------------------------------

def _address(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an address: {text!r} (write it like 0x08000000)") from None
    if not 0 <= value < 1 << 32:
        raise argparse.ArgumentTypeError(f"address {text} is outside the 32-bit address space")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("firmware", metavar="FIRMWARE", help="image file: .bin, .hex, .elf or S-record")
    parser.add_argument("--address", type=_address, metavar="A",
                        help="where a raw binary goes (e.g. 0x08000000); other formats carry their own")
    parser.add_argument("--format", choices=FORMATS, help="image format (default: from the extension or content)")
    parser.add_argument("--probe", metavar="SERIAL", help="the probe to use when several are plugged in, or "
                        "tcp://HOST:PORT/SERIAL for one shared by an stlink-server")
    sim = parser.add_argument_group("simulator")
    sim.add_argument("--sim", metavar="CHIP", help="program a simulated board (F103C8, F103RC, F412ZG, L432KC)")
    sim.add_argument("--sim-model", choices=SIM_MODELS, help="simulated probe model (default V2)")
    sim.add_argument("--sim-fault", action="append", default=[], metavar="KNOB[=VALUE]",
                     help="inject a simulator fault (repeat for several; see the module docs for values)")
    sim.add_argument("--virtual-time", action="store_true",
                     help="run the simulation in virtual time: returns at once, durations as simulated")
    flash = parser.add_argument_group("programming")
    flash.add_argument("--unlock", action="store_true",
                       help="remove readout protection (RDP 1 -> 0); this mass-erases the chip")
    flash.add_argument("--erase", choices=("auto", "sectors", "mass"), default="auto",
                       help="erase what the image touches (sectors), everything (mass), or choose (auto)")
    flash.add_argument("--verify", choices=("crc", "readback", "none"), default="crc",
                       help="check the flash after programming (default crc, computed on the chip)")
    flash.add_argument("--no-reset", action="store_true", help="leave the core halted instead of running the new firmware")
    flash.add_argument("--swd-khz", type=_positive, default=4000, metavar="N",
                       help="SWD clock; the probe uses the fastest it has at or below (default 4000)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the result line")


# --- simulator knobs -----------------------------------------------------------------------------

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _knob_value(name: str, hint: Any, text: str | None) -> Any:
    """``text`` (None: the bare knob name) as a value of the knob's annotated type."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):            # "int | None" and the like
        if text is not None and text.lower() == "none":
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _knob_value(name, inner, text)
    if hint is bool:
        if text is None or text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise UsageProblem(f"--sim-fault {name} takes true or false, not {text!r}")
    if text is None:
        raise UsageProblem(f"--sim-fault {name} needs a value: {name}={_value_form(hint)}")
    try:
        if hint is int:
            return int(text, 0)
        if hint is float:
            return float(text)
        if origin is tuple:
            return tuple(int(item, 0) for item in text.split(",") if item.strip())
        if origin is dict:
            pairs = (item.split(":") for item in text.split(",") if item.strip())
            return {int(address, 0): int(mask, 0) for address, mask in pairs}
    except ValueError:
        pass
    raise UsageProblem(f"--sim-fault {name}={text}: expected {name}={_value_form(hint)}")


def _value_form(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return _value_form(next(a for a in typing.get_args(hint) if a is not type(None)))
    return {int: "N", float: "SECONDS", bool: "true|false"}.get(hint) or (
        "INDEX,INDEX,..." if origin is tuple else "0xADDRESS:0xMASK,...")


def parse_sim_faults(items: list[str], target_cls: type, probe_cls: type) -> tuple[dict, dict]:
    """``KNOB[=VALUE]`` strings as (target knobs, probe knobs); a later setting of a knob wins.
    Raises UsageProblem listing every knob when a name is unknown."""
    hints = {cls: typing.get_type_hints(cls) for cls in (target_cls, probe_cls)}
    chosen: dict[type, dict] = {target_cls: {}, probe_cls: {}}
    for item in items:
        name, has_value, text = item.partition("=")
        name = name.strip().replace("-", "_")
        owner = next((cls for cls in (target_cls, probe_cls) if name in cls.names()), None)
        if owner is None:
            known = target_cls.names() + probe_cls.names()
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise UsageProblem(f"unknown simulator fault knob {name!r}{hint}; knobs: {', '.join(known)}")
        chosen[owner][name] = _knob_value(name, hints[owner][name], text.strip() if has_value else None)
    return chosen[target_cls], chosen[probe_cls]


def sim_backend_factory(args: argparse.Namespace) -> Callable[[], Backend]:
    """A factory for a SimBackend with one probe and board as the options describe. The chip,
    model and knobs are checked now (UsageProblem); the probe is built later, inside the loop."""
    from gangflash.sim.bench import make_probe
    from gangflash.sim.chips import chip_by_name
    from gangflash.sim.faults import ProbeFaults, TargetFaults
    from gangflash.transport.sim_backend import SimBackend
    try:
        chip = chip_by_name(args.sim).name.removeprefix("STM32")
    except KeyError as exc:
        raise UsageProblem(str(exc.args[0])) from None
    target_knobs, probe_knobs = parse_sim_faults(args.sim_fault, TargetFaults, ProbeFaults)
    model = args.sim_model or "V2"

    def make() -> Backend:
        probe = make_probe(chip, clock=anyio.current_time, model=model,
                           target_faults=TargetFaults(**target_knobs), probe_faults=ProbeFaults(**probe_knobs))
        return SimBackend([probe])
    return make


def _usb_backend() -> Backend:
    return cli._usb_backend()          # looked up at call time, so tests can swap it


def server_backend_factory(url: str) -> tuple[Callable[[], Backend], str, str]:
    """For ``--probe tcp://HOST:PORT/SERIAL``: (backend factory, serial, "host:port")."""
    from gangflash.transport.stlink_server import StlinkServerBackend, parse_probe_url
    try:
        host, port, serial = parse_probe_url(url)
    except ValueError as exc:
        raise UsageProblem(f"--probe {exc}") from None
    return (lambda: StlinkServerBackend(host, port)), serial, f"{host}:{port}"


def settings_from_args(args: argparse.Namespace) -> tuple[FlashSettings, Callable[[], Backend], dict]:
    """The run's settings, backend factory and ``anyio.run`` backend options, or UsageProblem."""
    serial, server = args.probe, None
    if args.probe is not None and "://" in args.probe:
        if args.sim is not None:
            raise UsageProblem("--probe tcp://... names a probe behind an stlink-server; it cannot be "
                               "combined with --sim (serve simulated boards with gangflash sim serve)")
        make_remote, serial, server = server_backend_factory(args.probe)
    if args.sim is None:
        for flag, given in (("--sim-model", args.sim_model), ("--sim-fault", args.sim_fault),
                            ("--virtual-time", args.virtual_time)):
            if given:
                raise UsageProblem(f"{flag} needs --sim CHIP (a real probe runs in real time on a real board)")
        make_backend = make_remote if server else _usb_backend
    else:
        make_backend = sim_backend_factory(args)
    backend_options = dict(cli.ANYIO_BACKEND_OPTIONS)
    if args.virtual_time:
        try:
            import looptime
        except ImportError:
            raise UsageProblem("--virtual-time needs the looptime package (pip install looptime)") from None
        backend_options["loop_factory"] = looptime.new_event_loop
    options = FlashOptions(erase=args.erase, verify=args.verify, unlock=args.unlock, reset_after=not args.no_reset)
    settings = FlashSettings(probe_serial=serial, probe_server=server, swd_khz=args.swd_khz, options=options)
    return settings, make_backend, backend_options


# --- progress on stderr --------------------------------------------------------------------------

class ProgressPrinter:
    """The engine's progress events for a person watching: a line per stage start and finish
    (with its duration); progress as a percentage every 10 %, or, on a terminal, one live bar."""

    def __init__(self, stream: TextIO, *, live: bool | None = None) -> None:
        self.stream = stream
        self.live = stream.isatty() if live is None else live
        self._shown = -1            # last decile (lines) or percent (bar) shown for this stage
        self._bar = False           # a live bar is on the current line

    def __call__(self, event: ProgressEvent) -> None:
        if isinstance(event, StageStarted):
            self._shown = 0 if not self.live else -1
            if not self.live:
                self.line(f"  {event.stage} ...")
        elif isinstance(event, StageProgress):
            percent = 100 * event.done // event.total if event.total else 100
            if self.live:
                if percent != self._shown:
                    self._shown = percent
                    filled = BAR_WIDTH * percent // 100
                    self.stream.write(f"\r  {event.stage:<8} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {percent:3d}%")
                    self.stream.flush()
                    self._bar = True
            elif percent // 10 > self._shown:
                self._shown = percent // 10
                self.line(f"  {event.stage} {percent:3d}%")
        elif isinstance(event, StageFinished):
            self.line(f"  {event.stage} done in {event.seconds:.2f} s")
        elif isinstance(event, Note):
            self.line(f"  note: {event.text}")

    def line(self, text: str) -> None:
        """A whole line, after clearing a live bar."""
        self.close()
        print(text, file=self.stream, flush=True)

    def close(self) -> None:
        """End a live bar's line so what follows starts clean."""
        if self._bar:
            self.stream.write("\r\x1b[K")
            self._bar = False


def describe_image(image: Image) -> str:
    """``fw.hex: hex, 16384 B in 1 segment, 0x08000000-0x08003FFF``"""
    count = len(image.segments)
    return (f"image {image.path}: {image.format}, {image.size} B in {count} segment{'s' * (count != 1)}, "
            f"0x{image.start:08X}-0x{image.end - 1:08X}")


# --- the result ----------------------------------------------------------------------------------

def result_line(outcome: FlashOutcome) -> str:
    """``PASS <chip>  programmed 16384 B in 1.20 s (verified)`` or ``FAIL <cause>`` (and the
    decoded registers on a second line when there are some)."""
    if outcome.result == PASSED:
        verified = {"crc": "verified", "readback": "verified by readback", "none": "not verified"}[outcome.verify]
        units = f"{outcome.unit_word}s" if outcome.units != 1 else outcome.unit_word
        if outcome.units and outcome.skipped == outcome.units:
            what = f"skipped all {outcome.units} {units} (already up to date)"
        else:
            what = f"programmed {outcome.programmed} B"
            if outcome.skipped:
                what += f" ({outcome.skipped} of {outcome.units} {units} already up to date)"
        return f"PASS {outcome.chip}  {what} in {outcome.seconds:.2f} s ({verified})"
    line = f"FAIL {outcome.cause}"
    if outcome.diagnostics:
        line += f"\n  {outcome.diagnostics}"
    return line


def result_json(outcome: FlashOutcome, image: Image | None) -> str:
    """The outcome as one JSON object (one line) for scripts."""
    return json.dumps({
        "result": outcome.result,
        "probe": outcome.probe,
        "chip": outcome.chip,
        "idcode": f"0x{outcome.idcode:08X}" if outcome.idcode is not None else None,
        "uid": outcome.uid,
        "image": str(image.path) if image else None,
        "image_sha256": image.sha256 if image else None,
        "seconds": round(outcome.seconds, 3),
        "programmed": outcome.programmed,
        "skipped": outcome.skipped,
        "units": outcome.units,
        "verify": outcome.verify,
        "cause": outcome.cause,
        "diagnostics": outcome.diagnostics,
        "stage": outcome.stage,
        "cleanup": outcome.cleanup,
        "notes": outcome.notes,
        "exit": outcome.exit_code,
    })


def _usage_error(args: argparse.Namespace, message: str, image: Image | None = None) -> int:
    print(f"gangflash flash: error: {message}", file=sys.stderr)
    if args.json:
        print(result_json(FlashOutcome(result=ERROR, cause=message), image))
    return 2


@subcommand("flash", "program one board (a USB ST-Link, or a simulated one with --sim)", _configure)
def cmd_flash(args: argparse.Namespace) -> int:
    """Check the options and the image, program the board, print the result; returns the exit status."""
    try:
        settings, make_backend, backend_options = settings_from_args(args)
        image = load_image(args.firmware, format=args.format, base_address=args.address)
    except UsageProblem as exc:
        return _usage_error(args, str(exc))
    except ImageError as exc:
        hint = "; on the command line: --address 0x08000000" if isinstance(exc, MissingBaseAddress) else ""
        return _usage_error(args, f"{exc}{hint}")
    printer = ProgressPrinter(sys.stderr)
    printer.line(describe_image(image))
    try:
        if args.sim is not None and "loop_factory" not in backend_options:
            # Simulated boards live in virtual time, paced to the wall clock unless --virtual-time
            # (see orchestrator.pacing: the simulator must never run on the host's own clock).
            from gangflash.orchestrator.pacing import run_simulated
            outcome = run_simulated(run_flash, make_backend, image, settings, printer, printer.line,
                                    pace=1.0)
        else:
            outcome = anyio.run(run_flash, make_backend, image, settings, printer, printer.line,
                                backend_options=backend_options)
    finally:
        printer.close()
    if outcome.result == ERROR:
        return _usage_error(args, outcome.cause or "error", image)
    print(result_json(outcome, image) if args.json else result_line(outcome))
    return outcome.exit_code


__all__ = ["cmd_flash", "parse_sim_faults", "settings_from_args", "result_line", "result_json", "ProgressPrinter",
           "describe_image"]
