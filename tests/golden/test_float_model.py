"""golden.float_model: backpropagation against central finite differences and PyTorch autograd.

Every hidden activation, every output layer (sigmoid / tanh / linear with MSE, softmax with
cross-entropy), depth 1..3, batch sizes 1 and 5. ReLU kinks are avoided by redrawing the
parameters until no pre-activation of a ReLU-family layer lies within 1e-3 of 0 (a
finite-difference step moves a pre-activation by far less than that).
"""
import os

import numpy as np
import pytest

from golden.config import Config
from golden.float_model import FloatMLP, activation

HIDDEN = ("relu", "leaky_relu", "sigmoid", "tanh", "linear")
OUTPUTS = {"sigmoid": "mse", "tanh": "mse", "linear": "mse", "softmax": "cross_entropy"}
KINKED = ("relu", "leaky_relu")


def cases():
    out = []
    for depth in (1, 2, 3):
        hiddens = [()] if depth == 1 else [
            tuple(HIDDEN[(i + k) % len(HIDDEN)] for k in range(depth - 1)) for i in range(len(HIDDEN))]
        for hidden in hiddens:
            for last in OUTPUTS:
                for batch in (1, 5):
                    out.append(pytest.param(hidden, last, batch, id=f"{'-'.join(hidden + (last,))}-B{batch}"))
    return out


def make_problem(hidden, last, batch, seed=0):
    sizes = {0: (3, 2), 1: (3, 4, 3), 2: (3, 4, 5, 3)}[len(hidden)]
    sizes = sizes[:-1] + (3 if last == "softmax" else 2,)
    cfg = Config(layers=sizes, activations=hidden + (last,), loss=OUTPUTS[last], leaky_alpha=0.2)
    rng = np.random.default_rng(seed)
    for _ in range(1000):
        params = [np.concatenate([rng.normal(0, 0.8, (n_out, n_in)), rng.normal(0, 0.3, (n_out, 1))], axis=1)
                  for n_in, n_out in zip(sizes[:-1], sizes[1:])]
        X = rng.normal(0, 1, (batch, sizes[0]))
        model = FloatMLP(cfg, params)
        zs, _ = model.forward(X)
        if all(np.abs(z).min() > 1e-3 for z, k in zip(zs, cfg.activations) if k in KINKED):
            break
    else:  # pragma: no cover
        raise AssertionError("could not draw kink-free parameters")
    if last == "softmax":
        T = np.eye(sizes[-1])[rng.integers(0, sizes[-1], batch)]
    elif last == "tanh":
        T = rng.uniform(-0.9, 0.9, (batch, sizes[-1]))
    else:
        T = rng.uniform(0.05, 0.95, (batch, sizes[-1]))
    return cfg, model, X, T


def rel_error(g, ref):
    g = np.concatenate([a.ravel() for a in g])
    ref = np.concatenate([a.ravel() for a in ref])
    return np.linalg.norm(g - ref) / np.linalg.norm(ref), np.abs(g - ref).max() / np.abs(ref).max()


@pytest.mark.parametrize("hidden, last, batch", cases())
def test_gradients_match_central_differences(hidden, last, batch):
    cfg, model, X, T = make_problem(hidden, last, batch)
    grads = model.gradients(X, T)
    eps = 1e-6
    fd = []
    for l, W in enumerate(model.params):
        g = np.zeros_like(W)
        for idx in np.ndindex(W.shape):
            old = W[idx]
            W[idx] = old + eps
            up = model.loss(X, T)
            W[idx] = old - eps
            down = model.loss(X, T)
            W[idx] = old
            g[idx] = (up - down) / (2 * eps)
        fd.append(g)
        assert grads[l].shape == W.shape
    norm_rel, max_rel = rel_error(grads, fd)
    assert norm_rel < 1e-6 and max_rel < 1e-6, (norm_rel, max_rel)


# ---- PyTorch autograd ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def torch():
    if os.environ.get("CI") == "true":  # CI installs torch: its absence is a failure there
        import torch
        return torch
    return pytest.importorskip("torch")


def torch_grads(torch, cfg, params, X, T):
    F = torch.nn.functional
    Ws = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in params]
    A = torch.tensor(X, dtype=torch.float64)
    Tt = torch.tensor(T, dtype=torch.float64)
    for W, kind in zip(Ws, cfg.activations):
        Z = A @ W[:, :-1].T + W[:, -1]
        if kind == "softmax":
            A = F.log_softmax(Z, dim=1)  # log-probabilities, for the loss
        else:
            A = {"relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "linear": lambda z: z,
                 "leaky_relu": lambda z: F.leaky_relu(z, cfg.leaky_alpha)}[kind](Z)
    if cfg.loss == "cross_entropy":
        loss = -(Tt * A).sum(dim=1).mean()
    else:
        loss = (0.5 * ((A - Tt) ** 2).sum(dim=1)).mean()
    loss.backward()
    return [W.grad.numpy() for W in Ws], loss.detach().item()


@pytest.mark.parametrize("hidden, last, batch", cases())
def test_gradients_match_torch_autograd(torch, hidden, last, batch):
    cfg, model, X, T = make_problem(hidden, last, batch, seed=1)
    ref, loss = torch_grads(torch, cfg, model.params, X, T)
    norm_rel, max_rel = rel_error(model.gradients(X, T), ref)
    assert norm_rel < 1e-9 and max_rel < 1e-9, (norm_rel, max_rel)
    assert model.loss(X, T) == pytest.approx(loss, rel=1e-12)


# ---- forward pass and step ---------------------------------------------------------------

def test_softmax_is_max_subtracted_and_stable():
    z = np.array([[1000.0, 999.0, -1000.0]])
    p = activation("softmax", z, 0.1)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p, [[1 / (1 + np.exp(-1)), np.exp(-1) / (1 + np.exp(-1)), 0.0]], atol=1e-15)


def test_step_is_sgd_on_the_batch_mean():
    cfg, model, X, T = make_problem(("tanh",), "softmax", 5)
    cfg = cfg.with_(learning_rate=0.25)
    model.cfg = cfg
    before = [p.copy() for p in model.params]
    g = model.gradients(X, T)
    model.step(X, T)
    for b, gg, a in zip(before, g, model.params):
        np.testing.assert_allclose(a, b - 0.25 * gg, rtol=0, atol=1e-15)
    # the mean of per-sample gradients equals the batch gradient
    per = [model.gradients(X[i:i + 1], T[i:i + 1]) for i in range(5)]
    for l in range(cfg.n_layers):
        np.testing.assert_allclose(np.mean([p[l] for p in per], axis=0), model.gradients(X, T)[l], atol=1e-14)
