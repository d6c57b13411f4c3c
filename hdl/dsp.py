"""A registered multiply, generic or as the ECP5's MULT18X18D with its own registers.

``registered_product(m, a, b, out, dsp=...)`` makes ``out`` = ``a * b`` two clock edges
after ``a`` and ``b`` are presented: the operands are registered, multiplied, and the
product is registered. That is the shape of every multiplier on the trainer's critical
paths (the lanes' halves, ``lr x delta``).

Why a primitive at all: yosys maps a ``*`` to a MULT18X18D with no registers inside it and
does not move neighbouring flip-flops into the block, so the multiplier's own delay and
two routes to and from fabric flip-flops sit in one clock period (about 145 MHz at best
at speed grade 6, measured, docs/synthesis.md). With the block's input and output
registers the route into the block and the route out of it each get a cycle of their
own. The cycle behaviour is the same either way; only ``dsp="ecp5"`` differs in how it
is built, so every simulation uses the generic form and the primitive is checked against
it by a behavioural model (tests/hdl/test_dsp.py).
"""
from __future__ import annotations

from amaranth.hdl import ClockSignal, Const, Instance, Module, Signal, signed

__all__ = ["DSP_KINDS", "dsp_for_platform", "registered_product", "pipelined_product", "partial_products"]

DSP_KINDS = ("generic", "ecp5")
_W = 18  # MULT18X18D operand width (both signed here)


def dsp_for_platform(platform) -> str:
    """The multiplier form for an Amaranth platform: the primitive on an ECP5 platform
    (amaranth-boards' ULX3S), generic elsewhere and without one."""
    return "ecp5" if getattr(platform, "family", None) == "ecp5" else "generic"


def _fits(v) -> bool:
    """``v`` fits an 18-bit signed operand: signed values sign-extend to it, unsigned ones
    zero-extend (so they may be at most 17 bits wide)."""
    shape = v.shape()
    return shape.width <= (_W if shape.signed else _W - 1)


def registered_product(m: Module, a, b, out: Signal, *, dsp: str = "generic", name: str = "mul") -> None:
    """``out`` <= ``a * b`` with the operands registered a cycle earlier (latency 2).

    ``out`` must be wide enough for the exact product (checked). ``dsp`` is ``"generic"``
    (flip-flops and a ``*``: any width, any target, every simulator) or ``"ecp5"`` (one
    MULT18X18D with its input and output registers, clocked by the ``sync`` domain, no
    reset: the trainer never relies on these registers' reset value). An operand wider
    than one MULT18X18D takes (more than 18 bits signed, 17 unsigned) keeps the generic
    form on ecp5 too, which yosys spreads over several blocks: the same cycles, only
    slower.
    """
    if dsp not in DSP_KINDS:
        raise ValueError(f"dsp must be one of {', '.join(DSP_KINDS)}, got {dsp!r}")
    exact = len(a) + len(b) + (a.shape().signed != b.shape().signed)
    if len(out) < exact:
        raise ValueError(f"{name}: a {len(out)}-bit product register is narrower than the exact product "
                         f"({exact} bits)")
    if dsp == "generic" or not (_fits(a) and _fits(b)):
        ra = Signal(a.shape(), name=f"{name}_a")
        rb = Signal(b.shape(), name=f"{name}_b")
        m.d.sync += [ra.eq(a), rb.eq(b), out.eq(ra * rb)]
        return
    # both operands as 18-bit signed values (assignment sign- or zero-extends them)
    sa = Signal(signed(_W), name=f"{name}_a")
    sb = Signal(signed(_W), name=f"{name}_b")
    m.d.comb += [sa.eq(a), sb.eq(b)]
    p = Signal(2 * _W, name=f"{name}_p")
    ports = {}
    for i in range(_W):
        ports[f"i_A{i}"] = sa[i]
        ports[f"i_B{i}"] = sb[i]
        ports[f"i_C{i}"] = Const(0, 1)
    for i in range(2 * _W):
        ports[f"o_P{i}"] = p[i]
    for i in range(4):
        ports[f"i_CLK{i}"] = ClockSignal("sync") if i == 0 else Const(0, 1)
        ports[f"i_CE{i}"] = Const(1, 1) if i == 0 else Const(0, 1)
        ports[f"i_RST{i}"] = Const(0, 1)
    m.submodules[name] = Instance(
        "MULT18X18D",
        p_REG_INPUTA_CLK="CLK0", p_REG_INPUTA_CE="CE0", p_REG_INPUTA_RST="RST0",
        p_REG_INPUTB_CLK="CLK0", p_REG_INPUTB_CE="CE0", p_REG_INPUTB_RST="RST0",
        p_REG_INPUTC_CLK="NONE",
        p_REG_PIPELINE_CLK="NONE",
        p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE0", p_REG_OUTPUT_RST="RST0",
        p_GSR="DISABLED", p_RESETMODE="SYNC", p_SOURCEB_MODE="B_SHIFT", p_MULT_BYPASS="DISABLED",
        p_CAS_MATCH_REG="FALSE",
        i_SIGNEDA=Const(1, 1), i_SIGNEDB=Const(1, 1), i_SOURCEA=Const(0, 1), i_SOURCEB=Const(0, 1),
        **ports,
    )
    m.d.comb += out.eq(p.as_signed())


def _chunks(v):
    """``v`` as (piece, shift) parts that each fit a MULT18X18D operand: 17-bit unsigned
    pieces from the bottom, the top piece with ``v``'s signedness."""
    if _fits(v):
        return [(v, 0)]
    top_w = _W if v.shape().signed else _W - 1
    parts, lo = [], 0
    while len(v) - lo > top_w:
        parts.append((v[lo:lo + _W - 1], lo))
        lo += _W - 1
    top = v[lo:]
    parts.append((top.as_signed() if v.shape().signed else top, lo))
    return parts


def partial_products(a_shape, b_shape) -> int:
    """MULT18X18D blocks :func:`pipelined_product` uses for operands of these shapes."""
    return len(_chunks(Signal(a_shape))) * len(_chunks(Signal(b_shape)))


def pipelined_product(m: Module, a, b, *, dsp: str = "generic", name: str = "mul"):
    """``a * b`` of any widths as MULT18X18D-sized partial products, each a
    :func:`registered_product`, summed pairwise in a tree with a register after every
    level, so no cycle holds more than one multiplier or one add. Returns ``(product,
    latency)``: the exact product, ``latency`` cycles after ``a`` and ``b``."""
    exact = len(a) + len(b) + (a.shape().signed != b.shape().signed)
    shape = signed(exact) if (a.shape().signed or b.shape().signed) else signed(exact + 1)
    terms = []
    for i, (pa, sa) in enumerate(_chunks(a)):
        for j, (pb, sb) in enumerate(_chunks(b)):
            pw = len(pa) + len(pb) + 1
            t = Signal(signed(pw), name=f"{name}_pp{i}{j}")
            registered_product(m, pa, pb, t, dsp=dsp, name=f"{name}_pp{i}{j}")
            terms.append((t, sa + sb))
    latency = 2
    level = 0
    while len(terms) > 1:
        nxt = []
        for k in range(0, len(terms), 2):
            if k + 1 == len(terms):
                (t, sh), = terms[k:k + 1]
                r = Signal(shape, name=f"{name}_s{level}_{k}")
                m.d.sync += r.eq(t << sh)
                nxt.append((r, 0))
                continue
            (t1, s1), (t2, s2) = terms[k], terms[k + 1]
            r = Signal(shape, name=f"{name}_s{level}_{k}")
            m.d.sync += r.eq((t1 << s1) + (t2 << s2))
            nxt.append((r, 0))
        terms, latency, level = nxt, latency + 1, level + 1
    t, sh = terms[0]
    if sh:
        out = Signal(shape, name=f"{name}_out")
        m.d.comb += out.eq(t << sh)
        t = out
    return t, latency
