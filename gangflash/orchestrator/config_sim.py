"""The ``[sim]`` section of a batch config and ``--sim``: which simulated boards to run, and
building the simulator's probes for them.

This is the one module of the orchestrator that imports ``gangflash.sim``: the simulator is
configured from the batch config (chip names, probe models, fault knobs), so the knob names and
types are read from ``gangflash.sim.faults`` itself rather than copied. Every such import goes
through :func:`_sim`, on demand, so a config without ``[sim]`` never loads the simulator.
"""

from __future__ import annotations

import copy
import re
import types
import typing
from collections.abc import Callable, Sequence
from types import MappingProxyType
from typing import Any

from .config_errors import (
    MISSING, BadValue, Collector, DuplicateLabel, DuplicateProbe, WrongType, at_least, suggest,
    toml_type,
)
from .config_schema import SimBoard, SimSpec

__all__ = ["read_sim_section", "sim_boards_from_spec", "make_sim_probes", "make_independent_sim_probes",
           "sim_probe_models"]


def _sim() -> types.SimpleNamespace:
    """The simulator's public pieces the orchestrator uses: the only place it imports gangflash.sim.

    Imported on demand, so configs without ``[sim]`` never load the simulator (or Unicorn).
    """
    from gangflash.sim import bench, chips, faults, usb_descriptors
    return types.SimpleNamespace(
        TargetFaults=faults.TargetFaults, ProbeFaults=faults.ProbeFaults, chip_by_name=chips.chip_by_name,
        chip_names=sorted(chips.ALIASES), models=sorted(usb_descriptors.VARIANTS),
        default_mix=bench.DEFAULT_MIX, sim_serial=bench.sim_serial, make_probe=bench.make_probe)


def _knob_value(hint: Any, value: Any) -> Any:
    """``value`` converted to the knob type ``hint``; ValueError says what was expected."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        options = [a for a in args if a is not type(None)]
        problems = []
        for option in options:
            try:
                return _knob_value(option, value)
            except ValueError as exc:
                problems.append(str(exc))
        raise ValueError(" or ".join(problems))
    if hint is bool:
        if type(value) is not bool:
            raise ValueError("true or false")
        return value
    if hint is int:
        if type(value) is not int:
            raise ValueError("an integer")
        return value
    if hint is float:
        if type(value) not in (int, float):
            raise ValueError("a number")
        return float(value)
    if origin is tuple:
        if not isinstance(value, list):
            raise ValueError("an array of integers")
        return tuple(_knob_value(args[0], item) for item in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError("a table of address = mask")
        try:
            return {int(key, 0): _knob_value(args[1], item) for key, item in value.items()}
        except (TypeError, ValueError):
            raise ValueError('a table of "0xADDRESS" = integer') from None
    raise ValueError(f"a {hint}")


def _knobs(ck: Collector, table: dict, path: str, cls: type) -> MappingProxyType:
    value = table.get(path.rsplit(".", 1)[-1], MISSING)
    if value is MISSING:
        return MappingProxyType({})
    if not isinstance(value, dict):
        ck.add(WrongType, path, f"must be a table of knob = value, not {toml_type(value)}",
               allowed=", ".join(cls.names()))
        return MappingProxyType({})
    ck.known(value, path, cls.names())
    hints = typing.get_type_hints(cls)
    converted = {}
    for name, item in value.items():
        if name not in hints:
            continue
        try:
            converted[name] = _knob_value(hints[name], item)
        except ValueError as exc:
            ck.add(WrongType, f"{path}.{name}", f"must be {exc}, not {toml_type(item)} ({item!r})")
    return MappingProxyType(converted)


def read_sim_section(ck: Collector, data: dict) -> SimSpec | None:
    """The ``[sim]`` section, or None when absent. Board serials default to the simulator's
    deterministic ones (by board position), so slots and journals are reproducible."""
    table = ck.table(data, "sim", ("pace", "board"))
    if table is None:
        return None
    sim = _sim()
    pace = ck.get(table, "sim.pace", float, 1.0, check=at_least(0), allowed="0 (as fast as possible) or more")
    listed = table.get("board", [])
    if not (isinstance(listed, list) and all(isinstance(b, dict) for b in listed)):
        ck.add(WrongType, "sim.board", "must be an array of tables", hint="write each board as [[sim.board]]")
        listed = []
    boards: list[SimBoard] = []
    serials: dict[str, str] = {}
    labels: dict[str, str] = {}
    for index, board in enumerate(listed):
        path = f"sim.board[{index + 1}]"
        ck.known(board, path, ("chip", "probe_model", "serial", "label", "faults", "probe_faults"))
        chip = ck.get(board, f"{path}.chip", str, required=True, allowed=", ".join(sim.chip_names))
        if chip is not None:
            try:
                chip = sim.chip_by_name(chip).name.removeprefix("STM32")
            except KeyError:
                ck.add(BadValue, f"{path}.chip", f"no simulated chip {chip!r}", allowed=", ".join(sim.chip_names),
                       hint=suggest(chip.upper(), sim.chip_names))
        model = ck.get(board, f"{path}.probe_model", str, "V2", choices=sim.models)
        serial = ck.get(board, f"{path}.serial", str, None, allowed="24 hexadecimal digits",
                        check=lambda v: None if re.fullmatch(r"[0-9A-Fa-f]{24}", v) else f"{v!r} is not a probe serial")
        serial = serial or sim.sim_serial(index)
        label = ck.get(board, f"{path}.label", str, None)
        # Two simulated probes may share a serial on purpose: clone probes do, and the scheduler's
        # identity pinning (port paths) is what that case tests. Labels stay unique.
        for value, seen, cls, key in ((label, labels, DuplicateLabel, "label"),):
            if value is None:
                continue
            if value in seen:
                ck.add(cls, f"{path}.{key}", f"{key} {value!r} is already used by {seen[value]}")
            seen.setdefault(value, path)
        boards.append(SimBoard(chip=chip or "", probe_model=model, serial=serial, label=label,
                               faults=_knobs(ck, board, f"{path}.faults", sim.TargetFaults),
                               probe_faults=_knobs(ck, board, f"{path}.probe_faults", sim.ProbeFaults)))
    return SimSpec(pace=pace, boards=tuple(boards))


def sim_boards_from_spec(spec: str) -> list[SimBoard]:
    """Boards for ``--sim``: a count (``"4"``, chips from the simulator's default mix) or a comma
    list of simulated chip names (``"F103C8,F412ZG"``). Serials are the simulator's deterministic
    ones, so journals of repeated runs line up. Raises ValueError naming what is wrong."""
    sim = _sim()
    text = spec.strip()
    if text.isdigit():
        count = int(text)
        if count < 1:
            raise ValueError("--sim needs at least one board")
        chips = [sim.default_mix[i % len(sim.default_mix)] for i in range(count)]
    else:
        chips = [name.strip() for name in text.split(",") if name.strip()]
        if not chips:
            raise ValueError("--sim needs a board count or a comma-separated list of chips")
        try:
            chips = [sim.chip_by_name(chip).name.removeprefix("STM32") for chip in chips]
        except KeyError as exc:
            raise ValueError(f"{exc.args[0]}") from None
    return [SimBoard(chip=chip, serial=sim.sim_serial(index)) for index, chip in enumerate(chips)]


def sim_probe_models() -> list[str]:
    """The simulated probe models (``probe_model`` values), sorted."""
    return list(_sim().models)


def make_sim_probes(boards: Sequence[SimBoard], *, clock: Callable[[], float]) -> list[Any]:
    """Simulated probes (``gangflash.sim.probe.SimProbe``) for ``boards``, faults applied,
    ready for ``gangflash.transport.sim_backend.SimBackend``."""
    sim = _sim()
    return [sim.make_probe(board.chip, clock=clock, model=board.probe_model, serial=board.serial,
                           target_faults=sim.TargetFaults(**copy.deepcopy(dict(board.faults))),
                           probe_faults=sim.ProbeFaults(**copy.deepcopy(dict(board.probe_faults))),
                           index=index)
            for index, board in enumerate(boards)]


def make_independent_sim_probes(boards: Sequence[SimBoard]) -> list[tuple[Any, Any]]:
    """(probe, clock) per board, each on its own ``ManualClock``: for hosts outside our event
    loop (an stlink-server's clients, tools under ``sim exec``), where each board's time moves
    only with what is done to it."""
    from gangflash.sim.clock import ManualClock

    devices = []
    for board in boards:
        clock = ManualClock()
        (probe,) = make_sim_probes([board], clock=clock)
        devices.append((probe, clock))
    return devices
