"""The backward reduction: delta_{l-1}[k] = sigma'(a_{l-1}[k]) * sum_j W[j, k] delta_l[j].

Each backward beat brings the P products W[j, k] * delta[j] of one row block (rows past
the layer contribute 0); an adder tree sums them, a running sum adds the blocks, and the
sum is narrowed to the error format, multiplied by the derivative and narrowed again.
"""
from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from golden.config import Config

from ..arith import round_shift, saturate
from ..layout import Layout, tree_stages
from .deltas import delta_write_layout

__all__ = ["BackwardReduction", "backward_beat_layout", "k_slot_shape"]


def k_slot_shape(cfg: Config):
    """Shape of k // P for an input index k of any layer."""
    return range(max(cfg.layers[:-1]) // cfg.lanes + 2)


def backward_beat_layout(cfg: Config) -> data.StructLayout:
    """Stage A's control of a backward beat: the first and last row block of input ``k``
    (bank ``klane`` = k mod P, ``kslot`` = k // P), the layer, and sigma'(a_{l-1}[k])."""
    return data.StructLayout({"valid": 1, "first": 1, "last": 1, "layer": range(cfg.n_layers + 1),
                              "d": signed(cfg.act.width), "klane": range(cfg.lanes), "kslot": k_slot_shape(cfg)})


class BackwardReduction(wiring.Component):
    """Adder tree, running sum over row blocks, and the delta's two narrowings.

    Members
    -------
    beat : In(backward_beat_layout)
        Stage A's control.
    prod : In(signed).array(lanes)
        The lanes' exact products W[j, k] * delta[j] in stage A.
    delta : Out(delta_write_layout)
        delta_{l-1}[k] for bank k mod P, slot dbase(l-1) + k // P.

    Latency: ``tree_stages(P)`` registered tree levels (sums of four), the running sum,
    then four stages (round, saturate, times sigma', round; saturated on the way out):
    the delta leaves ``tree_stages(P) + 5`` cycles after the block's last beat in stage A
    (hdl/layout.py ``bwd_delta_lag``).
    """

    def __init__(self, cfg: Config, lay: Layout, *, prod_shape):
        self._cfg, self._lay = cfg, lay
        super().__init__({
            "beat": In(backward_beat_layout(cfg)),
            "prod": In(prod_shape).array(cfg.lanes),
            "delta": Out(delta_write_layout(cfg, lay)),
        })

    def elaborate(self, platform):
        cfg, lay = self._cfg, self._lay
        m = Module()
        P, L, BAW = cfg.lanes, cfg.n_layers, cfg.backward_acc_width()
        af, wf, AW, EW = cfg.act.frac_bits, cfg.weight.frac_bits, cfg.act.width, cfg.error.width
        # stages T: the products summed in groups of four per stage, each registered with
        # the beat's control, until at most two sums are left for the running sum
        part, st = list(self.prod), self.beat
        for level in range(tree_stages(P)):
            groups = [part[i:i + 4] for i in range(0, len(part), 4)]
            nxt = [Signal(signed(BAW), name=f"tree{level}_{g}") for g in range(len(groups))]
            m.d.sync += [nxt[g].eq(sum(grp)) for g, grp in enumerate(groups)]
            reg = Signal(backward_beat_layout(cfg), name=f"st{level}")
            m.d.sync += reg.eq(st)
            part, st = nxt, reg
        assert len(part) <= 2
        tree = Signal(signed(BAW))
        m.d.comb += tree.eq(sum(part))
        acc, total = Signal(signed(BAW)), Signal(signed(BAW))
        done = Signal(backward_beat_layout(cfg))  # the input's sum is complete (valid for a cycle)
        m.d.sync += done.valid.eq(0)
        with m.If(st.valid):
            m.d.sync += acc.eq(Mux(st.first, tree, acc + tree))
            with m.If(st.last):
                m.d.sync += [total.eq(Mux(st.first, tree, acc + tree)), done.eq(st)]
        # four stages after the sum, each narrowing split in two (a wide rounding add, then
        # the compares and select of the saturation): the sum rounded; saturated to the error
        # format (s); s x sigma'(a_k); that rounded; then saturated on its way out
        dslot_of = Array(Const(lay.dbase(l - 1) if l >= 1 else 0, range(max(lay.ddepth, 1))) for l in range(L))
        out = [Signal(delta_write_layout(cfg, lay), name=f"bq{i}") for i in range(4)]
        m.d.sync += [out[0].valid.eq(done.valid), out[0].lane.eq(done.klane),
                     out[0].addr.eq(dslot_of[done.layer] + done.kslot)]
        m.d.sync += [out[i].eq(out[i - 1]) for i in range(1, 4)]
        q = Signal(round_shift(total, wf).shape())  # requantize(sum, wf + ef, error), halves
        s = Signal(signed(EW))
        d0, d1 = Signal(signed(AW)), Signal(signed(AW))
        p = Signal(signed(EW + AW))  # s x sigma'(a)
        pq = Signal(round_shift(p, af).shape())  # requantize(p, ef + af, error), halves
        m.d.sync += [q.eq(round_shift(total, wf)), d0.eq(done.d),
                     s.eq(saturate(q, cfg.error)), d1.eq(d0),
                     p.eq(s * d1),
                     pq.eq(round_shift(p, af))]
        m.d.comb += [self.delta.valid.eq(out[3].valid), self.delta.lane.eq(out[3].lane),
                     self.delta.addr.eq(out[3].addr), self.delta.delta.eq(saturate(pq, cfg.error))]
        return m
