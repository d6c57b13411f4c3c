"""golden.optimizers: the statements of docs/arithmetic.md §10 (fixed-point momentum and Adam).

The rsqrt table's error bound against the exact 1/(sqrt(v_hat) + eps), the beta-power
recurrence, the bias-corrected step size alpha_t, a hand-worked momentum example, Adam's
first step, state moving once per mini-batch, the LFSR draws per update, the config errors
of the optimizer keys, and XOR trained with each optimizer.
"""
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

from golden.config import (BETA_POW_FRAC_BITS, OPT_FRAC_BITS, Config, ConfigError, config_from_dict,
                           load_config)
from golden.datasets import load_dataset
from golden.fixed import QFormat
from golden.fixed_model import FixedMLP
from golden.lfsr import lane_seed, lfsr_step
from golden.optimizers import (ALPHA_MAX, OptimizerState, adam_scalars, adam_step, initial_beta_power,
                               momentum_step, next_beta_power, rsqrt_index)
from golden.tables import recip_table, rsqrt_table
from golden.train import GoldenRun, train_golden

ROOT = Path(__file__).resolve().parents[2]
XOR = ROOT / "examples" / "xor.toml"
IRIS = ROOT / "examples" / "iris.toml"
TS = (1, 2, 10, 1000, 100000)


def beta_powers(c: int, t_max: int) -> list:
    """p[t] = the fixed model's beta**t register (32 fraction bits) for t = 1..t_max (p[0] unused)."""
    p = [None, initial_beta_power(None, c)]
    for _ in range(t_max - 1):
        p.append(next_beta_power(p[-1], c))
    return p


def one_minus_beta_pow(c: int, t: int) -> float:
    """1 - beta**t for the fixed model's beta = 1 - c/2^20, accurately for beta**t near 1."""
    return -math.expm1(t * math.log1p(-c / 2.0 ** OPT_FRAC_BITS))


# ---- the rsqrt table: 1 / (sqrt(v_hat) + eps) within the stated bound --------------------------

def rsqrt_bound(cfg: Config, f, below) -> np.ndarray:
    """|r - f| <= f (1/(4N) + 1/(4 N_r) + 2^-(rf+1)) + 2^-(F_r+1)   (below E_lo: + f 2^-12)."""
    n, nr = 1 << cfg.rsqrt_entries_log2, 1 << cfg.recip_entries_log2
    rel = 1 / (4 * n) + 1 / (4 * nr) + 2.0 ** -(cfg.recip_frac_bits + 1)
    return f * rel + 2.0 ** -(cfg.adam_r_format.frac_bits + 1) + np.where(below, f * 2.0 ** -12, 0.0)


def v_codes_for_every_cell(cfg: Config, one_minus: float, seed: int) -> tuple:
    """v codes whose exact v_hat = v 2^-F_v / (1 - beta2^t) lies at the edges and the centre
    of every table cell [2^E (1 + i/N), 2^E (1 + (i+1)/N)) (E from below E_lo to above E_hi),
    plus 0, the smallest codes, the largest, and random codes spread over every octave.
    Also returns, per cell that holds a code strictly inside, (its address, its centre code)."""
    lo, hi = cfg.adam_exponents
    n = 1 << cfg.rsqrt_entries_log2
    fv, vmax = cfg.adam_v.frac_bits, cfg.adam_v.max_code
    scale = one_minus * 2.0 ** fv  # v code of v_hat = 1
    e = np.arange(lo - 3, hi + 2, dtype=np.float64)
    i = np.arange(n, dtype=np.float64)
    low_edge = (np.exp2(e)[:, None] * (1 + i[None, :] / n)).ravel() * scale
    centre = (np.exp2(e)[:, None] * (1 + (i[None, :] + 0.5) / n)).ravel() * scale
    edges = np.floor(low_edge)
    codes = [edges + d for d in (-1, 0, 1, 2)] + [np.rint(centre)]
    codes.append(np.array([0, 1, 2, 3, vmax - 1, vmax], dtype=np.float64))
    codes.append(np.arange(4096, dtype=np.float64))
    rng = np.random.default_rng(seed)
    codes.append(np.floor(np.exp2(rng.uniform(0, math.log2(vmax), 20000))))
    codes = np.unique(np.clip(np.concatenate(codes), 0, vmax)).astype(np.int64)
    # cells whose centre code lies in the middle half of the cell (low cells can be finer than v's lsb)
    addr = ((e[:, None] - lo) * n + i[None, :]).ravel().astype(np.int64)
    ee = np.broadcast_to(e[:, None], (e.size, n)).ravel()
    ii = np.broadcast_to(i[None, :], (e.size, n)).ravel()
    c = np.rint(centre)
    pos = (c / scale / np.exp2(ee) - 1) * n - ii  # where the centre code sits in its cell, 0..1
    inside = (ee >= lo) & (ee <= hi) & (c >= 1) & (c <= vmax) & (pos >= 0.25) & (pos <= 0.75)
    return codes, addr[inside], c[inside].astype(np.int64)


def rsqrt_errors(cfg: Config, t: int):
    """(ratio of |r - f| to the bound for every test code, the codes, the cell check)."""
    one_minus = one_minus_beta_pow(cfg.adam_c2, t)
    p2 = beta_powers(cfg.adam_c2, t)[t]
    p1 = beta_powers(cfg.adam_c1, t)[t]
    _, k2 = adam_scalars(cfg, p1, p2, cfg.adam_lr_code)
    codes, cell_addr, cell_centre = v_codes_for_every_cell(cfg, one_minus, seed=t)
    tab = rsqrt_table(cfg)
    r = cfg.adam_r_format.to_float(tab[rsqrt_index(cfg, codes, k2)])
    v_hat = codes * 2.0 ** -cfg.adam_v.frac_bits / one_minus
    f = 1.0 / (np.sqrt(v_hat) + cfg.epsilon)
    below = v_hat < 2.0 ** cfg.adam_exponents[0]
    ratio = np.abs(r - f) / rsqrt_bound(cfg, f, below)
    return ratio, codes, (cell_addr, rsqrt_index(cfg, cell_centre, k2))


def adam_cfg(**kw) -> Config:
    return Config(optimizer="adam", learning_rate=0.01, **kw)


RSQRT_CONFIGS = {
    "defaults": lambda: adam_cfg(),  # digits' and iris' Adam formats: N = 32, Q4.36, eps 1e-3 (Q11.7)
    "beta2-0.99": lambda: adam_cfg(beta2=0.99),
    "coarse-tables": lambda: adam_cfg(rsqrt_entries_log2=3, recip_entries_log2=4),
    # eps = 1: E_lo = -24 > -F_v, so nonzero v codes fall below the table (the + f 2^-12 term)
    "eps-1": lambda: Config(optimizer="adam", learning_rate=0.5, beta1=0.5, epsilon=1.0, adam_m=QFormat(2, 12)),
}


@pytest.mark.parametrize("t", TS)
@pytest.mark.parametrize("name", list(RSQRT_CONFIGS))
def test_rsqrt_table_within_stated_bound(name, t):
    """Every cell (its edges, its centre), v = 0, the smallest and largest codes, random codes:
    |r - f(v_hat)| within the bound of §10 for the exact v_hat = v / (1 - beta2^t)."""
    cfg = RSQRT_CONFIGS[name]()
    ratio, codes, (cell_addr, centre_addr) = rsqrt_errors(cfg, t)
    worst = int(np.argmax(ratio))
    assert ratio.max() <= 1.0, f"v code {codes[worst]}: |r - f| is {ratio[worst]:.3f} x the bound"
    assert ratio.max() > 0.5  # the bound is tight enough to catch a misplaced entry
    # the centre of every cell a code can reach reads that very cell
    np.testing.assert_array_equal(centre_addr, cell_addr)
    assert cell_addr.size >= 10 * (1 << cfg.rsqrt_entries_log2)


def test_rsqrt_cells_cover_the_table_over_t():
    """Together the t values reach every cell from the one 4 v codes wide (E = M + 2 - F_v;
    cells below are finer than v's lsb) up to the largest v / (1 - beta2)."""
    cfg = adam_cfg()
    reached = set()
    for t in TS:
        reached |= set(rsqrt_errors(cfg, t)[2][0].tolist())
    lo, _ = cfg.adam_exponents
    top_e = math.floor(math.log2(cfg.adam_v.max_code * 2.0 ** -cfg.adam_v.frac_bits
                                 / one_minus_beta_pow(cfg.adam_c2, 1)))
    m = cfg.rsqrt_entries_log2
    e_min = m + 2 - cfg.adam_v.frac_bits
    assert set(range((e_min - lo) << m, (top_e - lo) << m)) <= reached


# v' = 0 reads entry 0, the centre of the lowest cell 2^E_lo (1 + 1/(2N)); E_lo = 2 floor(log2
# eps) - 24 keeps it within 2^-12 of 1/eps. (These configs broke the bound when E_lo was
# max(-F_v, ...): r = 802.5 for f = 1000 with Q4.24.)
V0_BREAKS_BOUND = {
    "adam_v-Q4.24": lambda: adam_cfg(adam_v=QFormat(4, 24)),  # r = 802.5 for f = 1000
    "eps-2^-13": lambda: Config(optimizer="adam", learning_rate=0.05, epsilon=2.0 ** -13),  # r = 7942, f = 8192
    "rsqrt-N-64": lambda: adam_cfg(rsqrt_entries_log2=6),
}


@pytest.mark.parametrize("name", list(V0_BREAKS_BOUND))
def test_rsqrt_bound_at_v_zero(name):
    cfg = V0_BREAKS_BOUND[name]()
    _, k2 = adam_scalars(cfg, initial_beta_power(cfg, cfg.adam_c1), initial_beta_power(cfg, cfg.adam_c2),
                         cfg.adam_lr_code)
    r = cfg.adam_r_format.to_float(rsqrt_table(cfg)[rsqrt_index(cfg, np.array([0]), k2)])[0]
    f = 1.0 / cfg.epsilon
    assert abs(r - f) <= rsqrt_bound(cfg, np.array(f), np.array(True))


# ---- the beta powers and the step size alpha_t --------------------------------------------------

@pytest.mark.parametrize("beta", [0.9, 0.999, 0.5, 0.99999])
def test_beta_power_recurrence_within_t_half_lsb(beta):
    """p_t = round_ne(p_(t-1) (2^20 - c) / 2^20) stays within t 2^-33 of beta^t, beta = 1 - c/2^20."""
    c = int(round((1 - beta) * 2 ** OPT_FRAC_BITS))
    t_max = 100000
    p = beta_powers(c, t_max)
    assert p[1] == (2 ** 20 - c) * 2 ** 12  # beta^1 exactly
    t = np.arange(1, t_max + 1)
    exact = np.exp(t * math.log1p(-c / 2.0 ** 20))
    got = np.array(p[1:], dtype=np.float64) * 2.0 ** -BETA_POW_FRAC_BITS
    err = np.abs(got - exact)
    assert np.all(err <= t * 2.0 ** -33), int(t[np.argmax(err / (t * 2.0 ** -33))])
    assert p[-1] >= 0


@pytest.mark.parametrize("lr, beta1", [(0.01, 0.9), (0.05, 0.9), (0.003, 0.9), (0.2, 0.5), (0.001, 0.99)])
def test_alpha_t_is_lr_over_one_minus_beta1_pow(lr, beta1):
    """alpha_t 2^-F_alpha ~ lr / (1 - beta1^t): the reciprocal table's relative error
    1/(2 N_r) + 2^-rf, lr's own rounding to the ADAM_LR code, the power's error t 2^-33 and
    the final rounding (half an alpha lsb)."""
    cfg = Config(optimizer="adam", learning_rate=lr, beta1=beta1, adam_m=QFormat(2, 12))
    fa = cfg.adam_alpha_frac_bits
    assert 2 ** 16 <= lr / (1 - beta1) * 2 ** fa < 2 ** 17  # the most fraction bits that fit 17 bits
    p1 = beta_powers(cfg.adam_c1, max(TS))
    p2 = initial_beta_power(cfg, cfg.adam_c2)
    recip_rel = 1 / (2 << cfg.recip_entries_log2) + 2.0 ** -cfg.recip_frac_bits
    lr_rel = abs(cfg.adam_lr_code * 2.0 ** -fa - lr) / lr
    ratios = []
    for t in list(range(1, 40)) + [100, 1000, 100000]:
        alpha, _ = adam_scalars(cfg, p1[t], p2, cfg.adam_lr_code)
        om = one_minus_beta_pow(cfg.adam_c1, t)
        want = lr / om
        pow_rel = t * 2.0 ** -33 / om
        bound = want * ((1 + recip_rel) * (1 + lr_rel) * (1 + pow_rel) - 1) + 2.0 ** -(fa + 1)
        assert 0 <= alpha <= ALPHA_MAX
        err = abs(alpha * 2.0 ** -fa - want)
        assert err <= bound, (t, alpha * 2.0 ** -fa, want)
        ratios.append(err / bound)
    assert max(ratios) > 0.2  # not vacuous


def test_beta_codes_and_powers_of_the_docs():
    cfg = Config(optimizer="adam", learning_rate=0.01)
    assert cfg.adam_c2 == 1049 and cfg.adam_c1 == 104858
    assert 1 - cfg.adam_c2 / 2 ** 20 == pytest.approx(0.9989996, abs=1e-7)
    assert OptimizerState.zeros(cfg, [(1, 2)]).p2 == (2 ** 20 - 1049) << 12
    # digits' defaults: 59 exponents x 32 entries of 18 bits, entries Q11.7
    assert cfg.adam_exponents == (-44, 14) and rsqrt_table(cfg).size == 1888
    assert str(cfg.adam_r_format) == "Q11.7"
    assert int(rsqrt_table(cfg).max()) < 2 ** 17


# ---- momentum: a hand-worked example ----------------------------------------------------------

def momentum_cfg(momentum=0.5) -> Config:
    """xor-like network, all Q4.12, lr_frac_bits 12: U = 12 + 12 + 12 = 36, velocity Q4.20."""
    return Config(optimizer="momentum", momentum=momentum, lr_frac_bits=12, learning_rate=1.0)


def test_momentum_by_hand():
    cfg = momentum_cfg()
    # mu = 0.5 -> code 2^19. X = max(20 + 20, 36) = 40, so
    #   u' = requantize(2^19 u + 2^(40-36) G, 40, Q4.20) = round_ne(u / 2 + G / 2^16)
    # (u in 2^-20 units), and the step is round_ne(u' / 2^(20-12)) = round_ne(u' / 256).
    assert cfg.momentum_code == 2 ** 19 and cfg.update_frac_bits == 36 and cfg.velocity_step_shift == 8
    H = 2 ** 16  # G = H is one velocity lsb
    # w0 = 4096 (1.0), u0 = 0
    # 1: G = 1000.5 H: u = round(0 + 1000.5) = 1000 (tie, to even); step round(1000/256 = 3.906) = 4 -> w 4092
    # 2: G = 1000.5 H: u = round(500 + 1000.5) = round(1500.5) = 1500 (even); step round(5.859) = 6 -> w 4086
    # 3: G = 0:        u = 1500 / 2 = 750 exactly;                            step round(2.930) = 3 -> w 4083
    # 4: G = -1375.5 H: u = round(375 - 1375.5) = round(-1000.5) = -1000 (even); step round(-3.906) = -4 -> w 4087
    # 5: G = 1.5 H:    u = round(-500 + 1.5) = round(-498.5) = -498 (even);    step round(-1.945) = -2 -> w 4089
    grads = [1000 * H + H // 2, 1000 * H + H // 2, 0, -1375 * H - H // 2, H + H // 2]
    want_u = [1000, 1500, 750, -1000, -498]
    want_w = [4092, 4086, 4083, 4087, 4089]
    w, u = np.array([4096]), np.array([0])
    st = OptimizerState.zeros(cfg, [(1, 1)])
    ws = [np.array([[4096]])]
    for G, uu, ww in zip(grads, want_u, want_w):
        w, u = momentum_step(cfg, np.array([G]), u, w)
        assert (u.tolist(), w.tolist()) == ([uu], [ww])
        ws = st.step(ws, [np.array([[G]])], [None])  # the model's entry point keeps the state
        assert (st.s1[0].tolist(), ws[0].tolist()) == ([[uu]], [[ww]])
    assert st.p1 == st.p2 == 0  # momentum has no powers (the bus has no BETA*_POW registers)


def test_momentum_sums_exactly_then_rounds_once():
    cfg = momentum_cfg()
    H = 2 ** 16
    # u = 1001: mu u = 500.5 and G = 0.5 lsb: exactly 501. Rounding each term first would give
    # round(500.5) + round(0.5) = 500 + 0 = 500.
    _, u = momentum_step(cfg, np.array([H // 2]), np.array([1001]), np.array([0]))
    assert u.tolist() == [501]
    # the step's tie goes to even: u' = 640 -> 2.5 -> 2, u' = 384 -> 1.5 -> 2, u' = -640 -> -2
    w, u = momentum_step(cfg, np.array([640 * H, 384 * H, -640 * H]), np.zeros(3, np.int64), np.zeros(3, np.int64))
    assert u.tolist() == [640, 384, -640] and w.tolist() == [-2, -2, 2]
    # saturation: the velocity at its format's top, the weight at its bottom (never wraps)
    top = cfg.velocity.max_code
    w, u = momentum_step(cfg, np.array([top * H]), np.array([top]), np.array([cfg.weight.min_code + 1]))
    assert u.tolist() == [top] and w.tolist() == [cfg.weight.min_code]


def test_momentum_is_pytorch_heavy_ball_with_lr_folded_in():
    """Over many steps with exactly representable numbers, w follows PyTorch's
    v = mu v + g; w -= lr v within the roundings (u = lr v)."""
    cfg = momentum_cfg(momentum=0.875)
    rng = np.random.default_rng(3)
    g = rng.integers(-2 ** 18, 2 ** 18, size=(200, 8)) * 2 ** 8  # lr g in 2^-36 units, |lr g| < 2^-10
    w, u = np.zeros(8, np.int64), np.zeros(8, np.int64)
    wf, vf = np.zeros(8), np.zeros(8)
    for G in g:
        w, u = momentum_step(cfg, G, u, w)
        vf = 0.875 * vf + G * 2.0 ** -36
        wf -= vf
    # velocity: each update adds at most half a velocity lsb, decaying by mu: <= 2^-21 / (1 - mu)
    np.testing.assert_allclose(u * 2.0 ** -20, vf, atol=2.0 ** -21 / (1 - 0.875))
    # weights: each step rounds by at most half a weight lsb on top of the velocity's error
    assert np.abs(w * 2.0 ** -12 - wf).max() <= 200 * (2.0 ** -13 + 2.0 ** -21 / (1 - 0.875))
    assert np.abs(w * 2.0 ** -12 - wf).max() > 2.0 ** -12  # the weights did move and round


# ---- Adam: the first update -----------------------------------------------------------------------

def test_adam_first_update_is_lr_sign_g_for_large_gradients():
    """From zero state (t = 1): m = (1 - beta1) g, v = (1 - beta2) g^2, so m / (1 - beta1) = g
    and v / (1 - beta2) = g^2, and the step is lr g / (|g| + eps) -> lr sign(g) for |g| >> eps.

    Tolerance: |step - lr sign g| <= lr eps / (|g| + eps)                     (the float step itself)
               + lr |g| / (|g| + eps) ((1 + e_m)(1 + e_a)(1 + e_r)(1 + e_v) - 1)
               + 2^-(F_w + 1)                                               (the step's rounding)
    e_m = 2^-(F_m+1) / (c1 2^-20 |g|)  (m' rounded to adam_m), e_a = alpha_t's relative error
    (recip table, lr code, half an alpha lsb), e_r = the rsqrt bound over f, e_v = v's rounding
    2^-(F_v+1) / (c2 2^-20 g^2), halved by the square root."""
    lr = 0.05
    cfg = load_config(IRIS).with_(optimizer="adam", learning_rate=lr)
    g = np.array([1.0, -1.0, 0.5, -0.25, 1.9, -1.999, 0.1, -0.05, 0.75, 0.0625])
    G = np.rint(g * 2.0 ** cfg.update_frac_bits).astype(np.int64)
    st = OptimizerState.zeros(cfg, [(1, g.size)])
    w_new = st.step([np.zeros((1, g.size), np.int64)], [G[None, :]], [None])[0][0]
    step = -w_new * 2.0 ** -cfg.weight.frac_bits

    fa, eps = cfg.adam_alpha_frac_bits, cfg.epsilon
    c1, c2 = cfg.adam_c1 * 2.0 ** -20, cfg.adam_c2 * 2.0 ** -20
    e_m = 2.0 ** -(cfg.adam_m.frac_bits + 1) / (c1 * np.abs(g))
    a_want = lr / c1
    e_a = (1 / (2 << cfg.recip_entries_log2) + 2.0 ** -cfg.recip_frac_bits
           + abs(cfg.adam_lr_code * 2.0 ** -fa - lr) / lr + 2.0 ** -(fa + 1) / a_want)
    f = 1 / (np.abs(g) + eps)
    e_r = rsqrt_bound(cfg, f, np.zeros(g.size, bool)) / f
    e_v = 0.5 * 2.0 ** -(cfg.adam_v.frac_bits + 1) / (c2 * g * g)
    tol = (lr * eps / (np.abs(g) + eps) + lr * np.abs(g) / (np.abs(g) + eps)
           * ((1 + e_m) * (1 + e_a) * (1 + e_r) * (1 + e_v) - 1) + 2.0 ** -(cfg.weight.frac_bits + 1))
    assert np.all(tol < 0.05 * lr)  # the derivation says "about lr sign(g)": within 5 %
    err = np.abs(step - lr * np.sign(g))
    assert np.all(err <= tol), (step, err / tol)
    # the state after the first update: m = (1 - beta1) g, v = (1 - beta2) g^2, both rounded once
    np.testing.assert_allclose(cfg.adam_m.to_float(st.s1[0][0]), c1 * g, atol=2.0 ** -(cfg.adam_m.frac_bits + 1))
    gm = cfg.adam_m.to_float(cfg.adam_m.to_code(g))  # v squares g as held in adam_m
    assert np.all(np.abs(cfg.adam_v.to_float(st.s2[0][0]) - c2 * gm * gm) <= 2.0 ** -(cfg.adam_v.frac_bits + 1))
    assert (st.p1, st.p2) == (next_beta_power(initial_beta_power(cfg, cfg.adam_c1), cfg.adam_c1),
                              next_beta_power(initial_beta_power(cfg, cfg.adam_c2), cfg.adam_c2))


def test_adam_lanes_multiply_by_the_batch_mean_not_lr():
    """Adam's G is the plain batch mean: the LR register holds round(2^lr_frac_bits / B),
    whatever the learning rate; the learning rate is the ADAM_LR code."""
    base = load_config(XOR).with_(optimizer="adam", batch_size=4)
    for lr in (0.01, 0.05, 0.3):
        cfg = base.with_(learning_rate=lr)
        assert cfg.lr_code == round(2 ** 12 / 4) == 1024
        assert cfg.adam_lr_code == round(lr * 2 ** cfg.adam_alpha_frac_bits)


def test_adam_stochastic_step_uses_the_low_bits_of_the_draw():
    """W' = W - floor((m' r alpha + rho) / 2^S) with rho the low S bits of the draw."""
    cfg = load_config(IRIS).with_(optimizer="adam", learning_rate=0.05, rounding="stochastic")
    rng = np.random.default_rng(7)
    G = rng.integers(-2 ** 38, 2 ** 38, size=40)
    m = rng.integers(-2 ** 15, 2 ** 15, size=40)
    v = rng.integers(0, 2 ** 30, size=40)
    w = rng.integers(-2 ** 14, 2 ** 14, size=40)
    rand = rng.integers(0, 2 ** 32, size=40)
    k2 = (recip_table(cfg)[100], 3)
    alpha = 12345
    w_sr, m1, v1 = adam_step(cfg, G, m, v, w, alpha, k2, rand)
    w_ne, m2, v2 = adam_step(cfg.with_(rounding="nearest_even"), G, m, v, w, alpha, k2)
    np.testing.assert_array_equal(m1, m2)  # the state never draws
    np.testing.assert_array_equal(v1, v2)
    r = rsqrt_table(cfg)[rsqrt_index(cfg, v1, k2)]
    S = cfg.adam_step_shift
    want = [int(wi) - ((int(mi) * int(ri) * alpha + (int(rho) & ((1 << S) - 1))) >> S)
            for wi, mi, ri, rho in zip(w, m1, r, rand)]
    np.testing.assert_array_equal(w_sr, np.clip(want, cfg.weight.min_code, cfg.weight.max_code))
    assert np.any(w_sr != w_ne)


# ---- state moves once per mini-batch -----------------------------------------------------------

@pytest.mark.parametrize("optimizer, lr", [("momentum", 0.5), ("adam", 0.05)])
def test_state_moves_once_per_batch(optimizer, lr):
    """B = 3: after samples 1 and 2 parameters and state are unchanged; sample 3 updates both
    (and Adam's powers step once); samples 4 and 5 change nothing again."""
    cfg = load_config(XOR).with_(optimizer=optimizer, learning_rate=lr, batch_size=3)
    ds = load_dataset(cfg)
    X, T = cfg.act.to_code(ds.X_train), cfg.act.to_code(ds.targets(ds.y_train, 1))
    m = FixedMLP(cfg)

    def snapshot():
        return [p.copy() for p in m.params], m.opt.copy_state()

    def same(a, b):
        (pa, sa), (pb, sb) = a, b
        return (all(np.array_equal(x, y) for x, y in zip(pa, pb))
                and all(np.array_equal(x, y) for x, y in zip(sa["s1"] + sa["s2"], sb["s1"] + sb["s2"]))
                and (sa["p1"], sa["p2"]) == (sb["p1"], sb["p2"]))

    start = snapshot()
    for i in range(2):
        tr = m.train_sample(X[i], T[i])
        assert tr.params_after is None and tr.state_after is None
        assert same(snapshot(), start)
    tr = m.train_sample(X[2], T[2])
    after = snapshot()
    assert tr.state_after is not None and not same(after, start)
    assert any(a.any() for a in after[1]["s1"])
    if optimizer == "adam":
        assert any(a.any() for a in after[1]["s2"])
        assert after[1]["p1"] == next_beta_power(start[1]["p1"], cfg.adam_c1)
        assert after[1]["p2"] == next_beta_power(start[1]["p2"], cfg.adam_c2)
    else:
        assert not any(a.any() for a in after[1]["s2"]) and after[1]["p1"] == start[1]["p1"]
    for i in (3, 0):
        assert m.train_sample(X[i], T[i]).state_after is None
        assert same(snapshot(), after)


def test_float_and_fixed_count_the_same_updates():
    """Batches run across epochs: 5 xor epochs with B = 3 are 6 updates for both models."""
    cfg = load_config(XOR).with_(optimizer="adam", learning_rate=0.05, batch_size=3)
    run = train_golden(cfg, load_dataset(cfg), epochs=5)
    p = beta_powers(cfg.adam_c1, 7)
    assert run.fixed.opt.p1 == p[7] and run.flt.step_count == 6


# ---- stochastic rounding: the same LFSR draws for every optimizer -------------------------------

def test_lfsr_draws_per_update_are_the_same_for_every_optimizer():
    """One draw per parameter and update, whatever the optimizer: after every update each
    lane's LFSR has advanced by its parameter count (rows j = lane, lane + P, ... of every
    layer, times the columns), exactly as with SGD."""
    base = load_config(XOR).with_(layers=(2, 5, 4, 1), activations=("tanh", "sigmoid", "sigmoid"),
                                  rounding="stochastic", lanes=3, batch_size=2, sr_seed=77)
    cfgs = {"sgd": base, "momentum": base.with_(optimizer="momentum", learning_rate=0.5),
            "adam": base.with_(optimizer="adam", learning_rate=0.05)}
    rng = np.random.default_rng(5)
    X = base.act.to_code(rng.uniform(0, 1, (12, 2)))
    T = base.act.to_code(rng.uniform(0, 1, (12, 1)))
    per_lane = [sum(len(range(p, n_out, base.lanes)) * (n_in + 1)
                    for n_in, n_out in zip(base.layers[:-1], base.layers[1:])) for p in range(base.lanes)]
    states = {name: [] for name in cfgs}
    params = {}
    for name, cfg in cfgs.items():
        m = FixedMLP(cfg)
        for x, t in zip(X, T):
            if m.train_sample(x, t).params_after is not None:
                states[name].append([g.state for g in m.lfsrs])
        params[name] = m.params
    want = [lane_seed(base.sr_seed, p) for p in range(base.lanes)]
    expected = []
    for _ in range(6):
        for p in range(base.lanes):
            for _ in range(per_lane[p]):
                want[p] = lfsr_step(want[p])
        expected.append(list(want))
    assert states["sgd"] == states["momentum"] == states["adam"] == expected
    # ... and the optimizers did differ
    assert not np.array_equal(params["sgd"][0], params["momentum"][0])
    assert not np.array_equal(params["sgd"][0], params["adam"][0])


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_nearest_even_never_moves_the_lfsrs(optimizer):
    cfg = load_config(XOR).with_(optimizer=optimizer, learning_rate=0.1)
    m = FixedMLP(cfg)
    ds = load_dataset(cfg)
    for x, t in zip(cfg.act.to_code(ds.X_train), cfg.act.to_code(ds.targets(ds.y_train, 1))):
        m.train_sample(x, t)
    assert [g.state for g in m.lfsrs] == [lane_seed(cfg.sr_seed, p) for p in range(cfg.lanes)]


# ---- config errors of the optimizer keys ------------------------------------------------------

def with_(changes):
    """The xor example with ``{"section.key": value}`` changes."""
    d = tomllib.loads(XOR.read_text())
    for dotted, v in changes.items():
        sec, key = dotted.split(".", 1)
        d.setdefault(sec, {})[key] = v
    return d


Q = lambda i, f: {"int_bits": i, "frac_bits": f}  # noqa: E731
ADAM = {"training.optimizer": "adam", "training.learning_rate": 0.01}
MOM = {"training.optimizer": "momentum", "training.learning_rate": 0.2}

# (id, changes, field named, text of the value, text of what is allowed)
BAD = [
    ("optimizer-adamw", {"training.optimizer": "adamw"}, "training.optimizer", "'adamw'",
     "allowed: sgd, momentum, adam"),
    ("optimizer-case", {"training.optimizer": "Adam"}, "training.optimizer", "'Adam'", "allowed: sgd, momentum, adam"),
    ("optimizer-number", {"training.optimizer": 1}, "training.optimizer", "1", "allowed: sgd, momentum, adam"),
    ("epsilon-pytorch-default", {**ADAM, "training.epsilon": 1e-8}, "training.epsilon", "1e-08", "[2**-13"),
    ("epsilon-above-1", {**ADAM, "training.epsilon": 2.0}, "training.epsilon", "2.0", "1]"),
    ("epsilon-string", {**ADAM, "training.epsilon": "tiny"}, "training.epsilon", "'tiny'", "a number in"),
    ("beta2-one", {**ADAM, "training.beta2": 1.0}, "training.beta2", "1.0", "a number in (0, 1)"),
    ("beta1-zero", {**ADAM, "training.beta1": 0}, "training.beta1", "0", "a number in (0, 1)"),
    ("beta1-bool", {**ADAM, "training.beta1": True}, "training.beta1", "True", "a number in (0, 1)"),
    ("beta2-rounds-to-one", {**ADAM, "training.beta2": 1 - 2.0 ** -22}, "training.beta2", "0.99999976",
     "1 - beta2 must round to a code in [1, 2**20) (it gives 0)"),
    ("momentum-one", {**MOM, "training.momentum": 1.0}, "training.momentum", "1.0", "a number in [0, 1)"),
    ("momentum-negative", {**MOM, "training.momentum": -0.1}, "training.momentum", "-0.1", "a number in [0, 1)"),
    ("momentum-rounds-to-one", {**MOM, "training.momentum": 1 - 2.0 ** -22}, "training.momentum", "0.99999976",
     "must round to a code below 2**20"),
    ("adam_m-20-bits", {**ADAM, "formats.adam_m": Q(4, 16)}, "formats.adam_m", "'Q4.16'", "2..18 bits wide"),
    ("adam_v-44-bits", {**ADAM, "formats.adam_v": Q(4, 40)}, "formats.adam_v", "'Q4.40'", "at most 42 bits"),
    ("adam_v-too-few-int-bits", {**ADAM, "formats.adam_v": Q(2, 36)}, "formats.adam_v", "'Q2.36'", "int_bits >= 3"),
    ("adam_m-not-a-format", {**ADAM, "formats.adam_m": 18}, "formats.adam_m", "18", "{int_bits = N, frac_bits = M}"),
    ("velocity-34-bits", {**MOM, "formats.velocity": Q(4, 30)}, "formats.velocity", "'Q4.30'", "at most 32 bits"),
    ("velocity-narrow-int", {**MOM, "formats.velocity": Q(2, 20)}, "formats.velocity", "'Q2.20'",
     "int_bits >= weight.int_bits (4)"),
    ("velocity-coarser-than-weight", {**MOM, "formats.velocity": Q(4, 10)}, "formats.velocity", "'Q4.10'",
     "frac_bits in [12, 44]"),
    ("rsqrt-entries-0", {**ADAM, "lut.rsqrt_entries_log2": 0}, "lut.rsqrt_entries_log2", "0", "[1, 8]"),
    ("rsqrt-table-too-big", {**ADAM, "lut.rsqrt_entries_log2": 8}, "lut.rsqrt_entries_log2", "8",
     "59 exponents x 2**rsqrt_entries_log2 entries; at most 8192"),
    ("adam-lr-over-one-minus-beta1", {**ADAM, "training.learning_rate": 2000.0}, "training.learning_rate",
     "2000.0", "below 2**14"),
    ("adam-batch-multiplier-0", {**ADAM, "formats.lr_frac_bits": 2, "training.batch_size": 16},
     "training.learning_rate", "0.01", "2**lr_frac_bits / batch_size"),
    ("adam-lr-too-small", {**ADAM, "training.learning_rate": 5e-6}, "training.learning_rate", "5e-06",
     "4 significant bits"),
]


@pytest.mark.parametrize("changes, field, value_text, allowed_text", [pytest.param(*c[1:], id=c[0]) for c in BAD])
def test_optimizer_config_errors_name_key_value_and_what_is_allowed(changes, field, value_text, allowed_text):
    with pytest.raises(ConfigError) as info:
        config_from_dict(with_(changes))
    e, msg = info.value, str(info.value)
    assert e.field == field, msg
    assert f"'{field}'" in msg and value_text in msg, msg
    assert allowed_text in e.allowed, msg


def test_every_bad_optimizer_case_is_good_without_its_last_change():
    """The bases of the cases above are valid: the error comes from the changed key."""
    for base in (ADAM, MOM):
        config_from_dict(with_(base))
    config_from_dict(with_({**ADAM, "formats.adam_m": Q(2, 16), "formats.adam_v": Q(3, 36),
                            "training.epsilon": 2.0 ** -13, "training.beta2": 0.99999,
                            "lut.rsqrt_entries_log2": 6}))
    config_from_dict(with_({**MOM, "training.momentum": 0.999999, "formats.velocity": Q(4, 28)}))


# ---- training: XOR with each optimizer --------------------------------------------------------

@pytest.mark.parametrize("optimizer, changes, epochs", [
    ("sgd", {}, 500),                                           # examples/xor.toml as it is
    ("momentum", {"learning_rate": 0.2, "momentum": 0.9}, 250),  # lr / (1 - mu) = 2, SGD's
    ("adam", {"learning_rate": 0.05}, 250),
])
def test_fixed_model_trains_xor_with_each_optimizer(optimizer, changes, epochs):
    cfg = load_config(XOR).with_(optimizer=optimizer, **changes)
    run = train_golden(cfg, load_dataset(cfg), epochs=epochs)
    out = run.fixed_outputs(run.q.X_test)[:, 0]
    np.testing.assert_array_equal(out > 0.5, [False, True, True, False])
    assert run.history[-1].fixed_test_accuracy == 1.0
    assert run.history[-1].fixed_loss < 0.02 < run.history[0].fixed_loss
