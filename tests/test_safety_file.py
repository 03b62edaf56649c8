"""docs/safety.md stays true to the code: every hazard names tests that exist, modules that
exist and bench faults that run."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

from telesurgery.bench.faults.inject import FAULTS

ROOT = Path(__file__).resolve().parents[1]
SAFETY = ROOT / "docs" / "safety.md"
TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
MODULE_REF = re.compile(r"`([\w/]+\.py)`")
REQUIRED = ("communication", "stale", "unintended motion", "motion after a hold",
            "video frozen", "clock step", "wrong console", "excessive force", "disk full")
"""The hazards the file must cover (words of their titles, lower case)."""


def hazards() -> dict[str, str]:
    """Each ``### H<n>.`` section's title and text."""
    parts = re.split(r"^### (H\d+\..*)$", SAFETY.read_text(encoding="utf-8"), flags=re.M)
    return {title: body.split("\n## ")[0] for title, body in zip(parts[1::2], parts[2::2],
                                                                    strict=True)}


@cache
def functions(path: str) -> frozenset[str]:
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    return frozenset(n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef))


def test_the_file_covers_every_hazard_the_brief_lists() -> None:
    titles = " ".join(hazards()).lower()
    assert [w for w in REQUIRED if w not in titles] == []


def test_every_hazard_is_verified_by_tests_that_exist() -> None:
    found = hazards()
    assert len(found) >= len(REQUIRED)
    for title, body in found.items():
        verified = body.split("**Verified by:**", 1)
        assert len(verified) == 2, f"{title}: no 'Verified by'"
        refs = TEST_REF.findall(verified[1].split("**Residual risk:**")[0])
        assert refs, f"{title}: names no test"
    for path, name in TEST_REF.findall(SAFETY.read_text(encoding="utf-8")):
        assert (ROOT / path).is_file(), f"docs/safety.md names {path}, which is gone"
        assert name in functions(path), f"docs/safety.md names {path}::{name}, which is gone"


def test_every_module_and_bench_fault_named_exists() -> None:
    text = SAFETY.read_text(encoding="utf-8")
    for path in MODULE_REF.findall(text):
        if not path.startswith("tests/"):
            assert (ROOT / "src" / "telesurgery" / path).is_file(), (
                f"docs/safety.md names {path}, which is not under src/telesurgery")
    names = {f.name for f in FAULTS}
    for body in hazards().values():
        for line in re.findall(r"bench faults? ([^\n]*)", body):
            for fault in re.findall(r"`(\w+)`", line):
                assert fault in names, f"docs/safety.md names bench fault {fault!r}"
