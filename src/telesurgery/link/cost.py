"""What the emulator costs per datagram: a ``telesurgery link`` child under the flagship's
per-path traffic, and its CPU time divided by the datagrams it forwarded.

A sender paces one ``CONTROL_BYTES`` datagram a millisecond through the emulator (the
console's command bundle, one a tick) and a target on the far side answers each with one of
the same size (the patient's state), so the child carries ~1,000 datagrams a second each way,
as each path's emulator does in ``telesurgery demo --link rome-beijing``. The child reports its
own CPU time (``cpu_s`` in its statistics), so this process's work is not counted.

Run it with ``python -m telesurgery.link.cost [SECONDS] [PATH]`` (defaults 10 s, ``fibre``
of rome-beijing); it prints one JSON object.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from typing import Any

from telesurgery.clock import Rate, now_ns
from telesurgery.link.control import EmulatorProcess
from telesurgery.link.impairment import ImpairmentModel
from telesurgery.link.profiles import load_profile

CONTROL_HZ = 1000.0
CONTROL_BYTES = 200
"""About the size of a two-arm command bundle on the wire, Zenoh framing included [bytes]."""
PROFILE = "rome-beijing"
_MODEL_DECISIONS = 100_000


def _echo(sock: socket.socket, stop: threading.Event) -> None:
    """Answer every datagram on ``sock`` with the same bytes, until ``stop``."""
    while not stop.is_set():
        try:
            data, addr = sock.recvfrom(65_535)
        except TimeoutError:
            continue
        sock.sendto(data, addr)


def _drain(sock: socket.socket, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            sock.recv(65_535)
        except TimeoutError:
            continue


def model_cost_us(path: str) -> float:
    """One impairment decision of ``path`` (a 1 kHz arrival of ``CONTROL_BYTES``) [us]."""
    model = ImpairmentModel(load_profile(PROFILE).path(path)[1].forward, seed=1)
    t0 = now_ns()
    for i in range(_MODEL_DECISIONS):
        model.decide(i * 1_000_000, CONTROL_BYTES)
    return (now_ns() - t0) / _MODEL_DECISIONS / 1e3


def measure(seconds: float = 10.0, path: str = "fibre") -> dict[str, Any]:
    """Run the emulator of ``path`` under the traffic for ``seconds`` [s]; its cost."""
    stop = threading.Event()
    target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    threads: list[threading.Thread] = []
    try:
        for sock in (target, client):
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(0.1)
        forward = f"udp/127.0.0.1:{target.getsockname()[1]}"
        with EmulatorProcess("udp/127.0.0.1:0", forward,
                             ["--profile", PROFILE, "--path", path]) as emu:
            client.connect(emu.listen_address.address)
            threads = [threading.Thread(target=_echo, args=(target, stop), daemon=True),
                       threading.Thread(target=_drain, args=(client, stop), daemon=True)]
            for t in threads:
                t.start()
            payload = bytes(CONTROL_BYTES)
            rate = Rate(CONTROL_HZ)
            before = emu.stats()
            end = now_ns() + round(seconds * 1e9)
            while now_ns() < end:
                client.send(payload)
                rate.sleep()
            after = emu.stats()
    finally:
        stop.set()
        for t in threads:
            t.join(1.0)
        target.close()
        client.close()
    datagrams = sum(after["directions"][d]["packets"] - before["directions"][d]["packets"]
                    for d in ("forward", "reverse"))
    cpu_s = after["cpu_s"] - before["cpu_s"]
    return {
        "path": path,
        "seconds": seconds,
        "datagrams": datagrams,
        "emulator_cores": round(cpu_s / seconds, 4),
        "us_per_datagram": round(cpu_s / max(datagrams, 1) * 1e6, 2),
        "model_decision_us": round(model_cost_us(path), 2),
        "lateness_ms": {d: after["directions"][d]["lateness_ms"] for d in ("forward", "reverse")},
    }


if __name__ == "__main__":
    args = sys.argv[1:]
    print(json.dumps(measure(float(args[0]) if args else 10.0,
                             args[1] if len(args) > 1 else "fibre")))
