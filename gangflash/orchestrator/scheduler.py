"""A batch: one task per board, every task owned by one task group, one event stream.

A failing board never stops the others (its task turns typed errors into ``BoardFailed`` and a
journal row); retries follow the config's policy; a stop request lets boards in flight reach a
safe point within a bound, then cancels them, and each cancelled board is left locked and halted
and journaled as aborted. Identity is pinned: slots bind probe serials (and USB port paths, the
physical fixture positions), and a run with two probes answering to one unbound serial refuses
to start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import anyio

from ..target.errors import ImageError, TargetError
from ..target.flash.errors import ReadoutProtected, WriteProtected
from ..transport.backend import Backend, ProbeInfo
from ..transport.errors import ProbeGone, TransportError, UsbTimeout
from ..transport.stlink import Stlink, StlinkError
from . import events as ev
from .config_schema import BatchConfig, SlotSpec
from .journal_async import AsyncJournal
from .pipeline import AttemptContext, BoardRejected, Pipeline

log = logging.getLogger(__name__)

FINAL_ERRORS = (WriteProtected, ReadoutProtected, BoardRejected, ImageError)   # a retry cannot help
PRESENCE_POLL_S = 0.5
RESCAN_S = 1.0                  # auto mode: how often to look for probes plugged in
MIN_TARGET_VOLTS = 1.0


class BatchError(Exception):
    """The batch cannot start (identity conflicts, no probes); nothing was touched."""


@dataclass
class BatchSummary:
    passed: int = 0
    failed: int = 0
    aborted: int = 0

    @property
    def exit_code(self) -> int:
        return 0 if self.failed == 0 and self.aborted == 0 else 1


@dataclass
class Slot:
    label: str
    info: ProbeInfo
    result: str = "idle"                  # idle, running, passed, failed, aborted
    wake: anyio.Event = field(default_factory=anyio.Event)
    timeouts: int = 0                     # consecutive USB timeouts (a wedged probe)
    counted: str | None = None            # the outcome this board counts as in the summary


def _slot_matches(spec: SlotSpec, info: ProbeInfo) -> bool:
    """Whether a probe found by serial is the slot's: a ``tcp://`` slot takes only probes behind
    its stlink-server, a plain serial only probes reached directly (USB, simulator), and a slot
    bound to a port path only the probe at that port."""
    if spec.server is not None:
        return info.backend == "tcp" and info.port_path.startswith(f"tcp://{spec.server}/")
    if info.backend == "tcp":
        return False
    return spec.port is None or info.port_path == spec.port


class Batch:
    """Runs one batch config over the probes a backend serves."""

    def __init__(self, config: BatchConfig, backend_factory: Callable[[], Backend], *,
                 journal_path=None, keep_alive: bool = False, stop_grace: float = 10.0,
                 auto: bool | None = None) -> None:
        self.config = config
        self.events = ev.EventBus()
        self._backend_factory = backend_factory
        self.backend: Backend | None = None
        self.journal_path = journal_path or config.journal
        self.keep_alive = keep_alive
        self.stop_grace = stop_grace
        self.auto = (config.mode == "auto") if auto is None else auto
        self.summary = BatchSummary()
        self.slots: list[Slot] = []
        self.in_flight = 0
        self._paused = False
        self._resume = anyio.Event()
        self._stopping = False
        self._stop_event: anyio.Event | None = None
        self._journal: AsyncJournal | None = None
        self._batch_id: int | None = None
        self._pipeline = Pipeline(config, self.events, allocate_serial=self._allocate_serial,
                                  record=self._record_identity)

    # ------------------------------------------------------------------ controls (dashboard keys)
    def request_retry(self, slots: list[str] | None = None) -> None:
        for slot in self.slots:
            if slot.result in ("failed", "aborted") and (slots is None or slot.label in slots):
                slot.result = "retry"
                slot.wake.set()

    def request_restart(self) -> None:
        for slot in self.slots:
            if slot.result != "running":
                slot.result = "retry"
                slot.wake.set()

    def set_paused(self, paused: bool) -> None:
        self._paused = paused
        if not paused:
            self._resume.set()
            self._resume = anyio.Event()

    def set_auto(self, auto: bool) -> None:
        self.auto = auto
        for slot in self.slots:
            slot.wake.set()

    def request_stop(self) -> None:
        self._stopping = True
        if self._stop_event is not None:
            self._stop_event.set()
        for slot in self.slots:
            slot.wake.set()
        self.set_paused(False)

    # ------------------------------------------------------------------ the run
    async def prepare(self) -> None:
        """Open the backend and bind slots to probes; raises BatchError (nothing touched yet).
        ``run`` calls it when the caller has not."""
        if self.backend is not None:
            return
        self.backend = self._backend_factory()
        try:
            self.slots = await self.resolve_slots()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.backend.aclose()
            self.backend = None
            raise

    async def run(self) -> BatchSummary:
        cfg = self.config
        self._stop_event = anyio.Event()
        if self._stopping:
            self._stop_event.set()
        await self.prepare()
        self._journal = await AsyncJournal.open(self.journal_path)
        try:
            self._batch_id = await self._journal.start_batch(
                cfg.name, config_path=str(cfg.path), firmware_path=str(cfg.firmware.path),
                firmware_sha256=cfg.firmware.sha256)
            expected = cfg.target.chip or (f"STM32{cfg.target.family}" if cfg.target.family else "any")
            await self.events.publish(ev.BatchStarted(
                cfg.name, tuple(s.label for s in self.slots), cfg.firmware.path.name, cfg.firmware.sha256,
                expected, "auto" if self.auto else "batch"))
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._stop_watch, tg.cancel_scope)
                async with anyio.create_task_group() as boards:
                    for slot in self.slots:
                        boards.start_soon(self._slot_task, slot)
                    if self.auto and cfg.all_probes:
                        boards.start_soon(self._rescan, boards)
                tg.cancel_scope.cancel()
            await self.events.publish(ev.BatchFinished(self.summary.passed, self.summary.failed,
                                                       self.summary.aborted))
            await self._journal.end_batch(self._batch_id)
        finally:
            with anyio.CancelScope(shield=True):
                await self._journal.aclose()
                await self.events.aclose()
                await self.backend.aclose()
        return self.summary

    async def _stop_watch(self, scope: anyio.CancelScope) -> None:
        await self._stop_event.wait()
        await anyio.sleep(self.stop_grace)             # boards in flight may reach a safe point
        if self.in_flight:
            log.warning("stop: %d board(s) still in flight after %.0f s: aborting them", self.in_flight,
                        self.stop_grace)
        scope.cancel()

    async def _rescan(self, boards) -> None:
        """Auto mode with every probe present: a probe plugged in becomes a new slot; a probe
        unplugged retires its slot (its task ends on ProbeGone)."""
        while not self._stopping and self.auto:
            with anyio.move_on_after(RESCAN_S):
                await self._stop_event.wait()
            if self._stopping:
                return
            try:
                infos = await self.backend.enumerate()
            except TransportError as exc:
                log.warning("probe rescan failed: %s", exc)
                continue
            known = {(s.info.serial, s.info.port_path) for s in self.slots}
            for info in infos:
                if (info.serial, info.port_path) in known:
                    continue
                label = self._sim_labels().get(info.serial) or f"{self.config.label_prefix}{len(self.slots) + 1}"
                slot = Slot(label, info)
                self.slots.append(slot)
                log.info("probe %s plugged in at %s: slot %s", info.serial, info.port_path, label)
                self.events.emit(ev.BoardNote(label, f"probe {info.serial} plugged in at {info.port_path}"))
                boards.start_soon(self._slot_task, slot)

    async def resolve_slots(self) -> list[Slot]:
        """Bind slots to the probes present; refuse ambiguous identities before touching anything."""
        cfg = self.config
        try:
            infos = await self.backend.enumerate()
        except TransportError as exc:       # e.g. an stlink-server that is not running
            raise BatchError(f"cannot list the probes: {exc}") from exc
        by_serial: dict[str, list[ProbeInfo]] = {}
        for info in infos:
            by_serial.setdefault(info.serial, []).append(info)
        if cfg.all_probes:
            dup = {s: i for s, i in by_serial.items() if len(i) > 1}
            if dup:
                serial, found = next(iter(dup.items()))
                raise BatchError(f"two probes present serial {serial} (ports {found[0].port_path} and "
                                 f"{found[1].port_path}): list them as [[slot]] entries bound with "
                                 f"port = \"...\" so each fixture position keeps its identity")
            if not infos:
                raise BatchError("no ST-Link probes found")
            labels = self._sim_labels()
            return [Slot(labels.get(info.serial) or f"{cfg.label_prefix}{i + 1}", info)
                    for i, info in enumerate(infos)]
        slots = []
        for spec in cfg.slots:
            found = [i for i in by_serial.get(spec.serial or "", []) if _slot_matches(spec, i)]
            if len(found) > 1:
                raise BatchError(f"slot {spec.label}: two probes present serial {spec.serial} (ports "
                                 f"{found[0].port_path} and {found[1].port_path}); bind the slot with "
                                 f"port = \"{found[0].port_path}\" (clone probes often share a serial)")
            if not found:
                where = (f" at port {spec.port}" if spec.port else
                         f" on stlink-server {spec.server}" if spec.server else "")
                present = ", ".join(sorted({i.port_path if i.backend == "tcp" else i.serial
                                            for i in infos})) or "none"
                raise BatchError(f"slot {spec.label}: probe {spec.serial}{where} not found (present: {present})")
            slots.append(Slot(spec.label, found[0]))
        return slots

    def _sim_labels(self) -> dict[str, str]:
        sim = self.config.sim
        return {b.serial: b.label for b in (sim.boards if sim else ()) if b.label}

    # ------------------------------------------------------------------ one slot
    async def _slot_task(self, slot: Slot) -> None:
        while not self._stopping:
            if self.auto:
                await self.events.publish(ev.BoardWaiting(slot.label, slot.info.serial))
                if not await self._wait_presence(slot, present=True):
                    return
                await self._board(slot)
                await self._wait_presence(slot, present=False)
                continue
            if slot.result in ("idle", "retry"):
                await self._board(slot)
            if not self.keep_alive:
                return
            slot.wake = anyio.Event()
            await slot.wake.wait()

    async def _wait_presence(self, slot: Slot, *, present: bool) -> bool:
        """Auto mode: poll the probe until a board is there (target voltage up, IDCODE readable)
        or gone. False when the batch stops or the probe disappears."""
        while not self._stopping and self.auto:
            try:
                there = await self._board_present(slot)
            except (ProbeGone, TransportError) as exc:
                if isinstance(exc, ProbeGone) or slot.info not in await self.backend.enumerate():
                    log.info("probe %s of slot %s is gone: slot retired", slot.info.serial, slot.label)
                    self.events.emit(ev.BoardNote(slot.label, f"probe {slot.info.serial} unplugged: slot retired"))
                    return False
                there = False
            if there == present:
                return True
            with anyio.move_on_after(PRESENCE_POLL_S):
                await slot.wake.wait()
            slot.wake = anyio.Event()
        return False

    async def _board_present(self, slot: Slot) -> bool:
        try:
            async with await Stlink.open(await self.backend.open(slot.info)) as stlink:
                volts = await stlink.target_voltage()
                if volts is not None and volts < MIN_TARGET_VOLTS:
                    return False
                await stlink.connect(swd_khz=self.config.pipeline.swd_khz)
                return bool(await stlink.read_idcode())
        except ProbeGone:
            raise
        except (StlinkError, TransportError):
            return False

    async def _board(self, slot: Slot) -> None:
        """Every attempt the retry policy allows, for the board now in the slot."""
        retry = self.config.retry
        for attempt in range(1, retry.attempts + 1):
            while self._paused and not self._stopping:
                await self._resume.wait()
            if self._stopping:
                return
            outcome, final = await self._attempt(slot, attempt, retry.attempts)
            if outcome in ("passed", "aborted") or final:
                return
            await anyio.sleep(retry.delay_s)

    async def _attempt(self, slot: Slot, attempt: int, attempts: int) -> tuple[str, bool]:
        journal, cfg = self._journal, self.config
        attempt_id = await journal.begin_attempt(self._batch_id, slot.label, slot.info.serial,
                                                 port_path=slot.info.port_path,
                                                 firmware_sha256=cfg.firmware.sha256)
        ctx = AttemptContext(slot.label, attempt_id)
        slot.result = "running"
        self.in_flight += 1
        started = anyio.current_time()
        await self.events.publish(ev.BoardStarted(slot.label, slot.info.serial, attempt, attempt_id))
        cause = diagnostics = None
        final = probe_fault = False
        try:
            with anyio.fail_after(cfg.pipeline.stage_timeout_s * 10):
                link = await self.backend.open(slot.info)
                async with await Stlink.open(link) as stlink:
                    ctx.stlink = stlink
                    await self._pipeline.run(stlink, ctx)
            slot.timeouts = 0
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self._abort(slot, ctx)
            raise
        except TimeoutError:
            cause = f"stage {ctx.stage} did not finish within its time limit"
        except TargetError as err:
            cause = err.detail
            diagnostics = getattr(err, "diagnostics", "") or None
            final = isinstance(err, FINAL_ERRORS)
        except ProbeGone as err:
            lost = "lost" if slot.info.backend == "tcp" else "unplugged"    # a dropped connection
            cause, probe_fault, final = f"probe {slot.info.serial} {lost} ({err.detail})", True, True
        except UsbTimeout as err:
            slot.timeouts += 1
            cause, probe_fault = f"probe {slot.info.serial} does not answer ({err.detail})", True
            if slot.timeouts >= 2:
                cause += ": wedged; tried one USB reset of the probe"
                await self._reset_probe(slot)
                final = True
        except TransportError as err:
            cause = f"probe {slot.info.serial}: {err}"
        finally:
            self.in_flight -= 1
        seconds = anyio.current_time() - started
        if cause is None:
            slot.result = "passed"
            self._count(slot, "passed")
            await journal.finish_attempt(attempt_id, "passed", stages=ctx.stages,
                                         serial_written=ctx.serial_written,
                                         on_failure=self._on_failure())
            await self.events.publish(ev.BoardPassed(slot.label, seconds, ctx.serial_number))
            return "passed", True
        will_retry = not final and attempt < attempts and not self._stopping
        log.info("%s: failed in %s: %s", slot.label, ctx.stage, cause)
        await journal.finish_attempt(attempt_id, "failed", cause, diagnostics, ctx.stages,
                                     serial_written=ctx.serial_written, on_failure=self._on_failure())
        await self.events.publish(ev.BoardFailed(slot.label, ctx.stage, cause, diagnostics or "",
                                                 will_retry=will_retry, probe_fault=probe_fault))
        if not will_retry:
            slot.result = "failed"
            self._count(slot, "failed")
        return "failed", final

    def _count(self, slot: Slot, outcome: str) -> None:
        """The summary counts each board once, by its latest outcome (a failed board retried
        from the dashboard and then passed is a pass). In auto mode every board is a new one."""
        if slot.counted is not None and not self.auto:
            setattr(self.summary, slot.counted, getattr(self.summary, slot.counted) - 1)
        setattr(self.summary, outcome, getattr(self.summary, outcome) + 1)
        slot.counted = outcome

    def _on_failure(self) -> str:
        sn = self.config.serial_number
        return sn.on_failure if sn else "burn"

    async def _abort(self, slot: Slot, ctx: AttemptContext) -> None:
        """Cancelled mid-board: leave it locked and halted, never half-unlocked; journal it."""
        with anyio.move_on_after(2.0):
            target = getattr(ctx, "target", None)
            try:
                if target is not None:
                    await target.core.halt()
                    await target.flash.lock_cr()
            except Exception as exc:                      # noqa: BLE001 - best effort on the way out
                log.warning("%s: could not secure the target while aborting: %s", slot.label, exc)
        slot.result = "aborted"
        self._count(slot, "aborted")
        await self._journal.finish_attempt(ctx.attempt_id, "aborted", f"aborted during {ctx.stage}",
                                           stages=ctx.stages, serial_written=ctx.serial_written,
                                           on_failure=self._on_failure())
        self.events.emit(ev.BoardAborted(slot.label, f"stopped during {ctx.stage}"))

    async def _reset_probe(self, slot: Slot) -> None:
        try:
            link = await self.backend.open(slot.info)
            try:
                await link.reset()
            finally:
                await link.aclose()
        except TransportError as exc:
            log.warning("%s: USB reset of probe %s failed: %s", slot.label, slot.info.serial, exc)

    # ------------------------------------------------------------------ journal hooks
    async def _allocate_serial(self, ctx: AttemptContext) -> str:
        return await self._journal.allocate_serial(ctx.attempt_id, self.config.serial_number)

    async def _record_identity(self, ctx: AttemptContext) -> None:
        await self._journal.update_attempt(ctx.attempt_id, chip_idcode=ctx.idcode, uid=ctx.uid)
        others = [i for i in await self._journal.uid_seen(self._batch_id, ctx.uid) if i != ctx.attempt_id]
        for other in others:
            record = await self._journal.attempt(other)
            if record.slot != ctx.slot or record.result == "passed":
                self.events.emit(ev.BoardNote(
                    ctx.slot, f"chip UID {ctx.uid.hex()} already seen in this batch (slot {record.slot}, "
                              f"attempt {other}): the same board flashed twice, or a fake part"))
                break
