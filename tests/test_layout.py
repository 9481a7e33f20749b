"""The package's imports run one way: each module imports only modules below it in ``LAYERS``.

Lazy imports inside functions count too. A newcomer reads a save top to bottom in
session -> manager -> store (and the backend's transaction), never back up.
"""
from __future__ import annotations

import ast
from pathlib import Path

import wsgisession

PACKAGE = Path(wsgisession.__file__).parent

#: from the ground up: a module may import only modules listed before it
LAYERS = [
    "errors", "jsondata", "wirejson", "ids", "config", "origins", "websocket", "redis_client", "fanout", "redis_commands",
    "locks", "records", "cookies",
    "backends.base", "backends.memory", "backends.file", "backends.sqlite", "backends.redis", "backends",
    "store", "users", "manager", "session",
    "namespace", "lifecycle", "cookie_exchange", "middleware", "realtime",
    "app", "flask", "pyramid", "server", "serve", "testing", "testclient", "__init__",
]


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    return name.removesuffix(".__init__") if name != "__init__" else name


def imported(path: Path) -> set[str]:
    """The package modules ``path`` imports (relative or absolute, at any depth of the code)."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" and here != ["__init__"] else here[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            elif node.module and node.module.startswith("wsgisession"):
                target = node.module.removeprefix("wsgisession").lstrip(".")
            else:
                continue
            for alias in node.names:  # "from . import x" / "from .backends import base" name modules
                candidate = f"{target}.{alias.name}".lstrip(".")
                found.add(candidate if candidate in LAYERS else target or "__init__")
    return {name for name in found if name in LAYERS}


def test_every_module_has_a_layer() -> None:
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    assert modules == set(LAYERS)


def test_imports_run_downward_only() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        for target in imported(path):
            if target != name and LAYERS.index(target) >= LAYERS.index(name):
                upward.append(f"{name} imports {target}")
    assert upward == []
