"""The toolkit stands alone: it imports nothing from a generated project, and no module cycles."""

import ast
from pathlib import Path

import lockstep

PACKAGE = Path(lockstep.__file__).parent


def imports() -> dict[str, set[str]]:
    """For every lockstep module, the lockstep modules it imports (at any depth of its code)."""
    graph = {}
    for path in sorted(PACKAGE.glob("*.py")):
        name = path.stem
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lockstep"):
                parts = node.module.split(".")
                found |= {parts[1]} if len(parts) > 1 else {alias.name for alias in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("lockstep.")}
        graph[name] = found - {name}
    return graph


def test_no_import_cycles() -> None:
    graph = imports()

    def visit(module: str, path: tuple[str, ...]) -> None:
        for dep in graph.get(module, ()):
            assert dep not in path, f"import cycle: {' -> '.join((*path, dep))}"
            visit(dep, (*path, dep))

    for module in graph:
        visit(module, (module,))
    assert graph["cli"] and graph["registry"]  # the graph was read, not empty


def test_nothing_is_imported_from_a_project() -> None:
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                assert "cookiecutter" not in name and "stages" not in name.split("."), f"{path}: imports {name}"
