"""Output-layer units: stable softmax, and the output deltas of MSE and softmax + cross-entropy.

Bit-exact with golden: ``SoftmaxUnit`` = golden.tables.softmax_codes; ``mse_delta`` and
``ce_delta`` = golden.fixed_model.FixedMLP.output_delta.
"""
from __future__ import annotations

from amaranth.hdl import Array, Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.config import Config
from golden.tables import recip_table, table_spec

from .activation import LutReader
from .arith import requantize

__all__ = ["mse_delta", "ce_delta", "SoftmaxUnit"]


def mse_delta(a, t, d, cfg: Config):
    """(a - t) * sigma'(a), requantized to the error format."""
    return requantize((a - t) * d, 2 * cfg.act.frac_bits, cfg.error)


def ce_delta(p, t, cfg: Config):
    """Softmax + cross-entropy: p - t, requantized to the error format."""
    return requantize(p - t, cfg.act.frac_bits, cfg.error)


class SoftmaxUnit(wiring.Component):
    """Stable fixed-point softmax of one vector of ``cfg.layers[-1]`` logits.

    Sequential: takes the logits (``last`` on the final one) while tracking the maximum,
    then one cycle per element for exp(-(max - z)) and the exact sum, one cycle for the
    leading-one position k and the reciprocal ROM, and one cycle per output
    p = requantize(e * R, recip_frac_bits + k). About 3n + 2 cycles per vector.

    Members
    -------
    i : In(stream.Signature(StructLayout({"z": signed(act.width), "last": 1})))
    o : Out(stream.Signature(StructLayout({"p": signed(act.width), "last": 1})))
    """

    def __init__(self, cfg: Config):
        self._cfg = cfg
        aw = signed(cfg.act.width)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"z": aw, "last": 1}))),
            "o": Out(stream.Signature(data.StructLayout({"p": aw, "last": 1}))),
        })

    def elaborate(self, platform):
        c = self._cfg
        m = Module()
        n = c.layers[-1]
        AW = c.act.width
        spec = table_spec("exp", c)
        SW = (n * (1 << AW)).bit_length()  # the exact sum of n exp codes fits
        nb, fr = c.recip_entries_log2, c.recip_frac_bits
        rtab = [int(v) for v in recip_table(c)]

        zs = Array(Signal(signed(AW), name=f"z{i}") for i in range(n))
        es = Array(Signal(unsigned(AW), name=f"e{i}") for i in range(n))
        zmax = Signal(signed(AW))
        cnt = Signal(range(n + 1))
        total = Signal(SW)
        k = Signal(range(SW + 1))
        r = Signal(unsigned(fr + 1))

        m.submodules.exp = exp = LutReader(spec, AW + 1)
        m.submodules.rrom = rrom = Memory(shape=unsigned(fr + 1), depth=len(rtab), init=rtab)
        r_rd = rrom.read_port(domain="comb")

        with m.FSM():
            with m.State("TAKE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    z = self.i.payload.z
                    m.d.sync += zs[cnt].eq(z)
                    with m.If((cnt == 0) | (z > zmax)):
                        m.d.sync += zmax.eq(z)
                    with m.If(self.i.payload.last | (cnt == n - 1)):
                        m.d.sync += [cnt.eq(0), total.eq(0)]
                        m.next = "EXP"
                    with m.Else():
                        m.d.sync += cnt.eq(cnt + 1)
            with m.State("EXP"):
                m.d.comb += exp.x.eq(zmax - zs[cnt])
                m.d.sync += [es[cnt].eq(exp.y), total.eq(total + exp.y)]
                with m.If(cnt == n - 1):
                    m.d.sync += cnt.eq(0)
                    m.next = "RECIP"
                with m.Else():
                    m.d.sync += cnt.eq(cnt + 1)
            with m.State("RECIP"):
                # k = position of the leading one; the nb bits below it index the ROM
                with m.Switch(total):
                    for kk in range(SW - 1, -1, -1):
                        with m.Case(_pattern(SW, kk)):
                            m.d.comb += r_rd.addr.eq(((total >> (kk - nb)) if kk >= nb else (total << (nb - kk)))
                                                     [:nb])
                            m.d.sync += k.eq(kk)
                m.d.sync += r.eq(r_rd.data)
                m.next = "EMIT"
            with m.State("EMIT"):
                prod = Signal(unsigned(AW + fr + 1))
                m.d.comb += prod.eq(es[cnt] * r)
                p = Signal(signed(AW))
                with m.Switch(k):
                    for kk in range(SW):
                        with m.Case(kk):
                            m.d.comb += p.eq(requantize(prod, fr + kk, c.act))
                m.d.comb += [self.o.valid.eq(1), self.o.payload.p.eq(p), self.o.payload.last.eq(cnt == n - 1)]
                with m.If(self.o.ready):
                    with m.If(cnt == n - 1):
                        m.d.sync += cnt.eq(0)
                        m.next = "TAKE"
                    with m.Else():
                        m.d.sync += cnt.eq(cnt + 1)
        return m


def _pattern(width: int, k: int) -> str:
    """Case pattern matching values whose leading one is bit k (MSB first, '-' = don't care)."""
    return "0" * (width - 1 - k) + "1" + "-" * k
