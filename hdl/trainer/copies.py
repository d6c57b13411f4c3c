"""Register copies: one value registered several times, so that each copy drives a few
lanes instead of one register driving all of them across the device.

yosys merges flip-flops with the same input, so on ECP5 every bit of a copy is a
TRELLIS_FF instance of its own (hdl/dsp.py builds the multipliers the same way: ``dsp``
names the target's primitives). Each copy has the value a cycle later, exactly as one
register would.
"""
from __future__ import annotations

from amaranth.hdl import ClockSignal, Const, Instance, ResetSignal, Signal, Value

__all__ = ["register_copies"]


def register_copies(m, value, n, name, dsp):
    """``n`` registers, each ``value`` a cycle later (reset to 0 as a sync signal)."""
    value = Value.cast(value)
    out = []
    for g in range(n):
        q = Signal(value.shape(), name=f"{name}_g{g}")
        if dsp == "ecp5" and n > 1:
            for i in range(len(value)):
                m.submodules[f"{name}_g{g}_ff{i}"] = Instance(
                    "TRELLIS_FF", p_GSR="DISABLED", p_CEMUX="1", p_CLKMUX="CLK", p_LSRMUX="LSR",
                    p_SRMODE="LSR_OVER_CE", p_REGSET="RESET",
                    i_CLK=ClockSignal("sync"), i_LSR=ResetSignal("sync"), i_CE=Const(1, 1), i_DI=value[i],
                    o_Q=q[i])
        else:
            m.d.sync += q.eq(value)
        out.append(q)
    return out
