"""gangflash over TCP: a batch (and ``gangflash flash``) through the simulator's stlink-server ends
exactly as the same boards flashed through the in-process simulator: same flash contents (read
through the simulator's back door), same journal result, stages and serial numbers.

The in-process run uses a looptime (virtual-time) loop, as every simulated batch does. The TCP
run must use a normal real-time loop: the server runs on its own loop in a thread, paced to the
wall clock (pace=1), and a virtual-time client would skip ahead while waiting on the socket.
"""

from __future__ import annotations

import socket

import anyio
import looptime
import pytest

from gangflash import cli
from gangflash.orchestrator.config import load_config
from gangflash.orchestrator.journal import Journal
from gangflash.orchestrator.scheduler import Batch, BatchError
from gangflash.sim.bench import make_probe, sim_serial
from gangflash.sim.clock import ManualClock
from gangflash.sim.stlink_server import serving_in_thread
from gangflash.transport.sim_backend import SimBackend

from .batchhelp import FIRMWARE, write_config

BOARDS = (("A", "F103C8", "V2"), ("B", "F412ZG", "V3"))
SERIALS = {label: sim_serial(index) for index, (label, _, _) in enumerate(BOARDS)}


def _probes(clock_for):
    """The boards of BOARDS, built as ``make_sim_probes`` builds a config's boards (same serials,
    same chip UIDs), each on the clock ``clock_for(index)`` gives."""
    return [make_probe(chip, clock=clock_for(index), model=model, index=index)
            for index, (_, chip, model) in enumerate(BOARDS)]


def _config(tmp_path, probe_for) -> str:
    tmp_path.mkdir(exist_ok=True)
    slots = "".join(f'[[slot]]\nlabel = "{label}"\nprobe = "{probe_for(label)}"\n\n' for label, _, _ in BOARDS)
    return str(write_config(tmp_path, [], slots=slots))


def _run_in_process(tmp_path) -> tuple[list, list]:
    config = load_config(_config(tmp_path, lambda label: SERIALS[label]))
    probes: list = []

    def factory():
        probes.extend(_probes(lambda _index: anyio.current_time))
        return SimBackend(probes)

    summary = anyio.run(Batch(config, factory).run, backend="asyncio",
                        backend_options={"loop_factory": looptime.new_event_loop})
    assert summary.passed == len(BOARDS) and summary.failed == 0
    return probes, Journal.open(config.journal).attempts()


@pytest.fixture
def served():
    """The same boards behind the simulator's stlink-server; yields (server, probes)."""
    clocks = [ManualClock() for _ in BOARDS]
    probes = _probes(lambda index: clocks[index])
    with serving_in_thread(list(zip(probes, clocks)), port=0, pace=1.0) as server:
        yield server, probes


def _tcp_url(server, label: str) -> str:
    return f"tcp://127.0.0.1:{server.port}/{SERIALS[label]}"


def _masked(flash: bytes, offset: int, length: int) -> bytes:
    return flash[:offset] + flash[offset + length:]


def test_a_batch_over_tcp_ends_as_in_process(tmp_path, served, capsys):
    server, tcp_probes = served
    sim_probes, sim_rows = _run_in_process(tmp_path / "inproc")
    path = _config(tmp_path / "tcp", lambda label: _tcp_url(server, label))
    assert cli.main(["run", path, "--headless"]) == 0          # real-time loop, real sockets
    out = capsys.readouterr().out
    assert "batch finished: 2 passed, 0 failed, 0 aborted" in out
    config = load_config(path)
    tcp_rows = Journal.open(config.journal).attempts()

    def outcome(rows):
        return {r.slot: (r.probe_serial, r.result, r.cause, r.chip_idcode, r.chip_uid, sorted(r.stages))
                for r in rows}
    assert outcome(tcp_rows) == outcome(sim_rows)
    assert {r.slot: r.port_path for r in tcp_rows} == {label: _tcp_url(server, label) for label in SERIALS}
    assert sorted(r.serial_number for r in tcp_rows) == sorted(r.serial_number for r in sim_rows)

    # Same flash everywhere except the serial number, which is each run's own allocation.
    spec = config.serial_number
    for (label, _, _), sim_probe, tcp_probe in zip(BOARDS, sim_probes, tcp_probes):
        numbers = {r.slot: r.serial_number for r in sim_rows}, {r.slot: r.serial_number for r in tcp_rows}
        offset = spec.address - 0x08000000
        contents = sim_probe.target.flash_contents(), tcp_probe.target.flash_contents()
        for flash, number in zip(contents, (numbers[0][label], numbers[1][label])):
            data = spec.encode(number, None)
            assert flash[offset:offset + len(data)] == data
            assert flash[:len(FIRMWARE.read_bytes())] == FIRMWARE.read_bytes()
        assert _masked(contents[0], offset, len(data)) == _masked(contents[1], offset, len(data))
    assert not any(d["in_use"] for d in server.stats())        # every probe released


def test_a_slot_whose_serial_the_server_lacks_refuses_to_start(tmp_path, served):
    server, _ = served
    path = _config(tmp_path, lambda label: f"tcp://127.0.0.1:{server.port}/NOSUCH{label}")
    batch = Batch(load_config(path), _tcp_factory(load_config(path)))
    with pytest.raises(BatchError) as refused:
        anyio.run(batch.prepare)
    assert f"probe NOSUCHA on stlink-server 127.0.0.1:{server.port} not found" in str(refused.value)


def test_a_server_not_listening_refuses_to_start_cleanly(tmp_path, capsys):
    port = _free_port()
    path = _config(tmp_path, lambda label: f"tcp://127.0.0.1:{port}/{SERIALS[label]}")
    assert cli.main(["run", path, "--headless"]) == 2
    err = capsys.readouterr().err
    assert f"stlink-server 127.0.0.1:{port}" in err and "Traceback" not in err


def _tcp_factory(config):
    from gangflash.cli_run import _backend_factory
    return _backend_factory(config)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- gangflash flash --probe tcp://... -------------------------------------------------------

def test_flash_cli_over_tcp(served, capsys):
    server, probes = served
    status = cli.main(["flash", str(FIRMWARE), "--address", "0x08000000", "--probe", _tcp_url(server, "B")])
    out, err = capsys.readouterr()
    assert status == 0, out + err
    assert out.startswith("PASS STM32F4") and "Traceback" not in err
    image = FIRMWARE.read_bytes()
    assert probes[1].target.flash_contents(0x08000000, len(image)) == image
    assert probes[0].target.flash_contents(0x08000000, 16) == b"\xff" * 16      # the other board untouched


def test_flash_cli_unknown_serial_and_refused_server(served, capsys):
    server, _ = served
    status = cli.main(["flash", str(FIRMWARE), "--address", "0x08000000",
                       "--probe", f"tcp://127.0.0.1:{server.port}/NOSUCHPROBE"])
    out, err = capsys.readouterr()
    assert status == 2 and "Traceback" not in out + err
    assert f"no ST-Link probe with serial NOSUCHPROBE on stlink-server 127.0.0.1:{server.port}" in err
    port = _free_port()
    status = cli.main(["flash", str(FIRMWARE), "--address", "0x08000000",
                       "--probe", f"tcp://127.0.0.1:{port}/{SERIALS['A']}"])
    out, err = capsys.readouterr()
    assert status == 1 and "Traceback" not in out + err
    assert out.startswith("FAIL") and f"stlink-server 127.0.0.1:{port}" in out
    assert SERIALS["A"] in out


# --- the server going away mid-board ---------------------------------------------------------

@pytest.mark.asyncio
async def test_a_server_stopping_mid_write_fails_the_board_cleanly(tmp_path):
    """The server (here on the test's own real-time loop) stops while the board is programming:
    the board fails with a cause naming the probe and the server (not retried: a lost probe is
    final, as an unplugged one is on USB), and the journal keeps the attempt and its stages."""
    from gangflash.orchestrator import events as ev
    from gangflash.sim.stlink_server import StlinkServer

    clock = ManualClock()
    server = StlinkServer([(make_probe("F412ZG", clock=clock, model="V2", index=0), clock)], port=0)
    seen: list = []
    serving = anyio.CancelScope()

    async def serve(*, task_status=anyio.TASK_STATUS_IGNORED):
        with serving:
            await server.serve(task_status=task_status)

    async with anyio.create_task_group() as tg:
        port = await tg.start(serve)
        path = write_config(tmp_path, [], slots=f'[[slot]]\nlabel = "A"\nprobe = "tcp://127.0.0.1:{port}/{SERIALS["A"]}"\n')
        config = load_config(path)
        batch = Batch(config, _tcp_factory(config))
        stream = batch.events.subscribe()

        async def watch():
            async with stream:
                async for event in stream:
                    seen.append(event)
                    if isinstance(event, ev.StageProgress) and event.stage == "program":
                        serving.cancel()           # the server goes away mid-write

        async with anyio.create_task_group() as board:
            board.start_soon(watch)
            summary = await batch.run()
    assert summary.failed == 1
    failures = [e for e in seen if isinstance(e, ev.BoardFailed)]
    assert failures and all(SERIALS["A"] in e.cause for e in failures)
    assert f"127.0.0.1:{port}" in failures[0].cause and "lost" in failures[0].cause
    rows = Journal.open(config.journal).attempts()
    assert [r.result for r in rows] == ["failed"]          # a lost probe is final, as on USB
    assert f"127.0.0.1:{port}" in rows[0].cause and "erase" in rows[0].stages   # stages done before the loss
