"""``gangflash sim serve`` and ``gangflash sim exec``: simulated probes for tools that are not us.

Both take the boards the same way: ``--sim CHIP[,CHIP...]`` (or a count, chips from the default
mix) or a batch config whose ``[sim]`` section lists boards with their probe models and fault
knobs. What each does with them lives in its own module (``cli_sim_serve``, ``cli_sim_exec``);
this one parses the common part and dispatches.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from gangflash.cli import subcommand
from gangflash.orchestrator.config import load_config
from gangflash.orchestrator.config_errors import ConfigErrors, format_errors
from gangflash.orchestrator.config_schema import SimBoard
from gangflash.orchestrator.config_sim import sim_boards_from_spec, sim_probe_models

DEFAULT_BOARDS = "F103C8"


class BoardsProblem(Exception):
    """``--sim`` or the config does not give usable boards; the message says why."""


def add_board_options(parser: argparse.ArgumentParser) -> None:
    """``[CONFIG]`` or ``--sim SPEC``: which simulated boards to build."""
    parser.add_argument("config", nargs="?", metavar="CONFIG",
                        help="batch config whose [sim] section lists the boards (with faults)")
    parser.add_argument("--sim", metavar="SPEC",
                        help=f"boards: a count or chips, e.g. 4 or F103C8,F412ZG (default {DEFAULT_BOARDS})")
    parser.add_argument("--probe-model", metavar="MODEL",
                        help="probe model for --sim boards: V2, V2-1, V3 or V3E (default V2)")


def boards_from_args(args: argparse.Namespace) -> list[SimBoard]:
    """The boards ``args`` name. Raises BoardsProblem with a message for the user."""
    if args.config and args.sim:
        raise BoardsProblem("give either a config or --sim, not both")
    if args.config:
        try:
            config = load_config(args.config)
        except ConfigErrors as errors:
            raise BoardsProblem(format_errors(errors)) from None
        if config.sim is None or not config.sim.boards:
            raise BoardsProblem(f"{args.config}: no [[sim.board]] entries to simulate")
        boards = list(config.sim.boards)
    else:
        try:
            boards = sim_boards_from_spec(args.sim or DEFAULT_BOARDS)
        except ValueError as exc:
            raise BoardsProblem(f"--sim: {exc}") from None
    if args.probe_model:
        if args.config:
            raise BoardsProblem("--probe-model applies to --sim boards; a config sets probe_model per board")
        models = sim_probe_models()
        if args.probe_model not in models:
            raise BoardsProblem(f"--probe-model: no model {args.probe_model!r}; one of {', '.join(models)}")
        boards = [dataclasses.replace(board, probe_model=args.probe_model) for board in boards]
    return boards


def _configure(parser: argparse.ArgumentParser) -> None:
    from gangflash import cli_sim_exec, cli_sim_serve
    actions = parser.add_subparsers(dest="sim_command", metavar="{serve,exec}")
    serve = actions.add_parser("serve", help="serve simulated probes as an stlink-server over TCP",
                               description=cli_sim_serve.DESCRIPTION)
    add_board_options(serve)
    cli_sim_serve.configure(serve)
    serve.set_defaults(sim_run=cli_sim_serve.run)
    run = actions.add_parser("exec", help="run a libusb tool (st-flash, openocd, ...) against simulated probes",
                             description=cli_sim_exec.DESCRIPTION)
    add_board_options(run)
    cli_sim_exec.configure(run)
    run.set_defaults(sim_run=cli_sim_exec.run)


@subcommand("sim", "simulated probes for other tools: an stlink-server (serve) or USB devices (exec)", _configure)
def cmd_sim(args: argparse.Namespace) -> int:
    runner = getattr(args, "sim_run", None)
    if runner is None:
        print("gangflash sim: choose serve or exec (gangflash sim --help)", file=sys.stderr)
        return 2
    try:
        boards = boards_from_args(args)
    except BoardsProblem as exc:
        print(f"gangflash sim {args.sim_command}: {exc}", file=sys.stderr)
        return 2
    return runner(args, boards)
