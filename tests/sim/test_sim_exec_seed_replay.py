"""The seed replayed (issue 9, item 2): each previous-firmware state of the simulator, on the same
simulated STM32F103C8, against st-flash 1.7.0 ``write``, OpenOCD ``program`` (its USB path) and
``gangflash flash``, all three unmodified and through ``gangflash sim exec``, so they meet the
very same chip model and fault knobs (set as a config's ``[[sim.board]] faults`` would).

The test asserts that gangflash ends verified on every row (and checks the flash through the
simulator's back door); the peers' outcomes are recorded as they are, since st-flash 1.7.0 carries
the upstream fix for some states. Run this file as a script to print the README table::

    .venv/bin/python tests/sim/test_sim_exec_seed_replay.py
"""

from __future__ import annotations

import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import pytest

from gangflash.cli_sim_exec import exec_boards
from gangflash.orchestrator.config_schema import SimBoard
from gangflash.sim.bench import sim_serial
from gangflash.sim.faults import TargetFaults

REPO = Path(__file__).resolve().parents[2]
IMAGE = REPO / "configs" / "firmware" / "demo-16k.bin"
CHIP = "F103C8"
TWICE = "flash twice without erasing"
HANG_S = 20         # a tool still running after this long is stopped and recorded as hanging
HUNG = (124, 137)   # timeout(1): stopped by SIGTERM, or by SIGKILL 5 s later (st-flash's SIGTERM
                    # handler can deadlock in libusb, as it would on a real probe)
ROWS = [*TargetFaults.seed_states(), TWICE]
GANGFLASH = str(Path(sys.executable).parent / "gangflash")
TOOLS = {
    "st-flash": ["st-flash", "write", str(IMAGE), "0x08000000"],
    "openocd": ["openocd", "-c", "gdb_port disabled", "-c", "tcl_port disabled", "-c", "telnet_port disabled",
                "-f", "interface/stlink.cfg", "-f", "target/stm32f1x.cfg",
                "-c", f"program {IMAGE} 0x08000000 verify reset exit"],
    "gangflash": [GANGFLASH, "flash", "--address", "0x08000000", str(IMAGE)],
}
# What each tool prints when it succeeds; otherwise its own error lines tell how it ended.
SUCCESS = {"st-flash": "jolly good!", "openocd": "** Verified OK **", "gangflash": None}
ERROR_LINE = {"st-flash": r"ERROR \S+: (.*)", "openocd": r"Error: (.*)", "gangflash": r"^((?:PASS|FAIL) .*)"}
NOISE = ("libusb", "[do_close]")        # what libusb says when timeout(1) stops a hung tool


@dataclass
class Outcome:
    """One tool on one row: exit status, its own words, and whether the flash holds the image."""

    tool: str
    status: int
    says: str
    flash_ok: bool
    output: str

    def cell(self) -> str:
        if self.status in HUNG:
            return f"hangs (stopped after {HANG_S} s)" + (f': last words "{self.says}"' if self.says else "")
        word = "passed" if self.status == 0 and self.flash_ok else f"failed (exit {self.status})"
        return f'{word}: "{self.says}"' if self.says else word


def board_for(row: str) -> SimBoard:
    faults = {} if row == TWICE else {row: True}
    return SimBoard(chip=CHIP, serial=sim_serial(0), faults=MappingProxyType(faults))


def verdict(tool: str, output: str) -> str:
    """The tool's own words for how it ended: its success line, else its first two error lines,
    else its last line."""
    if SUCCESS[tool] and SUCCESS[tool] in output:
        return SUCCESS[tool]
    errors = re.findall(ERROR_LINE[tool], output, flags=re.MULTILINE)
    if errors:
        return "; ".join(e.strip() for e in errors[:2])
    lines = [line.strip() for line in output.splitlines() if line.strip() and not any(n in line for n in NOISE)]
    return re.sub(r"^\S+ (INFO|WARN) \S+: ", "", lines[-1]) if lines else ""


def replay(row: str, tool: str) -> Outcome:
    """Run ``tool`` on a fresh simulated chip carrying ``row``'s state (for the "twice" row: the
    tool runs twice on a clean chip, and the second run is the one judged)."""
    argv = TOOLS[tool]
    if row == TWICE:
        words = " ".join(f"'{w}'" for w in argv)
        argv = ["sh", "-c", f"{words} >/dev/null 2>&1; {words}"]
    argv = ["timeout", "-k", "5", str(HANG_S), *argv]
    with tempfile.TemporaryFile("w+") as out:
        result = exec_boards([board_for(row)], argv, stdout=out, stderr=out)
        out.seek(0)
        text = out.read()
    flash = result.probes[0].target.flash.read(0x08000000, IMAGE.stat().st_size)
    return Outcome(tool, result.exit_status, verdict(tool, text), flash == IMAGE.read_bytes(), text)


def table(outcomes: dict[str, dict[str, Outcome]]) -> str:
    lines = ["| previous-firmware state | st-flash 1.7.0 `write` | OpenOCD 0.12 `program` | `gangflash flash` |",
             "|---|---|---|---|"]
    for row, by_tool in outcomes.items():
        name = row if row == TWICE else f"`{row}`"
        lines.append(f"| {name} | " + " | ".join(by_tool[t].cell() for t in TOOLS) + " |")
    return "\n".join(lines)


@pytest.mark.sim_exec
@pytest.mark.parametrize("row", ROWS)
def test_gangflash_ends_verified_where_the_peers_meet_the_seed(row):
    outcomes = {tool: replay(row, tool) for tool in TOOLS}
    ours = outcomes["gangflash"]
    assert ours.status == 0 and ours.says.startswith("PASS") and "verified" in ours.says, ours.output
    assert ours.flash_ok
    for tool in ("st-flash", "openocd"):      # recorded, not judged: but each must have said something
        peer = outcomes[tool]
        assert peer.says, f"{tool} on {row}: no verdict line in\n{peer.output}"
        assert (peer.status == 0) == (peer.says == SUCCESS[tool]), peer.output


if __name__ == "__main__":
    results: dict[str, dict[str, Outcome]] = {}
    for state in ROWS:
        results[state] = {}
        for name in TOOLS:
            results[state][name] = replay(state, name)
            print(f"{state} / {name}: {results[state][name].cell()}", file=sys.stderr)
    print(table(results))
