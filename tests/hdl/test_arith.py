"""hdl.arith helpers that restructure golden's arithmetic for timing give its exact values."""
import numpy as np
from amaranth.hdl import Module, Signal, signed
from amaranth.sim import Simulator

from golden.fixed import QFormat, saturate
from hdl.arith import saturating_sub


def test_saturating_sub_equals_the_wide_subtraction_then_saturate():
    fmt = QFormat(4, 12)
    w = Signal(signed(fmt.width))
    step = Signal(signed(49))
    out = Signal(signed(fmt.width))
    m = Module()
    m.d.comb += out.eq(saturating_sub(w, step, fmt))
    rng = np.random.default_rng(3)
    ws = [fmt.min_code, fmt.min_code + 1, -1, 0, 1, fmt.max_code - 1, fmt.max_code]
    ws += [int(v) for v in rng.integers(fmt.min_code, fmt.max_code + 1, size=20)]
    edge = 1 << (fmt.width + 1)  # where the short path stops
    steps = [0, 1, -1, edge - 1, edge, edge + 1, -edge, -edge - 1, -edge + 1, (1 << 48) - 1, -(1 << 48),
             fmt.max_code - fmt.min_code, fmt.min_code - fmt.max_code]
    steps += [int(v) for v in rng.integers(-(1 << 20), 1 << 20, size=40)]
    steps += [int(v) for v in rng.integers(-(1 << 47), 1 << 47, size=20)]
    got, want = [], []

    async def bench(ctx):
        for a in ws:
            for b in steps:
                ctx.set(w, a)
                ctx.set(step, b)
                got.append(ctx.get(out))
                want.append(int(saturate(np.int64(a) - np.int64(b), fmt)))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert got == want
    assert min(want) == fmt.min_code and max(want) == fmt.max_code  # both ends exercised
