"""The sample-parallel schedule's memory map, beat and latencies (docs/trainer.md).

Lane p works on sample p of a group of P samples (P = ``hardware.lanes``; a mini-batch is
whole groups). Each cycle one parameter word is read and broadcast to every lane; the
lanes' per-sample values (activations, deltas, inputs, targets) sit side by side in wide
memories, one P-lane word per address, so one address serves every lane. The parameters,
their batch sums and the optimizer's state are laid out as a one-lane trainer's
(``param_layout``): the update engine writes one parameter per cycle.
"""
from __future__ import annotations

import dataclasses

from amaranth.lib import data

from golden.config import Config

from ...layout import PIPE_LATENCY, Layout, param_layout, tree_stages
from ..optimizer_cores import core_depth

__all__ = ["SampleLayout", "param_layout", "sample_issue_layout", "DRAIN_LAG", "BWD_LAG", "OUT_LAG",
           "expected_group_cycles", "steady_group_cycles", "adam_bias_queue", "w0_short",
           "reduce_latency", "update_lag"]

# Cycles from a beat's issue to the write of what its stage A completes (a memory read
# issued in that cycle sees it): forward, the sum (in the accumulator a cycle) rounded,
# saturated, activated and written; backward, the sum in the accumulator, rounded,
# saturated, times sigma', rounded, saturated and written; output (MSE), the product
# rounded, then saturated and written.
DRAIN_LAG = PIPE_LATENCY + 4
BWD_LAG = PIPE_LATENCY + 6
OUT_LAG = PIPE_LATENCY + 3


def reduce_latency(cfg: Config) -> int:
    """Cycles from an update beat's stage A (the lanes' products) to the update engine's
    stage A: the adder tree over the lanes, then lr times the sum (hdl/trainer/samples/
    reduction.py)."""
    from .reduction import lr_product_latency
    return tree_stages(cfg.lanes) + 1 + lr_product_latency(cfg)


def update_lag(cfg: Config) -> int:
    """Cycles from an update beat's issue to its parameter's write."""
    return PIPE_LATENCY + reduce_latency(cfg) + 1 + core_depth(cfg)


@dataclasses.dataclass(frozen=True)
class SampleLayout:
    """The wide memories: each word holds one value per lane.

    ``amem``: a_1 .. a_L (the computed activations), ``abase(i)`` + unit; ``imem``: the
    inputs a_0 of two groups (the loader fills one while the other trains), ``ibase(b)`` +
    k; ``tmem``: the targets alike; ``dmem``: the deltas delta_0 .. delta_{L-1} of each
    layer's rows, ``dbase(l)`` + row."""
    cfg: Config

    @property
    def lanes(self) -> int:
        return self.cfg.lanes

    # the activations, inputs and targets sit where a rows-schedule trainer keeps them
    # (hdl/layout.py), one P-lane word per address
    abase, adepth, ibase, idepth, tbase, tdepth = (Layout.abase, Layout.adepth, Layout.ibase, Layout.idepth,
                                                   Layout.tbase, Layout.tdepth)

    def dbase(self, l) -> int:
        return sum(self.cfg.layers[1:l + 1])

    @property
    def ddepth(self) -> int:
        return sum(self.cfg.layers[1:])


def sample_issue_layout(cfg: Config) -> data.StructLayout:
    """A beat as the sequencer issues it: its phase (``fwd``, ``out``, ``bwd``, ``upd``;
    a softmax output's ``exp`` and ``prob`` passes),
    ``layer``, ``first``/``last`` of a sum, the read addresses (``waddr`` a weight word,
    ``slot`` its row's bias, ``aaddr`` the activations, ``iaddr`` the inputs, ``daddr`` the
    deltas, ``taddr`` the targets), ``in0`` (the activation operand is an input), ``dst``
    (where the sum's result is written: an activation row, a delta row), ``apply`` (the
    group completes a mini-batch) and ``lanes`` (the lanes holding a sample)."""
    pl, sl, L = param_layout(cfg), SampleLayout(cfg), cfg.n_layers
    # (an MSE network has the output pass, a softmax network the exp and prob passes)
    phases = {"exp": 1, "prob": 1} if cfg.activations[-1] == "softmax" else {"out": 1}
    return data.StructLayout({
        "valid": 1, "fwd": 1, "bwd": 1, "upd": 1, **phases, "first": 1, "last": 1, "in0": 1, "apply": 1,
        "layer": range(L + 1), "waddr": range(max(pl.wdepth, 2)), "slot": range(max(pl.ddepth, 2)),
        "aaddr": range(max(sl.adepth, 2)), "iaddr": range(max(sl.idepth, 2)), "daddr": range(max(sl.ddepth, 2)),
        "taddr": range(max(sl.tdepth, 2)), "dst": range(max(sl.adepth, sl.ddepth, 2)), "lanes": cfg.lanes,
    })


def w0_short(cfg: Config) -> bool:
    """Layer 0 has at most ``update_lag`` weights: the next group's forward pass would read
    one before its write, so it waits for the update engine to empty (the sequencer's
    IDLE)."""
    return cfg.layers[0] * cfg.layers[1] <= update_lag(cfg)


def adam_bias_queue(cfg: Config) -> int:
    """Adam: the biases still queued for the update engine's one core after a group's last
    update issue (hdl/trainer/update.py, ``_bias_queue``). A row pushes its bias beside its
    last weight; a cycle without a weight takes one. The update phases are beats back to
    back (no free cycle); the waits and backward passes between them are free cycles. The
    queued biases are written that many cycles after the last weight, so a group that
    applies an Adam update ends that much later. 0 for the other optimizers (a core per
    bias) and for a group that does not apply (nothing is written)."""
    if cfg.optimizer != "adam":
        return 0
    L, layers = cfg.n_layers, cfg.layers
    W = [layers[l] * layers[l + 1] for l in range(L)]
    queued = 0
    for l in range(L - 1, -1, -1):
        queued += layers[l + 1]  # UPD l: a bias per row, every cycle takes a weight
        if l >= 1:
            free = max(PIPE_LATENCY + 1, BWD_LAG - W[l]) if W[l] + 1 <= BWD_LAG else 0  # UPD l's wait
            free += W[l - 1] if l - 1 >= 1 else 0  # BWD l - 1
            queued = max(0, queued - free)
    return queued


def expected_group_cycles(cfg: Config, count: int | None = None, flush_after: int = 0, apply: bool = False) -> int:
    """Cycles the trainer's counter records for one training group of ``count`` samples
    (default P) sent to an idle trainer, one beat per cycle (docs/trainer.md, "The
    samples schedule"): the beats (the first one's cycle is not counted), the sequencer's
    start, the phases and their waits, and the update's tail. A partial group waits
    ``flush_after`` cycles after its last beat for the host's FLUSH (the CTRL write's
    decode cycle). ``apply``: the group completes a mini-batch (with Adam its queued
    biases are written after the last weight, ``adam_bias_queue``)."""
    P, L, layers = cfg.lanes, cfg.n_layers, cfg.layers
    count = P if count is None else count
    W = [layers[l] * layers[l + 1] for l in range(L)]  # one beat per weight in every phase
    total = count * (layers[0] + layers[-1]) - 1  # LOAD
    if count < P:
        total += flush_after
    total += 1  # the sequencer sees the full buffer
    for l in range(L):
        total += W[l]  # FWD l
        if l + 1 < L and layers[l + 1] <= DRAIN_LAG:
            total += DRAIN_LAG  # the next layer would read a row before its write
    total += DRAIN_LAG  # OUT (or EXP) waits for the last activations
    if cfg.activations[-1] == "softmax":  # (hdl/trainer/samples/softmax.py)
        # EXP, then its pipeline empties (the sums complete; the sum's stage is at most
        # the beat's stage A, hdl/trainer/samples/softmax.py)
        total += layers[-1] + PIPE_LATENCY + 1
        total += layers[-1] + PIPE_LATENCY + 4  # PROB, then p aligned, rounded, saturated, written
    else:
        total += layers[-1]  # OUT, one output unit per cycle
        total += PIPE_LATENCY + 2  # the output deltas written (stage A, the rounding, the write)
    for l in range(L - 1, -1, -1):
        if l >= 1:
            total += W[l]  # BWD l
        total += W[l]  # UPD l
        if l >= 1 and W[l] + 1 <= BWD_LAG:
            # the next pass would read a delta before its write: wait for the update
            # beats' stage A and the backward pass's last write
            total += max(PIPE_LATENCY + 1, BWD_LAG - W[l])
    total += adam_bias_queue(cfg) if apply else 0  # (Adam) the queued biases, one per cycle
    return total + update_lag(cfg) + 1  # END, the last parameters written and folded


def steady_group_cycles(cfg: Config, apply: bool = False) -> int:
    """Cycles between the starts of two training groups of P samples back to back (the
    next group loaded while this one trains): what sets the throughput. ``apply``: the
    group completes a mini-batch (Adam: the next group waits for the update engine to
    empty, its queued biases included, whatever layer 0's length: hdl/trainer/samples/
    sequencer.py)."""
    P, layers = cfg.lanes, cfg.layers
    load = P * (layers[0] + layers[-1])
    phases = expected_group_cycles(cfg) - (load - 1) - 1 - (update_lag(cfg) + 1)  # first .. last issue
    # END and IDLE; a layer 0 whose update is shorter than the update's latency waits for it
    adam_wait = apply and cfg.optimizer == "adam"
    wait = update_lag(cfg) + (adam_bias_queue(cfg) if apply else 0) if w0_short(cfg) or adam_wait else 0
    return max(phases + 2 + wait, load)  # (never faster than the loader takes beats)
