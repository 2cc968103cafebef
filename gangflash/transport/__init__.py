"""Bytes to a probe: USB backends (libusb1 async, in-process simulator) and the ST-Link driver."""
