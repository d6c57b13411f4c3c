"""Adam's per-update scalars: the step size alpha_t and the correction 1 / (1 - beta2^t).

docs/arithmetic.md §10.2 "Bias correction". Two registers hold beta1^t and beta2^t for
the next update t (32 fraction bits). A short pipeline turns them, with the ADAM_LR
code, into that update's ``alpha``, ``r2``, ``e2``; ``start`` (the update's first beat)
latches them for the whole update and moves both powers on by one update (to their next
values, which a pipeline beside them keeps ready). Everything settles within
``SETTLE_CYCLES`` after a power or ``lr`` changes; the next ``start`` is a whole sample
later.
"""
from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.config import ADAM_ALPHA_WIDTH, BETA_POW_FRAC_BITS, OPT_FRAC_BITS, Config
from golden.optimizers import ALPHA_MAX, initial_beta_power
from golden.tables import recip_table

from ..arith import round_shift
from ..dsp import pipelined_product

__all__ = ["AdamScalars", "power_write_layout", "R2_WIDTH", "E2_SHAPE", "SETTLE_CYCLES"]

R2_WIDTH = 16
SETTLE_CYCLES = 8
E2_SHAPE = range(BETA_POW_FRAC_BITS + 2)


def power_write_layout() -> data.StructLayout:
    """A bus write of a power register: ``valid`` one cycle, ``which`` 0 = beta1^t, 1 = beta2^t."""
    return data.StructLayout({"valid": 1, "which": 1, "data": BETA_POW_FRAC_BITS})


class AdamScalars(wiring.Component):
    """Members
    -------
    start : In(1)
        An update's first beat: latch this update's scalars, then advance the powers.
    lr : In(32)
        The ADAM_LR code (``adam_alpha_frac_bits`` fraction bits).
    pow_wr : In(power_write_layout)
        The bus restoring a power (only while idle).
    p1, p2 : Out(32)
        beta1^t, beta2^t of the next update (the bus reads them).
    alpha, r2, e2 : Out
        This update's step size and 1 / (1 - beta2^t) = r2 * 2**(e2 - recip_frac_bits).

    ``dsp``: how the multiplies are built (hdl/dsp.py), as in the rest of the trainer.
    """

    def __init__(self, cfg: Config, *, dsp: str = "generic"):
        self._cfg, self._dsp = cfg, dsp
        super().__init__({
            "start": In(1),
            "lr": In(unsigned(ADAM_ALPHA_WIDTH - 1)),
            "pow_wr": In(power_write_layout()),
            "p1": Out(BETA_POW_FRAC_BITS, init=initial_beta_power(cfg, cfg.adam_c1)),
            "p2": Out(BETA_POW_FRAC_BITS, init=initial_beta_power(cfg, cfg.adam_c2)),
            "alpha": Out(unsigned(ADAM_ALPHA_WIDTH - 1)),
            "r2": Out(R2_WIDTH),
            "e2": Out(E2_SHAPE),
        })

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        er, rf = cfg.recip_entries_log2, cfg.recip_frac_bits
        rom = Memory(shape=R2_WIDTH, depth=1 << er, init=[int(x) for x in recip_table(cfg)])
        m.submodules.recip = rom
        nxt = {}
        for name, p in (("1", self.p1), ("2", self.p2)):
            # 0: d = 2^32 - p (registered: its carry chain and the leading one's search
            # would not fit one cycle); 1: its bit length and the er bits below its leading one
            d = Signal(BETA_POW_FRAC_BITS + 1, name=f"d{name}")
            m.d.sync += d.eq((1 << BETA_POW_FRAC_BITS) - p)
            n, idx = Signal(range(BETA_POW_FRAC_BITS + 2), name=f"n{name}"), Signal(er, name=f"idx{name}")
            nc, ic = Signal.like(n, name=f"nc{name}"), Signal.like(idx, name=f"ic{name}")
            for b in range(BETA_POW_FRAC_BITS + 1):  # later statements win: the leading one
                with m.If(d[b]):
                    m.d.comb += [nc.eq(b + 1), ic.eq((d << er) >> b if b < er else d >> (b - er))]
            m.d.sync += [n.eq(nc), idx.eq(ic)]
            # 2: the reciprocal table (its data a cycle later)
            rd = rom.read_port()
            n2 = Signal.like(n, name=f"n{name}_r")
            m.d.comb += rd.addr.eq(idx)
            m.d.sync += n2.eq(n)
            nxt[name] = (rd.data, n2)
        # 3, 4: lr * R1 (a registered multiply); 5: its quotient by 2^(rf - e1), e1 = 33 - n1,
        # and the rounding flags; 6: alpha, rounded (nearest-even) and clamped
        prod, lat = pipelined_product(m, self.lr, nxt["1"][0], dsp=self._dsp, name="lr_r1")
        e2_now = Signal(E2_SHAPE, name="e2_now")
        m.d.comb += e2_now.eq(BETA_POW_FRAC_BITS + 1 - nxt["2"][1])
        n1, r2, e2 = _delayed(m, nxt["1"][1], lat, "n1"), _delayed(m, nxt["2"][0], lat, "r2"), \
            _delayed(m, e2_now, lat, "e2")
        q, gt, eq = Signal(len(prod) + BETA_POW_FRAC_BITS), Signal(), Signal()
        with m.Switch(n1):
            for n in range(1, BETA_POW_FRAC_BITS + 2):
                with m.Case(n):
                    sh = rf + n - BETA_POW_FRAC_BITS - 1
                    if sh <= 0:
                        m.d.sync += [q.eq(prod << -sh), gt.eq(0), eq.eq(0)]
                    else:
                        half = 1 << (sh - 1)
                        m.d.sync += [q.eq(prod >> sh), gt.eq(prod[:sh] > half if sh > 1 else 0),
                                     eq.eq(prod[:sh] == half)]
        r2_q, e2_q = _delayed(m, r2, 1, "r2_q"), _delayed(m, e2, 1, "e2_q")
        alpha, r2_n, e2_n = Signal.like(self.alpha), Signal.like(r2_q), Signal.like(e2_q)
        a = q + (gt | (eq & q[0]))
        m.d.sync += [alpha.eq(Mux(a > ALPHA_MAX, ALPHA_MAX, a)), r2_n.eq(r2_q), e2_n.eq(e2_q)]
        # the next powers, kept ready: round_ne(p * (2^20 - c) / 2^20)
        nxt_p = []
        for p, c in ((self.p1, cfg.adam_c1), (self.p2, cfg.adam_c2)):
            beta = Const((1 << OPT_FRAC_BITS) - c, OPT_FRAC_BITS)
            pp, _ = pipelined_product(m, p, beta, dsp=self._dsp, name=f"pow{len(nxt_p) + 1}")
            pn = Signal(BETA_POW_FRAC_BITS, name=f"p{len(nxt_p) + 1}_next")
            m.d.sync += pn.eq(round_shift(pp, OPT_FRAC_BITS))
            nxt_p.append(pn)
        # the update's values; the powers move on: p <- round_ne(p * (2^20 - c) / 2^20)
        with m.If(self.start):
            m.d.sync += [self.alpha.eq(alpha), self.r2.eq(r2_n), self.e2.eq(e2_n)]
            m.d.sync += [self.p1.eq(nxt_p[0]), self.p2.eq(nxt_p[1])]
        with m.Elif(self.pow_wr.valid):
            with m.If(self.pow_wr.which):
                m.d.sync += self.p2.eq(self.pow_wr.data)
            with m.Else():
                m.d.sync += self.p1.eq(self.pow_wr.data)
        return m


def _delayed(m, value, n, name):
    for i in range(n):
        reg = Signal.like(value, name=f"{name}_d{i}") if isinstance(value, Signal) else \
            Signal(value.shape(), name=f"{name}_d{i}")
        m.d.sync += reg.eq(value)
        value = reg
    return value
