"""The one error tree of telesurgery; every message says what is wrong and what to do.

::

    TelesurgeryError
    ├── ConfigError          a config file or flag is wrong (names the field)
    ├── CodecError           bytes that are not a valid telesurgery message
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


class TelesurgeryError(Exception):
    """Base of every error telesurgery raises on purpose."""


class ConfigError(TelesurgeryError):
    """A configuration file or command-line value is invalid."""


class CodecError(TelesurgeryError):
    """Bytes that do not decode to a valid telesurgery message."""


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
