"""``gangflash sim exec``: simulated probes as USB devices for any libusb tool.

``gangflash sim exec [--sim CHIP[,CHIP...] | CONFIG] -- TOOL [ARGS...]`` puts one simulated
ST-Link per board on a umockdev testbed, runs TOOL (st-flash, st-info, openocd, pyocd...) under
umockdev's preload, serves its USB traffic from the simulator, and exits with TOOL's exit status.
The point is to run other people's tools, unmodified, against exactly the chips and fault knobs
gangflash is tested on (issue 9: the seed bug replayed with the real st-flash).

Each board has its own virtual clock: every transfer advances it by its modelled cost, and the
wall-clock gaps between transfers (the tool sleeping between polls) by ``--pace`` times their
length. The machinery is ``gangflash.sim.usbfs``; this module parses, checks the environment,
and reports. :func:`exec_boards` is the same without printing, for tests and benchmarks that
want the probes back (to read a chip's flash through the simulator's back door).
"""

from __future__ import annotations

import argparse
import collections
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO

from gangflash.orchestrator.config_schema import SimBoard
from gangflash.orchestrator.config_sim import make_independent_sim_probes

log = logging.getLogger(__name__)

DESCRIPTION = ("Run a libusb tool (st-flash, st-info, openocd, pyocd...) against simulated ST-Link "
               "probes: one USB device per board on a umockdev testbed. Everything after -- is the "
               "tool and its arguments; the exit status is the tool's.")
EPILOG = ("examples: gangflash sim exec --sim F103C8,F412ZG -- st-info --probe;  "
          "gangflash sim exec configs/demo.toml --report -- st-flash write fw.bin 0x08000000")
EXIT_UNAVAILABLE = 2        # cannot run here (no umockdev, no PyGObject, not Linux) or no tool


class SimExecUnavailable(Exception):
    """umockdev or PyGObject is missing (or this is not Linux); the message says how to fix it."""


@dataclass
class ExecResult:
    """What a ``sim exec`` run did: the tool's exit status and the simulated boards, still alive
    (their probes, chips and clocks), so callers can inspect them after the tool ended."""

    exit_status: int
    boards: list[SimBoard]
    probes: list            # SimProbe per board, in board order (port 1-1, 1-2, ...)
    clocks: list            # ManualClock per board
    stopped_by: str | None = None
    root: str = ""          # the testbed's temporary root (removed by now)


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of ``sim exec`` beyond the board choice, and the ``-- TOOL ARGS`` split.

    The tool's words are cut off at the first ``--`` before argparse sees them: argparse would
    otherwise hand the tool's name to the optional CONFIG positional (and parse the tool's own
    options as ours).
    """
    parser.add_argument("--report", action="store_true",
                        help="after the tool exits, print each probe's serial, chip, commands "
                             "served, virtual time and the faults that fired (on stderr)")
    parser.add_argument("--pace", type=float, default=1.0, metavar="X",
                        help="credit wall-clock gaps between transfers to the boards' virtual time "
                             "x X (default 1.0; 0 = only the modelled transfer costs)")
    parser.usage = ("%(prog)s [-h] [--sim SPEC | CONFIG] [--probe-model MODEL] [--report] [--pace X] "
                    "-- TOOL [ARGS...]")
    parser.epilog = EPILOG
    parser.set_defaults(tool=[])
    parse = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):
        words = list(sys.argv[1:] if args is None else args)
        tool: list[str] = []
        if "--" in words:
            cut = words.index("--")
            words, tool = words[:cut], words[cut + 1:]
        namespace, extras = parse(words, namespace)
        namespace.tool = tool
        return namespace, extras

    parser.parse_known_args = parse_known_args      # type: ignore[method-assign]


def check_environment() -> None:
    """Raise SimExecUnavailable, saying what to install, when this machine cannot run sim exec."""
    from gangflash.sim.usbfs.environment import missing

    reason = missing()
    if reason is not None:
        raise SimExecUnavailable(f"gangflash sim exec needs umockdev and PyGObject: {reason}")


def exec_boards(boards: Sequence[SimBoard], argv: Sequence[str], *, pace: float = 1.0,
                env: Mapping[str, str] | None = None, stdout: IO | None = None,
                stderr: IO | None = None) -> ExecResult:
    """Run ``argv`` against ``boards`` (one probe each, on its own virtual clock) and return
    the result with the boards; the tool's output goes to ``stdout``/``stderr`` (files) or
    ours. Raises SimExecUnavailable, or ``ToolError`` when the tool cannot be started."""
    check_environment()
    from gangflash.sim.usbfs.tool import SimDevice, run_tool

    devices = make_independent_sim_probes(boards)
    probes, clocks = [p for p, _ in devices], [c for _, c in devices]
    run = run_tool(argv, [SimDevice(p, c) for p, c in zip(probes, clocks)], pace=pace, env=env,
                   stdout=stdout, stderr=stderr)
    return ExecResult(run.exit_status, list(boards), probes, clocks, run.stopped_by, run.root)


def fault_lines(board: SimBoard, probe) -> tuple[str, str]:
    """The fault knobs set on a board and what fired (probe fault counters, watchdog resets),
    then the chip's resets by cause (what the tool did, and what the faults did to it)."""
    words = [f"{name}={value}" if value is not True else name
             for name, value in {**board.faults, **board.probe_faults}.items()]
    fired = [f"{name} x{count}" for name, count in sorted(probe.stats["faults"].items()) if count]
    causes: collections.Counter[str] = collections.Counter()
    if probe.target is not None:
        causes.update(cause for _time, cause in probe.target.resets)
    if causes["watchdog"]:
        fired.append(f"watchdog reset x{causes['watchdog']}")
    resets = ", ".join(f"{cause} {count}" for cause, count in sorted(causes.items())) or "none"
    return (f"faults set: {', '.join(words) if words else 'none'}; "
            f"fired: {', '.join(fired) if fired else 'none'}", f"chip resets: {resets}")


def format_report(result: ExecResult) -> str:
    """One block per probe: serial, chip, commands served, virtual time, faults."""
    lines = [f"sim exec: tool exited with status {result.exit_status}"
             + (f" (stopped by {result.stopped_by})" if result.stopped_by else "")]
    for index, (board, probe, clock) in enumerate(zip(result.boards, result.probes, result.clocks)):
        stats = probe.stats
        top = ", ".join(f"{name} {count}" for name, count in stats["by_opcode"].most_common(4))
        lines.append(f"probe 1-{index + 1}: {probe.variant} serial {probe.serial}, chip {board.chip}")
        lines.append(f"  commands served: {stats['commands']}" + (f" ({top}, ...)" if top else ""))
        lines.append(f"  transfers: {stats['transfers_out']} out / {stats['transfers_in']} in, "
                     f"{stats['bytes_out']} / {stats['bytes_in']} bytes")
        lines.append(f"  virtual time: {clock.now():.6f} s "
                     f"(transfers {stats['virtual_time']:.6f} s, SWD {stats['swd_time']:.6f} s)")
        lines.extend(f"  {line}" for line in fault_lines(board, probe))
    return "\n".join(lines)


def run(args: argparse.Namespace, boards: list[SimBoard]) -> int:
    """``gangflash sim exec``: the tool's exit status, or 2 when it could not run at all."""
    from gangflash.sim.usbfs.tool import ToolError

    if not args.tool:
        print("gangflash sim exec: no tool given: gangflash sim exec [--sim SPEC | CONFIG] -- TOOL [ARGS...]",
              file=sys.stderr)
        return EXIT_UNAVAILABLE
    if args.pace < 0:
        print(f"gangflash sim exec: --pace must be 0 or more, not {args.pace}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    try:
        result = exec_boards(boards, args.tool, pace=args.pace)
    except SimExecUnavailable as exc:
        print(f"gangflash sim exec: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except ToolError as exc:
        print(f"gangflash sim exec: {exc}", file=sys.stderr)
        return exc.exit_status
    if args.report:
        print(format_report(result), file=sys.stderr)
    return result.exit_status
