"""``telesurgery record`` as a real process: SIGKILL loses at most the last second,
SIGTERM finishes the file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zenoh
from mcap.reader import make_reader

from telesurgery.clock import now_ns
from telesurgery.config import ZenohConfig
from telesurgery.errors import RecordingError
from telesurgery.messages import Message, ServoCP
from telesurgery.record.reader import Recording
from telesurgery.transport.codec import encode
from telesurgery.types import Pose

from ..waiting import wait_until

TIMEOUT_S = 30.0  # generous: a loaded 2-core machine
RATE_HZ = 200.0  # below the chunk size: only the time-based flush saves the data
# The verb alone, as the ``telesurgery`` command registers it.
RUNNER = ("import typer; from telesurgery.cli import record; app = typer.Typer(); "
          "record.register(app); app()")


def wait_for(condition: Callable[[], bool], what: str) -> None:
    wait_until(condition, what, TIMEOUT_S)


class Commands:
    """Publishes numbered servo_cp commands at ``RATE_HZ`` and remembers when each left [ns]."""

    def __init__(self, z: Any) -> None:
        self._pub = z.declare_publisher("telesurgery/or1/psm1/servo_cp",
                                        reliability=zenoh.Reliability.RELIABLE,
                                        congestion_control=zenoh.CongestionControl.BLOCK)
        self.sent: list[tuple[int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    @property
    def matched(self) -> bool:
        return bool(self._pub.matching_status.matching)

    def _run(self) -> None:
        seq = 0
        while not self._stop.wait(1.0 / RATE_HZ):
            seq += 1
            self._pub.put(encode(Message(7, seq, now_ns(), ServoCP("psm1", Pose(), seq))))
            self.sent.append((seq, now_ns()))

    def __enter__(self) -> Commands:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the publishing thread did not stop"


@pytest.fixture
def recorder_process(tmp_path: Path, free_port: int,
                     zenoh_sessions: Callable[[ZenohConfig], Any]
                     ) -> Iterator[tuple[subprocess.Popen[bytes], Commands]]:
    """A node session listening on loopback and a recorder process connected to it."""
    endpoint = f"tcp/127.0.0.1:{free_port}"
    commands = Commands(zenoh_sessions(ZenohConfig(mode="peer", listen=[endpoint])))
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, "--out", str(tmp_path), "--session", "or1",
         "--connect", endpoint, "--flush-interval", "0.5", "--log-level", "warning",
         # What is tested is flushing; the test's node session speaks plain TCP.
         "--insecure"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: commands.matched or proc.poll() is not None, "the recorder to subscribe")
        assert proc.poll() is None, proc.communicate()[1].decode()
        yield proc, commands
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def _recorded_seqs(path: Path) -> list[int]:
    return [m.message.seq for m in Recording(path).messages()]


def test_sigkill_loses_at_most_the_last_second(
        tmp_path: Path, recorder_process: tuple[subprocess.Popen[bytes], Commands]) -> None:
    proc, commands = recorder_process
    with commands:
        wait_for(lambda: len(commands.sent) >= 3 * RATE_HZ, "3 s of commands")
        killed_ns = now_ns()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(TIMEOUT_S)
    recording = Recording(tmp_path)
    assert not recording.complete  # no summary, no footer: really cut short
    seqs = _recorded_seqs(tmp_path)
    assert seqs, "nothing was recorded before the kill"
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # in order, no gap
    sent_at = dict(commands.sent)
    due = [s for s, t in commands.sent if t <= killed_ns - 1_000_000_000 and s >= seqs[0]]
    lost_window_ms = (killed_ns - sent_at[seqs[-1]]) / 1e6
    assert due, "the recorder must have run for more than a second"
    assert seqs[-1] >= due[-1], f"lost the last {lost_window_ms:.0f} ms before the kill"
    print(f"SIGKILL lost the last {lost_window_ms:.0f} ms")


def test_sigterm_finishes_the_file_with_everything_published(
        tmp_path: Path, recorder_process: tuple[subprocess.Popen[bytes], Commands]) -> None:
    proc, commands = recorder_process
    with commands:
        wait_for(lambda: len(commands.sent) >= RATE_HZ, "1 s of commands")
    published = [s for s, _t in commands.sent]

    def all_flushed() -> bool:
        try:
            return _recorded_seqs(tmp_path)[-len(published):] == published
        except (RecordingError, IndexError):
            return False

    wait_for(all_flushed, "every command in the file")
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 0, err.decode()
    assert "dropped 0" in err.decode()
    assert Recording(tmp_path).complete
    with open(tmp_path / "recording.mcap", "rb") as f:
        summary = make_reader(f).get_summary()
    assert summary is not None
    assert summary.statistics is not None
    (servo,) = [c for c in summary.channels.values() if c.topic.endswith("servo_cp")]
    assert summary.statistics.channel_message_counts[servo.id] == len(published)
