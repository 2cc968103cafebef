"""``gangflash run CONFIG``: the dashboard on a terminal, one line per board event otherwise.

Exit 0 when every board passed, 1 when any failed or was aborted, 2 for config or usage errors.
Simulated boards run on a virtual-time loop, paced to the wall clock by ``[sim] pace`` (see
``orchestrator.pacing``); real probes run in real time. Ctrl-C stops starting boards, lets those in flight reach
a safe point (bounded), and journals them as aborted; a second Ctrl-C cancels at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys

import anyio

from gangflash.cli import ANYIO_BACKEND_OPTIONS, subcommand
from gangflash.orchestrator.config import ConfigErrors, format_errors, load_config
from gangflash.orchestrator.config_sim import make_sim_probes, sim_boards_from_spec
from gangflash.orchestrator.config_schema import SimSpec
from gangflash.orchestrator.pacing import PacedBatch, run_simulated, virtual_loop
from gangflash.orchestrator.printer import LinePrinter
from gangflash.orchestrator.scheduler import Batch, BatchError


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="batch config (TOML)")
    parser.add_argument("--headless", action="store_true", help="no dashboard: one line per board event")
    parser.add_argument("--json", action="store_true", help="with --headless: JSON lines")
    parser.add_argument("--sim", metavar="SPEC", help="simulated boards instead of USB probes: a count or "
                                                    "chips, e.g. 4 or F103C8,F412ZG")
    parser.add_argument("--pace", type=float, metavar="X", help="simulator pace (1 real time, 0 virtual)")
    parser.add_argument("--auto", action="store_true", help="production mode: flash each board as it appears")


def _servers(config) -> list[str]:
    """The stlink-servers (``host:port``) that ``tcp://`` slots name, in first-use order."""
    return list(dict.fromkeys(slot.server for slot in config.slots if slot.server))


def _backend_factory(config):
    """What serves the batch's probes: the stlink-servers its ``tcp://`` slots name (plus the USB
    bus if other slots name USB probes), else the simulator of its ``[sim]`` boards, else USB."""
    servers = _servers(config)
    if servers:
        direct = any(slot.server is None for slot in config.slots)

        def make_remote():
            from gangflash.transport.composite import CompositeBackend
            from gangflash.transport.stlink_server import StlinkServerBackend, split_server
            children = [StlinkServerBackend(*split_server(address)) for address in servers]
            if direct:
                from gangflash.transport.libusb_backend import LibusbBackend
                children.append(LibusbBackend())
            return children[0] if len(children) == 1 else CompositeBackend(children)
        return make_remote
    if config.sim is not None and config.sim.boards:
        def make():
            from gangflash.transport.sim_backend import SimBackend
            return SimBackend(make_sim_probes(config.sim.boards, clock=anyio.current_time))
        return make

    def make_usb():
        from gangflash.transport.libusb_backend import LibusbBackend
        return LibusbBackend()
    return make_usb


async def _headless(batch: Batch, printer: LinePrinter) -> int:
    await batch.prepare()                  # identity problems end here, before any board is touched
    stream = batch.events.subscribe()

    async def show() -> None:
        async with stream:
            async for event in stream:
                line = printer.format(event)
                if line is not None:
                    print(line, flush=True)

    async def on_signals(scope: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                if batch._stopping:
                    scope.cancel()
                    return
                print("stopping: no new boards; boards in flight finish or are aborted "
                      "(Ctrl-C again to abort now)", file=sys.stderr, flush=True)
                batch.request_stop()

    async with anyio.create_task_group() as tg:
        tg.start_soon(show)                # ends when the batch closes its event stream
        async with anyio.create_task_group() as signals:
            signals.start_soon(on_signals, tg.cancel_scope)
            summary = await batch.run()
            signals.cancel_scope.cancel()
    return summary.exit_code


@subcommand("run", "run a batch config: the dashboard on a terminal, event lines otherwise", _configure)
def cmd_run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigErrors as errors:
        print(format_errors(errors), file=sys.stderr)
        return 2
    if args.sim and _servers(config):
        print("--sim: this config's slots name tcp:// probes behind an stlink-server; "
              "to simulate them, serve simulated boards with gangflash sim serve", file=sys.stderr)
        return 2
    if args.sim:
        try:
            boards = tuple(sim_boards_from_spec(args.sim))
        except ValueError as exc:
            print(f"--sim: {exc}", file=sys.stderr)
            return 2
        pace = config.sim.pace if config.sim else 1.0
        config = dataclasses.replace(config, sim=SimSpec(pace=pace, boards=boards))
    if args.pace is not None and config.sim is not None:
        config = dataclasses.replace(config, sim=dataclasses.replace(config.sim, pace=args.pace))
    interactive = sys.stdout.isatty() and not args.headless and not args.json
    batch = Batch(config, _backend_factory(config), keep_alive=interactive,
                  auto=True if args.auto else None)
    # Probes behind an stlink-server run in real time (the server paces any simulated boards).
    simulated = config.sim is not None and bool(config.sim.boards) and not _servers(config)
    try:
        if interactive:
            from gangflash.tui.app import run_dashboard
            if simulated:
                # The dashboard shares the virtual-time loop with the simulated boards, paced to
                # the wall clock (see orchestrator.pacing).
                return run_dashboard(PacedBatch(batch, config.sim.pace or 1.0), loop=virtual_loop())
            return run_dashboard(batch)
        printer = LinePrinter(as_json=args.json)
        if simulated and "loop_factory" not in ANYIO_BACKEND_OPTIONS:
            return run_simulated(_headless, batch, printer, pace=config.sim.pace)
        return anyio.run(_headless, batch, printer, backend_options=ANYIO_BACKEND_OPTIONS)
    except BatchError as exc:
        print(f"batch not started: {exc}", file=sys.stderr)
        return 2
