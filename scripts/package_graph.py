"""Print which top-level packages of telesurgery import which, and any cycles between them.

Run from a checkout: ``.venv/bin/python scripts/package_graph.py [src-dir]``. Reads the
import graph with grimp (the library behind import-linter), so it sees what CI checks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import grimp


def _loops(edges: dict[str, list[str]]) -> list[list[str]]:
    """The sets of two or more packages that all reach one another (strongly connected)."""
    reach = {a: set(bs) for a, bs in edges.items()}
    changed = True
    while changed:
        changed = False
        for mine in reach.values():
            more = set().union(*(reach[b] for b in mine)) - mine
            if more:
                mine.update(more)
                changed = True
    loops = {tuple(sorted({a} | {b for b in reach[a] if a in reach[b]}))
             for a in reach if any(a in reach[b] for b in reach[a])}
    return [list(loop) for loop in sorted(loops)]


def main() -> int:
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "src").resolve()
    sys.path.insert(0, str(src))
    graph = grimp.build_graph("telesurgery", cache_dir=None)
    tops = sorted(m for m in graph.find_children("telesurgery"))
    edges = {a: sorted(b for b in tops if b != a
                       and graph.direct_import_exists(importer=a, imported=b,
                                                      as_packages=True))
             for a in tops}
    for a in tops:
        print(f"{a.removeprefix('telesurgery.'):>10} -> "
              + ", ".join(b.removeprefix("telesurgery.") for b in edges[a]))
    loops = _loops(edges)
    print(f"\n{len(loops)} import loops between top-level packages"
          + "".join("\n  " + " ".join(m.removeprefix("telesurgery.") for m in loop)
                    for loop in loops))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
