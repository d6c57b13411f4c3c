"""Verilog from an Amaranth design: the one place the project calls Amaranth's backend.

Every flow that needs Verilog text (export, lint, simulation builds, synthesis) goes
through :func:`to_verilog`, so they all see the same text for the same design.
"""
from __future__ import annotations

from amaranth.back import verilog
from amaranth.lib import wiring

__all__ = ["to_verilog", "port_names"]


def port_names(design: wiring.Component) -> dict:
    """Verilog port name -> signal of ``design``: the component's own names when it has
    ``verilog_ports()`` (standard interfaces, hdl/axi/top.py), else Amaranth's (the members
    joined with ``__``, plus ``clk`` and ``rst`` for its sync domain)."""
    own = getattr(design, "verilog_ports", None)
    if own is not None:
        return own()
    return {"__".join(str(p) for p in path): value for path, member, value in design.signature.flatten(design)}


def to_verilog(design: wiring.Component, name: str) -> str:
    """Verilog text of ``design`` with top module ``name``; the ports are the component's
    signature members (``clk`` and ``rst`` added for its sync domain, unless the design
    drives its own), named as :func:`port_names` says."""
    own = getattr(design, "verilog_ports", None)
    if own is None:
        return verilog.convert(design, name=name)
    return verilog.convert(design, name=name, ports={n: (v, None) for n, v in own().items()})
