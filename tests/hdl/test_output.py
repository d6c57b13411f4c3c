"""hdl.output under amaranth.sim, bit-exact against golden.

SoftmaxUnit = golden.tables.softmax_codes, MseGradUnit / CrossEntropyGradUnit =
golden.fixed_model.FixedMLP.output_delta; each on >= 2,000 random vectors (ties, saturated
min/max logits, wide and narrow spreads) with random valid gaps and backpressure.
"""
import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.activations import FixedActivations
from golden.config import Config
from golden.fixed import QFormat
from golden.fixed_model import FixedMLP
from golden.tables import softmax_codes
from hdl.activation import ELEMENTWISE
from hdl.output import CrossEntropyGradUnit, MseGradUnit, SoftmaxUnit

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


def logit_vectors(cfg: Config, count: int, rng) -> np.ndarray:
    """Random logit vectors mixing the cases that matter: uniform codes, ties (all equal, or
    drawn from a few values), saturated min/max codes, narrow spreads (many non-zero exps)
    and spreads beyond the exp table range."""
    n = cfg.layers[-1]
    lo, hi = cfg.act.min_code, cfg.act.max_code
    one = cfg.act.one
    out = np.empty((count, n), dtype=np.int64)
    for v in range(count):
        kind = v % 6
        if kind == 0:
            z = rng.integers(lo, hi + 1, n)
        elif kind == 1:  # all tied, or ties among a few values
            z = rng.choice(rng.integers(lo, hi + 1, int(rng.integers(1, 4))), n)
        elif kind == 2:  # saturated logits mixed with random ones
            z = np.where(rng.random(n) < 0.5, rng.choice([lo, hi], n), rng.integers(lo, hi + 1, n))
        elif kind == 3:  # narrow spread around a random centre
            c = int(rng.integers(lo, hi + 1))
            z = np.clip(c + rng.integers(-2 * one, 2 * one + 1, n), lo, hi)
        elif kind == 4:  # a spread of a few table ranges
            c = int(rng.integers(lo // 2, hi // 2))
            z = np.clip(c + rng.integers(-(one << (cfg.exp_range_log2 + 1)), one << (cfg.exp_range_log2 + 1), n),
                        lo, hi)
        else:  # extremes only
            z = rng.choice([lo, lo + 1, hi - 1, hi, 0, -1], n)
        out[v] = z
    out[0] = lo
    out[1] = hi
    out[2] = lo
    out[2, 0] = hi
    return out


# ---------------------------------------------------------------------------------------
# a stream test driver: random valid gaps on the input, random ready on the output


def run_stream(dut, payloads, n_out, rng, *, p_gap=0.3, p_ready=0.6, convert=lambda v: v):
    """Push ``payloads`` into ``dut.i`` (random idle cycles between beats) while taking
    ``n_out`` beats from ``dut.o`` (ready low at random); return the converted output
    payloads and the cycle count. Afterwards no further beat may appear."""
    got = []

    async def producer(ctx):
        for payload in payloads:
            if p_gap and rng.random() < p_gap:
                await ctx.tick().repeat(int(rng.integers(1, 4)))
            ctx.set(dut.i.payload, payload)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)

    cycles = 0

    async def consumer(ctx):
        nonlocal cycles
        while len(got) < n_out:
            ready = p_ready >= 1 or rng.random() < p_ready
            ctx.set(dut.o.ready, ready)
            _, _, valid, value = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            cycles += 1
            if ready and valid:
                got.append(convert(value))
        ctx.set(dut.o.ready, 1)
        for _ in range(8):
            await ctx.tick()
            assert not ctx.get(dut.o.valid), "an extra output beat"

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return got, cycles


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
    got, _ = run_stream(SoftmaxUnit(cfg), payloads, len(payloads), rng, convert=lambda v: (v.p, v.last))
    p = np.array([g[0] for g in got]).reshape(-1, n)
    last = np.array([g[1] for g in got]).reshape(-1, n)
    bad = np.flatnonzero((p != want).any(axis=1))
    assert bad.size == 0, f"{bad.size} vectors differ; first {vecs[bad[0]]}: hardware {p[bad[0]]}, golden {want[bad[0]]}"
    np.testing.assert_array_equal(last, np.tile(np.arange(n) == n - 1, (N_VECTORS, 1)))


def test_softmax_cycles_per_vector():
    """Without stalls a vector takes exactly 3n + 1 cycles (the documented formula)."""
    for name in ("q4.12-n10", "q4.12-n2-coarse"):
        cfg = softmax_config(name)
        n = cfg.layers[-1]
        rng = np.random.default_rng(3)
        vecs = logit_vectors(cfg, 20, rng)
        payloads = [{"z": int(z), "last": j == n - 1} for v in vecs for j, z in enumerate(v)]
        dut = SoftmaxUnit(cfg)
        got, cycles = run_stream(dut, payloads, len(payloads), rng, p_gap=0, p_ready=1)
        assert cycles == len(vecs) * SoftmaxUnit.cycles_per_vector(n)
        assert SoftmaxUnit.cycles_per_vector(n) == 3 * n + 1


def test_softmax_short_vectors():
    """``last`` before the n-th logit ends a shorter vector (softmax over what came)."""
    cfg = softmax_config("q4.12-n10")
    n = cfg.layers[-1]
    rng = np.random.default_rng(5)
    lengths = rng.integers(1, n + 1, 300)
    vecs = [v[:k] for v, k in zip(logit_vectors(cfg, len(lengths), rng), lengths)]
    payloads = [{"z": int(z), "last": j == len(v) - 1} for v in vecs for j, z in enumerate(v)]
    got, _ = run_stream(SoftmaxUnit(cfg), payloads, len(payloads), rng, convert=lambda v: (v.p, v.last))
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
    # one-hot targets for most vectors, arbitrary codes (saturating p - t) for the rest
    t = np.zeros_like(p)
    t[np.arange(N_VECTORS), rng.integers(0, n, N_VECTORS)] = cfg.act.one
    wild = rng.random(N_VECTORS) < 0.25
    shape = (int(wild.sum()), n)
    lo, hi = cfg.act.min_code, cfg.act.max_code
    t[wild] = np.where(rng.random(shape) < 0.5, rng.choice([lo, hi, 0, -cfg.act.one], shape),
                       rng.integers(lo, hi + 1, shape))
    mlp = FixedMLP(cfg)
    want = np.stack([mlp.output_delta(pv, tv) for pv, tv in zip(p, t)])
    payloads = [{"p": int(a), "t": int(b)} for a, b in zip(p.ravel(), t.ravel())]
    got, _ = run_stream(CrossEntropyGradUnit(cfg), payloads, len(payloads), rng)
    np.testing.assert_array_equal(np.array(got).reshape(-1, n), want)


@pytest.mark.parametrize("kind", ELEMENTWISE)
def test_mse_grad_unit(kind):
    cfg = mse_config(kind, "q6.10" if kind in ("relu", "sigmoid") else "q4.12")
    n = cfg.layers[-1]
    rng = np.random.default_rng(sum(map(ord, kind)))
    lo, hi = cfg.act.min_code, cfg.act.max_code
    z = rng.integers(lo, hi + 1, (N_VECTORS, n))
    z[: N_VECTORS // 4] = rng.choice([lo, hi, 0, -1, 1], (N_VECTORS // 4, n))
    a = FixedActivations(cfg).forward(kind, z)
    # a quarter of the vectors use arbitrary stored codes (not forward outputs)
    a[-N_VECTORS // 4:] = rng.integers(lo, hi + 1, (N_VECTORS // 4, n))
    t = np.where(rng.random((N_VECTORS, n)) < 0.3, rng.choice([lo, hi, 0, cfg.act.one], (N_VECTORS, n)),
                 rng.integers(lo, hi + 1, (N_VECTORS, n)))
    mlp = FixedMLP(cfg)
    want = np.stack([mlp.output_delta(av, tv) for av, tv in zip(a, t)])
    assert (want == cfg.error.min_code).any() and (want == cfg.error.max_code).any(), "saturation not exercised"
    payloads = [{"a": int(x), "t": int(y)} for x, y in zip(a.ravel(), t.ravel())]
    got, _ = run_stream(MseGradUnit(cfg), payloads, len(payloads), rng)
    np.testing.assert_array_equal(np.array(got).reshape(-1, n), want)


def test_grad_units_check_the_loss():
    with pytest.raises(ValueError, match="'cross_entropy'"):
        MseGradUnit(softmax_config("q4.12-n10"))
    with pytest.raises(ValueError, match="'mse'"):
        CrossEntropyGradUnit(mse_config("sigmoid"))
