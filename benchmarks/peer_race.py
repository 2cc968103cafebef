"""gangflash against every peer on identical virtual hardware: one image, one simulated chip, one probe model.

Rows per chip (the same random image at 0x08000000, the same simulated chip and probe model):

* gangflash (in-process): ``flash_speed.run_gangflash``, Target.attach + flash_image with default
  FlashOptions on a looptime event loop whose clock is the simulator's (virtual time; the window is
  probe open -> end of flash_image's reset, as in flash_speed).
* gangflash (over TCP): the ``gangflash flash IMAGE --probe tcp://127.0.0.1:PORT/SERIAL`` CLI as a
  subprocess, against the simulator's stlink-server (``serving_in_thread``, pace 1), SWD requested
  at 24 MHz like the in-process row.
* pyOCD (through its USB seam): ``flash_speed.run_pyocd``, erase mode "sector" (what ``pyocd load``
  does: open, reset_and_halt, FileProgrammer.program, reset).
* OpenOCD HLA and OpenOCD dapdirect: Debian's openocd 0.12 as subprocesses over TCP against the same
  kind of server (pace 1), ``program IMAGE 0x08000000 verify reset exit``, gdb/telnet/tcl disabled,
  adapter speed as the target cfg ships it unless ``--openocd-khz``.
* st-flash (stlink-tools 1.7.0) through ``gangflash sim exec`` (umockdev), when
  ``gangflash.cli_sim_exec.exec_boards`` is implemented and the machine can run it; ``st-flash
  --reset write IMAGE 0x08000000``, pace 1.

Columns: virtual seconds (server and sim-exec runs: the board's ManualClock advance over the run),
ST-Link commands (probe.stats["commands"] delta), bytes moved (bytes_out + bytes_in), host wall
seconds, ratio to the datasheet erase + program bound (``flash_speed.flash_bound``), speedup of
gangflash (in-process) over the row, and whether the image ended in the simulated flash.

Then a gang: N boards (default 8 x F103C8) programmed with the same image by gangflash in one
process (the Target API: one task per board on one looptime loop, the same code and options as the
in-process row; no journal or serial numbers, which ``gang_scaling.py`` measures with a real Batch)
against N OpenOCD processes at once on one server serving N probes.

Adding a peer: write ``run_<peer>(ctx: RunContext) -> dict`` returning the keys of ``_row`` and
append a ``Peer`` to ``PEERS``.

Prints figures; asserts nothing about speed. Exit status 1 only if a run failed or left the wrong
image in flash.

    .venv/bin/python benchmarks/peer_race.py [--chips F103C8,F412ZG,L432KC] [--model V2]
                                             [--size 64K|full|BYTES] [--json] [--gang N]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import logging
import math
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import flash_speed  # noqa: E402
from flash_speed import FLASH_BASE, StatsWindow, flash_bound, image_bytes  # noqa: E402

log = logging.getLogger("peer_race")

REPO = Path(__file__).resolve().parents[1]
CHIPS = ("F103C8", "F412ZG", "L432KC")
MODELS = ("V2", "V2-1", "V3")
DEFAULT_SIZE = 64 * 1024
TARGET_SPEEDUP = 2.0
OPENOCD_TARGET_CFG = {"F103C8": "stm32f1x.cfg", "F412ZG": "stm32f4x.cfg", "L432KC": "stm32l4x.cfg"}
GANGFLASH_SWD_KHZ = 24000          # Target.attach's default, which the in-process row uses
SERVER_PACE = 1.0


@dataclass
class RunContext:
    chip: str
    model: str
    size: int
    image_path: Path
    data: bytes
    openocd_khz: int | None = None


@dataclass(frozen=True)
class Peer:
    key: str
    label: str
    run: Callable[[RunContext], dict]
    is_gangflash: bool = False        # gangflash's own rows are not peers in the 2x verdict
    optional: bool = False            # unavailable (tool or machinery missing): reported, not failed


class Unavailable(Exception):
    """The peer cannot run on this machine (reported, not a failure, for optional peers)."""


def _row(*, seconds: float, commands: int, bytes_moved: int, wall_s: float, image_in_flash: bool,
         swd_hz: float | None, **extra) -> dict:
    return {"seconds": seconds, "commands": commands, "bytes_moved": bytes_moved, "wall_s": wall_s,
            "image_in_flash": image_in_flash, "swd_hz": swd_hz, **extra}


# ---------------------------------------------------------------------------------- in-process runs
def _in_fresh_process(fn, *args):
    """``fn(*args)`` in a fresh spawned process (as flash_speed does: no state shared between runs)."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context, max_tasks_per_child=1) as pool:
        return pool.submit(fn, *args).result()


def run_gangflash_inprocess(ctx: RunContext) -> dict:
    result = _in_fresh_process(flash_speed.run_gangflash, ctx.chip, ctx.model, ctx.size)
    first = result["first"]
    return _row(seconds=result["open_s"] + first["seconds"], commands=first["commands"],
                bytes_moved=first["bytes_out"] + first["bytes_in"], wall_s=first["wall_s"],
                image_in_flash=first["image_in_flash"], swd_hz=first["swd_hz"],
                stages=first["stages"], flash=first["flash"], notes=first["notes"], open_s=result["open_s"],
                note="commands/bytes from Target.attach on (Stlink.open's handshake not counted)")


def run_pyocd_sector(ctx: RunContext) -> dict:
    result = _in_fresh_process(flash_speed.run_pyocd, ctx.chip, ctx.model, ctx.size, "sector")
    return _row(seconds=result["seconds"], commands=result["commands"],
                bytes_moved=result["bytes_out"] + result["bytes_in"], wall_s=result["wall_s"],
                image_in_flash=result["image_in_flash"], swd_hz=result["swd_hz"], phases=result["phases"],
                host_sleep_s=result["host_sleep_s"], target=result["target"])


# ---------------------------------------------------------------------------------- server runs
def _board(chip: str, model: str, index: int = 0):
    from gangflash.sim.bench import make_probe
    from gangflash.sim.clock import ManualClock

    clock = ManualClock()
    return make_probe(chip, clock=clock, model=model, index=index), clock


def _subprocess_timeout(size: int) -> float:
    return 120 + 0.2 * size / 1024


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def serve_and_run(ctx: RunContext, command: Callable[[int, str], list[str]],
                  succeeded: Callable[[subprocess.CompletedProcess], bool]) -> dict:
    """One board on a fresh stlink-server (pace 1); ``command(port, serial)`` as a subprocess."""
    from gangflash.sim.stlink_server import serving_in_thread

    probe, clock = _board(ctx.chip, ctx.model)
    window = StatsWindow(probe)
    t0 = clock()
    with serving_in_thread([(probe, clock)], port=0, pace=SERVER_PACE) as server:
        cmd = command(server.port, probe.serial)
        wall = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_subprocess_timeout(ctx.size))
        wall = time.perf_counter() - wall
    counts = window.delta()
    row = _row(seconds=clock() - t0, commands=counts["commands"],
               bytes_moved=counts["bytes_out"] + counts["bytes_in"], wall_s=wall,
               image_in_flash=probe.target.flash_contents(FLASH_BASE, ctx.size) == ctx.data,
               swd_hz=probe.firmware.swd_hz, exit_status=proc.returncode)
    if not succeeded(proc):
        row["error"] = f"exit status {proc.returncode}"
        row["output"] = _tail(proc.stdout + "\n" + proc.stderr)
    return row


def _gangflash_cli() -> str:
    beside = Path(sys.executable).with_name("gangflash")
    found = str(beside) if beside.exists() else shutil.which("gangflash")
    if not found:
        raise RuntimeError("the gangflash CLI is not installed (expected beside the venv's python)")
    return found


def run_gangflash_tcp(ctx: RunContext) -> dict:
    cli = _gangflash_cli()

    def command(port: int, serial: str) -> list[str]:
        return [cli, "flash", str(ctx.image_path), "--address", f"{FLASH_BASE:#x}",
                "--swd-khz", str(GANGFLASH_SWD_KHZ), "--json", "--probe", f"tcp://127.0.0.1:{port}/{serial}"]

    def ok(proc: subprocess.CompletedProcess) -> bool:
        try:
            return proc.returncode == 0 and json.loads(proc.stdout.strip().splitlines()[-1])["result"] == "passed"
        except (ValueError, IndexError, KeyError):
            return False

    return serve_and_run(ctx, command, ok)


def openocd_command(port: int, serial: str, chip: str, driver: str, image: Path,
                    khz: int | None = None) -> list[str]:
    path = shutil.which("openocd")
    if path is None:
        raise RuntimeError("openocd is not installed (apt-get install openocd)")
    if driver == "hla":
        interface = ["-f", "interface/stlink.cfg", "-c", f"hla_stlink_backend tcp {port}"]
    else:
        interface = ["-f", "interface/stlink-dap.cfg", "-c", f"st-link backend tcp {port}"]
    speed = ["-c", f"adapter speed {khz}"] if khz else []
    return [path, "-c", "gdb_port disabled", "-c", "tcl_port disabled", "-c", "telnet_port disabled",
            *interface, "-c", f"adapter serial {serial}", "-f", f"target/{OPENOCD_TARGET_CFG[chip]}", *speed,
            "-c", f"program {image} {FLASH_BASE:#x} verify reset exit"]


def _openocd_ok(proc: subprocess.CompletedProcess) -> bool:
    return proc.returncode == 0 and "** Verified OK **" in proc.stdout + proc.stderr


def _openocd(driver: str) -> Callable[[RunContext], dict]:
    def run(ctx: RunContext) -> dict:
        return serve_and_run(ctx, lambda port, serial: openocd_command(
            port, serial, ctx.chip, driver, ctx.image_path, ctx.openocd_khz), _openocd_ok)
    run.__name__ = f"run_openocd_{driver}"
    return run


# ---------------------------------------------------------------------------------- st-flash (sim exec)
def sim_exec_available() -> str | None:
    """None when st-flash can run against a simulated chip through ``gangflash sim exec``; else why not."""
    try:
        from gangflash import cli_sim_exec
    except Exception as exc:                  # noqa: BLE001 - any import failure means "not yet"
        return f"gangflash.cli_sim_exec does not import ({type(exc).__name__}: {exc})"
    if not hasattr(cli_sim_exec, "exec_boards"):
        return "gangflash.cli_sim_exec has no exec_boards() yet (placeholder)"
    try:
        cli_sim_exec.check_environment()
    except Exception as exc:                  # noqa: BLE001
        return str(exc)
    if shutil.which("st-flash") is None:
        return "st-flash is not installed (apt-get install stlink-tools)"
    return None


def run_stflash(ctx: RunContext) -> dict:
    why = sim_exec_available()
    if why:
        raise Unavailable(why)
    from gangflash.cli_sim_exec import exec_boards
    from gangflash.orchestrator.config_schema import SimBoard

    argv = ["st-flash", "--reset", "write", str(ctx.image_path), f"{FLASH_BASE:#x}"]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        wall = time.perf_counter()
        result = exec_boards([SimBoard(chip=ctx.chip, probe_model=ctx.model)], argv, pace=SERVER_PACE,
                             stdout=out, stderr=err)
        wall = time.perf_counter() - wall
        out.seek(0)
        err.seek(0)
        output = out.read() + "\n" + err.read()
    probe, clock = result.probes[0], result.clocks[0]
    stats = probe.stats           # a fresh probe: its counters cover exactly this run
    row = _row(seconds=clock(), commands=stats["commands"], bytes_moved=stats["bytes_out"] + stats["bytes_in"],
               wall_s=wall, image_in_flash=probe.target.flash_contents(FLASH_BASE, ctx.size) == ctx.data,
               swd_hz=probe.firmware.swd_hz, exit_status=result.exit_status)
    if result.exit_status != 0:
        row["error"] = f"exit status {result.exit_status}" + (f" ({result.stopped_by})" if result.stopped_by else "")
        row["output"] = _tail(output)
    return row


PEERS: list[Peer] = [
    Peer("gangflash", "gangflash (in-process)", run_gangflash_inprocess, is_gangflash=True),
    Peer("gangflash-tcp", "gangflash (over TCP)", run_gangflash_tcp, is_gangflash=True),
    Peer("pyocd", "pyOCD (USB seam, sector)", run_pyocd_sector),
    Peer("openocd-hla", "OpenOCD HLA (TCP)", _openocd("hla")),
    Peer("openocd-dap", "OpenOCD dapdirect (TCP)", _openocd("dapdirect")),
    Peer("st-flash", "st-flash (sim exec)", run_stflash, optional=True),
]


def run_peer(peer: Peer, ctx: RunContext) -> dict:
    started = time.perf_counter()
    try:
        row = peer.run(ctx)
    except Unavailable as exc:
        row = {"unavailable": str(exc)}
    except Exception as exc:                  # noqa: BLE001 - a failed run is reported, not fatal
        import traceback
        row = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    row.update(tool=peer.key, label=peer.label, chip=ctx.chip, model=ctx.model, image_bytes=ctx.size,
               run_wall_s=time.perf_counter() - started)
    status = row.get("error") or (f"unavailable: {row['unavailable']}" if "unavailable" in row else
                                  f"{row['seconds']:.3f} virtual s")
    log.info("%s %s %s: %s (%.1f s wall)", ctx.chip, ctx.model, peer.label, status, row["run_wall_s"])
    return row


def failed(row: dict) -> bool:
    return "unavailable" not in row and ("error" in row or not row.get("image_in_flash"))


# ---------------------------------------------------------------------------------- the gang
def gang_gangflash(chip: str, model: str, size: int, boards: int) -> dict:
    import anyio
    import looptime

    return anyio.run(_gang_gangflash, chip, model, size, boards,
                     backend_options={"loop_factory": looptime.new_event_loop})


async def _gang_gangflash(chip: str, model: str, size: int, boards: int) -> dict:
    """``boards`` boards on one SimBackend, one task each: Stlink.open, Target.attach, flash_image
    (default FlashOptions), all on one looptime loop: boards overlap in virtual time as hardware
    would; any serialisation inside gangflash shows as lost virtual seconds."""
    import anyio

    from gangflash.sim.bench import make_probe
    from gangflash.target.flash.program import FlashOptions, flash_image
    from gangflash.target.flash.session import Target
    from gangflash.target.image import Image
    from gangflash.target.image_formats import Chunk
    from gangflash.transport.sim_backend import SimBackend
    from gangflash.transport.stlink import Stlink

    data = image_bytes(chip, size)
    image = Image.from_chunks([Chunk(FLASH_BASE, data, "peer_race")], path="peer_race.bin", format="bin")
    probes = [make_probe(chip, clock=anyio.current_time, model=model, index=i) for i in range(boards)]
    backend = SimBackend(probes)
    infos = await backend.enumerate()
    seconds: dict[str, float] = {}
    errors: dict[str, str] = {}

    async def one(info) -> None:
        t0 = anyio.current_time()
        stlink = await Stlink.open(await backend.open(info))
        try:
            target = await Target.attach(stlink)
            await flash_image(target, image, FlashOptions())      # raises on any failure
            seconds[info.serial] = anyio.current_time() - t0
        except Exception as exc:              # noqa: BLE001 - reported per board
            errors[info.serial] = f"{type(exc).__name__}: {exc}"
        finally:
            with anyio.CancelScope(shield=True):
                await stlink.aclose()

    wall, t0 = time.perf_counter(), anyio.current_time()
    async with anyio.create_task_group() as tg:
        for info in infos:
            tg.start_soon(one, info)
    total = anyio.current_time() - t0
    wall = time.perf_counter() - wall
    return {"tool": "gangflash", "boards": boards, "virtual_s": total,
            "slowest_s": max(seconds.values(), default=math.nan), "board_s": seconds,
            "wall_s": wall, "commands": sum(p.stats["commands"] for p in probes),
            "in_flash": sum(p.target.flash_contents(FLASH_BASE, size) == data for p in probes),
            "errors": errors}


def gang_openocd(ctx: RunContext, boards: int, driver: str) -> dict:
    from gangflash.sim.stlink_server import serving_in_thread

    devices = [_board(ctx.chip, ctx.model, index=i) for i in range(boards)]
    starts = [clock() for _, clock in devices]
    errors: dict[str, str] = {}
    with serving_in_thread(devices, port=0, pace=SERVER_PACE) as server:
        commands = [openocd_command(server.port, probe.serial, ctx.chip, driver, ctx.image_path, ctx.openocd_khz)
                    for probe, _ in devices]
        wall = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(boards) as pool:
            procs = list(pool.map(lambda cmd: subprocess.run(cmd, capture_output=True, text=True,
                                                             timeout=_subprocess_timeout(ctx.size) * 2), commands))
        wall = time.perf_counter() - wall
    board_s = {}
    for (probe, clock), start, proc in zip(devices, starts, procs):
        board_s[probe.serial] = clock() - start
        if not _openocd_ok(proc):
            errors[probe.serial] = f"exit status {proc.returncode}: {_tail(proc.stderr, 5)}"
    return {"tool": f"openocd-{driver}", "boards": boards, "slowest_s": max(board_s.values()),
            "board_s": board_s, "wall_s": wall, "commands": sum(p.stats["commands"] for p, _ in devices),
            "in_flash": sum(p.target.flash_contents(FLASH_BASE, ctx.size) == ctx.data for p, _ in devices),
            "errors": errors}


# ---------------------------------------------------------------------------------- report
def _mhz(hz: float | None) -> str:
    return "-" if not hz else f"{hz / 1e6:g} MHz"


def _kib(n: int) -> str:
    return f"{n // 1024} KiB" if n % 1024 == 0 else f"{n} B"


def summarise(rows: list[dict], chips: list[str]) -> dict:
    verdicts = {}
    for chip in chips:
        mine = [r for r in rows if r["chip"] == chip]
        gf = next((r for r in mine if r["tool"] == "gangflash"), None)
        peer_keys = {p.key for p in PEERS if not p.is_gangflash}
        peers = [r for r in mine if r["tool"] in peer_keys and not failed(r) and "unavailable" not in r]
        best = min(peers, key=lambda r: r["seconds"], default=None)
        bound = mine[0]["bound"]["seconds"] if mine else math.nan
        v = {"best_peer": best and best["label"], "best_peer_s": best and best["seconds"]}
        if gf and not failed(gf) and best:
            v["speedup"] = best["seconds"] / gf["seconds"]
            v["possible"] = best["seconds"] / bound
            v["verdict"] = "ok" if v["speedup"] >= TARGET_SPEEDUP else "MISS"
        else:
            v["verdict"] = "n/a"
        verdicts[chip] = v
    return verdicts


def format_report(args, rows: list[dict], verdicts: dict, gang: dict | None, total_wall: float) -> str:
    out: list[str] = []
    w = out.append
    w(f"gangflash peer race: the same {_kib(rows[0]['image_bytes']) if rows else '?'} random image at 0x08000000 "
      f"(flash_speed.image_bytes), same simulated chip, simulated ST-Link {args.model}")
    w("methodology (what each row's virtual time charges):")
    w("  - gangflash (in-process): looptime loop on the simulator's clock; charged its own sleeps and every modelled "
      "USB/SWD/flash cost, NOT its host CPU. Window: probe open -> end of flash_image's reset.")
    w("  - pyOCD (USB seam): ManualClock advanced per USB transfer: charged only modelled USB/SWD/flash costs; its "
      "host sleeps (time.sleep, wall only) and host CPU are NOT charged. Window: session open -> end of reset.")
    w(f"  - server runs (gangflash over TCP, OpenOCD; stlink-server at pace {SERVER_PACE:g}): charged the modelled "
      "costs PLUS the client's wall-clock gaps between a reply and its next command on that probe (its sleeps, "
      "polling and think time, incl. Python/OpenOCD host CPU and loopback latency), never the server's processing "
      "(on a loaded host, a request waiting for the server thread can still stretch a gap). Window: whole "
      "connection (process start-up before the first command is not charged).")
    w("  - st-flash (gangflash sim exec, umockdev): per-transfer modelled costs plus the wall-clock gaps between "
      "transfers (pace 1: the tool's sleeps, think time and the preload's round trip), not the handler's own work.")
    w("  So peers on the server are charged their host time and the in-process rows are not: the in-process "
      "gangflash row is the engine's floor; the over-TCP row is gangflash charged like OpenOCD.")
    w(f"  SWD: gangflash requests {GANGFLASH_SWD_KHZ} kHz (in-process default; --swd-khz {GANGFLASH_SWD_KHZ} over "
      "TCP), pyOCD 24 MHz (flash_speed), OpenOCD "
      + (f"adapter speed {args.openocd_khz} kHz" if args.openocd_khz else "as its target cfg sets it")
      + ", st-flash its default; the probe clamps to its table (SWD column: the clock at the end of the run).")
    w("  bound = flash_speed.flash_bound: the simulated chip's own erase + program time (timing.py). "
      "speedup = row's virtual s / gangflash (in-process) virtual s.")
    w("  image: ok = the image is in the simulated flash (read through the simulator's back door), WRONG = it is "
      "not; a trailing ! = the tool itself reported failure (see failed runs). Failed runs never count as best peer.")
    w("")
    header = (f"{'chip':<7} {'tool':<26} {'SWD':>9} {'virtual s':>10} {'x bound':>8} {'commands':>9} "
              f"{'bytes moved':>12} {'wall s':>7} {'gf speedup':>10} {'image':>6}")
    w(header)
    w("-" * len(header))
    for chip in dict.fromkeys(r["chip"] for r in rows):
        mine = [r for r in rows if r["chip"] == chip]
        gf = next((r for r in mine if r["tool"] == "gangflash" and not failed(r)), None)
        bound = mine[0]["bound"]
        for r in mine:
            if "unavailable" in r:
                w(f"{chip:<7} {r['label']:<26} not run: {r['unavailable']}")
                continue
            if "seconds" not in r:
                w(f"{chip:<7} {r['label']:<26} FAILED: {r['error']}")
                continue
            speed = "-" if r["tool"] == "gangflash" or gf is None else f"{r['seconds'] / gf['seconds']:.2f}x"
            image = "ok" if r["image_in_flash"] else "WRONG"
            if "error" in r:
                image += "!"
            w(f"{chip:<7} {r['label']:<26} {_mhz(r['swd_hz']):>9} {r['seconds']:>10.3f} "
              f"{r['seconds'] / bound['seconds']:>8.2f} {r['commands']:>9,} {r['bytes_moved']:>12,} "
              f"{r['wall_s']:>7.1f} {speed:>10} {image:>6}")
        w(f"{chip:<7} {'(datasheet bound)':<26} {'':>9} {bound['seconds']:>10.3f} {1:>8.2f}   "
          f"erase {bound['erase_s']:.3f} ({bound['erase_how']}) + program {bound['program_s']:.3f}")
        w("")
    w(f"target (issue 8): gangflash (in-process) >= {TARGET_SPEEDUP:g}x faster than the best peer in virtual time")
    for chip, v in verdicts.items():
        if v["verdict"] == "n/a":
            w(f"  {chip}: n/a (gangflash or every peer failed)")
            continue
        w(f"  {chip}: {v['speedup']:.2f}x over {v['best_peer']} ({v['best_peer_s']:.3f} s): {v['verdict']}"
          + ("" if v["verdict"] == "ok" else
             f"; the best peer is {v['possible']:.2f}x the bound, so no tool can be more than "
             f"{v['possible']:.2f}x faster than it here"))
    w("")
    w("gangflash (in-process) stages, virtual s [flash = simulated controller busy time started in that stage]:")
    for r in rows:
        if r["tool"] == "gangflash" and "stages" in r:
            w(f"  {r['chip']}: open {r['open_s']:.4f} | {flash_speed._stages(r)}")
            w(f"      {flash_speed._ops(r['flash'])}; plan: {'; '.join(r['notes']) or '-'}")
    problems = [r for r in rows if failed(r)]
    if problems:
        w("")
        w("failed runs:")
        for r in problems:
            w(f"  {r['chip']} {r['label']}: {r.get('error', 'image not in flash')}")
            detail = r.get("output") or r.get("traceback") or ""
            if detail:
                w("      " + detail.strip().replace("\n", "\n      "))
    if gang:
        w("")
        g, o = gang["gangflash"], gang["openocd"]
        w(f"gang: {gang['boards']} x {gang['chip']} on {gang['boards']} simulated ST-Link {args.model}, the same "
          f"{_kib(gang['image_bytes'])} image")
        w(f"  gangflash: one process, Target API, one task per board on one looptime loop (same code and options as "
          "the in-process row; no journal/serial numbers: see gang_scaling.py for a real Batch)")
        w(f"  OpenOCD {o['tool'].removeprefix('openocd-')}: {gang['boards']} processes at once on one stlink-server "
          f"(pace {SERVER_PACE:g}) serving {gang['boards']} probes ({gang['driver_why']}); each charged its own "
          f"wall-clock gaps, on {os.cpu_count()} host CPU(s)")
        gh = f"{'':<22} {'slowest board s':>15} {'wall s':>7} {'commands':>9} {'in flash':>9} {'gf speedup':>10}"
        w(gh)
        w("  " + "-" * (len(gh) - 2))
        for label, r in (("gangflash (1 process)", g), (f"OpenOCD x{gang['boards']}", o)):
            speed = "-" if r is g else f"{r['slowest_s'] / g['slowest_s']:.2f}x"
            w(f"  {label:<20} {r['slowest_s']:>15.3f} {r['wall_s']:>7.1f} {r['commands']:>9,} "
              f"{r['in_flash']:>5}/{gang['boards']:<3} {speed:>10}")
        for r in (g, o):
            for serial, text in list(r["errors"].items())[:4]:
                w(f"  !! {r['tool']} {serial}: {text}")
    w("")
    w(f"host: {os.cpu_count()} CPU(s), runs one after another (server runs are host-sensitive); total wall "
      f"{total_wall:.1f} s. wall s = host seconds of the run (subprocess rows: the whole process, start-up "
      "included; in-process rows: the measured window only).")
    return "\n".join(out)


# ---------------------------------------------------------------------------------- main
def parse_size(text: str) -> int | None:
    """Bytes, or None for "full" (each chip's whole flash)."""
    text = text.strip().lower()
    if text == "full":
        return None
    scale = 1
    if text.endswith(("k", "kib")):
        text, scale = text.rstrip("kib"), 1024
    value = int(text, 0) * scale
    if value <= 0:
        raise ValueError("size must be positive")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chips", default=",".join(CHIPS), help="comma-separated: F103C8,F412ZG,L432KC")
    parser.add_argument("--model", default="V2", help=f"simulated probe model: {', '.join(MODELS)} (default V2)")
    parser.add_argument("--size", default="64K", help="image size: bytes, NK, or 'full' (each chip's whole "
                        "flash, flash_speed's images); default 64K")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    parser.add_argument("--gang", type=int, default=8, metavar="N", help="boards in the gang race (0: skip)")
    parser.add_argument("--gang-chip", default="F103C8", help="chip of the gang race (default F103C8)")
    parser.add_argument("--gang-driver", choices=("best", "hla", "dapdirect"), default="best",
                        help="OpenOCD driver for the gang (default: the faster one on that chip above, else hla)")
    parser.add_argument("--openocd-khz", type=int, default=None, metavar="KHZ",
                        help="'adapter speed KHZ' after OpenOCD's target cfg (default: as the cfg sets it)")
    parser.add_argument("--peers", default=",".join(p.key for p in PEERS),
                        help="comma-separated rows to run: " + ",".join(p.key for p in PEERS))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="[peer_race] %(message)s")
    for name in ("gangflash", "pyocd"):
        logging.getLogger(name).setLevel(logging.ERROR)
    chips = [c.strip().upper() for c in args.chips.split(",") if c.strip()]
    for chip in chips + [args.gang_chip.upper()]:
        if chip not in CHIPS:
            parser.error(f"unknown chip {chip!r}; one of {', '.join(CHIPS)}")
    args.model = args.model.upper()
    if args.model not in MODELS:
        parser.error(f"unknown probe model {args.model!r}; one of {', '.join(MODELS)}")
    try:
        size = parse_size(args.size)
    except ValueError:
        parser.error(f"--size: bytes, NK or full, not {args.size!r}")
    wanted = {k.strip() for k in args.peers.split(",") if k.strip()}
    unknown = wanted - {p.key for p in PEERS}
    if unknown:
        parser.error(f"unknown peer(s) {', '.join(sorted(unknown))}")
    if args.gang < 0:
        parser.error("--gang must be 0 or more")
    from gangflash.sim.chips import chip_by_name

    def size_for(chip: str) -> int:
        return size if size is not None else chip_by_name(chip).flash_size

    started = time.perf_counter()
    rows: list[dict] = []
    gang = None
    with tempfile.TemporaryDirectory(prefix="peer_race-") as tmp:
        def context(chip: str) -> RunContext:
            data = image_bytes(chip, size_for(chip))
            path = Path(tmp) / f"{chip}-{len(data)}.bin"
            path.write_bytes(data)
            return RunContext(chip, args.model, len(data), path, data, args.openocd_khz)

        for chip in chips:
            ctx = context(chip)
            bound = flash_bound(chip, ctx.data)
            for peer in PEERS:
                if peer.key in wanted:
                    row = run_peer(peer, ctx)
                    row["bound"] = bound
                    rows.append(row)
        if args.gang:
            gang_chip = args.gang_chip.upper()
            ctx = context(gang_chip)
            driver, why = args.gang_driver, "as asked (--gang-driver)"
            if driver == "best":
                runs = [r for r in rows if r["chip"] == gang_chip and r["tool"] in ("openocd-hla", "openocd-dap")
                        and not failed(r) and "seconds" in r]
                fastest = min(runs, key=lambda r: r["seconds"], default=None)
                driver = "dapdirect" if fastest and fastest["tool"] == "openocd-dap" else "hla"
                why = ("the faster OpenOCD driver on this chip above" if fastest else "hla: no single-board run")
            log.info("gang: gangflash, %d x %s", args.gang, gang_chip)
            g = _in_fresh_process(gang_gangflash, gang_chip, args.model, ctx.size, args.gang)
            log.info("gang: gangflash slowest board %.3f virtual s, %.1f s wall", g["slowest_s"], g["wall_s"])
            log.info("gang: %d OpenOCD %s processes", args.gang, driver)
            try:
                o = gang_openocd(ctx, args.gang, driver)
            except Exception as exc:          # noqa: BLE001
                o = {"tool": f"openocd-{driver}", "boards": args.gang, "slowest_s": math.nan, "wall_s": math.nan,
                     "commands": 0, "in_flash": 0, "errors": {"-": f"{type(exc).__name__}: {exc}"}}
            log.info("gang: OpenOCD slowest board %.3f virtual s, %.1f s wall", o["slowest_s"], o["wall_s"])
            gang = {"chip": gang_chip, "boards": args.gang, "image_bytes": ctx.size, "driver_why": why,
                    "gangflash": g, "openocd": o}
    total_wall = time.perf_counter() - started
    verdicts = summarise(rows, chips)
    if args.json:
        print(json.dumps({"model": args.model, "target_speedup": TARGET_SPEEDUP, "server_pace": SERVER_PACE,
                          "rows": rows, "verdicts": verdicts, "gang": gang, "total_wall_s": total_wall},
                         indent=2, default=str))
    else:
        print(format_report(args, rows, verdicts, gang, total_wall))
    bad = [r for r in rows if failed(r)]
    if gang:
        for side in ("gangflash", "openocd"):
            if gang[side]["errors"] or gang[side]["in_flash"] != gang["boards"]:
                bad.append(gang[side])
    if bad:
        log.error("%d run(s) failed or left a wrong image in flash", len(bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
