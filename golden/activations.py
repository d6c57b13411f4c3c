"""Fixed-point activations and their derivatives (integer codes in, integer codes out).

Forward: ``a = act(z)`` with z and a in the act format. Derivative: computed from the
stored output ``a`` only (ReLU-family from its sign, sigmoid' = a(1-a), tanh' = 1-a^2),
so the backward pass needs nothing but the stored activations.
"""
from __future__ import annotations

import numpy as np

from .config import Config
from .fixed import requantize
from .tables import lut_eval, table_contents, table_spec

__all__ = ["FixedActivations"]


class FixedActivations:
    """Activation functions of one config, with its tables built once."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.specs = {k: table_spec(k, cfg) for k in ("sigmoid", "tanh", "exp")}
        self.tables = {k: table_contents(s) for k, s in self.specs.items()}

    def forward(self, kind: str, z) -> np.ndarray:
        c = self.cfg
        z = np.asarray(z, dtype=np.int64)
        if kind == "linear":
            return z.copy()
        if kind == "relu":
            return np.maximum(z, 0)
        if kind == "leaky_relu":
            neg = requantize(z * c.leaky_alpha_code, 2 * c.act.frac_bits, c.act)
            return np.where(z > 0, z, neg)
        if kind in ("sigmoid", "tanh"):
            return lut_eval(self.specs[kind], self.tables[kind], z)
        raise ValueError(f"no elementwise forward for activation {kind!r}")

    def derivative(self, kind: str, a) -> np.ndarray:
        """Derivative codes (act format) from the stored outputs ``a``."""
        c = self.cfg
        a = np.asarray(a, dtype=np.int64)
        one = c.act.one
        f = c.act.frac_bits
        if kind == "linear":
            return np.full_like(a, one)
        if kind == "relu":
            return np.where(a > 0, one, 0)
        if kind == "leaky_relu":
            return np.where(a > 0, one, c.leaky_alpha_code)
        if kind == "sigmoid":
            return requantize(a * (one - a), 2 * f, c.act)
        if kind == "tanh":
            return requantize(one * one - a * a, 2 * f, c.act)
        raise ValueError(f"no derivative for activation {kind!r}")
