"""The libusb backend against fake ST-Links: the real libusb (libusb-package) and python-libusb1
drive fake usbfs nodes under umockdev (tests/usbfake). Real time throughout: the backend is never
run on a virtual clock. Needs ``umockdev-wrapper`` (see tests/conftest.py)."""

from __future__ import annotations

import contextlib
import logging
import struct
import threading
import time

import anyio
import pytest
import pytest_asyncio

from gangflash.transport.backend import Backend, ProbeInfo, ProbeLink
from gangflash.transport.errors import ProbeBusy, ProbeGone, ProbeNotFound, TransportError, \
    UsbStall, UsbTimeout
from gangflash.transport.libusb_backend import HotplugKind, LibusbBackend
from gangflash.transport.stlink import Stlink

# Real time even under --looptime: libusb's timeouts and the event thread run on the wall clock.
pytestmark = [pytest.mark.usb, pytest.mark.asyncio, pytest.mark.looptime(False)]
log = logging.getLogger(__name__)

GET_VERSION = bytes([0xF1]) + bytes(15)
RAW_V2_SERIAL = "\x55\xff\x6b\x06\x49\x80\x53\x50\x52\x35\x16\x87"   # old V2: 12 raw bytes
PROBES = {  # port path: (variant in the simulator's table, serial string, expected ProbeInfo bits)
    "1-1": ("V2", RAW_V2_SERIAL, dict(serial="55FF6B064980535052351687", pid=0x3748,
                                      variant="V2", max_packet=64, out_ep=0x02, in_ep=0x81)),
    "1-2": ("V3", "003A00293438510934383330", dict(serial="003A00293438510934383330",
                                                   pid=0x374F, variant="V3S", max_packet=512,
                                                   out_ep=0x01, in_ep=0x81)),
    "1-3.2": ("V2-1", "066DFF495051717867174230", dict(serial="066DFF495051717867174230",
                                                       pid=0x374B, variant="V2-1", max_packet=64,
                                                       out_ep=0x01, in_ep=0x81)),
}


@pytest.fixture
def bus(fake_usb_bus):
    """Three fake probes: a V2 with a 12-byte serial, a V3, and a V2-1 behind a hub."""
    fake_usb_bus.add_hub("1-3")
    for port, (variant, serial_string, _) in PROBES.items():
        fake_usb_bus.add_probe(port, variant, serial_string)
    return fake_usb_bus


def event_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.endswith("-events") and t.is_alive()]


@pytest_asyncio.fixture
async def backend(fake_usb_bus):
    usb = LibusbBackend()
    yield usb
    await usb.aclose()
    assert event_threads() == []     # every libusb event thread stopped


async def open_at(backend: LibusbBackend, port: str):
    probes = {p.port_path: p for p in await backend.enumerate()}
    return await backend.open(probes[port])


async def get_version(link, timeout: float = 1.0) -> tuple[int, int, int]:
    """(major, vid, pid) from a GET_VERSION round trip."""
    await link.write(GET_VERSION, timeout)
    reply = await link.read(link.info.max_packet, timeout)
    assert len(reply) == 6
    vid, pid = struct.unpack_from("<HH", reply, 2)
    return reply[0] >> 4, vid, pid


async def wait_until(condition, timeout: float = 2.0) -> None:
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.001)


async def test_enumerate_finds_every_probe_with_decoded_serial_port_path_and_variant(
        bus, backend):
    probes = await backend.enumerate()

    assert [p.port_path for p in probes] == ["1-1", "1-2", "1-3.2"]   # the hub is not a probe
    for probe in probes:
        expected = PROBES[probe.port_path][2]
        assert {k: getattr(probe, k) for k in expected} == expected
        assert probe.vid == 0x0483
        assert probe.backend == "usb"


async def test_open_claims_the_debug_interface_and_answers_get_version(bus, backend):
    link = await open_at(backend, "1-1")
    node = bus.devices["1-1"].node

    assert isinstance(backend, Backend) and isinstance(link, ProbeLink)
    assert node.ioctl_counts["CLAIMINTERFACE"] == 1
    assert await get_version(link) == (2, 0x0483, 0x3748)
    await link.aclose()
    assert node.ioctl_counts["RELEASEINTERFACE"] == 1


async def test_round_trips_run_concurrently_on_several_probes(bus, backend):
    links = [await open_at(backend, port) for port in PROBES]
    rounds = 100
    seen: dict[str, set[int]] = {}

    start = time.perf_counter()
    for _ in range(rounds):
        await get_version(links[0])
    log.info("%d sequential round trips on one probe: %.2f ms each", rounds,
             (time.perf_counter() - start) / rounds * 1000)

    async def hammer(link) -> None:
        pids = seen.setdefault(link.info.port_path, set())
        for _ in range(rounds):
            pids.add((await get_version(link))[2])

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for link in links:
            tg.start_soon(hammer, link)
    elapsed = time.perf_counter() - start

    assert seen == {port: {PROBES[port][2]["pid"]} for port in PROBES}
    log.info("%d concurrent round trips on %d probes: %.3f s, %.2f ms per round trip per probe",
             rounds * len(links), len(links), elapsed, elapsed / rounds * 1000)
    for link in links:
        await link.aclose()


async def test_read_with_nothing_queued_times_out_after_its_timeout(bus, backend):
    link = await open_at(backend, "1-1")
    node = bus.devices["1-1"].node

    start = time.perf_counter()
    with pytest.raises(UsbTimeout) as caught:
        await link.read(64, 0.15)
    elapsed = time.perf_counter() - start

    assert 0.14 <= elapsed < 1.0
    assert caught.value.serial == "55FF6B064980535052351687"
    assert node.ioctl_counts["DISCARDURB"] == 1 and node.parked() == 0
    assert await get_version(link) == (2, 0x0483, 0x3748)      # still usable


async def test_cancelling_a_read_discards_its_transfer_and_keeps_the_link_usable(bus, backend):
    link = await open_at(backend, "1-2")
    node = bus.devices["1-2"].node

    async with anyio.create_task_group() as tg:
        tg.start_soon(link.read, 512, 30.0)
        await wait_until(lambda: node.parked() == 1)
        tg.cancel_scope.cancel()

    assert node.ioctl_counts["DISCARDURB"] == 1 and node.parked() == 0
    with anyio.move_on_after(0.05):                  # a deadline scope cancels the same way
        await link.read(512, 30.0)
    assert node.ioctl_counts["DISCARDURB"] == 2 and node.parked() == 0
    assert await get_version(link) == (3, 0x0483, 0x374F)


async def test_stall_raises_usb_stall_and_clears_the_halt(bus, backend):
    link = await open_at(backend, "1-1")
    node = bus.devices["1-1"].node

    node.stall(0x81)
    await link.write(GET_VERSION, 1.0)
    with pytest.raises(UsbStall):
        await link.read(64, 1.0)
    assert node.ioctl_counts["CLEAR_HALT"] == 1
    assert len(await link.read(64, 1.0)) == 6                   # the reply is still queued

    node.stall(0x02)
    with pytest.raises(UsbStall):
        await link.write(GET_VERSION, 1.0)
    assert node.ioctl_counts["CLEAR_HALT"] == 2
    assert await get_version(link) == (2, 0x0483, 0x3748)


async def test_unplug_ends_a_parked_read_with_probe_gone_and_later_calls_too(bus, backend):
    link = await open_at(backend, "1-2")
    node = bus.devices["1-2"].node
    outcome: list[BaseException] = []

    async def reader() -> None:
        try:
            await link.read(512, 30.0)
        except TransportError as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        await wait_until(lambda: node.parked() == 1)
        bus.unplug("1-2")

    assert len(outcome) == 1 and isinstance(outcome[0], ProbeGone)
    with pytest.raises(ProbeGone):
        await link.write(GET_VERSION, 1.0)
    await link.aclose()
    assert [p.port_path for p in await backend.enumerate()] == ["1-1", "1-3.2"]


async def test_submit_after_unplug_raises_probe_gone(bus, backend):
    link = await open_at(backend, "1-1")
    node = bus.devices["1-1"].node
    bus.unplug("1-1")

    with pytest.raises(ProbeGone):
        await link.write(GET_VERSION, 1.0)
    assert node.ioctl_counts["SUBMITURB"] >= 1    # libusb itself reported NO_DEVICE
    await link.aclose()


async def test_closing_with_transfers_in_flight_cancels_them_cleanly(bus, backend):
    links = [await open_at(backend, port) for port in ("1-1", "1-2")]
    errors: list[BaseException] = []

    async def reader(link) -> None:
        try:
            await link.read(link.info.max_packet, 30.0)
        except TransportError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for link in links:
            tg.start_soon(reader, link)
        await wait_until(lambda: all(bus.devices[p].node.parked() == 1 for p in ("1-1", "1-2")))
        await links[0].aclose()        # one link by itself...
        await backend.aclose()         # ...the other with the whole backend

    assert len(errors) == 2 and all("closed" in str(e) for e in errors)
    with pytest.raises(TransportError, match="closed"):
        await links[0].write(GET_VERSION, 1.0)


async def test_idle_event_thread_does_not_spin(bus, backend):
    link = await open_at(backend, "1-1")
    node = bus.devices["1-1"].node
    await get_version(link)

    reaps, cpu = node.ioctl_counts["REAPURBNDELAY"], time.process_time()
    await anyio.sleep(0.5)      # without the FIFO trick libusb would reap ~2500 times here
    reaps, cpu = node.ioctl_counts["REAPURBNDELAY"] - reaps, time.process_time() - cpu

    log.info("idle for 0.5 s with a link open: %d REAPURBNDELAY, %.3f CPU-s", reaps, cpu)
    assert reaps <= 2           # at most the EAGAIN reap that ends the last round trip
    assert cpu < 0.05


async def test_reset_resets_the_port_and_the_link_keeps_working(bus, backend):
    link = await open_at(backend, "1-3.2")
    node = bus.devices["1-3.2"].node

    await link.reset()

    assert node.ioctl_counts["RESET"] == 1
    assert await get_version(link) == (2, 0x0483, 0x374B)


async def test_claim_refused_raises_probe_busy_naming_other_programs(bus, backend):
    import errno

    bus.devices["1-1"].node.claim_errno = errno.EBUSY
    with pytest.raises(ProbeBusy, match="another program"):
        await open_at(backend, "1-1")


async def test_open_of_an_absent_probe_raises_probe_not_found(bus, backend):
    ghost = ProbeInfo(serial="DEADBEEF", vid=0x0483, pid=0x3748, variant="V2", port_path="1-9",
                      backend="usb", max_packet=64, in_ep=0x81, out_ep=0x02)
    with pytest.raises(ProbeNotFound):
        await backend.open(ghost)
    assert len(event_threads()) == 1        # the extra context tried for it is gone again


async def test_open_rejects_a_different_probe_now_at_the_same_port(bus, backend):
    probe = next(p for p in await backend.enumerate() if p.port_path == "1-1")
    bus.unplug("1-1")
    bus.add_probe("1-1", "V2", "0670FF485550755187103520")
    with pytest.raises(ProbeNotFound, match="0670FF485550755187103520"):
        await backend.open(probe)


async def test_a_probe_plugged_in_after_the_first_open_can_be_opened(fake_usb_bus, backend):
    fake_usb_bus.add_probe("1-1", "V2", RAW_V2_SERIAL)
    first = await open_at(backend, "1-1")         # the I/O context now lists only this probe
    fake_usb_bus.add_probe("1-4", "V3E", "002500213338510A34383330")

    second = await open_at(backend, "1-4")     # on a fresh I/O context (one more thread)

    assert len(event_threads()) == 2
    assert await get_version(first) == (2, 0x0483, 0x3748)
    assert await get_version(second) == (3, 0x0483, 0x374E)
    await first.aclose()
    assert len(event_threads()) == 1            # the stale context went with its last link
    await second.aclose()


async def test_the_stlink_driver_opens_probes_through_libusb(bus, backend):
    versions = {}

    async def start(port: str) -> None:
        async with await Stlink.open(await open_at(backend, port)) as probe:
            versions[port] = str(probe.version)
            assert await probe.current_mode() is not None

    async with anyio.create_task_group() as tg:
        for port in PROBES:
            tg.start_soon(start, port)

    assert versions == {"1-1": "V2J37S7", "1-2": "V3J10S1M7B3", "1-3.2": "V2J37M26"}


async def test_watch_reports_probes_arriving_and_leaving(fake_usb_bus, backend):
    fake_usb_bus.add_probe("1-1", "V2", RAW_V2_SERIAL)
    async with contextlib.aclosing(backend.watch(poll_interval=0.05)) as events:
        first = await anext(events)
        assert (first.kind, first.probe.port_path) == (HotplugKind.ARRIVED, "1-1")

        fake_usb_bus.add_probe("1-2", "V3", "003A00293438510934383330")
        with anyio.fail_after(2):
            arrived = await anext(events)
        assert (arrived.kind, arrived.probe.serial) == (HotplugKind.ARRIVED,
                                                        "003A00293438510934383330")

        fake_usb_bus.unplug("1-1")
        with anyio.fail_after(2):
            left = await anext(events)
        assert (left.kind, left.probe.serial) == (HotplugKind.LEFT, "55FF6B064980535052351687")
