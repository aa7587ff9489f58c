"""Rules of the house that a reader cannot check by eye across the tree (read from the source, not imported).

* no module imports another module's private (underscore) names: a helper two modules need is public,
  in the home both import it from;
* the 45° line of reliable yaw is one constant (:data:`gannotate.plan.RELIABLE_YAW`), not a literal
  per module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gannotate", "shape_model")


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_paths() -> set[str]:
    return {_module_name(p) for p in _modules()}


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def private_imports(path: Path, modules: set[str]) -> list[str]:
    """``from gannotate.x import _y`` and ``x._y`` on an imported project module, as ``file:line: what``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found, aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] in PACKAGES:
            for a in node.names:
                if _private(a.name):
                    found.append(f"{_rel(path)}:{node.lineno}: from {node.module} import {a.name}")
                elif f"{node.module}.{a.name}" in modules:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in PACKAGES:
                    aliases[a.asname or a.name.split(".")[0]] = a.asname and a.name or a.name.split(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in aliases:
                found.append(f"{_rel(path)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_imports_another_modules_private_names():
    modules = _module_paths()
    found = [hit for p in _modules() for hit in private_imports(p, modules)]
    assert found == []


def test_the_scan_finds_a_private_import(tmp_path: Path):
    """The rule above can fail: both spellings of reaching into a module are caught."""
    bad = tmp_path / "probe.py"
    bad.write_text("from gannotate.plan import _TRUNCATION\nimport gannotate.plan as p\nx = p._TRUNCATION\n")
    hits = private_imports(bad, _module_paths())
    assert len(hits) == 2 and "import _TRUNCATION" in hits[0] and "p._TRUNCATION" in hits[1]


def _literal_bindings(value: float) -> list[str]:
    """Module-level (or class-level) names bound to the number ``value`` itself, as ``file:NAME``."""
    found = []
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Constant) \
                    and isinstance(node.value.value, (int, float)) and not isinstance(node.value.value, bool) \
                    and float(node.value.value) == value:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                found += [f"{path.relative_to(ROOT)}:{t.id}" for t in targets if isinstance(t, ast.Name) and t.id.isupper()]
    return found


def test_reliable_yaw_is_defined_once():
    from gannotate.metrics.yaw import LANDMARK_YAW_BINS
    from gannotate.plan import RELIABLE_YAW

    assert _literal_bindings(45.0) == ["gannotate/plan.py:RELIABLE_YAW"]
    assert LANDMARK_YAW_BINS[-1][0] == RELIABLE_YAW  # the last landmark bin opens at it


@pytest.mark.parametrize("path", ["gannotate/metrics/quality.py", "gannotate/targets3d.py"])
def test_yaw_users_import_the_constant(path: str):
    assert "RELIABLE_YAW" in (ROOT / path).read_text(encoding="utf-8")
