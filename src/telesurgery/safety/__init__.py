"""Safety: pure command checks and the supervisor that alone moves the robot."""

from telesurgery.safety.checks import (
    MotionLimits,
    Reason,
    Setpoint,
    Verdict,
    Workspace,
)
from telesurgery.safety.supervisor import ArmMode, Supervisor

__all__ = [
    "ArmMode",
    "MotionLimits",
    "Reason",
    "Setpoint",
    "Supervisor",
    "Verdict",
    "Workspace",
]
