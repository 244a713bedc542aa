"""The packages form floors: a module imports its own floor and the floors below, never above.

Read from the source (every import statement, function-level ones included). The known
exceptions are listed with their reason; each must still exist, so fixing one removes it here.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FLOORS = ("configs", "features", "models", "serving", "pipelines", "monitoring", "benchmarks")
KNOWN_UPWARD: dict[tuple[str, str], str] = {}


def upward_imports() -> dict[tuple[str, str], set[str]]:
    edges: dict[tuple[str, str], set[str]] = defaultdict(set)
    for floor, package in enumerate(FLOORS):
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top in FLOORS and FLOORS.index(top) > floor:
                        edges[(package, top)].add(f"{path.relative_to(REPO)}: {module}")
    return edges


def test_no_import_runs_up_a_floor_beyond_the_known_ones():
    edges = upward_imports()
    new = {edge: sorted(where) for edge, where in edges.items() if edge not in KNOWN_UPWARD}
    assert not new, f"imports from a lower floor to a higher one: {new}"
    fixed = set(KNOWN_UPWARD) - set(edges)
    assert not fixed, f"no longer imported upward, remove from KNOWN_UPWARD: {fixed}"
