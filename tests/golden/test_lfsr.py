"""golden.lfsr: the stochastic-rounding source is the documented maximal-length LFSR.

The Galois right-shift step with mask 0x80200003 is multiplication by x^-1 in
GF(2)[x] / p(x), p = x^32 + x^22 + x^2 + x + 1 (state bit i = coefficient of x^i). The
tests check that with an independent carry-less polynomial implementation, prove p
primitive (x has order 2^32 - 1), and check the lane seeds.
"""
import numpy as np
import pytest

from golden.lfsr import LFSR_MASK, Lfsr, lane_seed, lfsr_step

P = (1 << 32) | (1 << 22) | (1 << 2) | (1 << 1) | 1  # written from the exponents
ORDER = 2 ** 32 - 1
ORDER_PRIME_FACTORS = (3, 5, 17, 257, 65537)


def pmulmod(a: int, b: int, m: int = P) -> int:
    """Carry-less product a * b reduced mod m (bitwise, one bit of b at a time)."""
    deg = m.bit_length() - 1
    r = 0
    while b:
        if b & 1:
            r ^= a
        b >>= 1
        a <<= 1
        if a >> deg & 1:
            a ^= m
    return r


def ppowmod(a: int, e: int, m: int = P) -> int:
    r = 1
    while e:
        if e & 1:
            r = pmulmod(r, a, m)
        a = pmulmod(a, a, m)
        e >>= 1
    return r


def test_factorisation_of_the_period():
    prod = 1
    for q in ORDER_PRIME_FACTORS:
        prod *= q
    assert prod == ORDER


def test_polynomial_is_primitive():
    """x has multiplicative order exactly 2^32 - 1 mod p: p is primitive, the LFSR maximal."""
    assert ppowmod(2, ORDER) == 1
    for q in ORDER_PRIME_FACTORS:
        assert ppowmod(2, ORDER // q) != 1


def test_mask_is_the_polynomial_without_its_constant_term_shifted():
    assert LFSR_MASK == (P >> 1) & 0xFFFFFFFF


def test_step_is_multiplication_by_inverse_x():
    rng = np.random.default_rng(0)
    for s in [1, 2, 0x80000000, 0xFFFFFFFF, 0x80200003] + rng.integers(1, 2 ** 32, 500).tolist():
        nxt = lfsr_step(int(s))
        assert pmulmod(nxt, 2) == s  # x * next == state (mod p)
        assert 0 < nxt < 2 ** 32


@pytest.mark.parametrize("seed, n", [(1, 1), (1, 1000), (0xDEADBEEF, 777), (lane_seed(5, 3), 4096)])
def test_take_equals_state_times_power_of_inverse_x(seed, n):
    g = Lfsr(seed)
    states = g.take(n)
    x_inv = ppowmod(2, ORDER - 1)  # x^-1 = x^(2^32 - 2)
    assert int(states[-1]) == pmulmod(seed, ppowmod(x_inv, n))
    assert g.state == int(states[-1])
    # take returns the new states in order: each is one step of the previous
    prev = seed
    for s in states[:50].tolist():
        assert s == lfsr_step(prev)
        prev = s


def test_never_zero_and_no_short_period():
    g = Lfsr(1)
    states = g.take(200000)
    assert states.min() > 0 and states.max() < 2 ** 32
    assert len(np.unique(states)) == states.size  # no repeat within 200k steps
    # low bits are balanced (what stochastic rounding consumes)
    for bits in (1, 4, 12):
        low = states & ((1 << bits) - 1)
        assert abs(low.mean() - ((1 << bits) - 1) / 2) < 0.01 * (1 << bits)


def test_lane_seeds():
    assert lane_seed(1, 0) == 1
    assert lane_seed(1, 1) == (1 + 0x9E3779B9) % 2 ** 32
    assert lane_seed(0xFFFFFFFF, 0) == 0xFFFFFFFF
    assert lane_seed(0, 0) == 1  # an all-zero state would lock the LFSR: replaced by 1
    assert lane_seed((-0x9E3779B9 * 2) % 2 ** 32, 2) == 1
    seeds = [lane_seed(7, p) for p in range(64)]
    assert len(set(seeds)) == 64 and all(0 < s < 2 ** 32 for s in seeds)


@pytest.mark.parametrize("seed", [0, 2 ** 32, -1])
def test_bad_seed_rejected(seed):
    with pytest.raises(ValueError):
        Lfsr(seed)
