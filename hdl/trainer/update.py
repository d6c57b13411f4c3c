"""The update engine: where the optimizer lives.

Per lane, per update beat: a parameter, its gradient terms and its per-parameter state
come in; the new parameter and state go out. Today's optimizer is SGD, optionally over
mini-batch sums (the state: one exact sum per parameter, kept in the engine's own
memories). Momentum or Adam add state memories and arithmetic here, not in the
sequencer or the lanes.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Shape, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.config import Config
from golden.lfsr import lane_seed

from ..arith import round_shift, saturating_sub
from ..layout import Layout
from ..lfsr import lfsr_next, rotl_signature

__all__ = ["UpdateEngine", "ParamWrite", "update_beat_layout", "NO_RW", "READ_TO_STAGE_A"]

# A parameter word is never read in the cycle it is written (the sequencer orders every
# read after the write it depends on, and the bus only reaches idle memories), so
# synthesis need not emulate read-during-write: without the attribute yosys adds a
# write-data register and a bypass multiplexer after each block RAM's output.
NO_RW = {"no_rw_check": 1}

# Registers between a memory read issued with a beat and that beat's stage A: stage R
# (the read data registered), stage 2, stage M, stage A.
READ_TO_STAGE_A = 4


class ParamWrite(wiring.Signature):
    """A memory write request: ``addr``, ``data``, ``en`` (as lib.memory's write port)."""

    def __init__(self, depth: int, shape):
        super().__init__({"addr": Out(range(max(depth, 2))), "data": Out(shape), "en": Out(1)})


def update_beat_layout(lanes: int, addr_shape, slot_shape) -> data.StructLayout:
    """Stage A's control of an update beat: the weight word ``addr`` (the same in every
    bank), the row block's bias/state ``slot``, ``last`` (the row's last weight: its bias
    updates beside it), ``apply`` (this sample completes a mini-batch) and ``rv`` (lane p
    holds a row of the layer)."""
    return data.StructLayout({"valid": 1, "apply": 1, "last": 1, "addr": addr_shape, "slot": slot_shape,
                              "rv": lanes})


class UpdateEngine(wiring.Component):
    """SGD: ``W -= round(eps * a)``, ``b -= round(eps * 1.0)``, per lane, through the
    mini-batch sums when ``batch_size > 1``; saturating, with nearest-even or stochastic
    rounding (one LFSR per lane, golden/lfsr.py), every written word folded into the
    parameter signature (golden/signature.py).

    Members
    -------
    beat : In(update_beat_layout)
        Stage A's control of the beat (``valid`` only on update beats).
    w, b : In(signed(weight.width)).array(lanes)
        The beat's weight and its row's bias, as read for it.
    grad : In(signed).array(lanes)
        ``eps * a``, the exact product of the lane's multiplier.
    eps : In(signed).array(lanes)
        ``eps = lr * delta`` of the lane's row (the bias's gradient term, times 1.0).
    state_addr, state_slot : In
        The read addresses of the batch sums, issued with the beat (READ_TO_STAGE_A
        registers before its stage A).
    sig_clear : In(1)
        Start a new signature (the first beat of an update that applies).
    w_wr, b_wr : Out(ParamWrite).array(lanes)
        The new parameters, ``UPDATE_LATENCY`` cycles after the beat's issue.
    param_signature : Out(32)
        The XOR of the lanes' signatures of the words written since ``sig_clear``.
    s_valid, f_valid : Out(1)
        An update beat in stage S (rounding); in stage F (a written word folding).

    Latency: stage A forms the exact step, stage S rounds it, stage U subtracts, saturates
    and writes, stage F folds the written word into the signature.
    """

    def __init__(self, cfg: Config, lay: Layout, *, grad_shape, eps_shape):
        self._cfg, self._lay = cfg, lay
        P, WW = cfg.lanes, cfg.weight.width
        wdepth, ddepth = max(lay.wdepth, 1), max(lay.ddepth, 1)
        addr_shape, slot_shape = range(max(wdepth, 2)), range(ddepth)
        self._grad_shape, self._eps_shape = signed(Shape.cast(grad_shape).width), signed(Shape.cast(eps_shape).width)
        super().__init__({
            "beat": In(update_beat_layout(P, addr_shape, slot_shape)),
            "w": In(signed(WW)).array(P),
            "b": In(signed(WW)).array(P),
            "grad": In(self._grad_shape).array(P),
            "eps": In(self._eps_shape).array(P),
            "state_addr": In(addr_shape),
            "state_slot": In(slot_shape),
            "sig_clear": In(1),
            "w_wr": Out(ParamWrite(wdepth, signed(WW))).array(P),
            "b_wr": Out(ParamWrite(ddepth, signed(WW))).array(P),
            "param_signature": Out(32),
            "s_valid": Out(1),
            "f_valid": Out(1),
        })

    def _batch_sums(self, m, total, btotal):
        """The mini-batch sums (B > 1): each beat adds its terms to the parameter's sum;
        the batch's last sample takes the sum as its step and clears it."""
        cfg, lay, beat = self._cfg, self._lay, self.beat
        P, GW = cfg.lanes, cfg.grad_acc_width()
        wdepth, ddepth = max(lay.wdepth, 1), max(lay.ddepth, 1)
        for p in range(P):
            gmem = Memory(shape=signed(GW), depth=wdepth, init=[], attrs=NO_RW)
            gbmem = Memory(shape=signed(GW), depth=ddepth, init=[], attrs=NO_RW)  # the biases' sums
            m.submodules[f"gmem{p}"], m.submodules[f"gbmem{p}"] = gmem, gbmem
            g_rd, g_wr, gb_rd, gb_wr = gmem.read_port(), gmem.write_port(), gbmem.read_port(), gbmem.write_port()
            m.d.comb += [g_rd.addr.eq(self.state_addr), gb_rd.addr.eq(self.state_slot),
                         g_wr.addr.eq(beat.addr), gb_wr.addr.eq(beat.slot)]
            g, gb = _delayed(m, g_rd.data, READ_TO_STAGE_A, f"g{p}"), _delayed(m, gb_rd.data, READ_TO_STAGE_A, f"gb{p}")
            g_sum = Signal(signed(GW), name=f"g_sum{p}")
            gb_sum = Signal(signed(GW), name=f"gb_sum{p}")
            with m.If(beat.valid):
                m.d.comb += [g_sum.eq(g + total[p]), gb_sum.eq(gb + btotal[p])]
                m.d.comb += [g_wr.data.eq(Mux(beat.apply, 0, g_sum)), g_wr.en.eq(beat.rv[p]),
                             gb_wr.data.eq(Mux(beat.apply, 0, gb_sum)), gb_wr.en.eq(beat.rv[p] & beat.last)]
            total[p], btotal[p] = g_sum, gb_sum

    def elaborate(self, platform):
        cfg, beat = self._cfg, self.beat
        m = Module()
        P, WW, af = cfg.lanes, cfg.weight.width, cfg.act.frac_bits
        train_B, stochastic = cfg.batch_size > 1, cfg.rounding == "stochastic"
        GW = cfg.grad_acc_width()

        # stage A: the exact step (the product, or the batch sum) and the LFSR draws
        total = list(self.grad)
        btotal = [e << af for e in self.eps]  # eps * 1.0
        if train_B:
            self._batch_sums(m, total, btotal)
        tot_shape = signed(GW if train_B else self._grad_shape.width)
        btot_shape = signed(GW if train_B else self._eps_shape.width + af)

        # stage S: the step with the parameter, its LFSR draws and write enables, registered
        s_addr = Signal.like(beat.addr, name="s_addr")
        s_slot = Signal.like(beat.slot, name="s_slot")
        m.d.sync += [self.s_valid.eq(beat.valid), s_addr.eq(beat.addr), s_slot.eq(beat.slot)]
        lfsr = [Signal(32, init=lane_seed(cfg.sr_seed, p), name=f"lfsr{p}") for p in range(P)]
        # stage U: the rounded step subtracted from the parameter, saturated and written
        u_addr = Signal.like(s_addr, name="u_addr")
        u_slot = Signal.like(s_slot, name="u_slot")
        u_valid = Signal()
        m.d.sync += [u_addr.eq(s_addr), u_slot.eq(s_slot), u_valid.eq(self.s_valid), self.f_valid.eq(u_valid)]
        sigs = []
        for p in range(P):
            s_we, s_bwe = Signal(name=f"s_we{p}"), Signal(name=f"s_bwe{p}")
            s_w, s_b = Signal(signed(WW), name=f"s_w{p}"), Signal(signed(WW), name=f"s_b{p}")
            s_tot, s_btot = Signal(tot_shape, name=f"s_tot{p}"), Signal(btot_shape, name=f"s_btot{p}")
            s_rand, s_rand2 = Signal(32, name=f"s_rand{p}"), Signal(32, name=f"s_rand2{p}")  # the bias's draw
            m.d.sync += [s_w.eq(self.w[p]), s_b.eq(self.b[p]), s_we.eq(0), s_bwe.eq(0)]
            with m.If(beat.valid):
                draw = lfsr_next(lfsr[p])
                draw2 = lfsr_next(draw)
                m.d.sync += [s_tot.eq(total[p]), s_btot.eq(btotal[p])]
                if stochastic:
                    m.d.sync += [s_rand.eq(draw), s_rand2.eq(draw2)]
                with m.If(beat.apply & beat.rv[p]):
                    m.d.sync += [s_we.eq(1), s_bwe.eq(beat.last)]
                    if stochastic:
                        m.d.sync += lfsr[p].eq(Mux(beat.last, draw2, draw))

            u_we, u_bwe = Signal(name=f"u_we{p}"), Signal(name=f"u_bwe{p}")
            u_w, u_b = Signal(signed(WW), name=f"u_w{p}"), Signal(signed(WW), name=f"u_b{p}")
            step = round_shift(s_tot, cfg.update_shift, cfg.rounding, s_rand)
            bstep = round_shift(s_btot, cfg.update_shift, cfg.rounding, s_rand2)
            u_step = Signal(step.shape(), name=f"u_step{p}")
            u_bstep = Signal(bstep.shape(), name=f"u_bstep{p}")
            m.d.sync += [u_we.eq(s_we), u_bwe.eq(s_bwe), u_w.eq(s_w), u_b.eq(s_b), u_step.eq(step), u_bstep.eq(bstep)]
            w_new = Signal(signed(WW), name=f"w_new{p}")
            b_new = Signal(signed(WW), name=f"b_new{p}")
            m.d.comb += [w_new.eq(saturating_sub(u_w, u_step, cfg.weight)),
                         b_new.eq(saturating_sub(u_b, u_bstep, cfg.weight))]
            m.d.comb += [self.w_wr[p].addr.eq(u_addr), self.w_wr[p].data.eq(w_new), self.w_wr[p].en.eq(u_we),
                         self.b_wr[p].addr.eq(u_slot), self.b_wr[p].data.eq(b_new), self.b_wr[p].en.eq(u_bwe)]
            sigs.append(self._signature(m, p, u_we, u_bwe, w_new, b_new))

        total_sig = sigs[0]
        for s in sigs[1:]:
            total_sig = total_sig ^ s
        m.d.comb += self.param_signature.eq(total_sig)
        return m

    def _signature(self, m, p, u_we, u_bwe, w_new, b_new):
        """Stage F: the words stage U wrote fold into lane p's signature a cycle later (the
        bias after the row's last weight)."""
        WW = self._cfg.weight.width
        f_we, f_bwe = Signal(name=f"f_we{p}"), Signal(name=f"f_bwe{p}")
        f_w, f_b = Signal(signed(WW), name=f"f_w{p}"), Signal(signed(WW), name=f"f_b{p}")
        m.d.sync += [f_we.eq(u_we), f_bwe.eq(u_bwe), f_w.eq(w_new), f_b.eq(b_new)]
        sig = Signal(32, name=f"sig{p}")
        sig_w = rotl_signature(sig) ^ f_w.as_unsigned()
        sig_wb = rotl_signature(sig_w) ^ f_b.as_unsigned()
        with m.If(f_we):
            m.d.sync += sig.eq(Mux(f_bwe, sig_wb, sig_w))
        with m.Elif(self.sig_clear):
            m.d.sync += sig.eq(0)
        return sig


def _delayed(m, value, n, name):
    """``value`` through ``n`` registers."""
    for i in range(n):
        reg = Signal.like(value, name=f"{name}_d{i}")
        m.d.sync += reg.eq(value)
        value = reg
    return value
