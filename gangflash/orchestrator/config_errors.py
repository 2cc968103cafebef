"""What is wrong with a batch config, said so a technician can fix it without reading code.

Every :class:`ConfigError` names the file, the key path (``slot[2].probe``, ``pipeline.erase``),
the line where it can be found, and what is allowed. Validation collects them all and raises one
:class:`ConfigErrors`, because a production config edited at the line is fixed faster when every
mistake shows at once than one run per mistake.

Key paths count array tables from 1 as a person does: ``slot[1]`` is the first ``[[slot]]`` in the
file, ``sim.board[3]`` the third ``[[sim.board]]``.

:class:`Collector` is the reading side: typed getters that report instead of raising.

tomllib reports line and column only for syntax errors; for everything else :class:`SourceIndex`
finds the line by scanning the text for the table headers and ``key =`` lines. It is best-effort
(it does not parse TOML), so a path it cannot place falls back to its nearest ancestor that it can.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """One problem in one place of one config file."""

    def __init__(self, message: str, *, file: Path | str, key: str = "", line: int | None = None,
                 column: int | None = None, allowed: str | None = None,
                 hint: str | None = None) -> None:
        self.message = message
        self.file = Path(file)
        self.key = key
        self.line = line
        self.column = column
        self.allowed = allowed
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        """``demo.toml:12: pipeline.erase: 'fast' is not allowed (allowed: ...); hint``."""
        where = str(self.file)
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"
        if self.allowed:
            text += f" (allowed: {self.allowed})"
        if self.hint:
            text += f"; {self.hint}"
        return text


class ConfigSyntaxError(ConfigError):
    """The file is not valid TOML (tomllib's message, with its line and column)."""


class UnknownKey(ConfigError):
    """A key the schema does not know; usually a typo, so the closest known key is suggested."""


class MissingKey(ConfigError):
    """A required key or table is absent."""


class WrongType(ConfigError):
    """A value has the wrong TOML type (a string where an integer belongs...)."""


class BadValue(ConfigError):
    """A value of the right type outside what is allowed (an unknown choice, a negative count...)."""


class ConflictingKeys(ConfigError):
    """Two settings that cannot be used together (``[[slot]]`` with ``[slots] all``...)."""


class MissingFile(ConfigError):
    """A file the config points at (firmware image, serial-number CSV) does not exist or is unreadable."""


class ChecksumMismatch(ConfigError):
    """The firmware file's SHA-256 is not the one the config expects: wrong or modified image."""


class DuplicateLabel(ConfigError):
    """Two slots share one label, so the journal and the dashboard could not tell them apart."""


class DuplicateProbe(ConfigError):
    """Two slots claim one probe (same serial, not told apart by different USB ports) or one port."""


class BadImage(ConfigError):
    """The firmware image cannot be read in the given or detected format."""


class ImageDoesNotFit(ConfigError):
    """The image reaches outside the flash of the chip the config expects."""


class SerialNumberPlacement(ConfigError):
    """The serial-number area lies outside the chip's flash or overlaps the image."""


class ConfigErrors(Exception):
    """Every problem found in one config; ``errors`` is in file order where lines are known."""

    def __init__(self, errors: Iterable[ConfigError]) -> None:
        self.errors: list[ConfigError] = sorted(
            errors, key=lambda e: (str(e.file), e.line if e.line is not None else 1 << 30))
        count = len(self.errors)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the batch config:\n"
                         + format_errors(self.errors))


def format_errors(errors: ConfigErrors | Iterable[ConfigError]) -> str:
    """One line per problem, ready for stderr (the CLI exits 2 after printing it)."""
    items = errors.errors if isinstance(errors, ConfigErrors) else list(errors)
    return "\n".join(f"  {error.render()}" for error in items)


# --- finding the line of a key path -------------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_ASSIGN = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
                     r"""(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")
_INLINE_KEY = re.compile(r"""(?:[{,]\s*)((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))\s*=""")


def _split_dotted(text: str) -> list[str]:
    parts = re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", text)
    return [part.strip("\"'") for part in parts]


class SourceIndex:
    """Key path -> line number, from a line scan of the TOML text (best-effort, see module doc)."""

    def __init__(self, text: str) -> None:
        self._lines: dict[str, int] = {}
        self._counters: dict[str, int] = {}     # array-of-tables path -> elements seen so far
        table = ""
        in_multiline: str | None = None
        for number, raw in enumerate(text.splitlines(), start=1):
            if in_multiline:
                if raw.count(in_multiline) % 2 == 1:
                    in_multiline = None
                continue
            header = _HEADER.match(raw)
            if header:
                names = _split_dotted(header[2])
                if header[1] == "[[":
                    array = self._resolve(names[:-1], names[-1], numbered_last=False)
                    self._counters[array] = self._counters.get(array, 0) + 1
                    table = f"{array}[{self._counters[array]}]"
                else:
                    table = self._resolve(names[:-1], names[-1], numbered_last=True)
                self._lines.setdefault(table, number)
                continue
            assign = _ASSIGN.match(raw)
            if assign:
                key = ".".join(_split_dotted(assign[1]))
                path = f"{table}.{key}" if table else key
                self._lines.setdefault(path, number)
                rest = raw[assign.end():]
                for inline in _INLINE_KEY.finditer(rest):
                    self._lines.setdefault(f"{path}.{inline[1].strip(chr(34) + chr(39))}", number)
                for quote in ('"""', "'''"):
                    if rest.count(quote) % 2 == 1:
                        in_multiline = quote

    def _resolve(self, parents: list[str], last: str, *, numbered_last: bool) -> str:
        """A header's table path, numbering parents that are arrays (``[sim.board.faults]``
        after the second ``[[sim.board]]`` is ``sim.board[2].faults``)."""
        path = ""
        names = [*parents, last]
        for position, name in enumerate(names):
            path = f"{path}.{name}" if path else name
            is_last = position == len(names) - 1
            if (numbered_last or not is_last) and path in self._counters:
                path = f"{path}[{self._counters[path]}]"
        return path

    def line_of(self, key: str) -> int | None:
        """The line of ``key`` or of its nearest ancestor found in the text; None if neither."""
        path = key
        while path:
            if path in self._lines:
                return self._lines[path]
            trimmed = re.sub(r"(\.[^.\[\]]+|\[\d+\])$", "", path)
            path = "" if trimmed == path else trimmed
        return None


# --- collecting errors while reading typed values ------------------------------------------------

MISSING: Any = object()
"""Sentinel: the key is absent (TOML has no null, so None can be a default)."""

TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
              list: "an array", dict: "a table"}


def toml_type(value: object) -> str:
    """How a TOML user would name ``value``'s type ("a string", "an integer"...)."""
    for kind, name in TYPE_NAMES.items():
        if type(value) is kind:
            return name
    return type(value).__name__


def suggest(value: Any, choices: Sequence[Any]) -> str | None:
    """"did you mean 'mass'?" for a near miss, else None."""
    if not isinstance(value, str):
        return None
    close = difflib.get_close_matches(value, [str(c) for c in choices], n=1, cutoff=0.5)
    return f"did you mean {close[0]!r}?" if close else None


def at_least(minimum: float, *, exclusive: bool = False) -> Callable[[Any], str | None]:
    """A ``check`` for :meth:`Collector.get`: the value must be >= (or >) ``minimum``."""
    def check(value: Any) -> str | None:
        bad = value <= minimum if exclusive else value < minimum
        return f"{value!r} is too small" if bad else None
    return check


class Collector:
    """Collects errors while the loader walks the file, and reads typed values out of tables.

    Readers never raise: a bad value is reported and the default returned, so one pass finds
    every problem. ``failed(prefix)`` lets cross-checks skip inputs that were already wrong.
    """

    def __init__(self, file: Path, text: str) -> None:
        self.file = file
        self.index = SourceIndex(text)
        self.errors: list[ConfigError] = []

    def add(self, cls: type[ConfigError], key: str, message: str, **extra: Any) -> None:
        """Report one problem at ``key`` (its line is looked up in the source)."""
        self.errors.append(cls(message, file=self.file, key=key, line=self.index.line_of(key), **extra))

    def failed(self, *prefixes: str) -> bool:
        """True when an error was reported at or under one of the key paths."""
        return any(e.key == p or e.key.startswith((p + ".", p + "["))
                   for e in self.errors for p in prefixes)

    def known(self, table: dict, path: str, allowed: Sequence[str]) -> None:
        """Report every key of ``table`` not in ``allowed``, suggesting the closest one."""
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                self.add(UnknownKey, f"{path}.{key}" if path else key, f"unknown key {key!r}",
                         allowed=", ".join(allowed),
                         hint=f"did you mean {close[0]!r}?" if close else None)

    def table(self, data: dict, path: str, allowed: Sequence[str], *,
              required: bool = False) -> dict | None:
        """The sub-table ``path`` (last component looked up in ``data``), unknown keys reported."""
        name = path.rsplit(".", 1)[-1]
        value = data.get(name, MISSING)
        if value is MISSING:
            if required:
                self.add(MissingKey, path, f"the [{path}] table is required")
            return None
        if not isinstance(value, dict):
            self.add(WrongType, path, f"must be a table ([{path}]), not {toml_type(value)}")
            return None
        self.known(value, path, allowed)
        return value

    def get(self, table: dict, path: str, kind: type, default: Any = None, *, required: bool = False,
            choices: Sequence[Any] | None = None, check: Callable[[Any], str | None] | None = None,
            allowed: str | None = None) -> Any:
        """The typed value at ``path`` (last component looked up in ``table``), or ``default``
        after reporting a problem. Integers are accepted where a float belongs.

        ``check`` returns a problem description or None; ``allowed`` describes the valid values.
        """
        name = path.rsplit(".", 1)[-1]
        value = table.get(name, MISSING)
        shown = allowed or (", ".join(map(repr, choices)) if choices else None)
        if value is MISSING:
            if required:
                self.add(MissingKey, path, "is required", allowed=shown)
            return default
        if not (type(value) is kind or (kind is float and type(value) is int)):
            self.add(WrongType, path, f"must be {TYPE_NAMES[kind]}, not {toml_type(value)} ({value!r})",
                     allowed=shown)
            return default
        if kind is float:
            value = float(value)
        if choices is not None and value not in choices:
            self.add(BadValue, path, f"{value!r} is not allowed", allowed=shown,
                     hint=suggest(value, choices))
            return default
        if check is not None:
            problem = check(value)
            if problem:
                self.add(BadValue, path, problem, allowed=allowed)
                return default
        return value
