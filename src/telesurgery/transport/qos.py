"""Quality of service per stream, in one table.

Commands are real-time, express (no batching), best effort and dropped under
congestion: a late command is worth less than the next one. State and video
have their own priorities; safety events and status are reliable.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import zenoh


class Stream(enum.Enum):
    """The kinds of traffic a node publishes."""

    COMMAND = "command"
    STATE = "state"
    VIDEO = "video"
    EVENT = "event"
    STATUS = "status"


@dataclass(frozen=True, slots=True)
class QoS:
    """Zenoh publisher options of one stream."""

    priority: zenoh.Priority
    express: bool
    reliability: zenoh.Reliability
    congestion_control: zenoh.CongestionControl


QOS: dict[Stream, QoS] = {
    Stream.COMMAND: QoS(zenoh.Priority.REAL_TIME, True, zenoh.Reliability.BEST_EFFORT,
                        zenoh.CongestionControl.DROP),
    Stream.STATE: QoS(zenoh.Priority.INTERACTIVE_HIGH, True, zenoh.Reliability.BEST_EFFORT,
                      zenoh.CongestionControl.DROP),
    Stream.VIDEO: QoS(zenoh.Priority.INTERACTIVE_LOW, True, zenoh.Reliability.RELIABLE,
                      zenoh.CongestionControl.DROP),
    Stream.EVENT: QoS(zenoh.Priority.DATA_HIGH, False, zenoh.Reliability.RELIABLE,
                      zenoh.CongestionControl.BLOCK),
    Stream.STATUS: QoS(zenoh.Priority.DATA, False, zenoh.Reliability.RELIABLE,
                       zenoh.CongestionControl.DROP),
}
