"""One board's tile: the app sets :attr:`BoardTile.view`, the tile draws three (tall: four) lines.

::

    ▌S3  F412ZG  try 2        …FF0668     heading: slot, chip found, tries, probe serial
    ▌ RUNNING  program           0:07     status: the state word, stage, elapsed
    ▌██████░░░░░  9.6/16K  24KB/s         progress: bar, bytes, rate (or the cause, the serial)

The state word is always there (PASS, FAIL, PROBE FAULT, WAITING FOR BOARD...): colour repeats it,
never replaces it. Each line is built by a small pure function (:func:`heading_line`,
:func:`status_line`, :func:`progress_lines`) as *runs*: (text, part) pairs exactly one line wide,
where the part names a style ("word", "bar", "cause"...). The widget maps parts to styles from
``dashboard.tcss`` (component classes ``tile--<state>``, ``tile--<state>-word``... of the grid,
looked up once for all tiles by :class:`TilePalette`) and draws the runs with Textual's line API,
keeping the strips until the view changes.

Why one line-API widget rather than three line widgets, and why state colours are component
classes of the grid looked up at draw time rather than CSS classes toggled on each tile: with 64
boards reporting progress, every running tile changes on every frame. Measured with
``benchmarks/tui_cpu.py``: three ``render()`` widgets per tile, a restyle on each state change and
27 component classes per tile (each restyled on focus changes and mounts) took a whole core at 64
boards; strips built from the runs with shared styles cost a small fraction of that.
"""

from __future__ import annotations

import textwrap

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.geometry import Region
from textual.widget import Widget

from . import units
from .model import Status, TileView

STAGE_SHOWN = frozenset({Status.RUNNING, Status.RETRYING, Status.FAILED, Status.PROBE_FAULT, Status.ABORTED})
CAUSE_SHOWN = frozenset({Status.RETRYING, Status.FAILED, Status.PROBE_FAULT, Status.ABORTED})
EDGE = "▌"
BAR_FULL = "█"
BAR_EMPTY = "░"

Run = tuple[str, str]            # (text, part): part names the style the widget draws it in
Line = list[Run]


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells, an ellipsis marking the cut."""
    if width <= 0:
        return ""
    if cell_len(text) <= width:
        return text
    return set_cell_size(text, width - 1) + "…"


def spread(left: Line, right: Line, width: int) -> Line:
    """``left`` then ``right`` flush right on a line of exactly ``width`` cells; left is cut first."""
    right_len = sum(cell_len(text) for text, _ in right)
    if right_len > width:
        right, right_len = [], 0
    room = width - right_len - (1 if right_len else 0)
    out: Line = []
    used = 0
    for text, part in left:
        if used >= room:
            break
        piece = fit(text, room - used) if used + cell_len(text) > room else text
        out.append((piece, part))
        used += cell_len(piece)
    out.append((" " * (width - used - right_len), "text"))
    return out + right


def heading_line(view: TileView, width: int, *, selected: bool = False) -> Line:
    """Slot label (``▶`` when selected), chip found, tries past the first, probe serial's tail."""
    left: Line = [(("▶ " if selected else "") + view.slot, "heading-bold")]
    if view.chip:
        left.append(("  " + units.short_chip(view.chip), "heading"))
    if view.attempt > 1:
        left.append((f"  try {view.attempt}", "heading-italic"))
    used = sum(cell_len(text) for text, _ in left)
    room = width - used - 1
    probe = units.tail(view.probe, min(room, 8)) if view.probe and room >= 4 else ""
    line = spread(left, [(probe, "heading-dim")] if probe else [], width)
    return [(text, "heading" if part == "text" else part) for text, part in line]


def status_line(view: TileView, width: int) -> Line:
    """The state word, the stage (while it matters) and the elapsed time, right-aligned."""
    left: Line = [(f" {view.status.value} ", "word")]
    if view.stage and view.status in STAGE_SHOWN:
        left.append((" " + view.stage, "text"))
    elapsed = units.clock(view.elapsed)
    if cell_len(left[0][0]) + 1 + len(elapsed) > width:
        elapsed = ""                                    # the state word matters more than the time
    return spread(left, [(elapsed, "text")] if elapsed else [], width)


def progress_lines(view: TileView, width: int, height: int = 1) -> list[Line]:
    """Running: the bar with bytes (or steps) and KB/s, and under it (tall tiles) the last note.
    Otherwise text over ``height`` lines: the cause, the abort reason, or the serial number."""
    if view.status is Status.RUNNING and view.done is not None and view.total:
        lines = [_bar(view, width)]
        if height > 1:
            lines += _wrapped(view.message, width, height - 1, "info")
        return lines
    if view.status is Status.PASSED:                    # the serial number first; numbers if room
        text = view.message
        size = units.size(view.total) if view.total else ""
        numbers = ""
        for numbers in (f"{size} {units.rate(view.rate)}".strip(), units.rate(view.rate), ""):
            if cell_len(text) + 1 + len(numbers) <= width or not numbers:
                break
        return [spread([(text, "text")], [(numbers, "dim")] if numbers else [], width)]
    if view.status is Status.WAITING:
        return _wrapped("place the next board", width, height, "info")
    return _wrapped(view.message, width, height, "cause" if view.status in CAUSE_SHOWN else "info")


def tile_lines(view: TileView, width: int, height: int = 3, *, selected: bool = False) -> list[Line]:
    """Every line of the tile, each exactly ``width`` cells (the edge is not included)."""
    lines = [heading_line(view, width, selected=selected), status_line(view, width),
             *progress_lines(view, width, max(height - 2, 1))]
    while len(lines) < height:
        lines.append([(" " * width, "text")])
    return lines[:height]


def _bar(view: TileView, width: int) -> Line:
    done, total = min(view.done or 0, view.total or 0), view.total or 1
    numbers = units.progress(done, total, in_bytes=view.in_bytes)
    speed = units.rate(view.rate)
    right = f"{numbers} {speed}" if speed else numbers
    cells = width - len(right) - 1
    if cells < 4:                                       # too narrow for the numbers: bar and percent
        right = f"{100 * done // total}%"
        cells = width - len(right) - 1
    filled = round(cells * done / total) if cells > 0 else 0
    line = [(BAR_FULL * filled, "bar"), (BAR_EMPTY * max(cells - filled, 0), "empty"), (" " + right, "text")]
    return spread(line, [], width)


def _wrapped(text: str, width: int, height: int, part: str) -> list[Line]:
    """``text`` over at most ``height`` lines, cut with an ellipsis (tall tiles show more cause)."""
    if height <= 1:
        return [spread([(fit(text, width), part)], [], width)]
    lines = textwrap.wrap(text, max(width, 1), break_on_hyphens=False) or [""]
    if len(lines) > height:
        lines = lines[:height]
        last = lines[-1]
        lines[-1] = last + "…" if cell_len(last) < width else fit(last + "…", width)
    return [spread([(line, part)], [], width) for line in lines]


# parts drawn with a component class of the tile's state, or a fixed one, or a Rich attribute
STATE_PARTS = {"edge": "", "cause": "", "word": "-word"}
FIXED_PARTS = {"bar": "tile--bar", "empty": "tile--empty", "info": "tile--info"}
ATTRIBUTE_PARTS = {"text": Style(), "dim": Style(dim=True), "heading": Style(), "heading-bold": Style(bold=True),
                   "heading-italic": Style(italic=True), "heading-dim": Style(dim=True)}
PALETTE_CLASSES = frozenset({"tile--heading", "tile--heading-selected", "tile--bar", "tile--empty", "tile--info",
                             *(f"tile-{status.css}" for status in Status),
                             *(f"tile-{status.css}-word" for status in Status),
                             *(f"tile-{status.css}-tint" for status in Status)})


class TilePalette:
    """Styles of tile parts by state, from the component classes of the widget that owns the tiles
    (the grid: looked up once for all tiles, not per tile). Cleared when the CSS or theme changes."""

    def __init__(self, owner: Widget) -> None:
        self.owner = owner
        self._styles: dict[tuple[str, Status, bool], Style] = {}

    def clear(self) -> None:
        self._styles.clear()

    def style(self, part: str, status: Status, selected: bool) -> Style:
        key = (part, status, selected)
        style = self._styles.get(key)
        if style is None:
            component = self.owner.get_component_rich_style
            style = component(f"tile-{status.css}-tint")
            if part.startswith("heading"):             # translucent backgrounds: blended, so not partial
                style += component("tile--heading-selected" if selected else "tile--heading")
            if part in STATE_PARTS:
                style += component(f"tile-{status.css}{STATE_PARTS[part]}", partial=True)
            elif part in FIXED_PARTS:
                style += component(FIXED_PARTS[part], partial=True)
            else:
                style += ATTRIBUTE_PARTS.get(part, Style())
            self._styles[key] = style
        return style


class BoardTile(Widget):
    """One slot on the grid. The app sets :attr:`view`; an equal view does not repaint."""

    view: reactive[TileView] = reactive(TileView(""), repaint=False)
    selected = reactive(False, repaint=False)

    class Clicked(Message):
        """The technician clicked this tile (the grid selects it)."""

        def __init__(self, slot: str) -> None:
            super().__init__()
            self.slot = slot

    def __init__(self, slot: str, palette: TilePalette, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.slot = slot
        self.palette = palette
        self._lines: list[tuple[Status, tuple[Run, ...]]] = []    # what each strip was drawn from
        self._strips: list[Strip] | None = None
        self._drawn_size = (0, 0)
        self.view = TileView(slot)

    def watch_view(self) -> None:
        self._update()

    def watch_selected(self) -> None:
        self._update()

    def invalidate(self) -> None:
        """Draw again from scratch (the palette or the size changed)."""
        self._strips = None
        self.refresh()

    def on_resize(self) -> None:
        self.invalidate()

    def lines(self) -> list[str]:
        """The tile's text, line by line (what a screen reader, or a test, reads)."""
        width = max(self.size.width - 2, 1)
        height = max(self.size.height, 3)
        return [EDGE + " " + "".join(text for text, _ in line)
                for line in tile_lines(self.view, width, height, selected=self.selected)]

    def _runs(self, width: int, height: int) -> list[tuple[Status, tuple[Run, ...]]]:
        status = self.view.status
        return [(status, tuple(line))
                for line in tile_lines(self.view, max(width - 2, 1), height, selected=self.selected)]

    def _strip(self, number: int, status: Status, line: tuple[Run, ...], width: int) -> Strip:
        style, selected = self.palette.style, self.selected
        segments = [Segment(EDGE, style("edge", status, selected)),
                    Segment(" ", style("heading" if number == 0 else "text", status, selected))]
        segments += [Segment(text, style(part, status, selected)) for text, part in line if text]
        return Strip(segments, width)

    def _update(self) -> None:
        """Redraw only the lines whose text or state changed (a progress tick is one line)."""
        if self._strips is None:
            self.refresh()
            return
        width, height = self._drawn_size
        lines = self._runs(width, height)
        dirty = []
        for number, line in enumerate(lines):
            if number >= len(self._lines) or line != self._lines[number]:
                self._strips[number] = self._strip(number, *line, width)
                dirty.append(Region(0, number, width, 1))
        self._lines = lines
        if dirty:
            self.refresh(*dirty)

    def render_line(self, y: int) -> Strip:
        strips = self._strips
        if strips is None:
            width, height = self._drawn_size = (self.size.width, max(self.size.height, 1))
            self._lines = self._runs(width, height)
            strips = self._strips = [self._strip(number, *line, width) for number, line in enumerate(self._lines)]
        return strips[y] if 0 <= y < len(strips) else Strip.blank(self._drawn_size[0])

    def on_click(self) -> None:
        self.post_message(self.Clicked(self.slot))
