"""The ``telesurgery`` command: one Typer app, one module per verb."""

from __future__ import annotations

import sys
import tempfile
import traceback
from typing import Annotated

import typer

from telesurgery.errors import TelesurgeryError

app = typer.Typer(
    name="telesurgery",
    help="Remote robotic surgery over long-distance networks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from telesurgery import __version__

        typer.echo(f"telesurgery {__version__}")
        raise typer.Exit


@app.callback()
def _options(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True,
        help="Print the version and exit.")] = False) -> None:
    """Remote robotic surgery over long-distance networks."""


def _register() -> None:
    # One import per verb module; each adds its commands to ``app``.
    from telesurgery.cli import verbs

    verbs.register(app)


def main() -> None:
    """Entry point: run the app, turning our errors into one line and exit status 2."""
    try:
        # Before any verb's module takes ``now_ns`` by name (a test and bench hook).
        from telesurgery.clock import install_test_clock_step

        install_test_clock_step()
        _register()
        from telesurgery.cli.common import fill_optional_values

        app(args=fill_optional_values(sys.argv[1:]))
    except TelesurgeryError as exc:
        print(f"telesurgery: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except Exception as exc:
        # A bug, not a usage error: one line for the user, the traceback kept for the report.
        with tempfile.NamedTemporaryFile("w", prefix="telesurgery-crash-", suffix=".txt",
                                         delete=False) as f:
            traceback.print_exc(file=f)
        print(f"telesurgery: internal error: {type(exc).__name__}: {exc}; this is a bug, "
              f"please report it with {f.name}", file=sys.stderr)
        sys.exit(1)
