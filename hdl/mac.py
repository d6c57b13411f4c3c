"""MAC datapath: a P-lane multiply-accumulate array and a P-product adder tree.

Both accumulate exact products in a wide accumulator and requantize once on emit with
hdl.arith.requantize (= golden.fixed.requantize: nearest-even or stochastic rounding, then
saturation). Stochastic rounding uses one 32-bit Galois LFSR per accumulator exactly as
golden.lfsr: each stochastic emit first advances the accumulator's LFSR one step, then
uses the low ``shift`` bits of the new state as the addend; lane ``p`` of a
:class:`MacArray` starts from ``golden.lfsr.lane_seed(cfg.sr_seed, p)``, so the golden
check is, per lane, ``Lfsr(lane_seed(cfg.sr_seed, p)).take(number of stochastic emits)``.
Nearest-even emits do not advance the LFSRs.

Input beats (both units)
------------------------
``op.clear``   start a new sum with this beat's product(s) (``acc = product``) instead of
               adding to the running sum (``acc += product``);
``op.emit``    after this beat's product has been added, send the requantized
               accumulator(s) on ``o`` (the sum is not cleared: a later beat with
               ``op.clear`` starts the next one, a beat without continues it);
``fmt``        index into ``out_formats``: the output format of this emit;
``stochastic`` 1 = stochastic rounding for this emit, 0 = nearest-even.
A beat with neither flag is a plain accumulate; clear + emit is a one-term sum. To clear
without a product, send zero operands with ``op.clear``.

Accumulator width (cannot overflow)
-----------------------------------
An accumulator holds at most ``max_terms`` products since its last clear; every product
lies in ``[-m, m]`` with ``m = 2**(wa-1) * 2**(wb-1)`` (the product of the two most
negative codes), so the width is ``bits_for_signed(-max_terms*m, max_terms*m)`` -- for the
defaults exactly ``Config.forward_acc_width()`` (MacArray: weight x act, ``max(n_in)+1``
terms) and at least ``Config.backward_acc_width()`` (AdderTree: weight x error,
``ceil(max(n_out)/P)`` beats of ``P`` products). Feeding more terms than that between
clears sets the sticky ``overrun`` flag (the sum may then be wrong; it never is otherwise).

Timing and handshake
--------------------
A stall-all pipeline: every stage advances when the output register is empty or being
read (``advance = ~o.valid | o.ready``, which is also ``i.ready``), so the units take one
beat per cycle under no backpressure and never lose or duplicate one under any.
MacArray: input -> products register -> accumulator -> output register (an emit appears
on ``o`` 3 cycles after its beat is accepted). AdderTree adds one register after the
tree (4 cycles).
"""
from __future__ import annotations

import math

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.config import Config
from golden.fixed import QFormat, bits_for_signed
from golden.lfsr import LFSR_MASK, lane_seed

from .arith import requantize

__all__ = ["MacArray", "AdderTree", "OP_LAYOUT", "acc_width_for", "lfsr_next"]

OP_LAYOUT = data.StructLayout({"clear": 1, "emit": 1})


def acc_width_for(a_fmt: QFormat, b_fmt: QFormat, terms: int) -> int:
    """Width of an accumulator that holds any sum of ``terms`` products a*b exactly."""
    m = (-a_fmt.min_code) * (-b_fmt.min_code)
    return bits_for_signed(-terms * m, terms * m)


def lfsr_next(state):
    """One step of golden.lfsr's right-shifting Galois LFSR (mask 0x80200003), as a Value."""
    return (state >> 1) ^ Mux(state[0], Const(LFSR_MASK, 32), Const(0, 32))


class _Common(wiring.Component):
    """Shared constructor checks, the emit/requantize stage and the overrun counter."""

    def _setup(self, cfg, a_fmt, b_fmt, out_formats, max_terms, lanes):
        if not isinstance(cfg, Config):
            raise TypeError(f"cfg must be a golden.config.Config, got {cfg!r}")
        for name, f in (("a_fmt", a_fmt), ("b_fmt", b_fmt)):
            if not isinstance(f, QFormat):
                raise TypeError(f"{name} must be a QFormat, got {f!r}")
        out_formats = tuple(out_formats)
        if not out_formats or not all(isinstance(f, QFormat) for f in out_formats):
            raise ValueError(f"out_formats must be a non-empty sequence of QFormat, got {out_formats!r}")
        if not (isinstance(max_terms, int) and max_terms >= 1):
            raise ValueError(f"max_terms must be an integer >= 1, got {max_terms!r}")
        self._cfg = cfg
        self._a_fmt, self._b_fmt = a_fmt, b_fmt
        self._out_formats = out_formats
        self._lanes = lanes
        self._acc_frac = a_fmt.frac_bits + b_fmt.frac_bits
        for f in out_formats:
            if self._acc_frac - f.frac_bits > 32:
                raise ValueError(f"output format {f} needs a {self._acc_frac - f.frac_bits}-bit rounding shift; "
                                 f"the stochastic-rounding LFSR supplies at most 32 bits")
        self._out_width = max(f.width for f in out_formats)
        self._fmt_bits = max(1, (len(out_formats) - 1).bit_length())

    # read-only properties
    cfg = property(lambda self: self._cfg)
    lanes = property(lambda self: self._lanes)
    a_fmt = property(lambda self: self._a_fmt)
    b_fmt = property(lambda self: self._b_fmt)
    out_formats = property(lambda self: self._out_formats)
    out_width = property(lambda self: self._out_width)
    acc_frac = property(lambda self: self._acc_frac, doc="Fraction bits of the accumulator (a.frac + b.frac).")
    acc_width = property(lambda self: self._acc_width)
    max_terms = property(lambda self: self._max_terms)

    def _requant(self, acc, fmt_sel, sto, rand):
        """Requantized ``acc`` for the selected format and rounding mode, out_width wide."""
        res = None
        for k, f in enumerate(self._out_formats):
            ne = requantize(acc, self._acc_frac, f, "nearest_even")
            st = requantize(acc, self._acc_frac, f, "stochastic", rand)
            v = Mux(sto, st, ne)
            res = v if res is None else Mux(fmt_sel == k, v, res)
        return res

    def _overrun_counter(self, m, advance, valid, clear, beats_limit):
        """Sticky ``overrun`` when more than ``beats_limit`` beats accumulate without a clear."""
        count = Signal(range(beats_limit + 2))
        with m.If(advance & valid):
            with m.If(clear):
                m.d.sync += count.eq(1)
            with m.Elif(count <= beats_limit):
                m.d.sync += count.eq(count + 1)
            with m.If(~clear & (count >= beats_limit)):
                m.d.sync += self.overrun.eq(1)


def _in_layout(a_fmt, b_fmt, lanes, b_per_lane, fmt_bits):
    b_shape = data.ArrayLayout(signed(b_fmt.width), lanes) if b_per_lane else signed(b_fmt.width)
    return data.StructLayout({
        "a": data.ArrayLayout(signed(a_fmt.width), lanes),
        "b": b_shape,
        "op": OP_LAYOUT,
        "fmt": unsigned(fmt_bits),
        "stochastic": 1,
    })


class MacArray(_Common):
    """P lanes of multiply-accumulate with a broadcast operand (the forward pass).

    Lane ``p`` computes ``acc[p] (+)= a[p] * b``: ``a`` carries one code per lane (weights
    W[j0+p, k] of the P rows in flight), ``b`` is a single code broadcast to every lane
    (the activation a[k] they all multiply). On emit, ``o`` carries the P requantized
    accumulators.

    Parameters
    ----------
    cfg : Config
        Supplies ``lanes`` (P), ``sr_seed`` (LFSR seeds) and the default formats.
    a_fmt : QFormat, optional
        Format of the per-lane operand (default ``cfg.weight``).
    b_fmt : QFormat, optional
        Format of the broadcast operand (default ``cfg.act``).
    out_formats : sequence of QFormat, optional
        Output formats selectable per emit through ``fmt`` (default ``(cfg.act,
        cfg.error)``); the accumulator has ``a_fmt.frac_bits + b_fmt.frac_bits`` fraction
        bits.
    max_terms : int, optional
        Products per sum the accumulator must hold exactly (default
        ``max(cfg.layers[:-1]) + 1``: the longest forward dot product plus the bias).

    Members
    -------
    i : In(stream.Signature(StructLayout({"a": ArrayLayout(signed(wa), P), "b": signed(wb),
        "op": OP_LAYOUT, "fmt": unsigned(k), "stochastic": 1})))
    o : Out(stream.Signature(ArrayLayout(signed(out_width), P)))
        Lane codes of the selected format, sign-extended to ``out_width`` (the widest
        output format).
    overrun : Out(1)
        Sticky: a sum had more than ``max_terms`` terms.

    Raises
    ------
    TypeError, ValueError
        For a non-Config ``cfg``, non-QFormat formats, bad ``max_terms``, or an output
        format needing a rounding shift over 32 bits.
    """

    def __init__(self, cfg: Config, *, a_fmt: QFormat | None = None, b_fmt: QFormat | None = None,
                 out_formats=None, max_terms: int | None = None):
        if not isinstance(cfg, Config):
            raise TypeError(f"cfg must be a golden.config.Config, got {cfg!r}")
        a_fmt = cfg.weight if a_fmt is None else a_fmt
        b_fmt = cfg.act if b_fmt is None else b_fmt
        out_formats = (cfg.act, cfg.error) if out_formats is None else out_formats
        max_terms = max(cfg.layers[:-1]) + 1 if max_terms is None else max_terms
        self._setup(cfg, a_fmt, b_fmt, out_formats, max_terms, cfg.lanes)
        self._max_terms = max_terms
        self._acc_width = acc_width_for(a_fmt, b_fmt, max_terms)
        self.in_layout = _in_layout(a_fmt, b_fmt, self._lanes, False, self._fmt_bits)
        self.out_layout = data.ArrayLayout(signed(self._out_width), self._lanes)
        super().__init__({
            "i": In(stream.Signature(self.in_layout)),
            "o": Out(stream.Signature(self.out_layout)),
            "overrun": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        P = self._lanes
        i, o = self.i, self.o
        m.d.comb += i.ready.eq(~o.valid | o.ready)
        advance = i.ready  # every stage moves when the output register is free

        # stage 1: products
        s1_valid = Signal()
        s1_prod = [Signal(signed(self._a_fmt.width + self._b_fmt.width), name=f"s1_prod{p}") for p in range(P)]
        s1_op = Signal(OP_LAYOUT)
        s1_fmt = Signal(self._fmt_bits)
        s1_sto = Signal()
        with m.If(advance):
            m.d.sync += [s1_valid.eq(i.valid), s1_op.eq(i.payload.op), s1_fmt.eq(i.payload.fmt),
                         s1_sto.eq(i.payload.stochastic)]
            m.d.sync += [s1_prod[p].eq(i.payload.a[p] * i.payload.b) for p in range(P)]

        # stage 2: accumulators
        s2_valid = Signal()
        s2_emit = Signal()
        s2_fmt = Signal(self._fmt_bits)
        s2_sto = Signal()
        acc = [Signal(signed(self._acc_width), name=f"acc{p}") for p in range(P)]
        with m.If(advance):
            m.d.sync += [s2_valid.eq(s1_valid), s2_emit.eq(s1_valid & s1_op.emit), s2_fmt.eq(s1_fmt),
                         s2_sto.eq(s1_sto)]
            with m.If(s1_valid):
                m.d.sync += [acc[p].eq(Mux(s1_op.clear, 0, acc[p]) + s1_prod[p]) for p in range(P)]
        self._overrun_counter(m, advance, s1_valid, s1_op.clear, self._max_terms)

        # stage 3: requantize into the output register; LFSRs advance on stochastic emits
        for p in range(P):
            state = Signal(32, init=lane_seed(self._cfg.sr_seed, p), name=f"lfsr{p}")
            nxt = Signal(32, name=f"lfsr{p}_next")
            m.d.comb += nxt.eq(lfsr_next(state))
            with m.If(advance & s2_emit):
                m.d.sync += o.payload[p].eq(self._requant(acc[p], s2_fmt, s2_sto, nxt))
                with m.If(s2_sto):
                    m.d.sync += state.eq(nxt)
        with m.If(advance):
            m.d.sync += o.valid.eq(s2_emit)
        return m


class AdderTree(_Common):
    """Sums the P lane products of each beat into one accumulator (the backward pass).

    Each beat adds ``sum_p a[p] * b[p]`` (W[j0+p, k] * delta[j0+p] over the P rows of a
    block, which sit in different banks) to one exact accumulator; on emit ``o`` carries
    the requantized sum. Unused lanes take zero operands.

    Parameters
    ----------
    cfg : Config
        Supplies ``lanes`` (P), ``sr_seed`` and the default formats.
    a_fmt : QFormat, optional
        Format of operand ``a`` (default ``cfg.weight``).
    b_fmt : QFormat, optional
        Format of operand ``b`` (default ``cfg.error``).
    out_formats : sequence of QFormat, optional
        Output formats selectable per emit (default ``(cfg.error,)``).
    max_terms : int, optional
        Products per sum to hold exactly (default ``max(cfg.layers[1:])``); the
        accumulator is sized for ``ceil(max_terms / P)`` beats of P products each, so it
        also holds any values in the padding lanes.
    lfsr_lane : int, optional
        The LFSR starts from ``lane_seed(cfg.sr_seed, lfsr_lane)`` (default 0).

    Members
    -------
    i : In(stream.Signature(StructLayout({"a": ArrayLayout(signed(wa), P),
        "b": ArrayLayout(signed(wb), P), "op": OP_LAYOUT, "fmt": unsigned(k),
        "stochastic": 1})))
    o : Out(stream.Signature(signed(out_width)))
    overrun : Out(1)
        Sticky: a sum had more than ``ceil(max_terms / P)`` beats.

    Raises
    ------
    TypeError, ValueError
        As :class:`MacArray`, and for a ``lfsr_lane`` outside ``[0, 2**32)``.
    """

    def __init__(self, cfg: Config, *, a_fmt: QFormat | None = None, b_fmt: QFormat | None = None,
                 out_formats=None, max_terms: int | None = None, lfsr_lane: int = 0):
        if not isinstance(cfg, Config):
            raise TypeError(f"cfg must be a golden.config.Config, got {cfg!r}")
        a_fmt = cfg.weight if a_fmt is None else a_fmt
        b_fmt = cfg.error if b_fmt is None else b_fmt
        out_formats = (cfg.error,) if out_formats is None else out_formats
        max_terms = max(cfg.layers[1:]) if max_terms is None else max_terms
        self._setup(cfg, a_fmt, b_fmt, out_formats, max_terms, cfg.lanes)
        if not (isinstance(lfsr_lane, int) and 0 <= lfsr_lane < 2**32):
            raise ValueError(f"lfsr_lane must be an integer in [0, 2**32), got {lfsr_lane!r}")
        self._lfsr_lane = lfsr_lane
        self._max_beats = math.ceil(max_terms / cfg.lanes)
        self._max_terms = max_terms
        self._acc_width = acc_width_for(a_fmt, b_fmt, self._max_beats * cfg.lanes)
        self._tree_width = acc_width_for(a_fmt, b_fmt, cfg.lanes)
        self.in_layout = _in_layout(a_fmt, b_fmt, self._lanes, True, self._fmt_bits)
        self.out_layout = signed(self._out_width)
        super().__init__({
            "i": In(stream.Signature(self.in_layout)),
            "o": Out(stream.Signature(self.out_layout)),
            "overrun": Out(1),
        })

    max_beats = property(lambda self: self._max_beats, doc="Beats per sum the accumulator holds.")
    lfsr_lane = property(lambda self: self._lfsr_lane)

    def elaborate(self, platform):
        m = Module()
        P = self._lanes
        i, o = self.i, self.o
        m.d.comb += i.ready.eq(~o.valid | o.ready)
        advance = i.ready  # every stage moves when the output register is free

        # stage 1: products
        s1_valid = Signal()
        s1_prod = [Signal(signed(self._a_fmt.width + self._b_fmt.width), name=f"s1_prod{p}") for p in range(P)]
        s1_op = Signal(OP_LAYOUT)
        s1_fmt = Signal(self._fmt_bits)
        s1_sto = Signal()
        with m.If(advance):
            m.d.sync += [s1_valid.eq(i.valid), s1_op.eq(i.payload.op), s1_fmt.eq(i.payload.fmt),
                         s1_sto.eq(i.payload.stochastic)]
            m.d.sync += [s1_prod[p].eq(i.payload.a[p] * i.payload.b[p]) for p in range(P)]

        # stage 2: balanced adder tree (exact: every node is wide enough for its sum)
        level = list(s1_prod)
        while len(level) > 1:
            level = [level[k] + level[k + 1] if k + 1 < len(level) else level[k] for k in range(0, len(level), 2)]
        s2_valid = Signal()
        s2_sum = Signal(signed(self._tree_width))
        s2_op = Signal(OP_LAYOUT)
        s2_fmt = Signal(self._fmt_bits)
        s2_sto = Signal()
        with m.If(advance):
            m.d.sync += [s2_valid.eq(s1_valid), s2_sum.eq(level[0]), s2_op.eq(s1_op), s2_fmt.eq(s1_fmt),
                         s2_sto.eq(s1_sto)]

        # stage 3: accumulator
        s3_emit = Signal()
        s3_fmt = Signal(self._fmt_bits)
        s3_sto = Signal()
        acc = Signal(signed(self._acc_width))
        with m.If(advance):
            m.d.sync += [s3_emit.eq(s2_valid & s2_op.emit), s3_fmt.eq(s2_fmt), s3_sto.eq(s2_sto)]
            with m.If(s2_valid):
                m.d.sync += acc.eq(Mux(s2_op.clear, 0, acc) + s2_sum)
        self._overrun_counter(m, advance, s2_valid, s2_op.clear, self._max_beats)

        # stage 4: requantize into the output register
        state = Signal(32, init=lane_seed(self._cfg.sr_seed, self._lfsr_lane))
        nxt = Signal(32)
        m.d.comb += nxt.eq(lfsr_next(state))
        with m.If(advance & s3_emit):
            m.d.sync += o.payload.eq(self._requant(acc, s3_fmt, s3_sto, nxt))
            with m.If(s3_sto):
                m.d.sync += state.eq(nxt)
        with m.If(advance):
            m.d.sync += o.valid.eq(s3_emit)
        return m
