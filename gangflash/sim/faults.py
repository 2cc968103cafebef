"""Injectable faults: every way real hardware misbehaves that gangflash must survive or report.

Each knob is a named field with a docstring-like comment saying what the hardware does. Probe
knobs act on the USB cable and the probe firmware; target knobs on the chip, including the seed's
"previous firmware" states (what the firmware already in the chip left behind when the debugger
arrived). Knobs are plain data so configs (TOML ``[sim]``) and tests can set them by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass
class ProbeFaults:
    """Faults of the probe and its USB link."""

    usb_timeout_on: int | None = None       # the Nth bulk transfer (1-based, OUT and IN counted) never completes: UsbTimeout
    usb_stall_on: int | None = None         # the Nth bulk transfer answers STALL
    unplug_after_bytes: int | None = None   # the probe disappears once this many payload bytes crossed the cable (both directions)
    hang_after_transfers: int | None = None  # the probe firmware hangs: every transfer after the Nth times out; a USB port reset does not help (only a power cycle would)
    swd_wait_burst: int = 0                 # the next N target accesses answer WAIT before succeeding (firmware retries absorb some)
    swd_wait_on_command: int | None = None  # the WAIT burst starts at this command number (1-based); None = from the start

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


@dataclass
class TargetFaults:
    """Faults of the chip, and the state the previous firmware left in it."""

    # Hardware faults
    power_loss_at: float | None = None      # virtual time (s) at which the target loses power (voltage 0, SWD silent, in-flight flash op corrupts its unit)
    stuck_bits: dict[int, int] = field(default_factory=dict)   # address -> byte mask of bits stuck at 0 after programming (verify mismatch)
    write_protected: tuple[int, ...] = ()   # indexes of erase units (pages/sectors) whose WRP option is set at power-on
    rdp_level1: bool = False                # readout protection level 1 at power-on (debug access to flash faults)
    # Previous-firmware states (the seed's causes)
    core_asleep: bool = False               # firmware sleeps in WFI with SysTick off: core stays in sleep until an interrupt or debug halt
    interrupts_firing: bool = False         # firmware enabled SysTick with TICKINT (1 kHz); an unmasked loader is preempted into the firmware's handler
    watchdog_running: bool = False          # firmware started the IWDG (~26 ms period); it resets the chip unless reloaded or frozen in DBGMCU while halted
    hardware_watchdog: bool = False         # option byte WDG_SW = 0: the IWDG starts by itself at every reset
    thumb_bit_clear: bool = False           # core halted with xPSR.T = 0: resuming without fixing xPSR faults (INVSTATE) and locks up on erased flash
    flash_locked_stale_flags: bool = False  # firmware left the flash controller locked with error flags set (PGERR/WRPRTERR, PGSERR...): naive program fails
    flash_unlocked_stale_flags: bool = False  # firmware left the controller unlocked with error flags set: next operation reports the stale error
    hsi_off: bool = False                   # F1 only: firmware runs from HSE with HSI stopped; the FPEC cannot program or erase (RM0008 clock tree)

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def seed_states(cls) -> list[str]:
        """The previous-firmware knobs, in the order the seed bug report listed their symptoms."""
        return ["core_asleep", "interrupts_firing", "watchdog_running", "hardware_watchdog",
                "thumb_bit_clear", "flash_locked_stale_flags", "flash_unlocked_stale_flags", "hsi_off"]
