"""The stochastic-rounding LFSR and the parameter signature's fold, as Amaranth values.

golden/lfsr.py and golden/signature.py define both; every hardware block that draws
random bits or folds a written word uses these (one implementation on each side).
"""
from __future__ import annotations

from amaranth.hdl import Cat, Mux, Value

from golden.lfsr import LFSR_MASK
from golden.signature import SIGNATURE_ROTATE

__all__ = ["lfsr_next", "rotl_signature"]


def lfsr_next(state: Value) -> Value:
    """One step of golden.lfsr's right-shifting Galois LFSR: shift right, XOR the mask when
    the bit shifted out is 1."""
    state = Value.cast(state)
    return Mux(state[0], (state >> 1) ^ LFSR_MASK, state >> 1)


def rotl_signature(sig: Value) -> Value:
    """rotl32(sig, SIGNATURE_ROTATE), as golden/signature.py rotates before folding a word."""
    sig = Value.cast(sig)
    return Cat(sig[32 - SIGNATURE_ROTATE:32], sig[:32 - SIGNATURE_ROTATE])
