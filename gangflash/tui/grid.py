"""The tile grid: one :class:`~gangflash.tui.tile.BoardTile` per slot, reflowed to the width.

The grid owns selection: arrow keys (or a click, which a tile reports with ``BoardTile.Clicked``)
move it, and every change is posted up as :class:`TileGrid.Selected` for the app to show details.
Columns follow the terminal: as many tiles of at least :attr:`TileGrid.tile_min_width` cells as
fit (3 at 80 columns, 6 at 160); rows beyond the screen scroll, and the selected tile is kept in
view, so 64 boards work on an 80x24 terminal over SSH without a mouse.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.binding import Binding
from textual.containers import ScrollableContainer
from textual.events import Resize
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Static

from .model import TileView
from .tile import PALETTE_CLASSES, BoardTile, TilePalette

SELECT = Binding.Group("select", compact=True)


class TileGrid(ScrollableContainer, can_focus=True, inherit_bindings=False):
    """Tiles in reflowing columns, with a keyboard cursor (the selected tile). The tiles' colours
    are the grid's component classes (``TileGrid > .tile--failed``...), shared by every tile."""

    COMPONENT_CLASSES = PALETTE_CLASSES

    BINDINGS = [
        Binding("left", "move(-1, 0)", "select", key_display="←", group=SELECT),
        Binding("up", "move(0, -1)", "select", key_display="↑", group=SELECT),
        Binding("down", "move(0, 1)", "select", key_display="↓", group=SELECT),
        Binding("right", "move(1, 0)", "select", key_display="→", group=SELECT),
        Binding("home", "jump(0)", "first", show=False),
        Binding("end", "jump(-1)", "last", show=False),
        Binding("pageup", "page(-1)", "page up", show=False),
        Binding("pagedown", "page(1)", "page down", show=False),
    ]

    tile_min_width = 24          # border, padding and ~22 characters: " RUNNING  program  0:12"

    selected: reactive[str | None] = reactive(None)
    empty_text = reactive("Waiting for the batch to start…")

    class Selected(Message):
        """The selected tile changed (``slot`` is None when the grid emptied)."""

        def __init__(self, slot: str | None) -> None:
            super().__init__()
            self.slot = slot

    class Activated(Message):
        """The selected tile was clicked again (the app opens or closes its details)."""

        def __init__(self, slot: str) -> None:
            super().__init__()
            self.slot = slot

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.tiles: dict[str, BoardTile] = {}
        self.palette = TilePalette(self)
        self.columns = 1
        self._placeholder = Static("", id="grid-empty")

    def compose(self):
        yield self._placeholder

    def on_mount(self) -> None:
        self._placeholder.update(self.empty_text)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self.palette.clear()                      # CSS or theme changed: tiles draw with new styles
        for tile in self.tiles.values():
            tile.invalidate()

    def watch_empty_text(self, text: str) -> None:
        if self.is_mounted:
            self._placeholder.update(text)

    # --- slots ---------------------------------------------------------------------------------

    def set_slots(self, slots: Sequence[str]) -> None:
        """Show exactly these slots, in this order. Tiles are made anew (slots change once per
        batch start); the app then hands every tile its view."""
        if list(self.tiles) == list(slots):
            return
        if self.tiles:
            self.remove_children(list(self.tiles.values()))
        self.tiles = {slot: BoardTile(slot, self.palette) for slot in slots}
        self._placeholder.display = not self.tiles
        if self.tiles:
            self.mount_all(self.tiles.values())
        if self.selected in self.tiles:
            self.tiles[self.selected].selected = True
        else:
            self.selected = next(iter(self.tiles), None)

    def show(self, slot: str, view: TileView) -> None:
        """Hand a tile its new view (it repaints only what changed)."""
        tile = self.tiles.get(slot)
        if tile is not None:
            tile.view = view

    # --- layout ----------------------------------------------------------------------------------

    def on_resize(self, event: Resize) -> None:
        self.reflow()

    def reflow(self) -> None:
        """As many columns as tiles of the minimum width fit (one at least)."""
        width = self.scrollable_content_region.width
        gutter = self.styles.grid_gutter_horizontal
        columns = max(1, (width + gutter) // (self.tile_min_width + gutter))
        if columns != self.columns or self.styles.grid_size_columns != columns:
            self.columns = columns
            self.styles.grid_size_columns = columns

    # --- selection -------------------------------------------------------------------------------

    def watch_selected(self, old: str | None, new: str | None) -> None:
        if old in self.tiles:
            self.tiles[old].selected = False
        if new in self.tiles:
            tile = self.tiles[new]
            tile.selected = True
            if tile.is_attached:
                self.call_after_refresh(self.scroll_to_widget, tile, animate=False)
        self.post_message(self.Selected(new))

    def _index(self) -> int:
        slots = list(self.tiles)
        return slots.index(self.selected) if self.selected in slots else 0

    def _select_index(self, index: int) -> None:
        slots = list(self.tiles)
        if slots:
            self.selected = slots[max(0, min(index, len(slots) - 1))]

    def action_move(self, dx: int, dy: int) -> None:
        """Arrow keys: left/right along the row (wrapping), up/down one row."""
        self._select_index(self._index() + dx + dy * self.columns)

    def action_jump(self, index: int) -> None:
        self._select_index(index if index >= 0 else len(self.tiles) + index)

    def action_page(self, pages: int) -> None:
        rows = max(1, self.scrollable_content_region.height // max(1, self._row_height()))
        self._select_index(self._index() + pages * rows * self.columns)

    def _row_height(self) -> int:
        first = next(iter(self.tiles.values()), None)
        return (first.outer_size.height if first is not None else 3) + self.styles.grid_gutter_vertical

    def on_board_tile_clicked(self, message: BoardTile.Clicked) -> None:
        message.stop()
        self.focus()
        if message.slot == self.selected:
            self.post_message(self.Activated(message.slot))
        self.selected = message.slot
