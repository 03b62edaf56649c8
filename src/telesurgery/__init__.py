"""telesurgery: remote robotic surgery over long-distance networks, in simulation and beyond."""

from telesurgery.errors import (
    CodecError,
    ConfigError,
    KinematicsError,
    RobotError,
    SafetyError,
    TelesurgeryError,
    TransportError,
)
from telesurgery.types import JointState, OperatingState, Pose, SafetyState, Wrench

__version__ = "0.1.0"

__all__ = [
    "CodecError",
    "ConfigError",
    "JointState",
    "KinematicsError",
    "OperatingState",
    "Pose",
    "RobotError",
    "SafetyError",
    "SafetyState",
    "TelesurgeryError",
    "TransportError",
    "Wrench",
    "__version__",
]
