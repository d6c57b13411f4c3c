"""The reduction: an update beat's P lane products summed into one gradient term, times
the learning rate, into the update engine.

The lanes' products delta_p[j] a_p[k] are exact, so their sum is too and its order does
not matter: sum_p lr delta_p a_p = lr sum_p delta_p a_p, the same bits as the rows
schedule's lr x delta products summed over the samples (docs/arithmetic.md §5). The
learning rate multiplies once, after the tree; the bias's term (sum_p delta_p[j], times
lr) is formed beside the weight's in every beat and taken with the row's last weight.
"""
from __future__ import annotations

import functools

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from golden.config import Config

from ...dsp import pipelined_product
from ...layout import tree_stages
from ..update import _delayed, _or  # (the update engine's register helpers)
from .lanes import lane_product_shape, update_beat_a_layout

__all__ = ["GradientReduction", "lr_product_latency", "grad_shape", "bias_shape"]

LR_WIDTH = 16  # the LR register


def _sum_width(cfg: Config, width: int) -> int:
    return width + max(1, (cfg.lanes - 1).bit_length())


def grad_shape(cfg: Config):
    """lr x (the sum of the lanes' products)."""
    return signed(_sum_width(cfg, lane_product_shape(cfg).width) + LR_WIDTH + 1)


def bias_shape(cfg: Config):
    """lr x (the sum of the lanes' deltas)."""
    return signed(_sum_width(cfg, cfg.error.width) + LR_WIDTH + 1)


@functools.lru_cache(maxsize=None)
def lr_product_latency(cfg: Config) -> int:
    """Registers of the lr multiply (hdl/dsp.py pipelined_product), counted from a probe."""
    m = Module()
    _, latency = pipelined_product(m, Signal(signed(_sum_width(cfg, lane_product_shape(cfg).width))),
                                   Signal(unsigned(LR_WIDTH)), name="probe")
    _, latency_b = pipelined_product(m, Signal(signed(_sum_width(cfg, cfg.error.width))),
                                     Signal(unsigned(LR_WIDTH)), name="probe_b")
    from amaranth.hdl import Fragment
    Fragment.get(m, None)  # (elaborated here, so nothing warns that it was never used)
    return max(latency, latency_b)


class GradientReduction(wiring.Component):
    """Members
    -------
    beat : In(update_beat_a_layout)
        Stage A's update beat; ``prod``, ``delta`` (In, per lane) its products and deltas;
        ``w``, ``b`` (In) its weight and bias as read.
    lr : In(16)
        The learning-rate code.
    out_beat : Out(update_beat_a_layout);  grad, eps, w_out, b_out : Out
        The beat at the update engine's stage A, ``reduce_latency(cfg)`` cycles later:
        lr sum_p delta_p a_p, lr sum_p delta_p, and the parameter and bias.
    state_addr, state_slot : Out
        The beat's weight word and bias slot 5 cycles before ``out_beat`` (the engine
        reads its batch sums and the state banks their words there; hdl/trainer/update.py).
    busy : Out(1)
        An update beat in the tree or the multiply.
    """

    def __init__(self, cfg: Config, *, dsp: str = "generic"):
        self._cfg, self._dsp = cfg, dsp
        P, WW = cfg.lanes, cfg.weight.width
        beat = update_beat_a_layout(cfg)
        super().__init__({
            "beat": In(beat),
            "prod": In(lane_product_shape(cfg)).array(P),
            "delta": In(signed(cfg.error.width)).array(P),
            "w": In(signed(WW)),
            "b": In(signed(WW)),
            "lr": In(LR_WIDTH),
            "out_beat": Out(beat),
            "grad": Out(grad_shape(cfg)),
            "eps": Out(bias_shape(cfg)),
            "w_out": Out(signed(WW)),
            "b_out": Out(signed(WW)),
            "state_addr": Out(beat.members["waddr"]),
            "state_slot": Out(beat.members["slot"]),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        P = cfg.lanes
        sw, sbw = _sum_width(cfg, lane_product_shape(cfg).width), _sum_width(cfg, cfg.error.width)
        # the trees: sums of four per registered level, then the last add registered
        part, bpart = list(self.prod), list(self.delta)
        for level in range(tree_stages(P)):
            part = _level(m, part, sw, f"t{level}")
            bpart = _level(m, bpart, sbw, f"tb{level}")
        total, btotal = Signal(signed(sw)), Signal(signed(sbw))
        m.d.sync += [total.eq(sum(part)), btotal.eq(sum(bpart))]
        # lr x the sums (lr is a register: it does not change while a beat is in flight)
        grad, lat = pipelined_product(m, total, self.lr.as_unsigned(), dsp=self._dsp, name="lr_grad")
        eps, lat_b = pipelined_product(m, btotal, self.lr.as_unsigned(), dsp=self._dsp, name="lr_bias")
        latency = tree_stages(P) + 1 + lr_product_latency(cfg)
        eps = _delayed(m, eps, lr_product_latency(cfg) - lat_b, "eps_wait")
        grad = _delayed(m, grad, lr_product_latency(cfg) - lat, "grad_wait")
        m.d.comb += [self.grad.eq(grad), self.eps.eq(eps)]
        # the beat, the weight and the bias alongside
        beats = [self.beat]
        for i in range(latency):
            reg = Signal.like(self.beat, name=f"rb{i}")
            m.d.sync += reg.eq(beats[-1])
            beats.append(reg)
        m.d.comb += [self.out_beat.eq(beats[-1]),
                     self.w_out.eq(_delayed(m, self.w, latency, "rw")), self.b_out.eq(_delayed(m, self.b, latency, "rbias"))]
        if latency < 5:
            raise ValueError(f"the reduction's latency {latency} is shorter than the update engine's read lead (5)")
        m.d.comb += [self.state_addr.eq(beats[latency - 5].waddr), self.state_slot.eq(beats[latency - 5].slot)]
        m.d.comb += self.busy.eq(_or(b.valid for b in beats[1:]))
        return m


def _level(m, values, width, name):
    groups = [values[i:i + 4] for i in range(0, len(values), 4)]
    out = [Signal(signed(width), name=f"{name}_{g}") for g in range(len(groups))]
    m.d.sync += [out[g].eq(sum(grp)) for g, grp in enumerate(groups)]
    return out


