"""hdl.output under amaranth.sim, bit-exact against golden.

SoftmaxUnit = golden.tables.softmax_codes, MseGradUnit / CrossEntropyGradUnit =
golden.fixed_model.FixedMLP.output_delta; each on >= 2,000 random vectors (ties, saturated
min/max logits, wide and narrow spreads) with random valid gaps and backpressure.
"""
import os

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.config import Config
from golden.fixed import QFormat
from golden.fixed_model import FixedMLP
from golden.tables import softmax_codes
from hdl.activation import ELEMENTWISE
from hdl.output import SoftmaxUnit
from sim.testbench.stream_units import CrossEntropyGradUnit, MseGradUnit
from sim.testbench.amaranth_streams import put_all, random_stall, stream_get
from sim.testbench.output import ce_targets, logit_vectors, mse_inputs

N_VECTORS = 2000

# ---------------------------------------------------------------------------------------
# configs


def softmax_config(name: str) -> Config:
    """Softmax + cross-entropy configs with 16-bit act formats and various table shapes."""
    base = dict(learning_rate=0.5, loss="cross_entropy")
    if name == "q4.12-n10":
        return Config(layers=(4, 10), activations=("softmax",), act=QFormat(4, 12), error=QFormat(3, 13), **base)
    if name == "q6.10-n3-interp":
        return Config(layers=(4, 3), activations=("softmax",), act=QFormat(6, 10), error=QFormat(2, 12),
                      lut_interpolate=True, exp_entries_log2=6, exp_range_log2=4, recip_entries_log2=5,
                      recip_frac_bits=17, **base)
    if name == "q4.12-n2-coarse":
        return Config(layers=(4, 2), activations=("softmax",), act=QFormat(4, 12), error=QFormat(4, 12),
                      exp_entries_log2=4, exp_range_log2=2, recip_entries_log2=3, recip_frac_bits=12, **base)
    raise ValueError(name)


def mse_config(kind: str, name: str = "q4.12") -> Config:
    fmt = {"q4.12": QFormat(4, 12), "q6.10": QFormat(6, 10)}[name]
    return Config(layers=(3, 4), activations=(kind,), loss="mse", learning_rate=0.5, act=fmt,
                  error=QFormat(2, 12), lut_interpolate=(kind == "tanh"), leaky_alpha=0.1)


# ---------------------------------------------------------------------------------------
# a stream test driver: random valid gaps on the input, random ready on the output


def run_stream(dut, payloads, n_out, rng, *, p_gap=0.3, p_stall=0.4, convert=lambda v: v) -> list:
    """Push ``payloads`` into ``dut.i`` with random idle cycles before beats while taking
    ``n_out`` beats from ``dut.o`` with random stalls before raising ready
    (sim.testbench.amaranth_streams); return the converted output payloads. Afterwards no further
    beat may appear."""
    got = []

    async def producer(ctx):
        await put_all(ctx, dut.i, payloads, stall=random_stall(rng, p_gap))

    async def consumer(ctx):
        stall = random_stall(rng, p_stall)
        for _ in range(n_out):
            got.append(convert(await stream_get(ctx, dut.o, stall=stall)))
        ctx.set(dut.o.ready, 1)
        for _ in range(8):
            await ctx.tick()
            assert not ctx.get(dut.o.valid), "an extra output beat"

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return got


def cycles_without_stalls(dut, payloads, n_out) -> int:
    """Cycles from the first input beat to the last output beat, both sides never stalling."""
    cycles = 0

    async def producer(ctx):
        await put_all(ctx, dut.i, payloads)

    async def consumer(ctx):
        nonlocal cycles
        ctx.set(dut.o.ready, 1)
        taken = 0
        while taken < n_out:
            _, _, valid = await ctx.tick().sample(dut.o.valid)
            cycles += 1
            taken += valid

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return cycles


# ---------------------------------------------------------------------------------------
# softmax


@pytest.mark.parametrize("name", ["q4.12-n10", "q6.10-n3-interp", "q4.12-n2-coarse"])
def test_softmax_random_vectors_with_stalls(name):
    cfg = softmax_config(name)
    n = cfg.layers[-1]
    rng = np.random.default_rng(sum(map(ord, name)))
    vecs = logit_vectors(cfg, N_VECTORS, rng)
    want = np.stack([softmax_codes(v, cfg) for v in vecs])
    payloads = [{"z": int(z), "last": j == n - 1} for v in vecs for j, z in enumerate(v)]
    got = run_stream(SoftmaxUnit(cfg), payloads, len(payloads), rng, convert=lambda v: (v.p, v.last))
    p = np.array([g[0] for g in got]).reshape(-1, n)
    last = np.array([g[1] for g in got]).reshape(-1, n)
    bad = np.flatnonzero((p != want).any(axis=1))
    assert bad.size == 0, (f"{bad.size} vectors differ; first {vecs[bad[0]]}: hardware {p[bad[0]]}, "
                           f"golden {want[bad[0]]}")
    np.testing.assert_array_equal(last, np.tile(np.arange(n) == n - 1, (N_VECTORS, 1)))


def test_softmax_cycles_per_vector():
    """Without stalls a vector takes exactly 3n + 5 cycles (the documented formula)."""
    for name in ("q4.12-n10", "q4.12-n2-coarse"):
        cfg = softmax_config(name)
        n = cfg.layers[-1]
        rng = np.random.default_rng(3)
        vecs = logit_vectors(cfg, 20, rng)
        payloads = [{"z": int(z), "last": j == n - 1} for v in vecs for j, z in enumerate(v)]
        cycles = cycles_without_stalls(SoftmaxUnit(cfg), payloads, len(payloads))
        assert cycles == len(vecs) * SoftmaxUnit.cycles_per_vector(n)
        assert SoftmaxUnit.cycles_per_vector(n) == 3 * n + 5


def test_softmax_short_vectors():
    """``last`` before the n-th logit ends a shorter vector (softmax over what came)."""
    cfg = softmax_config("q4.12-n10")
    n = cfg.layers[-1]
    rng = np.random.default_rng(5)
    lengths = rng.integers(1, n + 1, 300)
    vecs = [v[:k] for v, k in zip(logit_vectors(cfg, len(lengths), rng), lengths)]
    payloads = [{"z": int(z), "last": j == len(v) - 1} for v in vecs for j, z in enumerate(v)]
    got = run_stream(SoftmaxUnit(cfg), payloads, len(payloads), rng, convert=lambda v: (v.p, v.last))
    want = np.concatenate([softmax_codes(v, cfg) for v in vecs])
    want_last = np.concatenate([np.arange(len(v)) == len(v) - 1 for v in vecs])
    np.testing.assert_array_equal(np.array([g[0] for g in got]), want)
    np.testing.assert_array_equal(np.array([g[1] for g in got]), want_last)


def test_softmax_rejects_an_exp_table_that_underflows():
    cfg = Config(layers=(4, 3), activations=("softmax",), loss="cross_entropy", learning_rate=0.5,
                 act=QFormat(8, 8), exp_entries_log2=2, exp_range_log2=7)
    with pytest.raises(ValueError, match="every sum would be zero"):
        SoftmaxUnit(cfg)


# ---------------------------------------------------------------------------------------
# output deltas


@pytest.mark.parametrize("name", ["q4.12-n10", "q6.10-n3-interp"])
def test_cross_entropy_grad_unit(name):
    cfg = softmax_config(name)
    n = cfg.layers[-1]
    rng = np.random.default_rng(11)
    vecs = logit_vectors(cfg, N_VECTORS, rng)
    p = np.stack([softmax_codes(v, cfg) for v in vecs])
    t = ce_targets(cfg, N_VECTORS, rng)
    mlp = FixedMLP(cfg)
    want = np.stack([mlp.output_delta(pv, tv) for pv, tv in zip(p, t)])
    payloads = [{"p": int(a), "t": int(b)} for a, b in zip(p.ravel(), t.ravel())]
    got = run_stream(CrossEntropyGradUnit(cfg), payloads, len(payloads), rng)
    np.testing.assert_array_equal(np.array(got).reshape(-1, n), want)


@pytest.mark.parametrize("kind", ELEMENTWISE)
def test_mse_grad_unit(kind):
    cfg = mse_config(kind, "q6.10" if kind in ("relu", "sigmoid") else "q4.12")
    n = cfg.layers[-1]
    rng = np.random.default_rng(sum(map(ord, kind)))
    a, t = mse_inputs(cfg, N_VECTORS, rng)
    mlp = FixedMLP(cfg)
    want = np.stack([mlp.output_delta(av, tv) for av, tv in zip(a, t)])
    assert (want == cfg.error.min_code).any() and (want == cfg.error.max_code).any(), "saturation not exercised"
    payloads = [{"a": int(x), "t": int(y)} for x, y in zip(a.ravel(), t.ravel())]
    got = run_stream(MseGradUnit(cfg), payloads, len(payloads), rng)
    np.testing.assert_array_equal(np.array(got).reshape(-1, n), want)


def test_grad_units_check_the_loss():
    with pytest.raises(ValueError, match="'cross_entropy'"):
        MseGradUnit(softmax_config("q4.12-n10"))
    with pytest.raises(ValueError, match="'mse'"):
        CrossEntropyGradUnit(mse_config("sigmoid"))


# ---------------------------------------------------------------------------------------
# the same on Icarus and Verilator (sim/testbench/output.py)


def require_simulator(name):
    """Skip locally when a simulator is missing; in CI (CI=true) a missing simulator fails."""
    from sim.runners.cocotb_run import available_simulators

    if name not in available_simulators():
        msg = f"simulator {name} is not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(msg + " (CI must run every simulator)")
        pytest.skip(msg)


UNITS = ["softmax", "ce"] + [f"mse_{k}" for k in ELEMENTWISE]


@pytest.mark.rtl
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
@pytest.mark.parametrize("name", ["q4.12-n10", pytest.param("q6.10-n3-interp", marks=pytest.mark.slow),
                                  pytest.param("q4.12-n2-coarse", marks=pytest.mark.slow)])
def test_output_units_rtl(simulator, name):
    """2,000 random vectors through the softmax, the CE delta and the MSE delta of every
    elementwise kind, all concurrently with random idle cycles and backpressure."""
    require_simulator(simulator)
    from sim.testbench.output import run_output_rtl

    cfg = softmax_config(name)
    r = run_output_rtl(cfg, simulator, vectors=N_VECTORS)
    assert not r["failures"], r["failures"][:6]
    for unit in UNITS:
        assert r[unit] == {"vectors": N_VECTORS, "beats": N_VECTORS * cfg.layers[-1], "mismatches": 0,
                           "extra_beats": 0}, (unit, r[unit])
