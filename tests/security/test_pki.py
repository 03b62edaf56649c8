"""The site PKI: issue, list, revoke, file permissions and the checks on every load."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from telesurgery.cli import pki as pki_cli
from telesurgery.errors import ConfigError
from telesurgery.security import (
    Pki,
    Role,
    acl_settings,
    common_name,
    load_acl_settings,
    parse_common_name,
    tls_settings,
)
from telesurgery.security.pki import Identity, check_key_permissions


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_issue_list_revoke_round_trip(tmp_path: Path) -> None:
    pki = Pki.init(tmp_path / "pki", "gemelli-rome")
    rossi = pki.issue(Role.SURGEON, "dr-rossi")
    pki.issue(Role.OBSERVER, "obs1")
    pki.issue(Role.ROBOT, "patient", hosts=["10.1.2.3", "psm.gemelli.example"])
    assert pki.site == "gemelli-rome"
    assert rossi.common_name == "surgeon:dr-rossi"
    assert [(c.common_name, c.status()) for c in pki.certificates()] == [
        ("surgeon:dr-rossi", "valid"), ("observer:obs1", "valid"), ("robot:patient", "valid")]
    assert pki.roster() == {Role.SURGEON: ["surgeon:dr-rossi"],
                            Role.OBSERVER: ["observer:obs1"], Role.ROBOT: ["robot:patient"]}

    cert = x509.load_pem_x509_certificate(pki.identity(Role.ROBOT, "patient")
                                          .certificate.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "psm.gemelli.example" in san.get_values_for_type(x509.DNSName)
    assert {str(a) for a in san.get_values_for_type(x509.IPAddress)} >= {"10.1.2.3",
                                                                         "127.0.0.1"}
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)

    revoked = pki.revoke(Role.OBSERVER, "obs1")
    assert [c.common_name for c in revoked] == ["observer:obs1"]
    assert revoked[0].revoked_at is not None
    crl = x509.load_pem_x509_crl(pki.crl_path.read_bytes())
    ca_key = pki.ca_cert.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    assert crl.is_signature_valid(ca_key)
    assert crl.get_revoked_certificate_by_serial_number(revoked[0].serial) is not None
    assert Role.OBSERVER not in pki.roster()
    assert {c.common_name: c.status() for c in pki.certificates()}["observer:obs1"] == "revoked"
    with pytest.raises(ConfigError, match="revoked"):
        pki.identity(Role.OBSERVER, "obs1")
    with pytest.raises(ConfigError, match="already revoked"):
        pki.revoke(Role.OBSERVER, "obs1")
    with pytest.raises(ConfigError, match="new name"):
        pki.issue(Role.OBSERVER, "obs1")
    pki.issue(Role.OBSERVER, "obs1-2")
    assert pki.roster()[Role.OBSERVER] == ["observer:obs1-2"]


def test_renewal_keeps_the_name_and_revocation_covers_every_certificate(
        tmp_path: Path) -> None:
    pki = Pki.init(tmp_path / "pki", "site")
    pki.issue(Role.SURGEON, "dr-rossi")
    pki.issue(Role.SURGEON, "dr-rossi")
    assert pki.roster() == {Role.SURGEON: ["surgeon:dr-rossi"]}
    assert len(pki.revoke(Role.SURGEON, "dr-rossi")) == 2
    assert pki.roster() == {}


def test_keys_are_private_from_creation(tmp_path: Path) -> None:
    old = os.umask(0)  # the widest umask: permissions must not depend on it
    try:
        pki = Pki.init(tmp_path / "pki", "site")
        ident = pki.issue(Role.BACKUP, "bedside")
    finally:
        os.umask(old)
    assert _mode(pki.ca_key_path) == 0o600
    assert _mode(pki.ca_key_path.parent) == 0o700
    assert _mode(ident.private_key) == 0o600
    assert _mode(ident.private_key.parent) == 0o700
    assert _mode(ident.certificate) == 0o644


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o700 | 0o004])
def test_key_readable_by_others_is_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    pki = Pki.init(tmp_path / "pki", "site")
    ident = pki.issue(Role.SURGEON, "dr-rossi")
    ident.private_key.chmod(mode)
    with pytest.raises(ConfigError, match=rf"chmod 600 {ident.private_key}$"):
        Identity.from_dir(ident.certificate.parent)
    with pytest.raises(ConfigError, match="chmod 600"):
        tls_settings(ident)  # checked again when handed to Zenoh, which reads it by path
    pki.ca_key_path.chmod(mode)
    with pytest.raises(ConfigError, match=rf"chmod 600 {pki.ca_key_path}$"):
        pki.issue(Role.SURGEON, "dr-bianchi")
    ident.private_key.chmod(0o600)
    pki.ca_key_path.chmod(0o600)
    assert tls_settings(Identity.from_dir(ident.certificate.parent))
    pki.issue(Role.SURGEON, "dr-bianchi")


def test_missing_key_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pki issue"):
        check_key_permissions(tmp_path / "key.pem")


def test_identity_checks_key_pair_and_issuer(tmp_path: Path) -> None:
    site = Pki.init(tmp_path / "site", "site")
    other = Pki.init(tmp_path / "other", "other")
    mine = site.issue(Role.SURGEON, "dr-rossi").certificate.parent
    theirs = other.issue(Role.SURGEON, "dr-rossi").certificate.parent

    mixed = tmp_path / "mixed"
    shutil.copytree(mine, mixed)
    shutil.copy2(theirs / "key.pem", mixed / "key.pem")
    with pytest.raises(ConfigError, match="is not the key of"):
        Identity.from_dir(mixed)

    foreign = tmp_path / "foreign"
    shutil.copytree(theirs, foreign)
    shutil.copy2(mine / "ca.pem", foreign / "ca.pem")
    with pytest.raises(ConfigError, match="not issued by the site CA"):
        Identity.from_dir(foreign)
    with pytest.raises(ConfigError, match="not signed by the site CA"):
        Identity.from_dir(mine, crl=other.crl_path)
    assert Identity.from_dir(mine, crl=site.crl_path).common_name == "surgeon:dr-rossi"


def test_encrypted_ca_key_needs_its_passphrase(tmp_path: Path) -> None:
    pki = Pki.init(tmp_path / "pki", "site", passphrase=b"correct horse")
    assert b"ENCRYPTED" in pki.ca_key_path.read_bytes()
    with pytest.raises(ConfigError, match="TELESURGERY_CA_PASSPHRASE"):
        pki.issue(Role.SURGEON, "dr-rossi")
    with pytest.raises(ConfigError, match="wrong passphrase"):
        pki.issue(Role.SURGEON, "dr-rossi", passphrase=b"battery staple")
    pki.issue(Role.SURGEON, "dr-rossi", passphrase=b"correct horse")
    pki.revoke(Role.SURGEON, "dr-rossi", passphrase=b"correct horse")
    assert pki.roster() == {}


def test_bad_names_and_places_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a telesurgery PKI"):
        Pki(tmp_path)
    pki = Pki.init(tmp_path / "pki", "site")
    with pytest.raises(ConfigError, match="already holds a site CA"):
        Pki.init(tmp_path / "pki", "site")
    for bad in ("", "Dr-Rossi", "dr rossi", "dr/rossi", "surgeon:x", "-x", "x" * 64):
        with pytest.raises(ConfigError, match="is not valid"):
            pki.issue(Role.SURGEON, bad)
    with pytest.raises(ConfigError, match="no identity surgeon:nobody"):
        pki.identity(Role.SURGEON, "nobody")
    with pytest.raises(ConfigError, match="no certificate was issued"):
        pki.revoke(Role.SURGEON, "nobody")
    with pytest.raises(ConfigError, match="use one of surgeon, backup"):
        parse_common_name("pilot:x")


@given(st.sampled_from(list(Role)), st.from_regex(r"[a-z0-9][a-z0-9._-]{0,62}",
                                                   fullmatch=True))
def test_common_name_round_trips(role: Role, name: str) -> None:
    assert parse_common_name(common_name(role, name)) == (role, name)


def test_cli_round_trip(tmp_path: Path) -> None:
    import typer

    app = typer.Typer()
    pki_cli.register(app)
    root = str(tmp_path / "pki")
    runner = CliRunner()
    steps = [["pki", "init", root, "--site", "gemelli-rome"],
             ["pki", "issue", root, "--role", "surgeon", "--name", "dr-rossi"],
             ["pki", "issue", root, "--role", "observer", "--name", "obs1"],
             ["pki", "revoke", root, "--role", "observer", "--name", "obs1"]]
    for args in steps:
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    listing = runner.invoke(app, ["pki", "list", root, "--json", str(tmp_path / "l.json")])
    assert "surgeon:dr-rossi" in listing.output
    assert "revoked" in listing.output
    assert '"status": "revoked"' in (tmp_path / "l.json").read_text()
    runner.invoke(app, ["pki", "acl", root, "--session", "or1", "--out", str(tmp_path / "a")])
    assert load_acl_settings(tmp_path / "a") == acl_settings("or1", Pki(Path(root)).roster())
    acl = runner.invoke(app, ["pki", "acl", root, "--session", "or1"])
    assert '"surgeon:dr-rossi"' in acl.output
    assert "observer:obs1" not in acl.output


def test_cli_error_is_one_line_and_status_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "telesurgery", "pki", "issue", str(tmp_path), "--role",
         "surgeon", "--name", "dr-rossi"], capture_output=True, text=True, timeout=120,
        check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "is not a telesurgery PKI" in proc.stderr
