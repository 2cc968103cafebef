"""STM32 part numbers decoded: which family a config's ``[target] chip`` names and how much flash
it has, so a batch config can be checked against the image before any board is touched.

ST's ordering codes follow one scheme (``STM32F103C8T6``):

======  ===========  ==================================================================
STM32   ``F``        product type: F (mainstream), L (low power), G, H, U, C, WB, WL...
        ``103``      line: the first digit with the type letter is the family (``F1``);
                     a letter may sit inside (``L4R5``, ``G0B1``, ``H7A3``); WB/WL use two
        ``C``        pin count (C = 48, R = 64, Z = 144...)
        ``8``        flash size (8 = 64 KiB, see :data:`FLASH_SIZE_CODES`)
        ``T6``       package and temperature range: ignored here
======  ===========  ==================================================================

Only the flash size matters for checking a config, and it is the code the datasheets agree on
across families. Every family gangflash handles maps main flash at :data:`FLASH_BASE`.
The chip's own flash-size register is the authority on a real board (the pipeline reads it);
this table only lets a config fail early, before a fixture full of boards is touched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FLASH_BASE = 0x08000000

_KIB = 1024

FLASH_SIZE_CODES: dict[str, int] = {
    "4": 16 * _KIB,
    "6": 32 * _KIB,
    "8": 64 * _KIB,
    "B": 128 * _KIB,
    "Z": 192 * _KIB,
    "C": 256 * _KIB,
    "D": 384 * _KIB,
    "E": 512 * _KIB,
    "F": 768 * _KIB,
    "G": 1024 * _KIB,
    "H": 1536 * _KIB,
    "I": 2048 * _KIB,
}
"""Flash-size letter (the character after the pin-count letter) -> bytes of main flash."""

PIN_COUNT_CODES: dict[str, int] = {
    "D": 14, "Y": 18, "F": 20, "E": 25, "G": 28, "K": 32, "T": 36, "H": 40, "S": 44,
    "C": 48, "U": 63, "R": 64, "J": 72, "M": 81, "O": 90, "V": 100, "Q": 132, "Z": 144,
    "A": 169, "I": 176, "B": 208, "N": 216,
}
"""Pin-count letter -> pins, for describing a part (``J`` is also 8-pin on some lines)."""

_PART = re.compile(
    r"^(?:STM32)?"
    r"(?P<type>[A-Z]{1,2})"                  # F, L, G, H, U, C, WB, WL
    r"(?P<line>\d(?:\d\d|[A-Z]\d|\d))"       # 103, 4R5, 0B1, 55
    r"(?P<pins>[A-Z])"
    r"(?P<flash>[0-9A-Z])"
    r"(?P<suffix>[0-9A-Z]*)$")


class PartNumberError(ValueError):
    """The text is not an STM32 part number this module can decode; says which part is wrong."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"{text!r} is not a decodable STM32 part number: {reason}")
        self.text = text
        self.reason = reason


@dataclass(frozen=True)
class PartNumber:
    """One decoded part number (``STM32F103C8`` or a full ordering code such as ``STM32F103C8T6``)."""

    name: str          # "STM32F103C8": type, line, pins and flash letters, without package suffix
    product_type: str  # "F"
    line: str          # "103"
    family: str        # "F1": what ``[target] family`` and the chip identification compare
    pin_code: str      # "C"
    flash_code: str    # "8"
    flash_size: int    # bytes of main flash
    suffix: str = ""   # "T6": package, temperature, options; not interpreted

    @property
    def pins(self) -> int | None:
        """Pin count, when the letter is one of the usual ones."""
        return PIN_COUNT_CODES.get(self.pin_code)

    @property
    def flash_base(self) -> int:
        return FLASH_BASE

    @property
    def flash_end(self) -> int:
        """First address after main flash."""
        return FLASH_BASE + self.flash_size

    def contains(self, start: int, end: int) -> bool:
        """True when ``[start, end)`` lies inside main flash."""
        return FLASH_BASE <= start <= end <= self.flash_end

    def describe(self) -> str:
        return f"{self.name} ({self.family}, {format_size(self.flash_size)} flash)"


def normalize_family(text: str) -> str:
    """``"stm32f1"``, ``"F1"``, ``"STM32F1"`` -> ``"F1"`` (no validation against a family list)."""
    return text.strip().upper().removeprefix("STM32")


def decode_part_number(text: str) -> PartNumber:
    """Decode ``text``; raise :class:`PartNumberError` naming the bad piece.

    Accepts the name with or without ``STM32`` and with or without the package suffix, any case.
    """
    clean = text.strip().upper()
    match = _PART.match(clean)
    if match is None:
        raise PartNumberError(text, "expected STM32 + type letters + line digits + pin-count letter"
                                    " + flash-size letter, e.g. STM32F103C8 or STM32L432KC")
    flash_code = match["flash"]
    if flash_code not in FLASH_SIZE_CODES:
        allowed = ", ".join(f"{code}={format_size(size)}" for code, size in FLASH_SIZE_CODES.items())
        raise PartNumberError(text, f"unknown flash-size letter {flash_code!r} (known: {allowed})")
    product_type, line = match["type"], match["line"]
    name = f"STM32{product_type}{line}{match['pins']}{flash_code}"
    family = product_type + (line[0] if len(product_type) == 1 else "")
    return PartNumber(name=name, product_type=product_type, line=line, family=family,
                      pin_code=match["pins"], flash_code=flash_code,
                      flash_size=FLASH_SIZE_CODES[flash_code], suffix=match["suffix"])


def format_size(size: int) -> str:
    """``65536`` -> ``"64 KiB"``, ``1572864`` -> ``"1.5 MiB"``."""
    if size >= 1024 * _KIB and size % (512 * _KIB) == 0:
        mib = size / (1024 * _KIB)
        return f"{mib:g} MiB"
    if size % _KIB == 0:
        return f"{size // _KIB} KiB"
    return f"{size} bytes"
