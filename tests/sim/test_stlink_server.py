"""The simulator's stlink-server, byte for byte over a real loopback socket: the protocol as
OpenOCD speaks it, and every malformed request class answered without a hang or a crash.

Servers run with pace 0 (modelled command costs only) unless a test is about pacing.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import time

import pytest

from gangflash.sim.bench import make_probe
from gangflash.sim.clock import ManualClock
from gangflash.sim.faults import ProbeFaults
from gangflash.sim.stlink_server import serving_in_thread

OK, TIMEOUT, BAD_PARAMETER, OPEN_ERROR, TRUNCATED, NOT_AVAILABLE, USB_FAILED = (
    0x1, 0x1001, 0x1002, 0x1003, 0x1052, 0x1053, 0x10000)
ST_OK = 0x80


def devices(*chips: str, model: str = "V2-1", faults: dict | None = None):
    out = []
    for i, chip in enumerate(chips):
        clock = ManualClock()
        out.append((make_probe(chip, clock=clock, model=model, index=i,
                               probe_faults=(faults or {}).get(i)), clock))
    return out


@pytest.fixture
def two():
    devs = devices("F103C8", "L432KC")
    with serving_in_thread(devs, port=0, pace=0) as server:
        yield server, devs


class Client:
    """A raw socket speaking the protocol, as OpenOCD frames it."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        self.sock.close()

    def recv(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise EOFError(f"server closed after {len(out)} of {n} bytes")
            out += chunk
        return bytes(out)

    def at_eof(self) -> bool:
        """True when the server has closed (within the socket timeout), with nothing more sent."""
        return self.sock.recv(1) == b""

    def request(self, data: bytes, reply: int) -> bytes:
        self.sock.sendall(data)
        return self.recv(reply)

    def status(self, data: bytes, reply: int = 4) -> int:
        return struct.unpack_from("<I", self.request(data, reply))[0]

    # protocol requests
    def version(self) -> tuple[int, int, int, int]:
        return struct.unpack("<IIII", self.request(b"\x06\x01\x00\x00", 16))

    def nb_dev(self) -> int:
        return struct.unpack("<I", self.request(b"\x01", 4))[0]

    def dev_info(self, index: int) -> tuple[int, int, str, int, int, int]:
        reply = self.request(bytes([2, index, 0, 0]) + struct.pack("<I", 41), 45)
        status, cookie = struct.unpack_from("<II", reply)
        serial = reply[8:40].rstrip(b"\0").decode()
        vid, pid, in_use = struct.unpack_from("<HHB", reply, 40)
        return status, cookie, serial, vid, pid, in_use

    def open(self, cookie: int) -> tuple[int, int]:
        return struct.unpack("<II", self.request(b"\x03\0\0\0" + struct.pack("<I", cookie), 8))

    def close_dev(self, connect_id: int) -> int:
        return self.status(b"\x04\0\0\0" + struct.pack("<I", connect_id))

    def usb(self, connect_id: int, block: bytes, n: int, out: bytes = b"",
            direction: int | None = None) -> tuple[int, bytes]:
        if direction is None:
            direction = 0 if out else 1
        header = (b"\x05\0\0\0" + struct.pack("<I", connect_id) + block.ljust(16, b"\0")
                  + bytes([direction, 0, 0, 0]) + struct.pack("<I", len(out) if direction == 0 else n))
        reply = self.request(header + out, 4 if direction == 0 else 4 + n)
        return struct.unpack_from("<I", reply)[0], reply[4:]

    def open_index(self, index: int) -> int:
        status, cookie, *_ = self.dev_info(index)
        assert status == OK
        status, connect_id = self.open(cookie)
        assert status == OK
        return connect_id


def wait_released(client: Client, index: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while client.dev_info(index)[5]:
        assert time.monotonic() < deadline, "probe never released"
        time.sleep(0.02)


# --- the protocol -----------------------------------------------------------------------------------
@pytest.mark.parametrize("api", [2, 3])
def test_server_version_reports_the_api(api):
    with serving_in_thread(devices("F103C8"), port=0, pace=0, api=api) as server:
        c = Client(server.port)
        assert c.version()[0] == api
        c.close()


def test_device_list_and_info(two):
    server, devs = two
    c = Client(server.port)
    assert c.status(b"\x00\x00") == OK                       # REFRESH_DEVICE_LIST
    assert c.nb_dev() == 2
    for index, (probe, _) in enumerate(devs):
        status, cookie, serial, vid, pid, in_use = c.dev_info(index)
        assert status == OK and in_use == 0
        assert serial == probe.serial and len(serial) == 24
        assert (vid, pid) == (0x0483, 0x374B)
    assert c.dev_info(0)[1] != c.dev_info(1)[1]               # distinct cookies


def test_a_full_session_by_hand(two):
    """GET_VERSION, enter SWD, read IDCODE and CPUID, leave: the bytes OpenOCD sends."""
    server, devs = two
    probe = devs[0][0]
    c = Client(server.port)
    cid = c.open_index(0)
    status, data = c.usb(cid, b"\xF1", 6)                                 # GET_VERSION
    assert status == OK
    packed = int.from_bytes(data[:2], "big")
    assert packed >> 12 == 2 and (packed >> 6) & 0x3F == 37
    assert data[2:] == bytes.fromhex("8304" "4B37")                       # VID, PID (LE)
    status, data = c.usb(cid, b"\xF5", 2)                                 # GET_CURRENT_MODE
    assert (status, data) == (OK, b"\x01\x00")
    assert c.usb(cid, b"\xF2\x30\xA3", 2) == (OK, b"\x80\x00")            # ENTER SWD
    status, data = c.usb(cid, b"\xF2\x31", 12)                            # READ_IDCODES
    assert status == OK and data[0] == ST_OK
    assert struct.unpack_from("<I", data, 4)[0] == probe.target.chip.dp_idr
    status, data = c.usb(cid, b"\xF2\x07" + struct.pack("<IH", 0xE000ED00, 4), 4)   # CPUID
    assert status == OK and struct.unpack("<I", data)[0] == probe.target.chip.cpuid
    status, data = c.usb(cid, b"\xF2\x3E", 12)                            # GETLASTRWSTATUS2
    assert data[0] == ST_OK
    assert c.usb(cid, b"\xF2\x21", 0) == (OK, b"")                        # DEBUG_EXIT, no reply
    assert c.close_dev(cid) == OK
    stats = server.stats()[0]
    assert stats["usb_commands"] == 7 and stats["clients"] == 1 and not stats["in_use"]
    assert stats["virtual_time"] > 0


def test_in_data_is_exactly_what_the_client_asked_for(two):
    server, _ = two
    c = Client(server.port)
    cid = c.open_index(0)
    assert c.usb(cid, b"\xF5", 8) == (OK, b"\x01\x00" + bytes(6))          # zero-padded
    assert c.nb_dev() == 2                                                # framing intact


# --- malformed requests -------------------------------------------------------------------------
def test_bad_connect_id_keeps_the_connection(two):
    server, _ = two
    c = Client(server.port)
    assert c.usb(0xDEAD, b"\xF1", 6) == (BAD_PARAMETER, bytes(6))
    assert c.usb(0xDEAD, b"\xF2\x08" + struct.pack("<IH", 0x20000000, 8), 0,
                 out=bytes(8)) == (BAD_PARAMETER, b"")                    # its data phase eaten
    assert c.close_dev(0xDEAD) == BAD_PARAMETER
    cid = c.open_index(0)
    assert c.usb(cid, b"\xF5", 2)[0] == OK


def test_bad_cookie_and_device_index(two):
    server, _ = two
    c = Client(server.port)
    assert c.open(0x12345678) == (BAD_PARAMETER, 0)
    status, cookie, serial, *_ = c.dev_info(7)
    assert (status, cookie, serial) == (BAD_PARAMETER, 0, "")
    reply = c.request(b"\x02\x00\x00\x00" + struct.pack("<I", 10), 14)     # wrong info size
    assert struct.unpack_from("<I", reply)[0] == BAD_PARAMETER
    assert c.nb_dev() == 2


@pytest.mark.parametrize("request_bytes,status", [
    (b"\x42" + bytes(7), NOT_AVAILABLE),                       # unknown opcode
    (b"\x07" + bytes(7), NOT_AVAILABLE),                       # GET_NB_OF_DEV_CLIENTS
    (b"\x05" + bytes(23) + b"\x00\0\0\0" + struct.pack("<I", 10240), BAD_PARAMETER),  # OUT too big
    (b"\x05" + bytes(23) + b"\x01\0\0\0" + struct.pack("<I", 10237), BAD_PARAMETER),  # IN too big
    (b"\x05" + bytes(23) + b"\x02\0\0\0" + struct.pack("<I", 4), BAD_PARAMETER),      # direction 2
])
def test_unframeable_requests_get_a_status_then_a_clean_close(two, request_bytes, status):
    server, _ = two
    c = Client(server.port)
    assert c.status(request_bytes) == status
    assert c.at_eof()
    other = Client(server.port)                                             # the server lives on
    assert other.nb_dev() == 2


def test_truncated_request_then_silence():
    with serving_in_thread(devices("F103C8"), port=0, pace=0) as server:
        c = Client(server.port)
        cid = c.open_index(0)
        start = time.monotonic()
        c.sock.sendall(b"\x05\0\0\0" + struct.pack("<I", cid) + b"\xF2")    # 9 of 32 bytes
        assert struct.unpack("<I", c.recv(4))[0] == TRUNCATED
        assert c.at_eof()
        assert 0.8 < time.monotonic() - start < 3
        wait_released(Client(server.port), 0)


def test_eof_in_the_middle_of_a_request(two):
    server, _ = two
    c = Client(server.port)
    c.sock.sendall(b"\x02\x00")                                             # 2 of 8 bytes
    c.sock.shutdown(socket.SHUT_WR)
    assert struct.unpack("<I", c.recv(4))[0] == TRUNCATED
    assert c.at_eof()


# --- clients and probes -----------------------------------------------------------------------------
def test_two_clients_one_probe(two):
    server, _ = two
    a, b = Client(server.port), Client(server.port)
    cid = a.open_index(0)
    status, cookie, *_, in_use = b.dev_info(0)
    assert in_use == 1
    assert b.open(cookie) == (OPEN_ERROR, 0)
    assert b.usb(cid, b"\xF5", 2)[0] == BAD_PARAMETER                      # not b's connect id
    assert b.open_index(1)                                                 # the other probe is free
    assert a.close_dev(cid) == OK
    assert b.dev_info(0)[5] == 0
    assert b.open(cookie)[0] == OK
    assert server.stats()[0]["clients"] == 2


def test_client_killed_mid_transfer_releases_its_probe(two):
    server, devs = two
    a, b = Client(server.port), Client(server.port)
    cid_a = a.open_index(0)
    cid_b = b.open_index(1)
    assert a.usb(cid_a, b"\xF2\x30\xA3", 2) == (OK, b"\x80\x00")
    assert a.usb(cid_a, b"\xF2\x08" + struct.pack("<IH", 0x20000100, 4), 0,
                 out=struct.pack("<I", 0x600DF00D)) == (OK, b"")
    assert b.usb(cid_b, b"\xF2\x30\xA3", 2) == (OK, b"\x80\x00")
    # a dies half-way through a 64-byte data phase: the command never reaches the probe
    header = (b"\x05\0\0\0" + struct.pack("<I", cid_a)
              + (b"\xF2\x08" + struct.pack("<IH", 0x20000100, 64)).ljust(16, b"\0")
              + b"\0\0\0\0" + struct.pack("<I", 64))
    a.sock.sendall(header + bytes(10))
    a.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))   # RST
    a.close()
    status, data = b.usb(cid_b, b"\xF2\x31", 12)                           # b carries on
    assert status == OK and data[0] == ST_OK
    c = Client(server.port)
    wait_released(c, 0)
    cid_c = c.open_index(0)
    # the probe stayed in debug mode and the target kept its SRAM: no reconnect needed
    assert c.usb(cid_c, b"\xF5", 2) == (OK, b"\x02\x00")
    status, data = c.usb(cid_c, b"\xF2\x07" + struct.pack("<IH", 0x20000100, 4), 4)
    assert struct.unpack("<I", data)[0] == 0x600DF00D


def test_usb_faults_become_status_words():
    devs = devices("F103C8", "F103C8", faults={0: ProbeFaults(usb_timeout_on=1),
                                               1: ProbeFaults(unplug_after_bytes=30)})
    with serving_in_thread(devs, port=0, pace=0) as server:
        c = Client(server.port)
        cid0, cid1 = c.open_index(0), c.open_index(1)
        assert c.usb(cid0, b"\xF1", 6) == (TIMEOUT, bytes(6))              # the OUT timed out
        assert devs[0][1]() >= 1.0                                         # the host's 1 s timeout
        assert c.usb(cid0, b"\xF1", 6)[0] == OK
        assert c.usb(cid1, b"\xF1", 6)[0] == OK                            # 22 bytes crossed
        assert c.usb(cid1, b"\xF1", 6) == (USB_FAILED, bytes(6))           # unplugged on the way
        assert c.usb(cid1, b"\xF1", 6) == (BAD_PARAMETER, bytes(6))        # its connect id is stale
        assert c.nb_dev() == 1
        assert c.dev_info(0)[2] == devs[0][0].serial
        assert server.stats()[1]["gone"]


@pytest.mark.parametrize("pace", [1.0, 0])
def test_pace_credits_the_clients_idle_time(pace):
    """pace 1: the 0.3 s the client sleeps passes on the board's clock; pace 0: modelled cost only."""
    devs = devices("F103C8")
    with serving_in_thread(devs, port=0, pace=pace) as server:
        c = Client(server.port)
        cid = c.open_index(0)
        c.usb(cid, b"\xF5", 2)
        before = devs[0][1]()
        time.sleep(0.3)
        c.usb(cid, b"\xF5", 2)
        elapsed = devs[0][1]() - before
        assert elapsed >= 0.3 if pace else elapsed < 0.01


def test_many_clients_at_once():
    devs = devices(*["F103C8"] * 6)
    with serving_in_thread(devs, port=0, pace=0) as server:
        clients = [Client(server.port) for _ in devs]
        cids = [c.open_index(i) for i, c in enumerate(clients)]
        for _ in range(3):
            for c, cid in zip(clients, cids):
                assert c.usb(cid, b"\xF2\x30\xA3", 2) == (OK, b"\x80\x00")
        assert all(s["in_use"] for s in server.stats())


# --- the CLI ------------------------------------------------------------------------------------------
def test_sim_serve_cli_serves_until_sigterm():
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from gangflash.cli import main; sys.exit(main())",
                             "sim", "serve", "--sim", "F103C8,F412ZG", "--port", "0", "--pace", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert "listening on 127.0.0.1:" in first, first + proc.stderr.read()
        port = int(first.split("127.0.0.1:")[1].split(",")[0])
        lines = [proc.stdout.readline() for _ in range(7)]
        assert "STM32F412ZG" in lines[1] and "hla_stlink_backend tcp" in "".join(lines)
        c = Client(port)
        assert c.nb_dev() == 2
        c.close()
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert "served:" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- the probe stays in step after USB faults -------------------------------------------------------
def test_a_usb_timeout_in_a_data_phase_leaves_the_probe_in_step():
    """The data OUT of a write times out: 0x1001, and the server drops the probe's half-received
    command, so the next command block is a command, not write data for target SRAM."""
    devs = devices("F103C8")
    probe, clock = devs[0]
    with serving_in_thread(devs, port=0, pace=0) as server:
        c = Client(server.port)
        cid = c.open_index(0)
        assert c.usb(cid, b"\xF2\x30\xA3", 2) == (OK, b"\x80\x00")
        write = b"\xF2\x08" + struct.pack("<IH", 0x20000000, 64)
        assert c.usb(cid, write, 0, out=bytes(64)) == (OK, b"")
        probe.faults.usb_timeout_on = probe._transfers + 2            # the data phase
        before = clock()
        assert c.usb(cid, write, 0, out=b"\xAA" * 64) == (TIMEOUT, b"")
        assert probe.idle and probe.stats["usb_resets"] == 1
        assert clock() - before >= 1.0                                # timeout + reset charged
        assert c.usb(cid, b"\xF5", 2) == (OK, b"\x02\x00")            # a command, answered
        status, data = c.usb(cid, b"\xF2\x07" + struct.pack("<IH", 0x20000000, 64), 64)
        assert status == OK and data == bytes(64)                     # SRAM untouched


def test_a_usb_timeout_on_a_reply_drops_it():
    devs = devices("F103C8")
    probe, _ = devs[0]
    with serving_in_thread(devs, port=0, pace=0) as server:
        c = Client(server.port)
        cid = c.open_index(0)
        probe.faults.usb_timeout_on = probe._transfers + 2            # GET_VERSION's IN
        assert c.usb(cid, b"\xF1", 6) == (TIMEOUT, bytes(6))
        assert probe.idle
        assert c.usb(cid, b"\xF5", 2) == (OK, b"\x01\x00")            # not the old reply


def test_a_fresh_open_starts_from_a_clean_probe(two):
    """Leftovers of an earlier session (here a reply nobody read) are dropped at OPEN_DEV."""
    server, devs = two
    probe = devs[0][0]
    c = Client(server.port)
    cid = c.open_index(0)
    assert c.usb(cid, b"\xF5", 2)[0] == OK
    probe.bulk_out(probe.out_ep, b"\xF1".ljust(16, b"\0"))            # a reply left queued
    assert not probe.idle
    assert c.close_dev(cid) == OK
    cid = c.open_index(0)
    assert probe.idle
    assert c.usb(cid, b"\xF5", 2) == (OK, b"\x01\x00")


# --- listening and shutdown ---------------------------------------------------------------------------
def test_a_busy_port_is_a_listen_error_before_serving():
    from gangflash.sim.stlink_server import ListenError, StlinkServer
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = StlinkServer(devices("F103C8"), port=port)
        with pytest.raises(ListenError) as error:
            server.bind()
        assert f"127.0.0.1:{port}" in str(error.value) and error.value.reason


def test_ipv6_bind_address():
    """Served on ::1 where the host has IPv6 loopback; otherwise a clean ListenError naming the
    address (never a skip: CI counts skips as failures)."""
    try:
        with socket.socket(socket.AF_INET6) as probe_sock:
            probe_sock.bind(("::1", 0))
    except (OSError, AttributeError):
        with pytest.raises(ListenError, match="::1"):
            StlinkServer(devices("F103C8"), host="::1", port=0).bind()
        return
    with serving_in_thread(devices("F103C8"), host="::1", port=0, pace=0) as server:
        sock = socket.create_connection(("::1", server.port), timeout=5)
        sock.sendall(b"\x01")
        assert struct.unpack("<I", sock.recv(4))[0] == 1
        sock.close()


def test_sim_serve_cli_on_a_busy_port_says_so():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run([sys.executable, "-c", "import sys; from gangflash.cli import main; sys.exit(main())",
                               "sim", "serve", "--sim", "F103C8", "--port", str(port)],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: " in proc.stderr
    assert "Traceback" not in proc.stderr and "in use" in proc.stderr


def test_a_connection_accepted_during_shutdown_is_dropped():
    from gangflash.sim.stlink_server import StlinkServer
    server = StlinkServer(devices("F103C8"), port=0)
    server._stopping = True                                    # serve() has copied its list
    ours, theirs = socket.socketpair()
    try:
        assert server._admit(ours, ("127.0.0.1", 1)) is None
        assert not server._connections
        theirs.settimeout(2)
        assert theirs.recv(1) == b""                           # closed, no thread serving it
    finally:
        theirs.close()
