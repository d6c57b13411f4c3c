"""Parameter signature: a cheap fold of every parameter an update writes.

The trainer folds each parameter it writes during a mini-batch update into per-lane
32-bit registers, ``sig = rotl32(sig, 3) ^ (w mod 2**weight_width)``: the weights into
one register in the order the stochastic-rounding LFSRs are consumed (each lane: layers
last to first, its rows ascending, columns 0..n_in-1), the biases into another in the
same order (Adam writes a row's bias after the layer's weights, so the two folds are
kept apart). All these registers are XORed. The optimizer state written by the same
update folds the same way into a second signature (:func:`state_signature`), one 32-bit
word per state entry: ``s1 ^ s2 ^ (s2 >> 32)`` (mod 2**32; s1 momentum's velocity or
Adam's m, s2 Adam's v, 0 when unused). Reading this one register
after every update lets a long simulation check all parameters without reading them
out; any single changed parameter changes the signature. A full readback remains the
final word (``sim`` does one at the end of every run).
"""
from __future__ import annotations

import numpy as np

from .config import Config

__all__ = ["params_signature", "params_signature_reference", "state_signature", "state_word", "SIGNATURE_ROTATE"]

SIGNATURE_ROTATE = 3
_MASK = 0xFFFFFFFF


def _fold(seq) -> int:
    """rotl is linear over XOR: word i of n ends up rotated by 3 * (n - 1 - i) (mod 32)."""
    n = seq.size
    if n == 0:
        return 0
    rot = (SIGNATURE_ROTATE * (n - 1 - np.arange(n))) % 32
    rotated = ((seq << rot) | (seq >> ((32 - rot) % 32))) & _MASK
    return int(np.bitwise_xor.reduce(rotated))


def _lane_folds(cfg: Config, words_of) -> int:
    """XOR over lanes of the weight fold and the bias fold of per-layer word arrays."""
    P, total = cfg.update_lanes, 0
    for p in range(P):
        rows = [np.asarray(words_of(l), dtype=np.int64)[p::P] for l in range(cfg.n_layers - 1, -1, -1)]
        total ^= _fold(np.concatenate([r[:, :-1].reshape(-1) for r in rows]))
        total ^= _fold(np.concatenate([r[:, -1] for r in rows]))
    return total


def params_signature(cfg: Config, params) -> int:
    """The signature the trainer computes after an update that wrote ``params``."""
    wmask = (1 << cfg.weight.width) - 1
    return _lane_folds(cfg, lambda l: np.asarray(params[l], dtype=np.int64) & wmask)


def state_word(s1, s2) -> np.ndarray:
    """The 32-bit word a state entry folds as."""
    s1, s2 = np.asarray(s1, dtype=np.int64), np.asarray(s2, dtype=np.int64)
    return (s1 ^ s2 ^ (s2 >> 32)) & _MASK


def state_signature(cfg: Config, state: dict) -> int:
    """The STATE_SIGNATURE after an update that left ``state`` (OptimizerState.copy_state);
    0 for SGD, which writes no state."""
    if cfg.optimizer == "sgd":
        return 0
    return _lane_folds(cfg, lambda l: state_word(state["s1"][l], state["s2"][l]))


def params_signature_reference(cfg: Config, params) -> int:
    """Word-by-word fold, the definition the vectorised version must equal."""
    P = cfg.update_lanes
    wmask = (1 << cfg.weight.width) - 1
    total = 0
    for p in range(P):
        sig, bsig = 0, 0
        for l in range(cfg.n_layers - 1, -1, -1):
            w = np.asarray(params[l])
            for j in range(p, w.shape[0], P):
                for v in w[j, :-1]:
                    sig = ((sig << SIGNATURE_ROTATE) | (sig >> (32 - SIGNATURE_ROTATE))) & _MASK
                    sig ^= int(v) & wmask
                bsig = ((bsig << SIGNATURE_ROTATE) | (bsig >> (32 - SIGNATURE_ROTATE))) & _MASK
                bsig ^= int(w[j, -1]) & wmask
        total ^= sig ^ bsig
    return total
