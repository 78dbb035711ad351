"""The package's import graph: no library module imports a CLI module, and no two modules import each other.

Every ``import`` counts, at the top of a module or inside a function, except those under
``if TYPE_CHECKING:`` (annotations only, never run).
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "rlaif_uu"
CLI_ENTRY = {"rlaif_uu.cli", "rlaif_uu.__main__"}  # the console script and `python -m rlaif_uu`


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _runtime_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Import nodes outside ``if TYPE_CHECKING:`` blocks."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports (``from pkg import mod`` counts as importing ``pkg.mod``)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _runtime_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def test_the_graph_sees_the_package() -> None:
    graph = import_graph()
    assert "rlaif_uu.label.run" in graph["rlaif_uu.label.cli"]  # a CLI calls its stage's API
    assert "rlaif_uu.run.config" in graph["rlaif_uu.run.runner"]


def test_no_library_module_imports_a_cli_module() -> None:
    offenders = sorted(f"{a} imports {b}" for a, targets in import_graph().items() for b in targets
                       if b.rpartition(".")[2] == "cli" and a.rpartition(".")[2] != "cli" and a not in CLI_ENTRY)
    assert not offenders, "library code must call a stage's API, not its CLI: " + "; ".join(offenders)


def test_no_import_cycles() -> None:
    try:
        tuple(graphlib.TopologicalSorter(import_graph()).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")
