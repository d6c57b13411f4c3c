"""The sample lanes: P multipliers, one sample each, behind the beat pipeline, and each
lane's activations and deltas.

The pipeline is the rows schedule's (hdl/trainer/lanes.py): stage 1 (the memories read),
R (their data registered), 2 (the multiplier's operands registered), M (its product
registered), A (the product, accumulated there). Per phase lane p multiplies:

    forward   W[j, k] * a_p[k]          summed over k from the bias; the sum rounded,
                                        saturated, activated and written as a_p[j]
    output    (a_p[j] - t_p[j]) * sigma'(a_p[j])   (MSE) rounded, saturated: delta_p[j]
    backward  W[j, k] * delta_p[j]      summed over j; rounded, saturated, times
                                        sigma'(a_p[k]), rounded, saturated: delta_p[k] below
    update    delta_p[j] * a_p[k]       to the reduction over the lanes (lanes past the
                                        group's samples give 0)

Every narrowing is golden's requantize in two register stages (the rounding, then the
saturation), as in the rows schedule.
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.config import Config

from ...activation import ActivationDerivative, ActivationFunction
from ...arith import round_shift, saturate
from ...dsp import registered_product
from ...output import SoftmaxArith
from ..copies import register_copies
from ..update import NO_RW
from ..update import _or, _register as _reg  # (the update engine's register helpers)
from .schedule import SampleLayout, sample_issue_layout
from .softmax import LaneSoftmax

__all__ = ["SampleLanes", "lane_product_shape", "update_beat_a_layout", "LANE_GROUP"]

# The beat's control, the weight and the bias reach the lanes through copies of their
# stage R and stage A registers, one per LANE_GROUP lanes (a register drives a few lanes,
# not all P of them).
LANE_GROUP = 8


def _operand_shapes(cfg: Config):
    """Operand a: W, delta, a - t or e; operand b: a, delta, sigma' or R (softmax: the
    reciprocal, unsigned)."""
    aw, ew, ww = cfg.act.width, cfg.error.width, cfg.weight.width
    rw = SoftmaxArith(cfg).r_width + 1 if cfg.activations[-1] == "softmax" else 0
    return signed(max(ww, ew, aw + 1)), signed(max(aw, ew, rw))


def _sigma_selects(cfg: Config) -> bool:
    """Backward, every sigma' below the output layer is 1.0 or 0 (ReLU, linear): the
    lanes' times-sigma' multiplies are selects."""
    return cfg.act.int_bits >= 1 and all(k in ("relu", "linear") for k in cfg.activations[:-1])


def lane_product_shape(cfg: Config):
    a, b = _operand_shapes(cfg)
    return signed(a.width + b.width)


def update_beat_a_layout(cfg: Config) -> data.StructLayout:
    """An update beat in stage A: the parameter's word, its row's bias slot, the row's
    last weight (its bias updates beside it), the group completes a batch."""
    iss = sample_issue_layout(cfg)
    return data.StructLayout({"valid": 1, "apply": 1, "last": 1, "waddr": iss.members["waddr"],
                              "slot": iss.members["slot"]})


class SampleLanes(wiring.Component):
    """Members
    -------
    issue : In(sample_issue_layout)
        The beat issued this cycle.
    w, b : In(signed(weight.width))
        Stage 1: the weight word and the bias read for it (broadcast to every lane).
    inp, tgt : In(signed(act.width)).array(lanes)
        Stage 1: the group's inputs and targets (the loader's memories).
    upd_beat : Out(update_beat_a_layout)
    upd_prod, upd_delta : Out.array(lanes)
        Stage A of an update beat: delta_p[j] a_p[k] and delta_p[j] (0 past the group).
    w_a, b_a : Out(signed(weight.width))
        Stage A: the beat's weight and bias as read.
    res_wr : Out
        A row of results (output j of every lane), to the result streamer.
    busy : Out(1)
        A beat in the pipeline, or its result not yet written (a register: the OR of the
        pipeline's valid flags' next values).
    """

    def __init__(self, cfg: Config, *, dsp: str = "generic"):
        self._cfg, self._dsp, self._sl = cfg, dsp, SampleLayout(cfg)
        P, AW, WW, EW = cfg.lanes, cfg.act.width, cfg.weight.width, cfg.error.width
        super().__init__({
            "issue": In(sample_issue_layout(cfg)),
            "w": In(signed(WW)),
            "b": In(signed(WW)),
            "inp": In(signed(AW)).array(P),
            "tgt": In(signed(AW)).array(P),
            "upd_beat": Out(update_beat_a_layout(cfg)),
            "upd_prod": Out(lane_product_shape(cfg)).array(P),
            "upd_delta": Out(signed(EW)).array(P),
            "w_a": Out(signed(WW)),
            "b_a": Out(signed(WW)),
            "res_wr": Out(data.StructLayout({"en": 1, "row": range(max(cfg.layers[-1], 2)), "data": P * AW})),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        cfg, sl = self._cfg, self._sl
        m = Module()
        P, L, AW, EW = cfg.lanes, cfg.n_layers, cfg.act.width, cfg.error.width
        af = cfg.act.frac_bits
        layout = sample_issue_layout(cfg)
        # the lanes' activations a_1 .. a_L and deltas, one P-lane word per unit
        amem = Memory(shape=P * AW, depth=max(sl.adepth, 2), init=[], attrs=NO_RW)
        dmem = Memory(shape=P * EW, depth=max(sl.ddepth, 2), init=[], attrs=NO_RW)
        m.submodules.amem, m.submodules.dmem = amem, dmem
        a_rd, a_wr, d_rd, d_wr = amem.read_port(), amem.write_port(), dmem.read_port(), dmem.write_port()
        m.d.comb += [a_rd.addr.eq(self.issue.aaddr), d_rd.addr.eq(self.issue.daddr)]

        # stage 1, R: control and read data registered (a block RAM's output into a register)
        s1, r = Signal(layout, name="s1"), Signal(layout, name="r")
        m.d.sync += [s1.eq(self.issue), r.eq(s1)]
        r_w, r_b = _reg(m, self.w, "r_w"), _reg(m, self.b, "r_b")
        r_a = [_reg(m, a_rd.data[p * AW:(p + 1) * AW].as_signed(), f"r_a{p}") for p in range(P)]
        r_i = [_reg(m, self.inp[p], f"r_i{p}") for p in range(P)]
        r_t = [_reg(m, self.tgt[p], f"r_t{p}") for p in range(P)]
        r_d = [_reg(m, d_rd.data[p * EW:(p + 1) * EW].as_signed(), f"r_d{p}") for p in range(P)]
        smx = LaneSoftmax(cfg) if cfg.activations[-1] == "softmax" else None
        softmax = cfg.activations[-1] == "softmax"
        # stage R as the lanes see it: a copy of the beat's control and the weight per group
        n_g, dsp = -(-P // LANE_GROUP), self._dsp
        r_fields = ["fwd", "bwd", "upd", "in0", "layer", "prob" if softmax else "out"]
        rc = {f: register_copies(m, getattr(s1, f), n_g, f"rc_{f}", dsp) for f in r_fields}
        rc["w"] = register_copies(m, self.w, n_g, "rc_w", dsp)
        rg = [SimpleNamespace(**{f: v[g] for f, v in rc.items()}) for g in range(n_g)]
        lr = [rg[p // LANE_GROUP] for p in range(P)]  # lane p's copy
        a_in = [Mux(lr[p].in0, r_i[p], r_a[p]) for p in range(P)]
        deriv = self._derivatives(m, lr, r_a)
        self._a_writes, self._d_writes, self._res_writes = [], [], []
        if not softmax:
            self._res_writes.append((r.valid & r.out, r.dst, Cat(*r_a)))  # (MSE: the outputs as read)

        # stages 2, M, A: the control and sigma' carried beside the multipliers
        s2, sm, sa = (Signal(layout, name=n) for n in ("s2", "sm", "sa"))
        m.d.sync += [s2.eq(r), sm.eq(s2), sa.eq(sm)]
        if _sigma_selects(cfg):  # (backward, sigma' is 0 or 1: only whether it is 0 is carried)
            deriv_bwd = [deriv[p].any() for p in range(P)]
        else:
            deriv_bwd = deriv
        d_a = [_reg(m, _reg(m, _reg(m, deriv_bwd[p], f"d2_{p}"), f"dm_{p}"), f"da_{p}") for p in range(P)]
        dl_a = [_reg(m, _reg(m, _reg(m, r_d[p], f"dl2_{p}"), f"dlm_{p}"), f"dla_{p}") for p in range(P)]
        w_a = _reg(m, _reg(m, _reg(m, r_w, "w2"), "wm"), "wa")
        bm = _reg(m, _reg(m, r_b, "b2"), "bm")
        b_a = _reg(m, bm, "ba")
        m.d.comb += [self.w_a.eq(w_a), self.b_a.eq(b_a)]
        # stage A as the lanes' sums see it, a copy per group
        ac = {f: register_copies(m, getattr(sm, f), n_g, f"ac_{f}", dsp) for f in ("valid", "first", "fwd", "bwd")}
        ac["b"] = register_copies(m, bm, n_g, "ac_b", dsp)
        la = [SimpleNamespace(**{f: v[p // LANE_GROUP] for f, v in ac.items()}) for p in range(P)]
        opa, opb = _operand_shapes(cfg)
        prod = []
        for p in range(P):
            a, b = Signal(opa, name=f"op_a{p}"), Signal(opb, name=f"op_b{p}")
            with m.If(lr[p].fwd):
                m.d.comb += [a.eq(lr[p].w), b.eq(a_in[p])]
            with m.If(lr[p].bwd):
                m.d.comb += [a.eq(lr[p].w), b.eq(r_d[p])]
            with m.If(lr[p].upd):
                m.d.comb += [a.eq(r_d[p]), b.eq(a_in[p])]
            if not softmax:
                with m.If(lr[p].out):
                    m.d.comb += [a.eq(r_a[p] - r_t[p]), b.eq(deriv[p])]
            else:
                with m.If(lr[p].prob):
                    m.d.comb += [a.eq(r_a[p]), b.eq(smx.r[p])]
            pm, pa = Signal(lane_product_shape(cfg), name=f"pm{p}"), Signal(lane_product_shape(cfg), name=f"pa{p}")
            registered_product(m, a, b, pm, dsp=self._dsp, name=f"mul{p}")
            m.d.sync += pa.eq(pm)
            prod.append(pa)

        # stage A, update: the products and deltas of the group's lanes, to the reduction
        ub = self.upd_beat
        m.d.comb += [ub.valid.eq(sa.valid & sa.upd), ub.apply.eq(sa.apply), ub.last.eq(sa.last),
                     ub.waddr.eq(sa.waddr), ub.slot.eq(sa.slot)]
        for p in range(P):
            m.d.comb += [self.upd_prod[p].eq(Mux(sa.lanes[p], prod[p], 0)),
                         self.upd_delta[p].eq(Mux(sa.lanes[p], dl_a[p], 0))]

        # stage A, forward and backward: the sums
        FW, BW = cfg.forward_acc_width(), cfg.backward_acc_width()
        acc = [Signal(signed(max(FW, BW)), name=f"acc{p}") for p in range(P)]
        total = [Signal(signed(max(FW, BW)), name=f"sum{p}") for p in range(P)]
        for p in range(P):
            m.d.comb += total[p].eq(Mux(la[p].first, Mux(la[p].fwd, la[p].b << af, 0), acc[p]) + prod[p])
            with m.If(la[p].valid & (la[p].fwd | la[p].bwd)):
                m.d.sync += acc[p].eq(total[p])
        done = sa.valid & sa.last
        # the pipeline's valid flags as (flag, the value it takes next cycle): every flag
        # shifts down a chain from a stage's go
        busy = [(s1.valid, self.issue.valid), (r.valid, s1.valid), (s2.valid, r.valid), (sm.valid, s2.valid),
                (sa.valid, sm.valid)]
        busy += self._forward_drain(m, done & sa.fwd, sa, acc, smx)
        busy += self._backward_finish(m, done & sa.bwd, sa, acc, d_a)
        if not softmax:
            busy += self._output_delta(m, sa.valid & sa.out, sa, prod)
        if smx is not None:
            def lane_copies(value, name):
                c = register_copies(m, value, n_g, name, dsp)
                return [c[p // LANE_GROUP] for p in range(P)]
            a_req, b = smx.exp_pass(m, r, r_a, lane_copies)
            self._a_writes.append(a_req)
            busy += b
            smx.reciprocal(m)
            t_a = [_reg(m, _reg(m, _reg(m, r_t[p], f"t2_{p}"), f"tm_{p}"), f"ta_{p}") for p in range(P)]
            d_req, res_req, b = smx.prob_pass(m, sa, prod, t_a)
            self._d_writes.append(d_req)
            self._res_writes.append(res_req)
            busy += b
        # the writes: the sequencer never lets two of a memory's writers meet in a cycle
        for port, reqs in ((a_wr, self._a_writes), (d_wr, self._d_writes)):
            for valid, addr, value in reqs:
                with m.If(valid):
                    m.d.comb += [port.addr.eq(addr), port.data.eq(value), port.en.eq(1)]
        for valid, addr, value in self._res_writes:
            with m.If(valid):
                m.d.comb += [self.res_wr.en.eq(1), self.res_wr.row.eq(addr - sl.dbase(L - 1)),
                             self.res_wr.data.eq(value)]
        # busy: the OR of the flags, from a register (the OR of their next values)
        busy_r = Signal(name="busy_r")
        m.d.sync += busy_r.eq(_or(nxt for _, nxt in busy))
        m.d.comb += self.busy.eq(busy_r)
        return m

    def _forward_drain(self, m, go, sa, acc, smx):
        """A row's P sums, in the accumulators the cycle after the row's last beat (D0):
        rounded (D1), saturated (D2), activated and written as a_p[j] (a softmax layer: the
        logit z_p[j] as it is, its lane's maximum kept)."""
        cfg = self._cfg
        P, AW, L, wf = cfg.lanes, cfg.act.width, cfg.n_layers, cfg.weight.frac_bits
        v0, v1, v2 = Signal(name="dr_v0"), Signal(name="dr_v1"), Signal(name="dr_v2")
        dst0, dst1, dst2 = (Signal.like(sa.dst, name=f"dr_dst{i}") for i in range(3))
        lay0, lay1, lay2 = (Signal.like(sa.layer, name=f"dr_l{i}") for i in range(3))
        m.d.sync += [v0.eq(go), dst0.eq(sa.dst), lay0.eq(sa.layer), v1.eq(v0), dst1.eq(dst0), lay1.eq(lay0),
                     v2.eq(v1), dst2.eq(dst1), lay2.eq(lay1)]
        outs, zs = [], []
        for p in range(P):
            zq = _reg(m, round_shift(acc[p], wf), f"dr_zq{p}")
            zr = _reg(m, saturate(zq, cfg.act), f"dr_zr{p}")
            a = Signal(signed(AW), name=f"dr_a{p}")
            m.d.comb += a.eq(zr)  # (a softmax layer: the logit)
            for kind in sorted(set(cfg.activations) - {"softmax"}):
                unit = ActivationFunction(cfg, kind)
                m.submodules[f"act_{kind}{p}"] = unit
                m.d.comb += unit.z.eq(zr)
                with m.Switch(lay2):
                    for l, k in enumerate(cfg.activations):
                        if k == kind:
                            with m.Case(l):
                                m.d.comb += a.eq(unit.a)
            outs.append(a)
            zs.append(zr)
        self._a_writes.append((v2, dst2, Cat(*outs)))
        if smx is not None:
            n_g = -(-P // LANE_GROUP)
            tv = register_copies(m, v1 & (lay1 == L - 1), n_g, "tm_v", self._dsp)
            tf = register_copies(m, dst1 == self._sl.abase(L), n_g, "tm_first", self._dsp)
            smx.track_max(m, [tv[p // LANE_GROUP] for p in range(P)], [tf[p // LANE_GROUP] for p in range(P)], zs)
        return [(v0, go), (v1, v0), (v2, v1)]

    def _backward_finish(self, m, go, sa, acc, d_a):
        """An input's P sums, in the accumulators the cycle after the last beat: rounded,
        saturated to the error format, times sigma'(a_p[k]), rounded, then saturated and
        written as delta_p[k] of the layer below."""
        cfg = self._cfg
        P, wf, af = cfg.lanes, cfg.weight.frac_bits, cfg.act.frac_bits
        v = [go] + [Signal(name=f"bf_v{i}") for i in range(1, 6)]
        dst = [sa.dst] + [Signal.like(sa.dst, name=f"bf_dst{i}") for i in range(1, 6)]
        m.d.sync += [v[i].eq(v[i - 1]) for i in range(1, 6)] + [dst[i].eq(dst[i - 1]) for i in range(1, 6)]
        outs = []
        for p in range(P):
            q = _reg(m, round_shift(acc[p], wf), f"bf_q{p}")
            d0 = _reg(m, _reg(m, d_a[p], f"bf_dd{p}"), f"bf_d0{p}")
            s = _reg(m, saturate(q, cfg.error), f"bf_s{p}")
            d1 = _reg(m, d0, f"bf_d1{p}")
            if _sigma_selects(cfg):
                # sigma' = 1.0 or 0: the product rounded and saturated is s or 0 (a select,
                # in the multiply's and the rounding's stages)
                prod = _reg(m, Mux(d1, s, 0), f"bf_p{p}")
                outs.append(_reg(m, prod, f"bf_pq{p}"))
            else:
                prod = _reg(m, s * d1, f"bf_p{p}")
                pq = _reg(m, round_shift(prod, af), f"bf_pq{p}")
                outs.append(saturate(pq, cfg.error))
        self._d_writes.append((v[5], dst[5], Cat(*outs)))
        return list(zip(v[1:], v[:-1]))

    def _output_delta(self, m, go, sa, prod):
        """MSE: (a - t) sigma'(a) rounded, then saturated and written as delta_p[j]."""
        cfg = self._cfg
        P, af = cfg.lanes, cfg.act.frac_bits
        v1 = Signal(name="od_v1")
        dst1 = Signal.like(sa.dst, name="od_dst1")
        m.d.sync += [v1.eq(go), dst1.eq(sa.dst)]
        shift = 2 * af - cfg.error.frac_bits
        outs = [saturate(_reg(m, round_shift(prod[p], shift), f"od_q{p}"), cfg.error) for p in range(P)]
        self._d_writes.append((v1, dst1, Cat(*outs)))
        return [(v1, go)]

    def _derivatives(self, m, lr, r_a):
        """sigma' of stage R's activation words, per lane: the output layer's (MSE output
        deltas) or, backward through layer l, that of a_l (the activation of layer l - 1)."""
        cfg = self._cfg
        P, L = cfg.lanes, cfg.n_layers
        out = []
        for p in range(P):
            d = Signal(signed(cfg.act.width), name=f"deriv{p}")
            units = {}
            for kind in sorted(set(cfg.activations) - {"softmax"}):
                units[kind] = unit = ActivationDerivative(cfg, kind)
                m.submodules[f"actd_{kind}{p}"] = unit
                m.d.comb += unit.a.eq(r_a[p])
            if cfg.activations[-1] != "softmax":
                with m.If(lr[p].out):
                    m.d.comb += d.eq(units[cfg.activations[-1]].d)
            with m.If(lr[p].bwd):
                with m.Switch(lr[p].layer):
                    for l in range(1, L):
                        with m.Case(l):
                            m.d.comb += d.eq(units[cfg.activations[l - 1]].d)
            out.append(d)
        return out


