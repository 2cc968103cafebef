"""The README's main command: ``./dev.sh demo`` runs ``gangflash demo``."""

from __future__ import annotations

import subprocess
import sys


def test_demo_identifies_every_simulated_board():
    result = subprocess.run([sys.executable, "-m", "gangflash.cli", "demo", "--boards", "4"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4/4 boards identified" in result.stdout
    assert "STM32F4" in result.stdout and "STM32L4" in result.stdout
    assert "Traceback" not in result.stderr
