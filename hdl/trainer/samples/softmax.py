"""Each lane's softmax (a softmax output layer in the samples schedule).

The last layer's logits z_p[j] are written like activations (rounded and saturated, no
activation function), and each lane keeps their running maximum as they are written.
Then two passes over the outputs j, the lanes side by side (docs/arithmetic.md §7):

    exp    e_p[j] = exp table(max_p - z_p[j]) replaces z_p[j]; S_p += e_p[j] (exact)
    prob   p_p[j] = requantize(e_p[j] R_p, recip_frac_bits + k_p, act) with the lane's
           multiplier; delta_p[j] = requantize(p - t, act.frac_bits, error); p to the
           results

Between them (two cycles, once the sums are complete) k_p, the leading one of S_p, and
R_p, the reciprocal table at the bits below it: hdl/output.py's SoftmaxArith, the rows
schedule's softmax arithmetic.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Mux, Signal, signed, unsigned
from amaranth.lib.memory import Memory

from golden.config import Config
from golden.tables import table_contents

from ...activation import LutReader
from ...arith import requantize
from ...output import SoftmaxArith
from ..update import _register as _reg  # (the update engine's register helper)

__all__ = ["LaneSoftmax", "EXP_WRITE_STAGE", "PROB_WRITE_STAGE", "RECIP_CYCLES"]

# Stages after an exp beat's issue to its e's write (stage 1, R, the table index, the
# table value), and after a prob beat's issue to its p's and delta's write (stage A, the
# product aligned, rounded, saturated); cycles from the last sum to R.
EXP_WRITE_STAGE = 4  # (5 with the tables in block RAM: still no later than the beat's stage A)
PROB_WRITE_STAGE = 8
RECIP_CYCLES = 2


class LaneSoftmax:
    """The per-lane softmax stages, built into the lanes' module (hdl/trainer/samples/lanes.py)."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.arith = a = SoftmaxArith(cfg)
        self.r_shape = unsigned(a.r_width)
        P, AW = cfg.lanes, cfg.act.width
        # each lane's maximum logit, exp sum, its leading one k and reciprocal R
        self.zmax = [Signal(signed(AW), name=f"sm_max{p}") for p in range(P)]
        self.total = [Signal(unsigned(a.s_max.bit_length()), name=f"sm_sum{p}") for p in range(P)]
        self.k = [Signal(range(a.k_hi + 1), name=f"sm_k{p}") for p in range(P)]
        self.r = [Signal(self.r_shape, name=f"sm_r{p}") for p in range(P)]
        # the tables in block RAM, shared by two lanes (without interpolation: one read per
        # lookup); with interpolation each lane keeps the rows schedule's LutReader
        self.shared = not a.exp_spec.interpolate or a.exp_spec.shift == 0

    def track_max(self, m, valid, first, z):
        """The logits as the drain writes them (``valid``; ``first``: output 0; per lane):
        each lane's running maximum."""
        for mx, zp, v, f in zip(self.zmax, z, valid, first):
            with m.If(v & (f | (zp > mx))):
                m.d.sync += mx.eq(zp)

    def exp_pass(self, m, r, r_a, copies=None):
        """Stage R of an exp beat: max - z to the table's index (registered), the table's
        value (registered), then written over z and added to the lane's sum. Returns the
        activation-memory write (valid, address, data) and the stages to wait for (flag, next value)."""
        cfg, P = self.cfg, self.cfg.lanes
        spec = self.arith.exp_spec
        AW = cfg.act.width
        v1, v2 = Signal(name="ex_v1"), Signal(name="ex_v2")
        d1, d2 = Signal.like(r.dst, name="ex_dst1"), Signal.like(r.dst, name="ex_dst2")
        f1, f2 = Signal(name="ex_first1"), Signal(name="ex_first2")
        go = r.valid & r.exp
        m.d.sync += [v1.eq(go), d1.eq(r.dst), f1.eq(r.first), v2.eq(v1), d2.eq(d1), f2.eq(f1)]
        self._ex_v1 = v1  # (the index's stage: the table's port reads exp)
        if self.shared:  # (the block RAM's data registered once more: e a stage later)
            v3, d3 = Signal(name="ex_v3"), Signal.like(r.dst, name="ex_dst3")
            m.d.sync += [v3.eq(v2), d3.eq(d2)]
            f3 = f2
            if not copies:
                f3 = Signal(name="ex_first3")
                m.d.sync += f3.eq(f2)
            chain = [(v1, go), (v2, v1), (v3, v2)]
            v1, f1, v2, d2, f2 = v2, f2, v3, d3, f3  # (the stage before e's, e's)
        else:
            chain = [(v1, go), (v2, v1)]
        # the sums' enable and start as each lane sees them (``copies(value, name)``: the
        # value a cycle later, one register per group of lanes, listed per lane)
        v2c, f2c = (copies(v1, "ex_v2c"), copies(f1, "ex_f2c")) if copies else ([v2] * P, [f2] * P)
        es = []
        self._ports = self._shared_tables(m) if self.shared else None
        for p in range(P):
            e = Signal(signed(AW), name=f"ex_e{p}")
            if self._ports is not None:
                # the table's row (registered), the exp table's half of the lane's block RAM
                # port (its read register, then e)
                ix = Signal(range(spec.span_code >> spec.shift), name=f"ex_ix{p}")
                m.d.sync += ix.eq(LutReader.index_of(spec, self.zmax[p] - r_a[p]) >> spec.shift)
                self._ex_addr.append(ix)
                m.d.sync += e.eq(self._ports[p].data[:spec.out_fmt.width].as_signed())
            else:
                ix = Signal(range(spec.span_code), name=f"ex_ix{p}")
                m.d.sync += ix.eq(LutReader.index_of(spec, self.zmax[p] - r_a[p]))
                unit = LutReader(spec, AW + 1, indexed=True)
                m.submodules[f"exp{p}"] = unit
                m.d.comb += unit.x.eq(ix)
                m.d.sync += e.eq(unit.y)
            total = self.total[p]
            with m.If(v2c[p]):
                m.d.sync += total.eq(Mux(f2c[p], e, total + e))  # (the sum starts at output 0)
            es.append(e)
        return (v2, d2, Cat(*es)), chain

    def reciprocal(self, m):
        """k_p and R_p from the lane's sum, two registers (as the rows schedule's RECIP,
        RECIP2: the table read registered, then once more for the multiplier)."""
        cfg, P, a = self.cfg, self.cfg.lanes, self.arith
        rom_rows = a.rtab
        for p in range(P):
            k_c, idx = Signal(range(a.k_hi + 1), name=f"sm_kc{p}"), Signal(cfg.recip_entries_log2, name=f"sm_idx{p}")
            a.leading_one(m, self.total[p], k_c, idx)
            r_rom = Signal(self.r_shape, name=f"sm_rr{p}")
            if self._ports is not None:
                # the port reads the exp table while the lane's exp index is valid (ex_v1),
                # the reciprocal table otherwise: R is read only after the exp pass's sums
                port = self._ports[p]
                m.d.comb += [port.addr.eq(Mux(self._ex_v1, self._ex_addr[p], self._r_base + idx)),
                             r_rom.eq(port.data[:len(r_rom)])]
            else:
                rom = Memory(shape=self.r_shape, depth=len(rom_rows), init=rom_rows)
                m.submodules[f"recip{p}"] = rom
                rd = rom.read_port(domain="comb")
                m.d.comb += rd.addr.eq(idx)
                m.d.sync += r_rom.eq(rd.data)
            m.d.sync += [self.k[p].eq(k_c), self.r[p].eq(r_rom)]

    def _shared_tables(self, m):
        """One ROM per two lanes, the exp table and the reciprocal table one after the
        other, read through a synchronous port per lane (one block RAM, both its ports).
        Returns the lanes' read ports."""
        cfg, a = self.cfg, self.arith
        spec = a.exp_spec
        ew = spec.out_fmt.width
        etab = [int(v) & ((1 << ew) - 1) for v in table_contents(spec)]
        self._r_base = len(etab)
        rows = etab + list(a.rtab)
        ports, self._ex_addr = [], []
        for g in range(0, cfg.lanes, 2):
            rom = Memory(shape=max(ew, a.r_width), depth=len(rows), init=rows)
            m.submodules[f"smtab{g // 2}"] = rom
            ports += [rom.read_port() for _ in range(min(2, cfg.lanes - g))]
        return ports

    def prob_pass(self, m, sa, prod, t_a):
        """Stage A of a prob beat: e R aligned to the largest sum's scale, rounded,
        saturated (p); then p - t requantized to the error format. Returns the delta
        write and the result row (valid, address, data) and the stages to wait for (flag, next value)."""
        cfg, P, a = self.cfg, self.cfg.lanes, self.arith
        v = [sa.valid & sa.prob] + [Signal(name=f"pr_v{i}") for i in range(1, 4)]
        dst = [sa.dst] + [Signal.like(sa.dst, name=f"pr_dst{i}") for i in range(1, 4)]
        m.d.sync += [v[i].eq(v[i - 1]) for i in range(1, 4)] + [dst[i].eq(dst[i - 1]) for i in range(1, 4)]
        ps, deltas = [], []
        for p in range(P):
            al = _reg(m, a.aligned_product(prod[p], self.k[p]), f"pr_al{p}")
            rq = _reg(m, a.round_aligned(al), f"pr_rq{p}")
            pp = _reg(m, a.saturate_probability(rq), f"pr_p{p}")
            t3 = _reg(m, _reg(m, _reg(m, t_a[p], f"pr_t1{p}"), f"pr_t2{p}"), f"pr_t3{p}")
            ps.append(pp)
            deltas.append(requantize(pp - t3, cfg.act.frac_bits, cfg.error))
        return (v[3], dst[3], Cat(*deltas)), (v[3], dst[3], Cat(*ps)), list(zip(v[1:], v[:-1]))


