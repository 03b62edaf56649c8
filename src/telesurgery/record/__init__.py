"""Recording and audit: sessions to MCAP (Foxglove), read back, and signed hash-chained trails."""

from telesurgery.record.audit import (
    AuditKind,
    AuditRecord,
    AuditVerifier,
    AuditWriter,
    Finding,
    TrailReport,
)
from telesurgery.record.layout import audit_dir, new_recording_path, recording_paths
from telesurgery.record.mcap_writer import McapRecording
from telesurgery.record.reader import RecordedJson, RecordedMessage, Recording
from telesurgery.record.recorder import Recorder, RecorderStats

__all__ = [
    "AuditKind",
    "AuditRecord",
    "AuditVerifier",
    "AuditWriter",
    "Finding",
    "McapRecording",
    "RecordedJson",
    "RecordedMessage",
    "Recorder",
    "RecorderStats",
    "Recording",
    "TrailReport",
    "audit_dir",
    "new_recording_path",
    "recording_paths",
]
