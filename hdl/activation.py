"""Activation functions and their derivatives, bit-exact with golden/activations.py.

``ActivationFunction`` and ``ActivationDerivative`` are combinational (ROM read ports in
the comb domain), so the trainer can place them where its pipeline needs them;
Table contents and indexing come from
golden/tables.py: the ROM holds exactly ``table_contents(table_spec(kind, cfg))``.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Shape, Signal, Value, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.config import Config
from golden.tables import TableSpec, table_contents, table_spec

from .arith import requantize, round_shift, saturate

__all__ = ["ActivationFunction", "ActivationDerivative", "LutReader", "ELEMENTWISE"]

ELEMENTWISE = ("relu", "leaky_relu", "linear", "sigmoid", "tanh")


def _check_kind(kind):
    if kind not in ELEMENTWISE:
        raise ValueError(f"activation kind must be one of {', '.join(ELEMENTWISE)}, got {kind!r}")


class LutReader(wiring.Component):
    """Combinational table lookup exactly as golden.tables.lut_eval: offset, clamp, index,
    optional linear interpolation between entries i and i + 1 (two comb read ports).

    Parameters
    ----------
    spec : TableSpec
        The table (golden.tables.table_spec); the ROM holds ``table_contents(spec)``.
    in_width : int
        Width of the signed input (the softmax feeds ``max - z``, one bit wider than act).
    indexed : bool
        The input is already the table index :meth:`index_of` gives (unsigned, ``range(
        spec.span_code)``), e.g. registered by a user that splits the lookup in two cycles.

    Members
    -------
    x : In(signed)   input code (format ``spec.in_fmt``; any signed width)
    y : Out(signed)  table value (format ``spec.out_fmt``)
    """

    def __init__(self, spec: TableSpec, in_width: int, *, indexed: bool = False):
        self._spec = spec
        self._indexed = indexed
        x_shape = Shape.cast(range(spec.span_code)) if indexed else signed(in_width)
        super().__init__({"x": In(x_shape), "y": Out(signed(spec.out_fmt.width))})

    @staticmethod
    def index_of(spec: TableSpec, x):
        """The table index of input code ``x``: offset by the table's first code, clamped
        to the table (an expression)."""
        off = Value.cast(x) - spec.x_lo_code
        return Mux(off < 0, 0, Mux(off > spec.span_code - 1, spec.span_code - 1, off))[:Shape.cast(range(spec.span_code)).width]

    def elaborate(self, platform):
        spec = self._spec
        m = Module()
        tab = [int(v) for v in table_contents(spec)]
        m.submodules.rom = rom = Memory(shape=signed(spec.out_fmt.width), depth=len(tab), init=tab)
        u = Signal(range(spec.span_code))
        m.d.comb += u.eq(self.x if self._indexed else self.index_of(spec, self.x))
        s = spec.shift
        lo = rom.read_port(domain="comb")
        m.d.comb += lo.addr.eq(u >> s)
        if not spec.interpolate or s == 0:
            m.d.comb += self.y.eq(lo.data)
        else:
            hi = rom.read_port(domain="comb")
            m.d.comb += hi.addr.eq((u >> s) + 1)
            frac = u[:s]
            m.d.comb += self.y.eq(saturate(lo.data + round_shift((hi.data - lo.data) * frac, s), spec.out_fmt))
        return m


class _Elementwise(wiring.Component):
    """A combinational act-format code in, act-format code out; ports named by ``_ports``.

    Parameters
    ----------
    cfg : Config
        Formats, leaky_alpha and the sigmoid/tanh table shape (lut.*) come from it.
    kind : str
        One of :data:`ELEMENTWISE`; anything else raises ValueError (softmax is
        :class:`hdl.output.SoftmaxUnit`).
    """

    _ports = ("x", "y")

    def __init__(self, cfg: Config, kind: str):
        _check_kind(kind)
        self._cfg, self._kind = cfg, kind
        i, o = self._ports
        super().__init__({i: In(signed(cfg.act.width)), o: Out(signed(cfg.act.width))})

    @property
    def kind(self):
        return self._kind


class ActivationFunction(_Elementwise):
    """``a = act(z)`` for relu, leaky_relu, linear, sigmoid, tanh (combinational),
    exactly golden.activations.FixedActivations.forward (parameters: ``_Elementwise``).

    Members
    -------
    z : In(signed(act.width))
    a : Out(signed(act.width))
    """

    _ports = ("z", "a")

    def elaborate(self, platform):
        c, kind = self._cfg, self._kind
        m = Module()
        if kind == "linear":
            m.d.comb += self.a.eq(self.z)
        elif kind == "relu":
            m.d.comb += self.a.eq(Mux(self.z > 0, self.z, 0))
        elif kind == "leaky_relu":
            neg = requantize(self.z * c.leaky_alpha_code, 2 * c.act.frac_bits, c.act)
            m.d.comb += self.a.eq(Mux(self.z > 0, self.z, neg))
        else:
            m.submodules.lut = lut = LutReader(table_spec(kind, c), c.act.width)
            m.d.comb += [lut.x.eq(self.z), self.a.eq(lut.y)]
        return m


class ActivationDerivative(_Elementwise):
    """Derivative code from the stored output ``a`` only (combinational): ReLU family from
    the sign, sigmoid' = a(1 - a), tanh' = 1 - a^2, linear' = 1, each requantized to the
    act format; exactly golden.activations.FixedActivations.derivative (parameters:
    ``_Elementwise``).

    Members
    -------
    a : In(signed(act.width))
    d : Out(signed(act.width))
    """

    _ports = ("a", "d")

    def elaborate(self, platform):
        c, kind = self._cfg, self._kind
        m = Module()
        one, f = c.act.one, c.act.frac_bits
        a = self.a
        if kind == "linear":
            m.d.comb += self.d.eq(one)
        elif kind == "relu":
            m.d.comb += self.d.eq(Mux(a > 0, one, 0))
        elif kind == "leaky_relu":
            m.d.comb += self.d.eq(Mux(a > 0, one, c.leaky_alpha_code))
        elif kind == "sigmoid":
            m.d.comb += self.d.eq(requantize(a * (one - a), 2 * f, c.act))
        else:  # tanh
            m.d.comb += self.d.eq(requantize(one * one - a * a, 2 * f, c.act))
        return m
