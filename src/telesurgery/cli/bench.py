"""``telesurgery bench``: the performance suite; each benchmark writes JSON."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any, cast

import typer

from telesurgery.cli.common import check_duration, setup_logging, stop_on_signals, write_json
from telesurgery.errors import ConfigError
from telesurgery.tasks import rules_for

bench_app = typer.Typer(help="Performance benchmarks (write JSON with --json PATH).",
                        no_args_is_help=True)

JsonOpt = Annotated[Path | None, typer.Option("--json", help="Write the results here.")]


def _emit(result: dict[str, Any], path: Path | None) -> None:
    if path is not None:
        write_json(path, result)
    typer.echo(json.dumps(result, indent=2))


@bench_app.command("control")
def control(
    json_path: JsonOpt = None,
    duration: Annotated[float, typer.Option(help="Seconds at 1 kHz (>= 60 for p99.9).")] = 60.0,
    log_level: Annotated[str, typer.Option("--log-level")] = "warning",
) -> None:
    """Input -> accepted latency, servo-tick wait, loop jitter and CPU, through real processes."""
    setup_logging(log_level)
    check_duration(duration)
    from telesurgery.bench.control import bench_control

    _emit(bench_control(duration), json_path)


@bench_app.command("link")
def link(
    json_path: JsonOpt = None,
    duration: Annotated[float, typer.Option(
        help="Seconds per protocol (UDP, then TCP); the first half second is warm-up.",
        min=1.0)] = 10.0,
    log_level: Annotated[str, typer.Option("--log-level")] = "warning",
) -> None:
    """Link emulator accuracy: applied delay minus the profile's, under 1 kHz control
    and 30 fps video-sized traffic, over UDP and TCP (target: p99 within 0.5 ms)."""
    setup_logging(log_level)
    from telesurgery.bench.link import bench_link

    _emit(bench_link(duration), json_path)


@bench_app.command("video")
def video(
    json_path: JsonOpt = None,
    seconds: Annotated[float, typer.Option(help="Seconds per frame size.")] = 5.0,
    size: Annotated[list[str] | None, typer.Option(
        help="Frame size WxH (repeat; default 640x480, 960x540, 1280x720, 1920x1080).")
    ] = None,
    demo: Annotated[float, typer.Option(help="Seconds of the end-to-end demo, run with and "
                                        "without video (0 skips it).")] = 30.0,
    page: Annotated[bool, typer.Option(help="Measure up to the paint in a headless "
                                       "Chromium showing the console page (needs "
                                       "Playwright; never downloads a browser).")] = False,
    chromium: Annotated[Path | None, typer.Option(help="Chromium executable (default: "
                                                  "the first on PATH).")] = None,
    page_codec: Annotated[str, typer.Option(
        help="What the page asks for: auto (WebCodecs, JPEG if it keeps falling behind), "
             "h264 (WebCodecs only) or jpeg.")] = "auto",
    log_level: Annotated[str, typer.Option("--log-level")] = "warning",
) -> None:
    """Render, convert, encode, decode per size; then glass-to-glass, motion-to-photon,
    stages and CPU through the whole system, and the control loop with video on and off."""
    setup_logging(log_level)
    from telesurgery.bench.pipeline import DEFAULT_SIZES
    from telesurgery.bench.video import PageCodec, bench_video_suite

    sizes = [_size(s) for s in size] if size else list(DEFAULT_SIZES)
    if page_codec not in ("auto", "h264", "jpeg"):
        raise typer.BadParameter(f"{page_codec!r}: choose auto, h264 or jpeg",
                                 param_hint="--page-codec")
    _emit(bench_video_suite(sizes, seconds, demo_s=demo, page=page, chromium=chromium,
                            page_codec=cast(PageCodec, page_codec)), json_path)


@bench_app.command("system")
def system(
    json_path: JsonOpt = None,
    link: Annotated[str, typer.Option(
        help="Link profile between console and patient (name or .toml file), or none.")
    ] = "rome-beijing",
    duration: Annotated[float, typer.Option(
        help="Seconds measured, from the page's first paint.")] = 60.0,
    hog: Annotated[int, typer.Option(
        help="Busy processes spinning beside the system (started and stopped by the "
             "bench).", min=0)] = 0,
    chromium: Annotated[Path | None, typer.Option(help="Chromium executable (default: "
                                                  "the first on PATH).")] = None,
    pin_sites: Annotated[bool, typer.Option(
        help="Each site on its own half of the CPUs, as on two machines (the browser with "
             "the surgeon's console), as the demo runs.")] = True,
    log_level: Annotated[str, typer.Option("--log-level")] = "warning",
    task: Annotated[str, typer.Option(
        help="The training task: peg_transfer, handover or precision.")] = "peg_transfer",
) -> None:
    """The flagship as a user sees it: the demo with video and its console page open in
    headless Chromium; commands, holds, page paint, latencies and CPU per process."""
    setup_logging(log_level)
    check_duration(duration)
    from telesurgery.bench.system import SystemOptions, bench_system

    opts = SystemOptions(link=None if link == "none" else link, duration_s=duration, hog=hog,
                         chromium=chromium, log_level=log_level, pin_sites=pin_sites,
                         task=rules_for(task).name)
    started = time.monotonic()

    def progress(line: str) -> None:
        typer.echo(f"bench system [{time.monotonic() - started:5.1f} s]: {line}", err=True)

    _emit(bench_system(opts, stop_on_signals(), progress), json_path)


@bench_app.command("audience")
def audience(
    json_path: JsonOpt = None,
    viewers: Annotated[int, typer.Option(help="Lightweight WebSocket viewers of the gateway's "
                                         "viewer page.", min=1)] = 200,
    hls_clients: Annotated[int, typer.Option(help="HTTP clients pulling the HLS playlist "
                                             "and segments.", min=0)] = 50,
    link: Annotated[str, typer.Option(
        help="Link profile between console and patient (name or .toml file), or none.")
    ] = "rome-beijing",
    duration: Annotated[float, typer.Option(
        help="Seconds measured in each run (without, then with the audience).")] = 60.0,
    chromium: Annotated[Path | None, typer.Option(help="Chromium executable (default: "
                                                  "the first on PATH).")] = None,
    pin_sites: Annotated[bool, typer.Option(help="Each site on its own half of the CPUs, as "
                                            "bench system.")] = True,
    log_level: Annotated[str, typer.Option("--log-level")] = "warning",
) -> None:
    """The flagship alone, then with an observer gateway and its audience: the surgeon's
    figures in both, the mentor tier's and the HLS tier's ages, the gateway's CPU."""
    setup_logging(log_level)
    check_duration(duration)
    from telesurgery.bench.audience import AudienceOptions, bench_audience

    opts = AudienceOptions(viewers=viewers, hls_clients=hls_clients, duration_s=duration,
                           link=None if link == "none" else link, chromium=chromium,
                           log_level=log_level, pin_sites=pin_sites)
    started = time.monotonic()

    def progress(line: str) -> None:
        typer.echo(f"bench audience [{time.monotonic() - started:5.1f} s]: {line}", err=True)

    _emit(bench_audience(opts, stop_on_signals(), progress), json_path)


@bench_app.command("holds")
def holds(
    json_path: JsonOpt = None,
    trials: Annotated[int, typer.Option(help="Holds of both arms per cause, free and in "
                                        "contact (>= 100 for the figures of "
                                        "docs/safety.md).", min=1)] = 100,
    observe: Annotated[float, typer.Option(help="Seconds watched after each hold (the "
                                           "last second judges creep).", min=1.1)] = 2.0,
    seed: Annotated[int, typer.Option(help="Random seed of the goals and hold times.")] = 0,
) -> None:
    """How far each tool tip travels after a hold (watchdog, take-over, e-stop, operator
    hold) at the speed and acceleration limits, and how far it drifts afterwards, in
    free space and pressed on the board: the safety supervisor over the MuJoCo robot on
    simulated time. Exit 1 past the bounds of docs/safety.md."""
    setup_logging("error")  # every trial logs its holds as warnings
    from telesurgery.bench.holds import bench_holds

    result = bench_holds(trials, observe, seed)
    _emit(result, json_path)
    if not result["passed"]:
        raise typer.Exit(1)


@bench_app.command("haptics")
def haptics(
    json_path: JsonOpt = None,
    seed: Annotated[int, typer.Option(help="Seed of the channel's jitter and loss.")] = 0,
    rtt: Annotated[list[int] | None, typer.Option(
        help="Round trip [ms] (repeat; default 0, 70, 135, 300, 700).", min=0)] = None,
) -> None:
    """Force feedback over the Rome-Beijing 5G path at RTT 0-700 ms: the simulated Touch
    against a stiff wall and in free space, time-domain passivity on and off; energy
    balance, oscillation, transparency and drift per rung (docs/haptics.md)."""
    from telesurgery.bench.haptics import RTTS_MS, bench_haptics, haptics_table

    result = bench_haptics(seed, rtt or RTTS_MS)
    _emit(result, json_path)
    typer.echo(haptics_table(result), err=True)


@bench_app.command("tasks")
def tasks(
    json_path: JsonOpt = None,
    task: Annotated[list[str] | None, typer.Option(
        help="A task to run (repeat; default every task).")] = None,
) -> None:
    """Each training task performed by its autopilot in one process on simulated time (no
    network): score, time, penalties and robot metrics (docs/training.md)."""
    setup_logging("error")
    from telesurgery.bench.tasks import bench_tasks

    _emit(bench_tasks([rules_for(t).name for t in task or ()]), json_path)


@bench_app.command("delay")
def delay(
    json_path: JsonOpt = None,
    trials: Annotated[int, typer.Option(help="Peg transfers per rung and compensation.",
                                        min=1)] = 3,
    rtt: Annotated[list[int] | None, typer.Option(
        help="Round trip [ms] of a rung (repeat; default the ladder 0, 70, 135, 250, 500).",
        min=0)] = None,
    seed: Annotated[int, typer.Option(help="Seed of the first trial (the link's jitter and "
                                      "loss, the surgeon model's aim).")] = 0,
    timeout: Annotated[float, typer.Option(help="Simulated seconds a transfer may take.",
                                           min=10.0)] = 240.0,
    jobs: Annotated[int, typer.Option(help="Trials at a time (default: the CPUs).",
                                      min=1)] = os.cpu_count() or 1,
) -> None:
    """The latency ladder: the peg transfer by the surgeon model (move and wait, docs/delay.md)
    at RTT 0-500 ms, compensation (predictive display and delay-scaled motion) off and on,
    on simulated time; task time, transfers, drops, path length and clutches per rung."""
    setup_logging("error")  # every trial logs its force caps as warnings
    from telesurgery.bench.delay import bench_delay, delay_table

    result = bench_delay(trials, None if rtt is None else [float(r) for r in rtt], seed,
                         timeout, jobs)
    _emit(result, json_path)
    typer.echo(delay_table(result), err=True)


@bench_app.command("sites")
def sites(
    json_path: JsonOpt = None,
    file: Annotated[Path, typer.Option(
        "--sites", help="The deployment file whose sites fail over.")]
    = Path("configs/sites/rome-beijing.toml"),
    workdir: Annotated[Path | None, typer.Option(
        help="Where the sites' logs go (default: a new temporary folder).")] = None,
    insecure: Annotated[bool, typer.Option(
        help="Plain TCP, no access control, untagged commands.")] = False,
) -> None:
    """A router hop's latency, then the deployment's sites in their own network namespaces
    (root) through a WAN path cut, both paths cut and the patient site's router restarted:
    commands lost, the hold, the resumption and the largest step of a tip, one check each."""
    setup_logging("error")
    from telesurgery.bench.sites import run_bench
    from telesurgery.demo.run import writable_dir

    result = run_bench(file, writable_dir(workdir, "--workdir"), insecure=insecure)
    _emit(result, json_path)
    for check in result["checks"]:
        figures = ", ".join(f"{k} {v}" for k, v in check.items() if k not in ("name", "passed"))
        typer.echo(f"{check['name']}: {'passed' if check.get('passed') else 'FAILED'} "
                   f"({figures})", err=True)
    hop = result["hop_ms"]
    typer.echo(f"router hop: p50 {hop['p50']} ms, p99 {hop['p99']} ms", err=True)


@bench_app.command("faults")
def faults(
    json_path: JsonOpt = None,
    fault: Annotated[list[str] | None, typer.Option(
        help="A fault to run (repeat; default: the whole matrix).")] = None,
    link: Annotated[str, typer.Option(
        help="Link profile between console and patient (name or .toml file).")
    ] = "rome-beijing",
    before: Annotated[float, typer.Option(
        help="Seconds from every node up to the fault.", min=1.0)] = 6.0,
    after: Annotated[float, typer.Option(
        help="Seconds from the fault's end to the demo's stop.", min=1.0)] = 12.0,
    recovery: Annotated[float, typer.Option(
        help="Seconds after the fault within which every arm must follow again.",
        min=0.5)] = 10.0,
    workdir: Annotated[Path | None, typer.Option(
        help="Keep each run's logs, recording and audit trail here (default: a temporary "
             "folder, removed).")] = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "warning",
) -> None:
    """The fault matrix on the real processes: each fault injected by the bench into a fresh
    demo run over emulated paths, judged (speed bound, held drift, recovery, audit trail,
    recording) with its criteria beside its result."""
    setup_logging(log_level)
    from telesurgery.bench.faults.inject import FAULTS, fault_named
    from telesurgery.bench.faults.run import FaultOptions, bench_faults

    if after < recovery:
        raise ConfigError(f"--after {after:g} is shorter than --recovery {recovery:g}: the run "
                          "would stop before recovery could be seen; raise --after")
    chosen = tuple(fault_named(n) for n in fault) if fault else FAULTS
    opts = FaultOptions(faults=chosen, link=link, before_s=before, after_s=after,
                        recovery_s=recovery, workdir=workdir, log_level=log_level)
    started = time.monotonic()

    def progress(line: str) -> None:
        typer.echo(f"bench faults [{time.monotonic() - started:5.1f} s]: {line}", err=True)

    _emit(bench_faults(opts, stop_on_signals(), progress), json_path)


@bench_app.command("security")
def security(
    json_path: JsonOpt = None,
    duration: Annotated[float, typer.Option(
        help="Seconds of 1 kHz ping-pong per transport mode (0 skips it).", min=0.0)] = 30.0,
    log_level: Annotated[str, typer.Option("--log-level")] = "warning",
) -> None:
    """Command tags per message (seal, verify), then the RTT of plain tcp/ against mutual
    TLS and mutual TLS with the role access control."""
    setup_logging(log_level)
    from telesurgery.bench.security import bench_tags, bench_tls

    out: dict[str, Any] = {"tags": bench_tags()}
    if duration > 0:
        out["tls"] = bench_tls(duration)
    _emit(out, json_path)


@bench_app.command("soak")
def soak(
    json_path: JsonOpt = None,
    duration: Annotated[float, typer.Option(help="Seconds the demo runs.")] = 3600.0,
    loss: Annotated[float, typer.Option(
        help="Random loss probability on every emulated path, both ways.", min=0.0,
        max=1.0)] = 0.01,
    link: Annotated[str, typer.Option(
        help="Link profile between console and patient (name or .toml file).")
    ] = "rome-beijing",
    video: Annotated[bool, typer.Option(help="Endoscope video from patient to console.")
                     ] = True,
    every: Annotated[float | None, typer.Option(
        help="Seconds between samples of each node's memory and descriptors (default: 5, "
             "less for runs under 100 s).", min=0.1)] = None,
    pin_sites: Annotated[bool, typer.Option(
        help="Each site on its own half of the CPUs, as the demo runs.")] = True,
    log_level: Annotated[str, typer.Option("--log-level")] = "warning",
) -> None:
    """The demo over lossy emulated paths for a long run: each node's memory and
    descriptors over time, loop deadline misses over 5 ms set beside the machine's own
    stalls (a probe in this process), holds and lost commands."""
    setup_logging(log_level)
    check_duration(duration)
    from telesurgery.bench.soak import SoakOptions, bench_soak

    opts = SoakOptions(duration_s=duration, loss=loss, link=link, video=video, every_s=every,
                       pin_sites=pin_sites, log_level=log_level)
    started = time.monotonic()

    def progress(line: str) -> None:
        typer.echo(f"bench soak [{time.monotonic() - started:6.1f} s]: {line}", err=True)

    _emit(bench_soak(opts, stop_on_signals(), progress), json_path)


@bench_app.command("fuzz")
def fuzz(
    json_path: JsonOpt = None,
    count: Annotated[int, typer.Option(help="Messages fed.", min=2)] = 1_000_000,
    seed: Annotated[int, typer.Option(help="Seed of both sources (same seed, same run).")
                    ] = 0,
    structured: Annotated[float, typer.Option(
        help="Share of the messages built by Hypothesis (about 3 ms of CPU each); the "
             "rest are mutated real messages (about 60 us each).", min=0.0, max=1.0)
    ] = 0.1,
    log_level: Annotated[str, typer.Option("--log-level")] = "error",
) -> None:
    """Bad input at scale: fuzzed messages (Hypothesis-built and mutated real ones) through
    the codec and the safety supervisor over the MuJoCo robot with every arm held;
    crashes, motions and every refusal counted (needs Hypothesis)."""
    # The supervisor logs the first refusal of each reason as a warning: a fuzz run makes
    # them all, on purpose.
    setup_logging(log_level)
    from telesurgery.bench.fuzz import bench_fuzz

    started = time.monotonic()

    def progress(line: str) -> None:
        typer.echo(f"bench fuzz [{time.monotonic() - started:6.1f} s]: {line}", err=True)

    result = bench_fuzz(count, seed, progress, structured)
    result["command"] = (f"telesurgery bench fuzz --count {count} --seed {seed} "
                         f"--structured {structured:g}")
    _emit(result, json_path)


def _size(text: str) -> tuple[int, int]:
    w, sep, h = text.lower().partition("x")
    if not (sep and w.isdigit() and h.isdigit()):
        raise ConfigError(f"--size {text!r} is not WxH; write e.g. 640x480")
    return int(w), int(h)


def register(app: typer.Typer) -> None:
    """Add ``bench`` and its benchmarks."""
    app.add_typer(bench_app, name="bench")
