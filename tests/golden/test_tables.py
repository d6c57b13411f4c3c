"""golden.tables: table contents, indexing, error bounds on every input code, softmax."""
import math

import numpy as np
import pytest

from golden.config import Config, load_config
from golden.fixed import QFormat
from golden.tables import (FLOAT_FUNCS, lut_eval, recip_table, softmax_codes, softmax_error_bound,
                           table_contents, table_error_bound, table_spec)

REF = {"sigmoid": lambda x: 1.0 / (1.0 + math.exp(-x)), "tanh": math.tanh, "exp": lambda y: math.exp(-y)}

# 16-bit act formats with different table shapes (every code of each is swept)
TABLE_CONFIGS = {
    "q4.12": dict(act=QFormat(4, 12), lut_entries_log2=8, lut_range_log2=3, exp_entries_log2=8, exp_range_log2=3),
    "q6.10": dict(act=QFormat(6, 10), lut_entries_log2=6, lut_range_log2=4, exp_entries_log2=7, exp_range_log2=4),
    "q4.12-coarse": dict(act=QFormat(4, 12), lut_entries_log2=4, lut_range_log2=2, exp_entries_log2=3,
                         exp_range_log2=2),
    "q4.12-shift0": dict(act=QFormat(4, 12), lut_entries_log2=14, lut_range_log2=1, exp_entries_log2=13,
                         exp_range_log2=1),
    "q2.14-no-clamp": dict(act=QFormat(2, 14), lut_entries_log2=9, lut_range_log2=1, exp_entries_log2=9,
                           exp_range_log2=1, recip_frac_bits=15),
}


def make_cfg(name, interpolate):
    return Config(lut_interpolate=interpolate, **TABLE_CONFIGS[name])


def input_codes(kind, cfg):
    codes = cfg.act.all_codes()
    return codes[codes >= 0] if kind == "exp" else codes  # the exp table sees y = max - z >= 0


@pytest.mark.parametrize("interpolate", [False, True], ids=["plain", "interp"])
@pytest.mark.parametrize("name", list(TABLE_CONFIGS))
@pytest.mark.parametrize("kind", ["sigmoid", "tanh", "exp"])
def test_table_within_error_bound_on_every_code(kind, name, interpolate):
    cfg = make_cfg(name, interpolate)
    assert cfg.act.width == 16
    spec = table_spec(kind, cfg)
    codes = input_codes(kind, cfg)
    got = cfg.act.to_float(lut_eval(spec, table_contents(spec), codes))
    want = FLOAT_FUNCS[kind](cfg.act.to_float(codes))
    err = np.abs(got - want)
    bound = table_error_bound(spec)
    assert err.max() <= bound, f"{kind} {name}: max error {err.max()} at code {codes[err.argmax()]} > {bound}"
    assert bound < 1.0  # not vacuous


def test_bounds_are_tight_enough_to_matter():
    """With a fine interpolated table the bound is a few output lsbs; without, half a step."""
    cfg = make_cfg("q4.12", True)
    assert table_error_bound(table_spec("sigmoid", cfg)) < 2e-3
    cfg = make_cfg("q4.12", False)
    spec = table_spec("tanh", cfg)
    # centre sampling: d1 * step / 2 + lsb / 2 + tail (tanh(8) differs from 1 by ~2.3e-7)
    assert table_error_bound(spec) == pytest.approx(1.0 * (16 / 256) / 2 + 2 ** -13, abs=1e-6)


def lut_reference(kind, cfg, x_code):
    """Scalar re-implementation of the documented indexing (Python ints only)."""
    f = cfg.act.frac_bits
    if kind == "exp":
        x_lo, span_log2, ent_log2 = 0, cfg.exp_range_log2, cfg.exp_entries_log2
    else:
        x_lo, span_log2, ent_log2 = -(2 ** cfg.lut_range_log2), cfg.lut_range_log2 + 1, cfg.lut_entries_log2
    step = 2.0 ** (span_log2 - ent_log2)
    shift = span_log2 + f - ent_log2
    u = min(max(x_code - x_lo * 2 ** f, 0), 2 ** (span_log2 + f) - 1)  # offset, then clamp
    i, frac = u >> shift, u & ((1 << shift) - 1)

    def sample(x):  # an entry: f(x) quantized to the act format (nearest-even, saturated)
        return int(cfg.act.to_code(REF[kind](x)))

    if not cfg.lut_interpolate or shift == 0:
        return sample(x_lo + (i + 0.5) * step) if not cfg.lut_interpolate else sample(x_lo + i * step)
    lo, hi = sample(x_lo + i * step), sample(x_lo + (i + 1) * step)
    prod = (hi - lo) * frac  # exact, then one nearest-even rounding by 2**shift
    q, r = divmod(prod, 1 << shift)
    half = 1 << (shift - 1)
    q += 1 if (r > half or (r == half and q % 2 == 1)) else 0
    return min(max(lo + q, cfg.act.min_code), cfg.act.max_code)


@pytest.mark.parametrize("interpolate", [False, True], ids=["plain", "interp"])
@pytest.mark.parametrize("name", ["q4.12", "q6.10", "q4.12-shift0"])
@pytest.mark.parametrize("kind", ["sigmoid", "tanh", "exp"])
def test_lut_eval_follows_documented_indexing(kind, name, interpolate):
    cfg = make_cfg(name, interpolate)
    spec = table_spec(kind, cfg)
    codes = input_codes(kind, cfg)
    edges = np.array([spec.x_lo_code + k * (1 << spec.shift) + d for k in range(spec.entries + 1) for d in (-1, 0, 1)])
    sample = np.unique(np.concatenate([codes[::97], edges[(edges >= codes[0]) & (edges <= codes[-1])],
                                       codes[:3], codes[-3:]]))
    got = lut_eval(spec, table_contents(spec), sample)
    want = [lut_reference(kind, cfg, int(x)) for x in sample]
    np.testing.assert_array_equal(got, want)


def test_table_shapes_and_sampling_points():
    cfg = make_cfg("q4.12", False)
    s = table_spec("sigmoid", cfg)
    assert (s.x_lo, s.span_log2, s.entries, s.shift, s.step) == (-8, 4, 256, 8, 1 / 16)
    t = table_contents(s)
    assert t.shape == (256,)
    assert t[0] == cfg.act.to_code(REF["sigmoid"](-8 + 0.5 / 16))  # centre of interval 0
    assert t[128] == cfg.act.to_code(REF["sigmoid"](0.5 / 16))
    e = table_spec("exp", cfg)
    assert (e.x_lo, e.span_log2, e.entries, e.shift) == (0, 3, 256, 7)
    ci = make_cfg("q4.12", True)
    ti = table_contents(table_spec("tanh", ci))
    assert ti.shape == (257,)  # edges 0..entries
    assert ti[128] == 0 and ti[0] == cfg.act.to_code(-math.tanh(8.0)) and ti[256] == cfg.act.to_code(math.tanh(8.0))


def test_table_spec_rejects_unknown_kind():
    with pytest.raises(ValueError, match="relu"):
        table_spec("relu", Config())


def test_recip_table():
    cfg = Config(recip_entries_log2=4, recip_frac_bits=15)
    r = recip_table(cfg)
    m = 1 + (np.arange(16) + 0.5) / 16
    np.testing.assert_array_equal(r, np.rint(2 ** 15 / m))
    assert r[0] == round(2 ** 15 / (1 + 1 / 32)) and r.min() > 2 ** 14 and r.max() < 2 ** 15


# ---- softmax ----------------------------------------------------------------------------

def softmax_float(z):
    e = np.exp(z - z.max())
    return e / e.sum()


SOFTMAX_CONFIGS = {
    "iris": lambda: load_config("examples/iris.toml"),
    "digits": lambda: load_config("examples/digits.toml"),
    "iris-interp": lambda: load_config("examples/iris.toml").with_(lut_interpolate=True),
    "coarse": lambda: load_config("examples/iris.toml").with_(exp_entries_log2=6, recip_entries_log2=3,
                                                              recip_frac_bits=12),
    "digits-small-recip": lambda: load_config("examples/digits.toml").with_(recip_entries_log2=2, exp_range_log2=5,
                                                                            exp_entries_log2=10),
}


def softmax_vectors(cfg, rng, count=400):
    n, lo, hi = cfg.layers[-1], cfg.act.min_code, cfg.act.max_code
    out = [np.full(n, 0), np.full(n, lo), np.full(n, hi)]
    out.append(np.array([hi] + [lo] * (n - 1)))
    out.append(np.array([hi, hi] + [lo] * (n - 2)))  # tie at the top, the rest saturated low
    for k in range(count):
        m = k % 4
        if m == 0:
            z = rng.integers(lo, hi + 1, n)
        elif m == 1:
            z = cfg.act.to_code(rng.normal(0, 2, n))
        elif m == 2:  # ties
            z = rng.choice(cfg.act.to_code(rng.normal(0, 1, 2)), n)
        else:  # saturated logits mixed with ordinary ones
            z = rng.choice([lo, hi, 0, int(rng.integers(lo, hi))], n)
        out.append(np.asarray(z, dtype=np.int64))
    return out


@pytest.mark.parametrize("name", list(SOFTMAX_CONFIGS))
def test_softmax_within_error_bound(name):
    cfg = SOFTMAX_CONFIGS[name]()
    bound = softmax_error_bound(cfg)
    assert bound < 1.0
    rng = np.random.default_rng(11)
    worst = 0.0
    for z in softmax_vectors(cfg, rng):
        p_codes = softmax_codes(z, cfg)
        assert p_codes.min() >= 0 and cfg.act.to_float(p_codes.max()) <= 1.0 + bound
        p = cfg.act.to_float(p_codes)
        worst = max(worst, np.abs(p - softmax_float(cfg.act.to_float(z))).max())
        # equal logits get equal probabilities; the arg max is kept
        zs = z.tolist()
        assert p_codes[int(np.argmax(z))] == p_codes.max()
        for i in range(len(zs)):
            for j in range(len(zs)):
                if zs[i] == zs[j]:
                    assert p_codes[i] == p_codes[j]
    assert worst <= bound, f"{name}: softmax error {worst} > bound {bound}"


def test_softmax_worked_example():
    """Two equal logits: e = exp-table entry 0 each, S = 2 e, p = e * R / 2^(rf + k) -> 0.5."""
    cfg = load_config("examples/iris.toml").with_(layers=(4, 8, 2))
    spec = table_spec("exp", cfg)
    e0 = int(table_contents(spec)[0])  # exp(-step/2), step = 8/256
    assert e0 == round(math.exp(-1 / 64) * 4096)
    s = 2 * e0
    k = s.bit_length() - 1
    idx = (s >> (k - 8)) & 255
    r = int(recip_table(cfg)[idx])
    shift = cfg.recip_frac_bits + k - cfg.act.frac_bits
    num = e0 * r
    p = (num >> shift) + (1 if (num % (1 << shift)) * 2 > (1 << shift) else 0)  # no tie here
    assert (num % (1 << shift)) * 2 != (1 << shift)
    np.testing.assert_array_equal(softmax_codes(np.array([100, 100]), cfg), [p, p])
    assert abs(p - 2048) <= 8


def test_softmax_ignores_a_common_offset():
    cfg = load_config("examples/digits.toml")
    rng = np.random.default_rng(5)
    for _ in range(50):
        z = rng.integers(-3000, 3000, 10)
        np.testing.assert_array_equal(softmax_codes(z, cfg), softmax_codes(z + int(rng.integers(-5000, 5000)), cfg))
