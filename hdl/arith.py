"""Amaranth expressions for the golden arithmetic: rounding shifts, saturation, requantize.

Each function mirrors the function of the same name in ``golden/fixed.py`` bit for bit;
hardware units build every narrowing from these, so there is one implementation of the
rounding rules on each side of the contract.
"""
from __future__ import annotations

from amaranth.hdl import Const, Mux, Value, signed

from golden.fixed import QFormat

__all__ = ["round_shift", "saturate", "saturating_sub", "requantize", "fmt_shape"]


def fmt_shape(fmt: QFormat):
    """Amaranth shape of codes of ``fmt``."""
    return signed(fmt.width)


def round_shift(x: Value, shift: int, mode: str = "nearest_even", rand: Value | None = None) -> Value:
    """``x / 2**shift`` rounded to an integer (nearest-even, or stochastic with ``rand``);
    a negative ``shift`` is an exact left shift. The result is signed and one bit wider
    than needed, so the rounding increment never wraps."""
    x = Value.cast(x)
    if shift <= 0:
        return x << (-shift)
    q = x >> shift
    if mode == "nearest_even":
        r = x[:shift]
        half = 1 << (shift - 1)
        inc = (r > half) | ((r == half) & q[0])
        return q + inc
    if mode == "stochastic":
        if rand is None:
            raise ValueError("stochastic rounding needs a random source")
        return (x + Value.cast(rand)[:shift].as_unsigned()) >> shift
    raise ValueError(f"rounding mode must be 'nearest_even' or 'stochastic', got {mode!r}")


def saturate(x: Value, fmt: QFormat) -> Value:
    """Clamp to the range of ``fmt`` (never wraps); result has the shape of ``fmt``."""
    x = Value.cast(x)
    lo, hi = fmt.min_code, fmt.max_code
    return Mux(x > hi, Const(hi, fmt_shape(fmt)), Mux(x < lo, Const(lo, fmt_shape(fmt)), x[:fmt.width].as_signed()))


def saturating_sub(w: Value, step: Value, fmt: QFormat) -> Value:
    """``saturate(w - step, fmt)`` for a ``w`` of ``fmt`` and a wide signed ``step``, with
    short carry chains: when ``step`` fits in ``fmt.width + 2`` bits the difference is
    formed from those bits; otherwise ``|step| >= 2**(width + 1)`` and the result
    saturates by the sign of ``step`` (the same value as the wide subtraction)."""
    w, step = Value.cast(w), Value.cast(step)
    k = fmt.width + 2
    if len(step) <= k:
        return saturate(w - step, fmt)
    top = step[k - 1:]  # all equal when step fits in k bits (a sign extension)
    fits = (top == 0) | (top == (1 << len(top)) - 1)
    near = saturate(w - step[:k].as_signed(), fmt)
    return Mux(fits, near, Mux(step[-1], Const(fmt.max_code, fmt_shape(fmt)), Const(fmt.min_code, fmt_shape(fmt))))


def requantize(x: Value, from_frac: int, fmt: QFormat, mode: str = "nearest_even", rand: Value | None = None) -> Value:
    """Round from ``from_frac`` fraction bits to ``fmt``, then saturate (golden.fixed.requantize)."""
    return saturate(round_shift(x, from_frac - fmt.frac_bits, mode, rand), fmt)

