"""The package's shape, read from its source: floors of the data flow, no import cycle, small files.

The floors are the ones written in ``circuits/ARCHITECTURE.md`` (its ``floors`` block), so the page
and the code cannot drift apart: a room may import its own modules and rooms on lower floors only.
Imports under ``if TYPE_CHECKING:`` are annotations, not dependencies, and are not counted.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "circuits"
MAX_LINES = 450
MAX_FMT_SKIPS = 30


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in PACKAGE.rglob("*.py")}


def _room(module: str) -> str:
    """``circuits.jobs.job`` -> ``jobs``; the facade ``circuits`` is its own room."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "circuits"


def floors() -> dict[str, int]:
    """Room -> floor, from the ``floors`` block of ARCHITECTURE.md (one floor a line, lowest first)."""
    text = (PACKAGE / "ARCHITECTURE.md").read_text(encoding="utf-8")
    block = re.search(r"```floors\n(.*?)```", text, re.S)
    assert block, "ARCHITECTURE.md has no ```floors block"
    table = {}
    for number, line in enumerate(block.group(1).strip().splitlines()):
        for room in line.split(":", 1)[1].split():
            table[room] = number
    return table


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(path: Path) -> set[str]:
    """The package modules ``path`` imports anywhere (functions included), except for type checking."""
    found: set[str] = set()
    stack: list[ast.AST] = [ast.parse(path.read_text(encoding="utf-8"))]
    while stack:
        for node in ast.iter_child_nodes(stack.pop()):
            if _is_type_checking(node):
                continue
            stack.append(node)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "circuits":
                subs = {f"{node.module}.{a.name}" for a in node.names} & MODULES.keys()
                found |= subs | ({node.module} if len(subs) < len(node.names) else set())
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name in MODULES}
    return found


GRAPH = nx.DiGraph([(m, t) for m, p in MODULES.items() for t in imports(p) if t != m and t in MODULES])


def test_every_room_has_a_floor() -> None:
    rooms = {_room(m) for m in MODULES}
    assert rooms - floors().keys() == set(), "rooms missing from ARCHITECTURE.md's floors block"
    assert floors().keys() - rooms == set(), "floors block names rooms that do not exist"


def test_no_import_runs_back_up_a_floor() -> None:
    table = floors()
    backwards = sorted(
        f"{a} (floor {table[_room(a)]}) imports {b} (floor {table[_room(b)]})"
        for a, b in GRAPH.edges
        if _room(a) != _room(b) and table[_room(b)] >= table[_room(a)]
    )
    assert backwards == []


def test_no_import_cycle() -> None:
    cycles = [sorted(c) for c in nx.strongly_connected_components(GRAPH) if len(c) > 1]
    assert cycles == []


def test_the_checks_can_fail() -> None:
    """The floor rule sees a planted backward import and the cycle finder a planted cycle."""
    table = floors()
    assert table["vocab"] < table["graph"] < table["attribution"] < table["jobs"] < table["cli"]
    planted = GRAPH.copy()
    planted.add_edge("circuits.vocab", "circuits.graph")
    assert any(len(c) > 1 for c in nx.strongly_connected_components(planted))


@pytest.mark.parametrize("folder", ["circuits", "tests", "examples"])
def test_files_are_small(folder: str) -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in (ROOT / folder).rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}, f"files over {MAX_LINES} lines"


def test_the_formatter_owns_the_layout() -> None:
    skips = sum(
        p.read_text(encoding="utf-8").count("# fmt: skip")
        for folder in ("circuits", "tests", "examples")
        for p in (ROOT / folder).rglob("*.py")
    )
    assert skips <= MAX_FMT_SKIPS
