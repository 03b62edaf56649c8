"""Where things go in a session directory: recordings (MCAP) and audit trails.

::

    DIR/recording.mcap           the first recording of the session
    DIR/recording-2.mcap, ...    recordings of later recorder runs (never overwritten)
    DIR/audit/<node>-<run>.audit.jsonl   one node run's hash-chained, signed trail
    DIR/audit/<node>-<run>.key.json      that trail's public key
"""

from __future__ import annotations

import re
from pathlib import Path

from telesurgery.errors import RecordingError

RECORDING_STEM = "recording"
RECORDING_SUFFIX = ".mcap"
AUDIT_DIR = "audit"
TRAIL_SUFFIX = ".audit.jsonl"
KEY_SUFFIX = ".key.json"
_RECORDING = re.compile(rf"{RECORDING_STEM}(?:-(\d+))?{re.escape(RECORDING_SUFFIX)}")


def _number(path: Path) -> int:
    m = _RECORDING.fullmatch(path.name)
    return int(m.group(1) or 1) if m else 0


def recording_paths(directory: Path) -> list[Path]:
    """The recordings in ``directory``, oldest first (empty when there is none)."""
    if not directory.is_dir():
        return []
    return sorted((p for p in directory.iterdir() if _number(p)), key=_number)


def new_recording_path(directory: Path) -> Path:
    """A recording path in ``directory`` that no earlier recorder run has used."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RecordingError(f"cannot create {directory}: {exc.strerror}; choose a writable "
                             "directory") from exc
    existing = recording_paths(directory)
    n = _number(existing[-1]) + 1 if existing else 1
    suffix = "" if n == 1 else f"-{n}"
    return directory / f"{RECORDING_STEM}{suffix}{RECORDING_SUFFIX}"


def audit_dir(directory: Path) -> Path:
    """Where the audit trails of the session in ``directory`` are."""
    return directory / AUDIT_DIR


__all__ = [
    "AUDIT_DIR",
    "KEY_SUFFIX",
    "TRAIL_SUFFIX",
    "audit_dir",
    "new_recording_path",
    "recording_paths",
]
