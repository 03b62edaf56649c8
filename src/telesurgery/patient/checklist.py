"""The patient node's pre-flight checklist: observations gathered, the bedside's word read.

``safety.checklist`` holds the items and the rule; this module gathers what the node
sees for each item and reads the bedside lead's confirmation file
(``config.ChecklistConfirmation``) whenever it changes. Once the list is cleared it
stays cleared for the run: it is a check before the first incision, and what happens
afterwards is the safety supervisor's and control ownership's (a lost path, a silent
console).

Threads: the housekeeping thread calls :meth:`PatientChecklist.poll` about every 50 ms;
the key-agreement thread calls :meth:`PatientChecklist.key_agreed` before the console
is answered, so a surgeon agreed while every other item holds is cleared before its
first command can arrive. :attr:`PatientChecklist.cleared` is one attribute read, for
the safety supervisor's ``admits`` (under its lock).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from telesurgery.config import ChecklistConfig, ChecklistConfirmation, load
from telesurgery.errors import ConfigError, OwnershipError
from telesurgery.patient.audit import PatientAudit
from telesurgery.safety.checklist import (
    Checklist,
    Confirmation,
    Item,
    Observation,
    evaluate,
)
from telesurgery.security.command_keys import KeyEvent
from telesurgery.security.credential import Licence
from telesurgery.security.handshake import file_stamp

log = logging.getLogger(__name__)

LINK_CHECK_S = 1.0
"""How often [s] the probe reports are read again (a report ages by the minute)."""


def read_confirmation(path: Path | None) -> Confirmation:
    """The bedside's confirmation in ``path`` (None or missing: nothing confirmed yet);
    ``ConfigError`` names what is wrong in it."""
    if path is None or not path.exists():
        return Confirmation()
    cfg = load(ChecklistConfirmation, path)
    return Confirmation(cfg.confirmed_by, {Item(k): v for k, v in cfg.overrides.items()})


def _toml_text(value: str) -> str:
    # A TOML basic string: the escapes JSON and TOML share.
    return json.dumps(value, ensure_ascii=False)


def write_confirmation(path: Path, confirmed_by: str | None,
                       overrides: Mapping[str, str]) -> None:
    """Validate and write the bedside's confirmation to ``path`` whole (a new file put in
    its place), so that the node never reads half of one; ``ConfigError`` otherwise."""
    cfg = load(ChecklistConfirmation, None, confirmed_by=confirmed_by,
               overrides=dict(overrides))
    lines = [] if cfg.confirmed_by is None else [f"confirmed_by = {_toml_text(cfg.confirmed_by)}"]
    lines.append("[overrides]")
    lines += [f"{item} = {_toml_text(reason)}" for item, reason in cfg.overrides.items()]
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}; choose a writable "
                          "folder") from exc


def link_observation(reports: Sequence[Path], paths: Collection[str], max_age_min: float,
                     now: dt.datetime) -> Observation:
    """Whether every control path (``paths``; empty: the one main path) is GO in a
    ``probe --json`` report that finished within ``max_age_min`` [min] of ``now``."""
    if not reports:
        return Observation(False, "no probe report given ([checklist] probe_reports)")
    fresh: set[str] = set()
    stale: list[str] = []
    for path in reports:
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
            finished = dt.datetime.fromisoformat(str(report["finished_at"]))
            results = dict(report["paths"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return Observation(False, f"probe report {path.name} unreadable ({exc})")
        age_min = (now - finished).total_seconds() / 60.0
        if age_min > max_age_min:
            stale.append(f"{path.name} is {age_min:.0f} min old")
            continue
        fresh |= {name for name, r in results.items() if isinstance(r, dict) and r.get("go")}
    missing = sorted(set(paths) - fresh) if paths else ([] if fresh else ["any path"])
    if missing:
        why = "; ".join(stale) or "not GO in the reports"
        return Observation(False, f"not qualified within {max_age_min:g} min: "
                           f"{', '.join(missing)} ({why})")
    return Observation(True, f"GO within {max_age_min:g} min: {', '.join(sorted(fresh))}")


def _licence_words(licence: Licence | None) -> str:
    if licence is None:
        return "no licence"
    return (f"{licence.authority}, {licence.jurisdiction}, {licence.specialty}, licence "
            f"{licence.number} valid until {licence.valid_until}")


class PatientChecklist:
    """One patient node run's checklist (thread-safe).

    ``paths``: the control paths' names (empty: the main session alone); ``policy_on``:
    the site's credential policy is checked at key agreement; ``audit_on``: the node
    writes its signed trail; ``audit``: where changes are written.
    """

    def __init__(self, cfg: ChecklistConfig, paths: Collection[str], *, policy_on: bool,
                 audit_on: bool, audit: PatientAudit | None) -> None:
        self.required = cfg.required
        self._cfg = cfg
        self._paths = tuple(paths)
        self._policy_on = policy_on
        self._audit_on = audit_on
        self._audit = audit
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._confirmation = Confirmation()
        self._bedside = Confirmation()
        """What a bedside console said over the wire (``bedside_action``); it adds to the
        file's: its confirmation wins, the overrides of both count."""
        self._licences: dict[str, Licence | None] = {}
        self._live: frozenset[str] = frozenset()
        self._recorder = False
        self._video_frames = 0
        self._written: tuple[object, ...] | None = None
        self._overrides_written: dict[Item, str] = {}
        self._override_by: dict[Item, str] = {}
        """Who overrode each item from a bedside console (the file's: who confirmed it)."""
        self._link = self._qualify()
        self._link_at = time.monotonic()
        self.cleared = not cfg.required
        """True once the list was cleared (always, when it is not required)."""
        self.last: Checklist | None = None

    def key_agreed(self, ev: KeyEvent) -> None:
        """A console agreed a command key (its licence accepted by the policy, if any);
        called before the console is answered."""
        if ev.reason is not None or ev.common_name is None:
            return
        with self._lock:
            self._licences[ev.common_name] = ev.licence
            self._live = self._live | {ev.common_name}
        self._evaluate()

    def poll(self, live: Collection[str], recorder_present: bool, video_frames: int) -> None:
        """Housekeeping: the consoles running now (common names), whether a recorder is
        present, the video frames sent so far; the confirmation file read if it changed."""
        now = time.monotonic()
        # The probe reports are files: read at most once a second, never under the lock.
        link = self._qualify() if now - self._link_at >= LINK_CHECK_S else None
        with self._lock:
            self._live = frozenset(live)
            self._recorder = recorder_present
            self._video_frames = video_frames
            if link is not None:
                self._link, self._link_at = link, now
        self._reload()
        self._evaluate()

    def bedside_action(self, by: str, data: Mapping[str, object]) -> None:
        """A bedside console's action (``by``: its certificate's name): ``{"action":
        "confirm"}`` or ``{"action": "override", "item": ..., "reason": ...}``;
        ``OwnershipError`` (``checklist_action``) says what is wrong with it."""
        action, item, reason = data.get("action"), data.get("item"), data.get("reason")
        items: dict[Item, str] = {}
        try:
            if action == "confirm":
                load(ChecklistConfirmation, None, confirmed_by=by)
                update = Confirmation(by, self._bedside.overrides)
            elif action == "override":
                checked = load(ChecklistConfirmation, None, overrides={str(item): reason})
                items = {Item(k): v for k, v in checked.overrides.items()}
                update = Confirmation(self._bedside.confirmed_by,
                                      {**(self._bedside.overrides or {}), **items})
            else:
                raise ConfigError(f"action {action!r} is not confirm or override")
        except ConfigError as exc:
            raise OwnershipError("checklist_action", f"a checklist action of {by} is "
                                 f"refused: {exc}") from exc
        with self._lock:
            self._bedside = update
            self._override_by.update(dict.fromkeys(items, by))
        self._evaluate()

    def _confirmation_now(self) -> Confirmation:
        """The file's confirmation with the bedside console's on top."""
        file, bedside = self._confirmation, self._bedside
        return Confirmation(bedside.confirmed_by or file.confirmed_by,
                            {**(file.overrides or {}), **(bedside.overrides or {})})

    def _reload(self) -> None:
        path = self._cfg.confirmation
        stamp = None if path is None else file_stamp(path)
        if stamp == self._stamp:
            return
        try:
            confirmation = read_confirmation(self._cfg.confirmation)
        except ConfigError as exc:
            # Keep what the bedside said last: a half-written file confirms nothing new.
            log.warning("checklist confirmation not read: %s", exc)
            return
        with self._lock:
            self._stamp, self._confirmation = stamp, confirmation

    def _qualify(self) -> Observation:
        return link_observation(self._cfg.probe_reports, self._paths,
                                self._cfg.probe_max_age_min, dt.datetime.now(dt.UTC))

    def _observe(self) -> dict[Item, Observation]:
        commanders = {n: self._licences.get(n) for n in sorted(self._live)}
        backups = [n for n in commanders if n.startswith("backup:")]
        surgeons = [n for n in commanders if n.startswith("surgeon:")]
        out = {Item.LINK: self._link}
        out[Item.BEDSIDE] = (
            Observation(True, "; ".join(f"{n} ({_licence_words(commanders[n])})"
                                        for n in backups)) if backups
            else Observation(False, "no bedside (backup) console has agreed a command key"))
        if not self._policy_on:
            out[Item.CREDENTIAL] = Observation(False, "the site checks no credential policy "
                                               "(--policy)")
        elif surgeons:
            out[Item.CREDENTIAL] = Observation(True, "; ".join(
                f"{n}: {_licence_words(commanders[n])}" for n in surgeons))
        else:
            out[Item.CREDENTIAL] = Observation(False, "no surgeon console accepted yet")
        out[Item.RECORDING] = Observation(
            self._audit_on and self._recorder,
            ("audit trail" if self._audit_on else "no audit trail (--record)") + "; "
            + ("recorder present" if self._recorder else "no recorder present"))
        out[Item.VIDEO] = Observation(
            self._video_frames > 0,
            f"{self._video_frames} frames sent; the console clutches while its picture is "
            "stale" if self._video_frames else "no video frame sent")
        return out

    def _evaluate(self) -> None:
        with self._lock:
            checklist = evaluate(self._observe(), self._confirmation_now())
            was = self.cleared
            self.last = checklist
            if checklist.cleared:
                self.cleared = True
            state = (tuple(r.state for r in checklist.items), checklist.confirmed_by,
                     self.cleared)
            changed = state != self._written
            self._written = state
            overrides = {r.item: r.reason for r in checklist.items if r.reason}
            new_overrides = {i: r for i, r in overrides.items()
                             if self._overrides_written.get(i) != r}
            self._overrides_written.update(new_overrides)
        if self._audit is None or not self.required:
            return
        for item, reason in new_overrides.items():
            self._audit.checklist_override(item.value, reason,
                                           self._override_by.get(item, checklist.confirmed_by))
        if changed:
            self._audit.checklist(checklist.as_dict() | {"latched": self.cleared})
        if self.cleared and not was:
            log.warning("pre-flight checklist cleared (confirmed by %s): surgeon consoles "
                        "may now take control", checklist.confirmed_by)

    def status(self) -> dict[str, Any]:
        """``required``, ``cleared`` (latched), and the last evaluation's items."""
        with self._lock:
            last = self.last
        out: dict[str, Any] = {"required": self.required, "cleared": self.cleared}
        if last is not None:
            out |= {"confirmed_by": last.confirmed_by,
                    "items": [r.as_dict() for r in last.items]}
        return out


__all__ = ["PatientChecklist", "link_observation", "read_confirmation", "write_confirmation"]
