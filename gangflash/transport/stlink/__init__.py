"""The ST-Link driver: one probe, its firmware quirks, and the SWD target behind it.

Layout: ``constants`` (opcode, status and limit tables), ``protocol`` (pure encoding, decoding and
chunk planning), ``channel`` (the three-phase transfer over a ``ProbeLink``, byte traces,
resynchronisation), ``driver`` (``Stlink``: commands, locking, WAIT retry), ``errors`` (one
exception per meaning of a status byte).
"""

from .constants import DP_PORT, CoreState, Mode, NrstLevel, Status
from .driver import Stlink
from .errors import (
    ApError, ApFault, ApWait, BadAp, DpError, DpFault, DpWait, FirmwareTooOld,
    FrequencyNotSupported, MemoryFault, NoTarget, ParityError, ProbeModeError, StickyError,
    StlinkError, StlinkFault, StlinkProtocolError, SwdError, SwdWait, SwvNotAvailable,
    UnknownCommand, UnsupportedProbe, WriteDataError,
)
from .protocol import Capabilities, Chunk, CoreRegisters, ProbeVersion, plan_chunks

__all__ = [
    "Stlink", "ProbeVersion", "Capabilities", "CoreRegisters", "Chunk", "plan_chunks",
    "CoreState", "Mode", "NrstLevel", "Status", "DP_PORT",
    "StlinkError", "StlinkFault", "NoTarget", "ProbeModeError", "UnknownCommand",
    "FrequencyNotSupported", "SwvNotAvailable", "SwdError", "SwdWait", "ApWait", "DpWait",
    "ApFault", "DpFault", "ApError", "DpError", "ParityError", "WriteDataError", "StickyError",
    "BadAp", "MemoryFault", "FirmwareTooOld", "UnsupportedProbe", "StlinkProtocolError",
]
