"""Everything the RTL is expected to produce during a training run, computed up front.

The golden models do not depend on the RTL, so the scoreboard's expectations (output
codes of every sample, the parameter signature after every update, optionally every
parameter, the test-set outputs after every epoch) and the float/fixed statistics are
computed before the simulation starts. The simulation loop then only moves samples and
compares integers, and the simulator is never kept waiting for the models.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from golden.config import Config
from golden.datasets import Dataset, epoch_order
from golden.float_model import loss_value
from golden.signature import params_signature, state_signature
from golden.train import GoldenRun

__all__ = ["EpochPlan", "TrainingPlan", "make_plan"]


@dataclass
class EpochPlan:
    order: np.ndarray  # training sample indices, in the order they are sent
    outputs: np.ndarray  # (samples, n_out) expected output codes
    updates: dict  # sample position in this epoch -> (signature, params or None)
    test_outputs: np.ndarray | None  # expected infer outputs on the test set after the epoch
    fixed_loss: float  # running loss of the fixed model's outputs over the epoch
    float_loss: float  # the same for the float model (its output for each sample before its step)
    stats: dict  # golden float/fixed losses and accuracies after the epoch (golden.train.EpochStats)


@dataclass
class TrainingPlan:
    X_train: np.ndarray  # act codes
    T_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int | None
    initial_params: list
    final_params: list
    epochs: list = field(default_factory=list)
    final_state: dict | None = None  # the optimizer state at the end (OptimizerState.copy_state)

    def save(self, path) -> None:
        Path(path).write_bytes(pickle.dumps(self))

    @staticmethod
    def load(path) -> "TrainingPlan":
        return pickle.loads(Path(path).read_bytes())


def make_plan(cfg: Config, ds: Dataset, epochs: int, max_samples: int | None = None,
              keep_params: bool = False, evaluate: bool = True, on_sample=None) -> TrainingPlan:
    run = GoldenRun.start(cfg, ds)
    q = run.q
    plan = TrainingPlan(q.X_train, q.T_train, q.X_test, ds.y_test, ds.n_classes,
                        [p.copy() for p in run.fixed.params], [])
    for e in range(epochs):
        order = epoch_order(len(q.X_train), e, cfg.split_seed)
        if max_samples is not None:
            order = order[:max_samples]
        outputs, updates, float_out = [], {}, []
        for pos, i in enumerate(order):
            float_out.append(run.flt.predict(cfg.act.to_float(q.X_train[i])[None, :])[0])
            trace = run.fixed.train_sample(q.X_train[i], q.T_train[i])
            outputs.append(trace.output)
            if trace.params_after is not None:
                updates[pos] = (params_signature(cfg, trace.params_after),
                                [p.copy() for p in trace.params_after] if keep_params else None,
                                state_signature(cfg, trace.state_after), trace.state_after if keep_params else None)
            run._pending.append(i)  # the float model follows the same mini-batches
            if len(run._pending) == cfg.batch_size:
                idx = np.array(run._pending)
                run.flt.step(cfg.act.to_float(q.X_train[idx]), cfg.act.to_float(q.T_train[idx]))
                run._pending.clear()
            if on_sample is not None:
                on_sample()
        outputs = np.array(outputs, dtype=np.int64)
        targets = cfg.act.to_float(q.T_train[order])
        fixed_loss = loss_value(cfg.loss, cfg.act.to_float(outputs), targets)
        float_loss = loss_value(cfg.loss, np.array(float_out), targets)
        if evaluate:
            test_outputs = run.fixed.predict(q.X_test) if len(q.X_test) else np.zeros((0, cfg.layers[-1]), np.int64)
            stats = run.evaluate(e).__dict__
        else:
            test_outputs, stats = None, {}
        plan.epochs.append(EpochPlan(order, outputs, updates, test_outputs, fixed_loss, float_loss, stats))
    plan.final_params = [p.copy() for p in run.fixed.params]
    plan.final_state = run.fixed.opt.copy_state()
    return plan
