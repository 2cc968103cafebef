"""Gang scaling in the simulator's virtual time: batches of 1, 8, 32 and 64 boards against one board.

Each batch is a real ``orchestrator.scheduler.Batch`` (pipeline, retries, journal, event bus) over
simulated probes (``SimBackend`` built here so the probes' counters stay reachable), run with
``orchestrator.pacing.run_simulated`` at pace 0: a virtual-time loop where time advances only by the
simulator's modelled costs (USB transfers, SWD, flash operations). Boards in a gang overlap in
virtual time exactly as real boards overlap in real time, so any serialisation in gangflash (a
shared lock held across an await, a journal write that makes the others wait, one probe's
transfers queued behind another's) shows as lost virtual seconds; host CPU does not (it is printed
beside, per board, as the host's cost).

Every batch gets a fresh temporary directory: the batch config, a copy of the firmware and its own
journal. The batch: ``configs/firmware/demo-16k.bin`` at 0x08000000, a counter serial number at
0x0800FC00 (allocated in the journal, programmed with the image), erase auto, verify crc, two
attempts. Boards: all F103C8 (default) or ``--mix`` (F103C8, F412ZG, L432KC round-robin), each
behind its own simulated ST-Link (``--model``, default V2).

Figures per batch: virtual seconds of the whole batch (``Batch.run`` start to end) and of the
slowest board, the ratio to the single-board batch (target <= 1.10), per-board stretch (each
board's time over the same chip alone), host wall and CPU seconds (``time.process_time``, whole
process) and CPU per board, with the part spent outside the simulator (gangflash's own),
passed/failed, ST-Link commands served (sum of every probe's ``stats['commands']``), and the mean
virtual seconds of each pipeline stage per chip (``StageFinished``). One untimed single-board
batch runs first so imports and caches are not charged to the first row.

What virtual time leaves out: on the virtual clock the journal runs inline (see
``AsyncJournal._call``), so its fsync'd commits cost no virtual time, while on a real clock they
run one at a time (one SQLite connection, one lock) and boards wait for them. Two diagnostics:
``--journal-commit-ms MS`` charges each journal write MS virtual ms under one shared lock (a model
of the real clock's serialised commits); ``--journal-threads`` forces the real-clock code path
(worker threads) onto the virtual clock, where a loop that sees only a thread's pending result
jumps to the next timer (a board's stage deadline when nothing else is running).

This prints figures; it asserts nothing about speed (tests never time things). Exit status 1
only if a board failed.

    .venv/bin/python benchmarks/gang_scaling.py                     # sizes 1,8,32,64, all F103C8
    .venv/bin/python benchmarks/gang_scaling.py --sizes 1,8,64 --mix
    .venv/bin/python benchmarks/gang_scaling.py --journal-commit-ms 2
    .venv/bin/python benchmarks/gang_scaling.py --journal-threads   # diagnostic, see --help
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIRMWARE = REPO / "configs" / "firmware" / "demo-16k.bin"
DEFAULT_SIZES = (1, 8, 32, 64)
MIX = ("F103C8", "F412ZG", "L432KC")
TARGET_RATIO = 1.10
SERIAL_ADDRESS = 0x0800FC00          # last KiB of the F103C8's 64 KiB; inside every chip of the mix


def config_text(chips: list[str], model: str) -> str:
    boards = "".join(f'\n[[sim.board]]\nchip = "{chip}"\nprobe_model = "{model}"\n' for chip in chips)
    return f"""
[batch]
name = "gang-scaling-{len(chips)}"
mode = "batch"

[firmware]
path = "firmware/demo-16k.bin"
format = "bin"
base_address = 0x08000000

[slots]
all = true
label_prefix = "S"

[pipeline]
erase = "auto"
verify = "crc"

[retry]
attempts = 2
delay_s = 0.1

[serial_number]
address = 0x{SERIAL_ADDRESS:08X}
format = "counter"
start = 1
template = "GS-%05d"

[sim]
pace = 0
{boards}"""


@contextlib.contextmanager
def journal_threads(enabled: bool):
    """Diagnostic: make the journal take its real-clock path (every call in a worker thread) even
    on the virtual clock, as it did before it learnt to run inline there."""
    if not enabled:
        yield
        return
    from gangflash.orchestrator import journal
    if not hasattr(journal, "on_virtual_clock"):
        raise SystemExit("--journal-threads: gangflash.orchestrator.journal.on_virtual_clock not found; "
                         "the journal no longer has an inline mode to switch off")
    saved = journal.on_virtual_clock
    journal.on_virtual_clock = lambda: False
    try:
        yield
    finally:
        journal.on_virtual_clock = saved


JOURNAL_WRITES = frozenset({"start_batch", "end_batch", "begin_attempt", "update_attempt", "finish_attempt",
                            "allocate_serial"})


@contextlib.contextmanager
def journal_commit_cost(ms: float):
    """Model: every journal write (one committed transaction, fsync'd: synchronous=FULL) costs
    ``ms`` virtual milliseconds, one at a time across all boards, as the journal's one SQLite
    connection and its lock serialise them on a real clock (the event loop stays free meanwhile).
    On the virtual clock the journal otherwise runs inline and costs no virtual time."""
    if ms <= 0:
        yield
        return
    import anyio

    from gangflash.orchestrator.journal_async import AsyncJournal
    original = AsyncJournal._call
    state: dict = {}

    async def _call(self, method, *args, **kwargs):
        if getattr(method, "__name__", "") in JOURNAL_WRITES:
            lock = state.setdefault("lock", anyio.Lock())
            async with lock:
                await anyio.sleep(ms / 1000)
                return await original(self, method, *args, **kwargs)
        return await original(self, method, *args, **kwargs)

    AsyncJournal._call = _call
    try:
        yield
    finally:
        AsyncJournal._call = original


class SimMeter:
    """Host CPU spent inside the simulator: every SimProbe entry point the SimBackend calls
    (bulk_out, bulk_in, usb_reset; the simulated probe and chip do all their work in them) is
    wrapped on the instance, so the rest of the process CPU is gangflash's own (pipeline, flash
    engine, ST-Link driver, scheduler, journal, event loop)."""

    ENTRY_POINTS = ("bulk_out", "bulk_in", "usb_reset")

    def __init__(self) -> None:
        self.cpu_s = 0.0

    def wrap(self, probe) -> None:
        for name in self.ENTRY_POINTS:
            original = getattr(probe, name)

            def metered(*args, _original=original, **kwargs):
                start = time.process_time()
                try:
                    return _original(*args, **kwargs)
                finally:
                    self.cpu_s += time.process_time() - start

            setattr(probe, name, metered)


def run_batch(chips: list[str], model: str, *, threads: bool = False, commit_ms: float = 0.0) -> dict:
    """One batch of ``len(chips)`` boards in a fresh temporary directory; its figures."""
    import anyio

    from gangflash.orchestrator import events as ev
    from gangflash.orchestrator.config import load_config
    from gangflash.orchestrator.config_sim import make_sim_probes
    from gangflash.orchestrator.pacing import run_simulated
    from gangflash.orchestrator.scheduler import Batch
    from gangflash.transport.sim_backend import SimBackend

    with tempfile.TemporaryDirectory(prefix="gang_scaling-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "firmware").mkdir()
        shutil.copy(FIRMWARE, tmp / "firmware" / FIRMWARE.name)
        path = tmp / "batch.toml"
        path.write_text(config_text(chips, model))
        config = load_config(path)
        probes: list = []
        meter = SimMeter()

        def backend_factory():
            probes[:] = make_sim_probes(config.sim.boards, clock=anyio.current_time)
            for probe in probes:
                meter.wrap(probe)
            return SimBackend(probes)

        batch = Batch(config, backend_factory, journal_path=tmp / "journal.db", keep_alive=False)
        stage_events: list[tuple[str, str, float]] = []      # (slot, stage, seconds)
        started: dict[str, float] = {}
        board_s: dict[str, float] = {}
        failures: list[str] = []

        async def consume(stream) -> None:
            async with stream:
                async for event in stream:
                    if isinstance(event, ev.StageFinished):
                        stage_events.append((event.slot, event.stage, event.seconds))
                    elif isinstance(event, ev.BoardStarted):
                        started.setdefault(event.slot, event.at)
                    elif isinstance(event, ev.BoardPassed):
                        board_s[event.slot] = event.seconds
                    elif isinstance(event, ev.BoardFailed) and not event.will_retry:
                        board_s[event.slot] = event.at - started.get(event.slot, event.at)
                        failures.append(f"{event.slot}: {event.stage}: {event.cause}")
                    elif isinstance(event, ev.BoardFailed):
                        failures.append(f"{event.slot} (retried): {event.stage}: {event.cause}")

        async def main() -> tuple:
            stream = batch.events.subscribe()
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume, stream)
                t0 = anyio.current_time()
                summary = await batch.run()
                return summary, anyio.current_time() - t0

        with journal_threads(threads), journal_commit_cost(commit_ms):
            wall0, cpu0 = time.perf_counter(), time.process_time()
            summary, virtual = run_simulated(main, pace=0.0)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0

        chip_of = {slot.label: config.sim.boards[int(slot.info.port_path.split(":")[1])].chip
                   for slot in batch.slots}
        stages: dict[str, dict[str, list[float]]] = {}          # chip -> stage -> seconds
        for slot, stage, seconds in stage_events:
            stages.setdefault(chip_of.get(slot, "?"), {}).setdefault(stage, []).append(seconds)
        journal = getattr(batch, "_journal", None)
        return {
            "boards": len(chips), "chips": chips, "model": model, "virtual_s": virtual,
            "slowest_s": max(board_s.values(), default=math.nan),
            "board_s": board_s, "chip_of": chip_of,
            "wall_s": wall, "cpu_s": cpu, "cpu_per_board_s": cpu / len(chips), "sim_cpu_s": meter.cpu_s,
            "host_cpu_per_board_s": (cpu - meter.cpu_s) / len(chips),
            "passed": summary.passed, "failed": summary.failed, "aborted": summary.aborted,
            "commands": sum(p.stats["commands"] for p in probes),
            "stages": {chip: {name: {"mean": sum(v) / len(v), "max": max(v), "count": len(v)}
                              for name, v in by_stage.items()} for chip, by_stage in sorted(stages.items())},
            "failures": failures,
            "journal_threaded": getattr(journal, "threaded", None),
        }


def annotate(result: dict, reference: dict[str, dict]) -> None:
    """Ratio to the single-board reference (the slowest chip of this batch run alone) and the
    worst per-board stretch (each board over its own chip alone)."""
    present = sorted(set(result["chips"]))
    ref = max(reference[chip]["virtual_s"] for chip in present)
    result["reference_s"] = ref
    result["ratio"] = result["virtual_s"] / ref
    stretch = [seconds / reference[result["chip_of"][slot]]["slowest_s"]
               for slot, seconds in result["board_s"].items()]
    result["stretch"] = max(stretch, default=math.nan)


def _verdict(result: dict) -> str:
    if result["failed"] or result["aborted"]:
        return "FAIL"                          # a batch with failed boards meets no target
    return "ok" if result["ratio"] <= TARGET_RATIO else "MISS"


def format_report(args, reference: dict[str, dict], results: list[dict], total_wall: float) -> str:
    out: list[str] = []
    w = out.append
    mix = "round-robin " + "/".join(MIX) if args.mix else "all F103C8"
    w("gangflash gang scaling: one Batch per size, simulated boards in virtual time "
      "(orchestrator.pacing.run_simulated, pace 0)")
    w(f"boards: {mix}, each on its own simulated ST-Link {args.model}; firmware {FIRMWARE.relative_to(REPO)} "
      f"({FIRMWARE.stat().st_size // 1024} KiB) + counter serial number at 0x{SERIAL_ADDRESS:08X}; "
      "erase auto, verify crc, 2 attempts; fresh temp dir + journal per batch")
    journal_mode = {True: "worker threads (--journal-threads diagnostic)", False: "inline on the virtual clock",
                    None: "unknown"}[results[0]["journal_threaded"] if results else None]
    w(f"journal calls: {journal_mode}; "
      + (f"MODEL: each journal write charged {args.journal_commit_ms:g} virtual ms, one at a time across the gang"
         if args.journal_commit_ms > 0 else "journal writes cost no virtual time"))
    if args.mix:
        w("reference (each chip alone, 1-board batch): " + ", ".join(
            f"{chip} {reference[chip]['virtual_s']:.4f} s" for chip in MIX)
          + "; a batch's ratio is over its slowest chip alone")
    w("")
    header = (f"{'boards':>6} {'batch s':>9} {'slowest s':>9} {'ratio':>10} {'stretch':>8} {'wall s':>7} "
              f"{'CPU s':>7} {'CPU/board':>9} {'(gangflash)':>11} {'passed':>6} {'failed':>6} {'ST-Link cmds':>12}")
    w(header)
    w("-" * len(header))
    for r in results:
        ratio = f"{r['ratio']:.3f} {_verdict(r)}"
        w(f"{r['boards']:>6} {r['virtual_s']:>9.4f} {r['slowest_s']:>9.4f} {ratio:>10} {r['stretch']:>8.3f} "
          f"{r['wall_s']:>7.1f} {r['cpu_s']:>7.2f} {r['cpu_per_board_s']:>9.3f} {r['host_cpu_per_board_s']:>11.3f} "
          f"{r['passed']:>6} {r['failed'] + r['aborted']:>6} {r['commands']:>12,}")
    w("")
    w(f"target: ratio <= {TARGET_RATIO:.2f} (batch virtual s / the single-board batch's). stretch = worst board's "
      "virtual s / the same chip's single-board time. slowest = the longest board (its BoardPassed.seconds; "
      "first start to final failure for a failed one). wall/CPU = host seconds for run_simulated only "
      "(CPU: time.process_time, whole process). (gangflash) = CPU per board outside the simulator (SimProbe "
      "entry points metered): pipeline, flash engine, ST-Link driver, scheduler, journal, event loop.")
    w("")
    w("stages (StageFinished), mean virtual s per board of each chip [max where it is > 0.5 ms above the mean]:")
    for r in results:
        for chip, by_stage in r["stages"].items():
            parts = []
            for name, s in by_stage.items():
                extra = f" [max {s['max']:.4f}]" if s["max"] - s["mean"] > 5e-4 else ""
                parts.append(f"{name} {s['mean']:.4f}{extra}")
            count = sum(1 for c in r["chip_of"].values() if c == chip)
            w(f"  {r['boards']:>3} boards, {count:>2} x {chip}: " + " | ".join(parts))
    failed = [r for r in results if r["failures"]]
    if failed:
        w("")
        w("failures:")
        for r in failed:
            for text in r["failures"][:8]:
                w(f"  {r['boards']:>3} boards: {text}")
            if len(r["failures"]) > 8:
                w(f"  {r['boards']:>3} boards: ... {len(r['failures']) - 8} more")
    w("")
    misses = [r for r in results if _verdict(r) != "ok"]
    w("targets missed: " + (", ".join(f"{r['boards']} boards (ratio {r['ratio']:.3f}, "
                                      f"{r['failed'] + r['aborted']} failed)" for r in misses)
                           if misses else "none"))
    if any(ref["failed"] or ref["aborted"] for ref in reference.values()):
        w("!! a single-board reference batch had failed boards: its time is not a board's time, so the "
          "ratios above are not meaningful")
    w(f"host: {os.cpu_count()} CPU(s), Python {sys.version.split()[0]}, one process, batches one after another; "
      f"total wall {total_wall:.1f} s (with the warm-up and reference batches).")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                        help="comma-separated board counts (default 1,8,32,64); the single-board "
                             "reference always runs")
    parser.add_argument("--mix", action="store_true",
                        help="boards F103C8/F412ZG/L432KC round-robin instead of all F103C8")
    parser.add_argument("--model", default="V2", help="simulated probe model: V2, V2-1, V3, V3E (default V2)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed single-board warm-up batch")
    parser.add_argument("--journal-threads", action="store_true",
                        help="diagnostic: run every journal call in a worker thread even on the virtual "
                             "clock (the real-clock path): shows what that costs in virtual time")
    parser.add_argument("--journal-commit-ms", type=float, default=0.0, metavar="MS",
                        help="model: charge every journal write MS virtual milliseconds (its fsync'd "
                             "commit), one write at a time across the gang as on a real clock; default 0 "
                             "(the journal runs inline on the virtual clock and costs no virtual time)")
    args = parser.parse_args(argv)
    if args.journal_commit_ms < 0:
        parser.error("--journal-commit-ms must be 0 or more")
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers, not {args.sizes!r}")
    if not sizes or min(sizes) < 1:
        parser.error("--sizes needs board counts of at least 1")
    from gangflash.sim.usb_descriptors import VARIANTS
    if args.model not in VARIANTS:
        parser.error(f"unknown probe model {args.model!r}; one of {', '.join(sorted(VARIANTS))}")

    def chips_for(n: int) -> list[str]:
        return [MIX[i % len(MIX)] for i in range(n)] if args.mix else ["F103C8"] * n

    started = time.perf_counter()

    def progress(text: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {text}", file=sys.stderr, flush=True)

    if not args.no_warmup:
        progress("warm-up: 1 board (untimed)")
        run_batch(["F103C8"], args.model, threads=args.journal_threads, commit_ms=args.journal_commit_ms)
    reference: dict[str, dict] = {}
    ref_chips = MIX if args.mix else ("F103C8",)
    results: list[dict] = []
    for chip in ref_chips:
        progress(f"reference: 1 board {chip}")
        reference[chip] = run_batch([chip], args.model, threads=args.journal_threads,
                                     commit_ms=args.journal_commit_ms)
    for n in sizes:
        if n == 1 and not args.mix:
            result = reference["F103C8"]
        elif n == 1:
            result = reference[MIX[0]]         # the mix's first board alone
        else:
            progress(f"batch: {n} boards")
            result = run_batch(chips_for(n), args.model, threads=args.journal_threads,
                               commit_ms=args.journal_commit_ms)
        annotate(result, reference)
        results.append(result)
        progress(f"{n} boards: {result['virtual_s']:.4f} virtual s, ratio {result['ratio']:.3f}, "
                 f"{result['wall_s']:.1f} wall s, {result['passed']} passed, {result['failed']} failed")
    total_wall = time.perf_counter() - started
    if args.json:
        print(json.dumps({"mix": args.mix, "model": args.model, "target_ratio": TARGET_RATIO,
                          "reference": reference, "results": results, "total_wall_s": total_wall},
                         indent=2, default=str))
    else:
        print(format_report(args, reference, results, total_wall))
    bad = [r for r in results + list(reference.values()) if r["failed"] or r["aborted"]]
    if bad:
        print(f"gang_scaling: {len(bad)} batch(es) had failed boards", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
