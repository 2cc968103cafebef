"""The ``gangflash`` command line.

Subcommands register themselves with :func:`subcommand`: a function taking the parsed arguments
and returning the exit status, plus an optional ``configure`` that adds its options. To add one,
write both next to the others (or in another module imported by ``_load_subcommands``)::

    def _configure_flash(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("image")

    @subcommand("flash", "program every connected board", _configure_flash)
    def cmd_flash(args: argparse.Namespace) -> int:
        ...

This is the only module that prints: the layers below log, return data or raise typed errors.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from gangflash import __version__
from gangflash.target.identify import ChipId, identify
from gangflash.transport.backend import Backend, ProbeInfo
from gangflash.transport.errors import TransportError
from gangflash.transport.stlink import FirmwareTooOld, Stlink, StlinkError, UnsupportedProbe

# Options for ``anyio.run`` in every subcommand; tests put a virtual-time loop factory here.
ANYIO_BACKEND_OPTIONS: dict[str, object] = {}

Run = Callable[[argparse.Namespace], int]
Configure = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True)
class Subcommand:
    """One ``gangflash <name>``: help line, option setup and the function that runs it."""

    name: str
    help: str
    configure: Configure | None
    run: Run


SUBCOMMANDS: dict[str, Subcommand] = {}


def subcommand(name: str, help: str, configure: Configure | None = None) -> Callable[[Run], Run]:
    """Register ``run`` as ``gangflash <name>`` (decorator)."""
    def register(run: Run) -> Run:
        if name in SUBCOMMANDS:
            raise ValueError(f"subcommand {name!r} registered twice")
        SUBCOMMANDS[name] = Subcommand(name, help, configure, run)
        return run
    return register


# Modules that register more subcommands with @subcommand when imported.
SUBCOMMAND_MODULES = ("gangflash.cli_demo", "gangflash.cli_journal", "gangflash.cli_flash", "gangflash.cli_run",
                      "gangflash.cli_sim")


def _load_subcommands() -> None:
    import importlib
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name)


def build_parser() -> argparse.ArgumentParser:
    """The parser with every registered subcommand."""
    _load_subcommands()
    parser = argparse.ArgumentParser(
        prog="gangflash", description="Program many STM32 boards at once through ST-Link probes.")
    parser.add_argument("--version", action="version", version=f"gangflash {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log more (-v info, -vv debug with USB byte traces)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for entry in SUBCOMMANDS.values():
        sub = commands.add_parser(entry.name, help=entry.help, description=entry.help)
        if entry.configure:
            entry.configure(sub)
        sub.set_defaults(run=entry.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``gangflash`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130


# --- gangflash probes --------------------------------------------------------------------------
NO_PROBES = "no ST-Link probes found"
PROBE_SURVEY_TIMEOUT = 10.0     # s per probe: one wedged probe must not hang the listing
MIN_TARGET_VOLTAGE = 1.0        # below this the target is unpowered or not connected


@dataclass
class ProbeRow:
    """What ``gangflash probes`` found out about one probe."""

    info: ProbeInfo
    firmware: str = "?"
    voltage: float | None = None
    idcode: int | None = None
    chip: ChipId | None = None
    notes: list[str] = field(default_factory=list)


async def survey_probe(backend: Backend, info: ProbeInfo, *, swd_khz: int) -> ProbeRow:
    """Open one probe, read its firmware, voltage and, if a target answers, its identity."""
    row = ProbeRow(info)
    try:
        with anyio.fail_after(PROBE_SURVEY_TIMEOUT):
            link = await backend.open(info)
            async with await Stlink.open(link) as probe:
                row.firmware = str(probe.version)
                row.voltage = await probe.target_voltage()
                if row.voltage is not None and row.voltage < MIN_TARGET_VOLTAGE:
                    row.notes.append("no target power")
                    return row
                try:
                    await probe.connect(swd_khz=swd_khz)
                    row.idcode = await probe.read_idcode()
                    row.chip = await identify(probe)
                except StlinkError as exc:
                    row.notes.append(f"no target ({exc.detail})")
    except (FirmwareTooOld, UnsupportedProbe) as exc:
        row.notes.append(exc.detail)
    except TransportError as exc:
        row.notes.append(f"error: {exc.detail}")
    except TimeoutError:
        row.notes.append("probe did not answer in time")
    return row


async def survey(backend: Backend, *, swd_khz: int = 1800) -> list[ProbeRow]:
    """Every probe the backend sees, surveyed concurrently, in enumeration order."""
    infos = await backend.enumerate()
    rows: list[ProbeRow | None] = [None] * len(infos)

    async def one(index: int, info: ProbeInfo) -> None:
        rows[index] = await survey_probe(backend, info, swd_khz=swd_khz)

    async with anyio.create_task_group() as tg:
        for index, info in enumerate(infos):
            tg.start_soon(one, index, info)
    return [row for row in rows if row is not None]


def format_probe_table(rows: list[ProbeRow]) -> str:
    """The ``gangflash probes`` table: one line per probe under a header."""
    header = ("PORT", "SERIAL", "VARIANT", "FIRMWARE", "VOLTAGE", "IDCODE", "CHIP")
    lines = [header]
    for row in rows:
        chip = row.chip.describe() if row.chip else "-"
        if row.notes:
            chip = "; ".join(([chip] if row.chip else []) + row.notes)
        lines.append((
            row.info.port_path, row.info.serial, row.info.variant, row.firmware,
            f"{row.voltage:.2f} V" if row.voltage is not None else "-",
            f"0x{row.idcode:08X}" if row.idcode is not None else "-",
            chip,
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths)) + "  " + line[-1]
        for line in lines)


async def _list_probes(make_backend: Callable[[], Backend], what: str,
                       swd_khz: int) -> tuple[list[ProbeRow], str | None]:
    try:
        backend = make_backend()
    except Exception as exc:     # noqa: BLE001 - any libusb load failure means "no USB here"
        return [], f"{what} unavailable: {exc}"
    try:
        return await survey(backend, swd_khz=swd_khz), None
    except Exception as exc:     # noqa: BLE001 - enumerate failures too: never a traceback
        return [], f"enumeration failed: {exc}"
    finally:
        with anyio.CancelScope(shield=True):
            await backend.aclose()


def _usb_backend() -> Backend:
    from gangflash.transport.libusb_backend import LibusbBackend
    return LibusbBackend()


def _sim_backend(count: int) -> Callable[[], Backend]:
    def make() -> Backend:
        from gangflash.sim.bench import make_probes
        from gangflash.transport.sim_backend import SimBackend
        return SimBackend(make_probes(count, clock=anyio.current_time))
    return make


def _configure_probes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sim", type=int, metavar="N",
                        help="list N simulated probes (with simulated boards) instead of USB")
    parser.add_argument("--swd-khz", type=int, default=1800, metavar="KHZ",
                        help="SWD clock for identifying targets (default 1800)")


@subcommand("probes", "list ST-Link probes: serial, variant, firmware, voltage, chip",
            _configure_probes)
def cmd_probes(args: argparse.Namespace) -> int:
    """Print one row per probe; "no ST-Link probes found" (exit 0) when there are none."""
    if args.sim is not None and args.sim < 1:
        print("--sim needs at least one probe", file=sys.stderr)
        return 2
    if args.sim is not None:
        make, what = _sim_backend(args.sim), "simulator"
    else:
        make, what = _usb_backend, "USB"
    rows, problem = anyio.run(_list_probes, make, what, args.swd_khz,
                              backend_options=ANYIO_BACKEND_OPTIONS)
    if not rows:
        print(NO_PROBES)
        if problem:
            print(f"({problem})")
        return 0
    print(format_probe_table(rows))
    return 0


if __name__ == "__main__":  # pragma: no cover
    # Run through the imported module so subcommand modules register into the same table.
    from gangflash.cli import main as _main
    sys.exit(_main())
