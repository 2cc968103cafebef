"""The two header lines: what this batch is, and how it is going.

::

    demo · demo-16k.bin e293902e · chip STM32F103C8 · BATCH mode              RUNNING
    7 passed  1 failed  3 running  0 waiting · yield 87.5% · 42 boards/h · elapsed 0:12:34

Each line picks the longest wording that fits the terminal (labels shorten at 80 columns, the
numbers never go). Counts carry words, so nothing depends on colour.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult, RenderResult
from textual.reactive import reactive
from textual.widget import Widget

from . import units
from .model import HeaderView

RUN_STATE_CLASSES = {"RUNNING": "-running", "PAUSED": "-paused", "STOPPING": "-stopping", "DONE": "-done",
                     "FINISHED": "-finished", "NOT STARTED": "-not-started"}


def _first_fitting(candidates: list[Text], width: int) -> Text:
    for text in candidates:
        if text.cell_len <= width:
            return text
    last = candidates[-1].copy()
    last.truncate(width, overflow="ellipsis")
    return last


class HeaderIdentity(Widget):
    """Batch name, firmware and short SHA-256, expected chip, mode, and the run state."""

    COMPONENT_CLASSES = {"header-identity--name", "header-identity--state"}

    view: reactive[HeaderView] = reactive(HeaderView())

    def render(self) -> RenderResult:
        view, width = self.view, self.size.width
        state = Text()
        state.append(f" {view.run_state} ", style=self.get_component_rich_style("header-identity--state"))
        name_style = self.get_component_rich_style("header-identity--name")
        name = Text()
        name.append(view.batch or "gangflash", style=name_style)
        sep = Text(" · ", style="dim")
        mode = f"{view.mode.upper()} mode"
        chip = view.chip or "any"
        firmware = Text(view.firmware)
        if view.sha256:
            firmware.append(" " + view.sha256, style="dim")
        room = width - state.cell_len - 1
        lefts = [
            Text.assemble(name, sep, "firmware ", firmware, sep, "chip ", chip, sep, mode),
            Text.assemble(name, sep, firmware, sep, "chip ", chip, sep, mode),
            Text.assemble(name, sep, firmware, sep, units.short_chip(chip), sep, view.mode.upper()),
        ]
        rest = Text.assemble(sep, firmware, sep, units.short_chip(chip), sep, view.mode.upper())
        if room - rest.cell_len >= 8:                     # last resort: shorten the batch name
            clipped = Text()
            clipped.append(units.clip(view.batch or "gangflash", room - rest.cell_len), style=name_style)
            lefts.append(Text.assemble(clipped, rest))
        lefts.append(Text.assemble(name, sep, Text(view.firmware), sep, view.mode.upper()))
        left = _first_fitting(lefts, max(room, 0))
        line = left.copy()
        line.pad_right(max(width - left.cell_len - state.cell_len, 1))
        line.append_text(state)
        line.truncate(width)
        return line


COUNT_FIELDS = (("passed", "passed"), ("failed", "failed"), ("probe_faults", "fault"), ("aborted", "aborted"),
                ("running", "running"), ("waiting", "waiting"))
OPTIONAL_COUNTS = frozenset({"probe_faults", "aborted"})     # shown only when not zero
LONG_WORDS = {"passed": "passed", "failed": "failed", "probe_faults": "probe fault", "aborted": "aborted",
              "running": "running", "waiting": "waiting"}
SHORT_WORDS = {"passed": "pass", "failed": "fail", "probe_faults": "fault", "aborted": "abort",
               "running": "run", "waiting": "wait"}


class HeaderCounts(Widget):
    """Passed, failed, probe faults, aborted, running, waiting; yield, boards per hour, elapsed."""

    COMPONENT_CLASSES = {"header-counts--passed", "header-counts--failed", "header-counts--fault",
                         "header-counts--running", "header-counts--waiting", "header-counts--aborted"}

    view: reactive[HeaderView] = reactive(HeaderView())

    def _count(self, number: int, word: str, style: str) -> Text:
        text = Text()
        text.append(str(number), style=self.get_component_rich_style(f"header-counts--{style}") if number else "bold")
        text.append(f" {word}")
        return text

    def render(self) -> RenderResult:
        view, width = self.view, self.size.width
        sep = Text(" · ", style="dim")
        per_hour = "—" if view.per_hour is None else f"{view.per_hour:.0f}"
        elapsed = units.clock(view.elapsed) or "—"
        tail_long = Text.assemble(sep, f"yield {units.percent(view.yield_ratio)}", sep, f"{per_hour} boards/h",
                                  sep, f"elapsed {elapsed}")
        tail_short = Text.assemble(sep, f"yield {units.percent(view.yield_ratio)}", sep, f"{per_hour}/h", sep, elapsed)
        candidates = []
        for words, gap, tail in ((LONG_WORDS, "  ", tail_long), (LONG_WORDS, "  ", tail_short),
                                 (SHORT_WORDS, " ", tail_short)):
            counts = [self._count(getattr(view, field), words[field], style)
                      for field, style in COUNT_FIELDS if getattr(view, field) or field not in OPTIONAL_COUNTS]
            candidates.append(Text.assemble(Text(gap).join(counts), tail))
        return _first_fitting(candidates, width)


class BatchHeader(Widget):
    """Both lines; the app sets :attr:`view`, the run state also becomes a class for the tint."""

    view: reactive[HeaderView] = reactive(HeaderView(), repaint=False)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.identity = HeaderIdentity()
        self.counts = HeaderCounts()

    def compose(self) -> ComposeResult:
        yield self.identity
        yield self.counts

    def watch_view(self, old: HeaderView, new: HeaderView) -> None:
        self.identity.view = new
        self.counts.view = new
        for state, css in RUN_STATE_CLASSES.items():
            self.set_class(new.run_state == state, css)
