"""Cycles per training sample and MAC utilization from the schedule formula (no simulation).

``hdl/layout.py: expected_train_cycles`` is the sequencer's schedule for one sample sent to
an idle trainer (MSE or softmax output; a softmax output's time is derived there from the
softmax unit's and the output stage's stages), checked against the hardware's cycle
counter by the trainer tests; it covers SGD and momentum. Added here:

- streaming: when the next sample's beats arrive while the current one computes (as the
  ``train`` and ``bench`` hosts send them), its loading (``n_in + n_out`` beats) is hidden,
  and so is the pipeline tail after the last update issue, unless the first layer is too
  short for the next forward pass to start before the last writes land (the sequencer's
  ``short`` case, where it waits for the pipeline to empty).

The samples schedule (``hardware.parallelism = "samples"``, lane p trains sample p of a
group of P = lanes): ``hdl/trainer/samples/schedule.py`` has the formulas, per group:
``expected_group_cycles`` for a group sent to an idle trainer (isolated) and
``steady_group_cycles`` between the starts of groups back to back (streaming, what sets the
throughput); per sample, the average over a mini-batch's B / P groups, divided by B (the
last group applies the update: with Adam its queued biases add ``adam_bias_queue``
cycles, and the next group waits for them). Utilization is useful MACs / (cycles per
sample x lanes).

The formulas and the streaming case are checked against the hardware's counter under amaranth.sim in
``tests/sim/flows/explore/test_cycles.py``. Rows schedule: Adam is not covered (its biases
queue for free cycles of the update core): its cycles come from the ``rtl`` stage. Momentum with batch > 1
in the ``short`` case is an upper bound: a sample without an update lets the next one start
a few cycles sooner.
"""
from __future__ import annotations

from golden.config import Config

__all__ = ["isolated_cycles", "streaming_cycles", "cycle_figures", "NotCovered"]


class NotCovered(ValueError):
    """The formula does not cover this config (the message says why)."""


def _samples_per_sample(cfg: Config, streaming: bool) -> float:
    """The samples schedule: cycles per sample over a mini-batch's groups (each sent to an
    idle trainer, or back to back)."""
    from hdl.trainer.samples.schedule import expected_group_cycles, steady_group_cycles
    group = steady_group_cycles if streaming else expected_group_cycles
    groups = cfg.batch_size // cfg.lanes  # (a multiple: the config checks it)
    return ((groups - 1) * group(cfg) + group(cfg, apply=True)) / cfg.batch_size


def isolated_cycles(cfg: Config) -> int | float:
    """Cycles the counter records for one training sample sent to an idle trainer (the
    samples schedule: per sample of groups sent to an idle trainer)."""
    from hdl.layout import expected_train_cycles
    if cfg.parallelism == "samples":
        return _samples_per_sample(cfg, streaming=False)
    if cfg.optimizer == "adam":
        raise NotCovered("the cycle formula does not cover optimizer = 'adam' (run the rtl stage)")
    return expected_train_cycles(cfg)


def _short(cfg: Config) -> bool:
    """The sequencer's ``short`` case (hdl/trainer/sequencer.py): the next sample waits for
    the pipeline to empty."""
    from hdl.layout import Layout, update_latency
    return (Layout(cfg).blocks(0) - 1) * cfg.layers[0] < update_latency(cfg)


def streaming_cycles(cfg: Config) -> int | float:
    """Cycles per training sample in a stream of samples (loading overlapped)."""
    from hdl.layout import pipeline_tail
    if cfg.parallelism == "samples":
        return _samples_per_sample(cfg, streaming=True)
    hidden = cfg.layers[0] + cfg.layers[-1] + (0 if _short(cfg) else pipeline_tail(cfg))
    return isolated_cycles(cfg) - hidden


def cycle_figures(cfg: Config) -> dict:
    """The cycles stage's result: cycles per sample (streaming, the headline, and isolated),
    the ideal (useful MACs / multipliers) and MAC utilization (ARCHITECTURE.md's definitions;
    multipliers = lanes, in either schedule). Raises :class:`hdl.layout.HardwareLimitError` for a config the
    generator cannot build, :class:`NotCovered` for one the formula does not cover."""
    from hdl.layout import check_limits
    lay = check_limits(cfg)
    macs = lay.useful_macs()
    cps = streaming_cycles(cfg)
    out = {"cycles_per_sample": cps, "cycles_per_sample_isolated": isolated_cycles(cfg),
           "ideal_cycles_per_sample": macs / cfg.lanes, "useful_macs_per_sample": macs,
           "multipliers": cfg.lanes, "mac_utilization": macs / (cps * cfg.lanes)}
    if cfg.parallelism == "rows" and cfg.optimizer == "momentum" and cfg.batch_size > 1 and _short(cfg):
        out["cycles_note"] = "upper bound (momentum, batch > 1, short first layer)"
    return out
