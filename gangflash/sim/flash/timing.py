"""Datasheet durations of flash operations, in seconds, each with where it comes from.

The simulator keeps BSY set for exactly these durations of virtual time, so a flasher's
throughput and its timeouts are exercised against the numbers a real part would show. Typical
values are used where the datasheet gives one; where it gives only a range, the choice is stated.
Source of the numbers: `shared/reference/stm32-flash.md` (which cites the datasheets).
"""

from __future__ import annotations

# --- model constants (not datasheet values) ------------------------------------------------------
POLL_QUANTUM = 50e-6
"""Virtual time charged to a bus master each time it reads the status register while BSY is set.

A real polling loop (load SR, test, branch) runs at a few MHz, so thousands of reads happen
during one erase; modelling each read would cost host time for nothing. Charging up to 50 µs of
wait per read lets a polling loop consume virtual time at a realistic rate (the loop sees BSY
clear at most 50 µs after the operation ends) while keeping the number of emulated reads low
(20 reads per millisecond of erase)."""

HANG_STALL = 1.0
"""Wait charged for an access the real bus would stall forever (F1: store while an operation
waits for a stopped HSI). The model cannot hang the caller, so it charges 1 s and drops the
access: a flasher ignoring BSY burns virtual time and then fails its verify."""

# --- STM32F1 (F103x8/xB/xC datasheets, "Flash memory characteristics") --------------------------
F1_HALFWORD_PROGRAM = 52.5e-6
"""tprog: 16-bit programming time, 40 min / 52.5 typ / 70 max µs (F103 datasheets)."""

F1_PAGE_ERASE = 30e-3
"""tERASE: page erase time, 20 min / 40 max ms, no typical given (F103 datasheets); the model
uses the middle of the range."""

F1_MASS_ERASE = 30e-3
"""tME: mass erase time, 20 min / 40 max ms, no typical given (F103 datasheets); middle of range."""

F1_OPTION_ERASE = F1_PAGE_ERASE
"""Option-byte erase (OPTER): the option block is one flash page of the information block; the
datasheet gives no separate figure, so the page erase time is used (model choice)."""

F1_OPTION_PROGRAM = F1_HALFWORD_PROGRAM
"""Option-byte programming (OPTPG) is a halfword program of the information block (PM0075)."""

# --- STM32F4 (F407/F412 datasheets, "Flash memory programming") ---------------------------------
F4_PROGRAM = 16e-6
"""tprog: word programming time, 16 typ / 100 max µs; the datasheet row covers program/erase
parallelism x8, x16 and x32 alike, so one value serves every PSIZE."""

# erase times by parallelism (PSIZE 0 = x8, 1 = x16, 2 = x32; x64 needs external VPP, which the
# simulated board does not have: it is timed as x32). Typical values from the F407 datasheet as
# quoted in the reference sheet (OpenOCD: mass erase up to 32 s at x8).
F4_SECTOR_ERASE = {
    16 * 1024: (400e-3, 300e-3, 250e-3),   # 16 KiB sector: x8 / x16 / x32
    64 * 1024: (1200e-3, 700e-3, 550e-3),  # 64 KiB sector
    128 * 1024: (2.0, 1.3, 1.0),           # 128 KiB sector
}
F4_MASS_ERASE = (16.0, 11.0, 8.0)          # tME for 1 MiB: x8 / x16 / x32

F4_OPTION_CHANGE = 250e-3
"""OPTSTRT: the controller erases the user-configuration sector then programs the options
(PM0059 2.6.2 note). No datasheet figure: the model uses a 16 KiB sector erase at x32 (unconfirmed)."""


def f4_psize_index(psize: int) -> int:
    """Column of the erase tables for a PSIZE field value (x64 timed as x32, see above)."""
    return min(psize, 2)


# --- STM32L4 (L476 datasheet, "Flash memory characteristics"; OpenOCD stm32l4x.c erase <= 25 ms) --
L4_DOUBLEWORD_PROGRAM = 81.7e-6
"""tprog: 64-bit programming time, 81.7 typ / 90.8 max µs."""

L4_PAGE_ERASE = 22.0e-3
"""tERASE: page (2 KiB) erase time, 22.0 typ / 24.5 max ms."""

L4_MASS_ERASE = 22.1e-3
"""tME: mass erase time, 22.1 typ / 25 max ms."""

L4_OPTION_CHANGE = L4_PAGE_ERASE
"""OPTSTRT erases the option page then programs it (RM0394 note); no datasheet figure, the model
uses one page erase time (unconfirmed)."""
