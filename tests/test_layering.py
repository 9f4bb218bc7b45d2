"""The layers of spdkpy import only downwards (the package docstring's layout, SPEC's layering).

Every module under ``src/spdkpy`` is parsed with :mod:`ast` (nothing is imported, so a module that
would only import a higher layer lazily, inside a function, is caught as well). Lowest layer first:

    env → thread → event → rpc → app → sock → bdev → nvme → nvmf → apps

``rpc`` sits below ``app`` because the app starts the RPC server. A layer may import itself and
any layer below it, never one above. The shared top-level modules (``spdkpy`` itself,
``spdkpy.errors``, ``spdkpy._log``, ``spdkpy._version``) may be imported by every layer and import
only each other. ``spdkpy.testing`` may import ``env``, ``thread`` and ``event``; no layer may
import ``testing``. A new sub-package must be given a place in :data:`LAYERS` before it can pass.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE_DIR = SRC / "spdkpy"

LAYERS: list[str] = ["env", "thread", "event", "rpc", "app", "sock", "bdev", "nvme", "nvmf", "apps"]
SHARED: frozenset[str] = frozenset({"spdkpy", "spdkpy.errors", "spdkpy._log", "spdkpy._version"})
TESTING = "testing"
TESTING_MAY_IMPORT: frozenset[str] = frozenset({"env", "thread", "event"})


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_modules() -> list[Path]:
    return sorted(PACKAGE_DIR.rglob("*.py"))


def imported_modules(tree: ast.AST, name: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """``(line, absolute module)`` for every spdkpy import in ``tree``, relative ones resolved.

    ``from spdkpy import env`` also yields ``spdkpy.env``: an imported name that is a module (a
    file or a package in the tree) counts as an import of that module.
    """
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[: -(node.level - 1)]
                base = ".".join(base_parts)
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:
                if _is_real_module(f"{target}.{alias.name}"):
                    yield node.lineno, f"{target}.{alias.name}"


def classify(module: str) -> str | None:
    """The layer of an spdkpy module, ``"shared"``, ``"testing"``, or ``None`` if not ours."""
    parts = module.split(".")
    if parts[0] != "spdkpy":
        return None
    if module in SHARED:
        return "shared"
    if len(parts) == 1:
        return "shared"
    top = parts[1]
    if top in LAYERS:
        return top
    if top == TESTING:
        return "testing"
    if f"spdkpy.{top}" in SHARED:
        return "shared"
    return f"unplaced:{top}"


def _is_real_module(module: str) -> bool:
    """Whether ``from X import name`` named a module (a file or a package) rather than a value."""
    rel = Path(*module.split("."))
    return (SRC / rel).with_suffix(".py").is_file() or (SRC / rel / "__init__.py").is_file()


def violations_in(source: str, name: str, is_package: bool) -> list[str]:
    """The layering violations of one module's source."""
    importer = classify(name)
    assert importer is not None
    found: list[str] = []
    if importer.startswith("unplaced:"):
        return [f"{name}: sub-package {importer[9:]!r} has no place in LAYERS"]
    tree = ast.parse(source, filename=name)
    for lineno, target in imported_modules(tree, name, is_package):
        layer = classify(target)
        if layer is None:
            continue
        if layer.startswith("unplaced:"):
            found.append(f"{name}:{lineno} imports {target}, which has no place in LAYERS")
            continue
        if not _allowed(importer, layer):
            found.append(f"{name}:{lineno} ({importer}) imports {target} ({layer})")
    return found


def _allowed(importer: str, imported: str) -> bool:
    if imported == importer:
        return True
    if importer == "shared":
        return imported == "shared"
    if imported == "shared":
        return True
    if imported == "testing":
        return False
    if importer == "testing":
        return imported in TESTING_MAY_IMPORT
    return LAYERS.index(imported) < LAYERS.index(importer)


# ----------------------------------------------------------------------------- the real tree


def test_source_tree_is_found() -> None:
    modules = {module_name(p) for p in source_modules()}
    assert {"spdkpy", "spdkpy.env", "spdkpy.thread", "spdkpy.event", "spdkpy.app"} <= modules


@pytest.mark.parametrize("path", source_modules(), ids=lambda p: module_name(p))
def test_module_imports_only_downwards(path: Path) -> None:
    name = module_name(path)
    problems = violations_in(path.read_text(encoding="utf-8"), name, path.name == "__init__.py")
    assert not problems, "\n".join(problems)


def test_every_sub_package_has_a_place() -> None:
    for init in sorted(PACKAGE_DIR.glob("*/__init__.py")):
        top = init.parent.name
        assert top in LAYERS or top == TESTING, f"spdkpy.{top} has no place in LAYERS"


# ----------------------------------------------------------------------------- the checker itself


@pytest.mark.parametrize(
    ("name", "is_package", "source"),
    [
        ("spdkpy.env._cores", False, "from spdkpy.thread import Thread"),
        ("spdkpy.env._cores", False, "import spdkpy.app._app"),
        ("spdkpy.env._cores", False, "def f():\n    from spdkpy.event import get_framework"),
        ("spdkpy.env._cores", False, "from spdkpy import app"),
        ("spdkpy.thread._thread", False, "from ..event import Reactor"),
        ("spdkpy.thread", True, "from ..apps import cli"),
        ("spdkpy.event._reactor", False, "from spdkpy.testing import MockClock"),
        ("spdkpy.app._app", False, "from spdkpy.sock import connect"),
        ("spdkpy.rpc._server", False, "from spdkpy.app import get_app"),
        ("spdkpy.nvme._ctrlr", False, "from spdkpy.nvmf import Target"),
        ("spdkpy.testing", True, "from spdkpy.app import App"),
        ("spdkpy.errors", False, "from spdkpy.env import CpuSet"),
        ("spdkpy", True, "from spdkpy.apps.cli import main"),
        ("spdkpy._log", False, "from . import event"),
        ("spdkpy.env._cores", False, "from spdkpy.mystery import thing"),
    ],
)
def test_checker_catches_upward_imports(name: str, is_package: bool, source: str) -> None:
    assert violations_in(source, name, is_package)


@pytest.mark.parametrize(
    ("name", "is_package", "source"),
    [
        ("spdkpy.env._cores", False, "from ._cpuset import CpuSet\nfrom spdkpy.errors import X"),
        ("spdkpy.env", True, "from ._cores import available_cores"),
        ("spdkpy.thread._thread", False, "from spdkpy.env import CpuSet\nimport spdkpy"),
        ("spdkpy.event._reactor", False, "from spdkpy._log import notice\nimport os"),
        ("spdkpy.app._app", False, "from spdkpy.event import reactors_init\nfrom . import _opts"),
        ("spdkpy.apps.cli", False, "from spdkpy.apps import perf\nfrom spdkpy.app import App"),
        ("spdkpy.nvmf._tgt", False, "from spdkpy.bdev import Bdev\nfrom spdkpy.rpc import m"),
        ("spdkpy.testing", True, "from spdkpy.thread import Thread\nfrom spdkpy.env import X"),
        ("spdkpy", True, "from spdkpy._version import __version__"),
        ("spdkpy.app._app", False, "from spdkpy import __version__\nfrom spdkpy import errors"),
    ],
)
def test_checker_accepts_downward_imports(name: str, is_package: bool, source: str) -> None:
    assert violations_in(source, name, is_package) == []


# ----------------------------------------------------------------------------- __all__


def public_packages() -> list[str]:
    names = ["spdkpy"]
    for init in sorted(PACKAGE_DIR.glob("*/__init__.py")):
        if not init.parent.name.startswith("_"):
            names.append(f"spdkpy.{init.parent.name}")
    return names


@pytest.mark.parametrize("name", public_packages())
def test_public_package_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, list | tuple), f"{name} has no __all__ list"
    assert all(isinstance(item, str) for item in exported)
    assert len(set(exported)) == len(exported), f"{name}.__all__ has duplicates"
    missing = [item for item in exported if not hasattr(module, item)]
    assert not missing, f"{name}.__all__ names what it does not define: {missing}"
