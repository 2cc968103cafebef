"""gangflash: program many STM32 boards at once through many ST-Link probes.

Layers import only downward: ``cli`` -> ``tui`` -> ``orchestrator`` -> ``target`` -> ``transport``.
``sim`` is the other side of the USB cable and imports nothing from the rest.
"""

__version__ = "0.1.0"
