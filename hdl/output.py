"""Output-layer units: stable softmax, and the output deltas of MSE and softmax + cross-entropy.

Bit-exact with golden: ``SoftmaxUnit`` = golden.tables.softmax_codes; ``mse_delta`` /
``MseGradUnit`` and ``ce_delta`` / ``CrossEntropyGradUnit`` =
golden.fixed_model.FixedMLP.output_delta for ``loss = "mse"`` and ``"cross_entropy"``.
Every narrowing is hdl.arith.requantize; the exp and reciprocal ROMs hold exactly
golden.tables.table_contents(table_spec("exp", cfg)) and golden.tables.recip_table(cfg).
"""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.config import Config
from golden.tables import lut_eval, recip_table, table_contents, table_spec

from .activation import LutReader
from .arith import requantize, round_shift, saturate

__all__ = ["mse_delta", "ce_delta", "SoftmaxArith", "SoftmaxUnit"]


def mse_delta(a, t, d, cfg: Config):
    """MSE output delta ``requantize((a - t) * d, 2 * act.frac_bits, error)``.

    Parameters
    ----------
    a, t, d : Value
        Output activation, target and activation derivative codes (act format).

    Returns
    -------
    Value of shape ``signed(cfg.error.width)``.
    """
    return requantize((a - t) * d, 2 * cfg.act.frac_bits, cfg.error)


def ce_delta(p, t, cfg: Config):
    """Softmax + cross-entropy output delta ``requantize(p - t, act.frac_bits, error)``.

    Parameters
    ----------
    p, t : Value
        Probability and target codes (act format).

    Returns
    -------
    Value of shape ``signed(cfg.error.width)``.
    """
    return requantize(p - t, cfg.act.frac_bits, cfg.error)


class SoftmaxArith:
    """The softmax's fixed-point steps as expressions, for the units that build it (the
    rows schedule's SoftmaxUnit, the samples schedule's per-lane softmax): the range of
    the sum's leading one, the reciprocal table, and ``p = requantize(e R, rf + k, act)``.

    Raises ValueError if exp(0) from the table is the zero code (every sum would be zero).
    """

    def __init__(self, cfg: Config):
        self.cfg = cfg
        spec = self.exp_spec = table_spec("exp", cfg)
        exp_tab = table_contents(spec)
        e0 = int(lut_eval(spec, exp_tab, 0))
        if e0 <= 0:
            raise ValueError(f"softmax: the exp table gives {e0!r} at 0 in {cfg.act}; every sum would be zero "
                             f"(lut.exp_entries_log2 = {cfg.exp_entries_log2}, "
                             f"lut.exp_range_log2 = {cfg.exp_range_log2})")
        # range of the exact sum S over vectors of 1..n elements: S >= e(0) (the maximum
        # itself), S <= n * max(table); so k = bitlength(S) - 1 lies in [k_lo, k_hi]
        self.k_lo = e0.bit_length() - 1
        self.s_max = cfg.layers[-1] * int(np.max(exp_tab))
        self.k_hi = self.s_max.bit_length() - 1
        self.rtab = [int(v) for v in recip_table(cfg)]
        self.r_width = max(self.rtab).bit_length()

    def leading_one(self, m, total, k, idx):
        """``k`` = the position of ``total``'s leading one, ``idx`` = the reciprocal table's
        index (the recip_entries_log2 bits below it), as comb statements in ``m``."""
        nb, SW = self.cfg.recip_entries_log2, len(Value.cast(total))
        with m.Switch(total):
            for kk in range(self.k_hi, self.k_lo - 1, -1):
                with m.Case("0" * (SW - 1 - kk) + "1" + "-" * kk):
                    i = (total >> (kk - nb)) if kk >= nb else (total << (nb - kk))
                    m.d.comb += [idx.eq(i[:nb]), k.eq(kk)]

    def probability(self, prod, k):
        """``p = requantize(prod, recip_frac_bits + k, act)`` for the k this config's sums
        can have (an expression)."""
        return self.saturate_probability(self.rounded_product(prod, k))

    def rounded_product(self, prod, k):
        """The rounding half of :meth:`probability`: ``prod / 2**(recip_frac_bits + k -
        act.frac_bits)`` rounded to nearest-even, not yet saturated. One variable left
        shift by ``k_hi - k`` (exact, :meth:`aligned_product`) then one constant rounding
        shift (:meth:`round_aligned`): the same value as rounding at ``k`` directly."""
        return self.round_aligned(self.aligned_product(prod, k))

    def aligned_product(self, prod, k):
        """``prod << (k_hi - k)``: every product at the scale of the largest sum."""
        if self.k_hi > self.k_lo:
            return Array(Value.cast(prod) << (self.k_hi - kk) for kk in range(self.k_lo, self.k_hi + 1))[k - self.k_lo]
        return Value.cast(prod)

    def round_aligned(self, aligned):
        """An aligned product rounded to act's fraction bits (not yet saturated)."""
        c = self.cfg
        # (prod >= 0: a zero sign bit makes it signed for the rounding and the saturation)
        return round_shift(Cat(aligned, 0).as_signed(), c.recip_frac_bits + self.k_hi - c.act.frac_bits)

    def saturate_probability(self, rounded):
        """The saturating half of :meth:`probability`."""
        return saturate(rounded, self.cfg.act)


class SoftmaxUnit(wiring.Component):
    """Stable fixed-point softmax of one vector of logits (golden.tables.softmax_codes).

    A vector is ``cfg.layers[-1]`` logits, ``last`` set on its final one. A vector that
    ends early (``last`` on element j < n - 1) is a shorter vector of j + 1 elements; one
    that reaches n elements without ``last`` is closed there.

    Sequential, one vector at a time:

    ========  ==========  ==============================================================
    state     cycles      work
    ========  ==========  ==============================================================
    TAKE      n           buffer the logits, running maximum
    EXP       n + 3       y = max - z, its table index registered; e = exp table(y)
                          registered a cycle later, and again (a block RAM's output goes
                          straight into a register); then e replaces z in the buffer and
                          is added to the exact sum S
    RECIP     2           leading one k of S, reciprocal ROM on the bits below it; R
                          registered twice
    EMIT      n           p = requantize(e * R, recip_frac_bits + k, act); e is fetched
                          from the buffer a cycle ahead (no select before the multiplier)
    ========  ==========  ==============================================================

    Without stalls a vector takes :meth:`cycles_per_vector` = 3n + 5 cycles from the
    cycle its first logit is accepted to the cycle its last probability is taken; the next
    vector's first logit is accepted in the following cycle. ``i.ready`` is high only in
    TAKE; stalls on either side only add cycles.

    Parameters
    ----------
    cfg : Config
    raw_product : bool
        Emit the product ``e * R`` and ``k`` instead of ``p`` (payload ``{"prod", "k",
        "last"}``); :meth:`probability` turns them into ``p``. A user that registers
        them first keeps the multiply and the rounding in different cycles.

    Members
    -------
    i : In(stream.Signature(StructLayout({"z": signed(act.width), "last": 1})))
    o : Out(stream.Signature(StructLayout({"p": signed(act.width), "last": 1})))

    Raises
    ------
    ValueError
        If exp(0) from the table is the zero code (every sum would be zero).
    """

    def __init__(self, cfg: Config, raw_product: bool = False):
        self._cfg = cfg
        self._raw = raw_product
        self.arith = arith = SoftmaxArith(cfg)
        self._k_lo, self._k_hi, self._s_max, self._r_width = arith.k_lo, arith.k_hi, arith.s_max, arith.r_width
        aw = signed(cfg.act.width)
        if raw_product:
            out = {"prod": unsigned(cfg.act.width - 1 + self._r_width), "k": unsigned(self._k_hi.bit_length()),
                   "last": 1}
        else:
            out = {"p": aw, "last": 1}
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"z": aw, "last": 1}))),
            "o": Out(stream.Signature(data.StructLayout(out))),
        })

    def probability(self, prod, k):
        """``p = requantize(prod, recip_frac_bits + k, act)`` (SoftmaxArith.probability)."""
        return self.arith.probability(prod, k)

    def rounded_product(self, prod, k):
        return self.arith.rounded_product(prod, k)

    def aligned_product(self, prod, k):
        return self.arith.aligned_product(prod, k)

    def round_aligned(self, aligned):
        return self.arith.round_aligned(aligned)

    def saturate_probability(self, rounded):
        return self.arith.saturate_probability(rounded)

    @staticmethod
    def cycles_per_vector(n: int) -> int:
        """Cycles per vector of ``n`` logits without stalls (see the class docstring)."""
        return 3 * n + 5

    def elaborate(self, platform):
        c = self._cfg
        m = Module()
        n = c.layers[-1]
        AW = c.act.width
        nb = c.recip_entries_log2
        k_hi = self._k_hi
        SW = self._s_max.bit_length()
        rtab = [int(v) for v in recip_table(c)]

        buf = Array(Signal(signed(AW), name=f"buf{i}") for i in range(n))  # z, then e
        zmax = Signal(signed(AW))
        cnt = Signal(range(max(n, 2)))  # (at least 1 bit: a 0-bit counter lints as [-1:0])
        cnt1 = Signal(range(n + 1), init=1)  # cnt + 1, a register: the element fetched a cycle ahead
        end = Signal(range(max(n, 2)))  # index of the vector's last element
        total = Signal(SW)
        k = Signal(range(k_hi + 1))
        r = Signal(unsigned(max(rtab).bit_length()))
        r_rom = Signal.like(r)
        exp_spec = table_spec("exp", c)
        ex = Signal(range(exp_spec.span_code))  # EXP: the table index of max - z of element wcnt
        ex_valid = Signal()
        z_cur = Signal(signed(AW))  # EXP: the buffer element cnt, fetched a cycle ahead
        ey = Signal(signed(exp_spec.out_fmt.width))  # EXP: the table's value for element ey_cnt
        ey_valid = Signal()
        ey_cnt = Signal.like(cnt)
        ez = Signal.like(ey)  # EXP: ey once more through a register, with its element
        ez_valid = Signal()
        ez_cnt = Signal.like(cnt)
        wcnt = Signal.like(cnt)
        rd_done = Signal()  # EXP: every element's max - z has been formed
        e_cur = Signal(signed(AW))  # EMIT: the buffer element cnt, fetched a cycle ahead

        lead_k, lead_idx = Signal.like(k), Signal(nb)
        self.arith.leading_one(m, total, lead_k, lead_idx)
        m.submodules.exp = exp = LutReader(exp_spec, AW + 1, indexed=True)
        m.submodules.rrom = rrom = Memory(shape=r.shape(), depth=len(rtab), init=rtab)
        r_rd = rrom.read_port(domain="comb")

        with m.FSM():
            with m.State("TAKE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    z = self.i.payload.z
                    m.d.sync += buf[cnt].eq(z)
                    # (one element: it is the max; the comparison would be left unread)
                    with m.If(((cnt == 0) | (z > zmax)) if n > 1 else 1):
                        m.d.sync += zmax.eq(z)
                    with m.If(self.i.payload.last | (cnt == n - 1)):
                        # EXP's first element fetched now (it is z itself in a vector of one)
                        m.d.sync += [end.eq(cnt), cnt.eq(0), cnt1.eq(1), total.eq(0),
                                     z_cur.eq(Mux(cnt == 0, z, buf[0]) if n > 1 else z)]
                        m.next = "EXP"
                    with m.Else():
                        m.d.sync += [cnt.eq(cnt + 1), cnt1.eq(cnt1 + 1)]
            with m.State("EXP"):
                # three stages: the table index of y = max - z >= 0 into a register, the
                # table's value into a register, then the buffer and the sum
                m.d.comb += exp.x.eq(ex)
                m.d.sync += [ey.eq(exp.y), ey_valid.eq(ex_valid), ey_cnt.eq(wcnt),
                             ez.eq(ey), ez_valid.eq(ey_valid), ez_cnt.eq(ey_cnt)]
                with m.If(ez_valid):
                    m.d.sync += [buf[ez_cnt].eq(ez), total.eq(total + ez)]
                with m.If(~rd_done):
                    m.d.sync += [ex.eq(LutReader.index_of(exp_spec, zmax - z_cur)), ex_valid.eq(1), wcnt.eq(cnt),
                                 z_cur.eq(buf[cnt1])]  # the next element, fetched a cycle ahead
                    with m.If(cnt == end):
                        m.d.sync += [cnt.eq(0), cnt1.eq(1), rd_done.eq(1)]
                    with m.Else():
                        m.d.sync += [cnt.eq(cnt + 1), cnt1.eq(cnt1 + 1)]
                with m.Else():
                    m.d.sync += ex_valid.eq(0)
                    with m.If(~ex_valid & ~ey_valid):  # the last element's e is written now
                        m.d.sync += rd_done.eq(0)
                        m.next = "RECIP"
            with m.State("RECIP"):
                # k = position of the leading one; the nb bits below it index the ROM
                m.d.comb += r_rd.addr.eq(lead_idx)
                m.d.sync += [k.eq(lead_k), r_rom.eq(r_rd.data)]
                m.next = "RECIP2"
            with m.State("RECIP2"):
                # R once more through a register: synthesis makes the first one the ROM's
                # read register, and a block RAM's output is slow to reach the multiplier
                m.d.sync += [r.eq(r_rom), e_cur.eq(buf[0])]
                m.next = "EMIT"
            with m.State("EMIT"):
                prod = Signal(unsigned(AW - 1 + len(r)))  # e >= 0 times R
                m.d.comb += prod.eq(e_cur.as_unsigned()[:AW - 1] * r)
                if self._raw:
                    m.d.comb += [self.o.payload.prod.eq(prod), self.o.payload.k.eq(k)]
                else:
                    p = Signal(signed(AW))
                    m.d.comb += [p.eq(self.probability(prod, k)), self.o.payload.p.eq(p)]
                m.d.comb += [self.o.valid.eq(1), self.o.payload.last.eq(cnt == end)]
                with m.If(self.o.ready):
                    with m.If(cnt == end):
                        m.d.sync += [cnt.eq(0), cnt1.eq(1)]
                        m.next = "TAKE"
                    with m.Else():
                        m.d.sync += [cnt.eq(cnt + 1), cnt1.eq(cnt1 + 1), e_cur.eq(buf[cnt1])]
        return m
