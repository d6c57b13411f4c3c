"""The optimizers' per-parameter arithmetic, as register pipelines (docs/arithmetic.md §8, §10).

Each core takes one parameter's exact batch sum ``G``, the parameter ``w``, its state and
its LFSR draw, all registered (the update engine's stage S), and after ``depth(cfg)``
registers gives the rounded step, the parameter as it came in, and the new state. The
engine subtracts and saturates (``saturating_sub``) and writes. Cores hold no state of
their own: every value moves one stage per cycle, so the engine delays its control bits
by the same depth. Every multiply is MULT18X18D-sized partial products with registers
around them (hdl/dsp.py: pipelined_product), and no stage holds more than one wide add or
one rounding, so the cores keep the trainer's clock.
"""
from __future__ import annotations

import functools

from amaranth.hdl import Cat, Const, Fragment, Mux, Signal, signed, unsigned
from amaranth.lib.memory import Memory

from golden.config import ADAM_ALPHA_WIDTH, OPT_FRAC_BITS, Config
from golden.tables import rsqrt_table

from ..arith import fmt_shape, requantize, round_shift, saturate
from ..dsp import pipelined_product
from .adam_scalars import E2_SHAPE, R2_WIDTH

__all__ = ["core_depth", "build_core", "state_shapes", "step_shift"]


def state_shapes(cfg: Config) -> tuple:
    """Shapes of the per-parameter state words (s1, s2); None where unused."""
    if cfg.optimizer == "momentum":
        return fmt_shape(cfg.velocity), None
    if cfg.optimizer == "adam":
        return fmt_shape(cfg.adam_m), fmt_shape(cfg.adam_v)
    return None, None


def step_shift(cfg: Config) -> int:
    """The final step's right shift: the LFSR bits a stochastic rounding uses."""
    return {"sgd": cfg.update_shift, "momentum": cfg.velocity_step_shift, "adam": cfg.adam_step_shift}[cfg.optimizer]


@functools.lru_cache(maxsize=None)
def core_depth(cfg: Config) -> int:
    """Registers from stage S to the rounded step: the core built once to count them (its
    multipliers' latencies depend on the widths, hdl/dsp.py: pipelined_product)."""
    from amaranth.hdl import Module
    m, W = Module(), cfg.weight.width
    s1, s2 = state_shapes(cfg)
    sc = {"alpha": Signal(unsigned(ADAM_ALPHA_WIDTH - 1)), "r2": Signal(R2_WIDTH), "e2": Signal(E2_SHAPE)}
    depth = build_core(m, cfg, "probe", Signal(signed(64)), Signal(signed(W)), Signal(s1) if s1 else None,
                       Signal(s2) if s2 else None, Signal(32), sc, count_only=True)
    Fragment.get(m, None)  # (a probe: elaborated here, so nothing warns that it was never used)
    return depth


class _Pipe:
    """Named values moving one register per stage (``reg``), and multiplies that run beside
    them (``mul``: its product joins the values in the stage it is ready)."""

    def __init__(self, m, prefix, dsp):
        self.m, self.prefix, self.dsp, self.stage = m, prefix, dsp, 0
        self._pending = []  # (stage ready, name, product)

    def reg(self, values: dict) -> dict:
        self.stage += 1
        out = {}
        for k, v in values.items():
            if v is None:  # (no draw with nearest-even rounding)
                out[k] = None
                continue
            r = Signal.like(v, name=f"{self.prefix}_{k}_{self.stage}") if isinstance(v, Signal) else \
                Signal(v.shape(), name=f"{self.prefix}_{k}_{self.stage}")
            self.m.d.sync += r.eq(v)
            out[k] = r
        for ready, k, prod in self._pending:
            if ready == self.stage:
                out[k] = prod
        self._pending = [x for x in self._pending if x[0] > self.stage]
        return out

    def mul(self, name, a, b):
        """Start ``a * b`` (values of this stage); ``name`` joins the values when ready."""
        prod, latency = pipelined_product(self.m, a, b, dsp=self.dsp, name=f"{self.prefix}_{name}")
        self._pending.append((self.stage + latency, name, prod))

    def wait(self, values: dict, name) -> dict:
        """Carry ``values`` until the product ``name`` is ready."""
        while name not in values:
            values = self.reg(values)
        return values


def build_core(m, cfg: Config, prefix: str, G, w, s1, s2, rand, adam=None, *, dsp="generic", count_only=False):
    """The core for ``cfg.optimizer``; returns ``(step, w, s1_new, s2_new)`` after
    core_depth(cfg) registers. ``adam``: the update's scalars (``alpha``, ``r2``, ``e2``)."""
    pipe = _Pipe(m, prefix, dsp)
    if cfg.optimizer == "sgd":
        v = pipe.reg({"step": round_shift(G, cfg.update_shift, cfg.rounding, rand), "w": w})
        out = v["step"], v["w"], None, None
    elif cfg.optimizer == "momentum":
        out = _momentum(pipe, cfg, G, w, s1, rand)
    else:
        out = _adam(pipe, m, cfg, prefix, G, w, s1, s2, rand, adam)
    return pipe.stage if count_only else out


def _keep(d, *names):
    return {k: d[k] for k in names}


def _momentum(pipe, cfg, G, w, u, rand):
    fu, U, fb = cfg.velocity, cfg.update_frac_bits, OPT_FRAC_BITS
    x = max(fb + fu.frac_bits, U)
    pipe.mul("prod", u, Const(cfg.momentum_code, unsigned(fb)))
    v = pipe.wait({"G": G, "w": w, "rand": rand}, "prod")
    v = pipe.reg({"sum": (v["prod"] << (x - fb - fu.frac_bits)) + (v["G"] << (x - U)), **_keep(v, "w", "rand")})
    v = pipe.reg({"u": round_shift(v["sum"], x - fu.frac_bits), **_keep(v, "w", "rand")})
    v = pipe.reg({"u": saturate(v["u"], fu), **_keep(v, "w", "rand")})  # (rounding and clamp apart: wide)
    v = pipe.reg({"step": round_shift(v["u"], cfg.velocity_step_shift, cfg.rounding, v["rand"]),
                  **_keep(v, "u", "w")})
    return v["step"], v["w"], v["u"], None


def _bit_length(m, x, width, name):
    """bit_length of a non-negative value: a priority encoder."""
    n = Signal(range(width + 1), name=name)
    for b in range(width):  # later statements win: the highest set bit
        with m.If(x[b]):
            m.d.comb += n.eq(b + 1)
    return n


def _adam(pipe, m, cfg, prefix, G, w, mom, v2, rand, sc):
    """docs/arithmetic.md §10.2, one operation (a multiply, an add, a rounding) per stage."""
    fm, fv, fb, M = cfg.adam_m, cfg.adam_v, OPT_FRAC_BITS, cfg.rsqrt_entries_log2
    rf = cfg.recip_frac_bits
    e_lo, e_hi = cfg.adam_exponents
    c1, c2 = Const(cfg.adam_c1, unsigned(fb)), Const(cfg.adam_c2, unsigned(fb))
    c1, c2 = c1[:max(1, cfg.adam_c1.bit_length())], c2[:max(1, cfg.adam_c2.bit_length())]
    rest = ("v", "w", "rand")
    # g = requantize(G, U, adam_m); g^2 starts
    v = pipe.reg({"g": round_shift(G, cfg.update_frac_bits - fm.frac_bits), "m": mom, "v": v2, "w": w, "rand": rand})
    v = pipe.reg({"g": saturate(v["g"], fm), **_keep(v, "m", *rest)})  # (each wide rounding, then its clamp)
    pipe.mul("gsq", v["g"], v["g"])
    # m' = requantize(m 2^20 + c1 (g - m))
    v = pipe.reg({"dm": v["g"] - v["m"], **_keep(v, "m", *rest)})
    pipe.mul("mprod", v["dm"], c1)
    v = pipe.wait(_keep(v, "m", *rest), "mprod")
    v = pipe.wait(v, "gsq")
    v = pipe.reg({"msum": (v["m"] << fb) + v["mprod"], "sq": requantize(v["gsq"], 2 * fm.frac_bits, fv),
                  **_keep(v, *rest)})
    # v' = requantize(v 2^20 + c2 (sq - v))
    v = pipe.reg({"m": round_shift(v["msum"], fb), **_keep(v, "sq", *rest)})
    v = pipe.reg({"m": saturate(v["m"], fm), "dv": v["sq"] - v["v"], **_keep(v, *rest)})
    pipe.mul("vprod", v["dv"], c2)
    v = pipe.wait(_keep(v, "m", *rest), "vprod")
    v = pipe.reg({"vsum": (v["v"] << fb) + v["vprod"], **_keep(v, "m", "w", "rand")})
    v = pipe.reg({"v": round_shift(v["vsum"], fb), **_keep(v, "m", "w", "rand")})
    v = pipe.reg({"v": saturate(v["v"], fv), **_keep(v, "m", "w", "rand")})
    # v's bit length, then its 16-bit mantissa from the leading one
    W = fv.width - 1  # v >= 0: the sign bit is 0
    n = _bit_length(m, v["v"][:W], W, f"{prefix}_vlen")
    v = pipe.reg({"n": n, **_keep(v, "v", "m", "w", "rand")})
    vu = v["v"][:W]
    mv = Signal(16, name=f"{prefix}_mv")
    with m.Switch(v["n"]):
        for k in range(1, W + 1):
            with m.Case(k):
                m.d.comb += mv.eq(vu << (16 - k) if k <= 16 else vu >> (k - 16))
    # (v_hat's exponent less the mantissa product's top bit, ready before the product is)
    en = Signal(signed(12), name=f"{prefix}_en")
    m.d.comb += en.eq(v["n"] - 2 - fv.frac_bits + sc["e2"])
    v = pipe.reg({"mv": mv, "zero": v["n"] == 0, "en": en, **_keep(v, "v", "m", "w", "rand")})
    # q = mv * R2, v_hat's mantissa (only the bits the index takes: its leading one is bit
    # rf + 14 or rf + 15, R2 in (2^(rf-1), 2^rf))
    pipe.mul("q", v["mv"], sc["r2"])
    v = pipe.wait(_keep(v, "en", "zero", "v", "m", "w", "rand"), "q")
    # the product's bits registered first: a DSP's output is slow to leave it
    v = pipe.reg({"q": v["q"][rf + 14 - M:rf + 16], **_keep(v, "en", "zero", "v", "m", "w", "rand")})
    q, hi = v["q"], v["q"][M + 1]
    e = Signal(signed(12), name=f"{prefix}_e")
    m.d.comb += e.eq(v["en"] + hi)
    idx = Signal(M, name=f"{prefix}_idx")
    m.d.comb += idx.eq(Mux(hi, q[1:M + 1], q[0:M]))
    v = pipe.reg({"e": e, "idx": idx, **_keep(v, "zero", "v", "m", "w", "rand")})
    # then the clamp to the table's exponent range
    e, idx = v["e"], v["idx"]
    n_entries = (e_hi - e_lo + 1) << M
    addr = Signal(range(n_entries), name=f"{prefix}_raddr")
    m.d.comb += addr.eq(Mux(v["zero"] | (e < e_lo), 0,
                            Mux(e > e_hi, n_entries - 1, Cat(idx, (e - e_lo)[:max(1, (e_hi - e_lo).bit_length())]))))
    v = pipe.reg({"addr": addr, **_keep(v, "m", "v", "w", "rand")})
    # the 1/(sqrt(v_hat) + eps) table (a block RAM: its data a cycle later)
    rom = Memory(shape=fmt_shape(cfg.adam_r_format), depth=n_entries, init=[int(x) for x in rsqrt_table(cfg)])
    m.submodules[f"{prefix}_rsqrt"] = rom
    rd = rom.read_port()
    m.d.comb += rd.addr.eq(v["addr"])
    v = pipe.reg(_keep(v, "m", "v", "w", "rand"))
    # m' * r * alpha, exact, rounded once
    pipe.mul("mr", v["m"], rd.data)
    v = pipe.wait(_keep(v, "m", "v", "w", "rand"), "mr")
    pipe.mul("mra", v["mr"], sc["alpha"])
    v = pipe.wait(_keep(v, "m", "v", "w", "rand"), "mra")
    v = pipe.reg({"step": round_shift(v["mra"], cfg.adam_step_shift, cfg.rounding, v["rand"]),
                  **_keep(v, "m", "v", "w")})
    return v["step"], v["w"], v["m"], v["v"]
