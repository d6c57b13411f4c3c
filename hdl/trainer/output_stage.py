"""The output stage: the output codes to ``m_data`` and, when training, the output deltas.

MSE: the output activations are read one per cycle after the forward pass, sent, and
their deltas (a - t) * sigma'(a) formed three stages later. Softmax + cross-entropy: the
softmax unit takes the last layer's logits from the drain; its probabilities go straight
to ``m_data`` and, with their targets, to the deltas p - t.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.config import Config

from ..layout import Layout
from ..output import SoftmaxUnit, ce_delta, mse_delta
from .beat import beat_layout
from .deltas import delta_write_layout
from .drain import logit_layout

__all__ = ["OutputStage"]


class OutputStage(wiring.Component):
    """Result FIFO, the softmax unit (softmax networks) and the output deltas.

    Members
    -------
    m_data : Out(stream.Signature(beat_layout))
        The ``n_out`` output codes of every sample, ``last`` on the final one.
    start : In(1)
        A new output vector follows (counters to 0).
    run : In(1)
        The sequencer's output phase (MSE: its OUT state; softmax: the wait after the last
        forward layer): the stage reads, sends and forms deltas only then.
    infer : In(1)
        The sample is an inference: no deltas.
    tbuf : In(1)
        The input buffer holding the sample's targets.
    a_addr, a_data : Out, In
        MSE: the output activation read (hdl/layout.py ``abase(L)``) and its data.
    deriv : In(signed(act.width))
        MSE: sigma'(a) of the code read a cycle before (the lanes' stage R derivative).
    t_addr, t_data : Out, In
        The target read and its data a cycle later.
    logit : In(stream.Signature(logit_layout))
        Softmax: the logits from the drain (see ForwardDrain.logit).
    room : Out(1)
        Softmax: the FIFO has room for a whole output vector (a register).
    delta : Out(delta_write_layout)
        delta_L[j] for bank j mod P, slot dbase(L-1) + j // P.
    done : Out(1)
        The vector's last delta is written this cycle (or its last code sent).
    """

    def __init__(self, cfg: Config, lay: Layout):
        self._cfg, self._lay = cfg, lay
        AW = cfg.act.width
        self._softmax = cfg.activations[-1] == "softmax"
        self._fifo_depth = max(5, cfg.layers[-1] + 2)
        super().__init__({
            "m_data": Out(stream.Signature(beat_layout(cfg))),
            "start": In(1),
            "run": In(1),
            "infer": In(1),
            "tbuf": In(1),
            "a_addr": Out(range(max(lay.adepth, 2))),
            "a_data": In(signed(AW)),
            "deriv": In(signed(AW)),
            "t_addr": Out(range(max(lay.tdepth, 2))),
            "t_data": In(signed(AW)),
            "logit": In(stream.Signature(logit_layout(cfg))),
            "room": Out(1),
            "delta": Out(delta_write_layout(cfg, lay)),
            "done": Out(1),
        })

    def elaborate(self, platform):
        cfg, lay = self._cfg, self._lay
        m = Module()
        AW, P, L, n_out = cfg.act.width, cfg.lanes, cfg.n_layers, cfg.layers[-1]
        # MSE writes one code per cycle, issued a cycle ahead: it issues only while the
        # FIFO's level leaves room for the write in flight, so it can hold n_out + 1 codes
        m.submodules.fifo = ofifo = fifo.SyncFIFOBuffered(width=AW + 1, depth=self._fifo_depth)
        m.d.comb += [self.m_data.payload.data.eq(ofifo.r_data[:AW]), self.m_data.payload.last.eq(ofifo.r_data[AW]),
                     self.m_data.valid.eq(ofifo.r_rdy), ofifo.r_en.eq(self.m_data.ready)]
        # a delta is made (written unless the sample is an inference); it goes to bank
        # j mod P, slot j // P, kept as counters
        emit, value = Signal(), Signal(signed(cfg.error.width))
        j_lane, j_slot = Signal(range(P)), Signal(range(n_out // P + 2))
        with m.If(emit):
            with m.If(j_lane == P - 1):
                m.d.sync += [j_lane.eq(0), j_slot.eq(j_slot + 1)]
            with m.Else():
                m.d.sync += j_lane.eq(j_lane + 1)
        m.d.comb += [self.delta.valid.eq(emit & ~self.infer), self.delta.lane.eq(j_lane),
                     self.delta.addr.eq(lay.dbase(L - 1) + j_slot), self.delta.delta.eq(value)]
        tbase = Mux(self.tbuf, lay.tbase(1), 0)
        count = Signal(range(n_out + 2))  # codes read (MSE) or probabilities sent (softmax)
        if self._softmax:
            self._softmax_path(m, ofifo, tbase, count, emit, value)
        else:
            self._mse_path(m, ofifo, tbase, count, emit, value)
        with m.If(self.start):
            m.d.sync += [count.eq(0), j_lane.eq(0), j_slot.eq(0)]
        return m

    def _mse_path(self, m, ofifo, tbase, j_iss, emit, value):
        """One code per cycle: read j_iss, send it the cycle after (j_cnt), its delta two
        stages later."""
        cfg, lay = self._cfg, self._lay
        AW, n_out = cfg.act.width, cfg.layers[-1]
        j_cnt = Signal(range(n_out + 1))
        pending = Signal()  # a read was issued last cycle
        s2, s3 = Signal(), Signal()  # the derivative stage, the delta stage hold a code
        a, t, last = Signal(signed(AW)), Signal(signed(AW)), Signal()
        d, a3, t3, last3 = Signal(signed(AW)), Signal(signed(AW)), Signal(signed(AW)), Signal()
        with m.If(self.run):
            m.d.comb += [self.a_addr.eq(lay.abase(cfg.n_layers) + j_iss), self.t_addr.eq(tbase + j_iss)]
            # the write in flight must find room: issue only while level + pending < depth - 1
            # (the FIFO's w_rdy is `inner level < depth - 1`; level >= inner level)
            issue = (j_iss < n_out) & (ofifo.level + pending < self._fifo_depth - 1)
            m.d.sync += pending.eq(issue)
            with m.If(issue):
                m.d.sync += j_iss.eq(j_iss + 1)
            # stage 1: the code to the FIFO; a and t registered (the lanes' stage R registers
            # a for the derivative unit)
            m.d.sync += [s2.eq(pending), s3.eq(s2)]
            with m.If(pending):
                m.d.comb += [ofifo.w_data.eq(Cat(self.a_data, j_cnt == n_out - 1)), ofifo.w_en.eq(1)]
                m.d.sync += [a.eq(self.a_data), t.eq(self.t_data), last.eq(j_cnt == n_out - 1), j_cnt.eq(j_cnt + 1)]
            # stage 2: sigma'(a) registered; stage 3: the output delta
            m.d.sync += [d.eq(self.deriv), a3.eq(a), t3.eq(t), last3.eq(s2 & last)]
            with m.If(s3):
                m.d.comb += [emit.eq(1), value.eq(mse_delta(a3, t3, d, cfg)), self.done.eq(last3)]
        with m.If(self.start):
            m.d.sync += [j_cnt.eq(0), pending.eq(0)]

    def _softmax_path(self, m, ofifo, tbase, count, emit, value):
        """Four register stages after the softmax unit's reciprocal multiply: X holds the
        product, X2 the product aligned by its k, Y that rounded to act's fraction bits, Z
        the probability saturated from it; Z goes to the FIFO and, with its target, to the
        delta. The FIFO has room for the whole vector (the drain sends the logits only with
        ``room``), so the stages always move on: no ready chain from the FIFO's level back
        into the softmax unit."""
        cfg = self._cfg
        AW, n_out = cfg.act.width, cfg.layers[-1]
        m.submodules.softmax = smax = SoftmaxUnit(cfg, raw_product=True)
        wiring.connect(m, wiring.flipped(self.logit), smax.i)
        # the FIFO can take a whole output vector without a stall (w_rdy is `inner level <
        # depth - 1`, inner level <= level)
        m.d.sync += self.room.eq(ofifo.level + n_out <= self._fifo_depth - 2)
        prod = Signal.like(smax.o.payload.prod, name="sm_prod")
        k = Signal.like(smax.o.payload.k, name="sm_k")
        aligned = Signal.like(smax.aligned_product(prod, k), name="sm_al")
        rounded = Signal.like(smax.round_aligned(aligned), name="sm_r")
        prob = Signal(signed(AW))
        x_full, x2_full, y_full, z_full = Signal(), Signal(), Signal(), Signal()
        with m.If(self.run):
            m.d.comb += smax.o.ready.eq(1)
            # on the last probability's cycle its delta is written: the backward pass may
            # issue its first read in the next cycle
            m.d.comb += self.done.eq((count == n_out) | (z_full & (count == n_out - 1)))
            # the target of Z's element (index count) is read the cycle before it is needed:
            # as the element enters Z (index count + z_full)
            m.d.comb += self.t_addr.eq(tbase + count + z_full)
            m.d.sync += [prod.eq(smax.o.payload.prod), k.eq(smax.o.payload.k), x_full.eq(smax.o.valid),
                         aligned.eq(smax.aligned_product(prod, k)), x2_full.eq(x_full),
                         rounded.eq(smax.round_aligned(aligned)), y_full.eq(x2_full),
                         prob.eq(smax.saturate_probability(rounded)), z_full.eq(y_full)]
            with m.If(z_full):
                m.d.comb += [ofifo.w_data.eq(Cat(prob, count == n_out - 1)), ofifo.w_en.eq(1),
                             emit.eq(1), value.eq(ce_delta(prob, self.t_data, cfg))]
                m.d.sync += count.eq(count + 1)
