"""Float64 reference MLP: textbook forward pass, backpropagation and mini-batch updates.

Parameters use the same layout as the fixed model: ``(n_out, n_in + 1)``, bias last.
Loss is averaged over the batch: MSE ``L = mean_b 1/2 sum_j (a - t)^2``, cross-entropy
``L = mean_b -sum_j t log p`` with a max-subtracted softmax.

The optimizers (``cfg.optimizer``) follow PyTorch's update rules exactly, with no weight
decay (tests/golden/test_float_optimizers.py checks them against ``torch.optim``):

* ``sgd``: ``p -= lr * g`` (``torch.optim.SGD``).
* ``momentum``: ``buf = mu * buf + g; p -= lr * buf`` (``torch.optim.SGD(momentum=mu)``,
  no dampening, not Nesterov; a zero buffer makes the first step ``buf = g`` as in torch).
* ``adam``: ``t += 1; m += (1 - beta1) * (g - m); v = beta2 * v + (1 - beta2) * g * g;
  p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)``
  (``torch.optim.Adam``, amsgrad off).
"""
from __future__ import annotations

import numpy as np

from .config import Config

__all__ = ["FloatMLP", "activation", "activation_derivative", "loss_value"]


def activation(kind: str, z, alpha: float) -> np.ndarray:
    if kind == "linear":
        return z.copy()
    if kind == "relu":
        return np.maximum(z, 0.0)
    if kind == "leaky_relu":
        return np.where(z > 0, z, alpha * z)
    if kind == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if kind == "tanh":
        return np.tanh(z)
    if kind == "softmax":
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    raise ValueError(f"unknown activation {kind!r}")


def activation_derivative(kind: str, z, a, alpha: float) -> np.ndarray:
    if kind == "linear":
        return np.ones_like(z)
    if kind == "relu":
        return (z > 0).astype(np.float64)
    if kind == "leaky_relu":
        return np.where(z > 0, 1.0, alpha)
    if kind == "sigmoid":
        return a * (1.0 - a)
    if kind == "tanh":
        return 1.0 - a * a
    raise ValueError(f"no elementwise derivative for {kind!r}")


def loss_value(loss: str, out, T) -> float:
    """Mean loss over the rows of ``out`` (network outputs) and ``T`` (targets)."""
    out = np.atleast_2d(out)
    T = np.atleast_2d(T)
    if loss == "mse":
        return float(np.mean(0.5 * np.sum((out - T) ** 2, axis=1)))
    # cross-entropy on probabilities; clamp so a zero probability reports a finite loss
    return float(np.mean(-np.sum(T * np.log(np.maximum(out, 1e-12)), axis=1)))


class FloatMLP:
    """Optimizer state, one array per layer in the parameter layout (zero at the start):
    ``velocity`` (momentum buffer), ``adam_m`` and ``adam_v`` (Adam's first and second
    moments); ``step_count`` counts the updates made so far (Adam's t)."""

    def __init__(self, cfg: Config, params):
        self.cfg = cfg
        self.params = [np.array(p, dtype=np.float64) for p in params]
        self.step_count = 0
        self.velocity = [np.zeros_like(p) for p in self.params]
        self.adam_m = [np.zeros_like(p) for p in self.params]
        self.adam_v = [np.zeros_like(p) for p in self.params]

    def forward(self, X):
        """Returns (zs, acts) for a batch ``X`` of shape (B, n_in); acts[0] = X."""
        A = np.atleast_2d(np.asarray(X, dtype=np.float64))
        zs, acts = [], [A]
        for l, W in enumerate(self.params):
            Z = A @ W[:, :-1].T + W[:, -1]
            A = activation(self.cfg.activations[l], Z, self.cfg.leaky_alpha)
            zs.append(Z)
            acts.append(A)
        return zs, acts

    def predict(self, X):
        return self.forward(X)[1][-1]

    def loss(self, X, T) -> float:
        return loss_value(self.cfg.loss, self.predict(X), T)

    def gradients(self, X, T) -> list:
        """d(mean loss)/d(params) for the batch, same layout as the parameters."""
        c = self.cfg
        T = np.atleast_2d(np.asarray(T, dtype=np.float64))
        zs, acts = self.forward(X)
        B = acts[0].shape[0]
        out = acts[-1]
        if c.activations[-1] == "softmax":  # softmax + cross-entropy
            delta = (out - T) / B
        else:
            if c.loss == "mse":
                dL_da = out - T
            else:  # pragma: no cover - config forbids CE without softmax
                raise ValueError("cross_entropy requires softmax")
            delta = dL_da * activation_derivative(c.activations[-1], zs[-1], out, c.leaky_alpha) / B
        grads = [None] * c.n_layers
        for l in range(c.n_layers - 1, -1, -1):
            A_prev = acts[l]
            grads[l] = np.concatenate([delta.T @ A_prev, delta.sum(axis=0)[:, None]], axis=1)
            if l > 0:
                back = delta @ self.params[l][:, :-1]  # uses the weights before the update
                delta = back * activation_derivative(c.activations[l - 1], zs[l - 1], acts[l], c.leaky_alpha)
        return grads

    def step(self, X, T) -> None:
        """One update of every parameter from the batch (X, T) with ``cfg.optimizer``."""
        c = self.cfg
        lr = c.learning_rate
        grads = self.gradients(X, T)
        self.step_count += 1
        t = self.step_count
        for l, g in enumerate(grads):
            if c.optimizer == "sgd":
                self.params[l] -= lr * g
            elif c.optimizer == "momentum":
                self.velocity[l] = c.momentum * self.velocity[l] + g
                self.params[l] -= lr * self.velocity[l]
            elif c.optimizer == "adam":
                m, v = self.adam_m[l], self.adam_v[l]
                m += (1.0 - c.beta1) * (g - m)
                v *= c.beta2
                v += (1.0 - c.beta2) * g * g
                denom = np.sqrt(v) / np.sqrt(1.0 - c.beta2 ** t) + c.epsilon
                self.params[l] -= (lr / (1.0 - c.beta1 ** t)) * (m / denom)
            else:  # pragma: no cover - config validates the name
                raise ValueError(f"unknown optimizer {c.optimizer!r}")
