"""How the dashboard writes sizes, rates and durations: short, fixed-width where it matters.

A tile is about 23 characters wide at 80 columns, so every number has a compact form. Sizes and
rates use K = 1024 bytes (flash is sized in binary units; ``16K`` is a 16 KiB image), and a rate
is written ``KB/s`` as technicians read it.
"""

from __future__ import annotations

KIB = 1024


def size(count: int) -> str:
    """``512`` -> ``"512B"``, ``16384`` -> ``"16K"``, ``12390`` -> ``"12.1K"``, ``2097152`` -> ``"2.0M"``."""
    if count < KIB:
        return f"{count}B"
    if count < KIB * KIB:
        kib = count / KIB
        return f"{kib:.0f}K" if kib >= 100 or count % KIB == 0 else f"{kib:.1f}K"
    return f"{count / (KIB * KIB):.1f}M"


def progress(done: int, total: int, *, in_bytes: bool) -> str:
    """``"8.0/16K"`` for bytes (one unit, on the total), ``"3/16"`` for counted steps."""
    if not in_bytes:
        return f"{done}/{total}"
    if total < KIB:
        return f"{done}/{total}B"
    scale, unit = (KIB, "K") if total < KIB * KIB else (KIB * KIB, "M")
    whole = total % scale == 0
    total_text = f"{total // scale}" if whole else f"{total / scale:.1f}"
    return f"{done / scale:.1f}/{total_text}{unit}"


def rate(bytes_per_s: float | None) -> str:
    """``24576.0`` -> ``"24KB/s"`` (one decimal under 10 KB/s); ``""`` when unknown."""
    if bytes_per_s is None:
        return ""
    kib = bytes_per_s / KIB
    return f"{kib:.1f}KB/s" if kib < 10 else f"{kib:.0f}KB/s"


def clock(seconds: float | None) -> str:
    """Elapsed time: ``"0:07"``, ``"12:34"``, ``"1:02:03"``; ``""`` when unknown."""
    if seconds is None:
        return ""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def duration(seconds: float | None) -> str:
    """A stage duration: ``"0.05 s"``, ``"12.3 s"``, ``"2:05"`` past a minute."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    return clock(seconds)


def percent(value: float | None) -> str:
    """``0.875`` -> ``"87.5%"``; ``"—"`` when there is nothing to divide."""
    return "—" if value is None else f"{100 * value:.1f}%"


def short_chip(chip: str) -> str:
    """The chip in a few characters for a tile: ``"STM32F103C8"`` -> ``"F103C8"``, and a part
    description such as ``"F1 F10x medium-density (DEV_ID 0x410)"`` -> ``"F10x"`` (its line)."""
    words = [word.removeprefix("STM32") for word in chip.split("(")[0].split()]
    if not words:
        return ""
    if len(words) > 1 and len(words[0]) <= 3:        # "F1 F10x ...": family, then the line
        return words[1]
    return words[0]


def tail(text: str, width: int) -> str:
    """The last ``width`` characters, with ``…`` in front when cut (probe serials differ at the end)."""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[-width:] if width else ""
    return "…" + text[-(width - 1):]


def clip(text: str, width: int) -> str:
    """The first ``width`` characters, with ``…`` at the end when cut."""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[:width]
    return text[:width - 1] + "…"
