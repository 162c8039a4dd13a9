"""Every package the server and the client import is declared in pyproject.toml (`msgpack`
was once imported by the engine but not declared: an install that resolved wordfreq without it
would have failed at warm-up)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [ROOT / "server" / "textmend_server", ROOT / "client" / "textmend_client"]
# Our own top-level packages (the generated stubs live in `textmend`).
OURS = {"textmend", "textmend_server", "textmend_client"}


def _name(requirement: str) -> str:
    """The distribution a requirement names, normalised as PyPI compares names."""
    bare = re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", bare).lower()


def _declared() -> tuple[set[str], set[str]]:
    """(the required distributions, those of every extra)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    required = {_name(r) for r in project["dependencies"]}
    extras = {_name(r) for group in project["optional-dependencies"].values() for r in group}
    return required, extras


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(top-level modules imported when the module is imported, those imported only inside a
    function or a `try`: optional at run time)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    eager: set[str] = set()
    lazy: set[str] = set()

    def visit(node: ast.AST, optional: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = optional or isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Try | ast.If
            )
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [child.module]
            for name in names:
                (lazy if optional else eager).add(name.split(".")[0])
            visit(child, inner)

    visit(tree, False)
    return eager, lazy


def _third_party(modules: set[str]) -> set[str]:
    return {m for m in modules if m not in sys.stdlib_module_names and m not in OURS}


def _distributions(module: str) -> set[str]:
    found = packages_distributions().get(module)
    if not found:
        pytest.fail(f"{module} is imported but no installed distribution provides it")
    return {_name(d) for d in found}


def test_every_import_of_the_server_and_client_is_declared() -> None:
    required, extras = _declared()
    missing: list[str] = []
    for package in PACKAGES:
        for path in sorted(package.rglob("*.py")):
            eager, lazy = _imports(path)
            for module in sorted(_third_party(eager)):
                if not _distributions(module) & required:
                    missing.append(f"{path.relative_to(ROOT)}: {module} (not in dependencies)")
            for module in sorted(_third_party(lazy - eager)):
                if not _distributions(module) & (required | extras):
                    missing.append(f"{path.relative_to(ROOT)}: {module} (in no extra either)")
    assert not missing, "undeclared imports:\n" + "\n".join(missing)


def test_the_check_sees_an_undeclared_import(tmp_path: Path) -> None:
    """The scan itself: an eager import of a package only an extra declares is caught."""
    module = tmp_path / "m.py"
    module.write_text("import yaml\n\ndef f():\n    import hypothesis\n", encoding="utf-8")
    eager, lazy = _imports(module)
    required, extras = _declared()
    assert eager == {"yaml"} and lazy == {"hypothesis"}
    assert not _distributions("yaml") & required
    assert _distributions("hypothesis") & extras
