"""CPU cost of the dashboard under 64 boards' worth of events.

A flood batch (a stand-in for ``orchestrator.scheduler.Batch``: same controls, same event stream)
runs 64 boards in auto mode, round after round: connect, identify, unique data, unlock, plan,
erase (16 steps), program (a 64 KiB image at ~27.5 KB/s, one ``StageProgress`` per board every
10 ms), verify, reset, then PASS (or, for ~5 %, FAIL with a cause) and the next board. That is
about 5,000 events a second. The dashboard runs headless (``App.run_test``) at a full-screen size
for ``--seconds``; the script prints the process CPU time over wall time for that window (after a
3 s warm-up: tiles mounted, every board under way), then the same for the flood alone (the stream drained by a bare loop, no app), and the difference: what the
dashboard costs.

    .venv/bin/python benchmarks/tui_cpu.py                    # 64 boards, 20 s, 200x60
    .venv/bin/python benchmarks/tui_cpu.py --boards 32 --seconds 10 --size 80x24
    .venv/bin/python benchmarks/tui_cpu.py --ansi             # also encode each frame for a terminal

Headless Textual renders every frame (widget strips, compositor) but skips turning frames into
terminal escape codes; ``--ansi`` puts that step back (output is discarded), closer to a real
terminal. Like every benchmark here it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import dataclass

import anyio

from gangflash.orchestrator import events as ev
from gangflash.tui.app import DashboardApp
from gangflash.tui.scripted import ScriptedBatch, probe_serial, scripted_config

TICK_S = 0.01                          # progress cadence per board
WARM_UP_S = 3.0                        # not measured: tiles mounting, boards starting (staggered 0-1 s)
IMAGE = 64 * 1024
PROGRAM_RATE = 27.5 * 1024             # bytes/s: ST-Link V2 on an F1
FAIL_RATE = 0.05
STAGES_BEFORE = (("connect", 0.05), ("identify", 0.02), ("unique data", 0.02), ("unlock", 0.03), ("plan", 0.01))


@dataclass
class Board:
    """One slot's board going round: a generator of its events, advanced each tick."""

    slot: str
    probe: str
    rng: random.Random
    serial: int = 0

    def rounds(self, clock):
        """Yields lists of events (maybe empty) once per tick, forever."""
        attempt_id = 0
        yield from self._wait(self.rng.uniform(0, 1.0), clock)          # boards start staggered
        while True:
            attempt_id += 1
            self.serial += 1
            fail_in = self.rng.choice(("erase", "verify")) if self.rng.random() < FAIL_RATE else None
            yield [ev.BoardStarted(self.slot, self.probe, 1, attempt_id, at=clock())]
            for stage, seconds in STAGES_BEFORE:
                out = [ev.StageStarted(self.slot, stage, at=clock())]
                if stage == "identify":
                    out.append(ev.BoardIdentified(self.slot, "STM32F103C8", 0x20036410,
                                                  f"{self.rng.getrandbits(96):024x}", 65536, at=clock()))
                if stage == "unique data":
                    out.append(ev.BoardNote(self.slot, f"serial number {self.slot}-{self.serial:05d} at 0x0800FC00",
                                            at=clock()))
                yield out
                yield from self._wait(seconds, clock)
                yield [ev.StageFinished(self.slot, stage, seconds, at=clock())]
            yield [ev.StageStarted(self.slot, "erase", at=clock())]
            for step in range(1, 17):
                yield from self._wait(0.03, clock)
                yield [ev.StageProgress(self.slot, "erase", step, 16, at=clock())]
                if fail_in == "erase" and step == 3:
                    break
            if fail_in == "erase":
                yield [ev.BoardFailed(self.slot, "erase", "page 0x08000C00 is write-protected (option bytes WRP)",
                                      "FLASH_SR=0x00000014 (WRPRTERR)", at=clock())]
            else:
                yield [ev.StageFinished(self.slot, "erase", 0.48, at=clock()),
                       ev.StageStarted(self.slot, "program", at=clock())]
                started = clock()
                while True:                                        # one progress event per tick
                    done = min(IMAGE, int((clock() - started) * PROGRAM_RATE) // 256 * 256)
                    yield [ev.StageProgress(self.slot, "program", done, IMAGE, at=clock())]
                    if done >= IMAGE:
                        break
                yield [ev.StageFinished(self.slot, "program", clock() - started, at=clock()),
                       ev.StageStarted(self.slot, "verify", at=clock())]
                yield from self._wait(0.05, clock)
                if fail_in == "verify":
                    yield [ev.BoardFailed(self.slot, "verify", "page 0x08003C00: CRC 0x1A2B3C4D on the chip, "
                                          "0x5E6F7081 expected", at=clock())]
                else:
                    yield [ev.StageFinished(self.slot, "verify", 0.05, at=clock()),
                           ev.StageStarted(self.slot, "reset", at=clock()),
                           ev.StageFinished(self.slot, "reset", 0.01, at=clock()),
                           ev.BoardPassed(self.slot, 3.0, f"{self.slot}-{self.serial:05d}", at=clock())]
            yield from self._wait(self.rng.uniform(0.2, 0.6), clock)     # the operator swaps the board
            yield [ev.BoardWaiting(self.slot, self.probe, at=clock())]
            yield from self._wait(self.rng.uniform(0.1, 0.4), clock)

    @staticmethod
    def _wait(seconds, clock):
        until = clock() + seconds
        while clock() < until:
            yield []


class FloodBatch(ScriptedBatch):
    """``run()`` plays 64 boards in real time for ``seconds``, then returns."""

    def __init__(self, boards: int, seconds: float, seed: int = 1) -> None:
        super().__init__(scripted_config(boards, mode="auto", name="tui cpu benchmark"))
        self.seconds = seconds
        self.rng = random.Random(seed)
        self.flood_started: float | None = None

    async def run(self):
        self.calls.append(("run", None))
        config = self.config
        labels = tuple(slot.label for slot in config.slots)
        clock = anyio.current_time
        self.emit(ev.BatchStarted(config.name, labels, config.firmware.path.name, config.firmware.sha256,
                                  "STM32F103C8", "auto", at=clock()))
        boards = [Board(label, probe_serial(i), random.Random(self.rng.random())).rounds(clock)
                  for i, label in enumerate(labels)]
        self.flood_started = clock()
        end = self.flood_started + self.seconds
        next_tick = self.flood_started
        while clock() < end:
            for board in boards:
                for event in next(board):
                    self.emit(event)
            next_tick += TICK_S
            await anyio.sleep(max(0.0, next_tick - clock()))
        self.emit(ev.BatchFinished(0, 0, 0, at=clock()))
        await self.events.aclose()
        return self.summary


def measure(label: str, body) -> dict:
    wall0, cpu0 = time.perf_counter(), time.process_time()
    extra = body()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    result = {"run": label, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "cpu_percent": round(100 * cpu / wall, 1)}
    result.update(extra or {})
    return result


def run_dashboard(boards: int, seconds: float, size: tuple[int, int], ansi: bool) -> dict:
    batch = FloodBatch(boards, seconds)
    app = DashboardApp(batch)
    if ansi:                                  # encode frames for a terminal like a real run would
        type(app).is_headless = property(lambda self: False)
    frames = {"refresh_dashboard": 0}
    original = app.refresh_dashboard

    def counted(**options) -> None:
        frames["refresh_dashboard"] += 1
        original(**options)
    app.refresh_dashboard = counted

    async def main() -> dict:
        async with app.run_test(size=size) as pilot:
            while batch.flood_started is None:
                await pilot.pause(0.05)
            await asyncio.sleep(WARM_UP_S)           # tiles mounted, every board under way
            seen0 = app.model.events_seen
            calls0 = frames["refresh_dashboard"]
            cpu0, wall0 = time.process_time(), time.perf_counter()
            while app.batch_running:
                await asyncio.sleep(0.1)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            events = app.model.events_seen - seen0
            passed, failed = app.model.passed, app.model.failed
            await pilot.press("q")
        return {"window_wall_s": round(wall, 2), "window_cpu_s": round(cpu, 2),
                "window_cpu_percent": round(100 * cpu / wall, 1), "events": events,
                "events_per_s": round(events / wall),
                "timer_calls_per_s": round((frames["refresh_dashboard"] - calls0) / wall, 1),
                "boards_passed": passed, "boards_failed": failed}

    return measure(f"dashboard {size[0]}x{size[1]}{' +ansi' if ansi else ''}", lambda: asyncio.run(main()))


def run_flood_alone(boards: int, seconds: float) -> dict:
    batch = FloodBatch(boards, seconds)
    count = {"events": 0}

    async def main() -> dict:
        stream = batch.events.subscribe()

        async def drain() -> None:
            async for _ in stream:
                count["events"] += 1
        window = {}

        async def clock_window() -> None:
            while batch.flood_started is None:
                await anyio.sleep(0.05)
            await anyio.sleep(WARM_UP_S)
            window.update(cpu0=time.process_time(), wall0=time.perf_counter(), seen0=count["events"])

        async with anyio.create_task_group() as tg:
            tg.start_soon(drain)
            tg.start_soon(clock_window)
            await batch.run()
            cpu, wall = time.process_time() - window["cpu0"], time.perf_counter() - window["wall0"]
        events = count["events"] - window["seen0"]
        return {"window_wall_s": round(wall, 2), "window_cpu_s": round(cpu, 2),
                "window_cpu_percent": round(100 * cpu / wall, 1), "events": events,
                "events_per_s": round(events / wall)}

    return measure("flood alone (no app)", lambda: asyncio.run(main()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--size", default="200x60", help="terminal size WxH (default 200x60)")
    parser.add_argument("--ansi", action="store_true", help="also encode frames into terminal sequences")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    width, height = (int(n) for n in args.size.lower().split("x"))
    results = [run_flood_alone(args.boards, args.seconds),
               run_dashboard(args.boards, args.seconds, (width, height), args.ansi)]
    flood, dash = results
    dashboard_cost = dash["window_cpu_percent"] - flood["window_cpu_percent"]
    if args.json:
        print(json.dumps({"results": results, "dashboard_cpu_percent": round(dashboard_cost, 1)}, indent=2))
        return 0
    print(f"{args.boards} boards, {args.seconds:.0f} s of events, one progress event per board every "
          f"{TICK_S * 1000:.0f} ms while programming")
    for result in results:
        print(f"  {result['run']:<28} {result['events']:>7} events ({result['events_per_s']}/s)  "
              f"CPU {result['window_cpu_s']:6.2f} s / wall {result['window_wall_s']:6.2f} s = "
              f"{result['window_cpu_percent']:5.1f} %")
    print(f"  dashboard timer calls per second: {dash['timer_calls_per_s']} (at most 20 repaints a second)")
    print(f"  the dashboard's own cost: {dashboard_cost:.1f} % of one core (dashboard run minus flood alone)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
