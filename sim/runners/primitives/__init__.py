"""Behavioural Verilog models of the FPGA primitives hdl/ may instantiate (hdl/dsp.py),
compiled with a design that uses them so every simulator can run it (TRELLIS_FF: the
samples schedule's register copies, hdl/trainer/samples/lanes.py)."""
from __future__ import annotations

from pathlib import Path

__all__ = ["primitive_models"]

_HERE = Path(__file__).parent
_MODELS = {"ecp5": ("MULT18X18D.v", "TRELLIS_FF.v")}


def primitive_models(dsp: str) -> str:
    """The Verilog text of the models a design built with ``dsp`` needs ("" for generic)."""
    return "".join((_HERE / name).read_text() for name in _MODELS.get(dsp, ()))
