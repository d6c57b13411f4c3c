"""Train the float and the fixed-point golden models side by side on one dataset.

Both models see the same quantized inputs, the same initial parameters and the same
sample order (``epoch_order``); mini-batches run across epoch boundaries (the batch
counter is never reset), exactly as the hardware counts samples.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import Config
from .datasets import Dataset, epoch_order
from .fixed_model import FixedMLP, init_params
from .float_model import FloatMLP, loss_value

__all__ = ["GoldenRun", "EpochStats", "train_golden", "quantize_dataset"]


@dataclass
class EpochStats:
    epoch: int
    float_loss: float
    fixed_loss: float
    float_train_accuracy: float
    fixed_train_accuracy: float
    float_test_accuracy: float
    fixed_test_accuracy: float


@dataclass
class QuantizedData:
    X_train: np.ndarray  # act codes
    T_train: np.ndarray  # act codes of the targets
    X_test: np.ndarray
    T_test: np.ndarray


def quantize_dataset(cfg: Config, ds: Dataset) -> QuantizedData:
    n_out = cfg.layers[-1]
    return QuantizedData(cfg.act.to_code(ds.X_train), cfg.act.to_code(ds.targets(ds.y_train, n_out)),
                         cfg.act.to_code(ds.X_test), cfg.act.to_code(ds.targets(ds.y_test, n_out)))


@dataclass
class GoldenRun:
    cfg: Config
    ds: Dataset
    q: QuantizedData
    fixed: FixedMLP
    flt: FloatMLP
    history: list = field(default_factory=list)
    _pending: list = field(default_factory=list)  # float model's partial mini-batch

    @classmethod
    def start(cls, cfg: Config, ds: Dataset) -> "GoldenRun":
        params = init_params(cfg)
        fixed = FixedMLP(cfg, params)
        flt = FloatMLP(cfg, [cfg.weight.to_float(p) for p in params])
        return cls(cfg, ds, quantize_dataset(cfg, ds), fixed, flt)

    def float_inputs(self, codes):
        return self.cfg.act.to_float(codes)

    def train_epoch(self, epoch: int, on_sample=None) -> EpochStats:
        cfg, q = self.cfg, self.q
        for i in epoch_order(len(q.X_train), epoch, cfg.split_seed):
            self.fixed.train_sample(q.X_train[i], q.T_train[i])
            self._pending.append(i)
            if len(self._pending) == cfg.batch_size:
                idx = np.array(self._pending)
                self.flt.step(self.float_inputs(q.X_train[idx]), cfg.act.to_float(q.T_train[idx]))
                self._pending.clear()
            if on_sample is not None:
                on_sample()
        stats = self.evaluate(epoch)
        self.history.append(stats)
        return stats

    def fixed_outputs(self, X_codes) -> np.ndarray:
        return self.cfg.act.to_float(self.fixed.predict(X_codes))

    def evaluate(self, epoch: int) -> EpochStats:
        cfg, q, ds = self.cfg, self.q, self.ds
        T_tr = cfg.act.to_float(q.T_train)
        fo_tr = self.flt.predict(self.float_inputs(q.X_train))
        xo_tr = self.fixed_outputs(q.X_train)
        fo_te = self.flt.predict(self.float_inputs(q.X_test))
        xo_te = self.fixed_outputs(q.X_test)
        return EpochStats(
            epoch=epoch,
            float_loss=loss_value(cfg.loss, fo_tr, T_tr),
            fixed_loss=loss_value(cfg.loss, xo_tr, T_tr),
            float_train_accuracy=ds.accuracy(fo_tr, ds.y_train),
            fixed_train_accuracy=ds.accuracy(xo_tr, ds.y_train),
            float_test_accuracy=ds.accuracy(fo_te, ds.y_test),
            fixed_test_accuracy=ds.accuracy(xo_te, ds.y_test),
        )


def train_golden(cfg: Config, ds: Dataset, epochs: int | None = None, on_epoch=None, on_sample=None) -> GoldenRun:
    run = GoldenRun.start(cfg, ds)
    for e in range(epochs if epochs is not None else cfg.epochs):
        stats = run.train_epoch(e, on_sample)
        if on_epoch is not None:
            on_epoch(stats)
    return run
