"""The fixed-point optimizers: SGD, heavy-ball momentum and Adam (docs/arithmetic.md §10).

Every function takes whole per-layer arrays of int64 codes and returns new ones; the
fixed model (golden/fixed_model.py) calls :meth:`OptimizerState.step` once per
mini-batch with the exact batch sums ``G``. The hardware's update engine
(hdl/trainer/update.py) computes the same integers element by element.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import ADAM_ALPHA_WIDTH, BETA_POW_FRAC_BITS, OPT_FRAC_BITS, Config
from .fixed import requantize, round_shift, saturate
from .tables import recip_table, rsqrt_table

__all__ = ["OptimizerState", "momentum_step", "adam_step", "adam_scalars", "next_beta_power",
           "initial_beta_power", "rsqrt_index", "reciprocal_code", "ALPHA_MAX"]

# alpha_t codes are non-negative and ADAM_ALPHA_WIDTH bits wide, signed
ALPHA_MAX = (1 << (ADAM_ALPHA_WIDTH - 1)) - 1


def _bit_length(x) -> np.ndarray:
    """bit_length of non-negative int64 codes, elementwise (0 for 0)."""
    x = np.asarray(x, dtype=np.int64)
    n = np.zeros(x.shape, dtype=np.int64)
    for b in range(63):
        n = np.where((x >> b) != 0, b + 1, n)
    return n


# ---- momentum -------------------------------------------------------------------------
def momentum_step(cfg: Config, G, u, w, rand=None):
    """Heavy-ball momentum with the learning rate folded into the velocity ``u = lr * v``
    (``G`` already holds lr * the batch's gradient): ``u' = mu u + G`` summed exactly and
    rounded once (nearest-even) to the velocity format; ``w' = w - round(u')`` with
    ``training.rounding``. Returns ``(w', u')``."""
    fu, U, fb = cfg.velocity, cfg.update_frac_bits, OPT_FRAC_BITS
    x = max(fb + fu.frac_bits, U)
    s = (cfg.momentum_code * np.asarray(u, np.int64) << (x - fb - fu.frac_bits)) + (np.asarray(G, np.int64) << (x - U))
    u_new = requantize(s, x, fu)
    step = round_shift(u_new, cfg.velocity_step_shift, cfg.rounding, rand)
    return saturate(np.asarray(w, np.int64) - step, cfg.weight), u_new


# ---- Adam: the per-update scalars -----------------------------------------------------
def initial_beta_power(cfg: Config, c: int) -> int:
    """beta**1 with 32 fraction bits, for the first update (``beta = 1 - c / 2**20``)."""
    return ((1 << OPT_FRAC_BITS) - c) << (BETA_POW_FRAC_BITS - OPT_FRAC_BITS)


def next_beta_power(p: int, c: int) -> int:
    """beta**(t+1) from beta**t: ``round_ne(p * beta_code / 2**20)``."""
    return int(round_shift(np.int64(p) * ((1 << OPT_FRAC_BITS) - c), OPT_FRAC_BITS))


def reciprocal_code(cfg: Config, p: int, rtab=None) -> tuple:
    """``1 / (1 - p)`` for a power p of beta (32 fraction bits) as ``(R, e)``: the value is
    ``R * 2**(e - recip_frac_bits)``, R from the softmax's reciprocal table over the
    mantissa of d = 2**32 - p (its recip_entries_log2 bits below the leading one)."""
    rtab = recip_table(cfg) if rtab is None else rtab
    d = (1 << BETA_POW_FRAC_BITS) - int(p)
    n, er = d.bit_length(), cfg.recip_entries_log2
    idx = (d >> (n - 1 - er)) if n - 1 >= er else (d << (er - n + 1))
    return int(rtab[idx & ((1 << er) - 1)]), BETA_POW_FRAC_BITS + 1 - n


def adam_scalars(cfg: Config, p1: int, p2: int, lr_code: int, rtab=None) -> tuple:
    """The step size ``alpha = lr / (1 - beta1**t)`` (``adam_alpha_frac_bits`` fraction bits,
    rounded once, nearest-even, saturated to [0, ALPHA_MAX]) and the second-moment correction ``1 / (1 - beta2**t)`` as
    ``(R2, e2)`` (see :func:`reciprocal_code`)."""
    r1, e1 = reciprocal_code(cfg, p1, rtab)
    alpha = round_shift(np.int64(lr_code) * r1, cfg.recip_frac_bits - e1)
    return int(np.clip(alpha, 0, ALPHA_MAX)), reciprocal_code(cfg, p2, rtab)


# ---- Adam: the per-parameter step -----------------------------------------------------
def rsqrt_index(cfg: Config, v, k2) -> np.ndarray:
    """Address in the 1/(sqrt(v_hat) + eps) table of ``v_hat = v * k2``: the exponent E and
    the rsqrt_entries_log2 mantissa bits below the leading one of the product of v's 16-bit
    normalised mantissa and R2; E clamped to the table (v = 0 reads the first entry)."""
    r2, e2 = k2
    M, (e_lo, e_hi) = cfg.rsqrt_entries_log2, cfg.adam_exponents
    v = np.asarray(v, dtype=np.int64)
    n = _bit_length(v)
    mv = np.where(n <= 16, v << np.maximum(16 - n, 0), v >> np.maximum(n - 16, 0))
    q = mv * r2
    nq = _bit_length(q)
    e = nq - 1 + (n - 1 - cfg.adam_v.frac_bits) + e2 - 15 - cfg.recip_frac_bits
    idx = (q >> np.maximum(nq - 1 - M, 0)) & ((1 << M) - 1)
    addr = ((e - e_lo) << M) + idx
    addr = np.where(e < e_lo, 0, np.where(e > e_hi, ((e_hi - e_lo + 1) << M) - 1, addr))
    return np.where(v == 0, 0, addr)


def adam_step(cfg: Config, G, m, v, w, alpha: int, k2, rand=None, rtab_rsqrt=None):
    """Adam on the exact batch sum ``G`` (the plain gradient, U fraction bits):

        g   = requantize(G, U, adam_m)
        m'  = requantize(m 2^20 + c1 (g - m), F_m + 20, adam_m)
        sq  = requantize(g g, 2 F_m, adam_v)
        v'  = requantize(v 2^20 + c2 (sq - v), F_v + 20, adam_v)
        r   = table[rsqrt_index(v', k2)]          ~ 1 / (sqrt(v' / (1 - beta2^t)) + eps)
        w'  = saturate(w - round(m' r alpha))     (training.rounding, rounded once)

    All nearest-even except the step. Returns ``(w', m', v')``."""
    fm, fv, fb = cfg.adam_m, cfg.adam_v, OPT_FRAC_BITS
    tab = rsqrt_table(cfg) if rtab_rsqrt is None else rtab_rsqrt
    m, v = np.asarray(m, np.int64), np.asarray(v, np.int64)
    g = requantize(G, cfg.update_frac_bits, fm)
    m_new = requantize((m << fb) + cfg.adam_c1 * (g - m), fm.frac_bits + fb, fm)
    sq = requantize(g * g, 2 * fm.frac_bits, fv)
    v_new = requantize((v << fb) + cfg.adam_c2 * (sq - v), fv.frac_bits + fb, fv)
    r = tab[rsqrt_index(cfg, v_new, k2)]
    step = round_shift(m_new * r * alpha, cfg.adam_step_shift, cfg.rounding, rand)
    return saturate(np.asarray(w, np.int64) - step, cfg.weight), m_new, v_new


@dataclass
class OptimizerState:
    """Per-parameter state (same shapes as the parameters, bias last) and Adam's powers.

    ``s1``: momentum's velocity or Adam's first moment; ``s2``: Adam's second moment;
    ``p1``, ``p2``: beta1**t, beta2**t for the next update t (32 fraction bits)."""

    cfg: Config
    s1: list
    s2: list
    p1: int = 0
    p2: int = 0
    adam_lr_code: int = 0
    _tables: dict = field(default_factory=dict, repr=False)

    @classmethod
    def zeros(cls, cfg: Config, shapes) -> "OptimizerState":
        st = cls(cfg, [np.zeros(s, np.int64) for s in shapes], [np.zeros(s, np.int64) for s in shapes])
        if cfg.optimizer == "adam":
            st.p1, st.p2 = initial_beta_power(cfg, cfg.adam_c1), initial_beta_power(cfg, cfg.adam_c2)
            st.adam_lr_code = cfg.adam_lr_code
        return st

    def step(self, params: list, grads: list, rand: list) -> list:
        """New parameters from the batch sums (and this object's state moved by one update)."""
        cfg = self.cfg
        if cfg.optimizer == "sgd":
            return [saturate(w - round_shift(G, cfg.update_shift, cfg.rounding, r), cfg.weight)
                    for w, G, r in zip(params, grads, rand)]
        if cfg.optimizer == "momentum":
            out = []
            for l, (w, G, r) in enumerate(zip(params, grads, rand)):
                w_new, self.s1[l] = momentum_step(cfg, G, self.s1[l], w, r)
                out.append(w_new)
            return out
        if not self._tables:
            self._tables = {"recip": recip_table(cfg), "rsqrt": rsqrt_table(cfg)}
        alpha, k2 = adam_scalars(cfg, self.p1, self.p2, self.adam_lr_code, self._tables["recip"])
        out = []
        for l, (w, G, r) in enumerate(zip(params, grads, rand)):
            w_new, self.s1[l], self.s2[l] = adam_step(cfg, G, self.s1[l], self.s2[l], w, alpha, k2, r,
                                                      self._tables["rsqrt"])
            out.append(w_new)
        self.p1, self.p2 = next_beta_power(self.p1, cfg.adam_c1), next_beta_power(self.p2, cfg.adam_c2)
        return out

    def copy_state(self) -> dict:
        return {"s1": [a.copy() for a in self.s1], "s2": [a.copy() for a in self.s2], "p1": self.p1, "p2": self.p2}
