"""What security costs: command tags per message, and mutual TLS and access control per RTT.

``bench_tags``: sealing a ``servo_cp`` (encode + HMAC-SHA256 tag) and verifying it (tag
and replay window), against plain encoding and decoding, per message in one thread.

``bench_tls``: two processes, a console-like pinger and a patient-like ponger, linked
peer to peer on loopback as the demo's command path is, exchange command-QoS messages
(real-time, express, best effort). The same topology runs three ways: plain tcp/, tls/
with mutual TLS, and tls/ with mutual TLS and the generated access control on both
nodes. Rounds alternate the modes so that a slow spell of a shared machine falls on all
of them.
"""

from __future__ import annotations

import functools
import json
import multiprocessing as mp
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

import zenoh

from telesurgery.bench.machine import machine_info
from telesurgery.clock import Rate, now_ns
from telesurgery.demo.processes import free_port
from telesurgery.errors import TransportError
from telesurgery.messages import Message, ServoCP
from telesurgery.security.acl import acl_settings
from telesurgery.security.pki import Pki, Role, throwaway_pki
from telesurgery.security.tags import KEY_SIZE, CommandVerifier, TagKey, seal
from telesurgery.security.zenoh_tls import tls_settings
from telesurgery.stats import Samples
from telesurgery.transport.codec import decode, encode
from telesurgery.transport.keys import Keys
from telesurgery.transport.qos import Stream
from telesurgery.transport.session import declare_publisher
from telesurgery.transport.tls import apply_settings
from telesurgery.types import Pose

MODES = ("tcp", "mtls", "mtls_acl")
TAG_BATCH = 1000
"""Messages per timed batch in ``bench_tags`` (one batch gives one per-message sample)."""
_KEYS = Keys("bench")
_PING, _PONG = _KEYS.servo_cp("psm1"), _KEYS.measured_cp("psm1")
_STAMP = struct.Struct("<q")
_READY_TIMEOUT_S = 30.0
_WARMUP_S = 0.5


def _settings(mode: str, pki: Pki, role: Role, name: str) -> dict[str, str]:
    if mode == "tcp":
        return {}
    out = tls_settings(pki.identity(role, name))
    if mode == "mtls_acl":
        out |= acl_settings(_KEYS.session, pki.roster())
    return out


def _open(listen: list[str], connect: list[str], settings: Mapping[str, str]) -> zenoh.Session:
    zc = zenoh.Config()
    apply_settings(zc, {"mode": '"peer"', "listen/endpoints": json.dumps(listen),
                        "connect/endpoints": json.dumps(connect),
                        "scouting/multicast/enabled": "false", **settings})
    try:
        return zenoh.open(zc)
    except zenoh.ZError as exc:
        raise TransportError(f"bench could not open Zenoh: {str(exc).split(' at ')[0]}") from exc


def _publisher(session: zenoh.Session, key: str) -> zenoh.Publisher:
    return declare_publisher(session, key, Stream.COMMAND)


def _pong(listen: str, settings: dict[str, str], stop: MpEvent) -> None:
    """Child process: echo every ping back as a pong until ``stop`` is set."""
    session = _open([listen], [], settings)
    pub = _publisher(session, _PONG)
    sub = session.declare_subscriber(_PING, lambda s: pub.put(s.payload.to_bytes()))
    stop.wait()
    sub.undeclare()
    session.close()


def _ping_round(proto: str, settings_ping: dict[str, str], settings_pong: dict[str, str],
                duration_s: float, rate_hz: float, payload_bytes: int,
                rtt_ns: Samples) -> tuple[int, int]:
    """One round: start the ponger, wait for its first pong, ping at ``rate_hz``.

    Returns (sent, received) of the measured part; RTTs [ns] go to ``rtt_ns``.
    """
    endpoint = f"{proto}/127.0.0.1:{free_port()}"
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    child = ctx.Process(target=_pong, args=(endpoint, settings_pong, stop), daemon=True)
    child.start()
    session = None
    try:
        session = _open([], [endpoint], settings_ping)
        first = threading.Event()
        measuring = threading.Event()
        received = [0]

        def on_pong(sample: zenoh.Sample) -> None:
            sent = _STAMP.unpack_from(sample.payload.to_bytes())[0]
            first.set()
            if measuring.is_set() and sent > 0:
                rtt_ns.add(now_ns() - sent)
                received[0] += 1

        sub = session.declare_subscriber(_PONG, on_pong)
        pub = _publisher(session, _PING)
        pad = bytes(max(0, payload_bytes - _STAMP.size))
        deadline = now_ns() + int(_READY_TIMEOUT_S * 1e9)
        while not first.wait(0.05):  # the link and both declarations are up
            pub.put(_STAMP.pack(0) + pad)
            if now_ns() > deadline:
                raise TransportError(f"no pong over {proto}/ within {_READY_TIMEOUT_S} s; "
                                     "the ponger could not start or link")
        rate = Rate(rate_hz)
        warm_end = now_ns() + int(_WARMUP_S * 1e9)
        while now_ns() < warm_end:  # first messages pay for connection set-up and caches
            pub.put(_STAMP.pack(0) + pad)
            rate.sleep()
        measuring.set()
        sent = 0
        end = now_ns() + int(duration_s * 1e9)
        while now_ns() < end:
            pub.put(_STAMP.pack(now_ns()) + pad)
            sent += 1
            rate.sleep()
        # Let the last pongs land: a few periods, never a fixed sleep standing in for sync.
        settle = Rate(rate_hz)
        for _ in range(50):
            if received[0] >= sent:
                break
            settle.sleep()
        measuring.clear()
        sub.undeclare()
        return sent, received[0]
    finally:
        if session is not None:
            session.close()
        stop.set()
        child.join(10.0)
        if child.is_alive():
            child.kill()


def bench_tls(duration_s: float = 30.0, rate_hz: float = 1000.0, payload_bytes: int = 64,
              rounds: int = 3) -> dict[str, Any]:
    """RTT [ms] of a ``rate_hz`` ping-pong over tcp/, mutual TLS, and mutual TLS with ACL.

    Each mode runs ``duration_s`` [s] in all, split into ``rounds`` alternating rounds.
    """
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        pki = throwaway_pki(Path(tmp) / "pki", "bench",
                            {Role.SURGEON: ["bench"], Role.ROBOT: ["bench"]})
        samples = {m: Samples() for m in MODES}
        counts = {m: [0, 0] for m in MODES}
        for _ in range(rounds):
            for mode in MODES:
                proto = "tcp" if mode == "tcp" else "tls"
                sent, got = _ping_round(proto, _settings(mode, pki, Role.SURGEON, "bench"),
                                        _settings(mode, pki, Role.ROBOT, "bench"),
                                        duration_s / rounds, rate_hz, payload_bytes,
                                        samples[mode])
                counts[mode][0] += sent
                counts[mode][1] += got
        for mode in MODES:
            results[mode] = {"rtt_ms": samples[mode].summary(scale=1e-6),
                             "sent": counts[mode][0], "received": counts[mode][1]}
    return {
        "what": f"ping-pong RTT, {rate_hz:g} Hz, {payload_bytes} B, command QoS, two "
                "processes peer to peer on loopback: plain tcp/ vs tls/ with mutual TLS "
                "(ECDSA P-256) vs the same with the role access control on both nodes",
        "machine": machine_info(),
        "duration_s_per_mode": duration_s,
        "rounds": rounds,
        "modes": results,
    }


def bench_tags(batches: int = 200) -> dict[str, Any]:
    """Per-message cost [us] of encoding, sealing (encode and tag), decoding and verifying
    (decode, tag and replay window) a ``servo_cp``, over ``batches`` batches of
    ``TAG_BATCH`` messages each (p50 and p99 over batches)."""
    raw_key = bytes(range(KEY_SIZE))
    key = TagKey(raw_key)
    body = ServoCP("psm1", Pose((0.01, -0.02, -0.1), (1.0, 0.0, 0.0, 0.0)), 0)
    msgs = [Message(1, i + 1, i, body) for i in range(TAG_BATCH)]
    plain = [encode(m) for m in msgs]
    sealed = [seal(m, key) for m in msgs]
    samples = {k: Samples() for k in ("encode", "seal", "decode", "verify")}
    def timed(name: str, run: Callable[[], list[Any]]) -> list[Any]:
        t0 = time.perf_counter_ns()
        out = run()
        samples[name].add((time.perf_counter_ns() - t0) / TAG_BATCH)
        return out

    for b in range(batches):
        verifier = CommandVerifier()
        verifier.set_key(1, raw_key, "surgeon:bench", b)
        timed("encode", lambda: [encode(m) for m in msgs])
        timed("seal", lambda: [seal(m, key) for m in msgs])
        timed("decode", lambda: [decode(d) for d in plain])
        verdicts = timed("verify", functools.partial(_verify_all, verifier, sealed))
        if any(r is not None for r in verdicts):
            raise TransportError("bench_tags: a sealed message failed to verify")
    per = {k: v.summary(scale=1e-3) for k, v in samples.items()}
    return {
        "what": "servo_cp (100 B, 116 B sealed), one thread, per message [us]: encode vs "
                "seal (encode + HMAC-SHA256/128 tag); decode vs verify (decode + tag + "
                "replay window)",
        "machine": machine_info(),
        "us_per_message": per,
        "tag_cost_us": {"send": round(per["seal"]["p50"] - per["encode"]["p50"], 3),
                        "receive": round(per["verify"]["p50"] - per["decode"]["p50"], 3)},
    }


def _verify_all(verifier: CommandVerifier, sealed: list[bytes]) -> list[Any]:
    return [verifier.check("direct", d, decode(d)) for d in sealed]
