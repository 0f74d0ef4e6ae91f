"""The toolkit's shape, read from the source of every module, subpackages included, by dotted name:
no import cycles; layers that only point down (serve and monitor never import each other, only the
rehearsals drive both); commands that only assemble and format; nothing from a generated project."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import lockstep

PACKAGE = Path(lockstep.__file__).parent
FEATURES = ("lockstep.serve", "lockstep.monitor")
ABOVE_FEATURES = ("lockstep.rehearsal", "lockstep.commands", "lockstep.cli", "lockstep.__main__")


def dotted(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {dotted(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported(node: ast.AST) -> list[str]:
    """The lockstep modules an import statement names (`from lockstep.serve import k8s` names lockstep.serve.k8s)."""
    known = modules()
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.startswith("lockstep")]
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lockstep") and not node.level:
        return [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module for a in node.names]
    return []


@cache
def graph(top_level_only: bool = False) -> dict[str, set[str]]:
    """For every lockstep module, the lockstep modules it imports (at module level only, or at any depth)."""
    result = {}
    for name, path in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        nodes = tree.body if top_level_only else list(ast.walk(tree))
        result[name] = {dep for node in nodes for dep in imported(node)} - {name}
    return result


def within(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def test_every_module_is_read_subpackages_included() -> None:
    names = set(modules())
    assert {"lockstep.cli", "lockstep.serve.service", "lockstep.monitor.judge", "lockstep.rehearsal.canary"} <= names
    assert {"lockstep.commands.gate", "lockstep.commands.monitor"} <= names
    assert graph()["lockstep.serve.service"] >= {"lockstep.deploy_lock", "lockstep.hooks", "lockstep.quality"}


def test_no_import_cycles() -> None:
    deps = graph()

    def visit(module: str, path: tuple[str, ...]) -> None:
        for dep in deps.get(module, ()):
            # a package's __init__ is imported with each of its modules: an edge into it is no cycle
            if dep in path and not any(p.startswith(dep + ".") for p in path):
                raise AssertionError(f"import cycle: {' -> '.join((*path, dep))}")
            if dep not in path:
                visit(dep, (*path, dep))

    for module in deps:
        visit(module, (module,))


def test_serve_and_monitor_never_import_each_other() -> None:
    for name, deps in graph().items():
        for feature, other in (FEATURES, FEATURES[::-1]):
            if within(name, feature):
                crossing = sorted(d for d in deps if within(d, other))
                assert not crossing, f"{name} imports {crossing}: move what both need to the bottom layer"


def test_only_the_rehearsals_import_both_features() -> None:
    for name, deps in graph().items():
        both = all(any(within(d, f) for d in deps) for f in FEATURES)
        if both:
            assert within(name, "lockstep.rehearsal"), (
                f"{name} imports serve and monitor: it belongs in lockstep.rehearsal"
            )
    rehearsal = {d for name, deps in graph().items() if within(name, "lockstep.rehearsal") for d in deps}
    assert any(within(d, "lockstep.serve") for d in rehearsal) and any(within(d, "lockstep.monitor") for d in rehearsal)


def test_layers_only_point_down() -> None:
    # bottom layer (lockstep.<module>) < serve, monitor < rehearsal < commands < cli
    for name, deps in graph().items():
        if within(name, *FEATURES, *ABOVE_FEATURES):
            continue
        upward = sorted(d for d in deps if within(d, *FEATURES, *ABOVE_FEATURES))
        assert not upward, f"{name} (bottom layer) imports {upward}"
    for name, deps in graph().items():
        if within(name, "lockstep.rehearsal"):
            assert not [d for d in deps if within(d, "lockstep.commands", "lockstep.cli")], name
        if not within(name, "lockstep.commands", "lockstep.cli", "lockstep.__main__"):
            users = sorted(d for d in deps if within(d, "lockstep.rehearsal"))
            assert within(name, "lockstep.rehearsal") or not users, f"{name} imports {users}"


def test_commands_only_assemble_and_format() -> None:
    writes = {"open", "write_text", "write_bytes", "write_json", "write_atomic", "write_csv", "mkdir", "unlink"}
    commands = [n for n in modules() if within(n, "lockstep.commands")]
    assert len(commands) >= 15
    for name in commands:
        tree = ast.parse(modules()[name].read_text(encoding="utf-8"))
        if name != "lockstep.commands":
            functions = {f.name for f in tree.body if isinstance(f, ast.FunctionDef)}
            assert {"add_parser", "run"} <= functions, f"{name}: a command module has add_parser and run"
        # `lockstep --help` imports every command module: the library is imported only when a command runs
        eager = sorted(d for d in graph(top_level_only=True)[name] if not within(d, "lockstep.commands"))
        assert not eager, f"{name} imports {eager} at module level"
        calls = {n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", "") for n in ast.walk(tree)
                 if isinstance(n, ast.Call)}  # fmt: skip
        assert not calls & writes, f"{name} writes files ({sorted(calls & writes)}): that is the library's work"
    for name, deps in graph().items():
        if not within(name, "lockstep.commands", "lockstep.cli", "lockstep.__main__"):
            assert not [d for d in deps if within(d, "lockstep.commands", "lockstep.cli")], f"{name} imports a command"
    cli = graph()["lockstep.cli"]
    assert {d for d in cli if not within(d, "lockstep.commands", "lockstep.config")} == {"lockstep"}, cli


def test_nothing_is_imported_from_a_project() -> None:
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                assert "cookiecutter" not in name and "stages" not in name.split("."), f"{path}: imports {name}"
