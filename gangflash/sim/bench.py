"""A test bench: simulated probes with boards attached, built from short descriptions.

``make_probe("F412", model="V3", clock=...)`` is one probe wired to one chip; ``make_probes(4,
clock=...)`` a gang of them with a fixed chip mix and deterministic serial numbers (so journals
and snapshots are reproducible).
"""

from __future__ import annotations

import hashlib

from .chips import chip_by_name
from .clock import Clock
from .faults import ProbeFaults, TargetFaults
from .probe import SimProbe
from .target import SimTarget

DEFAULT_MIX = ("F103C8", "F412ZG", "L432KC", "F103RC")


def sim_serial(index: int, chip: str = "") -> str:
    """Deterministic 24-hex-digit serial for simulated probe ``index``."""
    digest = hashlib.sha1(f"gangflash-sim-{index}".encode()).hexdigest().upper()
    return "5353" + digest[:20]          # "SS": recognisably simulated


def make_probe(chip: str | None = "F103C8", *, clock: Clock, model: str = "V2", serial: str | None = None,
               probe_faults: ProbeFaults | None = None, target_faults: TargetFaults | None = None,
               index: int = 0) -> SimProbe:
    """One probe; ``chip=None`` leaves it with nothing attached."""
    serial = serial or sim_serial(index)
    target = SimTarget(chip_by_name(chip), clock, target_faults, unique_id=board_uid(serial, chip)) if chip else None
    return SimProbe(serial=serial, target=target, clock=clock, model=model, faults=probe_faults)


def board_uid(serial: str, chip: str) -> bytes:
    """A 96-bit unique ID for the board behind probe ``serial``: fixed per board, distinct
    between boards (as real chips' are), so duplicate-UID checks see what hardware would."""
    return hashlib.sha1(f"uid-{serial}-{chip}".encode()).digest()[:12]


def make_probes(spec: int | list[str], *, clock: Clock, model: str = "V2") -> list[SimProbe]:
    """``spec`` is a count (chips from the default mix) or a list of chip names."""
    chips = [DEFAULT_MIX[i % len(DEFAULT_MIX)] for i in range(spec)] if isinstance(spec, int) else list(spec)
    return [make_probe(chip, clock=clock, model=model, index=i) for i, chip in enumerate(chips)]
