"""The layers of docs/architecture.md, checked against the imports the code really has:
each module imports only modules of lower layers; only backends/ touches docker-py or
testcontainers; an import inside a function is allowed only for the Docker modules
(docker-py and testcontainers cost ~0.2 s to import, so they load where Docker is used);
no module is over 500 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pytest_pgstandby"

# Rank of each module; a module may import only modules of a lower rank. Keep in step
# with the picture in docs/architecture.md.
LAYERS: dict[str, int] = {
    "errors": 0,
    "_text": 0,
    "_wait": 1,
    "_held": 1,
    "diagnosis": 1,
    "labfiles": 1,
    "config": 1,
    "connections": 1,
    "binaries": 1,
    "backends": 2,
    "backends.base": 2,
    "backends.accounts": 5,
    "backends.engines": 3,
    "backends.containers": 4,
    "backends.readiness": 4,
    "backends.sessions": 4,
    "backends.template": 6,
    "backends.reaper": 5,
    "backends.local_node": 7,
    "backends.local": 8,
    "backends.docker_node": 5,
    "backends.docker_warm": 5,
    "backends.docker": 6,
    "backends.external": 5,
    "backends.snapshot": 9,
    "backends.docker_snapshot": 7,
    "backends.select": 9,
    "backends.stepwise": 9,
    "node_core": 12,
    "node_checks": 13,
    "node_recovery": 13,
    "node": 14,
    "cluster": 15,
    "databases": 16,
    "snapshots": 16,
    "assertions.report": 15,
    "assertions.servers": 16,
    "assertions.conninfo": 17,
    "assertions.walsenders": 18,
    "assertions.standby": 19,
    "assertions.primary_conninfo": 19,
    "assertions.streaming": 19,
    "assertions.lag": 19,
    "assertions.waits": 19,
    "assertions": 20,
    "classroom": 0,
    "classroom.doctor": 21,
    "runshare": 20,
    "spares": 20,
    "factories": 21,
    "reports": 21,
    "healing": 21,
    "classroom.labctl": 21,
    "classroom.lagview": 21,
    "classroom.proofs": 21,
    "classroom.exercises": 22,
    "classroom.walkthrough": 22,
    "cli": 23,
    "plugin": 23,
    "": 24,
    "backends.owners": 2,
    "backends.values": 2,
    "backends.ports": 3,
}
LAZY_ALLOWED = {"backends.docker", "backends.containers", "backends.docker_snapshot"}
DOCKER_LIBRARIES = ("docker", "testcontainers")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if "lab" in path.relative_to(PACKAGE).parts:
            continue
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> list[str]:
    """The package modules an ``from ... import ...`` names."""
    base = module.split(".") if module else []
    if not is_package:
        base = base[:-1]
    if node.level:
        base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
        target = [*base, *(node.module.split(".") if node.module else [])]
    else:
        if not (node.module or "").startswith("pytest_pgstandby"):
            return []
        target = node.module.split(".")[1:]  # type: ignore[union-attr]
    head = ".".join(target)
    names = [f"{head}.{a.name}" if head else a.name for a in node.names]
    known = _modules()
    return [n for n in names if n in known] or [head]


def _imports(module: str, path: Path) -> list[tuple[str, bool, int]]:
    """(imported module, inside a function, line) for each import of the package's own."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    top_level = set(map(id, tree.body))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for target in _resolve(module, node, is_package):
                out.append((target, id(node) not in top_level, node.lineno))
    return out


@pytest.mark.parametrize("module", sorted(_modules()))
def test_each_module_imports_only_lower_layers(module: str) -> None:
    path = _modules()[module]
    assert module in LAYERS, f"{module} has no layer in LAYERS (and docs/architecture.md)"
    for target, lazy, line in _imports(module, path):
        if target == "pytest_pgstandby":
            target = ""
        assert target in LAYERS, f"{path.name}:{line} imports unknown module {target!r}"
        # a package's __init__ may re-export its own modules
        downward = LAYERS[target] < LAYERS[module] or target.startswith(module + ".")
        assert downward, (
            f"{path.name}:{line}: {module} (layer {LAYERS[module]}) imports {target} "
            f"(layer {LAYERS[target]})"
        )
        if lazy:
            assert target in LAZY_ALLOWED, (
                f"{path.name}:{line}: an import inside a function ({target}); import at the top"
            )


def test_only_backends_import_docker_libraries() -> None:
    for module, path in _modules().items():
        if module.startswith("backends"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in DOCKER_LIBRARIES, f"{module} imports {name}"


def test_no_module_is_over_500_lines() -> None:
    sizes = {m: len(p.read_text().splitlines()) for m, p in _modules().items()}
    assert {m: n for m, n in sizes.items() if n > 500} == {}


def test_no_backend_module_defines_a_node_verb() -> None:
    """A verb is written once, in the model (node*.py), on the handle's primitives: no
    class of backends/ defines a method of that name (the primitives of NodeHandle, which
    Node passes on under the same names, are the backends' to give)."""
    from pytest_pgstandby.backends.base import NodeHandle
    from pytest_pgstandby.node import Node

    primitives = {name for name in dir(NodeHandle) if not name.startswith("_")}
    verbs = {name for name in dir(Node) if not name.startswith("_")} - primitives
    assert {"rewind", "backup", "pause_replay", "wait_for_log", "follow"} <= verbs
    defined = {}
    for name, path in _modules().items():
        if not name.startswith("backends"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name in verbs:
                        defined[f"{name}.{node.name}.{item.name}"] = item.lineno
    assert defined == {}
