"""The console page's WebSocket messages: binary video header, JSON from the page."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telesurgery.console.web.protocol import (
    VIDEO_HEADER_SIZE,
    Action,
    FramePainted,
    HandInput,
    PageAction,
    PageHello,
    Pong,
    VideoKind,
    parse,
    parse_video,
    video_message,
)
from telesurgery.errors import CodecError


def test_video_messages_round_trip_with_an_18_byte_header() -> None:
    data = video_message(VideoKind.H264, True, 640, 480, 2**32 + 7, 1234.5, b"\x00\x00\x01\x65")
    assert len(data) == VIDEO_HEADER_SIZE + 4 == 22
    header, payload = parse_video(data)
    assert header.kind is VideoKind.H264
    assert header.keyframe
    assert (header.width, header.height) == (640, 480)
    assert header.index == 7  # u32 on the wire
    assert header.capture_page_ms == 1234.5
    assert payload == b"\x00\x00\x01\x65"
    jpeg, _ = parse_video(video_message(VideoKind.JPEG, False, 16, 16, 1, math.nan, b""))
    assert jpeg.kind is VideoKind.JPEG
    assert not jpeg.keyframe
    assert math.isnan(jpeg.capture_page_ms)


def test_short_or_unknown_video_messages_are_refused() -> None:
    with pytest.raises(CodecError, match="header alone is 18"):
        parse_video(b"\x01\x00")
    with pytest.raises(CodecError, match="kind 9 is unknown"):
        parse_video(b"\x09" + bytes(17))


def test_every_page_message_kind_parses() -> None:
    assert parse('{"t": "hello", "webcodecs": true}') == PageHello(True, fallback=True)
    assert parse('{"t": "hello", "webcodecs": true, "fallback": false}') == PageHello(
        True, fallback=False)
    assert parse('{"t": "pong", "id": 3, "at": 12.5}') == Pong(3, 12.5)
    assert parse('{"t": "frame", "i": 9, "rx": 1, "out": 2, "paint": 3, "shown": null}') == \
        FramePainted(9, 1.0, 2.0, 3.0, None)
    assert parse(json.dumps({"t": "input", "arm": "psm1", "move": [1, 0, -0.5],
                             "nudge": [3, -2, 100], "roll": 0.5, "grip": 0.2,
                             "clutch": True})) == \
        HandInput("psm1", (1.0, 0.0, -0.5), (3.0, -2.0, 100.0), 0.5, 0.2, True)
    assert parse('{"t": "action", "a": "request_control"}') == PageAction(Action.REQUEST_CONTROL)
    assert parse('{"t": "action", "a": "take_control"}') == PageAction(Action.TAKE_CONTROL)
    assert parse('{"t": "action", "a": "grant_control"}') == PageAction(Action.GRANT_CONTROL)


@pytest.mark.parametrize(("text", "says"), [
    ("not json", "not valid JSON"),
    ("[" * 3000, "nested too deep to parse"),
    ('{"t": "input", "arm": "psm1", "move": ' + "[" * 900 + "]" * 900 + "}",
     "nested more than 4 levels deep"),
    ("[1, 2]", "must be a JSON object"),
    ('{"t": "warp"}', "kind 'warp' is unknown"),
    ('{"t": "input", "arm": "psm1", "move": [2, 0, 0], "grip": 1}', "must lie in [-1.0, 1.0]"),
    ('{"t": "input", "arm": "psm1", "move": [0, 0], "grip": 1}', "list of 3 numbers"),
    ('{"t": "input", "arm": "psm1", "grip": NaN}', "finite number"),
    ('{"t": "input", "arm": "psm1", "grip": 1, "clutch": 1}', "true or false"),
    ('{"t": "input", "arm": "", "grip": 1}', "must name an arm"),
    ('{"t": "input", "arm": "psm1", "grip": 1, "nudge": [1e9, 0, 0]}', "[-2000.0, 2000.0]"),
    ('{"t": "pong", "id": -1, "at": 1}', "non-negative integer"),
    ('{"t": "pong", "id": true, "at": 1}', "non-negative integer"),
    ('{"t": "action", "a": "explode"}', "valid: hold, resume"),
    ('{"t": "hello", "pad": "' + "x" * 5000 + '"}', "at most 4096"),
])
def test_bad_page_messages_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(CodecError) as err:
        parse(text)
    assert says in str(err.value)


FIELDS = st.sampled_from(["arm", "move", "nudge", "roll", "grip", "clutch", "id", "at", "i", "rx",
                          "out", "paint", "shown", "a", "webcodecs"]) | st.text(max_size=4)


@given(st.dictionaries(FIELDS, st.recursive(
           st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
           lambda inner: st.lists(inner, max_size=4), max_leaves=6)),
       st.sampled_from(["hello", "pong", "frame", "input", "action", "other"]))
def test_any_json_object_either_parses_or_is_a_codec_error(obj: dict[str, object],
                                                            kind: str) -> None:
    obj["t"] = kind
    try:
        msg = parse(json.dumps(obj))
    except CodecError:
        return
    assert isinstance(msg, PageHello | Pong | FramePainted | HandInput | PageAction)
