"""The checklist on the console's side (issue 19): the page's ``checklist`` messages and the
checklist in the patient's owner announcement, bad input refused with a reason."""

from __future__ import annotations

import json
from typing import Any

import pytest

from telesurgery.console.control import OwnerView
from telesurgery.console.web.protocol import MAX_REASON_CHARS, PageChecklist, parse
from telesurgery.errors import CodecError, CodecReason

CHECKLIST = {"required": True, "cleared": False, "confirmed_by": None,
             "items": [{"item": "bedside", "state": "no_go"}]}


def test_the_page_confirms_and_overrides() -> None:
    assert parse(json.dumps({"t": "checklist", "a": "confirm"})) == PageChecklist("confirm")
    msg = parse(json.dumps({"t": "checklist", "a": "override", "item": "link",
                            "reason": "qualified by telephone"}))
    assert msg == PageChecklist("override", "link", "qualified by telephone")
    assert isinstance(msg, PageChecklist)
    assert msg.as_dict() == {"action": "override", "item": "link",
                             "reason": "qualified by telephone"}


@pytest.mark.parametrize("obj", [
    {"a": "approve"},
    {"a": "override", "reason": "no item named here"},
    {"a": "override", "item": "", "reason": "an empty item"},
    {"a": "override", "item": "link"},
    {"a": "override", "item": "link", "reason": ""},
    {"a": "override", "item": "link", "reason": "x" * (MAX_REASON_CHARS + 1)},
    {"a": "override", "item": ["link"], "reason": "a list for an item"},
])
def test_bad_checklist_messages_say_what_is_wrong(obj: dict[str, Any]) -> None:
    with pytest.raises(CodecError) as info:
        parse(json.dumps({"t": "checklist", **obj}))
    assert info.value.reason is CodecReason.BAD_FIELD


def test_the_owner_announcement_carries_the_checklist_or_none() -> None:
    base: dict[str, Any] = {"owner": None, "reason": "nobody yet", "handovers": 0,
                            "requests": []}
    view = OwnerView.parse(base | {"checklist": CHECKLIST})
    assert view.checklist == CHECKLIST
    assert view.as_dict(1)["checklist"] == CHECKLIST
    assert OwnerView.parse(base).checklist is None
    for bad in ("cleared", {"items": "bedside"}):
        with pytest.raises(CodecError):
            OwnerView.parse(base | {"checklist": bad})
