"""The command line turns every mistake into one line on stderr and exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "telesurgery", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("patient", "--config", "absent.toml"), "absent.toml: no such config file"),
        (("console", "--device", "haptic"),
         "device: Input should be 'autopilot', 'scripted', 'touch' or 'web'"),
        (("console", "--device", "scripted"), "the scripted device needs a trajectory file"),
        (("patient", "--listen", "localhost"), "'localhost' is not a Zenoh locator"),
        (("demo", "--headless"), "--headless needs --duration S"),
        (("demo", "--duration", "-3"), "--duration must be positive"),
        (("patient",), "the patient node has no identity: pass --identity DIR"),
        (("console", "--insecure", "--identity", "x"), "--insecure cannot go with"),
    ],
)
def test_mistakes_are_one_line_without_traceback(tmp_path: Path, args: tuple[str, ...],
                                                 message: str) -> None:
    result = _run(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("telesurgery: error: ")
    assert message in lines[0]


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = _run("patient", "--listen", f"tcp/127.0.0.1:{port}", "--duration", "1",
                      "--log-level", "error", "--insecure", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "is another node already using the port?" in result.stderr


# ---- hostile or broken inputs: each is one line and a non-zero exit, never a crash ----

DEEP = "x = " + "[" * 2000 + "]" * 2000 + "\n"
"""A TOML array nested 2,000 levels deep (tomllib recurses once per level)."""


def _one_error_line(result: subprocess.CompletedProcess[str], *, status: int = 2) -> str:
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    assert "internal error" not in result.stderr, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("args", [
    ("patient", "--config", "deep.toml"),
    ("console", "--config", "deep.toml"),
    ("probe", "--thresholds", "deep.toml", "--connect", "udp/127.0.0.1:9"),
])
def test_a_config_nested_too_deep_is_one_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    (tmp_path / "deep.toml").write_text(DEEP, encoding="utf-8")
    line = _one_error_line(_run(*args, cwd=tmp_path))
    assert line == ("telesurgery: error: deep.toml: arrays or tables nested too deep to "
                    "read; no setting nests more than a few levels")


@pytest.mark.parametrize(("args", "message"), [
    (("router", "--listen", "bogus", "--insecure"),
     "command line: listen: 'bogus' is not a Zenoh locator like 'tcp/127.0.0.1:7447'"),
    (("demo", "--workdir", "/proc/x", "--headless", "--duration", "1"),
     "--workdir /proc/x: cannot create it"),
    (("demo", "--workdir", "afile/x", "--headless", "--duration", "1"),
     "--workdir afile/x: cannot create it"),
    (("demo", "--record", "afile/x", "--headless", "--duration", "1"),
     "--record afile/x: cannot create it"),
    (("patient", "--duration", "-1"), "--duration must be positive, got -1.0"),
    (("patient", "--duration", "0", "--insecure"), "--duration must be positive, got 0.0"),
    (("patient", "--duration", "inf"), "--duration must be a finite number of seconds"),
    (("console", "--duration", "-1"), "--duration must be positive, got -1.0"),
    (("backup", "--duration", "-1"), "--duration must be positive, got -1.0"),
    (("record", "--out", "rec", "--duration", "-1"), "--duration must be positive, got -1.0"),
    (("probe", "--duration", "-1", "--connect", "udp/127.0.0.1:9"),
     "--duration must be positive, got -1.0"),
    (("bench", "control", "--duration", "-1"), "--duration must be positive, got -1.0"),
])
def test_bad_values_on_the_command_line_are_one_line(tmp_path: Path, args: tuple[str, ...],
                                                     message: str) -> None:
    (tmp_path / "afile").write_text("not a folder\n", encoding="utf-8")
    line = _one_error_line(_run(*args, cwd=tmp_path))
    assert line.startswith("telesurgery: error: ")
    assert message in line
    assert not (tmp_path / "rec").exists()  # refused before anything started


def _recording(directory: Path) -> Path:
    """Three seconds of one arm commanded and measured, in chunks of half a second."""
    from telesurgery.messages import MeasuredCP, Message, ServoCP
    from telesurgery.record.mcap_writer import McapRecording
    from telesurgery.transport.codec import encode
    from telesurgery.types import ArmMode, OperatingState, Pose

    t0, ms = 5_000_000_000, 1_000_000
    pose = Pose((0.0, 0.0, -0.13), (0.0, 0.7071, 0.7071, 0.0))
    directory.mkdir()
    path = directory / "recording.mcap"
    with McapRecording(path, metadata={"session": "or1"}) as rec:
        for i in range(1, 3001):
            t = t0 + i * ms
            rec.write_wire("telesurgery/or1/psm1/servo_cp",
                           encode(Message(1, i, t, ServoCP("psm1", pose, t - 100))), t + 200)
            if i % 2 == 0:
                rec.write_wire("telesurgery/or1/psm1/measured_cp", encode(Message(
                    2, i // 2, t, MeasuredCP("psm1", pose, pose, 0.0, i - 2, t - 2 * ms,
                                             OperatingState.ENABLED, ArmMode.FOLLOWING))),
                               t + 150)
            if i % 500 == 0:
                rec.flush()
    return path


def _chunk_offsets(data: bytes) -> list[int]:
    """Where each chunk's zstd frame starts in an MCAP file."""
    import struct

    pos, found = 8, []
    while pos + 9 <= len(data):
        opcode, length = struct.unpack_from("<BQ", data, pos)
        if opcode == 0x06:  # Chunk: 3 x u64, u32 CRC, compression string, u64 size, records
            (n,) = struct.unpack_from("<I", data, pos + 9 + 28)
            found.append(pos + 9 + 28 + 4 + n + 8)
        pos += 9 + length
    return found


def test_a_recording_with_bytes_flipped_mid_file_is_one_line(tmp_path: Path) -> None:
    path = _recording(tmp_path / "session")
    data = bytearray(path.read_bytes())
    chunks = _chunk_offsets(bytes(data))
    assert len(chunks) >= 4
    frame = chunks[len(chunks) // 2]
    assert data[frame:frame + 4] == b"\x28\xb5\x2f\xfd"  # zstd's magic number
    data[frame:frame + 8] = bytes(b ^ 0xFF for b in data[frame:frame + 8])
    path.write_bytes(bytes(data))
    for verb in ("replay", "report"):
        line = _one_error_line(_run(verb, "session", cwd=tmp_path))
        assert line.startswith("telesurgery: error: session/recording.mcap is damaged: "), line


def test_a_report_of_a_truncated_recording_says_so_and_exits_1(tmp_path: Path) -> None:
    path = _recording(tmp_path / "session")
    data = path.read_bytes()
    path.write_bytes(data[:len(data) * 2 // 3])
    result = _run("report", "session", cwd=tmp_path)
    line = _one_error_line(result, status=1)
    assert line.startswith("telesurgery: warning: the recording in session is truncated")
    assert "report of" in result.stdout  # the readable part is still reported
    assert (tmp_path / "session" / "report.html").exists()
    _recording(tmp_path / "whole")
    whole = _run("report", "whole", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    assert not whole.stderr.strip()
