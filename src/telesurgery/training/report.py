"""``telesurgery train report``: a trainee's learning curve per task, as one HTML page.

For each task the trainee attempted: the time of each attempt against the proficiency
level [s], its score, a table of the attempts (with penalties, robot metrics and a link
to the recording), and whether the proficiency rule is met (``tasks.proficiency``) and
at which attempt. Interrupted attempts are listed and left out of the rule.
"""

from __future__ import annotations

from datetime import UTC, datetime

from telesurgery import __version__
from telesurgery.errors import ConfigError
from telesurgery.record.report import _CSS, _e, _figure, _none, _png, _section, _table
from telesurgery.tasks import TaskRules, proficiency, rules_for
from telesurgery.training.db import AttemptRow, TrainingDB


def _verdict(rules: TaskRules, rows: list[AttemptRow]) -> str:
    p = proficiency(rules, [r.for_rules() for r in rows])
    flawless = " and ".join(rules.flawless)
    rule = (f"the level is {rules.level_s:g} s with no {flawless}, on {rules.consecutive} "
            f"consecutive attempts and {rules.more} more ({rules.source})")
    if p.met_at is not None:
        return (f'<p class="ok">Proficiency met at attempt {p.met_at} (attempt id '
                f"{rows[p.met_at - 1].id}): {_e(rule)}.</p>")
    return (f'<p class="bad">Proficiency not met yet: {p.count} attempts at level, the '
            f"longest run {p.streak}; {_e(rule)}.</p>")


def _curve(rules: TaskRules, rows: list[AttemptRow]) -> str:
    fig, ax = _figure(3.0)
    n = list(range(1, len(rows) + 1))
    times = [r.time_s if r.time_s is not None else float("nan") for r in rows]
    ax.plot(n, times, "o-", label="time [s] (gaps: not finished)")
    ax.axhline(rules.level_s, color="#2e7d32", linestyle="--",
               label=f"proficiency level {rules.level_s:g} s")
    missed = [i for i, r in zip(n, rows, strict=True) if r.time_s is None]
    if missed:
        ax.plot(missed, [rules.level_s] * len(missed), "x", color="#c62828",
                label="not finished within the cutoff")
    ax.set_xlabel("attempt")
    ax.set_ylabel("time [s]")
    ax.set_ylim(bottom=0)
    right = ax.twinx()
    right.plot(n, [r.score if r.score is not None else float("nan") for r in rows], "s:",
               color="#6a1b9a", label="score (0-100)")
    right.set_ylim(0, 100)
    right.set_ylabel("score")
    ax.legend(fontsize=8, loc="upper left")
    right.legend(fontsize=8, loc="upper right")
    ax.xaxis.get_major_locator().set_params(integer=True)
    return _png(fig, f"learning curve, {rules.name}")


def _row(r: AttemptRow) -> tuple[object, ...]:
    m = r.metrics
    paths = m.get("path_m", {})
    return (r.id, r.started_utc, "interrupted" if r.interrupted else "done",
            "-" if r.time_s is None else f"{r.time_s:.1f}",
            "-" if r.score is None else f"{r.score:.1f}",
            ", ".join(f"{k} {v}" for k, v in r.penalties.items()) or "-",
            ", ".join(f"{a} {v:.3f}" for a, v in paths.items()) or "-",
            m.get("idle_s", "-"), m.get("clutches", "-"), m.get("collisions", "-"),
            r.recording or "-")


def render_trainee(db: TrainingDB, trainee: str) -> str:
    """The trainee's report as one HTML document; ConfigError for an unknown trainee."""
    rows = db.attempts(trainee)
    if not rows:
        known = ", ".join(db.trainees()) or "none yet"
        raise ConfigError(f"no attempts by {trainee!r} in {db.path}; trainees: {known}")
    sections = []
    for task in sorted({r.task for r in rows}):
        rules = rules_for(task)
        mine = [r for r in rows if r.task == task]
        scored = [r for r in mine if not r.interrupted]
        body = (f"<p>{_e(rules.title)}: {len(mine)} attempts ({len(mine) - len(scored)} "
                f"interrupted). Score = cutoff ({rules.cutoff_s:g} s) - time - penalties, "
                f"normalised to 0-100.</p>")
        body += _verdict(rules, scored) if scored else _none("No finished attempt yet.")
        if scored:
            body += _curve(rules, scored)
        body += _table(["id", "started (UTC)", "status", "time [s]", "score", "penalties",
                        "path [m]", "idle [s]", "clutches", "collisions", "recording"],
                        [_row(r) for r in mine])
        sections.append(_section(task, rules.title, body))
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    title = f"Training report: {trainee}"
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
            f"<header><h1>{_e(title)}</h1><p>{len(rows)} attempts &middot; {_e(db.path)}"
            f" &middot; report by telesurgery {_e(__version__)}, {made}</p></header>"
            f"<main>{''.join(sections)}</main></body></html>")


__all__ = ["render_trainee"]
