"""Bit-exact fixed-point MLP: the specification every hardware bit is checked against.

Integer NumPy only, following docs/arithmetic.md step by step. Parameters of layer l are
one int64 array ``(n_out, n_in + 1)`` in the weight format whose last column is the bias
(the bias is a weight on a constant input of 1.0, so the datapath treats it like any
other column).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .activations import FixedActivations
from .config import Config
from .fixed import requantize, saturate, round_shift
from .lfsr import Lfsr, lane_seed
from .optimizers import OptimizerState
from .tables import recip_table, softmax_codes

__all__ = ["FixedMLP", "SampleTrace", "init_params_float", "init_params"]


def init_params_float(cfg: Config) -> list:
    """Seeded initial parameters: Xavier-uniform (He-uniform for ReLU layers), zero bias."""
    rng = np.random.default_rng(cfg.init_seed)
    params = []
    for l in range(cfg.n_layers):
        n_in, n_out = cfg.layers[l], cfg.layers[l + 1]
        if cfg.activations[l] in ("relu", "leaky_relu"):
            lim = np.sqrt(6.0 / n_in)
        else:
            lim = np.sqrt(6.0 / (n_in + n_out))
        w = rng.uniform(-lim, lim, size=(n_out, n_in))
        params.append(np.concatenate([w, np.zeros((n_out, 1))], axis=1))
    return params


def init_params(cfg: Config) -> list:
    """The initial parameters as weight-format codes (the float model starts from these too)."""
    return [cfg.weight.to_code(p) for p in init_params_float(cfg)]


@dataclass
class SampleTrace:
    """Every intermediate of one training sample, as integer codes.

    ``a[0]`` is the input; ``z[l]``, ``a[l + 1]`` and ``delta[l]`` belong to weight layer l.
    ``params_after`` (and ``state_after``: the optimizer state, OptimizerState.copy_state)
    are set when this sample completed a mini-batch and triggered the update.
    """

    z: list
    a: list
    delta: list = field(default_factory=list)
    params_after: list | None = None
    state_after: dict | None = None

    @property
    def output(self) -> np.ndarray:
        return self.a[-1]


class FixedMLP:
    def __init__(self, cfg: Config, params=None):
        self.cfg = cfg
        self.acts = FixedActivations(cfg)
        self.rtab = recip_table(cfg)
        if params is None:
            params = init_params(cfg)
        self.params = [np.array(p, dtype=np.int64) for p in params]
        for l, p in enumerate(self.params):
            want = (cfg.layers[l + 1], cfg.layers[l] + 1)
            if p.shape != want:
                raise ValueError(f"params[{l}] has shape {p.shape}, expected {want}")
            if p.min() < cfg.weight.min_code or p.max() > cfg.weight.max_code:
                raise ValueError(f"params[{l}] holds codes outside {cfg.weight}")
        self.grad = [np.zeros_like(p) for p in self.params]
        self.opt = OptimizerState.zeros(cfg, [p.shape for p in self.params])
        self.batch_count = 0
        self.lfsrs = [Lfsr(lane_seed(cfg.sr_seed, p)) for p in range(cfg.update_lanes)]

    # ---- forward -------------------------------------------------------------------
    def forward(self, x) -> SampleTrace:
        c = self.cfg
        a = np.asarray(x, dtype=np.int64)
        if a.shape != (c.layers[0],):
            raise ValueError(f"input has shape {a.shape}, expected ({c.layers[0]},)")
        zs, acts = [], [a]
        for l, w in enumerate(self.params):
            acc = w @ np.append(a, c.act.one)  # exact: frac = weight.frac + act.frac
            z = requantize(acc, c.weight.frac_bits + c.act.frac_bits, c.act)
            kind = c.activations[l]
            a = softmax_codes(z, c, self.acts.tables["exp"], self.rtab) if kind == "softmax" \
                else self.acts.forward(kind, z)
            zs.append(z)
            acts.append(a)
        return SampleTrace(z=zs, a=acts)

    def predict(self, X) -> np.ndarray:
        return np.stack([self.forward(x).output for x in np.asarray(X)])

    # ---- backward ------------------------------------------------------------------
    def output_delta(self, a_out, t) -> np.ndarray:
        c = self.cfg
        e = np.asarray(a_out, dtype=np.int64) - np.asarray(t, dtype=np.int64)  # exact, act frac
        if c.loss == "cross_entropy":  # softmax + CE: delta = p - t
            return requantize(e, c.act.frac_bits, c.error)
        d = self.acts.derivative(c.activations[-1], a_out)
        return requantize(e * d, 2 * c.act.frac_bits, c.error)

    def backward(self, trace: SampleTrace, t) -> list:
        """Deltas of every layer, using the parameters as they are (before any update)."""
        c = self.cfg
        L = c.n_layers
        deltas = [None] * L
        deltas[L - 1] = self.output_delta(trace.a[L], t)
        for l in range(L - 2, -1, -1):
            w_next = self.params[l + 1][:, :-1]  # bias column takes no error
            s = requantize(w_next.T @ deltas[l + 1], c.weight.frac_bits + c.error.frac_bits, c.error)
            d = self.acts.derivative(c.activations[l], trace.a[l + 1])
            deltas[l] = requantize(s * d, c.error.frac_bits + c.act.frac_bits, c.error)
        return deltas

    # ---- update --------------------------------------------------------------------
    def accumulate(self, trace: SampleTrace, deltas) -> None:
        """Add this sample's exact update terms lr * delta * a (bias: a = 1.0) to the batch sums."""
        c = self.cfg
        for l in range(c.n_layers):
            a_ext = np.append(trace.a[l], c.act.one)
            self.grad[l] += np.outer(c.lr_code * deltas[l], a_ext)

    def _random_addends(self) -> list:
        """LFSR states for every parameter of this update, in the documented order:
        each lane walks layers last to first, its rows (j = lane, lane + P, ...) ascending,
        columns 0..n_in (bias last)."""
        c = self.cfg
        P = c.update_lanes
        rand = [np.zeros_like(g) for g in self.grad]
        for l in range(c.n_layers - 1, -1, -1):
            n_out, n_cols = self.grad[l].shape
            for p in range(P):
                rows = np.arange(p, n_out, P)
                if rows.size:
                    rand[l][rows, :] = self.lfsrs[p].take(rows.size * n_cols).reshape(rows.size, n_cols)
        return rand

    def apply_update(self) -> None:
        """The optimizer (golden/optimizers.py) on the batch sums; the sums start again."""
        c = self.cfg
        rand = self._random_addends() if c.rounding == "stochastic" else [None] * c.n_layers
        self.params = self.opt.step(self.params, self.grad, rand)
        for g in self.grad:
            g[:] = 0

    def train_sample(self, x, t) -> SampleTrace:
        """Forward, backward, accumulate; update when the mini-batch is complete."""
        trace = self.forward(x)
        trace.delta = self.backward(trace, t)
        self.accumulate(trace, trace.delta)
        self.batch_count += 1
        if self.batch_count == self.cfg.batch_size:
            self.apply_update()
            self.batch_count = 0
            trace.params_after = [p.copy() for p in self.params]
            trace.state_after = self.opt.copy_state()
        return trace
