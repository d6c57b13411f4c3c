"""Verilog from an Amaranth design: the one place the project calls Amaranth's backend.

Every flow that needs Verilog text (export, lint, simulation builds, synthesis) goes
through :func:`to_verilog`, so they all see the same text for the same design.
"""
from __future__ import annotations

from amaranth.back import verilog
from amaranth.lib import wiring

__all__ = ["to_verilog"]


def to_verilog(design: wiring.Component, name: str) -> str:
    """Verilog text of ``design`` with top module ``name``; the ports are the component's
    signature members (``clk`` and ``rst`` added for its sync domain)."""
    return verilog.convert(design, name=name)
