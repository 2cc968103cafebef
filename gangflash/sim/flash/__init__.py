"""Flash controller models, one per controller generation (F1 FPEC, F2/F4 sectors, L4 double word).

``base`` holds the interface the simulated target calls; each family module models its reference
manual (register layout, keys and lock, BSY timing, every error flag and how it clears, programming
unit, erase, write protection, option bytes and readout protection).
"""

from .base import FlashController, FlashEnv, FlashMemory, make_controller

__all__ = ["FlashController", "FlashEnv", "FlashMemory", "make_controller"]
