"""RW_MISC (F2 51 / F2 52): the batched single-word accesses OpenOCD's dapdirect driver sends
when the firmware (V2J32+ / V3J2+) and, over TCP, the server (API 3) allow them."""

from __future__ import annotations

import struct

import pytest

from gangflash.sim.probe_misc import MAX_ITEMS_V2

from .fake_target import RAM_BASE
from .test_probe_bytes import BOTH, make

ADDRESS, WRITE, READ, APNUM = 1, 2, 3, 5


def batch(items: list[tuple[int, int]]) -> tuple[bytes, bytes]:
    """The F2 51 block and its data phase: opcodes padded to 4, then one u32 per item."""
    n = len(items)
    ops = bytes(op for op, _ in items).ljust((n + 3) & ~3, b"\0")
    values = b"".join(struct.pack("<I", value) for _, value in items)
    return b"\xF2\x51" + struct.pack("<I", n), ops + values


def run(host, items):
    block, data = batch(items)
    assert host.cmd(block, data) is None                  # OUT only: no reply
    reply = host.cmd(b"\xF2\x52", reply=8 * len(items))
    assert len(reply) == 8 * len(items)
    n = len(items)
    return list(struct.unpack(f"<{n}I", reply[:4 * n])), list(struct.unpack(f"<{n}I", reply[4 * n:]))


@BOTH
def test_batch_writes_then_reads_words(model):
    host, target = make(model, enter=True)
    values, statuses = run(host, [(APNUM, 0), (ADDRESS, RAM_BASE), (WRITE, 0xCAFEF00D),
                                  (ADDRESS, RAM_BASE + 4), (WRITE, 0x12345678),
                                  (READ, RAM_BASE), (READ, RAM_BASE + 4)])
    assert statuses == [0x80] * 7
    assert values[5:] == [0xCAFEF00D, 0x12345678]
    assert target.mem_read(RAM_BASE, 8, 4) == struct.pack("<II", 0xCAFEF00D, 0x12345678)


def test_first_failure_stops_the_batch():
    host, target = make("V2", enter=True)
    values, statuses = run(host, [(ADDRESS, RAM_BASE + 2), (WRITE, 1), (ADDRESS, RAM_BASE), (WRITE, 2)])
    assert statuses[0] == 0x80
    assert statuses[1] == 0x0A and statuses[2:] == [0x0A, 0x0A]      # alignment, later ones too
    assert target.mem_read(RAM_BASE, 4, 4) != struct.pack("<I", 2)


def test_outside_debug_mode_every_item_fails():
    host, _ = make("V2")
    _, statuses = run(host, [(READ, RAM_BASE)])
    assert statuses == [0x06]


@pytest.mark.parametrize("model,jtag", [("V2", 31), ("V3", 1)])
def test_gated_before_j32_and_v3j2(model, jtag):
    host, _ = make(model, jtag=jtag, enter=True)
    block, data = batch([(READ, RAM_BASE)])
    assert host.cmd(block, data, reply=2) == b"\x42\x00"     # unknown; its data phase consumed
    assert host.cmd(b"\xF2\x52", reply=8) == b"\x42\x00"
    assert host.rw_status2()[0] == 0x80                      # framing intact afterwards


def test_over_the_item_limit_is_refused():
    host, _ = make("V2", enter=True)
    block = b"\xF2\x51" + struct.pack("<I", MAX_ITEMS_V2 + 1)
    assert host.cmd(block) is None
    assert host.rw_status2()[0] == 0x80       # no data phase was taken: this is a command again
