"""The headless view of a batch: one line per board event, or one JSON object per event.

Used when stdout is not a terminal (CI farms, logs) or with ``--headless``. It formats; the CLI
writes. Progress events are thinned to every 25 % so a log stays readable.
"""

from __future__ import annotations

import dataclasses
import json

from . import events as ev


class LinePrinter:
    """Turns events into text lines (None for events not worth a line)."""

    def __init__(self, *, as_json: bool = False) -> None:
        self.as_json = as_json
        self._start: float | None = None
        self._last_quarter: dict[tuple[str, str], int] = {}

    def format(self, event: ev.Event) -> str | None:
        if self._start is None:
            self._start = event.at
        if self.as_json:
            record = {"event": type(event).__name__, **dataclasses.asdict(event)}
            record["at"] = round(event.at - self._start, 6)
            return json.dumps(record, sort_keys=True)
        t = f"[{event.at - self._start:8.3f}]"
        match event:
            case ev.BatchStarted():
                return (f"{t} batch {event.batch}: {len(event.slots)} slot(s), firmware {event.firmware} "
                        f"(sha256 {event.firmware_sha256[:12]}), chip {event.chip_expected}, {event.mode} mode")
            case ev.BoardWaiting():
                return f"{t} {event.slot}: waiting for a board (probe {event.probe_serial})"
            case ev.BoardStarted():
                return f"{t} {event.slot}: attempt {event.attempt} on probe {event.probe_serial}"
            case ev.BoardIdentified():
                return (f"{t} {event.slot}: {event.chip}, {event.flash_size // 1024} KiB flash, "
                        f"IDCODE 0x{event.idcode:08X}, UID {event.uid}")
            case ev.StageStarted():
                return None
            case ev.StageProgress():
                quarter = 4 * event.done // max(event.total, 1)
                key = (event.slot, event.stage)
                if quarter <= self._last_quarter.get(key, 0) or event.done >= event.total:
                    return None
                self._last_quarter[key] = quarter
                return f"{t} {event.slot}: {event.stage} {100 * event.done // max(event.total, 1)}%"
            case ev.StageFinished():
                self._last_quarter.pop((event.slot, event.stage), None)
                return f"{t} {event.slot}: {event.stage} done in {event.seconds:.3f} s"
            case ev.BoardNote():
                return f"{t} {event.slot}: {event.text}"
            case ev.BoardPassed():
                serial = f", serial number {event.serial_number}" if event.serial_number else ""
                return f"{t} {event.slot}: PASS in {event.seconds:.2f} s{serial}"
            case ev.BoardFailed():
                what = "PROBE FAULT" if event.probe_fault else "FAIL"
                retry = " (will retry)" if event.will_retry else ""
                line = f"{t} {event.slot}: {what} in {event.stage}: {event.cause}{retry}"
                if event.diagnostics:
                    line += f"\n{' ' * len(t)} {event.slot}:   {event.diagnostics}"
                return line
            case ev.BoardAborted():
                return f"{t} {event.slot}: ABORTED ({event.reason})"
            case ev.BatchFinished():
                return f"{t} batch finished: {event.passed} passed, {event.failed} failed, {event.aborted} aborted"
        return None
