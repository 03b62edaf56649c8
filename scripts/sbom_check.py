"""Checks CI's CycloneDX SBOM against requirements.lock (docs/soup.md).

Fails when a locked package is missing from the SBOM, has no version there, or a version
other than the locked one: the SBOM must describe what the README's commands installed.
Fails too when a package declares no licence at all and is not in REVIEWED_LICENCES: a
person has to find its licence before it ships. Licences given only as a name (usually a
trove classifier such as "BSD License", which does not say which BSD) are listed but pass.

    python scripts/sbom_check.py [out/sbom.cdx.json] [requirements.lock]
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent

# Packages whose metadata declares no licence, with the licence a person found upstream
# (normalised name -> SPDX expression, and where it was read). Empty while every locked
# package declares one.
REVIEWED_LICENCES: dict[str, str] = {}

_LOCK_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def normalise(name: str) -> str:
    """The package name as PyPI compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(lock: Path) -> dict[str, str]:
    """Name -> pinned version, for every package in a pip-compile lock."""
    pins: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        m = _LOCK_PIN.match(line)
        if m:
            pins[normalise(m[1])] = m[2]
    return pins


def licence_kind(component: dict[str, Any]) -> str:
    """'spdx' (an SPDX id or expression), 'name' (free text only) or 'none'."""
    entries = component.get("licenses") or []
    if any("expression" in e or "id" in e.get("license", {}) for e in entries):
        return "spdx"
    if any(e.get("license", {}).get("name") for e in entries):
        return "name"
    return "none"


def runtime_closure() -> set[str]:
    """Names reached from pyproject's [project].dependencies, extras left out.

    Read from the installed metadata rather than the SBOM's graph, which also follows the
    extras of a package (scipy's test extra leads to pytest) whenever they happen to be
    installed. Run it with .venv's Python.
    """
    with (ROOT / "pyproject.toml").open("rb") as f:
        todo = [Requirement(r) for r in tomllib.load(f)["project"]["dependencies"]]
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        name = normalise(req.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            continue
        active = [{"extra": e} for e in ("", *req.extras)]
        for child in map(Requirement, requires):
            if child.marker is None or any(child.marker.evaluate(env) for env in active):
                todo.append(child)
    return seen


def main(argv: list[str]) -> int:
    sbom_path = Path(argv[1]) if len(argv) > 1 else ROOT / "out" / "sbom.cdx.json"
    lock_path = Path(argv[2]) if len(argv) > 2 else ROOT / "requirements.lock"
    sbom = json.loads(sbom_path.read_text())
    components = {normalise(c["name"]): c for c in sbom.get("components", [])}
    pins = locked(lock_path)

    errors: list[str] = []
    for name, version in sorted(pins.items()):
        c = components.get(name)
        if c is None:
            errors.append(f"{name}=={version}: locked but not in the SBOM")
        elif not c.get("version"):
            errors.append(f"{name}: in the SBOM without a version")
        elif c["version"] != version:
            errors.append(f"{name}: the SBOM has {c['version']}, the lock pins {version}")

    kinds = {n: licence_kind(components[n]) for n in pins if n in components}
    unknown = sorted(n for n, k in kinds.items() if k == "none")
    named = sorted(n for n, k in kinds.items() if k == "name")
    errors += [f"{n}: declares no licence; find it upstream and add it to REVIEWED_LICENCES"
               for n in unknown if n not in REVIEWED_LICENCES]
    for n in unknown:
        if n in REVIEWED_LICENCES:
            print(f"sbom: {n}: no licence in its metadata; reviewed: {REVIEWED_LICENCES[n]}")
    for n in named:
        texts = "; ".join(e["license"]["name"] for e in components[n]["licenses"]
                          if e.get("license", {}).get("name"))
        print(f"sbom: {n}: licence by name only, not an SPDX id: {texts}")

    runtime = runtime_closure() & set(pins)
    extra = sorted(set(components) - set(pins))
    print(f"sbom: {len(components)} components; {len(pins)} locked packages, "
          f"{len(runtime)} of them reached from the runtime dependencies, the rest test "
          f"or build tools; {len(unknown)} without a licence, {len(named)} with a licence "
          f"by name only; not locked: {', '.join(extra) or 'none'}")
    for e in errors:
        print(f"sbom: error: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
