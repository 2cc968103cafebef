"""Simulated hardware: a virtual ST-Link that speaks the real USB protocol and virtual STM32 chips
whose Cortex-M core runs real Thumb code (Unicorn) against modelled flash controllers.

This package is the other side of the USB cable: it imports nothing from the rest of gangflash and
never bends to help the tool. Time is virtual (see ``clock``); faults are injectable (``faults``).
"""
