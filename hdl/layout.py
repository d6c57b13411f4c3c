"""Where every parameter, activation and error lives in the trainer's memories.

Pure Python, shared by the hardware generator and the host driver, so the two cannot
disagree about an address. Row j of layer l lives in bank (lane) ``j % P`` at slot
``j // P``; a slot holds the row's ``n_in`` weights. All layers share one memory per
bank, layer after layer. The biases have a memory of their own per bank (one word per
row slot, indexed like the deltas), so a row block's bias costs no MAC cycle: the
forward pass starts the sum at the bias, the update writes it beside the row's last
weight. On the bus a bank's biases follow its weights (words ``wdepth ..``).
"""
from __future__ import annotations

import dataclasses

from dataclasses import dataclass

from golden.config import Config

__all__ = ["Layout", "HardwareLimitError", "check_limits", "expected_train_cycles", "PIPE_LATENCY",
           "PIPELINE_TAIL", "bwd_delta_lag", "EPS_LAG", "UPDATE_LATENCY", "tree_stages", "DRAIN_WRITE_LAG",
           "update_latency", "pipeline_tail", "SOFTMAX_OUT_STAGES"]

# Cycles from a MAC beat's issue (memory addresses) to its accumulate/update stage: memory
# read, read data registered (stage R), registered multiplier operands, registered partial
# products (stage M), their sum registered (stage A).
PIPE_LATENCY = 5
# Cycles from an update beat's issue to its parameter write (SGD): stage A forms the exact
# step (the product, or the batch sum), stage S registers it, the core rounds it (one
# register), stage U subtracts it, saturates and writes.
UPDATE_LATENCY = PIPE_LATENCY + 1 + 1


def update_latency(cfg: Config) -> int:
    """UPDATE_LATENCY for the config's optimizer, whose core (hdl/trainer/optimizer_cores.py)
    has ``core_depth(cfg)`` registers (Adam: a weight; its row's bias may wait)."""
    from .trainer.optimizer_cores import core_depth  # (the trainer package imports this module)
    return PIPE_LATENCY + 1 + core_depth(cfg)


def pipeline_tail(cfg: Config) -> int:
    """PIPELINE_TAIL for the config's optimizer."""
    return update_latency(cfg) + 1
# Cycles from a delta's write to its eps's write: the eps = lr x delta multiplier has a
# register on both sides.
EPS_LAG = 2
# Registers between the softmax unit's product and the write of its output delta (and its
# probability to the output FIFO): X, X2, Y, Z (hdl/trainer/output_stage.py, _softmax_path).
SOFTMAX_OUT_STAGES = 4
# Cycles from a forward block's last issue to the write of its first drained row: stage A,
# the snapshot, the drain's rounding and saturation registers, then activation and write.
DRAIN_WRITE_LAG = PIPE_LATENCY + 3


def tree_stages(lanes: int) -> int:
    """Register stages of the backward pass's adder tree after stage A: each sums groups
    of four, until at most two sums are left for the add to the running sum."""
    n, s = -(-lanes // 4), 1
    while n > 2:
        n, s = -(-n // 4), s + 1
    return s


def bwd_delta_lag(lanes: int) -> int:
    """Cycles from the backward pass's last issue to the first cycle a later phase may
    read the deltas and eps it makes: stage A, the tree, the running sum, round and
    saturate, times sigma', round, saturate and write, eps EPS_LAG cycles later (read through the
    memories' transparent ports)."""
    return PIPE_LATENCY + tree_stages(lanes) + 5 + EPS_LAG

# Cycles a training sample keeps the trainer busy after its last issue, while its last
# parameters are written and folded into the signature (stage F, a cycle after the
# write); the next sample's first cycles overlap them.
PIPELINE_TAIL = UPDATE_LATENCY + 1

# Limits of the generator (checked before any hardware is built).
MAX_BANK_WORDS = 1 << 20  # parameter words per bank: the CSR window has 20 address bits per bank
MAX_LAYER_WIDTH = 4096
MAX_LANES = 64
MAX_SAMPLE_LANES = 128  # the samples schedule (one parameter broadcast to every lane)


class HardwareLimitError(ValueError):
    """A config the hardware generator cannot build; names the limit."""


def _ceil_div(a, b):
    return -(-a // b)


@dataclass(frozen=True)
class Layout:
    cfg: Config

    @property
    def lanes(self) -> int:
        return self.cfg.lanes

    def n_in(self, l):
        return self.cfg.layers[l]

    def n_out(self, l):
        return self.cfg.layers[l + 1]

    def blocks(self, l) -> int:
        """Row blocks of layer l (P rows each, the last may be partial)."""
        return _ceil_div(self.n_out(l), self.lanes)

    def row_words(self, l) -> int:
        """Weight words of one row in its bank (the bias lives in the bias memory)."""
        return self.n_in(l)

    def wbase(self, l) -> int:
        """First word of layer l in every bank."""
        return sum(self.blocks(i) * self.row_words(i) for i in range(l))

    @property
    def wdepth(self) -> int:
        """Weight words per bank (the weight memory's depth)."""
        return self.wbase(self.cfg.n_layers)

    def bias_slot(self, l, j) -> int:
        """Word of the bias of row j of layer l in bank j % P's bias memory."""
        return self.dbase(l) + j // self.lanes

    @property
    def bank_words(self) -> int:
        """Parameter words per bank on the bus: the weights, then the biases."""
        return self.wdepth + self.ddepth

    def param_location(self, l, j, k) -> tuple[int, int]:
        """(bank, bus word in bank) of parameter W_l[j, k] (k = n_in is the bias, at
        ``wdepth + bias_slot(l, j)``)."""
        P = self.lanes
        if k == self.n_in(l):
            return j % P, self.wdepth + self.bias_slot(l, j)
        return j % P, self.wbase(l) + (j // P) * self.row_words(l) + k

    # computed activations a_1 .. a_L (output), one memory, layer after layer
    def abase(self, i) -> int:
        if i < 1:
            raise ValueError("a_0 (the input) lives in the input memory: see ibase()")
        return sum(self.cfg.layers[1:i])

    @property
    def adepth(self) -> int:
        return sum(self.cfg.layers[1:])

    # the input a_0 and the targets: two buffers (parity 0, 1), one being loaded from
    # s_data while the sequencer works on the other
    def ibase(self, buf) -> int:
        return buf * self.cfg.layers[0]

    @property
    def idepth(self) -> int:
        return 2 * self.cfg.layers[0]

    def tbase(self, buf) -> int:
        return buf * self.cfg.layers[-1]

    @property
    def tdepth(self) -> int:
        return 2 * self.cfg.layers[-1]

    # errors delta_l, banked like the rows they belong to
    def dbase(self, l) -> int:
        return sum(self.blocks(i) for i in range(l))

    @property
    def ddepth(self) -> int:
        return self.dbase(self.cfg.n_layers)

    # useful MACs per training sample (ARCHITECTURE.md definition)
    def useful_macs(self) -> int:
        L = self.cfg.n_layers
        prod = [self.n_in(l) * self.n_out(l) for l in range(L)]
        return sum(prod) + sum(prod[1:]) + sum(prod)


def expected_train_cycles(cfg: Config) -> int:
    """Cycles the trainer's counter records for one training sample (beats back to back,
    results read at once), from the sequencer's schedule (docs/trainer.md), for an MSE or
    a softmax output layer. Adam is not covered: its biases queue for free cycles of its
    update core."""
    if cfg.optimizer == "adam":
        raise ValueError("the cycle formula does not cover optimizer = 'adam'")
    lay = Layout(cfg)
    P, L = cfg.lanes, cfg.n_layers
    # LOAD: the first beat's cycle is not counted; the sequencer starts the cycle after the
    # last beat (when the buffer reads full)
    total = cfg.layers[0] + cfg.layers[-1]
    D = PIPE_LATENCY
    for l in range(L):
        n_in, nb = lay.n_in(l), lay.blocks(l)
        last_rows = lay.n_out(l) - (nb - 1) * P
        # a block's last issue waits until the previous block's snapshot has been drained
        stall = (nb - 1) * max(0, P + D + 1 - n_in)
        total += nb * n_in + stall  # FWD (the bias starts the sum: no cycle of its own)
        if l == L - 1 or (nb - 1) * P < DRAIN_WRITE_LAG:
            # wait for the last drain: the output pass, or a next layer that would read
            # the drained rows before they are written
            total += last_rows + DRAIN_WRITE_LAG
    n_out = cfg.layers[-1]
    if cfg.activations[-1] == "softmax":
        # no OUT state: the last FWDW waits, beyond the drain counted above, for the
        # softmax unit (hdl/output.py) and the output stage's probability path
        # (hdl/trainer/output_stage.py). The drain hands row i of the last block to the
        # unit in the cycle the MSE path would write it, so the vector's last logit is
        # taken DRAIN_WRITE_LAG + last_rows - 1 cycles after the last issue: one cycle
        # fewer than the drain wait counted above. The unit then runs EXP (n + 3), RECIP
        # (2) and EMIT (n), cycles_per_vector(n) - n for TAKE: the last product leaves in
        # the cycle after those. It passes the registers X (product), X2 (aligned), Y
        # (rounded) and Z (saturated): the last delta is written, and FWDW ends, 4 cycles
        # after it leaves.
        from .output import SoftmaxUnit
        total += -1 + (SoftmaxUnit.cycles_per_vector(n_out) - n_out) + SOFTMAX_OUT_STAGES
    else:
        total += n_out + 3  # OUT: one code per cycle, read one cycle ahead, sigma' and delta after
    if L == 1:
        total += EPS_LAG  # the update waits for the last output delta's eps
    for l in range(1, L):
        total += lay.n_in(l) * lay.blocks(l)  # BWD; the update starts as it ends
    for l in range(L):
        words = lay.blocks(l) * lay.n_in(l)  # UPD: row words back to back (eps stored), biases beside
        total += words
        if l > 0:  # a short update waits for the backward pass's last delta and eps
            total += max(0, bwd_delta_lag(P) - words)
    return total + pipeline_tail(cfg)  # the last parameters are written


def param_layout(cfg: Config) -> Layout:
    """Where the parameters live (and the host finds them on the bus): in the rows schedule
    row j in bank j mod P; in the samples schedule one bank, as a one-lane trainer keeps
    them (row after row; the biases in a memory of their own), since one parameter is read
    or written per cycle."""
    if cfg.parallelism == "rows":
        return Layout(cfg)
    return Layout(dataclasses.replace(cfg, lanes=1))


def check_limits(cfg: Config) -> Layout:
    """Refuse configs the generator cannot hold, naming the limit and the value; returns
    the parameter layout (``param_layout``)."""
    lay = param_layout(cfg)
    max_lanes = MAX_LANES if cfg.parallelism == "rows" else MAX_SAMPLE_LANES
    if cfg.lanes > max_lanes:
        raise HardwareLimitError(f"hardware.lanes = {cfg.lanes} exceeds the limit of {max_lanes} lanes "
                                 f"with parallelism = {cfg.parallelism!r}")
    for i, n in enumerate(cfg.layers):
        if n > MAX_LAYER_WIDTH:
            raise HardwareLimitError(f"network.layers[{i}] = {n} exceeds the limit of {MAX_LAYER_WIDTH} units")
    if lay.bank_words > MAX_BANK_WORDS:
        raise HardwareLimitError(
            f"parameters need {lay.bank_words} words per bank with {cfg.lanes} lanes, over the limit of "
            f"{MAX_BANK_WORDS}; add lanes or shrink the network")
    if cfg.forward_acc_width() > 48 or cfg.backward_acc_width() > 48:
        raise HardwareLimitError(
            f"accumulators of {max(cfg.forward_acc_width(), cfg.backward_acc_width())} bits exceed the "
            f"48-bit datapath limit; use narrower formats or smaller layers")
    return lay
