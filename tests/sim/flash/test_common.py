"""Shared machinery: key sequences, half-done cells, the controller factory, the poll quantum."""

from __future__ import annotations

import random

import pytest

from gangflash.sim.flash.common import KeySequence, half_done

from .conftest import KEY1, KEY2


def test_key_sequence():
    keys = KeySequence(KEY1, KEY2)
    assert keys.feed(KEY1, 0xFFFFFFFF) is None
    assert keys.feed(KEY2, 0xFFFFFFFF) is True
    assert keys.feed(KEY1, 0xFFFFFFFF) is None            # again while unlocked: harmless
    assert keys.feed(KEY2, 0xFFFFFFFF) is True
    assert keys.feed(KEY2, 0xFFFFFFFF) is False           # out of order
    assert keys.feed(KEY1, 0xFFFFFFFF) is False and keys.frozen
    keys.reset()
    assert keys.feed(KEY1 & 0xFF, 0xFF) is False          # a byte write is never a key


@pytest.mark.parametrize("seed", range(20))
def test_half_done_is_neither_old_nor_new(seed):
    rng = random.Random(seed)
    old = bytes(rng.getrandbits(8) for _ in range(64))
    for new in (b"\xFF" * 64, bytes(a & b for a, b in zip(old, bytes(64)))):
        out = half_done(old, new, random.Random(seed))
        assert out not in (old, new) and len(out) == 64


def test_half_done_single_bit_and_equal():
    assert half_done(b"\x00", b"\x00", random.Random(1)) == b"\x00"
    assert half_done(b"\xFE", b"\xFF", random.Random(1)) == b"\xFF"    # nothing in between
    assert half_done(b"\xFC", b"\xFF", random.Random(1)) in (b"\xFD", b"\xFE")


@pytest.mark.parametrize("chip, cls, reg_base", [
    ("F103C8", "F1FlashController", 0x40022000), ("F103RC", "F1FlashController", 0x40022000),
    ("F412ZG", "F4FlashController", 0x40023C00), ("L432KC", "L4FlashController", 0x40022000)])
def test_factory(rig, chip, cls, reg_base):
    b = rig(chip)
    assert type(b.ctrl).__name__ == cls and b.ctrl.reg_base == reg_base
    assert b.ctrl.option_size > 0 and not b.ctrl.busy() and b.ctrl.next_event() is None


def test_status_polling_consumes_time_in_quanta(rig):
    b = rig("L432KC")
    b.w(0x08, KEY1)
    b.w(0x08, KEY2)
    b.w(0x14, 2 | 5 << 3)
    b.w(0x14, (2 | 5 << 3) | 1 << 16)
    reads = b.poll(0x10, 1 << 16)
    assert b.t == pytest.approx(22e-3)
    assert reads == pytest.approx(22e-3 / 50e-6 + 1, abs=1)
    assert all(s <= 50e-6 + 1e-12 for s in b.stalls)
    b.r(0x10)
    assert b.t == pytest.approx(22e-3)          # no wait charged once BSY is clear


def _erasing_f1(rig):
    b = rig("F103C8")
    b.w(0x04, KEY1)
    b.w(0x04, KEY2)
    b.w(0x10, 2)
    b.w(0x14, 0x08000000)
    b.w(0x10, 2 | 1 << 6)
    return b


def test_flash_read_while_busy_stalls_until_the_end(rig):
    b = _erasing_f1(rig)
    b.advance(10e-3)
    assert b.ctrl.flash_readable(0x08000000, from_debugger=True)
    assert b.stalls == [pytest.approx(20e-3)] and b.t == pytest.approx(30e-3)
    assert not b.ctrl.busy()


def test_uncharged_read_leaves_bsy_to_its_end_but_store_completes_it(rig):
    b = _erasing_f1(rig)
    b.charge = False
    assert b.ctrl.flash_readable(0x08000000, from_debugger=True)
    assert b.ctrl.busy() and b.read(0x08000000, 4) == b"\xFF" * 4
    b.w(0x10, 1)                                # PG
    b.store(0x08000000, 0x1234, 2)              # must be held: completes the erase first
    assert b.u16(0x08000000) == 0x1234 and b.ctrl.next_event() == pytest.approx(52.5e-6)
