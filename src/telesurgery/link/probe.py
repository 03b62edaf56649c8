"""Qualifying a path before an operation: measure it, compare with thresholds, say GO or NO-GO.

A lightweight UDP ``Responder`` runs on the far side (``telesurgery probe --respond``);
the prober, per path, for ``duration_s``:

1. sends timestamped pings at ``rate_hz`` (about the size of a command); each pong
   carries the responder's receive and send times, giving the round trip, the
   clock offset (``clocksync``: minimum-round-trip exchange, error bound = half
   its round trip), the one-way delay each way, and RFC 3550 interarrival jitter
   each way (averaged over the run);
2. asks the responder which pings arrived, which splits loss into forward and
   reverse and gives the loss bursts of each direction (longest, in ms);
3. asks for a short paced burst back (the direction video flows when the prober
   sits at the console) at 1.5 x the bandwidth threshold, and measures the rate
   that arrives.

Every path must pass every threshold for GO. The defaults and their sources are
in ``Thresholds``; a TOML file or flags change them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import itertools
import logging
import random
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from telesurgery.clock import now_ns
from telesurgery.clocksync import ClockSync, Exchange
from telesurgery.errors import CodecError, ConfigError, TransportError
from telesurgery.link import probe_wire as wire
from telesurgery.link.impairment import NS_PER_MS, NS_PER_S
from telesurgery.link.locator import Locator, precise_loop
from telesurgery.stats import summarize

log = logging.getLogger(__name__)

MAX_RUNS = 64
"""Probe runs a responder remembers at once (the oldest is forgotten)."""
MAX_BURST_BYTES = 64 * 1024 * 1024
MAX_BURST_RATE_BPS = 10e9
_REPORT_TRIES = 5
_BURST_TRIES = 3


class Thresholds(BaseModel):
    """What a path must meet for GO; each default cites its source or says it is our choice."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_rtt_ms: Annotated[float, Field(gt=0.0)] = 200.0
    """Round trip at p99 [ms]."""
    max_jitter_ms: Annotated[float, Field(gt=0.0)] = 5.0
    """RFC 3550 interarrival jitter, worse direction [ms]."""
    max_loss: Annotated[float, Field(ge=0.0, le=1.0)] = 0.01
    """Packet loss, worse direction."""
    max_loss_burst_ms: Annotated[float, Field(gt=0.0)] = 50.0
    """Longest run of lost probes, in time [ms]."""
    min_bandwidth_mbit_s: Annotated[float, Field(ge=0.0)] = 12.8
    """Rate a paced burst achieves far side to near side [Mbit/s]; 0 skips the burst."""

    SOURCES: ClassVar[dict[str, str]] = {
        "max_rtt_ms": "Xu et al. 2014: <= 200 ms ideal",
        "max_jitter_ms": "our choice, the strict end of the <= 5-10 ms an ATIS catalogue "
                         "mirror gives (lower confidence); 0.39 ms was measured in the Edge "
                         "MP1000 trial",
        "max_loss": "our choice; <1 % was reported for the KangDuo sea-spanning case",
        "max_loss_burst_ms": "the 50 ms safety watchdog (our default; the dVRK uses 30 ms): a "
                             "longer gap on a single path would hold the arm",
        "min_bandwidth_mbit_s": "the 12.8 Mbit/s stream of the Edge MP1000 trial "
                                "(Int J Surg 2025)",
    }


@dataclass(frozen=True, slots=True)
class ProbeSettings:
    """How one path is measured."""

    duration_s: float = 10.0
    """Length of the ping phase [s]."""
    rate_hz: float = 200.0
    """Ping rate [Hz]; a lost ping spans 5 ms of a loss burst at 200 Hz."""
    size: int = 64
    """Ping and pong size [bytes], about a servo command."""
    grace_s: float = 2.0
    """Wait for late pongs after the last ping [s]."""
    burst_s: float = 0.5
    """Length of the bandwidth burst [s]."""
    burst_packet_size: int = 1200
    """Burst datagram size [bytes], a video packet under a 1500-byte MTU."""

    def __post_init__(self) -> None:
        pings = round(self.duration_s * self.rate_hz)
        if not 1 <= pings <= wire.MAX_PINGS:
            raise ConfigError(f"probe of {self.duration_s} s at {self.rate_hz} Hz sends {pings} "
                              f"pings; keep it between 1 and {wire.MAX_PINGS}")
        if not wire.HEADER_SIZE + 24 <= self.size <= 1400:
            raise ConfigError(f"probe size {self.size} bytes: use 38 to 1400")
        if not wire.HEADER_SIZE + 8 <= self.burst_packet_size <= 1472:
            raise ConfigError(f"burst packet size {self.burst_packet_size}: use 22 to 1472")
        if self.grace_s < 0.0 or self.burst_s <= 0.0:
            raise ConfigError("grace must be >= 0 s and the burst > 0 s")

    @property
    def period_ns(self) -> int:
        """Ping interval [ns]."""
        return round(NS_PER_S / self.rate_hz)


@dataclass
class RawRun:
    """What one path's measurement collected, before analysis."""

    sent_ns: list[int] = field(default_factory=list)
    """t0 of ping i [ns, local clock]."""
    exchanges: dict[int, Exchange] = field(default_factory=dict)
    """Completed exchanges by ping sequence number."""
    report: wire.Report | None = None
    burst_request: wire.BurstRequest | None = None
    burst: list[tuple[int, int]] = field(default_factory=list)
    """Burst arrivals: (local time [ns], size [bytes])."""
    rejected: int = 0
    """Datagrams that were not probe messages of this run."""


@dataclass(frozen=True, slots=True)
class Check:
    """One threshold applied to one path."""

    name: str
    value: float | None
    limit: float
    ok: bool
    source: str

    def describe(self) -> str:
        """One line, e.g. ``rtt 612.0 ms > 200 ms (Xu et al. 2014: <= 200 ms ideal)``."""
        unit = _UNITS[self.name]
        op = ">=" if self.name == "bandwidth" else "<="
        shown = "not measured" if self.value is None else f"{self.value:.4g}{unit}"
        verdict = "ok" if self.ok else "FAILS"
        return f"{self.name} {shown}, needs {op} {self.limit:g}{unit}: {verdict} ({self.source})"


_UNITS = {"rtt_p99": " ms", "jitter": " ms", "loss": "", "loss_burst": " ms",
          "bandwidth": " Mbit/s"}


@dataclass(frozen=True, slots=True)
class PathResult:
    """Metrics and checks of one path."""

    name: str
    target: str
    metrics: dict[str, Any]
    checks: tuple[Check, ...]

    @property
    def go(self) -> bool:
        """True when every check passes."""
        return all(c.ok for c in self.checks)


@dataclass(frozen=True, slots=True)
class ProbeReport:
    """The verdict over every path."""

    paths: tuple[PathResult, ...]
    thresholds: Thresholds
    settings: ProbeSettings
    finished_at: str = ""
    """When the probe finished (ISO 8601, UTC): the patient's pre-flight checklist
    accepts a report only this many minutes old (``ChecklistConfig``)."""

    @property
    def go(self) -> bool:
        """GO only when every path passes every threshold."""
        return all(p.go for p in self.paths)

    @property
    def reasons(self) -> list[str]:
        """Each failed check, as ``path: description``."""
        return [f"{p.name}: {c.describe()}" for p in self.paths for c in p.checks if not c.ok]

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready values."""
        return {
            "verdict": "GO" if self.go else "NO-GO",
            "finished_at": self.finished_at,
            "reasons": self.reasons,
            "thresholds": self.thresholds.model_dump(),
            "threshold_sources": Thresholds.SOURCES,
            "settings": asdict(self.settings),
            "paths": {p.name: {"target": p.target, "go": p.go, **p.metrics,
                               "checks": [asdict(c) for c in p.checks]} for p in self.paths},
        }


# --- analysis (pure) --------------------------------------------------------------------------


def _ms(values: list[int]) -> dict[str, float]:
    arr = np.array(values, dtype=np.float64)
    out = summarize(arr, 1e-6)
    if arr.size:
        out["min"] = round(float(arr.min()) * 1e-6, 3)
    return out


def rfc3550_jitter_ms(arrivals: list[tuple[int, int]]) -> float | None:
    """Mean over the run of the RFC 3550 interarrival jitter estimator [ms].

    ``arrivals`` are (arrival time, transit time) [ns] pairs; transit may carry any
    constant clock offset, which cancels. None with fewer than two arrivals.
    """
    if len(arrivals) < 2:
        return None
    ordered = sorted(arrivals)
    j, total = 0.0, 0.0
    for (_, prev), (_, cur) in itertools.pairwise(ordered):
        j += (abs(cur - prev) - j) / 16.0
        total += j
    return round(total / (len(ordered) - 1) / NS_PER_MS, 4)


def loss_bursts(lost: list[bool]) -> list[int]:
    """Lengths of the runs of consecutive losses."""
    runs, run = [], 0
    for is_lost in lost:
        if is_lost:
            run += 1
        elif run:
            runs.append(run)
            run = 0
    if run:
        runs.append(run)
    return runs


def _loss_summary(lost: list[bool], period_ms: float) -> dict[str, float]:
    runs = loss_bursts(lost)
    return {
        "loss": round(sum(lost) / len(lost), 6) if lost else 0.0,
        "bursts": len(runs),
        "longest_burst": max(runs, default=0),
        "longest_burst_ms": round(max(runs, default=0) * period_ms, 3),
        "mean_burst": round(sum(runs) / len(runs), 3) if runs else 0.0,
    }


def analyse(raw: RawRun, settings: ProbeSettings) -> dict[str, Any]:
    """The metrics of one path from what its measurement collected."""
    sent = len(raw.sent_ns)
    ex = [raw.exchanges[s] for s in sorted(raw.exchanges)]
    period_ms = settings.period_ns / NS_PER_MS
    notes: list[str] = []
    metrics: dict[str, Any] = {"sent": sent, "replies": len(ex),
                               "rtt_ms": _ms([e.rtt_ns for e in ex])}
    sync = ClockSync(window=max(1, len(ex)))
    for e in ex:
        sync.add(e)
    est = sync.estimate(now_ns=ex[-1].t3_ns) if ex else None
    if est is not None:
        metrics["clock_offset_ms"] = round(est.offset_ns / NS_PER_MS, 4)
        metrics["clock_offset_bound_ms"] = round(est.bound_ns / NS_PER_MS, 4)
        metrics["one_way_ms"] = {
            "forward": _ms([e.t1_ns - est.offset_ns - e.t0_ns for e in ex]),
            "reverse": _ms([e.t3_ns - (e.t2_ns - est.offset_ns) for e in ex]),
            "bound_ms": round(est.bound_ns / NS_PER_MS, 4),
        }
    metrics["jitter_ms"] = {
        "forward": rfc3550_jitter_ms([(e.t1_ns, e.t1_ns - e.t0_ns) for e in ex]),
        "reverse": rfc3550_jitter_ms([(e.t3_ns, e.t3_ns - e.t2_ns) for e in ex]),
    }
    round_trip = [s not in raw.exchanges for s in range(sent)]
    losses: dict[str, Any] = {"round_trip": _loss_summary(round_trip, period_ms)}
    if raw.report is not None:
        report = raw.report
        arrived = [report.arrived(s) for s in range(sent)]
        losses["forward"] = _loss_summary([not a for a in arrived], period_ms)
        losses["reverse"] = _loss_summary(
            [s not in raw.exchanges for s in range(sent) if arrived[s]], period_ms)
    else:
        notes.append("the responder's report never came back: loss is counted round trip")
    metrics["loss"] = losses
    metrics["bandwidth"] = _bandwidth(raw)
    metrics["rejected_datagrams"] = raw.rejected
    metrics["notes"] = notes
    return metrics


def _bandwidth(raw: RawRun) -> dict[str, Any]:
    req = raw.burst_request
    if req is None:
        return {"measured": False}
    arrivals = sorted(raw.burst)
    out: dict[str, Any] = {"measured": True, "probe_mbit_s": round(req.rate_bps / 1e6, 3),
                           "packets": req.packets, "received": len(arrivals),
                           "loss": round(1 - len(arrivals) / req.packets, 4)}
    if len(arrivals) >= 2 and arrivals[-1][0] > arrivals[0][0]:
        bits = 8 * sum(size for _, size in arrivals[1:])
        span_s = (arrivals[-1][0] - arrivals[0][0]) / NS_PER_S
        out["mbit_s"] = round(bits / span_s / 1e6, 3)
    else:
        out["mbit_s"] = 0.0
    return out


def judge(metrics: dict[str, Any], thresholds: Thresholds) -> tuple[Check, ...]:
    """Apply every threshold to one path's metrics."""
    src = Thresholds.SOURCES
    rtt = metrics["rtt_ms"].get("p99")
    jitters = [j for j in metrics["jitter_ms"].values() if j is not None]
    loss = metrics["loss"]
    directions = [loss[d] for d in ("forward", "reverse") if d in loss] or [loss["round_trip"]]
    worst_loss = max(d["loss"] for d in directions)
    worst_burst = max(d["longest_burst_ms"] for d in directions)
    checks = [
        Check("rtt_p99", rtt, thresholds.max_rtt_ms,
              rtt is not None and rtt <= thresholds.max_rtt_ms, src["max_rtt_ms"]),
        Check("jitter", max(jitters) if jitters else None, thresholds.max_jitter_ms,
              bool(jitters) and max(jitters) <= thresholds.max_jitter_ms, src["max_jitter_ms"]),
        Check("loss", worst_loss, thresholds.max_loss, worst_loss <= thresholds.max_loss,
              src["max_loss"]),
        Check("loss_burst", worst_burst, thresholds.max_loss_burst_ms,
              worst_burst <= thresholds.max_loss_burst_ms, src["max_loss_burst_ms"]),
    ]
    if thresholds.min_bandwidth_mbit_s > 0.0:
        bw = metrics["bandwidth"].get("mbit_s")
        checks.append(Check("bandwidth", bw, thresholds.min_bandwidth_mbit_s,
                            bw is not None and bw >= thresholds.min_bandwidth_mbit_s,
                            src["min_bandwidth_mbit_s"]))
    return tuple(checks)


# --- responder ---------------------------------------------------------------------------------


@dataclass
class _RunState:
    bitmap: bytearray = field(default_factory=bytearray)
    received: int = 0
    burst_started: bool = False


class Responder:
    """Answers probes on a UDP endpoint: pongs, reports and paced bursts."""

    def __init__(self, listen: Locator) -> None:
        if listen.protocol != "udp":
            raise ConfigError(f"the probe responder listens on udp/HOST:PORT, not {listen}")
        self._listen = listen
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runs: collections.OrderedDict[tuple[Any, int], _RunState] = (
            collections.OrderedDict())
        self._bursts: set[asyncio.Task[None]] = set()
        self.pings = 0
        self.rejected = 0

    @property
    def listen_address(self) -> Locator:
        """Where it listens (with the port the OS chose for port 0)."""
        return self._listen

    async def __aenter__(self) -> Responder:
        loop = asyncio.get_running_loop()
        sock = socket.socket(self._listen.family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind(self._listen.address)
        except OSError as exc:
            sock.close()
            raise TransportError(f"probe responder cannot listen on {self._listen}: "
                                 f"{exc.strerror}; choose a free port") from exc
        self._sock, self._loop = sock, loop
        self._listen = self._listen.with_port(sock.getsockname()[1])
        loop.add_reader(sock, self._readable)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in list(self._bursts):
            task.cancel()
        if self._sock is not None and self._loop is not None:
            self._loop.remove_reader(self._sock)
            self._sock.close()
            self._sock = None

    def _readable(self) -> None:
        sock = self._sock
        assert sock is not None
        for _ in range(64):
            try:
                data, addr = sock.recvfrom(wire.MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            t1 = now_ns()
            try:
                msg = wire.parse(data)
            except CodecError as exc:
                self.rejected += 1
                log.debug("probe responder: rejected a datagram from %s: %s", addr, exc)
                continue
            self._handle(msg, addr, t1)

    def _state(self, addr: Any, run: int) -> _RunState:
        key = (addr, run)
        state = self._runs.get(key)
        if state is None:
            state = self._runs[key] = _RunState()
            if len(self._runs) > MAX_RUNS:
                self._runs.popitem(last=False)
        return state

    def _handle(self, msg: wire.Message, addr: Any, t1: int) -> None:
        sock = self._sock
        assert sock is not None
        assert self._loop is not None
        reply: bytes | None = None
        if isinstance(msg, wire.Ping):
            if msg.seq >= wire.MAX_PINGS:
                self.rejected += 1
                return
            self.pings += 1
            state = self._state(addr, msg.run)
            byte = msg.seq >> 3
            if byte >= len(state.bitmap):
                state.bitmap.extend(bytes(byte + 1 - len(state.bitmap)))
            if not state.bitmap[byte] >> (msg.seq & 7) & 1:
                state.bitmap[byte] |= 1 << (msg.seq & 7)
                state.received += 1
            reply = bytes(wire.Pong(msg.run, msg.seq, msg.t0_ns, t1, now_ns(), msg.size))
        elif isinstance(msg, wire.ReportRequest):
            state = self._state(addr, msg.run)
            reply = bytes(wire.Report(msg.run, state.received, bytes(state.bitmap)))
        elif isinstance(msg, wire.BurstRequest):
            state = self._state(addr, msg.run)
            if state.burst_started:
                return  # a retried request: one burst per run
            if (msg.packets * msg.packet_size > MAX_BURST_BYTES
                    or msg.rate_bps > MAX_BURST_RATE_BPS):
                self.rejected += 1
                return
            state.burst_started = True
            task = self._loop.create_task(self._burst(msg, addr))
            self._bursts.add(task)
            task.add_done_callback(self._bursts.discard)
        else:
            self.rejected += 1
        if reply is not None:
            with contextlib.suppress(OSError):
                sock.sendto(reply, addr)

    async def _burst(self, req: wire.BurstRequest, addr: Any) -> None:
        sock = self._sock
        assert sock is not None
        gap = req.packet_size * 8 / req.rate_bps * NS_PER_S
        start = now_ns()
        seq = 0
        while seq < req.packets:
            due = start + round(seq * gap)
            wait = due - now_ns()
            if wait > 0:
                await asyncio.sleep(wait / NS_PER_S)
            while seq < req.packets and start + round(seq * gap) <= now_ns():
                with contextlib.suppress(OSError):
                    sock.sendto(bytes(wire.BurstPacket(req.run, seq, now_ns(), req.packet_size)),
                                addr)
                seq += 1


# --- prober ------------------------------------------------------------------------------------


class _Prober:
    """Measures one path from this side."""

    def __init__(self, target: Locator, settings: ProbeSettings, burst_rate_bps: float) -> None:
        self.target = target
        self.settings = settings
        self.burst_rate_bps = burst_rate_bps
        self.run = random.getrandbits(32)
        self.raw = RawRun()
        self._all_pongs = asyncio.Event()
        self._report = asyncio.Event()
        self._burst_first = asyncio.Event()
        self._burst_done = asyncio.Event()

    async def measure(self) -> RawRun:
        loop = asyncio.get_running_loop()
        sock = socket.socket(self.target.family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.connect(self.target.address)
        except OSError as exc:
            sock.close()
            raise TransportError(f"cannot probe {self.target}: {exc.strerror}; "
                                 "check the address") from exc
        loop.add_reader(sock, self._readable, sock)
        try:
            await self._pings(sock)
            # Without a single pong nothing answers there: asking for more would only wait.
            if self.raw.exchanges:
                await self._ask_report(sock)
                if self.burst_rate_bps > 0.0:
                    await self._ask_burst(sock)
        finally:
            loop.remove_reader(sock)
            sock.close()
        return self.raw

    def _wait_s(self) -> float:
        """How long to wait for one answer [s]: three round trips, at least half a second."""
        rtts = [e.rtt_ns for e in self.raw.exchanges.values()]
        return max(0.5, 3.0 * max(rtts, default=NS_PER_S) / NS_PER_S)

    async def _pings(self, sock: socket.socket) -> None:
        s = self.settings
        n = round(s.duration_s * s.rate_hz)
        start = now_ns() + NS_PER_MS
        for seq in range(n):
            wait = start + seq * s.period_ns - now_ns()
            if wait > 0:
                await asyncio.sleep(wait / NS_PER_S)
            t0 = now_ns()
            self.raw.sent_ns.append(t0)
            _send(sock, bytes(wire.Ping(self.run, seq, t0, s.size)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_pongs.wait(), s.grace_s)

    async def _ask_report(self, sock: socket.socket) -> None:
        for _ in range(_REPORT_TRIES):
            _send(sock, bytes(wire.ReportRequest(self.run)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._report.wait(), self._wait_s())
                return

    async def _ask_burst(self, sock: socket.socket) -> None:
        s = self.settings
        packets = max(2, round(self.burst_rate_bps * s.burst_s / 8 / s.burst_packet_size))
        req = wire.BurstRequest(self.run, packets, s.burst_packet_size, self.burst_rate_bps)
        self.raw.burst_request = req
        for _ in range(_BURST_TRIES):
            _send(sock, bytes(req))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._burst_first.wait(), self._wait_s())
                break
        if self._burst_first.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._burst_done.wait(), s.burst_s + self._wait_s())

    def _readable(self, sock: socket.socket) -> None:
        for _ in range(64):
            try:
                data = sock.recv(wire.MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # ICMP port unreachable: nothing answers there (yet); the pings count as lost.
                continue
            t3 = now_ns()
            try:
                msg = wire.parse(data)
            except CodecError:
                self.raw.rejected += 1
                continue
            if getattr(msg, "run", None) != self.run:
                self.raw.rejected += 1
                continue
            self._take(msg, t3)

    def _take(self, msg: wire.Message, t3: int) -> None:
        raw = self.raw
        if isinstance(msg, wire.Pong):
            if (msg.seq < len(raw.sent_ns) and raw.sent_ns[msg.seq] == msg.t0_ns
                    and msg.seq not in raw.exchanges and msg.t2_ns >= msg.t1_ns):
                raw.exchanges[msg.seq] = Exchange(msg.t0_ns, msg.t1_ns, msg.t2_ns, t3)
                if len(raw.exchanges) == round(self.settings.duration_s * self.settings.rate_hz):
                    self._all_pongs.set()
        elif isinstance(msg, wire.Report):
            raw.report = msg
            self._report.set()
        elif isinstance(msg, wire.BurstPacket):
            raw.burst.append((t3, msg.size))
            self._burst_first.set()
            if raw.burst_request is not None and len(raw.burst) >= raw.burst_request.packets:
                self._burst_done.set()
        else:
            raw.rejected += 1


def _send(sock: socket.socket, data: bytes) -> None:
    # A refused or full send is a lost probe, which the analysis counts.
    with contextlib.suppress(OSError):
        sock.send(data)


async def probe_paths(paths: Mapping[str, Locator], settings: ProbeSettings,
                      thresholds: Thresholds) -> ProbeReport:
    """Measure each path in turn and judge it (run on ``precise_loop()``)."""
    burst_bps = 1.5 * thresholds.min_bandwidth_mbit_s * 1e6
    results = []
    for name, target in paths.items():
        log.info("probing %s (%s) for %.1f s", name, target, settings.duration_s)
        raw = await _Prober(target, settings, burst_bps).measure()
        metrics = analyse(raw, settings)
        results.append(PathResult(name, str(target), metrics, judge(metrics, thresholds)))
    return ProbeReport(tuple(results), thresholds, settings,
                       datetime.datetime.now(datetime.UTC).isoformat())


def run_probe(paths: Mapping[str, Locator], settings: ProbeSettings | None = None,
              thresholds: Thresholds | None = None) -> ProbeReport:
    """``probe_paths`` on a fresh precise event loop (blocking)."""
    with asyncio.Runner(loop_factory=precise_loop) as runner:
        return runner.run(probe_paths(paths, settings or ProbeSettings(),
                                      thresholds or Thresholds()))
