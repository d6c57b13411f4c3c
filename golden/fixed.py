"""Signed fixed-point formats and the one requantization used everywhere.

Every narrowing in the golden model and in the hardware goes through
:func:`requantize`: shift right with rounding (nearest-even or stochastic), then
saturate. Nothing ever wraps. All arithmetic is on NumPy ``int64`` codes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["QFormat", "round_shift", "saturate", "requantize", "bits_for_signed"]


@dataclass(frozen=True)
class QFormat:
    """Signed two's-complement ``Q(int_bits, frac_bits)``.

    ``int_bits`` counts the sign bit, so the width is ``int_bits + frac_bits`` and the
    real range is ``[-2**(int_bits-1), 2**(int_bits-1) - 2**-frac_bits]``.
    """

    int_bits: int
    frac_bits: int

    def __post_init__(self):
        if not isinstance(self.int_bits, int) or isinstance(self.int_bits, bool) or self.int_bits < 1:
            raise ValueError(f"int_bits must be an integer >= 1 (it counts the sign bit), got {self.int_bits!r}")
        if not isinstance(self.frac_bits, int) or isinstance(self.frac_bits, bool) or self.frac_bits < 0:
            raise ValueError(f"frac_bits must be an integer >= 0, got {self.frac_bits!r}")
        if self.width > 48:  # tensor formats are validated to 24 bits, optimizer state to 48
            raise ValueError(f"format width {self.width} exceeds 48 bits")

    @property
    def width(self) -> int:
        return self.int_bits + self.frac_bits

    @property
    def min_code(self) -> int:
        return -(1 << (self.width - 1))

    @property
    def max_code(self) -> int:
        return (1 << (self.width - 1)) - 1

    @property
    def one(self) -> int:
        """Code of the real value 1.0 (may not be representable: check ``max_code``)."""
        return 1 << self.frac_bits

    @property
    def lsb(self) -> float:
        return 2.0 ** -self.frac_bits

    def to_code(self, x) -> np.ndarray:
        """Quantize floats: round to nearest (ties to even), then saturate."""
        scaled = np.asarray(x, dtype=np.float64) * (1 << self.frac_bits)
        return np.clip(np.rint(scaled), self.min_code, self.max_code).astype(np.int64)

    def to_float(self, codes) -> np.ndarray:
        return np.asarray(codes, dtype=np.int64).astype(np.float64) / (1 << self.frac_bits)

    def all_codes(self) -> np.ndarray:
        return np.arange(self.min_code, self.max_code + 1, dtype=np.int64)

    def __str__(self):
        return f"Q{self.int_bits}.{self.frac_bits}"


def bits_for_signed(lo: int, hi: int) -> int:
    """Smallest two's-complement width holding every integer in ``[lo, hi]``."""
    w = 1
    while not (-(1 << (w - 1)) <= lo and hi <= (1 << (w - 1)) - 1):
        w += 1
    return w


def round_shift(x, shift: int, mode: str = "nearest_even", rand=None) -> np.ndarray:
    """Divide integer codes by ``2**shift`` and round to an integer.

    ``nearest_even``: round to nearest, ties to the even result.
    ``stochastic``: ``floor((x + rand) / 2**shift)`` with ``rand`` uniform in
    ``[0, 2**shift)`` (one value per element, supplied by the caller from the LFSR).
    A negative ``shift`` is an exact left shift.
    """
    x = np.asarray(x, dtype=np.int64)
    if shift <= 0:
        return x << (-shift)
    if mode == "nearest_even":
        q = x >> shift
        r = x & ((1 << shift) - 1)
        half = 1 << (shift - 1)
        return q + ((r > half) | ((r == half) & ((q & 1) == 1))).astype(np.int64)
    if mode == "stochastic":
        if rand is None:
            raise ValueError("stochastic rounding needs random bits")
        rand = np.asarray(rand, dtype=np.int64) & ((1 << shift) - 1)
        return (x + rand) >> shift
    raise ValueError(f"rounding mode must be 'nearest_even' or 'stochastic', got {mode!r}")


def saturate(x, fmt: QFormat) -> np.ndarray:
    """Clamp codes to the range of ``fmt`` (never wraps)."""
    return np.clip(np.asarray(x, dtype=np.int64), fmt.min_code, fmt.max_code)


def requantize(x, from_frac: int, fmt: QFormat, mode: str = "nearest_even", rand=None) -> np.ndarray:
    """The one narrowing operation: round from ``from_frac`` fraction bits to ``fmt``, then saturate."""
    return saturate(round_shift(x, from_frac - fmt.frac_bits, mode, rand), fmt)
