"""MCAP recordings: read back with the official reader, schemas checked, cut files tolerated."""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path

import av
import pytest
from mcap.reader import make_reader
from mcap.writer import CompressionType

from telesurgery.errors import RecordingError
from telesurgery.messages import Message, ServoCP, VideoFrame
from telesurgery.record.layout import new_recording_path, recording_paths
from telesurgery.record.mcap_writer import McapRecording
from telesurgery.record.reader import Recording
from telesurgery.record.schema import COMPRESSED_VIDEO_SCHEMA_NAME, UNDECODABLE_SCHEMA_NAME
from telesurgery.record.throughput import measure, synthetic_session
from telesurgery.transport.codec import encode
from telesurgery.types import Pose
from tests.record.conftest import SmallDisk


def _write(path: Path, items: list[tuple[str, Message]], repeat: int = 1) -> list[int]:
    """Record every message ``repeat`` times; returns the receive times used [ns]."""
    times = []
    with McapRecording(path) as rec:
        for r in range(repeat):
            for i, (key, msg) in enumerate(items):
                t = 5_000_000_000 + (r * len(items) + i) * 1_000_000
                rec.write_wire(key, encode(msg), t)
                times.append(t)
    return times


def test_official_reader_sees_one_schema_per_channel_and_every_message(
        tmp_path: Path, sample_messages: list[tuple[str, Message]]) -> None:
    path = tmp_path / "recording.mcap"
    _write(path, sample_messages, repeat=3)
    with open(path, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        assert summary is not None
        topics = {c.topic: c for c in summary.channels.values()}
        assert set(topics) == {key for key, _ in sample_messages}
        for channel in summary.channels.values():
            assert channel.message_encoding == "json"
            schema = summary.schemas[channel.schema_id]
            assert schema.encoding == "jsonschema"
            assert json.loads(schema.data)["title"] == schema.name
            assert summary.statistics is not None
            assert summary.statistics.channel_message_counts[channel.id] == 3
        video = topics["telesurgery/or1/ecm/video"]
        assert summary.schemas[video.schema_id].name == COMPRESSED_VIDEO_SCHEMA_NAME
        seen = Counter(ch.topic for _s, ch, _m in reader.iter_messages())
    assert seen == Counter({key: 3 for key, _ in sample_messages})
    meta = Recording(path).metadata()["telesurgery"]
    assert int(meta["wall_ns"]) > 0
    assert int(meta["monotonic_ns"]) > 0


def test_reader_gives_back_each_message_with_its_receive_time(
        tmp_path: Path, sample_messages: list[tuple[str, Message]]) -> None:
    times = _write(tmp_path / "recording.mcap", sample_messages)
    rec = Recording(tmp_path)
    assert rec.complete
    got = list(rec.messages())
    assert [(m.key, m.message) for m in got] == sample_messages
    assert [m.receive_ns for m in got] == times
    assert [encode(m.message) for m in got] == [encode(m) for _k, m in sample_messages]
    only = list(rec.messages(["telesurgery/or1/safety/state"]))
    assert [m.message for m in only] == [sample_messages[5][1]]
    assert rec.skipped == 0


def test_undecodable_bytes_are_kept_on_their_own_channel(tmp_path: Path) -> None:
    path = tmp_path / "recording.mcap"
    with McapRecording(path) as rec:
        assert not rec.write_wire("telesurgery/or1/psm1/servo_cp", b"TS\x09junk", 10)
    back = Recording(path)
    assert list(back.messages()) == []
    (bad,) = list(back.undecodable())
    assert bad.topic == "telesurgery/or1/psm1/servo_cp/_undecodable"
    assert bad.schema == UNDECODABLE_SCHEMA_NAME
    assert bad.obj["key"] == "telesurgery/or1/psm1/servo_cp"
    assert "too short" in bad.obj["error"]


def test_h264_frames_play_back_from_compressed_video(
        tmp_path: Path, h264_frames: list[tuple[bytes, bool]], h264_size: tuple[int, int]) -> None:
    path = tmp_path / "recording.mcap"
    w, h = h264_size
    with McapRecording(path) as rec:
        for i, (data, key) in enumerate(h264_frames):
            msg = Message(9, i + 1, 1000 + i, VideoFrame("ecm", w, h, key, i, 900 + i, 0, 0, data))
            rec.write_message("telesurgery/or1/ecm/video", msg, encode(msg), 2000 + i)
            rec.write_compressed_video("camera/raw", 3000 + i, 4_000_000_000 + i, data,
                                       frame_id="ecm")
    decoder = av.CodecContext.create("h264", "r")
    decoded = []
    with open(path, "rb") as f:
        for schema, channel, message in make_reader(f).iter_messages(
                topics=["telesurgery/or1/ecm/video", "camera/raw"]):
            assert schema is not None
            assert schema.name == COMPRESSED_VIDEO_SCHEMA_NAME
            obj = json.loads(message.data)
            assert obj["format"] == "h264"
            if channel.topic == "camera/raw":
                assert obj["timestamp"]["sec"] == 4
                continue
            data = base64.b64decode(obj["data"])
            assert data.startswith(b"\x00\x00\x00\x01")  # Annex B
            if obj["keyframe"]:
                assert b"\x00\x00\x00\x01\x67" in data  # an SPS with every IDR
            decoded += [(fr.width, fr.height) for fr in decoder.decode(av.Packet(data))]
    assert decoded == [(w, h)] * len(h264_frames)
    frames = [m.message for m in Recording(path).messages(["telesurgery/or1/ecm/video"])]
    assert [f.body.data for f in frames if isinstance(f.body, VideoFrame)] == \
        [d for d, _k in h264_frames]


def test_a_file_cut_anywhere_reads_up_to_its_last_complete_chunk(tmp_path: Path) -> None:
    path = tmp_path / "recording.mcap"
    rec = McapRecording(path)
    sent = []
    for i in range(600):
        msg = Message(1, i + 1, i, ServoCP("psm1", Pose((i * 1e-4, 0.0, -0.1)), i))
        rec.write_message("telesurgery/or1/psm1/servo_cp", msg, encode(msg), 1_000 + i)
        sent.append(msg)
        if i % 100 == 99:
            rec.flush()  # what the 0.5 s flush does in a live recording
    rec.close()
    data = path.read_bytes()
    cut = tmp_path / "cut.mcap"
    counts = set()
    for length in range(0, len(data) - 1, 97):
        cut.write_bytes(data[:length])
        if length < 8:
            with pytest.raises(RecordingError, match="not an MCAP file"):
                Recording(cut)
            continue
        back = Recording(cut)
        assert not back.complete
        got = [m.message for m in back.messages()]
        assert got == sent[:len(got)]  # a prefix, in order, nothing invented
        counts.add(len(got))
    assert {0, 100, 200, 300, 400, 500} <= counts


def test_recorded_objects_that_are_not_json_objects_are_skipped(tmp_path: Path) -> None:
    from mcap.writer import Writer

    path = tmp_path / "hostile.mcap"
    with open(path, "wb") as f:
        w = Writer(f)
        w.start()
        channel = w.register_channel("t", "json", w.register_schema("x", "jsonschema", b"{}"))
        for t, data in enumerate([b"[" * 5000, b"7", b'{"a": 1}', b"{" + b"x" * 10]):
            w.add_message(channel, t, data, t)
        w.finish()  # type: ignore[no-untyped-call]
    rec = Recording(path)
    assert [r.obj for r in rec.json()] == [{"a": 1}]
    assert rec.skipped == 3


def test_recordings_are_never_overwritten(tmp_path: Path) -> None:
    first = new_recording_path(tmp_path)
    McapRecording(first).close()
    second = new_recording_path(tmp_path)
    assert (first.name, second.name) == ("recording.mcap", "recording-2.mcap")
    with pytest.raises(RecordingError, match="cannot create recording"):
        McapRecording(first)
    McapRecording(second).close()
    assert recording_paths(tmp_path) == [first, second]


def test_writing_to_a_closed_recording_is_an_error(tmp_path: Path) -> None:
    rec = McapRecording(tmp_path / "recording.mcap")
    rec.close()
    with pytest.raises(RecordingError, match="closed"):
        rec.write_json("t", "s", {}, {}, 0)


def test_no_recording_in_a_directory_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="no recording in"):
        Recording(tmp_path)


def test_the_throughput_measurement_records_its_synthetic_session(tmp_path: Path) -> None:
    result = measure(0.2, tmp_path)
    assert result["messages"] == 0.2 * 1000 * 2 * 5 + 2  # 5 streams a arm, plus 2 at 1 Hz
    assert result["write_rate_msg_s"] > 0
    assert result["file_mb"] > 0
    items = list(synthetic_session(0.2))
    got = [(m.key, encode(m.message)) for m in Recording(tmp_path / "throughput.mcap").messages()]
    assert got == [(k, w) for k, w, _t in items]


def test_a_full_disk_stops_the_recording_readable_up_to_its_last_chunk(
        small_disk: SmallDisk) -> None:
    path = small_disk.path / "recording.mcap"
    rec = McapRecording(path, compression=CompressionType.NONE)
    sent = []
    stopped: RecordingError | None = None
    for i in range(600):
        if i == 200:
            small_disk.fill()  # after two chunks on disk
        msg = Message(1, i + 1, i, ServoCP("psm1", Pose((i * 1e-4, 0.0, -0.1)), i))
        try:
            rec.write_message("telesurgery/or1/psm1/servo_cp", msg, encode(msg), 1_000 + i)
            if i % 100 == 99:
                rec.flush()  # a chunk of about 20 kB: more than a page, so the write tears
        except RecordingError as exc:
            stopped = exc
            break
        sent.append(msg)
    assert stopped is not None
    assert "stopped" in str(stopped)
    assert "\n" not in str(stopped)  # one line
    with pytest.raises(RecordingError, match="stopped"):
        rec.write_message("telesurgery/or1/psm1/servo_cp", sent[0], encode(sent[0]), 1)
    small_disk.free()
    # Room again, but the stopped recording writes no footer over the chunk that failed.
    with pytest.raises(RecordingError, match="stopped"):
        rec.close()
    back = Recording(path)
    assert not back.complete
    got = [m.message for m in back.messages()]
    assert got == sent[:200]
