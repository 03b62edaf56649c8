"""What every verb shares: logging set-up, stop signals, JSON output files."""

from __future__ import annotations

import json
import logging
import math
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from telesurgery.config import SecurityConfig
from telesurgery.errors import ConfigError
from telesurgery.record.live import DEFAULT_PORT

IdentityOpt = Annotated[Path | None, typer.Option(
    "--identity", help="Identity folder from 'telesurgery pki issue' (mutual TLS on every "
    "link; signs command keys).")]
AclOpt = Annotated[Path | None, typer.Option(
    "--acl", help="Access-control file from 'telesurgery pki acl' (needed with --identity).")]
CrlOpt = Annotated[Path | None, typer.Option(
    "--crl", help="The site's revocation list (crl.pem): revoked identities are refused.")]
FoxgloveOpt = Annotated[int | None, typer.Option(
    "--foxglove", metavar="[PORT]", help=f"Serve the session live to Foxglove (WebSocket on "
    f"loopback, port {DEFAULT_PORT} when none is given): frames, scene, video and every "
    "message, as recorded.")]
_OPTIONAL_VALUES = {"--foxglove": str(DEFAULT_PORT)}
InsecureOpt = Annotated[bool, typer.Option(
    "--insecure", help="Plain TCP without TLS, access control or command tags (debugging "
    "only; secure is the default).")]


def fill_optional_values(args: list[str]) -> list[str]:
    """``args`` with the default value after an option given without one (``--foxglove``
    alone): Click has no option whose value may be left out."""
    out: list[str] = []
    for i, arg in enumerate(args):
        out.append(arg)
        nxt = args[i + 1] if i + 1 < len(args) else None
        if arg in _OPTIONAL_VALUES and (nxt is None or nxt.startswith("-")):
            out.append(_OPTIONAL_VALUES[arg])
    return out


def security_section(base: SecurityConfig, identity: Path | None, acl: Path | None,
                     crl: Path | None, insecure: bool) -> dict[str, object]:
    """The ``[security]`` section of ``base`` with the command-line flags applied:
    ``--insecure`` replaces it, any other flag overrides its field."""
    changes = {k: v for k, v in (("identity", identity), ("acl", acl), ("crl", crl))
               if v is not None}
    if insecure:
        if changes:
            raise ConfigError("--insecure cannot go with --identity, --acl or --crl; choose "
                              "one")
        return {"insecure": True}
    data = base.model_dump()
    if changes:
        data.update(changes, insecure=False)
    return data


def check_duration(duration: float | None, flag: str = "--duration") -> None:
    """``ConfigError`` unless ``duration`` [s] is None (no limit) or a positive, finite
    number of seconds."""
    if duration is None:
        return
    if not math.isfinite(duration):
        raise ConfigError(f"{flag} must be a finite number of seconds, got {duration}; leave "
                          "it out to run until stopped")
    if duration <= 0:
        raise ConfigError(f"{flag} must be positive, got {duration}")


def setup_logging(level: str) -> None:
    """Log to stderr at ``level`` (debug, info, warning, error)."""
    numeric = getattr(logging, level.upper(), None)
    if not isinstance(numeric, int):
        raise ConfigError(f"log level {level!r} is unknown; use debug, info, warning or error")
    logging.basicConfig(level=numeric, format="%(asctime)s %(name)s %(levelname)s %(message)s")


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM, so loops end cleanly and write their reports."""
    stop = threading.Event()

    def handler(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON, atomically (a reader never sees half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}; choose a writable path") from exc
