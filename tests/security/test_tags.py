"""Command tags on the wire, the replay window and the verifier's verdicts (pure, no Zenoh)."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telesurgery.errors import CodecError
from telesurgery.messages import JawServoJP, KeyAccept, KeyOffer, Message, ServoCP
from telesurgery.security.tags import (
    CommandVerifier,
    ReplayWindow,
    TagKey,
    TagReason,
    seal,
    tag_matches,
)
from telesurgery.transport.codec import FLAG_TAG, FLAGS_OFFSET, TAG_SIZE, decode, encode
from telesurgery.types import Pose

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
TAG, OTHER_TAG = TagKey(KEY), TagKey(OTHER_KEY)
CONSOLE = 0x1122334455667788


def _command(seq: int, session: int = CONSOLE, arm: str = "psm1") -> Message:
    return Message(session, seq, 1_000_000 + seq,
                   ServoCP(arm, Pose((0.0, 0.0, -0.1), (1.0, 0.0, 0.0, 0.0)), seq))


def test_a_sealed_command_decodes_with_its_tag_and_the_flag_set() -> None:
    msg = _command(7)
    data = seal(msg, TAG)
    assert len(data) == len(encode(msg)) + TAG_SIZE
    assert data[FLAGS_OFFSET] == FLAG_TAG
    decoded = decode(data)
    assert decoded.tag == data[-TAG_SIZE:]
    assert decoded.body == msg.body
    assert decoded.seq == 7
    assert tag_matches(data, TAG)
    assert not tag_matches(data, OTHER_TAG)
    # Encoding the decoded message gives the same bytes back.
    assert encode(decoded) == data
    # Sealing it again replaces its tag instead of adding one.
    assert seal(decoded, TAG) == data


def test_every_flipped_bit_breaks_the_tag_or_the_message() -> None:
    data = seal(_command(3), TAG)
    for i in range(len(data)):
        for bit in range(8):
            forged = bytearray(data)
            forged[i] ^= 1 << bit
            assert not tag_matches(bytes(forged), TAG), (i, bit)


def test_a_key_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        TagKey(b"short")


def test_a_tag_of_the_wrong_size_is_refused_by_the_codec() -> None:
    with pytest.raises(CodecError, match="16 bytes"):
        encode(Message(1, 1, 1, JawServoJP("psm1", 0.1, 1), b"short"))


def test_key_messages_round_trip_and_refuse_oversized_certificates() -> None:
    offer = Message(5, 1, 2, KeyOffer(bytes(32), b"\x30" * 600, b"\x01" * 71))
    accept = Message(6, 1, 2, KeyAccept(5, bytes(range(32)), b"\x30" * 700, b"\x02" * 70))
    for msg in (offer, accept):
        assert decode(encode(msg)) == msg
    with pytest.raises(CodecError, match="at most 8192 fit"):
        encode(Message(5, 1, 2, KeyOffer(bytes(32), bytes(9000), b"")))


def test_verifier_verdicts() -> None:
    v = CommandVerifier()
    assert v.check("direct", encode(_command(1)), _command(1)) is TagReason.UNTAGGED
    data = seal(_command(1), TAG)
    assert v.check("direct", data, decode(data)) is TagReason.UNKNOWN_KEY
    v.set_key(CONSOLE, KEY, "surgeon:a", 11)
    assert v.check("direct", data, decode(data)) is None
    # The very same bytes again on the same path: a replay.
    assert v.check("direct", data, decode(data)) is TagReason.REPLAYED
    # The same number on another path: dual-path redundancy, not a replay.
    assert v.check("5g", data, decode(data)) is None
    forged = seal(_command(2), OTHER_TAG)
    assert v.check("direct", forged, decode(forged)) is TagReason.BAD_TAG
    # A tag copied onto a re-stamped command does not match.
    restamped = encode(replace(_command(3), tag=data[-TAG_SIZE:]))
    assert v.check("direct", restamped, decode(restamped)) is TagReason.BAD_TAG


def test_streams_are_told_apart_by_arm_and_kind() -> None:
    v = CommandVerifier()
    v.set_key(CONSOLE, KEY, "surgeon:a", 11)
    for msg in (_command(1, arm="psm1"), _command(1, arm="psm2"),
                Message(CONSOLE, 1, 5, JawServoJP("psm1", 0.2, 1))):
        data = seal(msg, TAG)
        assert v.check("direct", data, decode(data)) is None


def test_a_new_session_of_the_same_identity_ends_the_previous_one() -> None:
    v = CommandVerifier()
    v.set_key(CONSOLE, KEY, "surgeon:a", 11)
    v.set_key(CONSOLE + 1, OTHER_KEY, "surgeon:a", 11)
    old = seal(_command(9), TAG)
    assert v.check("direct", old, decode(old)) is TagReason.UNKNOWN_KEY
    new = seal(_command(9, session=CONSOLE + 1), OTHER_TAG)
    assert v.check("direct", new, decode(new)) is None


def test_revoked_serials_and_old_sessions_are_forgotten() -> None:
    v = CommandVerifier(max_sessions=2)
    for i in range(3):
        v.set_key(100 + i, KEY, f"surgeon:s{i}", i)
    assert v.key_of(100) is None  # the oldest, beyond max_sessions
    assert v.forget_serials({2}) == ["surgeon:s2"]
    assert v.key_of(102) is None
    assert v.key_of(101) is not None


def test_numbers_older_than_the_window_are_replays() -> None:
    w = ReplayWindow(size=8)
    assert w.admit("a", 100)
    assert w.admit("a", 93)  # 7 behind: still judged
    assert not w.admit("a", 92)  # 8 behind: too old
    assert w.admit("a", 10_000)  # a long jump forgets everything behind
    assert not w.admit("a", 100)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["fibre", "5g"]), st.integers(1, 60)),
                max_size=80),
       st.integers(1, 16))
def test_replay_window_matches_a_plain_model(arrivals: list[tuple[str, int]],
                                             size: int) -> None:
    w = ReplayWindow(size)
    seen: set[tuple[str, int]] = set()
    top = 0
    for path, seq in arrivals:
        top = max(top, seq)
        fresh = (path, seq) not in seen and top - seq < size
        assert w.admit(path, seq) is fresh, (path, seq, top)
        if fresh:
            seen.add((path, seq))


def test_random_bytes_never_pass_as_a_tagged_command() -> None:
    v = CommandVerifier()
    v.set_key(CONSOLE, KEY, "surgeon:a", 11)
    good = seal(_command(1), TAG)
    for _ in range(200):
        data = good[:-TAG_SIZE] + os.urandom(TAG_SIZE)
        assert v.check("direct", data, decode(data)) is TagReason.BAD_TAG
