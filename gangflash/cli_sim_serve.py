"""``gangflash sim serve``: the simulated probes as an stlink-server on TCP.

Any tool that speaks ST's stlink-server protocol (OpenOCD's ``hla_stlink_backend tcp`` and
``st-link backend tcp``, gangflash's own tcp:// probes) then programs simulated boards as if they
were on the desk: a CI farm or a laptop without hardware. Each board gets its own probe and its
own virtual clock, because real boards do not share time.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from gangflash.orchestrator.config_sim import make_independent_sim_probes

DESCRIPTION = ("Serve simulated ST-Link probes in the stlink-server TCP protocol, so OpenOCD "
               "(hla_stlink_backend tcp / st-link backend tcp) and other clients program "
               "simulated boards. Ctrl-C or SIGTERM stops it and prints per-probe statistics.")

log = logging.getLogger(__name__)

_OPENOCD_TARGET = {"F1": "stm32f1x.cfg", "F4": "stm32f4x.cfg", "L4": "stm32l4x.cfg"}


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of ``sim serve`` beyond the board choice."""
    parser.add_argument("--port", type=int, default=7184,
                        help="TCP port (default 7184, the stlink-server default; 0 picks a free one)")
    parser.add_argument("--bind", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; anything wider only when given)")
    parser.add_argument("--api", type=int, choices=(2, 3), default=3,
                        help="server API to report (default 3: OpenOCD then batches with RW_MISC)")
    parser.add_argument("--pace", type=float, default=1.0,
                        help="wall-clock seconds between a client's commands credited to the "
                             "board's virtual clock, per second (default 1: like hardware; 0: "
                             "modelled command costs only)")


def _describe(server, devices) -> None:
    host = server.host
    print(f"stlink-server (API {server.api}) listening on {host}:{server.port}, "
          f"{len(devices)} simulated probe{'s' if len(devices) != 1 else ''}:")
    for probe, _clock in devices:
        chip = probe.target.chip.name if probe.target is not None else "no target"
        print(f"  {probe.serial}  {chip:<12}  ST-Link {probe.variant} J{probe.firmware.jtag}")
    if host not in ("127.0.0.1", "0.0.0.0", "localhost"):
        print(f"note: OpenOCD always dials 127.0.0.1; clients elsewhere need {host}:{server.port}")
    for probe, _clock in devices:
        family = probe.target.chip.family if probe.target is not None else "F1"
        target = _OPENOCD_TARGET.get(family, "stm32f1x.cfg")
        print(f"openocd -f interface/stlink.cfg -c \"hla_stlink_backend tcp {server.port}\" "
              f"-c \"adapter serial {probe.serial}\" -f target/{target}")
        print(f"openocd -f interface/stlink-dap.cfg -c \"st-link backend tcp {server.port}\" "
              f"-c \"adapter serial {probe.serial}\" -f target/{target}")
    print("Ctrl-C stops the server.", flush=True)


def _print_stats(stats: list[dict]) -> None:
    print("served:")
    for s in stats:
        print(f"  {s['serial']}  {s['chip']:<12}  {s['usb_commands']:>8} USB commands  "
              f"{s['requests']:>8} requests  {s['clients']} client session(s)  "
              f"virtual {s['virtual_time']:.3f} s{'  (gone)' if s['gone'] else ''}")


def run(args: argparse.Namespace, boards: list) -> int:
    """Serve until SIGINT/SIGTERM; exit 0 on a signal, 1 when the port cannot be bound."""
    import anyio

    from gangflash.sim.stlink_server import ListenError, StlinkServer

    if args.pace < 0:
        print("gangflash sim serve: --pace must be >= 0", file=sys.stderr)
        return 2
    if not 0 <= args.port <= 65535:
        print("gangflash sim serve: --port must be 0..65535", file=sys.stderr)
        return 2
    devices = make_independent_sim_probes(boards)
    server = StlinkServer(devices, host=args.bind, port=args.port, api=args.api, pace=args.pace)
    try:
        server.bind()           # before any task group: a busy port is a message, not a traceback
    except ListenError as exc:
        print(f"gangflash sim serve: cannot listen on {args.bind}:{args.port}: {exc.reason}",
              file=sys.stderr)
        return 1

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                await tg.start(server.serve)
                _describe(server, devices)
                async for signum in signals:
                    log.info("signal %s: stopping", signum)
                    break
            tg.cancel_scope.cancel()

    anyio.run(main, backend="asyncio")
    _print_stats(server.stats())
    return 0
