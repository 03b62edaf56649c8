"""The ``telesurgery`` command: one Typer app, one module per verb."""

from __future__ import annotations

import sys

import typer

from telesurgery.errors import TelesurgeryError

app = typer.Typer(
    name="telesurgery",
    help="Remote robotic surgery over long-distance networks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    # One import per verb module; each adds its commands to ``app``.
    from telesurgery.cli import verbs

    verbs.register(app)


def main() -> None:
    """Entry point: run the app, turning our errors into one line and exit status 2."""
    _register()
    try:
        app()
    except TelesurgeryError as exc:
        print(f"telesurgery: error: {exc}", file=sys.stderr)
        sys.exit(2)
