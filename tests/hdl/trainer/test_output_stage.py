"""OutputStage (hdl/trainer/output_stage.py) alone in amaranth.sim, bit-exact with golden.

The activation and target memories (garbage everywhere but the sample's words, the other
target buffer included) and the derivative unit (sigma' of the code read a cycle
before, golden FixedActivations.derivative) are modelled by a background testbench; the
softmax logits come in as the drain sends them (only with ``room``). Expected: the output
codes (golden a_L, or golden softmax_codes of the logits) on ``m_data`` with ``last`` on
the final one, taken with random stalls; the deltas golden FixedMLP.output_delta, for
bank j mod P, slot dbase(L-1) + j // P, none for inferences; and for MSE, with the FIFO
empty, the last delta (``done``) n_out + 2 cycles after ``run`` rises (the OUT state's
n_out + 3 cycles of hdl/layout.py expected_train_cycles).
"""
import numpy as np
import pytest
from amaranth.hdl import signed

from golden.fixed_model import FixedMLP
from golden.tables import softmax_codes
from hdl.trainer.output_stage import OutputStage
from sim.testbench.amaranth_streams import random_stall, stream_get, stream_put

from .helpers import codes, config, garbage, random_activations, simulate


def run_output_stage(name, n_samples, seed, p_stall):
    cfg, lay = config(name)
    dut = OutputStage(cfg, lay)
    rng = np.random.default_rng(seed)
    P, L, n, AW = cfg.lanes, cfg.n_layers, cfg.layers[-1], cfg.act.width
    softmax = cfg.activations[-1] == "softmax"
    mlp = FixedMLP(cfg)
    amem = codes(rng, cfg.act, max(lay.adepth, 2))
    tmem = codes(rng, cfg.act, max(lay.tdepth, 2))
    samples = []
    for _ in range(n_samples):
        t = codes(rng, cfg.act, n)
        if softmax:
            z = codes(rng, cfg.act, n)
            out = softmax_codes(z, cfg)
        else:
            z, out = None, random_activations(cfg, mlp, rng)[-1]
        infer = bool(rng.random() < 0.3)
        samples.append(dict(z=z, out=out, t=t, tbuf=int(rng.integers(2)), infer=infer,
                            deltas=None if infer else mlp.output_delta(out, t)))
    deltas, current, timings = [], [0], []

    async def memories(ctx):  # the memories' read ports and the derivative unit (stage R)
        kind = cfg.activations[-1]
        async for _, _, a_addr, t_addr, a_prev in ctx.tick().sample(dut.a_addr, dut.t_addr, dut.a_data):
            # (with run, the next address is presented after the last code too: past the memory)
            ctx.set(dut.a_data, int(amem[a_addr]) if a_addr < len(amem) else garbage(rng, signed(AW)))
            ctx.set(dut.t_data, int(tmem[t_addr]) if t_addr < len(tmem) else garbage(rng, signed(AW)))
            d = mlp.acts.derivative(kind, a_prev) if kind != "softmax" else garbage(rng, signed(AW))
            ctx.set(dut.deriv, int(d))

    async def monitor(ctx):
        async for _, _, valid, lane, addr, d in ctx.tick().sample(dut.delta.valid, dut.delta.lane, dut.delta.addr,
                                                                    dut.delta.delta):
            if valid:
                deltas.append((current[0], lane, addr, d))

    async def sequencer(ctx):
        for s, smp in enumerate(samples):
            current[0] = s
            amem[lay.abase(L):lay.abase(L) + n] = smp["out"]  # (the softmax stage reads no a)
            tmem[lay.tbase(smp["tbuf"]):lay.tbase(smp["tbuf"]) + n] = smp["t"]
            ctx.set(dut.tbuf, smp["tbuf"])
            ctx.set(dut.infer, smp["infer"])
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            ctx.set(dut.run, 1)
            empty = not ctx.get(dut.m_data.valid)
            if softmax:
                while not ctx.get(dut.room):  # the drain sends a vector only with room
                    await ctx.tick()
                for j, z in enumerate(smp["z"]):
                    await stream_put(ctx, dut.logit, {"z": int(z), "last": j == n - 1},
                                     stall=random_stall(rng, 0.2))
            cycles = 0
            while not ctx.get(dut.done):
                await ctx.tick()
                cycles += 1
            if empty and not softmax:
                timings.append(cycles)
            await ctx.tick()
            ctx.set(dut.run, 0)
            for _ in range(int(rng.integers(0, 4))):
                await ctx.tick()

    async def host(ctx):
        got = [await stream_get(ctx, dut.m_data, stall=random_stall(rng, p_stall)) for _ in range(n * n_samples)]
        np.testing.assert_array_equal([g.data for g in got], np.concatenate([s["out"] for s in samples]),
                                      err_msg="m_data vs golden outputs")
        assert [g.last for g in got] == [j == n - 1 for j in range(n)] * n_samples, "m_data last"

    simulate(dut, sequencer, host, background=(memories, monitor))
    want = [(s, j % P, lay.dbase(L - 1) + j // P, int(smp["deltas"][j]))
            for s, smp in enumerate(samples) if not smp["infer"] for j in range(n)]
    assert deltas == want, "output deltas (sample, bank, slot, delta) vs golden FixedMLP.output_delta"
    return timings


@pytest.mark.parametrize("name", ["l4-b1-ne", "mse3-l2", "deep-l3", "softmax-l2"])
@pytest.mark.parametrize("p_stall", [0.0, 0.6])
def test_output_stage_matches_golden(name, p_stall):
    cfg, _ = config(name)
    timings = run_output_stage(name, n_samples=10, seed=7, p_stall=p_stall)
    if cfg.activations[-1] != "softmax":
        assert timings and timings == [cfg.layers[-1] + 2] * len(timings), \
            f"cycles from run to done with an empty FIFO: {timings}, documented n_out + 2"
