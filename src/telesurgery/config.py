"""Configuration of every node: TOML files validated by pydantic, one loader.

Every value has a default that runs the demo on one machine; a file only says
what differs. A wrong value is a ``ConfigError`` whose one line names the file,
the field and what is accepted.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Final, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from telesurgery.errors import ConfigError
from telesurgery.tasks.rules import DEFAULT_TASK, rules_for

PositiveFloat = Annotated[float, Field(gt=0.0)]
Vec3 = tuple[float, float, float]


class VideoConfig(BaseModel):
    """Endoscope camera and encoder settings.

    ``width`` x ``height`` [px] defaults to 640x480, the largest size measured to
    hold 30 fps beside the 1 kHz servo loop on a 2-core machine with software
    OpenGL (see ``telesurgery bench video``); 1280x720 and 1920x1080 are for
    machines with a GPU. ``fps`` [1/s]; ``asap`` renders back to back instead of
    at ``fps`` (shorter motion-to-photon, a busy core). ``bitrate_bps`` [bit/s]:
    None scales 2 Mbit/s at 640x480@30 by pixel rate. ``threads``: slices and
    colour conversion. ``render_threads``: Mesa llvmpipe's threads (``LP_NUM_THREADS``)
    when rendering in software, set before the patient's first OpenGL context; None
    takes the environment's ``LP_NUM_THREADS``, else half the cores (at least one):
    on the 2-core reference machine one thread rendered 640x480 in ~24 ms at 0.83
    cores for the whole patient node, two in ~18 ms at 1.06 cores, and the cores
    left over serve the servo loop, Zenoh and the encoder. ``samples``: multisample
    anti-aliasing of the render; 0 (none) because on software OpenGL MuJoCo's 4x
    tripled the frame time; 4 looks smoother on a GPU.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    camera: str = "ecm"
    width: Annotated[int, Field(ge=16, le=8192)] = 640
    height: Annotated[int, Field(ge=16, le=8192)] = 480
    fps: Annotated[float, Field(gt=0.0, le=240.0)] = 30.0
    asap: bool = False
    bitrate_bps: Annotated[int, Field(ge=50_000)] | None = None
    threads: Annotated[int, Field(ge=1, le=16)] = 2
    samples: Annotated[int, Field(ge=0, le=16)] = 0
    render_threads: Annotated[int, Field(ge=1, le=64)] | None = None

    @field_validator("width", "height")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError(f"{v} px is odd; YUV 4:2:0 needs even sizes, e.g. 640x480")
        return v


__all__ = ["VideoConfig"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ZenohConfig(_Strict):
    """How a node joins Zenoh: mode and explicit endpoints (scouting is always off).

    Endpoints are Zenoh locators such as ``tcp/127.0.0.1:7447``, ``udp/...`` or
    ``tls/...``; only their list changes when a deployment switches to mutual TLS.
    """

    mode: Literal["peer", "client", "router"] = "peer"
    listen: list[str] = []
    connect: list[str] = []
    gossip: bool = True
    """Peers learn each other's listen endpoints through the router they connect to and then
    talk directly, keeping the router off the hot path; multicast scouting stays off."""

    @field_validator("listen", "connect")
    @classmethod
    def _locators(cls, v: list[str]) -> list[str]:
        for loc in v:
            proto, sep, _ = loc.partition("/")
            if not sep or proto not in {"tcp", "udp", "tls", "quic", "unixsock-stream"}:
                raise ValueError(f"{loc!r} is not a Zenoh locator like 'tcp/127.0.0.1:7447'")
        return v


class PathConfig(_Strict):
    """One independent control path between console and patient node: its own Zenoh
    session over its own endpoint pair (e.g. fibre and 5G). The patient side listens,
    the console side connects (through a link emulator when emulating)."""

    name: str
    zenoh: ZenohConfig
    tls: bool = True
    """On a secure node, the path's links are TLS too (tcp/ to tls/, udp/ to quic/).
    False keeps a udp/ path plain: Zenoh 1.10 has TLS on datagrams only as QUIC, whose
    congestion control queues a 1 kHz command stream on a lossy, jittery path
    (docs/security.md); commands on it stay tagged end to end."""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _key_chunk(v, "path name")


def _unique_paths(v: list[PathConfig]) -> list[PathConfig]:
    names = [p.name for p in v]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"path names must be unique; {dupes} appear more than once")
    return v


ALL_ARMS = "arms"
"""The pseudo-arm of keys that carry every arm at once (``transport.keys``)."""


def _arm_names(v: list[str]) -> list[str]:
    if not v:
        raise ValueError("at least one arm is needed, e.g. ['psm1']")
    if ALL_ARMS in v:
        raise ValueError(f"no arm may be called {ALL_ARMS!r}: the key space uses it for "
                         "every arm at once; name it otherwise, e.g. 'psm3'")
    return [_key_chunk(a, "arm") for a in v]


class SecurityConfig(_Strict):
    """Mutual TLS, access control and command authentication of a node (docs/security.md).

    Secure by default: a node given neither an ``identity`` nor ``insecure = true``
    refuses to start.
    """

    identity: Path | None = None
    """Identity folder from ``telesurgery pki issue`` (cert.pem, key.pem, and ca.pem: the
    site CA the node trusts)."""
    acl: Path | None = None
    """Access-control file from ``telesurgery pki acl`` (needed with ``identity``)."""
    crl: Path | None = None
    """The site's revocation list (``crl.pem``): a revoked identity does not start, and the
    patient node refuses command keys to revoked certificates."""
    insecure: bool = False
    """Plain TCP, no authentication, untagged commands: for debugging only."""

    @model_validator(mode="after")
    def _one_way(self) -> SecurityConfig:
        if self.insecure and (self.identity or self.acl or self.crl):
            raise ValueError("insecure = true cannot go with identity, acl or crl; choose one")
        return self


FORCE_CAP_N: Final = 8.0
"""Default cap [N] on the force at an instrument's tip: the 6 to 8 N that ureteral studies
identify as a safety threshold (Science of Surgical Force scoping review, J Endourol 2025,
doi:10.1177/08927790251394738); da Vinci 5's force feedback brought the median peak force
on tissue to 10.1 N. The patient's supervisor limits motion into contact beyond it; the
console's page alarms and sounds above it."""
GRIP_CAP_N: Final = 8.0
"""Default cap [N] on what the jaws squeeze: our choice, the same threshold as the tip's."""


class SafetyConfig(_Strict):
    """Limits the safety supervisor enforces on every command.

    Defaults: watchdog 50 ms (the dVRK uses 30 ms on its FPGA; the brief asks for
    50 ms); command age limit 100 ms (the ATIS survival time for remote robotic
    surgery is > 100 ms); speed and acceleration limits are our choice, well
    above surgical hand speeds after 0.2 motion scaling. ``owner_lost_ms``: the control
    owner silent this long [ms] loses control to the bedside (our choice: twenty
    watchdog windows, so a burst of loss on a lossy path holds the arms without handing
    control away, while a console that is gone is noticed within a second).
    """

    watchdog_ms: PositiveFloat = 50.0
    max_command_age_ms: PositiveFloat = 100.0
    path_delay_ms: Annotated[float, Field(ge=0.0)] = 0.0
    """The slowest control path's one-way delay [ms], as its qualification measured it: a
    command is stale when older than this plus ``max_command_age_ms``. Over a
    geostationary satellite (300 ms one way) every command arrives 300 ms old; without it
    the supervisor dropped them all and the arms never moved."""
    owner_lost_ms: PositiveFloat = 1000.0
    max_linear_speed_m_s: PositiveFloat = 0.25
    max_linear_accel_m_s2: PositiveFloat = 5.0
    max_angular_speed_rad_s: PositiveFloat = 4.0
    max_jaw_speed_rad_s: PositiveFloat = 8.0
    rcm_min_distance_m: PositiveFloat = 0.045
    force_cap_n: PositiveFloat = FORCE_CAP_N
    """Force at the tip [N] above which motion into contact stops (``FORCE_CAP_N``)."""
    grip_cap_n: PositiveFloat = GRIP_CAP_N
    """Grip [N] above which the jaws close no further (``GRIP_CAP_N``)."""
    workspace_min_m: Vec3 = (-0.12, -0.12, -0.235)
    workspace_max_m: Vec3 = (0.12, 0.12, -0.05)

    @model_validator(mode="after")
    def _box(self) -> SafetyConfig:
        if not all(lo < hi for lo, hi in zip(self.workspace_min_m, self.workspace_max_m,
                                             strict=True)):
            raise ValueError("workspace_min_m must be below workspace_max_m on every axis")
        if self.owner_lost_ms <= self.watchdog_ms:
            raise ValueError("owner_lost_ms must exceed watchdog_ms: the arms hold before "
                             "control changes hands")
        return self


CHECKLIST_ITEMS = ("link", "bedside", "credential", "recording", "video")
"""The pre-flight checklist's items (``safety.checklist.Item``), as configs name them."""
ChecklistItemName = Literal["link", "bedside", "credential", "recording", "video"]


class ChecklistConfig(_Strict):
    """The pre-flight checklist the patient node enforces (``safety.checklist``).

    ``required`` false (the default) keeps a plain ``telesurgery patient`` as it was: no
    checklist, the first surgeon console claims control. With it true, no surgeon console
    drives until the bedside lead confirmed the list and every item is GO or overridden.
    ``confirmation``: the bedside's confirmation file (:class:`ChecklistConfirmation`,
    written by ``telesurgery checklist confirm`` and ``override``), read again whenever
    it changes. ``probe_reports``: ``telesurgery probe --json`` reports; the ``link``
    item needs every control path GO in one finished within ``probe_max_age_min``
    [min] (30 by default: our choice, no source gives a figure).
    """

    required: bool = False
    confirmation: Path | None = None
    probe_reports: list[Path] = []
    probe_max_age_min: PositiveFloat = 30.0


class ChecklistConfirmation(_Strict):
    """What the bedside lead writes (TOML): who confirms the checklist, and each failed
    item overridden with its written reason (at least 10 characters: a reason, not a
    tick)::

        confirmed_by = "sister-chen"
        [overrides]
        bedside = "the bedside surgeon scrubbed in; the backup console restarts"
    """

    confirmed_by: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    overrides: dict[ChecklistItemName, Annotated[str, Field(min_length=10,
                                                            max_length=500)]] = {}


def _task_name(v: str) -> str:
    rules_for(v)
    return v


class PatientConfig(_Strict):
    """The patient-side node: robot, loops and safety."""

    session: str = "or1"
    arms: list[str] = ["psm1", "psm2"]
    robot: Literal["sim"] = "sim"
    servo_rate_hz: PositiveFloat = 1000.0
    state_rate_hz: PositiveFloat = 500.0
    realtime: bool = True
    zenoh: ZenohConfig = ZenohConfig(listen=["tcp/127.0.0.1:7448"])
    paths: list[PathConfig] = []
    """Dedicated control paths (commands, state, clock sync); none: the main session."""
    safety: SafetyConfig = SafetyConfig()
    video: VideoConfig = VideoConfig()
    record_dir: Path | None = None
    """Session directory the node's signed audit trail goes in (``audit/``); none: no trail."""
    security: SecurityConfig = SecurityConfig()
    policy: Path | None = None
    """The site's credential policy (TOML, ``security.credential.CredentialPolicy``):
    which licensing authorities and jurisdictions it accepts, by role; none: licences
    are not checked."""
    checklist: ChecklistConfig = ChecklistConfig()
    task: str = DEFAULT_TASK
    """The training task on the simulated board (``telesurgery.tasks``)."""

    _paths = field_validator("paths")(_unique_paths)
    _task = field_validator("task")(_task_name)

    @field_validator("session")
    @classmethod
    def _session(cls, v: str) -> str:
        return _key_chunk(v, "session")

    _arms = field_validator("arms")(_arm_names)


class TremorConfig(_Strict):
    """Band-stop over the physiological tremor band (6-12 Hz, Lakie et al. 2015)."""

    enabled: bool = True
    low_hz: PositiveFloat = 6.0
    high_hz: PositiveFloat = 12.0
    order: Annotated[int, Field(ge=1, le=4)] = 2


class WebConfig(_Strict):
    """The console's web page (video, HUD, keyboard/mouse/gamepad input), loopback only.

    ``port`` 0 (the default) takes any free port, so that several consoles on one
    machine never collide; the console prints the page's URL, with its per-launch
    secret, and ``demo`` shows it.
    """

    enabled: bool = True
    host: Literal["127.0.0.1", "::1", "localhost"] = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 0


class ConsoleConfig(_Strict):
    """A console: input device, teleoperation mapping and rate.

    ``role``: the remote ``surgeon`` console (``telesurgery console``), or the ``backup``
    console at the bedside (``telesurgery backup``), which takes control at once and
    grants it; with security on, the certificate must hold the same role.
    """

    session: str = "or1"
    role: Literal["surgeon", "backup"] = "surgeon"
    arms: list[str] = ["psm1", "psm2"]
    device: Literal["autopilot", "scripted", "touch", "web"] = "autopilot"
    """``touch``: the autopilot's hands on simulated haptic devices that display the force
    at the tips (docs/haptics.md)."""
    task: str = DEFAULT_TASK
    """The training task the autopilot performs (``telesurgery.tasks``); the patient's
    board must be set up for the same."""
    trajectory: Path | None = None
    rate_hz: PositiveFloat = 1000.0
    scale: Annotated[float, Field(gt=0.0, le=1.0)] = 0.2
    scale_with_delay: bool = True
    """Lower the motion scale as the measured round trip grows past 250 ms, to half of
    ``scale`` at 750 ms (``console.scaling``)."""
    predictive_display: bool = True
    """Draw each instrument where the console has commanded it (its "ghost") over the
    delayed video, and show it to the input device (``InputDevice.foresee``); the page has
    a toggle for its own drawing (docs/console.md)."""
    outage_twin: bool = True
    """With both control paths down, let the surgeon work on a local twin of the patient
    side (``console.twin``)."""
    outage_replay: Literal["discard", "offer"] = "discard"
    """What becomes of the twin's motion when the link returns: discarded, or offered for
    replay on the robot, which the bedside must allow (``console.replay``)."""
    force_cap_n: PositiveFloat = FORCE_CAP_N
    """Force at the tip [N] above which the surgeon's page alarms and sounds."""
    tremor: TremorConfig = TremorConfig()
    realtime: bool = True
    zenoh: ZenohConfig = ZenohConfig(connect=["tcp/127.0.0.1:7448"])
    paths: list[PathConfig] = []
    """Dedicated control paths, named as on the patient node; none: the main session."""
    video: VideoConfig = VideoConfig()
    web: WebConfig = WebConfig()
    security: SecurityConfig = SecurityConfig()

    _paths = field_validator("paths")(_unique_paths)
    _arms = field_validator("arms")(_arm_names)
    _task = field_validator("task")(_task_name)

    @field_validator("session")
    @classmethod
    def _session(cls, v: str) -> str:
        return _key_chunk(v, "session")


def _key_chunk(v: str, what: str) -> str:
    if not v or not v.isascii() or any(c in v for c in "/*$?# "):
        raise ValueError(f"{what} {v!r} must be ASCII without '/', '*', '$', '?', '#' or spaces")
    return v


_M = TypeVar("_M", bound=BaseModel)


def load(model: type[_M], path: Path | None, **overrides: object) -> _M:
    """Read ``path`` (TOML; None for defaults), apply ``overrides``, validate.

    Raises ``ConfigError`` with one line naming the file and field.
    """
    data: dict[str, object] = {}
    where = "command line"  # the defaults are valid: only overrides can be wrong
    if path is not None:
        where = str(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"{path}: no such config file; check the path") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read it ({exc})") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax") from exc
        except RecursionError as exc:
            raise ConfigError(f"{path}: arrays or tables nested too deep to read; no setting "
                              "nests more than a few levels") from exc
    data.update({k: v for k, v in overrides.items() if v is not None})
    return _validate(model, data, where)


def _validate(model: type[_M], data: Mapping[str, object], where: str) -> _M:
    """``model`` from ``data`` (what ``where`` says: a file, the command line).

    Raises ``ConfigError`` with one line naming ``where`` and the field.
    """
    try:
        return model.model_validate(data)
    except RecursionError as exc:
        raise ConfigError(f"{where}: values nested too deep to check; no setting nests more "
                          "than a few levels") from exc
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = str(err["msg"]).removeprefix("Value error, ")
        extra = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{where}: {field}: {msg}{extra}") from exc
