"""``gangflash demo``: a quick look at the simulator with no config at all.

Eight simulated probes with mixed F1/F4/L4 boards, surveyed concurrently at real-time pace (each
USB transfer takes its modelled time on the wall clock), printed as the ``probes`` table. The
main job on simulated boards is the batch ``gangflash run configs/demo.toml`` (``./dev.sh demo``).
"""

from __future__ import annotations

import argparse

import anyio

from gangflash.cli import ANYIO_BACKEND_OPTIONS, _list_probes, _sim_backend, format_probe_table, subcommand


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--boards", type=int, default=8, metavar="N", help="simulated boards (default 8)")


@subcommand("demo", "survey simulated probes and their chips (no config needed)", _configure)
def cmd_demo(args: argparse.Namespace) -> int:
    print(f"gangflash demo: {args.boards} simulated ST-Links with STM32 boards, real-time pace")
    rows, problem = anyio.run(_list_probes, _sim_backend(args.boards), "simulator", 4000,
                              backend_options=ANYIO_BACKEND_OPTIONS)
    if problem or not rows:
        print(f"simulator smoke run failed: {problem or 'no probes'}")
        return 1
    print(format_probe_table(rows))
    bad = [row for row in rows if row.chip is None]
    print(f"{len(rows) - len(bad)}/{len(rows)} boards identified")
    return 1 if bad else 0
