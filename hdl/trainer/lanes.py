"""The lane array: P lanes, each one multiplier and an accumulator, and the pipeline that
carries a beat from its memory reads to the stage where sums and updates are formed.

A beat (issued by the sequencer with its memory addresses) passes stage 1 (the memories
read), stage R (their data registered: a block RAM's output goes straight into a
flip-flop), stage 2 (the multiplier operands registered), stage M (the partial products
registered) and stage A (their sum, the exact product, registered; sums and updates are
formed there). The phase travels with the beat, so one phase may issue while the
previous one's last beats are still in flight.

Per phase the lane multiplies:

    forward   W[row p, k] * a[k]            accumulated here, the block's sums to the drain
    backward  W[row p, k] * delta[row p]    to the backward reduction (rows past the layer: 0)
    update    eps[row p] * a[k]             to the update engine
"""
from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from golden.config import Config

from ..activation import ActivationDerivative
from ..dsp import registered_product
from ..layout import Layout
from .backward import backward_beat_layout, k_slot_shape
from .copies import register_copies
from .deltas import eps_width
from .drain import snapshot_layout
from .update import lane_flags, update_beat_layout

__all__ = ["LaneArray", "issue_layout", "lane_beat_layout", "product_shape", "SPLIT"]

SPLIT = 17  # an operand wider than 18 bits is split here: the low half unsigned, zero-extended


def _operand_shapes(cfg: Config):
    return (signed(max(cfg.weight.width, eps_width(cfg), 17)), signed(max(cfg.act.width, cfg.error.width)))


def product_shape(cfg: Config):
    """The exact product of a lane's operands (weight or eps, times act or error)."""
    a, b = _operand_shapes(cfg)
    return signed(a.width + b.width)


def issue_layout(cfg: Config, lay: Layout) -> data.StructLayout:
    """A beat's control as the sequencer issues it.

    ``fwd``/``bwd``/``upd``: its phase; ``layer``; ``first``/``last``: the first and last
    beat of a row block's sum (forward, update) or of an input's sum over blocks
    (backward); ``rowbase``: the block's first row; ``addr``: the weight word read in
    every bank; ``slot``: the block's bias/delta/eps word; ``klane``/``kslot``: input k's
    bank and slot (backward); ``apply``: the sample completes a mini-batch; ``in0``: the
    activation operand comes from the input buffer (layer 0)."""
    L, P = cfg.n_layers, cfg.lanes
    max_rows = max(lay.blocks(l) for l in range(L)) * P
    return data.StructLayout({
        "valid": 1, "first": 1, "last": 1, "fwd": 1, "bwd": 1, "upd": 1, "apply": 1, "in0": 1,
        "layer": range(L + 1), "rowbase": range(max_rows + 1), "addr": range(max(lay.wdepth, 2)),
        "slot": range(max(lay.ddepth, 1)), "klane": range(P), "kslot": k_slot_shape(cfg),
    })


def lane_beat_layout(cfg: Config, lay: Layout) -> data.StructLayout:
    """A beat's control in the pipeline: as issued, plus ``rv`` (lane p holds a row of
    the layer; stage R on) and ``d`` (sigma' of the activation read; stage 2 on)."""
    fields = dict(issue_layout(cfg, lay).members)
    return data.StructLayout({**fields, "rv": cfg.lanes, "d": signed(cfg.act.width)})


class LaneArray(wiring.Component):
    """P multipliers and forward accumulators behind a five-stage beat pipeline.

    Members
    -------
    issue : In(issue_layout)
        The beat the sequencer issues this cycle (its reads are addressed this cycle).
    w, b : In(signed(weight.width)).array(lanes)
        Stage 1: every bank's weight word and its row block's bias.
    delta, eps : In.array(lanes)
        Stage 1: every bank's delta and eps of the block's row (backward, update).
    act, inp : In(signed(act.width))
        Stage 1: the activation memory's and the input buffer's word (operand a[k]).
    deriv_out : Out(signed(act.width))
        sigma'_L of the activation word read a cycle before (the MSE output stage).
    sums, snapshot : Out
        Forward: a row block's exact sums W a + b, complete with ``snapshot.valid``.
    bwd_beat, upd_beat : Out
        Stage A's control of a backward or update beat.
    prod, eps_a, w_a, b_a : Out.array(lanes)
        Stage A: the lane's exact product, and the beat's eps, weight and bias.
    in_flight, fwd_last_in_flight : Out(1)
        A beat in stage 1, R, 2, M (or an update beat in A); a forward block's last beat in
        stage 1, R, 2 or M.

    Latency: PIPE_LATENCY (5) cycles from issue to stage A.
    """

    def __init__(self, cfg: Config, lay: Layout, *, dsp: str = "generic"):
        self._cfg, self._lay, self._dsp = cfg, lay, dsp
        P, AW, WW = cfg.lanes, cfg.act.width, cfg.weight.width
        EPS = signed(eps_width(cfg))
        super().__init__({
            "issue": In(issue_layout(cfg, lay)),
            "w": In(signed(WW)).array(P),
            "b": In(signed(WW)).array(P),
            "delta": In(signed(cfg.error.width)).array(P),
            "eps": In(EPS).array(P),
            "act": In(signed(AW)),
            "inp": In(signed(AW)),
            "deriv_out": Out(signed(AW)),
            "sums": Out(signed(cfg.forward_acc_width())).array(P),
            "snapshot": Out(snapshot_layout(cfg, lay)),
            "bwd_beat": Out(backward_beat_layout(cfg)),
            "upd_beat": Out(update_beat_layout(P, range(max(lay.wdepth, 2)), range(max(lay.ddepth, 1)))),
            "prod": Out(product_shape(cfg)).array(P),
            "eps_a": Out(EPS).array(P),
            "w_a": Out(signed(WW)).array(P),
            "b_a": Out(signed(WW)).array(P),
            "in_flight": Out(1),
            "fwd_last_in_flight": Out(1),
        })

    def elaborate(self, platform):
        cfg, lay = self._cfg, self._lay
        m = Module()
        P, L, af = cfg.lanes, cfg.n_layers, cfg.act.frac_bits
        layout = lane_beat_layout(cfg, lay)
        # stage 1: the issued control registered, beside the memories' read data
        s1 = Signal(issue_layout(cfg, lay), name="s1")
        m.d.sync += s1.eq(self.issue)
        # stage R: read data and control registered; the beat's valid rows (lane p: rowbase
        # + p < n_out of its layer) formed from stage 1's registers and carried along
        n_out_of = Array(Const(cfg.layers[l + 1], range(max(cfg.layers[1:]) + 1)) for l in range(L))
        r = Signal(layout, name="r1")
        m.d.sync += [getattr(r, name).eq(getattr(s1, name)) for name, _ in issue_layout(cfg, lay)]
        m.d.sync += [r.rv.eq(Cat(*(s1.rowbase + p < n_out_of[s1.layer] for p in range(P))))]
        r_w, r_b = _registered(m, self.w, "r1_w"), _registered(m, self.b, "r1_b")
        r_dl, r_e = _registered(m, self.delta, "r1_dl"), _registered(m, self.eps, "r1_e")
        r_a, r_i = Signal.like(self.act, name="r1_a"), Signal.like(self.inp, name="r1_i")
        m.d.sync += [r_a.eq(self.act), r_i.eq(self.inp)]
        d_r = self._derivatives(m, r, r_a)
        # stages 2, M, A: the control (with sigma' from stage R), weight and bias carried
        s2 = Signal(layout, name="s2")
        m.d.sync += [s2.eq(r), s2.d.eq(d_r)]
        sm, sa = Signal(layout, name="sm"), Signal(layout, name="sa")
        m.d.sync += [sm.eq(s2), sa.eq(sm)]
        w_a = _registered(m, _registered(m, _registered(m, r_w, "s2_w"), "sm_w"), "sa_w")
        b_a = _registered(m, _registered(m, _registered(m, r_b, "s2_b"), "sm_b"), "sa_b")
        m.d.comb += [self.w_a[p].eq(w_a[p]) for p in range(P)] + [self.b_a[p].eq(b_a[p]) for p in range(P)]

        # the operands, chosen in stage R by the beat's phase
        mul_a = [Signal(_operand_shapes(cfg)[0], name=f"mul_a{p}") for p in range(P)]
        mul_b = [Signal(_operand_shapes(cfg)[1], name=f"mul_b{p}") for p in range(P)]
        # (stage R's phase bits in a register copy per lane, hdl/trainer/copies.py: one
        # register driving every lane's operand multiplexers spans the device)
        sel = {f: register_copies(m, getattr(s1, f), P, f"r1_{f}", self._dsp) for f in ("fwd", "bwd", "upd", "in0")}
        for p in range(P):
            a_in = Signal.like(self.act, name=f"a_in{p}")  # the activation operand
            m.d.comb += a_in.eq(Mux(sel["in0"][p], r_i, r_a))
            with m.If(sel["fwd"][p]):
                m.d.comb += [mul_a[p].eq(r_w[p]), mul_b[p].eq(a_in)]
            with m.If(sel["bwd"][p]):
                m.d.comb += [mul_a[p].eq(r_w[p]), mul_b[p].eq(Mux(r.rv[p], r_dl[p], 0))]
            with m.If(sel["upd"][p]):
                m.d.comb += [mul_a[p].eq(r_e[p]), mul_b[p].eq(a_in)]
        self._multipliers(m, mul_a, mul_b)
        # stage 2's copy of operand a, carried to stage A: the update's eps, which the bias
        # step needs beside the product (the multipliers register their own copies)
        eps_a = _registered(m, _registered(m, _registered(m, mul_a, "op_a"), "eps_m"), "eps_a")
        m.d.comb += [self.eps_a[p].eq(eps_a[p]) for p in range(P)]

        # forward: a block's first beat starts the sum at bias * 1.0 (exact: a shift)
        acc = [Signal(signed(cfg.forward_acc_width()), name=f"acc{p}") for p in range(P)]
        first = register_copies(m, sm.first, P, "sa_first", self._dsp)  # (copies, as stage R's)
        fwd = register_copies(m, sm.fwd & sm.valid, P, "sa_fwd", self._dsp)
        for p in range(P):
            m.d.comb += self.sums[p].eq(Mux(first[p], b_a[p] << af, acc[p]) + self.prod[p])
            with m.If(fwd[p]):
                m.d.sync += acc[p].eq(self.sums[p])
        m.d.comb += [self.snapshot.valid.eq(sa.fwd & sa.valid & sa.last), self.snapshot.rowbase.eq(sa.rowbase),
                     self.snapshot.layer.eq(sa.layer),
                     self.snapshot.one_row.eq(~sa.rv[1] if P > 1 else 1)]  # (row 1 of the block is past the layer)
        bb, ub = self.bwd_beat, self.upd_beat
        m.d.comb += [bb.valid.eq(sa.valid & sa.bwd), bb.first.eq(sa.first), bb.last.eq(sa.last),
                     bb.layer.eq(sa.layer), bb.d.eq(sa.d), bb.klane.eq(sa.klane), bb.kslot.eq(sa.kslot),
                     ub.valid.eq(sa.valid & sa.upd), ub.apply.eq(sa.apply), ub.last.eq(sa.last),
                     ub.addr.eq(sa.addr), ub.slot.eq(sa.slot), ub.rv.eq(sa.rv)]
        # the update's per-lane enables, registered beside stage A from stage M's control
        for name, value in lane_flags(sm.valid & sm.upd, sm.apply, sm.last, sm.rv).items():
            flags = Signal(P, name=f"sa_{name}")
            m.d.sync += flags.eq(value)
            m.d.comb += getattr(ub, name).eq(flags)
        m.d.comb += [self.in_flight.eq(s1.valid | r.valid | s2.valid | sm.valid | (sa.valid & sa.upd)),
                     self.fwd_last_in_flight.eq((s1.valid & s1.last & s1.fwd) | (r.valid & r.last & r.fwd) |
                                                (s2.valid & s2.last & s2.fwd) | (sm.valid & sm.last & sm.fwd))]
        return m

    def _multipliers(self, m, mul_a, mul_b):
        """The lane's multiplier between registers: the operands registered (stage 2), the
        partial products of operand a's 17-bit halves registered (stage M: each one
        18 x 18 DSP multiply, no adder behind a multiplier in a cycle), their sum registered
        (stage A)."""
        for p in range(self._cfg.lanes):
            a, b, prod = mul_a[p], mul_b[p], self.prod[p]
            if len(a) > SPLIT + 1:
                lo = Signal(signed(SPLIT + 1 + len(b)), name=f"pm_lo{p}")
                hi = Signal(signed(len(a) - SPLIT + len(b)), name=f"pm_hi{p}")
                registered_product(m, a[:SPLIT], b, lo, dsp=self._dsp, name=f"mul_lo{p}")
                registered_product(m, a[SPLIT:].as_signed(), b, hi, dsp=self._dsp, name=f"mul_hi{p}")
                m.d.sync += prod.eq((hi << SPLIT) + lo)
            else:
                pm = Signal.like(prod, name=f"pm{p}")
                registered_product(m, a, b, pm, dsp=self._dsp, name=f"mul{p}")
                m.d.sync += prod.eq(pm)

    def _derivatives(self, m, r, r_a):
        """sigma' of stage R's activation word: one unit per kind in use. Backward: the
        derivative of a_{l-1}[k] (layer l's input), read with every block of k; MSE output:
        the last layer's."""
        cfg = self._cfg
        units = {kind: ActivationDerivative(cfg, kind) for kind in sorted(set(cfg.activations) - {"softmax"})}
        for kind, unit in units.items():
            m.submodules[f"actd_{kind}"] = unit
            if kind != "linear":  # its derivative is the constant 1.0 and reads nothing
                m.d.comb += unit.a.eq(r_a)
        if cfg.activations[-1] != "softmax":
            m.d.comb += self.deriv_out.eq(units[cfg.activations[-1]].d)
        d = Signal(signed(cfg.act.width))
        with m.If(r.bwd):
            with m.Switch(r.layer):
                for l in range(1, cfg.n_layers):
                    with m.Case(l):
                        m.d.comb += d.eq(units[cfg.activations[l - 1]].d)
        return d


def _registered(m, values, name):
    """Each of ``values`` through one register."""
    regs = [Signal.like(v, name=f"{name}{i}") for i, v in enumerate(values)]
    m.d.sync += [reg.eq(v) for reg, v in zip(regs, values)]
    return regs
