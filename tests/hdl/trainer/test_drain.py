"""ForwardDrain (hdl/trainer/drain.py) alone in amaranth.sim, bit-exact with golden.

Random parameters and inputs; golden FixedMLP.forward gives every layer. Each row block's
exact sums (W a + b, garbage past the layer) come in as a snapshot whenever ``active`` is
low, either at once or after the previous block has left the drain. Expected: every
a_{l+1} in the activation memory equal to golden's (read back through ``a_addr``), the
softmax layer's z on ``logit`` with ``last`` on its final row, and the documented timing:
a block's first row written 3 cycles after its snapshot (DRAIN_WRITE_LAG - PIPE_LATENCY),
one row per cycle, ``busy`` low the cycle after its last row is written.
"""
import numpy as np
import pytest

from golden.fixed_model import FixedMLP
from hdl.layout import DRAIN_WRITE_LAG, PIPE_LATENCY
from hdl.trainer.drain import ForwardDrain
from sim.testbench.amaranth_streams import stream_get

from .helpers import codes, config, garbage, random_params, simulate

WRITE_LAG = DRAIN_WRITE_LAG - PIPE_LATENCY  # from the snapshot (the block's stage A)


def run_drain(name, n_samples, seed):
    cfg, lay = config(name)
    dut = ForwardDrain(cfg, lay)
    rng = np.random.default_rng(seed)
    P, L = cfg.lanes, cfg.n_layers
    softmax = cfg.activations[-1] == "softmax"
    mlp = FixedMLP(cfg, random_params(cfg, rng))
    traces = [mlp.forward(codes(rng, cfg.act, cfg.layers[0])) for _ in range(n_samples)]
    acc_shape = dut.sums[0].shape()
    amem = np.zeros(lay.adepth, dtype=np.int64)  # what the memory should hold
    logits = []
    timed = 0

    async def read(ctx, addr):
        ctx.set(dut.a_addr, addr)
        await ctx.tick()
        return ctx.get(dut.a_data)

    async def producer(ctx):
        nonlocal timed
        for s, tr in enumerate(traces):
            for l in range(L):
                n_out, drained = cfg.layers[l + 1], cfg.activations[l] != "softmax"
                sums = mlp.params[l] @ np.append(tr.a[l], cfg.act.one)  # the lanes' exact sums
                for rb in range(lay.blocks(l)):
                    while ctx.get(dut.active):
                        await ctx.tick()
                    for _ in range(int(rng.integers(0, 3))):
                        await ctx.tick()
                    rows = min(P, n_out - rb * P)
                    ctx.set(dut.snapshot, {"valid": 1, "rowbase": rb * P, "layer": l, "one_row": rows == 1})
                    for p in range(P):
                        ctx.set(dut.sums[p], int(sums[rb * P + p]) if p < rows else garbage(rng, acc_shape))
                    await ctx.tick()
                    ctx.set(dut.snapshot.valid, 0)
                    for p in range(P):
                        ctx.set(dut.sums[p], garbage(rng, acc_shape))
                    if not drained or rng.random() < 0.5:
                        continue  # the next snapshot as soon as `active` falls
                    # cycle by cycle from the snapshot (cycle 0): a_data in cycle c shows the
                    # block's first row as the memory held it in cycle c - 1, before its write
                    addr = lay.abase(l + 1) + rb * P
                    old, new = amem[addr], tr.a[l + 1][rb * P]
                    ctx.set(dut.a_addr, addr)
                    seen, busy, c = {}, {}, 1
                    while c <= WRITE_LAG + 2 or busy[c - 1]:
                        await ctx.tick()
                        c += 1
                        seen[c - 1], busy[c] = ctx.get(dut.a_data), ctx.get(dut.busy)
                    where = f"sample {s} layer {l} block {rb}"
                    assert seen[WRITE_LAG] == old or old == new, f"{where}: row written before cycle {WRITE_LAG}"
                    assert seen[WRITE_LAG + 1] == new, \
                        f"{where}: row {rb * P} holds {seen[WRITE_LAG + 1]} after cycle {WRITE_LAG}, golden " \
                        f"FixedMLP.forward a = {new} (a wrong value, or not written in cycle {WRITE_LAG})"
                    fall = min(c for c, b in busy.items() if not b)
                    assert fall == WRITE_LAG + rows, \
                        f"{where}: busy falls in cycle {fall} after the snapshot, expected {WRITE_LAG + rows} " \
                        f"({rows} rows written one per cycle from cycle {WRITE_LAG})"
                    timed += 1
                if drained:
                    amem[lay.abase(l + 1):lay.abase(l + 1) + n_out] = tr.a[l + 1]
            while ctx.get(dut.busy):
                await ctx.tick()
            got = [await read(ctx, addr) for addr in range(lay.adepth)]
            drained_rows = [a for l in range(L) if cfg.activations[l] != "softmax"
                            for a in range(lay.abase(l + 1), lay.abase(l + 1) + cfg.layers[l + 1])]
            np.testing.assert_array_equal(np.array(got)[drained_rows], amem[drained_rows],
                                          err_msg=f"sample {s}: activation memory vs golden FixedMLP.forward")

    async def consumer(ctx):
        n = cfg.layers[-1]
        for s in range(n_samples):
            for _ in range(int(rng.integers(0, 6))):
                await ctx.tick()
            ctx.set(dut.room, 1)  # the output FIFO has room; the unit then takes the vector
            for _ in range(int(rng.integers(0, 3))):
                await ctx.tick()
            logits.append([await stream_get(ctx, dut.logit) for _ in range(n)])
            ctx.set(dut.room, 0)

    simulate(dut, producer, *([consumer] if softmax else []))
    if softmax:
        n = cfg.layers[-1]
        np.testing.assert_array_equal([[v.z for v in vec] for vec in logits], [tr.z[-1] for tr in traces],
                                      err_msg="logits vs golden FixedMLP.forward z of the softmax layer")
        assert [[v.last for v in vec] for vec in logits] == [[j == n - 1 for j in range(n)]] * n_samples
    return timed


@pytest.mark.parametrize("name", ["l4-b1-ne", "deep-l1", "deep-l3", "deep-l9", "softmax-l2"])
def test_forward_drain_matches_golden(name):
    timed = run_drain(name, n_samples=6, seed=7)
    assert timed > 0, "no block's timing was checked"
