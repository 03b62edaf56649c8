"""The pre-flight checklist's rule (issue 19): pure, every combination of the items."""

from __future__ import annotations

import itertools

import pytest

from telesurgery.config import CHECKLIST_ITEMS
from telesurgery.safety.checklist import (
    Confirmation,
    Item,
    ItemState,
    Observation,
    evaluate,
)

REASON = "the bedside surgeon is scrubbed in and holds the instruments"


def test_the_config_names_the_same_items() -> None:
    assert tuple(i.value for i in Item) == CHECKLIST_ITEMS


@pytest.mark.parametrize("passing", list(itertools.product((True, False), repeat=len(Item))))
def test_cleared_only_when_confirmed_and_every_failed_item_overridden(
        passing: tuple[bool, ...]) -> None:
    observed = {i: Observation(ok, "seen") for i, ok in zip(Item, passing, strict=True)}
    failed = [i for i, ok in zip(Item, passing, strict=True) if not ok]
    assert evaluate(observed, Confirmation()).cleared is False
    confirmed = evaluate(observed, Confirmation("sister-chen"))
    assert confirmed.cleared is (not failed)
    assert confirmed.blocking == tuple(failed)
    overridden = evaluate(observed, Confirmation("sister-chen", dict.fromkeys(failed, REASON)))
    assert overridden.cleared
    assert {r.item for r in overridden.items if r.state is ItemState.OVERRIDDEN} == set(failed)
    assert all(r.reason == REASON for r in overridden.items if r.item in failed)


def test_an_override_leaves_a_passing_item_go_and_an_unobserved_item_fails() -> None:
    observed = {Item.LINK: Observation(True, "GO")}
    checklist = evaluate(observed, Confirmation("lead", {Item.LINK: REASON}))
    states = {r.item: r.state for r in checklist.items}
    assert states[Item.LINK] is ItemState.GO
    assert all(states[i] is ItemState.NO_GO for i in Item if i is not Item.LINK)
    assert checklist.as_dict()["cleared"] is False
    assert [r.item.value for r in checklist.items] == list(CHECKLIST_ITEMS)
