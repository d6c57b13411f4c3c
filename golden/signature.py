"""Parameter signature: a cheap fold of every parameter an update writes.

The trainer folds each parameter it writes during a mini-batch update into a per-lane
32-bit register, ``sig = rotl32(sig, 3) ^ (w mod 2**weight_width)``, in the same order the
stochastic-rounding LFSRs are consumed (each lane: layers last to first, its rows
ascending, columns 0..n_in). The lanes' registers are XORed. Reading this one register
after every update lets a long simulation check all parameters without reading them
out; any single changed parameter changes the signature. A full readback remains the
final word (``sim`` does one at the end of every run).
"""
from __future__ import annotations

import numpy as np

from .config import Config

__all__ = ["params_signature", "params_signature_reference", "SIGNATURE_ROTATE"]

SIGNATURE_ROTATE = 3
_MASK = 0xFFFFFFFF


def params_signature(cfg: Config, params) -> int:
    """The signature the trainer computes after an update that wrote ``params``."""
    P = cfg.lanes
    wmask = (1 << cfg.weight.width) - 1
    total = 0
    for p in range(P):
        # the lane's words in the order it writes them
        words = [np.asarray(params[l], dtype=np.int64)[p::P].reshape(-1) for l in range(cfg.n_layers - 1, -1, -1)]
        seq = np.concatenate(words) & wmask if words else np.zeros(0, dtype=np.int64)
        n = seq.size
        # rotl is linear over XOR: word i ends up rotated by 3 * (n - 1 - i) (mod 32)
        rot = (SIGNATURE_ROTATE * (n - 1 - np.arange(n))) % 32
        rotated = ((seq << rot) | (seq >> ((32 - rot) % 32))) & _MASK
        total ^= int(np.bitwise_xor.reduce(rotated)) if n else 0
    return total


def params_signature_reference(cfg: Config, params) -> int:
    """Word-by-word fold, the definition the vectorised version must equal."""
    P = cfg.lanes
    wmask = (1 << cfg.weight.width) - 1
    total = 0
    for p in range(P):
        sig = 0
        for l in range(cfg.n_layers - 1, -1, -1):
            w = np.asarray(params[l])
            for j in range(p, w.shape[0], P):
                for v in w[j]:
                    sig = ((sig << SIGNATURE_ROTATE) | (sig >> (32 - SIGNATURE_ROTATE))) & _MASK
                    sig ^= int(v) & wmask
        total ^= sig
    return total
