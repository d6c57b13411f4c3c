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

__all__ = ["params_signature", "SIGNATURE_ROTATE"]

SIGNATURE_ROTATE = 3
_MASK = 0xFFFFFFFF


def params_signature(cfg: Config, params) -> int:
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
