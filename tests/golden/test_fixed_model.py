"""golden.fixed_model: hand-computed steps, mini-batches, stochastic-rounding order, no overflow."""
from fractions import Fraction

import numpy as np
import pytest

from golden.activations import FixedActivations
from golden.config import Config, load_config
from golden.fixed import QFormat, bits_for_signed
from golden.fixed_model import FixedMLP, init_params, init_params_float

Q412 = QFormat(4, 12)


def linear_cfg(layers, **kw):
    base = dict(layers=layers, activations=("linear",) * (len(layers) - 1), loss="mse", act=Q412, weight=Q412,
                error=Q412, lr_frac_bits=12, learning_rate=1.0, lanes=1)
    base.update(kw)
    return Config(**base)


def rne(num: int, shift: int) -> int:
    return round(Fraction(num, 2 ** shift))


# ---- hand-computed cases ----------------------------------------------------------------

def test_one_layer_linear_by_hand():
    """1-1 linear, all Q4.12, lr = 1 (lr_code 4096, lr_frac_bits 12): update shift 12+12+12-12 = 24."""
    cfg = linear_cfg((1, 1))
    assert cfg.lr_code == 4096 and cfg.update_shift == 24
    m = FixedMLP(cfg, [np.array([[2049, 1024]])])  # w = 0.500244, b = 0.25
    x, t = 3072, 0  # x = 0.75, target 0
    tr = m.train_sample(np.array([x]), np.array([t]))
    # forward: acc = 2049*3072 + 1024*4096 = 10488832 (frac 24); / 4096 = 2560.75 -> 2561
    assert tr.z[0].tolist() == [2561] and tr.output.tolist() == [2561]
    # output delta (MSE, linear): e = 2561 - 0; d = 1.0 = 4096; e*d / 4096 = 2561
    assert tr.delta[0].tolist() == [2561]
    # update: w -= round(4096*2561*3072 / 2^24) = round(1920.75) = 1921 -> 128
    #         b -= round(4096*2561*4096 / 2^24) = 2561                 -> -1537
    assert m.params[0].tolist() == [[128, -1537]]
    assert tr.params_after[0].tolist() == [[128, -1537]]


def test_two_layer_linear_by_hand_uses_pre_update_weights():
    """1-1-1 linear: ties to even in the forward pass and in the hidden backward sum."""
    cfg = linear_cfg((1, 1, 1))
    m = FixedMLP(cfg, [np.array([[2049, 1024]]), np.array([[6144, -2048]])])  # w1 = 1.5, b1 = -0.5
    tr = m.train_sample(np.array([3072]), np.array([4093]))
    # layer 0 as above: z0 = a1 = 2561
    # layer 1: acc = 6144*2561 - 2048*4096 = 7346176; / 4096 = 1793.5, a tie -> even 1794
    assert tr.z[0].tolist() == [2561] and tr.z[1].tolist() == [1794]
    # delta1 = (1794 - 4093) * 4096 / 4096 = -2299
    assert tr.delta[1].tolist() == [-2299]
    # hidden sum s = 6144 * -2299 / 4096 = -3448.5, a tie -> even -3448 (floor would give -3449);
    # delta0 = s * 1.0 = -3448. With the updated w1 it would be 7581 * -2299 / 4096 = -4255.1...
    assert tr.delta[0].tolist() == [-3448]
    # updates: w1 -= round(-2299*2561/4096) = round(-1437.44) = -1437 -> 7581; b1 -= -2299 -> 251
    #          w0 -= -3448*3072/4096 = -2586 -> 4635;                   b0 -= -3448 -> 4472
    assert m.params[1].tolist() == [[7581, 251]]
    assert m.params[0].tolist() == [[4635, 4472]]


def test_hidden_backward_sum_saturates():
    cfg = linear_cfg((1, 1, 1))
    mx = Q412.max_code
    m = FixedMLP(cfg, [np.array([[0, 0]]), np.array([[mx, 0]])])
    tr = m.forward(np.array([4096]))
    deltas = m.backward(tr, np.array([Q412.min_code]))
    # e = 0 - (-8) = 8.0 -> delta1 saturates at 32767; s = 32767 * 32767 / 4096 = 262128 -> 32767
    assert deltas[1].tolist() == [mx] and deltas[0].tolist() == [mx]


def test_forward_saturates_instead_of_wrapping():
    cfg = linear_cfg((2, 1))
    mx, mn = Q412.max_code, Q412.min_code
    m = FixedMLP(cfg, [np.array([[mx, mx, mx]])])
    assert m.forward(np.array([mx, mx])).z[0].tolist() == [mx]
    assert m.forward(np.array([mn, mn])).z[0].tolist() == [mn]  # 2*(-8*7.99) + 8 = -119.9 -> min
    m = FixedMLP(cfg, [np.array([[mn, mn, mn]])])
    assert m.forward(np.array([mn, mn])).z[0].tolist() == [mx]  # (-8)(-8)*2 - 8 = 120 -> max


def test_delta_and_update_saturate():
    cfg = linear_cfg((1, 1), learning_rate=3.0)  # lr_code 12288
    mx, mn = Q412.max_code, Q412.min_code
    m = FixedMLP(cfg, [np.array([[mx, 0]])])
    tr = m.train_sample(np.array([4096]), np.array([mn]))  # z = 7.9998, target -8
    # e = 32767 + 32768 = 65535 (15.9998), times d = 1.0: saturates to the error max
    assert tr.delta[0].tolist() == [mx]
    # step = 12288 * 32767 * 4096 / 2^24 = 3 * 32767 = 98301 for both w and b:
    # w = 32767 - 98301 and b = -98301 saturate to the minimum (16-bit wrapping would give 2 and -32765)
    assert m.params[0].tolist() == [[mn, mn]]


def test_sigmoid_output_delta_and_derivative_by_hand():
    cfg = Config(layers=(1, 1), activations=("sigmoid",), loss="mse", learning_rate=1.0)
    acts = FixedActivations(cfg)
    # sigmoid' from the stored output: a = 0.75 (3072): a(1-a) = 3072*1024 / 4096 = 768 (0.1875)
    assert acts.derivative("sigmoid", np.array([3072])).tolist() == [768]
    # a = 1 lsb: 1*4095 / 4096 = 0.9998 -> 1
    assert acts.derivative("sigmoid", np.array([1])).tolist() == [1]
    # tanh' = 1 - a^2: a = 0.5 -> 0.75 = 3072; a = 3 lsb: (4096^2 - 9)/4096 = 4095.9978 -> 4096
    assert acts.derivative("tanh", np.array([2048, 3])).tolist() == [3072, 4096]
    m = FixedMLP(cfg, [np.array([[0, 0]])])
    # e = 3072 - 1024 = 2048 (0.5); d = 768; e*d / 4096 = 384 (0.09375)
    assert m.output_delta(np.array([3072]), np.array([1024])).tolist() == [384]


def test_relu_family_derivatives_from_stored_sign():
    cfg = Config(layers=(1, 1), activations=("leaky_relu",), leaky_alpha=0.125)
    acts = FixedActivations(cfg)
    assert cfg.leaky_alpha_code == 512
    z = np.array([-4096, -12, -4, -1, 0, 1, 4096])
    # leaky forward z * 512 / 4096: -512, -1.5 -> -2 and -0.5 -> 0 (ties to even), -0.125 -> 0, 0, 1, 4096
    a = acts.forward("leaky_relu", z)
    assert a.tolist() == [-512, -2, 0, 0, 0, 1, 4096]
    # derivative from the sign of the stored output: alpha unless a > 0
    assert acts.derivative("leaky_relu", a).tolist() == [512] * 5 + [4096, 4096]
    r = acts.forward("relu", z)
    assert r.tolist() == [0, 0, 0, 0, 0, 1, 4096]
    assert acts.derivative("relu", r).tolist() == [0] * 5 + [4096, 4096]
    assert acts.derivative("linear", z).tolist() == [4096] * 7
    # alpha = 0.1 quantizes to round(409.6) = 410; z = -5: -2050 / 4096 = -0.5005 -> -1 (not a tie)
    cfg = Config(layers=(1, 1), activations=("leaky_relu",), leaky_alpha=0.1)
    assert cfg.leaky_alpha_code == 410
    assert FixedActivations(cfg).forward("leaky_relu", np.array([-5, -4096])).tolist() == [-1, -410]


def test_softmax_ce_output_delta_is_p_minus_t_in_error_format():
    cfg = load_config("examples/iris.toml")  # act Q4.12, error Q2.14
    m = FixedMLP(cfg)
    # p - t in act frac 12, requantized to frac 14: exact left shift by 2
    assert m.output_delta(np.array([1000, 3000, 96]), np.array([0, 4096, 0])).tolist() == [4000, -4384, 384]


# ---- mini-batches -------------------------------------------------------------------------

def sample_stream(cfg, n, seed):
    rng = np.random.default_rng(seed)
    X = cfg.act.to_code(rng.uniform(0, 1, (n, cfg.layers[0])))
    T = cfg.act.to_code(rng.uniform(0, 1, (n, cfg.layers[-1])))
    return X, T


def exact_terms(cfg, params, x, t):
    """lr * delta * a (bias: a = 1.0) of one sample as exact ints, from an unchanged model."""
    ref = FixedMLP(cfg, params)
    tr = ref.forward(x)
    deltas = ref.backward(tr, t)
    return [cfg.lr_code * np.outer(deltas[l], np.append(tr.a[l], cfg.act.one)) for l in range(cfg.n_layers)]


def test_batch_of_four_updates_once_with_one_rounding():
    cfg = load_config("examples/xor.toml").with_(batch_size=4, learning_rate=1.3)
    m = FixedMLP(cfg)
    p0 = [p.copy() for p in m.params]
    X, T = sample_stream(cfg, 4, 1)
    total = [np.zeros_like(p) for p in p0]
    per_sample_rounded = [np.zeros_like(p) for p in p0]
    for i in range(4):
        terms = exact_terms(cfg, p0, X[i], T[i])
        tr = m.train_sample(X[i], T[i])
        for l in range(cfg.n_layers):
            total[l] += terms[l]
            per_sample_rounded[l] += np.vectorize(lambda v: rne(int(v), cfg.update_shift))(terms[l])
        if i < 3:
            assert tr.params_after is None
            for a, b in zip(m.params, p0):
                np.testing.assert_array_equal(a, b)
    assert tr.params_after is not None
    differs = False
    for l in range(cfg.n_layers):
        step = np.vectorize(lambda v: rne(int(v), cfg.update_shift))(total[l])
        want = np.clip(p0[l] - step, cfg.weight.min_code, cfg.weight.max_code)
        np.testing.assert_array_equal(m.params[l], want)
        differs |= bool(np.any(step != per_sample_rounded[l]))
    assert differs, "test data should distinguish one rounding from four"
    assert m.batch_count == 0 and all(not g.any() for g in m.grad)


def test_lr_code_is_learning_rate_over_batch():
    cfg = load_config("examples/xor.toml").with_(batch_size=4, learning_rate=1.3)
    assert cfg.lr_code == round(1.3 / 4 * 2 ** 12) == 1331
    assert load_config("examples/digits.toml").lr_code == round(0.02 * 2 ** 16) == 1311


# ---- stochastic rounding order ------------------------------------------------------------

MASK = 0x80200003


def my_step(s):
    return (s >> 1) ^ (MASK if s & 1 else 0)


def my_lane_seed(seed, lane):
    return (seed + lane * 0x9E3779B9) % 2 ** 32 or 1


def reference_stochastic_update(cfg, params, totals, states):
    """The documented order: each lane walks layers last to first, its rows j = lane, lane + P,
    ... ascending, columns 0..n_in (bias last); advance its LFSR, use the low bits."""
    P, sh = cfg.lanes, cfg.update_shift
    new = [p.copy() for p in params]
    for l in range(cfg.n_layers - 1, -1, -1):
        n_out, n_cols = params[l].shape
        for lane in range(P):
            for j in range(lane, n_out, P):
                for k in range(n_cols):
                    states[lane] = my_step(states[lane])
                    r = states[lane] & ((1 << sh) - 1)
                    step = (int(totals[l][j, k]) + r) >> sh  # floor((g + r) / 2^shift)
                    new[l][j, k] = min(max(int(params[l][j, k]) - step, cfg.weight.min_code), cfg.weight.max_code)
    return new


@pytest.mark.parametrize("lanes, batch", [(1, 1), (3, 2), (4, 1), (8, 3)])
def test_stochastic_update_follows_documented_lane_order(lanes, batch):
    cfg = load_config("examples/xor.toml").with_(layers=(2, 5, 4, 1), activations=("tanh", "sigmoid", "sigmoid"),
                                                 rounding="stochastic", lanes=lanes, batch_size=batch, sr_seed=99)
    m = FixedMLP(cfg)
    states = [my_lane_seed(99, p) for p in range(lanes)]
    params = [p.copy() for p in m.params]
    X, T = sample_stream(cfg, 3 * batch, 2)
    for u in range(3):  # three updates: the LFSR states carry over
        totals = [np.zeros_like(p) for p in params]
        for i in range(u * batch, (u + 1) * batch):
            for l, t in enumerate(exact_terms(cfg, params, X[i], T[i])):
                totals[l] += t
            m.train_sample(X[i], T[i])
        params = reference_stochastic_update(cfg, params, totals, states)
        for a, b in zip(m.params, params):
            np.testing.assert_array_equal(a, b)
        assert [g.state for g in m.lfsrs] == states


def test_lanes_matter_only_for_stochastic_rounding():
    base = load_config("examples/xor.toml").with_(layers=(2, 5, 3, 1), activations=("sigmoid",) * 3)
    X, T = sample_stream(base, 20, 3)

    def run(**kw):
        m = FixedMLP(base.with_(**kw))
        for x, t in zip(X, T):
            m.train_sample(x, t)
        return m

    ne = [run(lanes=p) for p in (1, 2, 3, 8)]
    for other in ne[1:]:
        for a, b in zip(ne[0].params, other.params):
            np.testing.assert_array_equal(a, b)
    assert all(g.state == my_lane_seed(base.sr_seed, p) for p, g in enumerate(ne[0].lfsrs))  # untouched
    sr = [run(lanes=p, rounding="stochastic") for p in (1, 2, 3)]
    for other in sr[1:]:
        assert any(np.any(a != b) for a, b in zip(sr[0].params, other.params))
    sr_seed2 = run(lanes=1, rounding="stochastic", sr_seed=2)
    assert any(np.any(a != b) for a, b in zip(sr[0].params, sr_seed2.params))


def test_samples_schedule_rounds_as_one_lane():
    """docs/arithmetic.md §9: the samples schedule draws from one LFSR in the one-lane
    order whatever its lane count, so it trains the bits of the rows schedule with one
    lane, and not those of the rows schedule with its own lane count."""
    base = load_config("examples/xor.toml").with_(layers=(2, 5, 3, 1), activations=("sigmoid",) * 3,
                                                  rounding="stochastic", batch_size=4)
    X, T = sample_stream(base, 20, 3)

    def run(**kw):
        m = FixedMLP(base.with_(**kw))
        for x, t in zip(X, T):
            m.train_sample(x, t)
        return m

    samples4, rows1, rows4 = run(lanes=4, parallelism="samples"), run(lanes=1), run(lanes=4)
    assert len(samples4.lfsrs) == 1
    for a, b in zip(samples4.params, rows1.params):
        np.testing.assert_array_equal(a, b)
    assert any(np.any(a != b) for a, b in zip(samples4.params, rows4.params))


# ---- stochastic rounding keeps small updates alive -------------------------------------------

def test_stochastic_rounding_keeps_tiny_updates_alive():
    """lr = 2^-14 with lr_frac_bits 16 (lr_code 4): every update is below half a weight lsb.
    Nearest-even freezes the weights; stochastic rounding moves them by the exact drift on
    average (the sum of the exact updates), within 4 standard deviations of its noise."""
    cfg = Config(layers=(4, 1), activations=("linear",), loss="mse", act=Q412, weight=Q412, error=Q412,
                 lr_frac_bits=16, learning_rate=2.0 ** -14, lanes=2, sr_seed=12345)
    assert cfg.lr_code == 4 and cfg.update_shift == 28
    p0 = [cfg.weight.to_code(np.array([[0.25, -0.5, 0.125, 0.0, 0.1]]))]
    rng = np.random.default_rng(0)
    n = 4000
    X = cfg.act.to_code(rng.uniform(0.2, 1.0, (n, 4)))
    T = np.full((n, 1), cfg.act.one)

    ne = FixedMLP(cfg, p0)
    biggest = 0.0
    for x, t in zip(X, T):
        tr = ne.train_sample(x, t)
        biggest = max(biggest, np.abs(cfg.lr_code * np.outer(tr.delta[0], np.append(x, 4096))).max() / 2.0 ** 28)
    assert biggest < 0.5
    np.testing.assert_array_equal(ne.params[0], p0[0])  # nothing moved

    sr = FixedMLP(cfg.with_(rounding="stochastic"), p0)
    drift = np.zeros(5)
    var = np.zeros(5)
    for x, t in zip(X, T):
        before = sr.params[0].copy()
        tr = sr.train_sample(x, t)
        exact = (cfg.lr_code * np.outer(tr.delta[0], np.append(x, 4096)) / 2.0 ** 28)[0]
        frac = exact - np.floor(exact)
        drift -= exact
        var += frac * (1 - frac)
        assert np.all(np.abs(sr.params[0] - before)[0] <= 1)
    change = (sr.params[0] - p0[0])[0]
    sd = np.sqrt(var)
    assert np.all(np.abs(drift) > 10 * sd)  # the drift is far above the noise ...
    assert np.all(np.abs(change - drift) <= 4 * sd + 1), (change, drift, sd)  # ... and is what we get


# ---- accumulator widths: the worst cases fit ------------------------------------------------

@pytest.mark.parametrize("cfg_name", ["xor", "iris", "digits"])
def test_accumulator_worst_cases_fit_their_widths(cfg_name):
    cfg = load_config(f"examples/{cfg_name}.toml")
    W, A, E = cfg.weight, cfg.act, cfg.error
    n_in = max(cfg.layers[:-1])
    corners = []
    for w in (W.min_code, W.max_code):
        for a in (A.min_code, A.max_code):
            corners.append(n_in * w * a + w * A.one)  # n_in products plus the bias column
    lo, hi = min(corners + [0]), max(corners + [0])
    assert bits_for_signed(lo, hi) <= cfg.forward_acc_width()
    n_out = max(cfg.layers[1:])
    prods = [w * e for w in (W.min_code, W.max_code) for e in (E.min_code, E.max_code)]
    assert bits_for_signed(n_out * min(prods), n_out * max(prods)) <= cfg.backward_acc_width()
    terms = [cfg.lr_code * e * a for e in (E.min_code, E.max_code) for a in (A.min_code, A.max_code)]
    assert bits_for_signed(cfg.batch_size * min(terms), cfg.batch_size * max(terms)) <= cfg.grad_acc_width()
    # and the formulas (products of the two most negative codes, times the count) are tight
    m = (n_in + 1) * W.min_code * A.min_code
    assert cfg.forward_acc_width() == bits_for_signed(-m, m)


def test_extreme_forward_matches_exact_integer_arithmetic():
    cfg = Config(layers=(30, 2), activations=("linear",), act=QFormat(4, 12), weight=QFormat(4, 12))
    W = np.full((2, 31), cfg.weight.min_code)
    m = FixedMLP(cfg, [W])
    x = np.full(30, cfg.act.min_code)
    tr = m.forward(x)
    assert tr.z[0].tolist() == [cfg.act.max_code] * 2
    acc = sum(int(cfg.weight.min_code) * int(cfg.act.min_code) for _ in range(30)) + cfg.weight.min_code * 4096
    assert bits_for_signed(-acc, acc) <= cfg.forward_acc_width()


# ---- initial parameters ----------------------------------------------------------------------

def test_init_params_are_seeded_quantized_xavier_or_he():
    cfg = load_config("examples/digits.toml")
    p = init_params(cfg)
    pf = init_params_float(cfg)
    for l, (q, f) in enumerate(zip(p, pf)):
        n_in, n_out = cfg.layers[l], cfg.layers[l + 1]
        assert q.shape == (n_out, n_in + 1) and not q[:, -1].any()
        np.testing.assert_array_equal(q, cfg.weight.to_code(f))
        lim = np.sqrt(6.0 / n_in) if cfg.activations[l] == "relu" else np.sqrt(6.0 / (n_in + n_out))
        assert np.abs(f).max() <= lim and np.abs(f).max() > 0.9 * lim
    for a, b in zip(p, init_params(cfg)):
        np.testing.assert_array_equal(a, b)
    assert any(np.any(a != b) for a, b in zip(p, init_params(cfg.with_(init_seed=1))))


def test_bad_params_rejected():
    cfg = load_config("examples/xor.toml")
    with pytest.raises(ValueError, match="shape"):
        FixedMLP(cfg, [np.zeros((4, 2), dtype=np.int64), np.zeros((1, 5), dtype=np.int64)])
    with pytest.raises(ValueError, match="outside"):
        FixedMLP(cfg, [np.full((4, 3), 40000), np.zeros((1, 5), dtype=np.int64)])
    with pytest.raises(ValueError, match="input has shape"):
        FixedMLP(cfg).forward(np.zeros(3, dtype=np.int64))
