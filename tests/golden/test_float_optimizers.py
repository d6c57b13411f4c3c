"""golden.float_model optimizers (sgd, momentum, adam) against torch.optim in float64.

Both sides start from the same parameters (the fixed model's initial codes as floats), see
the same act-format inputs and targets and the same mini-batches of 4 (golden.train's
sample order, batches running across epoch boundaries), and compute the same batch-mean
loss; torch gets its gradients from autograd and its updates from torch.optim. After 50
updates every float64 parameter must agree to 1e-9 relative.
"""
from pathlib import Path

import numpy as np
import pytest
import torch  # a test dependency (pyproject.toml, dev): a missing torch fails, it never skips

from golden.config import Config, load_config
from golden.datasets import epoch_order, load_dataset
from golden.fixed_model import init_params
from golden.float_model import FloatMLP
from golden.train import quantize_dataset

ROOT = Path(__file__).resolve().parents[2]
UPDATES = 50
BATCH = 4
# learning rates at which both networks move well away from their initial parameters
OPTIMIZERS = {"sgd": dict(learning_rate=1.0),
              "momentum": dict(learning_rate=0.1, momentum=0.9),
              "adam": dict(learning_rate=0.01, beta1=0.9, beta2=0.999, epsilon=1e-3)}


def networks():
    return {"xor-mse": Config(layers=(2, 4, 1), activations=("sigmoid", "sigmoid"), loss="mse", dataset="xor"),
            "iris-ce": load_config(ROOT / "examples" / "iris.toml")}


def batches(cfg, n_train, n):
    """Index arrays of the first ``n`` mini-batches in golden.train's sample order."""
    pending, out, epoch = [], [], 0
    while len(out) < n:
        for i in epoch_order(n_train, epoch, cfg.split_seed):
            pending.append(i)
            if len(pending) == cfg.batch_size:
                out.append(np.array(pending))
                pending = []
                if len(out) == n:
                    break
        epoch += 1
    return out


class TorchMLP(torch.nn.Module):
    def __init__(self, cfg, params):
        super().__init__()
        self.cfg = cfg
        self.layers = torch.nn.ModuleList()
        for p in params:
            lin = torch.nn.Linear(p.shape[1] - 1, p.shape[0], dtype=torch.float64)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(p[:, :-1]))
                lin.bias.copy_(torch.from_numpy(p[:, -1]))
            self.layers.append(lin)

    def loss(self, X, T):
        a = X
        for lin, kind in zip(self.layers, self.cfg.activations):
            z = lin(a)
            if kind == "softmax":  # last layer: cross-entropy on log-softmax
                return torch.mean(-torch.sum(T * torch.log_softmax(z, dim=1), dim=1))
            a = {"sigmoid": torch.sigmoid, "tanh": torch.tanh}[kind](z)
        return torch.mean(0.5 * torch.sum((a - T) ** 2, dim=1))

    def params(self):
        return [torch.cat([lin.weight, lin.bias[:, None]], dim=1).detach().numpy() for lin in self.layers]


def torch_optimizer(cfg, parameters):
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=cfg.learning_rate)
    if cfg.optimizer == "momentum":
        return torch.optim.SGD(parameters, lr=cfg.learning_rate, momentum=cfg.momentum,
                               dampening=0, nesterov=False, weight_decay=0)
    return torch.optim.Adam(parameters, lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2),
                            eps=cfg.epsilon, amsgrad=False, weight_decay=0)


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("net", list(networks()))
def test_float_optimizer_matches_torch(net, optimizer):
    cfg = networks()[net].with_(batch_size=BATCH, optimizer=optimizer, **OPTIMIZERS[optimizer])
    q = quantize_dataset(cfg, load_dataset(cfg))
    X, T = cfg.act.to_float(q.X_train), cfg.act.to_float(q.T_train)
    p0 = [cfg.weight.to_float(p) for p in init_params(cfg)]

    flt = FloatMLP(cfg, p0)
    ref = TorchMLP(cfg, p0)
    opt = torch_optimizer(cfg, ref.parameters())
    for idx in batches(cfg, len(X), UPDATES):
        flt.step(X[idx], T[idx])
        opt.zero_grad()
        ref.loss(torch.from_numpy(X[idx]), torch.from_numpy(T[idx])).backward()
        opt.step()

    assert flt.step_count == UPDATES
    for l, (mine, theirs) in enumerate(zip(flt.params, ref.params())):
        # the comparison means something only if training moved the parameters
        assert np.abs(mine - p0[l]).max() > 0.05, f"layer {l} barely moved"
        # atol = 0: every parameter, including the biases that start at 0, is compared relatively
        np.testing.assert_allclose(mine, theirs, rtol=1e-9, atol=0, err_msg=f"layer {l}")
