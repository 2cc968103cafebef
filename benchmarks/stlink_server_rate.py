"""How many requests per second the simulator's stlink-server answers on one core.

OpenOCD busy-polls DHCSR (READDEBUGREG, about 13,000 requests/s on a real server) while it waits
for the core to halt, so the server must keep up with that or OpenOCD's waits stretch. A client
in a separate process (so the server has its core to itself) sends READDEBUGREG DHCSR in a tight
request/response loop, exactly as OpenOCD frames it, for a few seconds; the figure is requests
per wall second, plus the server process's CPU seconds per request. Two cases: the core halted
(each request is pure protocol + probe work) and the core running a loop with pace 1 (each
request also runs the simulated core for the wall time the client took).

Prints figures; asserts nothing.

    .venv/bin/python benchmarks/stlink_server_rate.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import struct
import subprocess
import sys
import time

from gangflash.sim.bench import make_probe
from gangflash.sim.clock import ManualClock
from gangflash.sim.stlink_server import serving_in_thread

CLIENT = r"""
import socket, struct, sys, time
port, serial, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
def req(data, n):
    s.sendall(data); out = b""
    while len(out) < n:
        out += s.recv(n - len(out))
    return out
def usb(cid, block, n):
    hdr = b"\x05\0\0\0" + struct.pack("<I", cid) + block.ljust(16, b"\0") + b"\x01\0\0\0" + struct.pack("<I", n)
    return req(hdr, 4 + n)
count = struct.unpack("<I", req(b"\x01", 4))[0]
for i in range(count):
    info = req(bytes([2, i, 0, 0]) + struct.pack("<I", 41), 45)
    if info[8:40].rstrip(b"\0").decode() == serial:
        cookie = struct.unpack_from("<I", info, 4)[0]
cid = struct.unpack_from("<I", req(b"\x03\0\0\0" + struct.pack("<I", cookie), 8), 4)[0]
usb(cid, b"\xF2\x30\xA3", 2)
poll = b"\xF2\x36" + struct.pack("<I", 0xE000EDF0)
n, end = 0, time.perf_counter() + seconds
while time.perf_counter() < end:
    usb(cid, poll, 8); n += 1
print(n)
"""

# Flash image: initial SP, reset vector (Thumb) -> nop x6 then a branch back. Not "b ." alone,
# which the simulator charges in one go: this loop makes Unicorn execute for every poll.
BUSY_IMAGE = (struct.pack("<II", 0x20001000, 0x08000009)
              + bytes.fromhex("00bf00bf00bf00bf00bf00bffae7"))


def measure(running: bool, seconds: float) -> tuple[int, float, float]:
    clock = ManualClock()
    probe = make_probe("F103C8", clock=clock, model="V2-1")
    target = probe.target
    if running:
        # a board whose firmware is a busy loop, powered up from it: each poll runs the core
        target.flash.write_raw(0x08000000, BUSY_IMAGE)
        target.power_off()
        target.power_on()
    with serving_in_thread([(probe, clock)], port=0, pace=1.0 if running else 0.0) as server:
        cpu0 = time.process_time()
        proc = subprocess.run([sys.executable, "-c", CLIENT, str(server.port), probe.serial,
                               str(seconds)], capture_output=True, text=True, check=True)
        cpu = time.process_time() - cpu0
    n = int(proc.stdout.strip())
    return n, cpu, clock()


SPIN_IMAGE = struct.pack("<II", 0x20001000, 0x08000009) + bytes.fromhex("fee7")   # "b ."


def measure_openocd(seconds: float) -> tuple[int, float, float] | None:
    """OpenOCD itself waiting for a halt that never comes (``wait_halt``): its busy poll
    against the server, the core spinning in "b ." (which the simulator fast-forwards)."""
    import shutil
    if shutil.which("openocd") is None:
        return None
    clock = ManualClock()
    probe = make_probe("F103C8", clock=clock, model="V2-1")
    probe.target.flash.write_raw(0x08000000, SPIN_IMAGE)
    probe.target.power_off()
    probe.target.power_on()
    with serving_in_thread([(probe, clock)], port=0, pace=1.0) as server:
        cmd = ["openocd", "-c", "gdb_port disabled", "-c", "tcl_port disabled",
               "-c", "telnet_port disabled", "-f", "interface/stlink.cfg",
               "-c", f"hla_stlink_backend tcp {server.port}", "-c", f"adapter serial {probe.serial}",
               "-f", "target/stm32f1x.cfg", "-c", "init",
               "-c", f"catch {{wait_halt {int(seconds * 1000)}}}", "-c", "exit"]
        before = probe.stats["by_opcode"]["DEBUG.READDEBUGREG"]
        cpu0 = time.process_time()
        subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
        cpu = time.process_time() - cpu0
    polls = probe.stats["by_opcode"]["DEBUG.READDEBUGREG"] - before
    return polls, cpu, clock()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    print(f"{'case':<34} {'requests':>9} {'req/s':>8} {'server CPU µs/req':>18} {'virtual s':>10}")
    for running in (False, True):
        n, cpu, virtual = measure(running, args.seconds)
        name = "core running a loop, pace 1" if running else "core halted, pace 0"
        print(f"{name:<34} {n:>9} {n / args.seconds:>8.0f} {cpu / max(n, 1) * 1e6:>18.1f} "
              f"{virtual:>10.3f}")
    result = measure_openocd(args.seconds)
    if result is None:
        print("openocd not installed: OpenOCD's own busy poll not measured")
    else:
        n, cpu, virtual = result
        print(f"{'OpenOCD wait_halt busy poll':<34} {n:>9} {n / args.seconds:>8.0f} "
              f"{cpu / max(n, 1) * 1e6:>18.1f} {virtual:>10.3f}")
    print("(target: OpenOCD busy-polls at ~13,000 requests/s; server CPU includes OpenOCD's "
          "start-up traffic, polls count DHCSR reads only)")


if __name__ == "__main__":
    main()
