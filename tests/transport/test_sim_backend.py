"""The simulated backend: enumeration, hot-plug, open/close rules, error mapping, virtual cost."""

from __future__ import annotations

import anyio
import pytest

from gangflash.transport.backend import Backend, ProbeInfo, ProbeLink
from gangflash.transport.errors import ProbeBusy, ProbeGone, ProbeNotFound, UsbStall, UsbTimeout
from gangflash.transport.sim_backend import SimBackend
from gangflash.transport.stlink.protocol import block, memory_block

from .simhelp import open_probe, sim_probe

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]


async def test_enumerate_describes_each_variant_from_the_tools_table():
    probes = [sim_probe(model=m, index=i) for i, m in enumerate(["V2", "V2-1", "V3", "V3E"])]
    backend = SimBackend(probes)
    assert isinstance(backend, Backend)
    infos = await backend.enumerate()
    assert [i.variant for i in infos] == ["V2", "V2-1", "V3S", "V3E"]
    assert [i.port_path for i in infos] == ["sim:0", "sim:1", "sim:2", "sim:3"]
    assert [i.max_packet for i in infos] == [64, 64, 512, 512]
    assert [(i.out_ep, i.in_ep) for i in infos] == [(0x02, 0x81)] + [(0x01, 0x81)] * 3
    assert [i.serial for i in infos] == [p.serial for p in probes]
    assert all(i.backend == "sim" and i.vid == 0x0483 for i in infos)


async def test_old_v2_twelve_byte_serial_decoded_to_hex():
    from gangflash.sim.probe import SimProbe
    raw = "".join(chr(b) for b in bytes.fromhex("55FF6B065177495619420887"))
    probe = SimProbe(serial=raw, target=None, clock=anyio.current_time, model="V2")
    [info] = await SimBackend([probe]).enumerate()
    assert info.serial == "55FF6B065177495619420887" == probe.serial


async def test_hot_plug_add_remove_and_unplug():
    a, b, c = (sim_probe(index=i) for i in range(3))
    backend = SimBackend([a])
    assert [i.serial for i in await backend.enumerate()] == [a.serial]
    backend.add(b)
    backend.add(c)
    assert [i.serial for i in await backend.enumerate()] == [a.serial, b.serial, c.serial]
    backend.remove(a)
    b.unplug()
    infos = await backend.enumerate()
    assert [(i.serial, i.port_path) for i in infos] == [(c.serial, "sim:2")]   # paths stay put


async def test_open_is_exclusive_until_closed():
    probe = sim_probe()
    backend = SimBackend([probe])
    [info] = await backend.enumerate()
    link = await backend.open(info)
    assert isinstance(link, ProbeLink)
    with pytest.raises(ProbeBusy):
        await backend.open(info)
    await link.aclose()
    await (await backend.open(info)).aclose()


async def test_open_missing_or_unplugged_probe():
    probe = sim_probe()
    backend = SimBackend([probe])
    [info] = await backend.enumerate()
    probe.unplug()
    with pytest.raises(ProbeGone):
        await backend.open(info)
    ghost = ProbeInfo(serial="X", vid=0x0483, pid=0x3748, variant="V2", port_path="sim:99",
                      backend="sim", max_packet=64)
    with pytest.raises(ProbeNotFound):
        await backend.open(ghost)


async def test_transfers_cost_virtual_time_and_empty_read_costs_the_timeout():
    probe = sim_probe()
    [info] = await (backend := SimBackend([probe])).enumerate()
    link = await backend.open(info)
    start = anyio.current_time()
    await link.write(block(0xF1), 1.0)
    reply = await link.read(64, 1.0)
    elapsed = anyio.current_time() - start
    assert len(reply) == 6 and 0 < elapsed < 0.01          # about one USB frame
    start = anyio.current_time()
    with pytest.raises(UsbTimeout):
        await link.read(64, 0.25)
    assert anyio.current_time() - start == pytest.approx(0.25)


async def test_transfer_slower_than_timeout_is_a_timeout():
    stlink = await open_probe(sim_probe())
    await stlink.connect(swd_khz=5)                          # 5 kHz: 6 KiB takes seconds
    start = anyio.current_time()
    with pytest.raises(UsbTimeout):
        await stlink.link.write(memory_block(0xF2, 0x07, 0x20000000, 6144), 0.1)
    assert anyio.current_time() - start == pytest.approx(0.1)


async def test_sim_faults_map_to_transport_errors():
    probe = sim_probe()
    [info] = await (backend := SimBackend([probe])).enumerate()
    link = await backend.open(info)
    n = probe.stats["transfers_out"] + probe.stats["transfers_in"]
    probe.faults.usb_stall_on = n + 1
    with pytest.raises(UsbStall):
        await link.write(block(0xF5), 1.0)
    probe.faults.usb_timeout_on = n + 2
    start = anyio.current_time()
    with pytest.raises(UsbTimeout):
        await link.write(block(0xF5), 0.5)
    assert anyio.current_time() - start == pytest.approx(0.5)
    probe.unplug()
    with pytest.raises(ProbeGone):
        await link.read(64, 1.0)
    await link.aclose()
    with pytest.raises(ProbeGone):
        await link.write(block(0xF5), 1.0)


async def test_usb_reset_costs_time_and_drops_queued_replies():
    probe = sim_probe()
    [info] = await (backend := SimBackend([probe])).enumerate()
    link = await backend.open(info)
    await link.write(block(0xF1), 1.0)
    start = anyio.current_time()
    await link.reset()
    assert anyio.current_time() - start >= 0.02             # USB 2.0 reset + recovery
    with pytest.raises(UsbTimeout):
        await link.read(64, 0.01)
