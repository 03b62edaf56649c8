"""The one error tree of telesurgery; every message says what is wrong and what to do.

::

    TelesurgeryError
    ├── ConfigError          a config file or flag is wrong (names the field)
    ├── CodecError           bytes that are not a valid message (``reason``: a ``CodecReason``)
    ├── TransportError       Zenoh could not open, listen, connect or publish
    ├── KinematicsError      a pose the instrument cannot reach
    ├── RobotError           the robot refused an operation (wrong state, not connected)
    ├── SafetyError          a safety precondition does not hold (never raised in the servo loop)
    │   └── OwnershipError   a control-ownership action the rules refuse
    ├── VideoError           the camera, encoder or decoder cannot work (GL, codec, frame size)
    ├── RecordingError       a recording or audit trail cannot be written or read
    └── AuthError            a peer's certificate, signature or key exchange is refused

Lower-level errors (Zenoh, OS, pydantic) are translated at the boundary with
``raise ...Error(...) from exc`` so that the command line shows one line.
"""

from __future__ import annotations

import enum


class TelesurgeryError(Exception):
    """Base of every error telesurgery raises on purpose."""


class ConfigError(TelesurgeryError):
    """A configuration file or command-line value is invalid."""


class CodecReason(enum.StrEnum):
    """Why bytes were refused, in one word: the fixed set input is counted and logged by.

    The error's message says the rest; the reason never holds any of the bytes."""

    TRUNCATED = "truncated"
    """Shorter than the header, the body or a field announces."""
    BAD_MAGIC = "bad_magic"
    """Not this protocol at all (the first bytes are wrong)."""
    BAD_VERSION = "bad_version"
    """Another version of the protocol."""
    BAD_FLAGS = "bad_flags"
    """Header flags this version does not define."""
    UNKNOWN_TYPE = "unknown_type"
    """A message type or kind this side does not know."""
    TOO_LARGE = "too_large"
    """A length over its limit."""
    BAD_FIELD = "bad_field"
    """A field whose value is not allowed (an enum, a flag, a name, a range, UTF-8)."""
    BAD_BODY = "bad_body"
    """A body that does not parse (JSON that is invalid, too deep or not an object)."""
    TRAILING = "trailing"
    """Bytes left over after a complete body."""
    MALFORMED = "malformed"
    """Anything else that is not a valid message."""


class CodecError(TelesurgeryError):
    """Bytes that do not decode to a valid telesurgery message; ``reason`` says why in one
    word from a fixed set (for counting), the message says it in full."""

    def __init__(self, message: str, reason: CodecReason = CodecReason.MALFORMED) -> None:
        super().__init__(message)
        self.reason = reason


class TransportError(TelesurgeryError):
    """The transport (Zenoh) could not do what was asked."""


class KinematicsError(TelesurgeryError):
    """A pose or joint vector outside what the instrument can reach."""


class RobotError(TelesurgeryError):
    """The robot refused an operation."""


class SafetyError(TelesurgeryError):
    """A safety precondition does not hold."""


class VideoError(TelesurgeryError):
    """The endoscope camera, the video encoder or the decoder cannot do what was asked."""


class RecordingError(TelesurgeryError):
    """A recording (MCAP) or an audit trail cannot be written or read."""


class AuthError(TelesurgeryError):
    """A peer's certificate, signature or key exchange is refused; ``reason`` names why in
    one word (for counting), the message says it in full."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class OwnershipError(SafetyError):
    """A control-ownership action that the rules refuse (a surgeon taking over, a grant
    nobody asked for); ``reason`` names why in one word, for counting."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


__all__ = [
    "AuthError",
    "CodecError",
    "CodecReason",
    "ConfigError",
    "KinematicsError",
    "OwnershipError",
    "RecordingError",
    "RobotError",
    "SafetyError",
    "TelesurgeryError",
    "TransportError",
    "VideoError",
]
