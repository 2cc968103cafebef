"""Run one program against simulated probes on a umockdev testbed, and always clean up.

This process owns the testbed (PyGObject, no preload) and serves every node's ioctls on
umockdev's worker thread, while the program runs as a child with
``LD_PRELOAD=libumockdev-preload.so.0`` and ``UMOCKDEV_DIR=<root>``: its libusb sees the probes,
and nothing else (``shared/reference/libusb-tools-under-umockdev.md``, Setup that worked). The
main thread only waits for the child, so a tool that idles costs nothing here either.

Exit paths, each of which frees the testbed and so removes its temporary root: the tool ends
(its exit status is returned; death by signal N reads 128+N as in a shell), Ctrl-C (the terminal
signals the tool too; it gets a grace period, then SIGINT, SIGTERM and SIGKILL in turn), SIGTERM
or SIGHUP to this process (passed on to the tool the same way).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO

from ..clock import ManualClock
from .clocking import TransferClock
from .environment import PRELOAD

log = logging.getLogger(__name__)

STOP_GRACE_S = 2.0      # how long a signalled tool gets before the next, harder signal


class ToolError(Exception):
    """The program could not be started (not found, not executable); the message names it."""

    def __init__(self, argv: Sequence[str], reason: str, exit_status: int) -> None:
        super().__init__(f"cannot run {argv[0]!r}: {reason}")
        self.argv = list(argv)
        self.exit_status = exit_status      # 127 not found, 126 not executable (as a shell)


class _Stop(Exception):
    """This process was asked to stop (SIGTERM, SIGHUP) while the tool ran."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class SimDevice:
    """One probe to put on the bus, with the virtual clock its board runs on."""

    probe: object           # a SimProbe
    clock: ManualClock


@dataclass
class ToolRun:
    """How the program ended, and where its testbed was (removed by now)."""

    exit_status: int
    root: str
    stopped_by: str | None = None       # "SIGINT", "SIGTERM", "SIGHUP" when we were interrupted
    ports: list[str] = field(default_factory=list)


def _shell_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def child_environment(root: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The tool's environment: ``base`` (default ours) with the preload first and the testbed root."""
    env = dict(os.environ if base is None else base)
    preload = env.get("LD_PRELOAD", "")
    env["LD_PRELOAD"] = PRELOAD + (":" + preload if preload else "")
    env["UMOCKDEV_DIR"] = root
    return env


def _stop_child(proc: subprocess.Popen, first: signal.Signals | None) -> None:
    """End ``proc``: wait a grace period (it may have had the signal already), then signal it
    with ``first``, SIGTERM and SIGKILL in turn until it is gone."""
    for signum in (None, first, signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            return
        if signum is not None:
            log.info("sending %s to %s (pid %d)", signum.name, proc.args[0], proc.pid)
            proc.send_signal(signum)
        try:
            proc.wait(timeout=STOP_GRACE_S)
            return
        except subprocess.TimeoutExpired:
            continue
        except (KeyboardInterrupt, _Stop):      # asked again: no more patience
            continue
    proc.wait()


def run_tool(argv: Sequence[str], devices: Sequence[SimDevice], *, pace: float = 1.0,
             env: Mapping[str, str] | None = None, stdout: IO | None = None,
             stderr: IO | None = None) -> ToolRun:
    """Run ``argv`` with ``devices`` as the USB bus (ports 1-1, 1-2, ...) and wait for it. The
    tool inherits our stdout and stderr unless ``stdout``/``stderr`` (files) are given.

    Raises ToolError when it cannot be started (the testbed is removed first). Must run on the
    main thread when SIGTERM/SIGHUP should be handled (elsewhere they are left as they are).
    """
    if not argv:
        raise ValueError("no program to run")
    previous = {}

    def stop(signum, _frame):
        raise _Stop(signum)

    # Installed before the testbed exists, so a SIGTERM at any point still reaches the cleanup.
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            previous[signum] = signal.signal(signum, stop)
    try:
        return _run(argv, devices, pace, env, stdout, stderr)
    except _Stop as stop_signal:      # before the tool started: nothing to pass the signal on to
        return ToolRun(128 + stop_signal.signum, "", str(stop_signal))
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run(argv, devices, pace, env, stdout, stderr) -> ToolRun:
    from .testbed import UsbTestbed     # imports gi: only once the caller checked the environment

    with UsbTestbed() as bed:
        ports = []
        for index, device in enumerate(devices):
            port = f"1-{index + 1}"
            bed.add_probe(port, device.probe, TransferClock(device.clock, pace))
            ports.append(port)
        log.info("testbed %s: %d probe(s); running %s", bed.root, len(ports), " ".join(argv))
        try:
            proc = subprocess.Popen(list(argv), env=child_environment(bed.root, env),
                                    stdout=stdout, stderr=stderr)
        except FileNotFoundError:
            raise ToolError(argv, "no such program", 127) from None
        except PermissionError as exc:
            raise ToolError(argv, f"not executable ({exc.strerror})", 126) from None
        try:
            status = _shell_status(proc.wait())
            return ToolRun(status, bed.root, None, ports)
        except KeyboardInterrupt:
            _stop_child(proc, signal.SIGINT)
            return ToolRun(128 + signal.SIGINT, bed.root, "SIGINT", ports)
        except _Stop as stop_signal:
            _stop_child(proc, signal.Signals(stop_signal.signum))
            return ToolRun(128 + stop_signal.signum, bed.root, str(stop_signal), ports)
        finally:
            if proc.poll() is None:     # an exception of our own: never leave the tool behind
                _stop_child(proc, signal.SIGTERM)
