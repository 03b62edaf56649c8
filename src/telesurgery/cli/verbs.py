"""Which modules add verbs to the ``telesurgery`` command (one line each)."""

from __future__ import annotations

import importlib

import typer

VERB_MODULES = (
    # each module defines ``register(app: typer.Typer) -> None``
    "nodes",
    "demo",
    "bench",
    "pki",
    "record",
    "audit",
    "checklist",
    "replay",
    "report",
    "link",
    "probe",
    "sites",
    "observe",
    "train",
    "drill",
)


def register(app: typer.Typer) -> None:
    """Add every verb to ``app``."""
    for name in VERB_MODULES:
        importlib.import_module(f"telesurgery.cli.{name}").register(app)
