"""The main job's loop: train the RTL epoch by epoch against a precomputed golden plan.

Transport-agnostic: runs inside a cocotb test (Icarus, Verilator) or an amaranth.sim
testbench. Expectations (outputs, update signatures or parameters, test-set outputs) and
the golden fixed/float statistics come from ``sim.check.golden_plan.make_plan``; the loop
sends samples (several per wake-up when the transport queues them: ``TrainingSession.train_many``),
compares integers and reads the hardware's cycle counter. After each
epoch the RTL classifies the test set in infer mode.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from golden.config import Config
from golden.float_model import loss_value

from .golden_plan import TrainingPlan
from .trainer_session import TrainingSession

__all__ = ["EpochRecord", "run_training"]


@dataclass
class EpochRecord:
    epoch: int
    rtl_loss: float  # running training loss over the epoch, from the RTL's outputs
    fixed_loss: float  # the same from the golden fixed model's outputs
    float_loss: float  # the same from the float model's outputs (same samples, same order)
    rtl_test_accuracy: float
    fixed_test_accuracy: float
    float_test_accuracy: float
    mismatches: int  # cumulative
    samples: int  # cumulative training samples
    train_cycles: int  # cumulative cycles of training samples, from the hardware's counter
    sim_seconds: float  # cumulative wall time inside the simulation loop

    def as_dict(self):
        return asdict(self)


def _accuracy(plan: TrainingPlan, outputs, y) -> float:
    if plan.n_classes is None or len(y) == 0:
        return float("nan")
    outputs = np.atleast_2d(outputs)
    pred = (outputs[:, 0] > 0.5).astype(int) if outputs.shape[1] == 1 else outputs.argmax(axis=1)
    return float(np.mean(pred == np.asarray(y)))


async def run_training(cfg: Config, plan: TrainingPlan, host, check_params: str = "signature",
                       on_epoch=None, on_sample=None) -> tuple:
    """Train through ``host`` following ``plan``; returns (records, the TrainingSession)."""
    board = TrainingSession(cfg, host, check_params=check_params)
    await host.check_id()
    records = []
    train_cycles = 0
    t0 = time.perf_counter()
    for e, ep in enumerate(plan.epochs):
        await host.set_mode(infer=False)
        first = len(board.result.outputs)
        await host.wait_idle()
        cycles_before = await host.cycles()
        batch = board.batch_capacity()  # samples queued per transport wake-up (1 for most transports)
        for start in range(0, len(ep.order), batch):
            await board.train_many(
                (plan.X_train[i], plan.T_train[i], ep.outputs[pos], ep.updates.get(pos))
                for pos, i in enumerate(ep.order[start:start + batch], start))
            if on_sample is not None:
                for _ in ep.order[start:start + batch]:
                    on_sample()
        await board.flush()  # (the samples schedule: the epoch's partial group)
        await host.wait_idle()  # the epoch's last update belongs to its cycles
        train_cycles += await host.cycles() - cycles_before
        rtl_out = np.array(board.result.outputs[first:])
        if ep.test_outputs is not None:
            await host.set_mode(infer=True)
            batch = board.batch_capacity(infer=True)
            test_out = []
            for start in range(0, len(plan.X_test), batch):
                test_out += await board.infer_many(zip(plan.X_test[start:start + batch],
                                                       ep.test_outputs[start:start + batch]))
            rtl_acc = _accuracy(plan, cfg.act.to_float(np.array(test_out)), plan.y_test)
        else:
            rtl_acc = float("nan")
        nan = float("nan")
        rec = EpochRecord(
            epoch=e,
            rtl_loss=loss_value(cfg.loss, cfg.act.to_float(rtl_out), cfg.act.to_float(plan.T_train[ep.order])),
            fixed_loss=ep.fixed_loss,
            float_loss=ep.float_loss,
            rtl_test_accuracy=rtl_acc,
            fixed_test_accuracy=ep.stats.get("fixed_test_accuracy", nan),
            float_test_accuracy=ep.stats.get("float_test_accuracy", nan),
            mismatches=board.result.mismatches,
            samples=board.result.samples,
            train_cycles=train_cycles,
            sim_seconds=time.perf_counter() - t0,
        )
        records.append(rec)
        if on_epoch is not None:
            on_epoch(rec)
    await host.set_mode(infer=False)
    await board.finish(plan.final_params, plan.final_state)
    return records, board
