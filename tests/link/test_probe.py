"""The probe: its wire format and analysis exactly, then GO / NO-GO through real emulators."""

from __future__ import annotations

import contextlib
import json
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telesurgery.clocksync import Exchange
from telesurgery.demo.processes import free_port
from telesurgery.errors import CodecError, ConfigError
from telesurgery.link import probe_wire as wire
from telesurgery.link.control import EmulatorProcess, ResponderProcess
from telesurgery.link.locator import Locator
from telesurgery.link.probe import (
    ProbeSettings,
    RawRun,
    Thresholds,
    analyse,
    judge,
    loss_bursts,
    rfc3550_jitter_ms,
    run_probe,
)

MS = 1_000_000
WAIT_S = 10.0


@pytest.mark.parametrize("msg", [
    wire.Ping(7, 3, 123_456, 64),
    wire.Pong(7, 3, 123_456, 2_000_000, 2_000_500, 80),
    wire.ReportRequest(9),
    wire.Report(9, 5, bytes([0b10111, 0])),
    wire.BurstRequest(1, 1000, 1200, 19.2e6),
    wire.BurstPacket(1, 999, -5, 1200),
])
def test_every_message_round_trips(msg: wire.Message) -> None:
    assert wire.parse(bytes(msg)) == msg


_HEADED = st.builds(lambda kind, rest: wire.MAGIC + bytes([wire.VERSION, kind]) + rest,
                    st.integers(0, 8), st.binary(max_size=100))


@given(st.one_of(st.binary(max_size=200), _HEADED))
def test_any_bytes_parse_or_raise_codec_error(data: bytes) -> None:
    # Anything but a CodecError escaping parse() fails the test.
    with contextlib.suppress(CodecError):
        msg = wire.parse(data)
        assert msg.run == int.from_bytes(data[6:10], "little")


def test_parse_explains_what_is_wrong() -> None:
    with pytest.raises(CodecError, match="not a probe datagram"):
        wire.parse(b"X" * 40)
    with pytest.raises(CodecError, match="truncated"):
        wire.parse(bytes(wire.Pong(1, 1, 1, 1, 1))[:20])
    with pytest.raises(CodecError, match="announces 9 bitmap bytes"):
        wire.parse(bytes(wire.ReportRequest(1))[:5] + bytes([wire.Kind.REPORT])
                   + bytes(wire.ReportRequest(1))[6:] + struct.pack("<II", 1, 9) + b"\x01")


def test_report_bitmap_tells_which_pings_arrived() -> None:
    report = wire.Report(1, 4, bytes([0b00010111]))
    assert [report.arrived(s) for s in range(10)] == [True, True, True, False, True,
                                                      False, False, False, False, False]


def test_rfc3550_jitter_of_a_steady_and_an_alternating_path() -> None:
    steady = [(i * 5 * MS, 20 * MS) for i in range(100)]
    assert rfc3550_jitter_ms(steady) == 0.0
    alternating = [(i * 5 * MS, (20 + 2 * (i % 2)) * MS) for i in range(2000)]
    # |D| is 2 ms every time; the estimator converges to it within ~16 packets.
    jitter = rfc3550_jitter_ms(alternating)
    assert jitter == pytest.approx(2.0, rel=0.02)
    assert rfc3550_jitter_ms(steady[:1]) is None


def test_loss_bursts() -> None:
    assert loss_bursts([False, True, True, False, True, False, True, True, True]) == [2, 1, 3]
    assert loss_bursts([]) == []


def _synthetic(n: int, offset: int, forward: int, reverse: int, lost_forward: set[int],
               lost_reverse: set[int]) -> RawRun:
    """A run on a remote clock ``offset`` ahead, every ping 5 ms apart."""
    raw = RawRun()
    bitmap = bytearray((n + 7) // 8)
    for s in range(n):
        t0 = s * 5 * MS
        raw.sent_ns.append(t0)
        if s in lost_forward:
            continue
        bitmap[s >> 3] |= 1 << (s & 7)
        t1 = t0 + forward + offset
        t2 = t1 + 50_000
        if s not in lost_reverse:
            raw.exchanges[s] = Exchange(t0, t1, t2, t2 - offset + reverse)
    raw.report = wire.Report(1, n - len(lost_forward), bytes(bitmap))
    return raw


def test_analysis_of_a_known_asymmetric_lossy_path() -> None:
    settings = ProbeSettings(duration_s=1.0, rate_hz=200.0)
    raw = _synthetic(200, offset=5_000 * MS, forward=30 * MS, reverse=10 * MS,
                     lost_forward={3, 4, 5}, lost_reverse={10})
    m = analyse(raw, settings)
    assert m["rtt_ms"]["p50"] == pytest.approx(40.0)
    # Asymmetry reads as offset: 5 s + (30 - 10) / 2 ms, with the 20 ms bound covering it.
    assert m["clock_offset_ms"] == pytest.approx(5_010.0)
    # Half the 40 ms round trip, plus 15 ppm of drift over the second since that exchange.
    assert m["clock_offset_bound_ms"] == pytest.approx(20.015, abs=0.001)
    assert abs(m["clock_offset_ms"] - 5_000.0) <= m["clock_offset_bound_ms"]
    assert m["one_way_ms"]["forward"]["p50"] == pytest.approx(20.0)
    assert m["jitter_ms"] == {"forward": 0.0, "reverse": 0.0}
    assert m["loss"]["forward"]["loss"] == pytest.approx(3 / 200)
    assert m["loss"]["forward"]["longest_burst_ms"] == pytest.approx(15.0)
    assert m["loss"]["reverse"]["loss"] == pytest.approx(1 / 197, abs=1e-6)
    assert m["loss"]["round_trip"]["bursts"] == 2
    checks = {c.name: c.ok for c in judge(m, Thresholds(min_bandwidth_mbit_s=0.0))}
    assert checks == {"rtt_p99": True, "jitter": True, "loss": False, "loss_burst": True}


def test_judge_names_every_failed_threshold() -> None:
    raw = _synthetic(200, offset=0, forward=150 * MS, reverse=150 * MS, lost_forward=set(),
                     lost_reverse=set(range(20, 40)))
    m = analyse(raw, ProbeSettings(duration_s=1.0, rate_hz=200.0))
    failed = {c.name for c in judge(m, Thresholds()) if not c.ok}
    # 300 ms round trip, a 100 ms burst back, 10 % loss back, and no bandwidth measured.
    assert failed == {"rtt_p99", "loss", "loss_burst", "bandwidth"}


def test_without_the_report_loss_is_counted_round_trip() -> None:
    raw = _synthetic(100, 0, MS, MS, lost_forward={1}, lost_reverse={2})
    raw.report = None
    m = analyse(raw, ProbeSettings(duration_s=0.5, rate_hz=200.0))
    assert set(m["loss"]) == {"round_trip"}
    assert m["loss"]["round_trip"]["loss"] == pytest.approx(0.02)
    assert m["notes"]


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="pings"):
        ProbeSettings(duration_s=0.0001)
    with pytest.raises(ConfigError, match="probe size"):
        ProbeSettings(size=10)


# --- through real processes --------------------------------------------------------------------


@pytest.fixture
def responder() -> Iterator[ResponderProcess]:
    with ResponderProcess() as r:
        yield r


@pytest.mark.integration
def test_go_on_lan(responder: ResponderProcess) -> None:
    with EmulatorProcess("udp/127.0.0.1:0", responder.listen_address,
                         ["--profile", "lan"]) as emu:
        report = run_probe({"lan": emu.listen_address}, ProbeSettings(duration_s=2.0))
    assert report.go, report.reasons
    (path,) = report.paths
    assert path.metrics["replies"] == path.metrics["sent"] == 400
    assert path.metrics["bandwidth"]["mbit_s"] >= Thresholds().min_bandwidth_mbit_s


@pytest.mark.integration
def test_no_go_on_geo_satellite(responder: ResponderProcess) -> None:
    with EmulatorProcess("udp/127.0.0.1:0", responder.listen_address,
                         ["--profile", "geo-satellite", "--seed", "1"]) as emu:
        report = run_probe({"sat": emu.listen_address},
                           ProbeSettings(duration_s=1.0, rate_hz=100.0))
    assert not report.go
    failed = {c.name: c for c in report.paths[0].checks if not c.ok}
    assert "rtt_p99" in failed
    assert failed["rtt_p99"].value is not None
    assert failed["rtt_p99"].value >= 600.0
    # The 10 Mbit/s cap is below the 12.8 Mbit/s the video needs.
    assert "bandwidth" in failed
    assert any("Xu et al. 2014" in r for r in report.reasons)


@pytest.mark.integration
def test_clock_offset_within_its_bound_under_asymmetric_delay(
        tmp_path: Path, responder: ResponderProcess) -> None:
    profile = tmp_path / "asym.toml"
    profile.write_text('name = "asym"\ndescription = "test"\n[paths.a.forward]\n'
                       "delay_ms = 30.0\njitter_ms = 1.0\njitter_correlation_ms = 10.0\n"
                       "[paths.a.reverse]\ndelay_ms = 10.0\n")
    with EmulatorProcess("udp/127.0.0.1:0", responder.listen_address,
                         ["--profile", str(profile), "--seed", "4"]) as emu:
        report = run_probe({"a": emu.listen_address},
                           ProbeSettings(duration_s=2.0, rate_hz=100.0),
                           Thresholds(min_bandwidth_mbit_s=0.0))
    m = report.paths[0].metrics
    # One machine: the true offset is 0. Asymmetry shows as ~10 ms of error, inside the bound.
    assert abs(m["clock_offset_ms"]) <= m["clock_offset_bound_ms"]
    assert m["clock_offset_ms"] == pytest.approx(10.0, abs=3.0)
    assert m["clock_offset_bound_ms"] == pytest.approx(20.0, abs=3.0)
    assert m["rtt_ms"]["p50"] == pytest.approx(40.0, abs=3.0)


@pytest.mark.integration
def test_cli_exit_status_json_and_threshold_flags(tmp_path: Path,
                                                  responder: ResponderProcess) -> None:
    out = tmp_path / "probe.json"
    base = [sys.executable, "-m", "telesurgery", "probe", "--connect",
            f"lan={responder.listen_address}", "--duration", "0.5", "--json", str(out)]
    go = subprocess.run(base, capture_output=True, text=True, timeout=60, check=False)
    assert go.returncode == 0, go.stdout + go.stderr
    assert "GO: every path" in go.stdout
    assert json.loads(out.read_text())["verdict"] == "GO"

    strict = subprocess.run([*base, "--max-rtt-ms", "0.001"], capture_output=True, text=True,
                            timeout=60, check=False)
    assert strict.returncode == 1
    data = json.loads(out.read_text())
    assert data["verdict"] == "NO-GO"
    assert data["thresholds"]["max_rtt_ms"] == 0.001
    assert data["reasons"][0].startswith("lan: rtt_p99")

    bad = tmp_path / "limits.toml"
    bad.write_text("max_rtt = 100\n")
    wrong = subprocess.run([*base, "--thresholds", str(bad)], capture_output=True, text=True,
                           timeout=60, check=False)
    assert wrong.returncode == 2
    assert wrong.stderr.strip() == (f"telesurgery: error: {bad}: max_rtt: "
                                    "Extra inputs are not permitted")


@pytest.mark.integration
def test_no_go_when_nothing_answers() -> None:
    start = time.monotonic()
    report = run_probe({"dead": Locator("udp", "127.0.0.1", free_port())},
                       ProbeSettings(duration_s=0.2, rate_hz=50.0, grace_s=0.5))
    assert time.monotonic() - start < WAIT_S
    assert not report.go
    failed = {c.name: c for c in report.paths[0].checks if not c.ok}
    assert failed["rtt_p99"].value is None
    assert failed["loss"].value == 1.0
    assert "rtt_p99 not measured" in report.reasons[0]
