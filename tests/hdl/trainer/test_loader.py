"""SampleLoader (hdl/trainer/loader.py) alone in amaranth.sim.

Random train and inference samples, a third of them too short or too long, sent with random
gaps (sim.testbench.amaranth_streams); ``mode_infer`` is set before each sample's first beat and
changed at random after it (the loader latches it with the first beat). A sequencer
testbench takes the buffers in turn when ``full``, reads every input and target back,
checks the buffer's mode and releases it after a random delay. Expected: exactly the
well-formed samples, in order, code for code; one ``len_error`` and one ``dropped`` pulse
per wrong-length sample; nothing loading and no buffer full at the end.
"""
import numpy as np
import pytest

from hdl.trainer.loader import SampleLoader
from sim.testbench.amaranth_streams import random_stall, stream_put

from .helpers import codes, config, simulate


@pytest.mark.parametrize("name", ["l4-b1-ne", "deep-l3", "softmax-l2"])
@pytest.mark.parametrize("p_gap", [0.0, 0.4])
def test_sample_loader(name, p_gap):
    cfg, lay = config(name)
    dut = SampleLoader(cfg, lay)
    rng = np.random.default_rng(7)
    n_in, n_out = cfg.layers[0], cfg.layers[-1]
    samples = []  # (infer, beats, well-formed)
    for _ in range(24):
        infer = bool(rng.random() < 0.4)
        expect = n_in if infer else n_in + n_out
        short, long = int(rng.integers(1, expect)), expect + int(rng.integers(1, 4))
        length = [expect, expect, short, long][int(rng.integers(4))]
        samples.append((infer, codes(rng, cfg.act, length), length == expect))
    good = [(infer, beats) for infer, beats, ok in samples if ok]
    pulses = {"len_error": 0, "dropped": 0}
    got = []

    async def host(ctx):
        stall = random_stall(rng, p_gap) if p_gap else None
        for infer, beats, _ in samples:
            ctx.set(dut.mode_infer, infer)
            for i, v in enumerate(beats):
                await stream_put(ctx, dut.s_data, {"data": int(v), "last": i == len(beats) - 1}, stall=stall)
                ctx.set(dut.mode_infer, int(rng.integers(2)))  # taken with the first beat only

    async def sequencer(ctx):
        buf = 0
        for s in range(len(good)):
            for _ in range(1000):
                if ctx.get(dut.buffers.full[buf]):
                    break
                await ctx.tick()
            else:
                raise AssertionError(f"well-formed sample {s} never fills buffer {buf} ({pulses} so far, "
                                     f"{len(samples) - len(good)} wrong-length samples sent in all)")
            infer = ctx.get(dut.buffers.infer[buf])
            words = []
            for k in range(n_in + (0 if infer else n_out)):
                port, data, addr = (dut.i_addr, dut.i_data, lay.ibase(buf) + k) if k < n_in else \
                    (dut.t_addr, dut.t_data, lay.tbase(buf) + k - n_in)
                ctx.set(port, addr)
                await ctx.tick()
                words.append(ctx.get(data))
            got.append((bool(infer), words))
            for _ in range(int(rng.integers(0, 8))):
                await ctx.tick()
            ctx.set(dut.buffers.release_buf, buf)
            ctx.set(dut.buffers.release, 1)
            await ctx.tick()
            ctx.set(dut.buffers.release, 0)
            buf ^= 1
        for _ in range(4):
            await ctx.tick()
        assert not ctx.get(dut.buffers.loading) and not ctx.get(dut.buffers.full[0]) and not ctx.get(dut.buffers.full[1])

    async def monitor(ctx):
        async for _, _, len_error, dropped in ctx.tick().sample(dut.len_error, dut.dropped):
            pulses["len_error"] += len_error
            pulses["dropped"] += dropped

    simulate(dut, host, sequencer, background=(monitor,))
    assert len(got) == len(good)
    for s, ((infer, words), (want_infer, beats)) in enumerate(zip(got, good)):
        assert infer == want_infer, f"well-formed sample {s}: infer flag {infer}, sent as {want_infer}"
        np.testing.assert_array_equal(words, beats, err_msg=f"well-formed sample {s}: buffer contents")
    bad = len(samples) - len(good)
    assert bad > 0 and pulses == {"len_error": bad, "dropped": bad}, (bad, pulses)
