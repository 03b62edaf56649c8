"""The audit trail on a real full disk: never a partial record, resumed once there is room,
the interruption recorded in the chain; a trail closed while full ends at its last record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from telesurgery.errors import RecordingError
from telesurgery.record.audit import AuditKind, AuditVerifier, AuditWriter, TrailReport
from tests.record.conftest import SmallDisk
from tests.waiting import wait_until

# Larger than a page (4 KiB), so that the write that meets the full disk tears: it fills
# what is left of the last page and no more.
BULK = {"note": "x" * 5000}


def records(writer: AuditWriter) -> list[dict[str, Any]]:
    raw = writer.path.read_bytes()
    # Never a partial record: the file ends at the end of a line.
    assert not raw or raw.endswith(b"\n"), raw[-80:]
    return [json.loads(line) for line in raw.splitlines()]


def verify(directory: Path, **kw: Any) -> TrailReport:
    (report,) = AuditVerifier(**kw).verify_dir(directory)
    return report


def fill_and_wait(disk: SmallDisk, writer: AuditWriter) -> int:
    """Fill the disk, append until the writer meets it; the index of the first record
    held in memory."""
    disk.fill()
    first = writer.append(AuditKind.LINK_ALARM, BULK)
    assert first is not None
    wait_until(lambda: writer.interrupted, "the writer to meet the full disk", 30.0)
    return first.index


def test_a_full_disk_leaves_no_partial_record_and_the_trail_resumes(
        small_disk: SmallDisk) -> None:
    writer = AuditWriter(small_disk.path, "patient", "or1", retry_s=0.05)
    for _ in range(3):
        writer.append(AuditKind.HOLD, BULK)
    assert writer.sync(timeout=30.0)
    first_held = fill_and_wait(small_disk, writer)
    held = [writer.append(AuditKind.CLUTCH, {"i": i, **BULK}) for i in range(20)]
    assert all(r is not None for r in held)
    # What is on disk meanwhile is a whole trail up to its last complete record.
    on_disk = records(writer)
    assert on_disk[-1]["index"] == first_held - 1
    report = verify(small_disk.path, allow_open=True)
    assert report.ok, [str(f) for f in report.findings]

    small_disk.free()
    wait_until(lambda: not writer.interrupted, "the trail to resume", 30.0)
    writer.append(AuditKind.ENGAGE)
    writer.close()

    report = verify(small_disk.path)
    assert report.ok, [str(f) for f in report.findings]
    trail = records(writer)
    assert [r["index"] for r in trail] == list(range(len(trail)))
    gap = [r for r in trail if r["kind"] == AuditKind.AUDIT_INTERRUPTED]
    assert len(gap) == 1
    assert gap[0]["data"]["lost_records"] == 0
    assert gap[0]["data"]["since"] <= gap[0]["data"]["until"]
    # Every record held in memory was written, before the interruption was recorded.
    assert gap[0]["index"] > max(r.index for r in held if r is not None)
    assert trail[-1]["kind"] == AuditKind.SESSION_STOP


def test_records_over_the_bound_are_lost_counted_and_the_chain_stays_whole(
        small_disk: SmallDisk) -> None:
    writer = AuditWriter(small_disk.path, "patient", "or1", max_backlog=5, retry_s=0.05)
    assert writer.sync(timeout=30.0)
    fill_and_wait(small_disk, writer)
    kept = [writer.append(AuditKind.CLUTCH, {"i": i}) for i in range(20)]
    assert sum(r is None for r in kept) == writer.lost == 16  # 1 + 4 held, 16 over the bound

    small_disk.free()
    wait_until(lambda: not writer.interrupted, "the trail to resume", 30.0)
    writer.close()
    report = verify(small_disk.path)
    assert report.ok, [str(f) for f in report.findings]
    (gap,) = [r for r in records(writer) if r["kind"] == AuditKind.AUDIT_INTERRUPTED]
    assert gap["data"]["lost_records"] == 16


def test_a_trail_closed_while_the_disk_is_full_ends_at_its_last_complete_record(
        small_disk: SmallDisk) -> None:
    writer = AuditWriter(small_disk.path, "patient", "or1", retry_s=0.05)
    writer.append(AuditKind.HOLD, BULK)
    assert writer.sync(timeout=30.0)
    first_held = fill_and_wait(small_disk, writer)
    with pytest.raises(RecordingError, match="ends at its last complete record"):
        writer.close()
    assert records(writer)[-1]["index"] == first_held - 1
    report = verify(small_disk.path)
    assert [f.problem.split(":")[0] for f in report.findings] == [
        "the trail ends here without session_stop"]
    assert verify(small_disk.path, allow_open=True).ok
