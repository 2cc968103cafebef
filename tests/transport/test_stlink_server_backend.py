"""The stlink-server backend (gangflash as a TCP client) against the simulator's stlink-server,
and against a scripted peer for answers the simulator never gives (busy, API 1, a mid-command
close).

The client runs on a normal real-time asyncio loop (no looptime): a virtual-time loop would skip
ahead while waiting on a real socket. The server runs on its own loop in a thread.
"""

from __future__ import annotations

import dataclasses
import socket
import struct

import anyio
import pytest

from gangflash.sim.bench import make_probe
from gangflash.sim.clock import ManualClock
from gangflash.sim.stlink_server import serving_in_thread
from gangflash.transport.backend import ProbeInfo
from gangflash.transport.errors import ProbeBusy, ProbeGone, ProbeNotFound, UsbTimeout
from gangflash.transport.stlink import Stlink
from gangflash.transport.stlink.channel import CommandChannel
from gangflash.transport.stlink_server import (
    ServerError, ServerUnreachable, StlinkServerBackend, parse_probe_url,
)

pytestmark = pytest.mark.asyncio
IDCODE_F1 = 0x1BA01477          # SW-DP IDCODE of the STM32F1 (Cortex-M3)


def _devices(*boards: tuple[str, str]):
    out = []
    for index, (chip, model) in enumerate(boards):
        clock = ManualClock()
        out.append((make_probe(chip, clock=clock, model=model, index=index), clock))
    return out


@pytest.fixture
def server():
    """The simulator's stlink-server with an F103C8 behind a V2 and an F412ZG behind a V3."""
    with serving_in_thread(_devices(("F103C8", "V2"), ("F412ZG", "V3")), port=0) as srv:
        yield srv


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- against the simulator's server ----------------------------------------------------------

async def test_enumeration_names_serials_variants_and_server(server):
    backend = StlinkServerBackend("127.0.0.1", server.port)
    infos = await backend.enumerate()
    expected = [d["serial"] for d in server.stats()]
    assert [i.serial for i in infos] == expected
    assert [(i.variant, i.max_packet, i.backend) for i in infos] == [("V2", 64, "tcp"), ("V3S", 512, "tcp")]
    assert infos[0].port_path == f"tcp://127.0.0.1:{server.port}/{expected[0]}"
    assert parse_probe_url(infos[0].port_path) == ("127.0.0.1", server.port, expected[0])
    assert backend.api == 3 and infos[0].max_transfer == 0
    await backend.aclose()


async def test_the_driver_reads_idcode_and_memory_over_tcp(server):
    backend = StlinkServerBackend("127.0.0.1", server.port)
    f1, f4 = await backend.enumerate()
    async with await Stlink.open(await backend.open(f1)) as probe:
        await probe.connect(swd_khz=4000)
        assert await probe.read_idcode() == IDCODE_F1
        await probe.halt()
        data = bytes(range(256)) * 32                       # 8 KiB: two 6 KiB-capped chunks
        await probe.write_memory(0x20000000, data)
        assert await probe.read_memory(0x20000000, len(data)) == data
        assert await probe.read_memory(0x20000001, 3, width=1) == data[1:4]     # 8-bit path
    async with await Stlink.open(await backend.open(f4)) as probe:
        await probe.connect(swd_khz=4000)
        assert await probe.read_idcode() == 0x2BA01477
    assert [d["in_use"] for d in server.stats()] == [False, False]     # CLOSE_DEV / socket close
    await backend.aclose()


async def test_open_close_and_a_probe_in_use_is_busy(server):
    backend = StlinkServerBackend("127.0.0.1", server.port)
    info = (await backend.enumerate())[0]
    link = await backend.open(info)
    assert server.stats()[0]["in_use"]
    other = StlinkServerBackend("127.0.0.1", server.port)      # another program
    with pytest.raises(ProbeBusy) as busy:
        await other.open(info)
    assert info.serial in str(busy.value) and f"127.0.0.1:{server.port}" in str(busy.value)
    await link.aclose()
    for _ in range(100):                                       # the server sees CLOSE_DEV at once
        if not server.stats()[0]["in_use"]:
            break
        await anyio.sleep(0.01)
    again = await other.open(info)
    await again.aclose()
    await other.aclose()
    await backend.aclose()


async def test_unknown_serial_names_server_and_serial(server):
    backend = StlinkServerBackend("127.0.0.1", server.port)
    info = dataclasses.replace((await backend.enumerate())[0], serial="NOSUCHPROBE")
    with pytest.raises(ProbeNotFound) as missing:
        await backend.open(info)
    text = str(missing.value)
    assert "NOSUCHPROBE" in text and f"127.0.0.1:{server.port}" in text


async def test_connection_refused_is_a_clear_error():
    port = _free_port()
    backend = StlinkServerBackend("127.0.0.1", port)
    with pytest.raises(ServerUnreachable) as refused:
        await backend.enumerate()
    assert f"127.0.0.1:{port}" in str(refused.value) and "refused" in str(refused.value).lower()


async def test_server_gone_mid_session_is_probe_gone():
    with serving_in_thread(_devices(("F103C8", "V2")), port=0) as srv:
        backend = StlinkServerBackend("127.0.0.1", srv.port)
        probe = await Stlink.open(await backend.open((await backend.enumerate())[0]))
        await probe.connect(swd_khz=4000)
    with pytest.raises(ProbeGone) as gone:                     # the server has stopped
        await probe.read_idcode()
    assert gone.value.serial == probe.serial and gone.value.command
    await probe.aclose()
    await backend.aclose()


async def test_a_link_out_of_step_redials_and_the_probe_keeps_its_state(server):
    backend = StlinkServerBackend("127.0.0.1", server.port)
    link = await backend.open((await backend.enumerate())[0])
    async with await Stlink.open(link) as probe:
        await probe.connect(swd_khz=4000)
        await probe.write_memory(0x20000000, b"kept")
        await link._conn.aclose()          # as after a reply that never came: socket out of step
        assert await probe.read_memory(0x20000000, 4) == b"kept"
        assert link.reconnects == 1
    await backend.aclose()


async def test_old_api_caps_memory_transfers(server):
    backend = StlinkServerBackend("127.0.0.1", server.port)
    info = (await backend.enumerate())[0]
    async with await Stlink.open(await backend.open(info)) as probe:
        probe.info = dataclasses.replace(info, max_transfer=1024)
        assert max(chunk.length for chunk in probe.plan(0x20000000, 6144, 4)) == 1024


# --- against a scripted peer -----------------------------------------------------------------

SERIAL = "SCRIPTED0001"                # 12 characters: hex-expanded as on USB


def _dev_info(serial: str = "ABCDEF0123456789ABCDEF01", in_use: int = 0) -> bytes:
    return struct.pack("<II32sHHB", 1, 0x77, serial.encode(), 0x0483, 0x374B, in_use)


class ScriptedPeer:
    """A TCP peer that reads requests of known lengths and answers each with canned bytes
    (None: close the connection instead). Records what it received."""

    def __init__(self, script: list[tuple[int, bytes | None]], api: int = 3) -> None:
        opening = [(4, struct.pack("<4I", api, 2, 1, 0)), (2, struct.pack("<I", 1)),
                   (1, struct.pack("<I", 1)), (8, _dev_info())]
        self.script = opening + script
        self.received: list[bytes] = []
        self.port = 0

    async def run(self, *, task_status=anyio.TASK_STATUS_IGNORED) -> None:
        listener = (await anyio.create_tcp_listener(local_host="127.0.0.1")).listeners[0]
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        task_status.started()
        async with listener:
            stream = await listener.accept()
            async with stream:
                buffer = b""
                for size, reply in self.script:
                    while len(buffer) < size:
                        buffer += await stream.receive()
                    self.received.append(buffer[:size])
                    buffer = buffer[size:]
                    if reply is None:
                        return
                    await stream.send(reply)
                await anyio.sleep_forever()


async def _scripted_link(peer: ScriptedPeer, tg):
    await tg.start(peer.run)
    backend = StlinkServerBackend("127.0.0.1", peer.port)
    info = ProbeInfo(serial="ABCDEF0123456789ABCDEF01", vid=0x0483, pid=0x374B, variant="V2-1",
                     port_path=f"tcp://127.0.0.1:{peer.port}/ABCDEF0123456789ABCDEF01",
                     backend="tcp", max_packet=64)
    return backend, await backend.open(info)


async def test_busy_status_is_retried_like_a_wait():
    reply = b"\x80\x00"
    peer = ScriptedPeer([(8, struct.pack("<II", 1, 0x42)),                    # OPEN_DEV
                         (32, struct.pack("<I", 0x2004) + bytes(2)),          # busy
                         (32, struct.pack("<I", 0x2004) + bytes(2)),          # busy
                         (32, struct.pack("<I", 1) + reply)])                 # answered
    async with anyio.create_task_group() as tg:
        backend, link = await _scripted_link(peer, tg)
        assert await link.transact(b"\xf5", None, 2, 1.0) == reply
        usb = peer.received[-1]
        assert usb[0] == 0x05 and struct.unpack_from("<I", usb, 4)[0] == 0x42
        assert usb[8] == 0xF5 and usb[24] == 1 and struct.unpack_from("<I", usb, 28)[0] == 2
        assert len(peer.received) == 8
        tg.cancel_scope.cancel()


async def test_write_commands_carry_their_data_and_get_a_status_only():
    peer = ScriptedPeer([(8, struct.pack("<II", 1, 7)), (32 + 8, struct.pack("<I", 1))])
    async with anyio.create_task_group() as tg:
        backend, link = await _scripted_link(peer, tg)
        assert await link.transact(b"\xf2\x08", b"12345678", 0, 1.0) == b""
        usb = peer.received[-1]
        assert usb[24] == 0 and struct.unpack_from("<I", usb, 28)[0] == 8 and usb[32:] == b"12345678"
        tg.cancel_scope.cancel()


async def test_error_statuses_are_typed_with_context():
    peer = ScriptedPeer([(8, struct.pack("<II", 1, 7)),
                         (32, struct.pack("<I", 0x1001) + bytes(2)),      # server-side USB timeout
                         (32, struct.pack("<I", 0x1053) + bytes(2))])     # command not available
    async with anyio.create_task_group() as tg:
        backend, link = await _scripted_link(peer, tg)
        with pytest.raises(UsbTimeout):
            await link.transact(b"\xf5", None, 2, 1.0)
        with pytest.raises(ServerError) as error:
            await link.transact(b"\xf5", None, 2, 1.0)
        assert error.value.status == 0x1053 and "0x1053" in str(error.value)
        assert f"127.0.0.1:{peer.port}" in str(error.value)
        tg.cancel_scope.cancel()


async def test_server_closing_mid_command_is_probe_gone_with_command_context():
    peer = ScriptedPeer([(8, struct.pack("<II", 1, 7)), (32, None)])
    async with anyio.create_task_group() as tg:
        backend, link = await _scripted_link(peer, tg)
        channel = CommandChannel(link, __import__("logging").getLogger("test"))
        with pytest.raises(ProbeGone) as gone:
            await channel.transfer(b"\xf5".ljust(16, b"\0"), name="GET_CURRENT_MODE", reply=2,
                                   timeout=1.0)
        assert gone.value.command == "GET_CURRENT_MODE" and channel.gone
        tg.cancel_scope.cancel()


async def test_api_1_server_caps_transfers_and_legacy_serials_are_expanded():
    peer = ScriptedPeer([], api=1)
    peer.script[3] = (8, _dev_info(SERIAL))
    async with anyio.create_task_group() as tg:
        await tg.start(peer.run)
        infos = await StlinkServerBackend("127.0.0.1", peer.port).enumerate()
        assert infos[0].max_transfer == 1024
        assert infos[0].serial == SERIAL.encode().hex().upper()
        tg.cancel_scope.cancel()


async def test_a_composite_backend_routes_each_probe_to_its_source(server):
    from gangflash.transport.composite import CompositeBackend
    from gangflash.transport.sim_backend import SimBackend
    local = make_probe("F103C8", clock=anyio.current_time, index=5)      # "on USB"
    backend = CompositeBackend([SimBackend([local]), StlinkServerBackend("127.0.0.1", server.port)])
    infos = await backend.enumerate()
    assert [i.backend for i in infos] == ["sim", "tcp", "tcp"]
    for info in (infos[0], infos[1]):
        async with await Stlink.open(await backend.open(info)) as probe:
            await probe.connect(swd_khz=4000)
            assert await probe.read_idcode() == IDCODE_F1
    assert server.stats()[0]["clients"] == 1 and server.stats()[1]["clients"] == 0
    stray = dataclasses.replace(infos[1], port_path="tcp://10.0.0.1:7184/X")
    with pytest.raises(ProbeNotFound):
        await backend.open(stray)
    await backend.aclose()


# --- recovery behind the server --------------------------------------------------------------

async def _open_f1(server):
    backend = StlinkServerBackend("127.0.0.1", server.port)
    info = (await backend.enumerate())[0]
    link = await backend.open(info)
    probe = await Stlink.open(link)
    await probe.connect(swd_khz=4000)
    await probe.halt()
    return backend, link, probe


async def test_a_lost_write_data_phase_never_lands_commands_in_sram(server):
    """A USB timeout in a write's data phase: the server answers 0x1001 and puts its probe back
    in step; the client reopens the session before asking the probe anything, so no command block
    is taken as write data and later replies are not shifted."""
    sim = server._devices[0].probe
    backend, link, probe = await _open_f1(server)
    await probe.write_memory(0x20000000, bytes(128))
    sim.faults.usb_timeout_on = sim._transfers + 2             # the data phase's OUT transfer
    with pytest.raises(UsbTimeout) as lost:
        await probe.write_memory(0x20000000, b"\xAA" * 64)
    assert lost.value.command == "WRITEMEM_32BIT" and lost.value.address == 0x20000000
    assert lost.value.serial == probe.serial and "resynchronised" in str(lost.value)
    assert link.reconnects == 1                                # the session was reopened
    sram = await probe.read_memory(0x20000000, 128)
    assert sram in (bytes(128), b"\xAA" * 64 + bytes(64))      # untouched, or the intended data
    assert await probe.read_idcode() == IDCODE_F1              # the next commands work
    await probe.write_memory(0x20000000, b"\x55" * 64)
    assert await probe.read_memory(0x20000000, 64) == b"\x55" * 64
    await probe.aclose()
    await backend.aclose()


async def test_a_lost_reply_does_not_shift_later_replies(server):
    sim = server._devices[0].probe
    backend, link, probe = await _open_f1(server)
    await probe.write_memory(0x20000000, bytes(range(64)))
    sim.faults.usb_timeout_on = sim._transfers + 2             # the READMEM's IN transfer
    with pytest.raises(UsbTimeout) as lost:
        await probe.read_memory(0x20000000, 64)
    assert lost.value.command == "READMEM_32BIT"
    assert sim.idle                                            # its queued reply was dropped
    assert await probe.read_memory(0x20000010, 16) == bytes(range(16, 32))
    assert await probe.read_idcode() == IDCODE_F1
    await probe.aclose()
    await backend.aclose()


async def test_a_probe_unplugged_behind_the_server_is_probe_gone(server):
    sim = server._devices[0].probe
    backend, link, probe = await _open_f1(server)
    sim.unplug()
    with pytest.raises(ProbeGone) as gone:
        await probe.read_idcode()
    text = str(gone.value)
    assert gone.value.serial == probe.serial and f"127.0.0.1:{server.port}" in text
    assert "no longer lists" in text and gone.value.command
    await probe.aclose()
    await backend.aclose()


async def test_a_usb_stall_behind_the_server_is_a_stall_and_recovers(server):
    from gangflash.transport.errors import UsbStall
    sim = server._devices[0].probe
    backend, link, probe = await _open_f1(server)
    sim.faults.usb_stall_on = sim._transfers + 1
    with pytest.raises(UsbStall) as stall:
        await probe.read_idcode()
    assert "0x10000" in str(stall.value) and stall.value.serial == probe.serial
    assert await probe.read_idcode() == IDCODE_F1
    await probe.aclose()
    await backend.aclose()


async def test_an_unknown_host_names_the_resolver_error():
    backend = StlinkServerBackend("no-such-host.invalid", 7184, connect_timeout=10)
    with pytest.raises(ServerUnreachable) as unknown:
        await backend.enumerate()
    text = str(unknown.value)
    assert "no-such-host.invalid:7184" in text and "Unknown error" not in text
