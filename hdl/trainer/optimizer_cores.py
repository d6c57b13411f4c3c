"""The optimizers' per-parameter arithmetic, as register pipelines (docs/arithmetic.md §8, §10).

Each core takes one parameter's exact batch sum ``G``, the parameter ``w``, its state and
its LFSR draw, all registered (the update engine's stage S), and after ``depth(cfg)``
registers gives the rounded step, the parameter as it came in, and the new state. The
engine subtracts and saturates (``saturating_sub``) and writes. Cores hold no state of
their own: every value moves one stage per cycle, so the engine delays its control bits
by the same depth. Each multiplier has a register after it.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux, Signal, signed, unsigned
from amaranth.lib.memory import Memory

from golden.config import OPT_FRAC_BITS, Config
from golden.tables import rsqrt_table

from ..arith import fmt_shape, requantize, round_shift
from ..layout import CORE_DEPTH

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


def core_depth(cfg: Config) -> int:
    """Registers from stage S to the rounded step (hdl/layout.py: CORE_DEPTH)."""
    return CORE_DEPTH[cfg.optimizer]


class _Pipe:
    """Named values moving one register per stage (``carry`` keeps them in step)."""

    def __init__(self, m, prefix):
        self.m, self.prefix, self.stage = m, prefix, 0

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
        return out


def build_core(m, cfg: Config, prefix: str, G, w, s1, s2, rand, adam=None):
    """The core for ``cfg.optimizer``; returns ``(step, w, s1_new, s2_new)`` after
    core_depth(cfg) registers. ``adam``: the update's scalars (``alpha``, ``r2``, ``e2``)."""
    pipe = _Pipe(m, prefix)
    if cfg.optimizer == "sgd":
        v = pipe.reg({"step": round_shift(G, cfg.update_shift, cfg.rounding, rand), "w": w})
        return v["step"], v["w"], None, None
    if cfg.optimizer == "momentum":
        return _momentum(pipe, cfg, G, w, s1, rand)
    return _adam(pipe, m, cfg, prefix, G, w, s1, s2, rand, adam)


def _momentum(pipe, cfg, G, w, u, rand):
    fu, U, fb = cfg.velocity, cfg.update_frac_bits, OPT_FRAC_BITS
    x = max(fb + fu.frac_bits, U)
    v = pipe.reg({"prod": u * Const(cfg.momentum_code, unsigned(fb)), "G": G, "w": w, "rand": rand})
    s = (v["prod"] << (x - fb - fu.frac_bits)) + (v["G"] << (x - U))
    v = pipe.reg({"u": requantize(s, x, fu), "w": v["w"], "rand": v["rand"]})
    v = pipe.reg({"step": round_shift(v["u"], cfg.velocity_step_shift, cfg.rounding, v["rand"]),
                  "u": v["u"], "w": v["w"]})
    return v["step"], v["w"], v["u"], None


def _bit_length(m, x, width, name):
    """bit_length of a non-negative value: a priority encoder."""
    n = Signal(range(width + 1), name=name)
    for b in range(width):  # later statements win: the highest set bit
        with m.If(x[b]):
            m.d.comb += n.eq(b + 1)
    return n


def _adam(pipe, m, cfg, prefix, G, w, mom, v2, rand, sc):
    fm, fv, fb, M = cfg.adam_m, cfg.adam_v, OPT_FRAC_BITS, cfg.rsqrt_entries_log2
    rf = cfg.recip_frac_bits
    e_lo, e_hi = cfg.adam_exponents
    keep = lambda d, *names: {k: d[k] for k in names}  # noqa: E731
    c1, c2 = Const(cfg.adam_c1, unsigned(fb)), Const(cfg.adam_c2, unsigned(fb))
    # 1: g = requantize(G, U, adam_m)
    v = pipe.reg({"g": requantize(G, cfg.update_frac_bits, fm), "m": mom, "v": v2, "w": w, "rand": rand})
    # 2: the first moment's product and the square
    v = pipe.reg({"mprod": (v["g"] - v["m"]) * c1, "gsq": v["g"] * v["g"], **keep(v, "m", "v", "w", "rand")})
    # 3: m' and g^2 in the v format
    v = pipe.reg({"m": requantize((v["m"] << fb) + v["mprod"], fm.frac_bits + fb, fm),
                  "sq": requantize(v["gsq"], 2 * fm.frac_bits, fv), **keep(v, "v", "w", "rand")})
    # 4, 5: v'
    v = pipe.reg({"vprod": (v["sq"] - v["v"]) * c2, **keep(v, "m", "v", "w", "rand")})
    v = pipe.reg({"v": requantize((v["v"] << fb) + v["vprod"], fv.frac_bits + fb, fv), **keep(v, "m", "w", "rand")})
    # 6: v's 16-bit mantissa from its leading one, and its bit length
    W = fv.width - 1  # v >= 0: the sign bit is 0
    vu = v["v"][:W]
    n = _bit_length(m, vu, W, f"{prefix}_vlen")
    mv = Signal(16, name=f"{prefix}_mv")
    with m.Switch(n):
        for k in range(1, W + 1):
            with m.Case(k):
                m.d.comb += mv.eq(vu << (16 - k) if k <= 16 else vu >> (k - 16))
    v = pipe.reg({"mv": mv, "n": n, "zero": n == 0, **keep(v, "m", "v", "w", "rand")})
    # 7: q = mv * R2 (v_hat's mantissa)
    # (only the bits the index takes: q's leading one is bit rf + 14 or rf + 15)
    v = pipe.reg({"q": (v["mv"] * sc["r2"])[rf + 14 - M:rf + 16], **keep(v, "n", "zero", "m", "v", "w", "rand")})
    # 8: the table address: v_hat's exponent (q = mv * R2 has bit length rf + 15 or rf + 16,
    # R2 in (2^(rf-1), 2^rf)) and the M bits below q's leading one
    q = v["q"]  # bits rf + 14 - M .. rf + 15 of the product
    hi = q[M + 1]
    e = Signal(signed(12), name=f"{prefix}_e")
    m.d.comb += e.eq(hi + v["n"] - 1 - fv.frac_bits + sc["e2"] - 1)
    idx = Signal(M, name=f"{prefix}_idx")
    m.d.comb += idx.eq(Mux(hi, q[1:M + 1], q[0:M]))
    n_entries = (e_hi - e_lo + 1) << M
    addr = Signal(range(n_entries), name=f"{prefix}_raddr")
    m.d.comb += addr.eq(Mux(v["zero"] | (e < e_lo), 0,
                            Mux(e > e_hi, n_entries - 1, Cat(idx, (e - e_lo)[:max(1, (e_hi - e_lo).bit_length())]))))
    v = pipe.reg({"addr": addr, **keep(v, "m", "v", "w", "rand")})
    # 9: the table read (a block RAM: the data comes a cycle later)
    rom = Memory(shape=fmt_shape(cfg.adam_r_format), depth=n_entries, init=[int(x) for x in rsqrt_table(cfg)])
    m.submodules[f"{prefix}_rsqrt"] = rom
    rd = rom.read_port()
    m.d.comb += rd.addr.eq(v["addr"])
    v = pipe.reg(keep(v, "m", "v", "w", "rand"))
    # 10, 11: m' * r * alpha (exact), 12: rounded once
    v = pipe.reg({"mr": v["m"] * rd.data, **keep(v, "m", "v", "w", "rand")})
    v = pipe.reg({"mra": v["mr"] * sc["alpha"], **keep(v, "m", "v", "w", "rand")})
    v = pipe.reg({"step": round_shift(v["mra"], cfg.adam_step_shift, cfg.rounding, v["rand"]),
                  **keep(v, "m", "v", "w")})
    return v["step"], v["w"], v["m"], v["v"]
