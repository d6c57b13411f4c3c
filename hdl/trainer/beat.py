"""The stream beat of the trainer's sample and result streams."""
from __future__ import annotations

from amaranth.hdl import signed
from amaranth.lib import data

from golden.config import Config

__all__ = ["beat_layout"]


def beat_layout(cfg: Config) -> data.StructLayout:
    """AXI4-Stream-like beat: one act-format code and ``last`` (tlast)."""
    return data.StructLayout({"data": signed(cfg.act.width), "last": 1})
