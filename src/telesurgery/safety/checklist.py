"""The pre-flight checklist: what must hold before a remote surgeon may drive the robot.

Modelled on the WHO Surgical Safety Checklist's "sign in" before induction (each item
checked aloud, the team lead confirming) and on Japan's 2022 telesurgery guidelines,
which ask for a surgeon at the patient's side, a secured line and a clear allocation of
responsibility (see ``docs/security.md``). Items (:class:`Item`):

- ``link``: every control path qualified GO by ``telesurgery probe`` within the site's
  limit (minutes);
- ``bedside``: a bedside (``backup``) console present, its operator identified by the
  certificate that agreed its command key;
- ``credential``: the remote surgeon's licence accepted by the site's credential policy;
- ``recording``: the signed audit trail written and a recorder present;
- ``video``: the endoscope stream reaching the surgeon.

Each item is ``go`` or ``no_go`` from what the patient node observes, or ``overridden``:
a failed item the bedside lead overrode with a written reason. The list is **cleared**
once the bedside lead confirmed it and every item is ``go`` or ``overridden``; until
then the patient node refuses control to every surgeon console (the bedside console
may still drive: it is the surgeon at the patient's side). Pure values and one
function, no I/O: the patient node gathers the observations (``patient.checklist``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass


class Item(enum.StrEnum):
    """One item of the checklist, in the order it is read out."""

    LINK = "link"
    BEDSIDE = "bedside"
    CREDENTIAL = "credential"
    RECORDING = "recording"
    VIDEO = "video"


ITEM_TEXT: Mapping[Item, str] = {
    Item.LINK: "each control path qualified GO by probe",
    Item.BEDSIDE: "a bedside console present, its operator identified",
    Item.CREDENTIAL: "the surgeon's credential accepted by the site's policy",
    Item.RECORDING: "audit trail and recording on",
    Item.VIDEO: "the video reaching the surgeon",
}
"""What each item asks, as the bedside page and the report show it."""


class ItemState(enum.StrEnum):
    """An item's state."""

    GO = "go"
    NO_GO = "no_go"
    OVERRIDDEN = "overridden"


@dataclass(frozen=True, slots=True)
class Observation:
    """What the patient node sees of one item: whether it holds, and why in words."""

    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Confirmation:
    """What the bedside lead said: who confirmed the list (None: nobody yet) and the
    failed items overridden, each with its written reason."""

    confirmed_by: str | None = None
    overrides: Mapping[Item, str] | None = None

    def reason(self, item: Item) -> str | None:
        """The written reason ``item`` is overridden with (None: not overridden)."""
        return None if self.overrides is None else self.overrides.get(item)


@dataclass(frozen=True, slots=True)
class ItemResult:
    """One item as evaluated: its state, the observation's words, and the override's
    reason when it was overridden."""

    item: Item
    state: ItemState
    detail: str
    reason: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        """JSON-ready (the status, the summary and the audit trail)."""
        return {"item": self.item.value, "text": ITEM_TEXT[self.item],
                "state": self.state.value, "detail": self.detail, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Checklist:
    """The checklist as evaluated once."""

    items: tuple[ItemResult, ...]
    confirmed_by: str | None

    @property
    def cleared(self) -> bool:
        """Confirmed by the bedside lead, and every item ``go`` or ``overridden``."""
        return self.confirmed_by is not None and all(
            r.state is not ItemState.NO_GO for r in self.items)

    @property
    def blocking(self) -> tuple[Item, ...]:
        """The items that are ``no_go``."""
        return tuple(r.item for r in self.items if r.state is ItemState.NO_GO)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: ``items``, ``confirmed_by``, ``cleared``."""
        return {"items": [r.as_dict() for r in self.items], "confirmed_by": self.confirmed_by,
                "cleared": self.cleared}


def evaluate(observed: Mapping[Item, Observation], confirmation: Confirmation) -> Checklist:
    """Each item's state from what is ``observed`` (an item not observed is ``no_go``) and
    the bedside's ``confirmation``: an override turns only a failed item ``overridden``,
    a passing item stays ``go``."""
    results = []
    for item in Item:
        seen = observed.get(item, Observation(False, "not observed"))
        reason = confirmation.reason(item)
        if seen.ok:
            results.append(ItemResult(item, ItemState.GO, seen.detail))
        elif reason:
            results.append(ItemResult(item, ItemState.OVERRIDDEN, seen.detail, reason))
        else:
            results.append(ItemResult(item, ItemState.NO_GO, seen.detail))
    return Checklist(tuple(results), confirmation.confirmed_by)


__all__ = ["ITEM_TEXT", "Checklist", "Confirmation", "Item", "ItemResult", "ItemState",
           "Observation", "evaluate"]
