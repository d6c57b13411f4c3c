"""The main job's loop: train the RTL epoch by epoch next to the golden fixed and float models.

Transport-agnostic: runs inside a cocotb test (Icarus, Verilator) or an amaranth.sim
testbench. The golden fixed model is driven sample by sample with the RTL (it is the
scoreboard); the float model follows the same order and mini-batches (golden.train).
After each epoch the RTL classifies the test set in infer mode.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from golden.config import Config
from golden.datasets import Dataset, epoch_order
from golden.float_model import loss_value
from golden.train import GoldenRun

from .trainer_session import TrainingSession

__all__ = ["EpochRecord", "run_training"]


@dataclass
class EpochRecord:
    epoch: int
    rtl_loss: float  # running training loss over the epoch, from the RTL's outputs
    fixed_loss: float  # the same from the golden fixed model's outputs
    float_loss: float  # float model's training loss at the end of the epoch
    rtl_test_accuracy: float
    fixed_test_accuracy: float
    float_test_accuracy: float
    mismatches: int  # cumulative
    samples: int  # cumulative training samples
    train_cycles: int  # cumulative cycles of training samples, from the hardware's counter
    sim_seconds: float  # cumulative wall time inside the simulation loop

    def as_dict(self):
        return asdict(self)


async def run_training(cfg: Config, ds: Dataset, host, epochs: int, check_params: str = "signature",
                       on_epoch=None, on_sample=None, max_samples: int | None = None,
                       evaluate: bool = True) -> tuple:
    """Returns (records, session). ``max_samples`` caps training samples per epoch (for short runs);
    ``evaluate=False`` skips the per-epoch test-set pass and golden evaluation (benchmarks)."""
    golden = GoldenRun.start(cfg, ds)
    session = TrainingSession(cfg, host, golden.fixed, check_params)
    q = golden.q
    await host.check_id()
    records = []
    train_cycles = 0
    t0 = time.perf_counter()
    for e in range(epochs):
        order = epoch_order(len(q.X_train), e, cfg.split_seed)
        if max_samples is not None:
            order = order[:max_samples]
        await host.set_mode(infer=False)
        first = len(session.result.outputs)
        cycles_before = await host.cycles()
        targets = []
        for i in order:
            # the golden fixed model steps inside session.train_sample (it is the scoreboard)
            await session.train_sample(q.X_train[i], q.T_train[i])
            targets.append(q.T_train[i])
            # float model: same order, same mini-batches
            golden._pending.append(i)
            if len(golden._pending) == cfg.batch_size:
                idx = np.array(golden._pending)
                golden.flt.step(cfg.act.to_float(q.X_train[idx]), cfg.act.to_float(q.T_train[idx]))
                golden._pending.clear()
            if on_sample is not None:
                on_sample()
        train_cycles += await host.cycles() - cycles_before
        rtl_out = session.result.outputs[first:]
        fixed_out = session.result.golden_outputs[first:]
        if evaluate:
            await host.set_mode(infer=True)
            test_out = [await session.infer(x) for x in q.X_test]
            stats = golden.evaluate(e)
            rtl_acc = ds.accuracy(cfg.act.to_float(np.array(test_out)), ds.y_test)
        else:
            stats, rtl_acc = None, float("nan")
        T = cfg.act.to_float(np.array(targets))
        rec = EpochRecord(
            epoch=e,
            rtl_loss=loss_value(cfg.loss, cfg.act.to_float(np.array(rtl_out)), T),
            fixed_loss=loss_value(cfg.loss, cfg.act.to_float(np.array(fixed_out)), T),
            float_loss=stats.float_loss if stats else float("nan"),
            rtl_test_accuracy=rtl_acc,
            fixed_test_accuracy=stats.fixed_test_accuracy if stats else float("nan"),
            float_test_accuracy=stats.float_test_accuracy if stats else float("nan"),
            mismatches=session.result.mismatches,
            samples=session.result.samples,
            train_cycles=train_cycles,
            sim_seconds=time.perf_counter() - t0,
        )
        records.append(rec)
        if on_epoch is not None:
            on_epoch(rec)
    await host.set_mode(infer=False)
    await session.finish()
    return records, session
