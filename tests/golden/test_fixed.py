"""golden.fixed: formats, nearest-even and stochastic rounding, saturation (never wraps)."""
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden.fixed import QFormat, bits_for_signed, requantize, round_shift, saturate
from golden.lfsr import Lfsr

HYP = settings(max_examples=400, deadline=None, derandomize=True, database=None)


def rne_reference(x: int, shift: int) -> int:
    """x / 2**shift rounded to nearest, ties to even (Python's round on an exact Fraction)."""
    return round(Fraction(x, 1 << shift))


# ---- formats ---------------------------------------------------------------------------

@pytest.mark.parametrize("ib, fb", [(1, 0), (1, 7), (2, 14), (4, 12), (6, 10), (8, 0), (16, 16)])
def test_qformat_range(ib, fb):
    f = QFormat(ib, fb)
    assert f.width == ib + fb
    assert f.min_code == -(2 ** (ib + fb - 1))
    assert f.max_code == 2 ** (ib + fb - 1) - 1
    # real range [-2**(ib-1), 2**(ib-1) - 2**-fb]
    assert f.to_float(f.min_code) == -(2.0 ** (ib - 1))
    assert f.to_float(f.max_code) == 2.0 ** (ib - 1) - 2.0 ** -fb
    assert f.lsb == 2.0 ** -fb and f.one == 2 ** fb
    if f.width <= 16:
        codes = f.all_codes()
        assert len(codes) == 2 ** f.width and codes[0] == f.min_code and codes[-1] == f.max_code


def test_q4_12_worked_numbers():
    f = QFormat(4, 12)
    assert str(f) == "Q4.12"
    assert f.to_code(1.0) == 4096
    assert f.to_code(-8.0) == -32768
    assert f.to_code(7.99987793) == 32767
    assert f.to_code(100.0) == 32767 and f.to_code(-100.0) == -32768  # saturates
    assert f.to_code(0.5 / 4096) == 0  # tie 0.5 lsb -> even 0
    assert f.to_code(1.5 / 4096) == 2  # tie 1.5 lsb -> even 2
    assert f.to_code(-1.5 / 4096) == -2
    assert f.to_code(-2.5 / 4096) == -2


@pytest.mark.parametrize("ib, fb", [(0, 4), (-1, 4), (4, -1), (4.0, 4), (4, 2.0), (True, 12), (4, True), (30, 19)])
def test_qformat_rejects_bad_fields(ib, fb):
    with pytest.raises(ValueError):
        QFormat(ib, fb)


def test_bits_for_signed():
    assert bits_for_signed(0, 0) == 1
    assert bits_for_signed(-1, 0) == 1
    assert bits_for_signed(-1, 1) == 2
    assert bits_for_signed(-128, 127) == 8
    assert bits_for_signed(-128, 128) == 9
    assert bits_for_signed(-129, 0) == 9
    for lo, hi in [(-5, 77), (-(2 ** 40), 3), (0, 2 ** 45 - 1)]:
        w = bits_for_signed(lo, hi)
        assert -(2 ** (w - 1)) <= lo and hi <= 2 ** (w - 1) - 1
        assert not (-(2 ** (w - 2)) <= lo and hi <= 2 ** (w - 2) - 1)


# ---- nearest-even ----------------------------------------------------------------------

def test_round_shift_ties_go_to_even_both_signs():
    # shift 1: x/2 for x = -7..7: ties at odd x
    x = np.arange(-7, 8)
    got = round_shift(x, 1)
    # -3.5->-4, -2.5->-2, -1.5->-2, -0.5->0, 0.5->0, 1.5->2, 2.5->2, 3.5->4
    want = [-4, -3, -2, -2, -2, -1, 0, 0, 0, 1, 2, 2, 2, 3, 4]
    np.testing.assert_array_equal(got, want)
    # shift 4 (divide by 16): ties at 8 mod 16, not-ties just above/below
    np.testing.assert_array_equal(round_shift([8, 24, 40, -8, -24, -40], 4), [0, 2, 2, 0, -2, -2])
    np.testing.assert_array_equal(round_shift([9, 7, -9, -7, 23, -23], 4), [1, 0, -1, 0, 1, -1])


@HYP
@given(st.integers(-(2 ** 52), 2 ** 52), st.integers(1, 40))
def test_round_shift_nearest_even_matches_exact_rational(x, shift):
    assert int(round_shift(x, shift)) == rne_reference(x, shift)


def test_round_shift_nonpositive_shift_is_exact_left_shift():
    np.testing.assert_array_equal(round_shift([3, -3, 0], 0), [3, -3, 0])
    np.testing.assert_array_equal(round_shift([3, -3], -4), [48, -48])


def test_round_shift_rejects_bad_mode():
    with pytest.raises(ValueError, match="rounding mode"):
        round_shift(5, 2, "truncate")
    with pytest.raises(ValueError, match="random bits"):
        round_shift(5, 2, "stochastic")


# ---- saturation: never wraps ----------------------------------------------------------

def test_saturate_both_ends():
    f = QFormat(4, 12)
    np.testing.assert_array_equal(saturate([-10 ** 12, -32769, -32768, 0, 32767, 32768, 10 ** 12], f),
                                  [-32768, -32768, -32768, 0, 32767, 32767, 32767])


@pytest.mark.parametrize("mode", ["nearest_even", "stochastic"])
def test_requantize_never_wraps(mode):
    f = QFormat(4, 12)
    frac = 24  # a product of two Q4.12 codes
    rng = np.random.default_rng(3)
    acc = rng.integers(-(2 ** 40), 2 ** 40, 20000)
    acc = np.concatenate([acc, [2 ** 27 - 1, 2 ** 27, -(2 ** 27), -(2 ** 27) - 1, 2 ** 28, -(2 ** 28)]])
    rand = rng.integers(0, 2 ** 12, acc.size)
    got = requantize(acc, frac, f, mode, rand if mode == "stochastic" else None)
    assert got.min() >= f.min_code and got.max() <= f.max_code
    # exact reference: real quotient, rounded, clamped
    q = acc / 4096.0
    assert np.all(got[q >= f.max_code + 1] == f.max_code)
    assert np.all(got[q <= f.min_code - 1] == f.min_code)
    # monotone in the accumulator (a wrapping narrowing would jump from max to min)
    order = np.argsort(acc, kind="stable")
    if mode == "nearest_even":
        assert np.all(np.diff(got[order]) >= 0)
        ref = np.array([min(max(rne_reference(int(a), 12), f.min_code), f.max_code) for a in acc])
        np.testing.assert_array_equal(got, ref)


def test_requantize_widening_and_same_frac():
    f = QFormat(4, 12)
    np.testing.assert_array_equal(requantize([5, -5], 12, f), [5, -5])
    np.testing.assert_array_equal(requantize([5, -5], 10, f), [20, -20])  # left shift, exact
    np.testing.assert_array_equal(requantize([20000, -20000], 10, f), [32767, -32768])  # then saturate


# ---- stochastic rounding ---------------------------------------------------------------

@pytest.mark.parametrize("shift", [1, 3, 8])
def test_stochastic_exact_probability_over_all_random_values(shift):
    """Over every random addend r in [0, 2**shift) the result is floor(x/2^s) + 1 for exactly
    (x mod 2^s) of them: the expectation is x / 2**shift exactly."""
    n = 1 << shift
    rand = np.arange(n)
    for x in list(range(-3 * n, 3 * n + 1)) + [12345, -12345]:
        got = round_shift(np.full(n, x), shift, "stochastic", rand)
        lo = x >> shift
        assert set(got.tolist()) <= {lo, lo + 1}
        assert int((got == lo + 1).sum()) == x - (lo << shift)
        assert Fraction(int(got.sum()), n) == Fraction(x, n)


@pytest.mark.parametrize("x, shift", [(5, 4), (-5, 4), (1001, 8), (-1001, 8), (3, 20), (-(2 ** 30) + 7, 28)])
def test_stochastic_rounding_with_lfsr_bits_is_unbiased(x, shift):
    """Mean of many LFSR-driven roundings of one value lies within 4 standard errors of x/2^s."""
    n = 40000
    rand = Lfsr(0x1234567).take(n)
    got = round_shift(np.full(n, x), shift, "stochastic", rand)
    p = (x - ((x >> shift) << shift)) / 2.0 ** shift  # probability of rounding up
    se = np.sqrt(p * (1 - p) / n)
    assert set(np.unique(got).tolist()) <= {x >> shift, (x >> shift) + 1}
    assert abs(got.mean() - x / 2.0 ** shift) <= 4 * se + 1e-12
