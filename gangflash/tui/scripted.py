"""A batch look-alike that plays scripted events: for tests, screenshots and the CPU benchmark.

:class:`ScriptedBatch` has the controls of ``orchestrator.scheduler.Batch`` (``run``,
``request_retry``, ``set_paused``, ``set_auto``, ``request_restart``, ``request_stop``,
``in_flight``) and records every call. ``run()`` publishes its script, then waits for a stop;
on ``request_retry`` it starts each failed board again (a new ``BoardStarted``), as the
scheduler does; on a stop it aborts the boards in flight, publishes ``BatchFinished`` and returns.

:func:`mixed_states` builds a deterministic scene with every tile state (passed, failed with a
cause, running with progress, waiting, probe fault, retrying, aborted) at fixed times.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import anyio

from gangflash.orchestrator import events as ev
from gangflash.orchestrator.config_schema import (
    BatchConfig, FirmwareSpec, PipelineSpec, RetrySpec, SlotSpec, TargetSpec,
)
from gangflash.orchestrator.scheduler import BatchSummary

DEMO_SHA256 = "e293902ee52238e9d676a370f59dea5879f73279fb7842d6b7dd6e2908e09f9d"
IMAGE_SIZE = 16 * 1024


def probe_serial(index: int) -> str:
    """A plausible, unique 24-digit ST-Link serial for slot ``index``."""
    return f"066DFF{0x4857 + index * 7:04X}{0x52518709 + index * 0x1F3:08X}{index:06X}"


def scripted_config(slots: int | Sequence[str] = 8, *, name: str = "line-3 controller boards",
                    mode: str = "batch", chip: str | None = "STM32F103C8",
                    firmware: str = "ctrl-fw-2.4.1.bin") -> BatchConfig:
    """A valid-looking :class:`BatchConfig` (nothing on disk is read) with ``slots`` slots."""
    labels = [f"S{i + 1}" for i in range(slots)] if isinstance(slots, int) else list(slots)
    return BatchConfig(
        path=Path("/line3/batch.toml"), name=name, journal=Path("/line3/batch.journal.db"), mode=mode,
        firmware=FirmwareSpec(path=Path("/line3") / firmware, format="bin", base_address=0x08000000,
                              sha256=DEMO_SHA256, size=IMAGE_SIZE),
        target=TargetSpec(chip=chip, family="F1" if chip else None),
        slots=tuple(SlotSpec(label, probe=probe_serial(i), serial=probe_serial(i)) for i, label in enumerate(labels)),
        all_probes=False, label_prefix="S", pipeline=PipelineSpec(), retry=RetrySpec())


class ScriptedBatch:
    """Plays ``script`` on ``run()``; records control calls in :attr:`calls`."""

    def __init__(self, config: BatchConfig, script: Iterable[ev.Event] = (), *,
                 clock: Callable[[], float] | None = None) -> None:
        self.config = config
        self.events = ev.EventBus()
        self.script = list(script)
        self.auto = config.mode == "auto"
        self.calls: list[tuple[str, object]] = []
        self.summary = BatchSummary()
        self.running = False
        self.emitted = 0                          # events published so far (tests wait for the drain)
        self._clock = clock
        self._stop: anyio.Event | None = None
        self._stop_requested = False
        self._attempts: dict[str, int] = {}
        self._in_flight: set[str] = set()
        self._final: dict[str, str] = {}          # slot -> passed / failed / aborted (latest)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def now(self) -> float:
        return self._clock() if self._clock is not None else anyio.current_time()

    # --- publishing --------------------------------------------------------------------------------

    def emit(self, event: ev.Event) -> None:
        """Publish one event, keeping ``in_flight`` and the summary as the scheduler would."""
        match event:
            case ev.BoardStarted():
                self._in_flight.add(event.slot)
                self._attempts[event.slot] = event.attempt
            case ev.BoardPassed():
                self._in_flight.discard(event.slot)
                self._final[event.slot] = "passed"
            case ev.BoardFailed():
                self._in_flight.discard(event.slot)
                if not event.will_retry:
                    self._final[event.slot] = "failed"
            case ev.BoardAborted():
                self._in_flight.discard(event.slot)
                self._final[event.slot] = "aborted"
        self.emitted += 1
        self.events.emit(event)

    def play(self, events: Iterable[ev.Event]) -> None:
        for event in events:
            self.emit(event)

    async def run(self) -> BatchSummary:
        self.calls.append(("run", None))
        self.running = True
        self._stop = anyio.Event()
        if self._stop_requested:
            self._stop.set()
        self.play(self.script)
        await self._stop.wait()
        at = self.now()
        for slot in sorted(self._in_flight):
            self.emit(ev.BoardAborted(slot, "stopped by the operator", at=at))
        values = list(self._final.values())
        self.summary = BatchSummary(values.count("passed"), values.count("failed"), values.count("aborted"))
        self.emit(ev.BatchFinished(self.summary.passed, self.summary.failed, self.summary.aborted, at=at))
        await self.events.aclose()
        self.running = False
        return self.summary

    # --- controls ----------------------------------------------------------------------------------

    def request_retry(self, slots: list[str] | None = None) -> None:
        self.calls.append(("request_retry", slots))
        at = self.now()
        for slot, result in list(self._final.items()):
            if result in ("failed", "aborted") and (slots is None or slot in slots):
                del self._final[slot]
                probe = next((s.serial or "" for s in self.config.slots if s.label == slot), "")
                self.emit(ev.BoardStarted(slot, probe, self._attempts.get(slot, 0) + 1, at=at))

    def set_paused(self, paused: bool) -> None:
        self.calls.append(("set_paused", paused))

    def set_auto(self, auto: bool) -> None:
        self.calls.append(("set_auto", auto))
        self.auto = auto

    def request_restart(self) -> None:
        self.calls.append(("request_restart", None))

    def request_stop(self) -> None:
        self.calls.append(("request_stop", None))
        self._stop_requested = True
        if self._stop is not None:
            self._stop.set()


# --- a scene with every state ----------------------------------------------------------------------

T0 = 1000.0          # BatchStarted, on the event clock
NOW = T0 + 312.0     # the fixed "now" of screenshots: 5:12 into the batch

ENGINE_STAGES = (("unique data", 0.02), ("unlock", 0.03), ("plan", 0.01), ("erase", 0.55))
PROGRAM_RATE = 27.5 * 1024          # bytes/s of a V2 probe on an F1
CAUSES = {
    "failed": ("erase", "write-protected: pages 0-3 are locked by the option bytes (WRP) and this batch "
               "may not change them", "FLASH_SR=0x00000014 (WRPRTERR)\nFLASH_WRPR=0xFFFFFFFE: pages 0-3 protected"
               "\noption bytes: RDP level 0"),
    "failed2": ("verify", "page 0x08003C00: CRC 0x1A2B3C4D on the chip, 0x5E6F7081 expected (stuck bits, "
                "or programming did not take)", "verify mode crc; 16 pages checked, 1 differs"),
    "wrong": ("identify", "wrong chip: found STM32F412ZG, the batch is for STM32F1", ""),
    "fault": ("connect", "probe does not answer (USB timeout): wedged; tried one USB reset of the probe", ""),
    "retrying": ("program", "loader stopped: flash busy after 1.5 s (BSY stuck)", "FLASH_SR=0x00000001 (BSY)"),
}
#: the state of each slot, in order, repeating (8 slots show each state at least once)
PATTERN = ("passed", "running", "failed", "waiting", "fault", "running", "passed", "retrying",
           "passed", "running", "passed", "aborted", "passed", "running", "failed2", "passed",
           "running", "passed", "passed", "wrong", "running", "passed", "waiting", "passed",
           "running", "passed", "passed", "running", "passed", "fault", "passed", "running")


def mixed_states(slots: int = 8, *, now: float = NOW, mode: str = "batch") -> tuple[BatchConfig, list[ev.Event]]:
    """A config and a script leaving ``slots`` tiles in mixed states at time ``now``."""
    config = scripted_config(slots, mode=mode)
    labels = [slot.label for slot in config.slots]
    script: list[ev.Event] = [ev.BatchStarted(config.name, tuple(labels), config.firmware.path.name,
                                              config.firmware.sha256, "STM32F103C8", mode, at=T0)]
    serial = 1041
    for index, label in enumerate(labels):
        state = PATTERN[index % len(PATTERN)]
        probe = probe_serial(index)
        if state == "waiting":
            script.append(ev.BoardWaiting(label, probe, at=now - 20 - index))
            continue
        uid = f"{0x3F0031 + index:06x}3133510d{0x35383637 + index * 31:08x}"
        if state == "running":
            program_for = 0.05 + (0.09 * index) % 0.5   # seconds into programming: spread the bars
            begin = now - 0.66 - program_for
            attempt = 1
        else:
            begin = T0 + 5 + index * 9.25
            attempt = 2 if state in ("failed2",) else 1
        chip = "STM32F412ZG" if state == "wrong" else "STM32F103C8"
        script.append(ev.BoardStarted(label, probe, attempt, 400 + index, at=begin))
        if state == "fault":
            script.append(ev.StageStarted(label, "connect", at=begin))
            stage, cause, diag = CAUSES["fault"]
            script.append(ev.BoardFailed(label, stage, f"probe {probe} {cause.removeprefix('probe ')}", diag,
                                         probe_fault=True, at=begin + 2.01))
            continue
        script.append(ev.StageStarted(label, "connect", at=begin))
        script.append(ev.StageFinished(label, "connect", 0.06, at=begin + 0.06))
        script.append(ev.StageStarted(label, "identify", at=begin + 0.06))
        script.append(ev.BoardIdentified(label, chip, 0x20036410 if chip.startswith("STM32F1") else 0x30006441,
                                         uid, 64 * 1024 if chip.startswith("STM32F1") else 1024 * 1024,
                                         at=begin + 0.065))
        if state == "wrong":
            stage, cause, diag = CAUSES["wrong"]
            script.append(ev.BoardFailed(label, stage, cause, diag, at=begin + 0.07))
            continue
        script.append(ev.StageFinished(label, "identify", 0.01, at=begin + 0.07))
        sn = f"L3-{serial:06d}"
        serial += 1
        t = begin + 0.07
        for name, seconds in ENGINE_STAGES:
            script.append(ev.StageStarted(label, name, at=t))
            if name == "unique data":
                script.append(ev.BoardNote(label, f"serial number {sn} at 0x0800FC00", at=t + 0.01))
            if name == "erase" and state == "failed":         # a write-protected page refuses the erase
                stage, cause, diag = CAUSES["failed"]
                script.append(ev.StageProgress(label, "erase", 1, 16, at=t + 0.05))
                script.append(ev.BoardFailed(label, stage, cause, diag, at=t + 0.1))
                break
            if name == "erase":
                script.extend(ev.StageProgress(label, name, done, 16, at=t + seconds * done / 16)
                              for done in range(1, 17))
            t += seconds
            script.append(ev.StageFinished(label, name, seconds, at=t))
        if state == "failed":
            continue
        script.append(ev.StageStarted(label, "program", at=t))
        if state == "running":
            steps = int(round((now - t) / 0.01))
            for step in range(1, steps + 1):
                done = min(IMAGE_SIZE, int(PROGRAM_RATE * step * 0.01) // 256 * 256)
                script.append(ev.StageProgress(label, "program", done, IMAGE_SIZE, at=t + step * 0.01))
            continue
        if state == "retrying":
            stage, cause, diag = CAUSES["retrying"]
            script.append(ev.StageProgress(label, "program", 6144, IMAGE_SIZE, at=t + 0.22))
            script.append(ev.BoardFailed(label, stage, cause, diag, will_retry=True, at=t + 1.72))
            continue
        if state == "aborted":
            script.append(ev.StageProgress(label, "program", 9216, IMAGE_SIZE, at=t + 0.33))
            script.append(ev.BoardAborted(label, "stopped during program", at=t + 0.34))
            continue
        program_seconds = IMAGE_SIZE / PROGRAM_RATE
        for step in range(1, 5):
            script.append(ev.StageProgress(label, "program", IMAGE_SIZE * step // 4, IMAGE_SIZE,
                                           at=t + program_seconds * step / 4))
        t += program_seconds
        script.append(ev.StageFinished(label, "program", program_seconds, at=t))
        script.append(ev.StageStarted(label, "verify", at=t))
        if state == "failed2":
            stage, cause, diag = CAUSES["failed2"]
            script.append(ev.BoardFailed(label, stage, cause, diag, at=t + 0.04))
            continue
        script.append(ev.StageFinished(label, "verify", 0.04, at=t + 0.04))
        script.append(ev.StageStarted(label, "reset", at=t + 0.04))
        script.append(ev.StageFinished(label, "reset", 0.01, at=t + 0.05))
        script.append(ev.BoardPassed(label, t + 0.05 - begin, sn, at=t + 0.05))
    script.sort(key=lambda event: event.at)
    return config, script


# --- the README screenshot -------------------------------------------------------------------------

def save_screenshot(path: str, *, slots: int = 32, size: tuple[int, int] = (120, 36),
                    keys: Sequence[str] = ("right", "right")) -> None:
    """Write an SVG of the dashboard showing :func:`mixed_states` (``docs/dashboard.svg``):
    ``python -m gangflash.tui.scripted docs/dashboard.svg``."""
    import asyncio

    from .app import DashboardApp

    config, script = mixed_states(slots)
    app = DashboardApp(ScriptedBatch(config, script, clock=lambda: NOW), clock=lambda: NOW)

    async def shoot() -> None:
        async with app.run_test(size=size) as pilot:
            while app.model.events_seen < len(script):
                await pilot.pause()
            app.refresh_dashboard()
            await pilot.press(*keys)
            await pilot.pause()
            app.save_screenshot(filename=Path(path).name, path=str(Path(path).parent))

    asyncio.run(shoot())


if __name__ == "__main__":
    import sys

    save_screenshot(sys.argv[1] if len(sys.argv) > 1 else "dashboard.svg")
