"""``telesurgery backup`` and ``console`` run only with a certificate of their own role."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from telesurgery.security.node import DEMO_MEMBERS, Site, throwaway_site
from telesurgery.security.pki import Role


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    root = tmp_path_factory.mktemp("site")
    return throwaway_site(root, "or1", {**DEMO_MEMBERS, Role.BACKUP: ("bedside-team",)})


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "telesurgery", *args, "--no-video",
                           "--no-web", "--device", "autopilot", "--duration", "5",
                           "--log-level", "error"], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.mark.parametrize(
    ("verb", "role", "name", "message"),
    [
        ("backup", Role.SURGEON, "dr-rossi",
         "the backup console needs a backup certificate, but its identity is "
         "surgeon:dr-rossi; issue one with 'telesurgery pki issue PKI --role backup"),
        ("console", Role.BACKUP, "bedside-team",
         "the surgeon console needs a surgeon certificate, but its identity is "
         "backup:bedside-team"),
        ("backup", Role.OBSERVER, "observer", "but its identity is observer:observer"),
    ],
)
def test_a_certificate_of_another_role_is_one_line(site: Site, tmp_path: Path, verb: str,
                                                   role: Role, name: str,
                                                   message: str) -> None:
    result = _run(verb, *site.args(role, name), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("telesurgery: error: ")
    assert message in lines[0]


def test_a_config_of_the_other_role_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "bedside.toml").write_text('role = "backup"\n', encoding="utf-8")
    result = _run("console", "--config", "bedside.toml", "--insecure", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == ("telesurgery: error: bedside.toml says role = 'backup'; "
                                     "run 'telesurgery backup' with it, or change the role")
