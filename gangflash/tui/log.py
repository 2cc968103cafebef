"""The batch log: one line per board event worth reading (progress is left to the tiles).

``f`` shows failures only (failed, will retry, probe faults, aborts). The app hands lines over
with :meth:`BatchLog.add` (new ones, at most 20 times a second) and :meth:`BatchLog.replace`
(everything again, when the filter changes); the log never reads the model itself. Times are
offsets from the batch start on the event clock, so a log never depends on the wall clock.

The log follows the newest line; the mouse wheel scrolls back (the title says so) and forward
again. It draws its lines itself (Textual's line API) instead of being a ``RichLog``: a
``RichLog`` grows its virtual size with every line, and each growth re-lays out the whole screen,
64 tiles included; measured in ``benchmarks/tui_cpu.py`` that alone cost a quarter of a core.
Here a new line only repaints the log.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from rich.segment import Segment
from rich.text import Text
from textual import events
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from . import units
from .model import LogEntry

MAX_LINES = 1000
WHEEL_LINES = 3
KINDS = ("batch", "start", "info", "note", "pass", "fail", "retry", "fault", "abort", "operator")


def format_entry(offset: float, entry: LogEntry, style_of=lambda _kind: "") -> Text:
    """``   0:12 S3    FAIL in erase: ...``; ``style_of(kind)`` colours the text."""
    line = Text()
    line.append(f"{units.clock(offset):>7} ", style="dim")
    line.append(f"{entry.slot or '—':<5} ", style="bold")
    line.append(entry.text, style=style_of(entry.kind))
    return line


class BatchLog(Widget, can_focus=False):
    """The newest :class:`~gangflash.tui.model.LogEntry` lines that fit, optionally failures only."""

    COMPONENT_CLASSES = {f"batch-log--{kind}" for kind in KINDS}

    failures_only = reactive(False)
    back = reactive(0)                 # lines scrolled back from the newest (0: following)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._entries: deque[tuple[float, LogEntry]] = deque(maxlen=MAX_LINES)
        self._lines: deque[Strip] = deque(maxlen=MAX_LINES)
        self._width = 0
        self.border_title = self._title()

    def _title(self) -> str:
        what = "failures only (f: all)" if self.failures_only else "all events (f: failures only)"
        back = f" · {self.back} lines back (wheel down: newest)" if self.back else ""
        return f"Log · {what}{back}"

    def watch_failures_only(self) -> None:
        self.border_title = self._title()

    def watch_back(self) -> None:
        self.border_title = self._title()
        self.refresh()

    @property
    def line_count(self) -> int:
        """Lines the log holds (after wrapping)."""
        return len(self._lines)

    def text_lines(self) -> list[str]:
        """Every line the log holds, as text."""
        return [strip.text for strip in self._lines]

    # --- content --------------------------------------------------------------------------------

    def add(self, lines: Iterable[tuple[float, LogEntry]]) -> None:
        """Append (offset, entry) lines that pass the filter."""
        added = 0
        for offset, entry in lines:
            if entry.is_failure or not self.failures_only:
                self._entries.append((offset, entry))
                added += self._wrap(offset, entry)
        if added:
            if self.back:
                self.back = min(self.back + added, self._max_back())   # keep the same lines in view
            self.refresh()

    def replace(self, lines: Iterable[tuple[float, LogEntry]]) -> None:
        """Show these lines instead of what is there (after the filter changed)."""
        self._entries.clear()
        self._lines.clear()
        self.back = 0
        self.add(lines)
        self.refresh()

    def _wrap(self, offset: float, entry: LogEntry) -> int:
        if not self._width:
            return 0                                     # not sized yet: wrapped on the first resize
        text = format_entry(offset, entry, self._style_of)
        console = self.app.console
        wrapped = text.wrap(console, self._width, overflow="fold")
        for line in wrapped:
            self._lines.append(Strip(list(line.render(console)), line.cell_len).adjust_cell_length(self._width))
        return len(wrapped)

    def _style_of(self, kind: str):
        return self.get_component_rich_style(f"batch-log--{kind}", partial=True)

    def on_resize(self, event: events.Resize) -> None:
        if self.size.width != self._width:
            self._width = self.size.width
            self._lines.clear()
            for offset, entry in self._entries:
                self._wrap(offset, entry)
        self.back = min(self.back, self._max_back())
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        if self._width:                                  # colours changed: draw the lines again
            self._lines.clear()
            for offset, entry in self._entries:
                self._wrap(offset, entry)

    # --- drawing and scrolling ------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        height = self.size.height
        start = max(0, len(self._lines) - height - self.back)
        index = start + y
        if 0 <= index < len(self._lines):
            return self._lines[index]
        return Strip([Segment(" " * self.size.width)], self.size.width)

    def _max_back(self) -> int:
        return max(0, len(self._lines) - self.size.height)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        event.stop()
        self.back = min(self.back + WHEEL_LINES, self._max_back())

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        event.stop()
        self.back = max(self.back - WHEEL_LINES, 0)
