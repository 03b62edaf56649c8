"""Verbs that run one node each: ``patient``, ``console``, ``backup`` and ``router``."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Literal

import typer
from pydantic import BaseModel

from telesurgery.cli.common import (
    AclOpt,
    CrlOpt,
    FoxgloveOpt,
    IdentityOpt,
    InsecureOpt,
    check_duration,
    security_section,
    setup_logging,
    stop_on_signals,
    write_json,
)
from telesurgery.cli.record import FOXGLOVE_STOP_TIMEOUT_S, foxglove_beside
from telesurgery.config import ConsoleConfig, PatientConfig, SecurityConfig, ZenohConfig, load
from telesurgery.errors import ConfigError

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML config file.")]
SessionOpt = Annotated[str | None, typer.Option(help="Session name in the key space.")]
ListenOpt = Annotated[list[str] | None, typer.Option("--listen", help="Zenoh locator to listen "
                                                     "on, e.g. tcp/127.0.0.1:7448 (repeat).")]
ConnectOpt = Annotated[list[str] | None, typer.Option("--connect", help="Zenoh locator to "
                                                      "connect to (repeat).")]
ModeOpt = Annotated[str | None, typer.Option(help="Zenoh mode: peer or client.")]
DurationOpt = Annotated[float | None, typer.Option(help="Stop after this many seconds.")]
ReportOpt = Annotated[Path | None, typer.Option(help="Write the final report (JSON) here.")]
LogOpt = Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")]
VideoOpt = Annotated[bool | None, typer.Option("--video/--no-video", help="Endoscope video "
                                               "(default: on, or as the config says).")]
TaskOpt = Annotated[str | None, typer.Option(
    "--task", help="The training task: peg_transfer (default), handover or precision. Give "
    "the patient and the consoles the same.")]
ForceCapOpt = Annotated[float | None, typer.Option(
    "--force-cap", help="Force cap at the instrument's tip [N] (default: 8, or as the config "
    "says): the console's page alarms and sounds at or above it, the patient's supervisor "
    "limits motion into contact beyond it. Give both sides the same.")]


def _zenoh(base: ZenohConfig, mode: str | None, listen: list[str] | None,
           connect: list[str] | None) -> dict[str, object]:
    data = base.model_dump()
    if mode is not None:
        data["mode"] = mode
    if listen:
        data["listen"] = listen
    if connect:
        data["connect"] = connect
    return data


def _section(base: BaseModel, **changes: object) -> dict[str, object]:
    data = base.model_dump()
    data.update({k: v for k, v in changes.items() if v is not None})
    return data


def patient(config: ConfigOpt = None, session: SessionOpt = None, listen: ListenOpt = None,
            connect: ConnectOpt = None, mode: ModeOpt = None, duration: DurationOpt = None,
            report: ReportOpt = None, log_level: LogOpt = "info", video: VideoOpt = None,
            record: Annotated[Path | None, typer.Option(
                "--record", help="Session directory for this node's signed audit trail "
                "(written to its audit/ folder).")] = None,
            identity: IdentityOpt = None, acl: AclOpt = None, crl: CrlOpt = None,
            insecure: InsecureOpt = False, force_cap: ForceCapOpt = None,
            policy: Annotated[Path | None, typer.Option(
                "--policy", help="The site's credential policy (TOML): the licensing "
                "authorities and jurisdictions accepted, by role.")] = None,
            checklist: Annotated[bool | None, typer.Option(
                "--checklist/--no-checklist", help="Enforce the pre-flight checklist: no "
                "remote surgeon drives until the bedside confirmed it (default: off, or as "
                "the config says).")] = None,
            confirmation: Annotated[Path | None, typer.Option(
                "--checklist-confirmation", help="The bedside's confirmation file, from "
                "'telesurgery checklist confirm' and 'override'.")] = None,
            probe_report: Annotated[list[Path] | None, typer.Option(
                "--probe-report", help="A 'probe --json' report qualifying the control "
                "paths (repeat).")] = None,
            foxglove: FoxgloveOpt = None,
            foxglove_identity: Annotated[Path | None, typer.Option(
                "--foxglove-identity", help="The recorder identity the --foxglove server "
                "joins a secure session with.")] = None, task: TaskOpt = None) -> None:
    """Run the patient-side node: simulated robot, safety supervisor, 1 kHz servo loop."""
    setup_logging(log_level)
    check_duration(duration)
    base = load(PatientConfig, config)
    cfg = load(PatientConfig, config, session=session,
               zenoh=_zenoh(base.zenoh, mode, listen, connect), record_dir=record,
               video=_section(base.video, enabled=video),
               safety=_section(base.safety, force_cap_n=force_cap),
               security=security_section(base.security, identity, acl, crl, insecure),
               policy=policy, task=task,
               checklist=_section(base.checklist, required=checklist,
                                  confirmation=confirmation, probe_reports=probe_report))
    from telesurgery.patient.node import PatientNode
    from telesurgery.robots.sim.robot import SimRobot
    from telesurgery.robots.sim.scene import task_layout

    # Before the node: the server's process must not inherit the real-time scheduling.
    live = None if foxglove is None else foxglove_beside(
        foxglove, cfg.session, cfg.zenoh.listen or cfg.zenoh.connect, cfg.security,
        foxglove_identity, log_level)
    robot = SimRobot(task_layout(cfg.task), cfg.safety.force_cap_n)
    try:
        out = PatientNode(cfg, robot).run(stop_on_signals(), duration)
    finally:
        robot.close()
        if live is not None:
            live.interrupt()
            live.wait(FOXGLOVE_STOP_TIMEOUT_S)
    if report is not None:
        write_json(report, out)


DeviceOpt = Annotated[str | None, typer.Option(
    help="autopilot, scripted, touch (the autopilot's hands on simulated haptic devices "
         "that display the force at the tips) or web (the console page's keyboard, mouse "
         "and gamepad).")]
TrajectoryOpt = Annotated[Path | None, typer.Option(help="Trajectory file for the scripted "
                                                    "device.")]
WebOpt = Annotated[bool | None, typer.Option(
    "--web/--no-web", help="Serve the console page on loopback (default: on).")]
WebPortOpt = Annotated[int | None, typer.Option(
    help="Port of the console page (default: any free port; the console prints the "
         "page URL with its secret).")]


def console(config: ConfigOpt = None, session: SessionOpt = None, listen: ListenOpt = None,
            connect: ConnectOpt = None, mode: ModeOpt = None, duration: DurationOpt = None,
            device: DeviceOpt = None, trajectory: TrajectoryOpt = None,
            report: ReportOpt = None, log_level: LogOpt = "info", video: VideoOpt = None,
            web: WebOpt = None, web_port: WebPortOpt = None,
            identity: IdentityOpt = None, acl: AclOpt = None, crl: CrlOpt = None,
            insecure: InsecureOpt = False, force_cap: ForceCapOpt = None,
            task: TaskOpt = None) -> None:
    """Run the surgeon console: input device, teleoperation mapping, 1 kHz commands, and the
    page with the endoscope video, the HUD (with the force at each tip against the force
    cap), keyboard/mouse/gamepad input and the button that asks the bedside for control."""
    _run_console("surgeon", config, session, listen, connect, mode, duration, device,
                 trajectory, report, log_level, video, web, web_port,
                 identity, acl, crl, insecure, force_cap=force_cap, task=task)


def backup(config: ConfigOpt = None, session: SessionOpt = None, listen: ListenOpt = None,
           connect: ConnectOpt = None, mode: ModeOpt = None, duration: DurationOpt = None,
           device: Annotated[str | None, typer.Option(
               help="web (default: the page's keyboard, mouse and gamepad), autopilot or "
               "scripted.")] = None,
           trajectory: TrajectoryOpt = None,
           report: ReportOpt = None, log_level: LogOpt = "info", video: VideoOpt = None,
           web: WebOpt = None, web_port: WebPortOpt = None,
           identity: IdentityOpt = None, acl: AclOpt = None, crl: CrlOpt = None,
           insecure: InsecureOpt = False, force_cap: ForceCapOpt = None,
           take_control: Annotated[bool, typer.Option(
               "--take-control", help="Take control as soon as the patient node is there "
               "and the command key is agreed.")] = False, task: TaskOpt = None) -> None:
    """Run the bedside backup console: the surgeon console's teleoperation, and control at
    once with one action (the page's Take control button, key T, the gamepad's Y, SIGUSR1
    or --take-control); it grants control back to a remote surgeon who asks. Needs a
    backup certificate."""
    _run_console("backup", config, session, listen, connect, mode, duration, device,
                 trajectory, report, log_level, video, web, web_port,
                 identity, acl, crl, insecure, take_control=take_control,
                 force_cap=force_cap, task=task)


def _run_console(role: Literal["surgeon", "backup"], config: Path | None, session: str | None,
                 listen: list[str] | None, connect: list[str] | None, mode: str | None,
                 duration: float | None, device: str | None, trajectory: Path | None,
                 report: Path | None, log_level: str, video: bool | None, web: bool | None,
                 web_port: int | None, identity: Path | None, acl: Path | None,
                 crl: Path | None, insecure: bool, *, take_control: bool = False,
                 force_cap: float | None = None, task: str | None = None) -> None:
    setup_logging(log_level)
    check_duration(duration)
    base = load(ConsoleConfig, config)
    if "role" in base.model_fields_set and base.role != role:
        verb = "console" if base.role == "surgeon" else "backup"
        raise ConfigError(f"{config} says role = {base.role!r}; run 'telesurgery {verb}' with "
                          "it, or change the role")
    if role == "backup" and device is None and "device" not in base.model_fields_set:
        # The bedside surgeon's hands are on the page; an autopilot there would be a surprise.
        device = "web"
    cfg = load(ConsoleConfig, config, session=session, role=role, device=device,
               trajectory=trajectory, force_cap_n=force_cap, task=task,
               zenoh=_zenoh(base.zenoh, mode, listen, connect),
               video=_section(base.video, enabled=video),
               web=_section(base.web, enabled=web, port=web_port),
               security=security_section(base.security, identity, acl, crl, insecure))
    from telesurgery.console.node import ConsoleNode
    from telesurgery.input.registry import make_device

    dev = make_device(cfg)
    try:
        node = ConsoleNode(cfg, dev)
        stop = stop_on_signals()
        # SIGUSR1 is the role's control action (a foot pedal, a script, the demo's drill).
        signal.signal(signal.SIGUSR1, lambda _signum, _frame: node.control_action())
        if take_control:
            node.take_control()
        out = node.run(stop, duration)
    finally:
        dev.close()
    if report is not None:
        write_json(report, out)


def router(listen: ListenOpt = None, log_level: LogOpt = "info",
           identity: IdentityOpt = None, acl: AclOpt = None, crl: CrlOpt = None,
           insecure: InsecureOpt = False) -> None:
    """Run a Zenoh router for a site (the demo starts one); with an identity of role
    router, it speaks mutual TLS and enforces the access control on its links."""
    setup_logging(log_level)
    from telesurgery.security.node import node_security
    from telesurgery.transport.session import open_session

    sec = node_security(load(SecurityConfig, None, **security_section(
        SecurityConfig(), identity, acl, crl, insecure)), "router")
    stop = stop_on_signals()
    cfg = load(ZenohConfig, None, mode="router", listen=listen or ["tcp/127.0.0.1:7447"])
    z = open_session(cfg, None if sec is None else sec.zenoh_settings())
    try:
        stop.wait()
    finally:
        z.close()


def register(app: typer.Typer) -> None:
    """Add ``patient``, ``console``, ``backup`` and ``router``."""
    app.command()(patient)
    app.command()(console)
    app.command()(backup)
    app.command()(router)
