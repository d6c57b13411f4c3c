"""The stochastic-rounding random source: one 32-bit Galois LFSR per hardware lane.

Polynomial x^32 + x^22 + x^2 + x + 1 (maximal length), right-shifting Galois form with
feedback mask 0x80200003. Each rounding first advances the lane's LFSR one step, then
uses the low ``shift`` bits of the new state as the random addend (docs/arithmetic.md).
"""
from __future__ import annotations

import numpy as np

__all__ = ["LFSR_MASK", "lfsr_step", "lane_seed", "Lfsr"]

LFSR_MASK = 0x80200003
_GOLDEN = 0x9E3779B9


def lfsr_step(state: int) -> int:
    lsb = state & 1
    state >>= 1
    return state ^ LFSR_MASK if lsb else state


def lane_seed(sr_seed: int, lane: int) -> int:
    """Seed of lane ``lane``: ``(sr_seed + lane * 0x9E3779B9) mod 2**32``, or 1 if that is 0."""
    s = (sr_seed + lane * _GOLDEN) & 0xFFFFFFFF
    return s or 1


class Lfsr:
    def __init__(self, seed: int):
        if not 0 < seed < 2**32:
            raise ValueError(f"LFSR seed must be in [1, 2**32), got {seed!r}")
        self.state = seed

    def take(self, n: int) -> np.ndarray:
        """Advance ``n`` times; return the ``n`` new states in order."""
        out = np.empty(n, dtype=np.int64)
        s = self.state
        for i in range(n):
            lsb = s & 1
            s >>= 1
            if lsb:
                s ^= LFSR_MASK
            out[i] = s
        self.state = s
        return out
