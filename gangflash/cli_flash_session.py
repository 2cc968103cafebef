"""One board programmed for ``gangflash flash``: probe chosen, opened, target attached, image
flashed, and every way that can end turned into a :class:`FlashOutcome`.

This is the asynchronous half of the command (``cli_flash`` parses, prints and picks the event
loop). It keeps three promises whatever happens:

* **The probe is closed** on every path: success, typed failure, a bug, Ctrl-C.
* **The target is never left half-unlocked.** After a failure or an interruption past attach
  the core is halted and the flash controller locked again (FPEC ``LOCK``) under a shielded,
  bounded scope; after a success the engine's reset stage has locked it (with ``--no-reset``
  this module locks it). A probe that is gone is not touched again.
* **Expected failures are data, not tracebacks**: typed target and transport errors become a
  one-line cause (with the probe serial and the stage) plus decoded diagnostics. Anything else is
  a bug and propagates, after the cleanup.

Ctrl-C arrives as SIGINT; a watcher task turns it into anyio cancellation of the work, so the
cleanup above runs as for any other cancellation (where signals cannot be watched, Python's
KeyboardInterrupt still ends the run and the closing ``finally`` blocks still run).
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from gangflash.target.errors import ImageError, TargetError
from gangflash.target.flash.errors import FlashError, ReadoutProtected
from gangflash.target.flash.program import FlashOptions, FlashResult, flash_image
from gangflash.target.flash.progress import Note, ProgressSink, Stage, StageFinished, StageStarted
from gangflash.target.flash.session import Target
from gangflash.target.image import Image
from gangflash.transport.backend import Backend, ProbeInfo
from gangflash.transport.errors import ProbeGone, TransportError, UsbTimeout
from gangflash.transport.stlink import Stlink

log = logging.getLogger(__name__)

NO_PROBES = "no ST-Link probes found"
CLEANUP_SECONDS = 2.0           # bound on halting and locking after a failure (a dead link must not hang us)

# Outcome results; the journal's words where they mean the same ("error": nothing was attempted).
PASSED, FAILED, ABORTED, ERROR = "passed", "failed", "aborted", "error"


class UsageProblem(Exception):
    """The command line (or what it names) cannot work: exit 2, the message says what to change."""


@dataclass(frozen=True)
class FlashSettings:
    """What ``gangflash flash`` was asked to do, beyond the image."""

    probe_serial: str | None = None     # --probe; None: the only probe present
    probe_server: str | None = None     # "host:port" of the stlink-server for --probe tcp://...
    swd_khz: int = 4000
    options: FlashOptions = field(default_factory=FlashOptions)


@dataclass
class FlashOutcome:
    """How the run ended, with everything the result line and ``--json`` show."""

    result: str = ERROR
    probe: str | None = None
    chip: str | None = None             # "STM32F1 F10x medium-density 64 KiB"
    idcode: int | None = None
    uid: str | None = None
    seconds: float = 0.0                # from opening the backend to the end, on the loop's clock
    programmed: int = 0                 # bytes written
    skipped: int = 0                    # erase units already up to date
    units: int = 0                      # erase units the image touches
    unit_word: str = "unit"             # "page" or "sector", for the result line
    verify: str = "crc"
    cause: str | None = None
    diagnostics: str | None = None
    notes: list[str] = field(default_factory=list)
    stage: str | None = None            # stage running when it ended, if it did not finish
    cleanup: str | None = None          # what was done to the target after a failure or Ctrl-C

    @property
    def exit_code(self) -> int:
        """0 passed, 1 failed, 2 usage or configuration error, 130 interrupted (Ctrl-C)."""
        return {PASSED: 0, FAILED: 1, ERROR: 2, ABORTED: 130}[self.result]


class StageTracker:
    """A progress sink that remembers the stage in flight (named in failure causes) and the
    engine's notes (kept for ``--json`` even when the run fails), and forwards every event to the
    sink that renders it."""

    def __init__(self, sink: ProgressSink) -> None:
        self.sink = sink
        self.current: str | None = None
        self.notes: list[str] = []

    def __call__(self, event) -> None:
        if isinstance(event, StageStarted):
            self.current = event.stage
        elif isinstance(event, StageFinished) and event.stage == self.current:
            self.current = None
        elif isinstance(event, Note):
            self.notes.append(event.text)
        self.sink(event)


def choose_probe(infos: list[ProbeInfo], serial: str | None, server: str | None = None) -> ProbeInfo:
    """The probe to use: the one whose serial is ``serial``, else the only one present.

    Raises UsageProblem naming the serials present when the choice is ambiguous or the serial
    unknown (a typo is a command-line mistake, exit 2); an empty list is the caller's FAIL.
    ``server`` (an stlink-server's "host:port") only makes the message say where we looked."""
    present = ", ".join(info.serial for info in infos) or "none"
    if serial is not None:
        wanted = serial.strip().upper()
        for info in infos:
            if info.serial.upper() == wanted:
                return info
        where = f" on stlink-server {server}" if server else ""
        raise UsageProblem(f"no ST-Link probe with serial {serial}{where}; present: {present}")
    if len(infos) > 1:
        raise UsageProblem(f"{len(infos)} ST-Link probes present ({present}); choose one with --probe SERIAL")
    return infos[0]


def describe_chip(target: Target) -> str:
    """``STM32F1 F10x medium-density 64 KiB``: family, line and the flash size the chip reports."""
    return f"STM32{target.part.family} {target.part.line} {target.flash_kib} KiB"


def _unit_word(target: Target) -> str:
    return "sector" if target.part.controller.generation in ("f2", "f4", "f7", "h7") else "page"


def _diagnostics(err: BaseException, target: Target | None) -> str | None:
    """Registers behind a failure, decoded: flash status flags by name, then the core snapshot."""
    parts = []
    sr = getattr(err, "sr", None)
    if sr is not None:
        flags = f" {target.flash.describe_status(sr)}" if target is not None else ""
        parts.append(f"flash SR 0x{sr:08X}{flags}")
    snapshot = getattr(err, "snapshot", None)
    if snapshot is not None:
        parts.append(snapshot.describe())
    if not parts and isinstance(err, FlashError):
        return err.diagnostics or None
    return "; ".join(parts) or None


def transport_cause(err: TransportError, serial: str | None, stage: str | None) -> str:
    """One line for a probe-side failure: what happened, when, and which probe."""
    text = str(err)
    if err.serial is None and serial:
        text += f" (probe {serial})"
    when = f" during {stage}" if stage else ""
    if isinstance(err, ProbeGone):
        return f"probe unplugged{when}: {text}"
    if isinstance(err, UsbTimeout):
        return f"probe stopped answering (USB timeout){when}: {text}"
    return f"probe error{when}: {text}"


async def _leave_safe(target: Target) -> str:
    """Halt the core and lock the flash controller: whatever was interrupted, nobody can erase or
    program by accident afterwards. Best effort, bounded; returns what was achieved."""
    done = []
    with anyio.move_on_after(CLEANUP_SECONDS, shield=True):
        try:
            await target.core.halt(timeout=0.2)
            done.append("core halted")
        except Exception as exc:            # noqa: BLE001 - cleanup goes on with what still works
            log.debug("%s: halt during cleanup failed: %s", target.serial, exc)
        try:
            await target.flash.wait_idle(0.5, what="finishing before lock")
        except Exception as exc:            # noqa: BLE001
            log.debug("%s: flash still busy during cleanup: %s", target.serial, exc)
        try:
            await target.flash.lock_cr()
            done.append("flash controller locked")
        except Exception as exc:            # noqa: BLE001
            log.debug("%s: locking the flash controller failed: %s", target.serial, exc)
    return ", ".join(done) or "target state unknown (cleanup failed)"


async def _flash_on_probe(probe: Stlink, image: Image, settings: FlashSettings, sink: StageTracker,
                          outcome: FlashOutcome, note: Callable[[str], None]) -> None:
    async with Stage(sink, "attach"):
        target = await Target.attach(probe, swd_khz=settings.swd_khz)
    outcome.chip, outcome.idcode, outcome.uid = describe_chip(target), target.idcode, target.uid.hex()
    outcome.unit_word = _unit_word(target)
    note(f"{outcome.chip}, IDCODE 0x{target.idcode:08X}, UID {outcome.uid}")
    try:
        result: FlashResult = await flash_image(target, image, settings.options, sink)
        if not settings.options.reset_after:
            await target.flash.lock_cr()        # the engine locks on success; this covers failures too
    except BaseException as exc:
        if isinstance(exc, ImageError) or isinstance(exc, ProbeGone):
            raise                               # nothing touched yet / nobody left to talk to
        outcome.cleanup = await _leave_safe(target)
        if isinstance(exc, TargetError | TransportError):
            outcome.diagnostics = _diagnostics(exc, target)
        raise
    outcome.result = PASSED
    outcome.programmed, outcome.skipped = result.programmed, result.skipped
    outcome.units = len(result.plan.work)


async def _flash_with_backend(backend: Backend, image: Image, settings: FlashSettings,
                              sink: StageTracker, outcome: FlashOutcome,
                              note: Callable[[str], None]) -> None:
    try:
        infos = await backend.enumerate()
        if not infos:
            where = f" on stlink-server {settings.probe_server}" if settings.probe_server else ""
            outcome.result, outcome.cause = FAILED, NO_PROBES + where
            return
        info = choose_probe(infos, settings.probe_serial, settings.probe_server)
        outcome.probe = info.serial
        note(f"probe {info.serial} ({info.variant}, {info.port_path})")
        probe = await Stlink.open(await backend.open(info))     # closes the link itself on failure
        try:
            await _flash_on_probe(probe, image, settings, sink, outcome, note)
        finally:
            await probe.aclose()                                  # shielded inside
    except UsageProblem as exc:
        outcome.result, outcome.cause = ERROR, str(exc)
    except ImageError as exc:                                     # the image does not fit this chip
        outcome.result, outcome.cause = ERROR, str(exc)
    except TargetError as exc:
        stage = sink.current if sink.current and f"during {sink.current}" not in exc.detail else None
        exc.add_context(probe_serial=outcome.probe, stage=stage)
        outcome.result, outcome.cause = FAILED, str(exc)
        if isinstance(exc, ReadoutProtected) and not settings.options.unlock:
            outcome.cause += "; on the command line: --unlock"
        outcome.diagnostics = outcome.diagnostics or _diagnostics(exc, None)
    except TransportError as exc:
        outcome.result, outcome.cause = FAILED, transport_cause(exc, outcome.probe or settings.probe_serial,
                                                                sink.current)
    finally:
        outcome.stage = sink.current


async def _cancel_on_sigint(scope: anyio.CancelScope) -> None:
    """Ctrl-C becomes cancellation of the work, so its cleanup runs under anyio's rules."""
    try:
        with anyio.open_signal_receiver(signal.SIGINT) as signals:
            async for _ in signals:
                scope.cancel()
                return
    except (NotImplementedError, RuntimeError, ValueError) as exc:   # not the main thread, or no signals here
        log.debug("Ctrl-C not watched (%s); KeyboardInterrupt will end the run", exc)


async def run_flash(make_backend: Callable[[], Backend], image: Image, settings: FlashSettings,
                    sink: ProgressSink, note: Callable[[str], None]) -> FlashOutcome:
    """Program ``image`` into the one board behind the chosen probe; never raises for expected
    failures. ``sink`` receives the engine's progress events, ``note`` one-off lines for a person.
    ``make_backend`` is called inside the loop (simulated probes read the loop's clock)."""
    outcome = FlashOutcome(verify=settings.options.verify)
    tracker = StageTracker(sink)
    started = anyio.current_time()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_cancel_on_sigint, tg.cancel_scope)
        try:
            backend = make_backend()
        except Exception as exc:        # noqa: BLE001 - any libusb load failure means "no USB here"
            outcome.result, outcome.cause = FAILED, f"{NO_PROBES} (USB unavailable: {exc})"
            tg.cancel_scope.cancel()
            return outcome
        try:
            await _flash_with_backend(backend, image, settings, tracker, outcome, note)
        except anyio.get_cancelled_exc_class():
            # Only Ctrl-C cancels this group's scope; an outer cancellation propagates regardless.
            where = f" during {outcome.stage}" if outcome.stage else ""
            after = f": {outcome.cleanup}" if outcome.cleanup else ""
            outcome.result, outcome.cause = ABORTED, f"interrupted (Ctrl-C){where}{after}"
            raise
        finally:
            outcome.seconds = anyio.current_time() - started
            outcome.notes = tracker.notes
            with anyio.CancelScope(shield=True):
                await backend.aclose()
        tg.cancel_scope.cancel()
    return outcome


__all__ = ["FlashSettings", "FlashOutcome", "UsageProblem", "NO_PROBES", "choose_probe", "describe_chip",
           "transport_cause", "run_flash", "PASSED", "FAILED", "ABORTED", "ERROR"]
