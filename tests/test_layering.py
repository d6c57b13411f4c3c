"""The packages' layering, read from the source with ``ast`` (issue 12, ARCHITECTURE.md):
golden/ imports neither hdl/, sim/, Amaranth nor cocotb; hdl/ never imports sim/.

Every import counts, wherever it stands (module level, inside a function, under ``if
TYPE_CHECKING``), relative ones resolved against the file's package, and so do
``importlib.import_module("...")`` / ``__import__("...")`` with a literal name. A failure
names each offending file:line and what it imports.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package -> top-level packages it must not import
FORBIDDEN = {
    "golden": {"hdl", "sim", "amaranth", "cocotb", "cocotb_tools"},
    "hdl": {"sim"},
}


def _package_of(path: Path, root: Path) -> str:
    """Dotted name of the package a module file belongs to (for relative imports)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1])


def _resolve(package: str, module: str | None, level: int) -> str:
    if level == 0:
        return module or ""
    base = package.split(".") if package else []
    base = base[:len(base) - (level - 1)] if level > 1 else base
    return ".".join(base + ([module] if module else []))


def imports(source: str, package: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """(line, absolute dotted name) of everything ``source`` imports."""
    out = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            out.append((node.lineno, _resolve(package, node.module, node.level)))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
            if name in ("import_module", "__import__"):
                out.append((node.lineno, node.args[0].value))
    return out


def violations(root: Path = ROOT, rules: dict = FORBIDDEN) -> list[str]:
    """``file:line: imports X (P/ must not import ...)`` for every import that breaks ``rules``."""
    out = []
    for pkg, banned in rules.items():
        for path in sorted((root / pkg).rglob("*.py")):
            for line, name in imports(path.read_text(), _package_of(path, root), str(path)):
                if name.split(".")[0] in banned:
                    out.append(f"{path.relative_to(root)}:{line}: imports {name} "
                               f"({pkg}/ must not import {', '.join(sorted(banned))})")
    return out


def test_layering_holds():
    bad = violations()
    assert not bad, "layering broken:\n  " + "\n  ".join(bad)


def test_every_package_is_read():
    """The check sees real imports (it is not vacuous): each package has modules, and
    hdl/ imports golden/ (allowed) somewhere."""
    for pkg in ("golden", "hdl", "sim"):
        assert list((ROOT / pkg).rglob("*.py")), pkg
    seen = {name.split(".")[0] for path in (ROOT / "hdl").rglob("*.py")
            for _, name in imports(path.read_text(), _package_of(path, ROOT))}
    assert {"golden", "amaranth"} <= seen, seen


@pytest.mark.parametrize("source, package, found", [
    ("import sim.host\n", "hdl", [(1, "sim.host")]),
    ("def f():\n    from sim.runners import x\n", "hdl", [(2, "sim.runners")]),
    ("from .csr import REG\n", "hdl", [(1, "hdl.csr")]),
    ("from ..layout import Layout\n", "hdl.trainer", [(1, "hdl.layout")]),
    ("from . import layout\n", "hdl.trainer", [(1, "hdl.trainer")]),
    ("import importlib\nimportlib.import_module('cocotb.triggers')\n", "golden",
     [(1, "importlib"), (2, "cocotb.triggers")]),
    ("if TYPE_CHECKING:\n    import amaranth as am\n", "golden", [(2, "amaranth")]),
])
def test_imports_are_resolved(source, package, found):
    assert sorted(imports(source, package)) == found


def test_a_broken_rule_names_file_and_line(tmp_path):
    (tmp_path / "golden").mkdir()
    (tmp_path / "golden" / "ok.py").write_text("import numpy as np\n")
    (tmp_path / "golden" / "bad.py").write_text('"""doc"""\nimport numpy\n\nfrom hdl.layout import Layout\n')
    (tmp_path / "hdl").mkdir()
    (tmp_path / "hdl" / "top.py").write_text("def f():\n    import sim.runners as r\n")
    assert violations(tmp_path) == [
        "golden/bad.py:4: imports hdl.layout (golden/ must not import amaranth, cocotb, cocotb_tools, hdl, sim)",
        "hdl/top.py:2: imports sim.runners (hdl/ must not import sim)",
    ]


def test_sim_is_organised_by_role():
    """At most 8 modules directly in sim/; the rest lives in subpackages named by role."""
    top = sorted(p.name for p in (ROOT / "sim").glob("*.py"))
    assert len(top) <= 8, f"{len(top)} modules directly in sim/: {', '.join(top)}"
