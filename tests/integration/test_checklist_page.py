"""The bedside page shows the pre-flight checklist and the bedside lead confirms it there
(issue 19): a real patient node enforcing a checklist nobody has confirmed, a real
bedside console (``telesurgery backup``) serving its page, and headless Chromium.

The page lists each item with its state; the lead types a reason and overrides each
failed item, then confirms; the patient node clears the list under the bedside console's
certificate name and audits each override with its reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from telesurgery.config import ChecklistConfig
from telesurgery.demo.processes import NodeProcess, free_port
from telesurgery.demo.run import DEMO_BACKUP, DEMO_MEMBERS_WITH_BACKUP
from telesurgery.patient.node import PatientNode
from telesurgery.security.node import throwaway_site
from telesurgery.security.pki import Role

from ..serving import patient_config, serving
from ..waiting import wait_until

SESSION = "or1"
WAIT_S = 60.0
BEDSIDE = f"backup:{DEMO_BACKUP}"
REASON = "tested on loopback: no {} in this rig"


@pytest.fixture
def bedside(tmp_path: Path) -> Iterator[tuple[PatientNode, NodeProcess]]:
    site = throwaway_site(tmp_path / "security", SESSION, DEMO_MEMBERS_WITH_BACKUP)
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    cfg = patient_config(SESSION, endpoint, site.config(Role.ROBOT, "patient"),
                         record_dir=tmp_path / "session").model_copy(
        update={"checklist": ChecklistConfig(required=True)})
    with serving(cfg, "patient-for-the-bedside-page") as (node, check):
        backup = NodeProcess("backup", ["backup", "--session", SESSION, "--no-video",
                                        "--mode", "peer", "--connect", endpoint,
                                        "--device", "web", "--web-port", "0",
                                        *site.args(Role.BACKUP, DEMO_BACKUP)], tmp_path)
        backup.start()
        try:
            def served() -> bool:
                check()
                assert backup.alive(), backup.last_log_line()
                return backup.page_url() is not None

            wait_until(served, "the bedside console's page", WAIT_S)
            yield node, backup
        finally:
            backup.interrupt()
            backup.wait(15.0)


def _trail(node: PatientNode) -> list[dict[str, Any]]:
    assert node.audit is not None
    return [json.loads(line) for line in node.audit.path.read_text().splitlines()]


def test_the_bedside_page_shows_the_checklist_and_confirms_it(
        bedside: tuple[PatientNode, NodeProcess], browser: Any) -> None:
    node, backup = bedside
    url = backup.page_url()
    assert url is not None
    page = browser.new_page()
    try:
        timeout_ms = WAIT_S * 1000
        page.goto(url)
        page.wait_for_selector("#checklist li[data-item='bedside'][data-state='go']",
                               timeout=timeout_ms)
        # The bedside's buttons, once the page knows its role (its hello).
        page.wait_for_selector("#checklist-confirm:visible", timeout=timeout_ms)
        failed = page.eval_on_selector_all(
            "#checklist li[data-state='no_go']", "els => els.map(e => e.dataset.item)")
        assert set(failed) == {"link", "credential", "recording", "video"}
        assert "blocking" in str(page.text_content("#checklist-state"))
        for item in failed:
            page.fill("#override-reason", REASON.format(item))
            page.click(f"#checklist li[data-item='{item}'] button")
            page.wait_for_selector(f"#checklist li[data-item='{item}'][data-state='overridden']",
                                   timeout=timeout_ms)
        assert node.checklist is not None
        assert not node.checklist.cleared  # overridden, not yet confirmed
        page.click("#checklist-confirm")
        page.wait_for_function("document.getElementById('checklist-state').textContent"
                               f".startsWith('cleared, confirmed by {BEDSIDE}')",
                               timeout=timeout_ms)
    finally:
        page.close()
    assert node.checklist.cleared
    overrides = {r["data"]["item"]: r["data"] for r in _trail(node)
                 if r["kind"] == "checklist_override"}
    assert set(overrides) == set(failed)
    for item, data in overrides.items():
        assert data["reason"] == REASON.format(item)
        assert data["by"] == BEDSIDE
