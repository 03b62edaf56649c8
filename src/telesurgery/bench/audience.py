"""``bench audience``: the flagship session with and without an audience, in one run.

Two runs of ``bench system``'s flagship (the demo's processes, video on, the console page
painting in headless Chromium, ``Window``'s measured window from its first paint), one
after the other with the same options: first alone, then with an audience attached from
the moment the nodes are up:

- the observer gateway (``telesurgery observe``, a process of its own, a client of the
  site router with the site's observer certificate, broadcasting from the start);
- a crowd in one process of its own (``_crowd``): ``viewers`` lightweight WebSocket
  viewers (``audience.client.LightViewer``: they parse every frame and report it at once;
  one in ``STALL_ONE_IN`` stalls for ``STALL_S`` every ``STALL_EVERY_S``, as viewers on a
  bad link do), ``hls_clients`` HTTP clients polling the playlist and fetching each new
  segment, and one viewer page in a headless Chromium of its own.

The surgeon's figures are each run's own (input -> accepted and glass-to-glass p99);
the mentor tier's ages are the lightweight viewers' (arrival minus capture, on the clock
the gateway maps onto each viewer by ping); an HLS segment's age is how old its first
picture was (its watermark's capture time) when a client had the whole segment: what a
player starting there shows first (players hold back a few segments more). The gateway's
CPU is its process's over the measured window (``bench.cpu``).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

from telesurgery.bench import cpu
from telesurgery.bench.machine import machine_info
from telesurgery.bench.page import HeadlessPage, find_chromium
from telesurgery.bench.system import (
    Window,
    _launch,
    control_section,
    display_section,
    telesurgery_verb,
)
from telesurgery.demo.monitor import Monitor
from telesurgery.demo.processes import NodeProcess
from telesurgery.demo.run import DemoNodes, DemoOptions, run_demo
from telesurgery.errors import TelesurgeryError
from telesurgery.link.profiles import load_profile
from telesurgery.stats import Samples

Progress = Callable[[str], None]

STALL_ONE_IN: Final = 10
STALL_S: Final = 2.0
STALL_EVERY_S: Final = 10.0
GATEWAY_WAIT_S: Final = 180.0
"""How long [s] the gateway may take to start, join and print its URLs (its interpreter
starts beside the nodes' real-time loops: on a loaded 2-core machine, a minute and more)."""
CROWD_WAIT_S: Final = 60.0
CROWD_NICE: Final = 19
HLS_POLL_S: Final = 0.5
"""How often [s] an HLS client reloads the playlist: half the target duration, as
players do (RFC 8216 6.3.4 allows a reload after half of it when nothing changed)."""


@dataclass(frozen=True, slots=True)
class AudienceOptions:
    """What ``bench audience`` was asked for: the crowd, and the flagship's options."""

    viewers: int = 200
    hls_clients: int = 50
    duration_s: float = 60.0
    """Each run's measured window [s]."""
    link: str | None = "rome-beijing"
    chromium: Path | None = None
    log_level: str = "warning"
    pin_sites: bool = True
    """As ``bench system``: each site on its half of the CPUs, the surgeon's browser with
    the console; the gateway and the crowd float, as another machine's would not."""


def _router_endpoint(nodes: DemoNodes) -> str:
    args = nodes.router.args
    return args[args.index("--listen") + 1]


def _security_args(workdir: Path) -> list[str]:
    """The demo site's observer identity (``security.node.throwaway_site`` in ``workdir``)."""
    root = workdir / "security"
    return ["--identity", str(root / "pki" / "observer" / "observer"),
            "--acl", str(root / "acl.json"), "--crl", str(root / "pki" / "crl.pem")]


class Audience:
    """The gateway process and the crowd's process, started when the nodes are up."""

    def __init__(self, opts: AudienceOptions, workdir: Path, progress: Progress) -> None:
        self.opts = opts
        self.workdir = workdir
        self.progress = progress
        self.gateway: NodeProcess | None = None
        self._crowd: multiprocessing.process.BaseProcess | None = None
        self._stop = multiprocessing.get_context("spawn").Event()
        self._results: Connection | None = None
        self.ready: dict[str, Any] = {}
        """What the crowd had connected when the measured window opened."""

    def start(self, nodes: DemoNodes, _monitor: Monitor) -> None:
        """``run_demo``'s ``on_start``: the gateway, then the crowd once it serves."""
        self.gateway = NodeProcess("observe", [
            "observe", "--session", "or1", "--connect", _router_endpoint(nodes),
            "--broadcast", "--allowed-by", "bench", "--log-level", self.opts.log_level,
            "--log", str(self.workdir / "audience.jsonl"),
            *_security_args(self.workdir)], self.workdir)
        self.gateway.start()
        deadline = time.monotonic() + GATEWAY_WAIT_S
        urls = self._urls()
        while urls is None:
            if not self.gateway.alive() or time.monotonic() > deadline:
                raise TelesurgeryError(f"the gateway did not serve: "
                                       f"{self.gateway.last_log_line() or 'no output'}")
            time.sleep(0.2)
            urls = self._urls()
        viewer, hls = urls
        self.progress(f"gateway serving; starting {self.opts.viewers} viewers, "
                      f"{self.opts.hls_clients} HLS clients and a Chromium viewer")
        ctx = multiprocessing.get_context("spawn")
        mine, theirs = ctx.Pipe(duplex=False)
        self._results = mine
        self._crowd = ctx.Process(target=_crowd, name="audience-crowd", daemon=True,
                                  args=(viewer, hls, self.opts.viewers, self.opts.hls_clients,
                                        str(find_chromium(self.opts.chromium)), self._stop,
                                        theirs))
        self._crowd.start()
        self.ready["pid"] = self._crowd.pid
        self._wait_for_crowd(mine)

    def _wait_for_crowd(self, results: Connection) -> None:
        """Until the crowd says its viewers are connected and its Chromium page is open,
        or ``CROWD_WAIT_S`` passed: the measured window opens after this, so that it
        measures the surgeon with the audience watching (without the wait, 200 viewers
        started in a process still importing opened 1.5 s before a 60 s window's end)."""
        started = time.monotonic()
        ready: dict[str, Any] = {}
        if results.poll(CROWD_WAIT_S):
            ready = results.recv()
        self.ready = {**self.ready, **ready,
                      "waited_s": round(time.monotonic() - started, 2)}
        self.progress(f"crowd: {ready.get('viewers', 0)}/{self.opts.viewers} viewers connected,"
                      f" Chromium viewer {'open' if ready.get('page') else 'not open'}, after "
                      f"{self.ready['waited_s']:.1f} s")

    def _urls(self) -> tuple[str, str] | None:
        assert self.gateway is not None
        try:
            text = self.gateway.log_path.read_text(errors="replace")
        except OSError:
            return None
        lines = {k: v for k, _, v in (ln.partition(": ") for ln in text.splitlines())}
        viewer, hls = lines.get("viewer page"), lines.get("hls")
        return None if viewer is None or hls is None else (viewer.strip(), hls.strip())

    def stop(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Stop the crowd and the gateway; the crowd's figures and the gateway's report."""
        crowd: dict[str, Any] = {}
        self._stop.set()
        if self._results is not None and self._results.poll(CROWD_WAIT_S):
            crowd = self._results.recv()
        if self._crowd is not None:
            self._crowd.join(CROWD_WAIT_S)
        report: dict[str, Any] = {}
        if self.gateway is not None:
            self.gateway.interrupt()
            self.gateway.wait(30.0)
            with contextlib.suppress(TelesurgeryError):
                report = self.gateway.report()
        return crowd, report


@dataclass
class _Run:
    summary: dict[str, Any]
    window: Window
    crowd: dict[str, Any]
    gateway: dict[str, Any]
    ready: dict[str, Any]


def _flagship(opts: AudienceOptions, stop: threading.Event, progress: Progress,
              with_audience: bool) -> _Run:
    workdir = Path(tempfile.mkdtemp(prefix="telesurgery-audience-"))
    audience = Audience(opts, workdir, progress) if with_audience else None
    run_stop = threading.Event()
    browser = HeadlessPage(find_chromium(opts.chromium))
    with contextlib.ExitStack() as stack:
        page = _launch(browser, stack, opts.pin_sites)
        window = Window(opts.duration_s, page, run_stop, progress)

        def tick(monitor: Monitor, elapsed_s: float) -> None:
            if stop.is_set():
                run_stop.set()
            window.tick(monitor, elapsed_s)

        try:
            summary = run_demo(DemoOptions(duration_s=None, link=opts.link, video=True,
                                           workdir=workdir, log_level=opts.log_level,
                                           pin_sites=opts.pin_sites),
                               run_stop, on_tick=tick,
                               on_start=None if audience is None else audience.start)
        finally:
            crowd, report = audience.stop() if audience is not None else ({}, {})
    if window.first is None or window.last is None:
        raise TelesurgeryError("stopped before the measured window ended; nothing measured")
    return _Run(summary, window, crowd, report, {} if audience is None else audience.ready)


def _surgeon(run: _Run) -> dict[str, Any]:
    control = control_section(run.summary)
    rtt = run.summary.get("link", {}).get("rtt_ms", {}).get("p50")
    page = display_section((run.summary.get("video") or {}).get("displays", {}).get("page"),
                           rtt, run.window.page_reason or "the page painted nothing")
    return {"input_accepted_ms": control.get("latency_ms") or {},
            "glass_to_glass_ms": page.get("glass_to_glass_ms") or {},
            "painted_fps": page.get("painted_fps"), "frames": page.get("frames")}


def _gateway_cores(run: _Run) -> float | None:
    assert run.window.first is not None
    assert run.window.last is not None
    procs = cpu.usage(run.window.first, run.window.last)
    observe = [p for p in procs if telesurgery_verb(p.cmdline) == "observe"]
    return round(sum(p.cores for p in observe), 3) if observe else None


def _crowd_cores(run: _Run) -> float | None:
    """The crowd's cores over the window, its Chromium included: what the stand-in for
    the audience's own machines took from this one."""
    assert run.window.first is not None
    assert run.window.last is not None
    root = run.ready.get("pid")
    if root is None:
        return None
    procs = cpu.usage(run.window.first, run.window.last)
    ours = set(cpu.subtree(root, ((p.pid, p.ppid) for p in procs)))
    return round(sum(p.cores for p in procs if p.pid in ours), 3)


def _processes(run: _Run) -> dict[str, float]:
    """Cores over the window by program (a telesurgery verb, or the program's name):
    where the machine's time went in each run."""
    assert run.window.first is not None
    assert run.window.last is not None
    out: dict[str, float] = {}
    for p in cpu.usage(run.window.first, run.window.last):
        name = telesurgery_verb(p.cmdline) or p.comm
        out[name] = round(out.get(name, 0.0) + p.cores, 3)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _ratio(with_: dict[str, Any], without: dict[str, Any], key: str) -> float | None:
    a = (with_.get(key) or {}).get("p99")
    b = (without.get(key) or {}).get("p99")
    return None if not a or not b else round(a / b, 3)


def bench_audience(opts: AudienceOptions, stop: threading.Event,
                   progress: Progress = lambda _line: None) -> dict[str, Any]:
    """Run the flagship alone, then with the audience; the JSON (``bench audience``)."""
    if opts.viewers < 1 or opts.hls_clients < 0:
        raise TelesurgeryError("--viewers must be at least 1 and --hls-clients at least 0")
    if opts.link is not None:
        load_profile(opts.link)
    load_before = os.getloadavg()[0]
    progress("run 1 of 2: the flagship without an audience")
    without = _flagship(opts, stop, progress, with_audience=False)
    progress("run 2 of 2: the flagship with the audience")
    with_ = _flagship(opts, stop, progress, with_audience=True)
    s_without, s_with = _surgeon(without), _surgeon(with_)
    crowd = with_.crowd
    ages = Samples()
    for a in crowd.get("ages_ms", []):
        ages.add(a)
    hls_ages = Samples()
    for a in crowd.get("hls_ages_s", []):
        hls_ages.add(a)
    mentor_p50 = ages.summary().get("p50") if len(ages) else None
    surgeon_p50 = (s_with["glass_to_glass_ms"] or {}).get("p50")
    return {
        "what": "the flagship (router, patient, console with its page in Chromium) measured "
                "alone and then with an observer gateway, lightweight WebSocket viewers, HLS "
                "clients and a Chromium viewer page attached, one run after the other",
        "machine": machine_info(),
        "link": opts.link or "none",
        "duration_s": opts.duration_s,
        "pin_sites": opts.pin_sites,
        "viewers": opts.viewers,
        "hls_clients": opts.hls_clients,
        "surgeon": {"without": s_without, "with": s_with,
                    "with_over_without_p99": {
                        "input_accepted": _ratio(s_with, s_without, "input_accepted_ms"),
                        "glass_to_glass": _ratio(s_with, s_without, "glass_to_glass_ms")}},
        "mentor": {
            "delivered": crowd.get("delivered", 0),
            "behind": crowd.get("behind", 0),
            "restarts": crowd.get("restarts", 0),
            "restarts_on_keyframe": crowd.get("restarts_on_keyframe", 0),
            "stalling_viewers": crowd.get("stalling", 0),
            "steady_viewers_min_frames": crowd.get("steady_min_frames"),
            "age_ms": ages.summary() if len(ages) else {},
            "p50_above_surgeon_ms": None if mentor_p50 is None or surgeon_p50 is None
            else round(mentor_p50 - surgeon_p50, 3),
            "chromium_painted_fps": crowd.get("chromium_fps"),
            "chromium_error": crowd.get("chromium_error"),
            "viewer_errors": crowd.get("viewer_errors", 0),
            "what": "behind: viewers the gateway skipped ahead at least once (it stops "
                    "sending to a viewer with 6 frames unreported and restarts it at the next "
                    "keyframe); the stalling viewers stop reading for "
                    f"{STALL_S:g} s every {STALL_EVERY_S:g} s",
        },
        "hls": {"clients_served": crowd.get("hls_served", 0),
                "segments_fetched": crowd.get("hls_segments", 0),
                "longest_segment_s": crowd.get("hls_longest_s"),
                "age_s": hls_ages.summary() if len(hls_ages) else {}},
        "gateway_cpu_cores": _gateway_cores(with_),
        "crowd_ready": with_.ready,
        "crowd_cpu_cores": _crowd_cores(with_),
        "cores_by_program": {"without": _processes(without), "with": _processes(with_)},
        "gateway": with_.gateway,
        "load_average": {"before": load_before, "after": with_.window.load_after},
    }


# ---- the crowd (a process of its own) --------------------------------------------------


def _crowd(viewer_url: str, hls_url: str, viewers: int, hls_clients: int, chromium: str,
           stop: Any, out: Connection) -> None:
    """The audience: lightweight viewers and HLS clients on an event loop in a thread,
    the Chromium viewer on this process's main thread (Playwright's sync API wants it)."""
    # The crowd stands in for viewers on machines of their own: on this one it runs (with
    # its Chromium, which inherits this) after everything else, the gateway included, so
    # that what it costs the surgeon is the gateway's, not a stand-in's.
    with contextlib.suppress(OSError):
        os.nice(CROWD_NICE)
    figures: dict[str, Any] = {}
    done = threading.Event()
    connected = threading.Event()
    page_open = threading.Event()
    counts: list[int] = []

    def on_connected(n: int) -> None:
        counts.append(n)
        connected.set()

    def loop() -> None:
        try:
            figures.update(asyncio.run(_swarm(viewer_url, hls_url, viewers, hls_clients,
                                              stop, on_connected)))
        finally:
            connected.set()
            done.set()

    def say_ready() -> None:
        # The bench opens its window on this message: all viewers connected and the page
        # open, or the deadline (whichever first), and says which.
        deadline = time.monotonic() + CROWD_WAIT_S
        connected.wait(CROWD_WAIT_S)
        page_open.wait(max(0.0, deadline - time.monotonic()))
        out.send({"viewers": counts[0] if counts else 0, "page": page_open.is_set()})

    threading.Thread(target=loop, name="audience-crowd", daemon=True).start()
    readiness = threading.Thread(target=say_ready, name="audience-ready", daemon=True)
    readiness.start()
    fps: list[float] = []
    try:
        with HeadlessPage(Path(chromium)) as page:
            page.open(viewer_url)
            page_open.set()
            while not stop.wait(1.0):
                with contextlib.suppress(TelesurgeryError):
                    fps.append(float(page.evaluate(
                        "Number(document.getElementById('fps').textContent) || 0")))
    except TelesurgeryError as exc:
        figures["chromium_error"] = str(exc)
    page_open.set()
    readiness.join(CROWD_WAIT_S)
    done.wait(CROWD_WAIT_S)
    figures["chromium_fps"] = round(sum(fps) / len(fps), 1) if fps else None
    out.send(figures)


async def _swarm(viewer_url: str, hls_url: str, viewers: int, hls_clients: int,
                 stop: Any, connected: Callable[[int], None]) -> dict[str, Any]:
    import aiohttp

    from telesurgery.audience.client import LightViewer

    ws_url = viewer_url.replace("http://", "ws://").replace("/?", "/ws?")
    done = asyncio.Event()
    crowd = [LightViewer(ws_url) for _ in range(viewers)]
    stalling = crowd[::STALL_ONE_IN]
    hls_figures: list[tuple[list[float], list[float]]] = [([], []) for _ in range(hls_clients)]

    async def watch_stop() -> None:
        while not stop.is_set():
            await asyncio.sleep(0.2)
        done.set()

    async def stall() -> None:
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), STALL_EVERY_S)
            for v in stalling:
                v.stall(STALL_S)

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        tasks = [asyncio.create_task(v.run(done, http)) for v in crowd]
        pulls = [asyncio.create_task(_hls_client(http, hls_url, done, *f))
                 for f in hls_figures]
        watching = asyncio.create_task(watch_stop())
        await _all_connected(crowd, done, connected)
        await asyncio.gather(watching, stall())
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*pulls, return_exceptions=True)
    figs = [r for r in results if not isinstance(r, BaseException)]
    steady = [r for v, r in zip(crowd, results, strict=True)
              if v not in stalling and not isinstance(r, BaseException)]
    return {
        "delivered": sum(f.frames for f in figs),
        "ages_ms": [a for f in figs for a in f.ages_ms],
        "behind": sum(1 for f in figs if f.gaps),
        "restarts": sum(f.gaps for f in figs),
        "restarts_on_keyframe": sum(f.restarts_on_keyframe for f in figs),
        "stalling": len(stalling),
        "steady_min_frames": min((f.frames for f in steady), default=None),
        "hls_served": sum(1 for ages, _ in hls_figures if ages),
        "hls_segments": sum(len(ages) for ages, _ in hls_figures),
        "hls_ages_s": [a for ages, _ in hls_figures for a in ages],
        "hls_longest_s": max((d for _, durs in hls_figures for d in durs), default=None),
        "viewer_errors": sum(1 for r in results if isinstance(r, BaseException)),
    }


async def _all_connected(crowd: list[Any], done: asyncio.Event,
                         connected: Callable[[int], None]) -> None:
    """Call ``connected`` with the number of viewers connected once all are, or at
    ``CROWD_WAIT_S``, or at the stop."""
    waits = [asyncio.create_task(v.connected.wait()) for v in crowd]
    either: set[asyncio.Future[Any]] = {asyncio.ensure_future(asyncio.gather(*waits)),
                                        asyncio.ensure_future(done.wait())}
    try:
        await asyncio.wait(either, timeout=CROWD_WAIT_S, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (*waits, *either):
            t.cancel()
    connected(sum(1 for v in crowd if v.connected.is_set()))


async def _hls_client(http: Any, playlist_url: str, done: asyncio.Event, ages: list[float],
                      durations: list[float]) -> None:
    """Poll the playlist; fetch each new segment once; its first picture's age on arrival."""
    import m3u8

    from telesurgery.audience.watermark import read_watermarks

    base = playlist_url.rsplit("/", 1)[0]
    seen: set[str] | None = None
    while not done.is_set():
        with contextlib.suppress(OSError, asyncio.TimeoutError, ValueError):
            async with http.get(playlist_url) as r:
                text = await r.text() if r.status == 200 else ""
            listed = m3u8.loads(text).segments if text else []
            if seen is None:
                # What was listed before this client came is not live for it: it follows
                # the live edge from the next segment on.
                seen = {seg.uri for seg in listed} if text else None
                listed = []
            for seg in listed:
                if seen is None or seg.uri in seen:
                    continue
                seen.add(seg.uri)
                async with http.get(f"{base}/{seg.uri}") as r:
                    if r.status != 200:
                        continue
                    body = await r.read()
                marks = read_watermarks(body)
                if marks:
                    ages.append(round(time.time() - marks[0].capture_unix_ms * 1e-3, 3))
                    durations.append(float(seg.duration))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), HLS_POLL_S)


__all__ = ["AudienceOptions", "bench_audience"]
