"""The detail pane: everything about the selected board, for the technician deciding what to do.

Identity (probe, chip, IDCODE, flash size), the attempt's journal row (row id, serial number
assigned, UID), a stage timeline with durations (bars scaled to the longest stage), the full
failure cause and its diagnostics, the board's notes, and earlier attempts in the slot.
:func:`describe` builds the text from a :class:`~gangflash.tui.model.DetailView` alone, so it is
testable without a screen; :class:`BoardDetail` shows it and redraws only when the view changed.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.widgets import Static

from . import units
from .model import DetailView, Status

TIMELINE_CELLS = 12
STAGE_MARKS = {"done": "", "running": "▶ ", "failed": "✘ ", "aborted": "■ "}

StyleOf = Callable[[str], Style | str]


def describe(view: DetailView | None, style_of: StyleOf = lambda _name: "") -> Text:
    """The pane's text for ``view``; ``style_of`` maps a part (``"heading"``, ``"-fail"``...) to a style."""
    if view is None:
        return Text("No board selected.", style="dim")
    text = Text()
    text.append(view.slot, style="bold")
    text.append("  ")
    text.append(f" {view.status.value} ", style=style_of(view.status.css))
    if view.elapsed is not None and view.status is not Status.WAITING:
        text.append(f"  {units.clock(view.elapsed)}")
    text.append("\n")
    _field(text, "probe", view.probe or "—")
    if view.chip:
        chip = view.chip
        if view.idcode is not None:
            chip += f" · IDCODE 0x{view.idcode:08X}"
        if view.flash_size:
            chip += f" · {view.flash_size // 1024} KiB flash"
        _field(text, "chip", chip)
    else:
        _field(text, "chip", "not identified yet")

    _heading(text, "Journal", style_of)
    if view.attempt:
        row = f"row {view.attempt_id}" if view.attempt_id is not None else "no row"
        _field(text, "attempt", f"{view.attempt} ({row})")
    _field(text, "serial no.", view.serial_number or "none assigned")
    _field(text, "UID", view.uid or "—")

    if view.stages:
        _heading(text, "Stages", style_of)
        longest = max((stage.seconds or 0.0) for stage in view.stages) or 1.0
        for stage in view.stages:
            cells = 0 if not stage.seconds else max(1, round(TIMELINE_CELLS * stage.seconds / longest))
            text.append(f"  {stage.name:<13}")
            text.append("█" * cells, style=style_of("bar"))
            text.append(" " * (TIMELINE_CELLS - cells + 1))
            mark = STAGE_MARKS.get(stage.state, "")
            text.append(f"{mark}{units.duration(stage.seconds)}",
                        style=style_of(Status.FAILED.css) if stage.state == "failed" else "")
            if stage.state == "running" and stage.name == view.stage and view.done is not None and view.total:
                progress = units.progress(view.done, view.total, in_bytes=view.in_bytes)
                text.append(f"  {progress} {units.rate(view.rate)}".rstrip())
            text.append("\n")
        if view.status is Status.PASSED and view.rate:
            text.append(f"  program average {units.rate(view.rate)}\n", style="dim")

    if view.cause:
        title = "Abort reason" if view.status is Status.ABORTED else "Cause"
        if view.failed_stage:
            title += f" (in {view.failed_stage})"
        _heading(text, title, style_of)
        text.append(f"  {view.cause}\n", style=style_of("cause"))
    if view.diagnostics:
        _heading(text, "Diagnostics", style_of)
        for line in view.diagnostics.splitlines():
            text.append(f"  {line}\n")
    if view.notes:
        _heading(text, "Notes", style_of)
        for since, note in view.notes:
            text.append(f"  {f'+{since:.2f} s':>9}  ", style="dim")
            text.append(f"{note}\n")
    if view.history:
        _heading(text, "Earlier attempts in this slot", style_of)
        for past in view.history:
            text.append(f"  #{past.attempt:<3}")
            text.append(f" {past.status.value} ", style=style_of(past.status.css))
            text.append(f" {units.clock(past.seconds):>5}  {past.detail}\n")
    text.rstrip()
    return text


def _heading(text: Text, title: str, style_of: StyleOf) -> None:
    text.append("\n")
    text.append(title, style=style_of("heading"))
    text.append("\n")


def _field(text: Text, name: str, value: str) -> None:
    text.append(f"  {name:<11}", style="dim")
    text.append(f"{value}\n")


class BoardDetail(VerticalScroll, can_focus=False):
    """The pane beside the grid (``enter`` shows or hides it). The app sets :attr:`view`."""

    COMPONENT_CLASSES = {"board-detail--heading", "board-detail--bar", "board-detail--cause",
                         *(f"board-detail-{status.css}" for status in Status)}

    view: reactive[DetailView | None] = reactive(None, repaint=False)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.body = Static(describe(None), id="detail-body")

    def compose(self) -> ComposeResult:
        yield self.body

    def _style_of(self, part: str) -> Style:
        name = f"board-detail-{part}" if part.startswith("-") else f"board-detail--{part}"
        return self.get_component_rich_style(name)

    def watch_view(self, view: DetailView | None) -> None:
        self.body.update(describe(view, self._style_of))
        self.border_title = f"Board {view.slot}" if view is not None else "Board"
