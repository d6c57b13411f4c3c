"""The update engine: where the optimizer lives.

Per lane, per update beat: a parameter, its gradient terms and its per-parameter state
come in; the new parameter and state go out. The mini-batch sums (one exact sum per
parameter) are the engine's own memories; the optimizer state (momentum's velocity,
Adam's moments) lives in the state banks, which the bus reaches too. SGD and momentum
have a core for the weight and one for its row's bias per lane; Adam's core is large, so
a lane has one and a row's bias queues for a free cycle (docs/trainer.md).
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.config import ADAM_ALPHA_WIDTH, BETA_POW_FRAC_BITS, Config
from golden.lfsr import lane_seed

from ..arith import saturating_sub
from ..layout import Layout
from ..lfsr import lfsr_next, rotl_signature
from .adam_scalars import AdamScalars, power_write_layout
from .copies import register_copies
from .optimizer_cores import build_core, core_depth, state_shapes, step_shift

__all__ = ["UpdateEngine", "ParamWrite", "update_beat_layout", "lane_flags", "NO_RW", "READ_TO_STAGE_A"]

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
    holds a row of the layer); ``take``, ``hit``, ``hit_last``: :func:`lane_flags` of
    those, bit p for lane p."""
    return data.StructLayout({"valid": 1, "apply": 1, "last": 1, "addr": addr_shape, "slot": slot_shape,
                              "rv": lanes, "take": lanes, "hit": lanes, "hit_last": lanes})


def lane_flags(valid, apply, last, rv) -> dict:
    """The beat's per-lane enables, bit p for lane p: ``hit`` (lane p sums this beat),
    ``take`` (and writes its parameter: the mini-batch completes), ``hit_last`` (the row's
    last weight: its bias too). Amaranth values or ints. A producer registers them from
    the stage before A: in their own flip-flops per lane (no two alike, so synthesis keeps
    them apart), instead of valid, apply and last reaching every lane's enables, which
    on a large device spans the die (docs/synthesis.md, issue 13)."""
    if isinstance(rv, int):
        return {"take": rv if valid and apply else 0, "hit": rv if valid else 0, "hit_last": rv if valid and last else 0}
    return {"take": Mux(valid & apply, rv, 0), "hit": Mux(valid, rv, 0), "hit_last": Mux(valid & last, rv, 0)}


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
        Start a new signature (the first beat of an update that applies; Adam: this
        update's scalars are latched, hdl/trainer/adam_scalars.py).
    s1, s1b, s2, s2b : In.array(lanes)   (momentum: s1, s1b; Adam: all)
        The optimizer state of the beat's weight and of its row's bias, as read from the
        state banks (hdl/trainer/state.py) with ``state_addr``/``state_slot``.
    w_wr, b_wr : Out(ParamWrite).array(lanes)
        The new parameters, ``update_latency(cfg)`` cycles after the beat's issue (Adam:
        a bias later, when its core has a cycle free).
    s1_wr, s1b_wr, s2_wr, s2b_wr : Out(ParamWrite).array(lanes)
        The new state, beside the parameter.
    adam_lr, pow_wr; p1, p2 : In; Out   (Adam)
        The ADAM_LR code and the bus's writes of beta1^t, beta2^t; their values.
    param_signature, state_signature : Out(32)
        The XOR of the lanes' signatures of the parameters (the state) written by the
        last update (golden/signature.py): ``sig_clear`` starts a new one at its first
        written word, the last one's stays readable until then.
    s_valid, f_valid : Out(1)
        An update beat in stage S; a written word folding (stage F).
    busy : Out(1)
        An item in stage S or a core stage before U, or a bias waiting (the sequencer
        registers it, which covers stage U).

    Latency: stage A forms the exact step; stage S registers it with the parameter, its
    state and its draw; the optimizer's core (hdl/trainer/optimizer_cores.py,
    ``core_depth`` registers) rounds it; stage U subtracts, saturates and writes; stage F
    folds the written words into the signatures.
    """

    def __init__(self, cfg: Config, lay: Layout, *, grad_shape, eps_shape, dsp: str = "generic"):
        self._cfg, self._lay, self._dsp = cfg, lay, dsp
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
            "state_signature": Out(32),
            "s_valid": Out(1),
            "f_valid": Out(1),
            "busy": Out(1),
            **self._optimizer_ports(cfg, P, wdepth, ddepth),
        })
        self._ctl_layout = data.StructLayout({"we": 1, "bias": 1, "addr": addr_shape, "slot": slot_shape, "beat": 1})

    @staticmethod
    def _optimizer_ports(cfg, P, wdepth, ddepth) -> dict:
        ports = {}
        for name, shape in zip(("s1", "s2"), state_shapes(cfg)):
            if shape is not None:
                ports.update({name: In(shape).array(P), f"{name}b": In(shape).array(P),
                              f"{name}_wr": Out(ParamWrite(wdepth, shape)).array(P),
                              f"{name}b_wr": Out(ParamWrite(ddepth, shape)).array(P)})
        if cfg.optimizer == "adam":
            ports.update({"adam_lr": In(unsigned(ADAM_ALPHA_WIDTH - 1)), "pow_wr": In(power_write_layout()),
                          "p1": Out(BETA_POW_FRAC_BITS), "p2": Out(BETA_POW_FRAC_BITS)})
        return ports

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
            with m.If(beat.hit[p]):
                m.d.comb += [g_sum.eq(g + total[p]), gb_sum.eq(gb + btotal[p])]
                m.d.comb += [g_wr.data.eq(Mux(beat.take[p], 0, g_sum)), g_wr.en.eq(1),
                             gb_wr.data.eq(Mux(beat.take[p], 0, gb_sum)), gb_wr.en.eq(beat.hit_last[p])]
            total[p], btotal[p] = g_sum, gb_sum

    def elaborate(self, platform):
        cfg, beat = self._cfg, self.beat
        m = Module()
        P, af = cfg.lanes, cfg.act.frac_bits
        train_B, stochastic = cfg.batch_size > 1, cfg.rounding == "stochastic"
        adam = cfg.optimizer == "adam"
        if adam:
            m.submodules.scalars = scalars = AdamScalars(cfg, dsp=self._dsp)
            m.d.comb += [scalars.start.eq(self.sig_clear), scalars.lr.eq(self.adam_lr),
                         scalars.pow_wr.eq(self.pow_wr), self.p1.eq(scalars.p1), self.p2.eq(scalars.p2)]
            # a copy per lane (hdl/trainer/copies.py), a cycle behind the latched values:
            # they change at an update's first beat (start), which its first item reaches
            # the core's use of them PIPE_LATENCY + 1 + a dozen core stages later
            sc_lanes = {k: register_copies(m, getattr(scalars, k), P, f"sc_{k}", self._dsp)
                        for k in ("alpha", "r2", "e2")}
        else:
            sc_lanes = None

        # stage A: the exact step (the product, or the batch sum), the state, the LFSR draws
        total = list(self.grad)
        btotal = [e << af for e in self.eps]  # eps * 1.0
        if train_B:
            self._batch_sums(m, total, btotal)
        reads = {k: [_delayed(m, getattr(self, k)[p], READ_TO_STAGE_A, f"{k}{p}") for p in range(P)]
                 for k in ("s1", "s1b", "s2", "s2b") if hasattr(self, k)}
        none = [None] * P
        s1, s1b, s2, s2b = (reads.get(k, none) for k in ("s1", "s1b", "s2", "s2b"))
        lfsr = [Signal(32, init=lane_seed(cfg.sr_seed, p), name=f"lfsr{p}") for p in range(P)]
        m.d.sync += self.s_valid.eq(beat.valid)
        depth = core_depth(cfg)
        busy, folding, sigs, ssigs = [], [], [], []
        for p in range(P):
            nxt = lfsr_next(lfsr[p])
            nxt2 = lfsr_next(nxt)  # the bias's draw, after its row's last weight
            draw, draw2 = nxt[:step_shift(cfg)], nxt2[:step_shift(cfg)]  # (the bits the rounding uses)
            take, take_last = beat.take[p], beat.take[p] & beat.hit_last[p]  # lane p writes its weight, its bias
            if stochastic:
                with m.If(take):
                    m.d.sync += lfsr[p].eq(Mux(beat.hit_last[p], nxt2, nxt))
            # (the item's beat bit: lane 0 holds a row of every beat, so the lanes' OR is valid)
            w_item = {"G": total[p], "w": self.w[p], "s1": s1[p], "s2": s2[p], "rand": draw if stochastic else None,
                      "ctl": self._ctl(take, 0, beat.hit[p])}
            b_item = {"G": btotal[p], "w": self.b[p], "s1": s1b[p], "s2": s2b[p],
                      "rand": draw2 if stochastic else None, "ctl": self._ctl(0 if adam else take_last, 1, 0)}
            if adam:  # one core: a row's bias waits in a queue for a cycle without a weight
                items = [self._bias_queue(m, p, take, take_last, w_item, b_item, busy)]
            else:
                items = [w_item, b_item]
            outs = []
            for i, item in enumerate(items):
                kind = "wb"[i] if len(items) == 2 else "x"
                # stage S: the item registered; then the core; stage U: subtract, saturate, write
                sv = {k: _register(m, v, f"s_{k}_{kind}{p}") for k, v in item.items() if v is not None}
                step, w_in, s1n, s2n = build_core(m, cfg, f"core{kind}{p}", sv["G"], sv["w"], sv.get("s1"), sv.get("s2"),
                                                  sv.get("rand"), sc_lanes and {k: v[p] for k, v in sc_lanes.items()},
                                                  dsp=self._dsp)
                ctl = [sv["ctl"]]
                for d in range(depth):
                    ctl.append(_register(m, ctl[-1], f"ctl_{kind}{p}_{d + 1}"))
                busy += [c[0] for c in ctl[:-1]]
                folding.append(self._ctl_view(ctl[-1]).beat)
                w_new = Signal(signed(cfg.weight.width), name=f"w_new_{kind}{p}")
                m.d.comb += w_new.eq(saturating_sub(w_in, step, cfg.weight))
                outs.append((ctl[-1], w_new, s1n, s2n))
            self._writes(m, p, outs)
            sig, ssig = self._signatures(m, p, outs)
            sigs.append(sig)
            ssigs.append(ssig)
            folding += [Value.cast(ctl_bits)[0] for ctl_bits, _, _, _ in outs]  # (stage F's write enables)
        # f_valid: stage F holds a beat or a written word. The OR of the stage-U bits,
        # registered: the same value as the OR of stage F's registers, without an OR tree
        # spanning every lane between those registers and the sequencer's idle
        m.d.sync += self.f_valid.eq(_or(folding))
        m.d.comb += [self.param_signature.eq(_xor(sigs)), self.state_signature.eq(_xor(ssigs)),
                     self.busy.eq(self.s_valid | _or(busy))]
        return m

    def _ctl(self, we, bias, beat_valid):
        """An item's control: write enable, bias or weight, the weight word and bias slot,
        and whether it carries an update beat (writing or only summing: f_valid follows it)."""
        we, beat_valid = (Const(v, 1) if isinstance(v, int) else v for v in (we, beat_valid))
        return Cat(we, Const(bias, 1), self.beat.addr, self.beat.slot, beat_valid)

    def _ctl_view(self, bits):
        return data.View(self._ctl_layout, bits)

    def _bias_queue(self, m, p, take, take_last, w_item, b_item, busy):
        """Adam's single core per lane takes a weight when one comes; a row's bias (pushed
        beside its last weight, with its draw) goes in at the next cycle without one."""
        fields = {k: v for k, v in b_item.items() if v is not None}
        fields["ctl"] = Value.cast(fields["ctl"])[1:-1]  # bias, addr, slot (we, beat: set on the way out)
        layout = data.StructLayout({k: Value.cast(v).shape() for k, v in fields.items()})
        fifo = SyncFIFO(width=layout.size, depth=max(self._lay.ddepth, 2))
        m.submodules[f"bias_queue{p}"] = fifo
        head = data.View(layout, fifo.r_data)
        m.d.comb += [fifo.w_data.eq(Cat(*[Value.cast(fields[k]) for k, _ in layout])),
                     fifo.w_en.eq(take_last), fifo.r_en.eq(~take)]
        busy.append(fifo.r_rdy)
        item = {}
        for k, v in w_item.items():
            if v is None:
                item[k] = None
                continue
            item[k] = Mux(take, v, Cat(fifo.r_rdy, head.ctl, v[-1]) if k == "ctl" else head[k])
        return item

    def _writes(self, m, p, outs):
        """Stage U: the parameter and its state written (a weight at ``addr``, a bias at ``slot``)."""
        for ctl_bits, w_new, s1n, s2n in outs:
            ctl = self._ctl_view(ctl_bits)
            we, is_bias, addr, slot = ctl.we, ctl.bias, ctl.addr, ctl.slot
            for wr, bias, a in ((self.w_wr[p], 0, addr), (self.b_wr[p], 1, slot)):
                with m.If(we & (is_bias == bias)):
                    m.d.comb += [wr.addr.eq(a), wr.data.eq(w_new), wr.en.eq(1)]
            for name, value in (("s1", s1n), ("s2", s2n)):
                if value is None:
                    continue
                for wr, bias, a in ((getattr(self, f"{name}_wr")[p], 0, addr), (getattr(self, f"{name}b_wr")[p], 1, slot)):
                    with m.If(we & (is_bias == bias)):
                        m.d.comb += [wr.addr.eq(a), wr.data.eq(value), wr.en.eq(1)]

    def _signatures(self, m, p, outs):
        """Stage F: the words stage U wrote fold into lane p's signatures a cycle later
        (weights and biases apart, golden/signature.py); the state alike."""
        regs = {}
        sig = {k: Signal(32, name=f"{k}{p}") for k in ("sig_w", "sig_b", "st_w", "st_b")}
        for i, (ctl, w_new, s1n, s2n) in enumerate(outs):
            f_we, f_bias = _register(m, ctl[0], f"f_we{p}_{i}"), _register(m, ctl[1], f"f_bias{p}_{i}")
            f_w = _register(m, w_new, f"f_w{p}_{i}")
            word = Signal(32, name=f"f_state{p}_{i}")
            if s1n is not None:
                v = Value.cast(s1n).as_signed()
                if s2n is not None:
                    v2 = Value.cast(s2n).as_signed()
                    m.d.sync += word.eq(v ^ v2 ^ (v2 >> 32))
                else:
                    m.d.sync += word.eq(v)
            regs[i] = (f_we, f_bias, f_w, word)
        for key, bias in (("w", 0), ("b", 1)):
            # sig_clear only arms the clear: the registers keep the last update's signature
            # until this update's first word folds (it starts again from 0 then), so the host
            # reads a whole update's signature until the next one writes, not a 0 in between
            # (the next update is issued well before its first write reaches stage F)
            armed = Signal(name=f"sig_armed_{key}{p}")
            hits = [f_we & (f_bias == bias) for f_we, f_bias, _, _ in regs.values()]
            new_p = Mux(armed, 0, sig[f"sig_{key}"])
            new_s = Mux(armed, 0, sig[f"st_{key}"])
            for hit, (_, _, f_w, word) in zip(hits, regs.values()):
                new_p = Mux(hit, rotl_signature(new_p) ^ f_w.as_unsigned(), new_p)
                new_s = Mux(hit, rotl_signature(new_s) ^ word, new_s)
            with m.If(_or(hits)):
                m.d.sync += [sig[f"sig_{key}"].eq(new_p), sig[f"st_{key}"].eq(new_s), armed.eq(0)]
            with m.If(self.sig_clear):
                m.d.sync += armed.eq(1)
        return sig["sig_w"] ^ sig["sig_b"], sig["st_w"] ^ sig["st_b"]


def _register(m, value, name):
    value = Value.cast(value)
    reg = Signal(value.shape(), name=name)
    m.d.sync += reg.eq(value)
    return reg


def _xor(values):
    out = values[0]
    for v in values[1:]:
        out = out ^ v
    return out


def _or(values):
    out = Const(0, 1)
    for v in values:
        out = out | v
    return out


def _delayed(m, value, n, name):
    """``value`` through ``n`` registers."""
    for i in range(n):
        reg = Signal.like(value, name=f"{name}_d{i}")
        m.d.sync += reg.eq(value)
        value = reg
    return value
