"""Lookup tables for sigmoid, tanh, exp and reciprocal, and how they are indexed.

These functions are the single source of table contents: the golden fixed-point model
reads them here and ``hdl/`` loads the very same arrays into ROMs. The indexing rules
(offset, clamp, shift, optional linear interpolation) are specified in
``docs/arithmetic.md`` and mirrored one-to-one by the hardware.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import Config
from .fixed import QFormat, round_shift, requantize, saturate

__all__ = ["TableSpec", "table_spec", "table_contents", "lut_eval", "table_error_bound",
           "recip_table", "rsqrt_table", "softmax_codes", "softmax_error_bound", "FLOAT_FUNCS"]

FLOAT_FUNCS = {
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": np.tanh,
    "exp": lambda y: np.exp(-y),  # the softmax table maps y = max - z >= 0 to exp(-y)
}
# max |f'| and max |f''| over the whole real line (y >= 0 for exp)
_DERIV_BOUNDS = {
    "sigmoid": (0.25, 1.0 / (6.0 * math.sqrt(3.0))),
    "tanh": (1.0, 4.0 / (3.0 * math.sqrt(3.0))),
    "exp": (1.0, 1.0),
}


@dataclass(frozen=True)
class TableSpec:
    """A function table over ``[x_lo, x_lo + 2**span_log2)`` with ``2**entries_log2`` intervals."""

    kind: str
    in_fmt: QFormat
    out_fmt: QFormat
    x_lo: int  # real lower end (an integer)
    span_log2: int
    entries_log2: int
    interpolate: bool

    @property
    def entries(self) -> int:
        return 1 << self.entries_log2

    @property
    def shift(self) -> int:
        """Input code bits below the table index (the interpolation fraction)."""
        return self.span_log2 + self.in_fmt.frac_bits - self.entries_log2

    @property
    def x_lo_code(self) -> int:
        return self.x_lo << self.in_fmt.frac_bits

    @property
    def span_code(self) -> int:
        return 1 << (self.span_log2 + self.in_fmt.frac_bits)

    @property
    def step(self) -> float:
        return 2.0 ** (self.span_log2 - self.entries_log2)


def table_spec(kind: str, cfg: Config) -> TableSpec:
    if kind in ("sigmoid", "tanh"):
        r = cfg.lut_range_log2
        return TableSpec(kind, cfg.act, cfg.act, -(1 << r), r + 1, cfg.lut_entries_log2, cfg.lut_interpolate)
    if kind == "exp":
        return TableSpec(kind, cfg.act, cfg.act, 0, cfg.exp_range_log2, cfg.exp_entries_log2, cfg.lut_interpolate)
    raise ValueError(f"no table for {kind!r}; tables exist for sigmoid, tanh, exp")


def table_contents(spec: TableSpec) -> np.ndarray:
    """ROM contents (output codes). Without interpolation entry i samples the centre of
    interval i; with interpolation there are ``entries + 1`` samples at the interval edges."""
    f = FLOAT_FUNCS[spec.kind]
    i = np.arange(spec.entries + (1 if spec.interpolate else 0), dtype=np.float64)
    x = spec.x_lo + (i if spec.interpolate else i + 0.5) * spec.step
    return spec.out_fmt.to_code(f(x))


def lut_eval(spec: TableSpec, table: np.ndarray, x_codes) -> np.ndarray:
    """Evaluate the table on input codes exactly as the hardware does."""
    x = np.asarray(x_codes, dtype=np.int64)
    u = np.clip(x - spec.x_lo_code, 0, spec.span_code - 1)
    s = spec.shift
    idx = u >> s
    if not spec.interpolate or s == 0:
        return table[idx]
    frac = u & ((1 << s) - 1)
    lo = table[idx]
    hi = table[idx + 1]
    return saturate(lo + round_shift((hi - lo) * frac, s), spec.out_fmt)


def table_error_bound(spec: TableSpec) -> float:
    """Worst-case |lut(x) - f(x)| over every input code, derived in docs/arithmetic.md."""
    d1, d2 = _DERIV_BOUNDS[spec.kind]
    lsb = spec.out_fmt.lsb
    if spec.interpolate:
        core = d2 * spec.step ** 2 / 8.0 + lsb  # interpolation error + entry rounding + result rounding
    else:
        core = d1 * spec.step / 2.0 + lsb / 2.0  # distance to the sampled centre + entry rounding
    f = FLOAT_FUNCS[spec.kind]
    hi_clamp = spec.x_lo + 2.0 ** spec.span_log2 - spec.in_fmt.lsb
    if spec.kind == "sigmoid":
        tail = max(1.0 - f(hi_clamp), f(float(spec.x_lo)))
    elif spec.kind == "tanh":
        tail = max(1.0 - f(hi_clamp), f(float(spec.x_lo)) + 1.0)
    else:  # exp(-y): inputs beyond the range read exp(-hi_clamp) instead of something in (0, that]
        tail = f(hi_clamp)
    return core + float(tail)


def recip_table(cfg: Config) -> np.ndarray:
    """Reciprocal of the mantissa m in [1, 2): entry i = round(2**recip_frac_bits / m_i) at
    the centre m_i = 1 + (i + 0.5) / N of interval i."""
    n = 1 << cfg.recip_entries_log2
    m = 1.0 + (np.arange(n) + 0.5) / n
    return np.rint((1 << cfg.recip_frac_bits) / m).astype(np.int64)


def rsqrt_table(cfg: Config) -> np.ndarray:
    """Adam's ``1 / (sqrt(v_hat) + epsilon)`` over ``v_hat = 2**E * (1 + i / N)``: for each
    exponent E of ``cfg.adam_exponents`` (lowest first) N = 2**rsqrt_entries_log2 entries,
    each the value at its interval's centre as an ``adam_r_format`` code."""
    lo, hi = cfg.adam_exponents
    n = 1 << cfg.rsqrt_entries_log2
    e = np.repeat(np.arange(lo, hi + 1, dtype=np.float64), n)
    mant = 1.0 + (np.tile(np.arange(n), hi - lo + 1) + 0.5) / n
    return cfg.adam_r_format.to_code(1.0 / (np.sqrt(np.exp2(e) * mant) + cfg.epsilon))


def softmax_codes(z_codes, cfg: Config, exp_tab=None, rtab=None) -> np.ndarray:
    """Stable fixed-point softmax of one vector of act codes -> probability codes (act format).

    y = max(z) - z (exact, >= 0); e = exp table(y); S = sum(e) (exact);
    k = bitlength(S) - 1; mantissa index = the recip_entries_log2 bits below the leading one;
    p = requantize(e * R[index], from_frac = recip_frac_bits + k).
    """
    z = np.asarray(z_codes, dtype=np.int64)
    spec = table_spec("exp", cfg)
    if exp_tab is None:
        exp_tab = table_contents(spec)
    if rtab is None:
        rtab = recip_table(cfg)
    y = z.max() - z
    e = lut_eval(spec, exp_tab, y)
    s = int(e.sum())
    if s <= 0:
        raise ArithmeticError("softmax: exp sum is zero; exp table underflows the act format")
    k = s.bit_length() - 1
    n = cfg.recip_entries_log2
    idx = ((s >> (k - n)) if k >= n else (s << (n - k))) & ((1 << n) - 1)
    r = int(rtab[idx])
    return requantize(e * r, cfg.recip_frac_bits + k, cfg.act)


def softmax_error_bound(cfg: Config) -> float:
    """|softmax_codes - softmax| bound per element: exp-table error propagated through the
    normalisation ((n + 1) * eps for S >= 1 - eps), reciprocal relative error 1/(2N) plus its
    entry rounding, and the final rounding of p."""
    spec = table_spec("exp", cfg)
    eps = table_error_bound(spec)
    n_out = cfg.layers[-1]
    s_min = max(1.0 - eps, 1e-9)
    recip_rel = 1.0 / (2 << cfg.recip_entries_log2) + 2.0 ** -cfg.recip_frac_bits
    return (n_out + 1) * eps / s_min ** 2 + recip_rel + cfg.act.lsb / 2.0
