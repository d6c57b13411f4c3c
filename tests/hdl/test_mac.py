"""hdl.mac (MacArray, AdderTree) bit-exact against golden on three simulators.

Expected codes come from golden only (exact int64 sums, golden.fixed.requantize,
golden.lfsr.Lfsr per accumulator): see sim/testbench/mac.py. amaranth.sim runs 2,000 random
beats per unit and config; Icarus and Verilator (through sim.runners.cocotb_run.run_cocotb and the
cocotb module sim.testbench.mac) run 10,000 random beats per unit, each beat a P-lane operand
vector, with random idle cycles on the input and random backpressure on the output,
followed by sums driven past every output range. Stimulus mixes extreme codes (most
negative, most positive, 0, +-1), uniform codes and log-uniform codes with trailing zeros
(rounding ties), stochastic and nearest-even emits, several output formats (including an
exact left shift), mid-sum emits and full-length extreme sums.
"""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.config import Config
from golden.fixed import QFormat
from golden.lfsr import Lfsr, lane_seed
from hdl.mac import AdderTree, MacArray
from sim.check.scoreboard import check_codes
from sim.flows.lint import lint
from sim.runners.cocotb_run import run_cocotb
from sim.testbench.amaranth_streams import random_stall, stream_get, stream_put
from sim.testbench.mac import Beats, golden_outputs, make_unit, payloads, random_beats, saturation_beats, unit_spec
from sim.testbench.streams import PayloadCodec

# Q4.12 everywhere, 4 lanes; MacArray outputs act or error
CFG_A = Config(lanes=4, layers=(12, 8, 6), sr_seed=0x1234)
# narrow odd formats, 3 lanes: weight Q2.6 x act Q3.5 -> acc frac 11; outputs Q3.5 (shift 6),
# Q4.10 (shift 1) and Q2.14 (shift -3: exact left shift) -- the last as an extra MacArray format
CFG_B = Config(lanes=3, layers=(20, 7, 5), weight=QFormat(2, 6), act=QFormat(3, 5), error=QFormat(4, 10),
               lut_range_log2=2, exp_range_log2=2, exp_entries_log2=6, sr_seed=987654321)

UNITS = {
    "mac-A": (CFG_A, unit_spec("mac", CFG_A)),
    "tree-A": (CFG_A, unit_spec("tree", CFG_A)),
    "mac-B": (CFG_B, unit_spec("mac", CFG_B, out_formats=(CFG_B.act, CFG_B.error, QFormat(2, 14)))),
    "tree-B": (CFG_B, unit_spec("tree", CFG_B, out_formats=(CFG_B.error, CFG_B.act), lfsr_lane=5)),
}


def run_amaranth(unit, beats: Beats, *, p_idle=0.25, p_stall=0.3, seed=0, extra_cycles=20):
    """Stream ``beats`` through ``unit`` in amaranth.sim; returns (outputs, overrun, cycles)."""
    rng = random.Random(seed)
    pls = payloads(beats)
    n_out = int(beats.emit.sum())
    out_codec = PayloadCodec(unit.out_layout)
    got, state = [], {}

    async def producer(ctx):
        stall = random_stall(rng, p_idle) if p_idle else None
        for p in pls:
            await stream_put(ctx, unit.i, p, stall=stall)

    async def consumer(ctx):
        stall = random_stall(rng, p_stall) if p_stall else None
        for _ in range(n_out):
            v = await stream_get(ctx, unit.o, stall=stall)
            got.append(out_codec.unpack(v.as_value().value if hasattr(v, "as_value") else v))
        state["cycles"] = 0
        # no further beats may appear
        ctx.set(unit.o.ready, 1)
        for _ in range(extra_cycles):
            _, _, valid = await ctx.tick().sample(unit.o.valid)
            assert not valid, "output beat without a matching emit"
        state["overrun"] = ctx.get(unit.overrun)

    async def cycle_counter(ctx):
        n = 0
        async for _ in ctx.tick():
            n += 1
            state["ticks"] = n

    sim = Simulator(unit)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.add_process(cycle_counter)
    sim.run()
    return np.array(got, dtype=np.int64), state["overrun"], state["ticks"]


# ---------------------------------------------------------------------------------------
# construction


def test_accumulator_widths_match_the_config():
    for cfg in (CFG_A, CFG_B):
        assert MacArray(cfg).acc_width == cfg.forward_acc_width()
        assert AdderTree(cfg).acc_width >= cfg.backward_acc_width()
    t = AdderTree(CFG_B)  # 7 outputs on 3 lanes: 3 beats of 3 products
    assert t.max_beats == 3 and t.acc_width == CFG_B.backward_acc_width() + 1


def test_constructor_errors():
    with pytest.raises(TypeError, match="cfg must be"):
        MacArray({"lanes": 4})
    with pytest.raises(ValueError, match="max_terms"):
        MacArray(CFG_A, max_terms=0)
    with pytest.raises(ValueError, match="out_formats"):
        AdderTree(CFG_A, out_formats=())
    with pytest.raises(ValueError, match="rounding shift"):
        MacArray(CFG_A, a_fmt=QFormat(4, 20), b_fmt=QFormat(4, 20), out_formats=(QFormat(4, 4),))
    with pytest.raises(ValueError, match="lfsr_lane"):
        AdderTree(CFG_A, lfsr_lane=-1)


# ---------------------------------------------------------------------------------------
# amaranth.sim


@pytest.mark.parametrize("name", list(UNITS))
def test_random_beats_amaranth(name):
    cfg, spec = UNITS[name]
    unit = make_unit(cfg, spec)
    beats = random_beats(unit, 2000, np.random.default_rng(11))
    expected, inputs = golden_outputs(unit, beats)
    got, overrun, _ = run_amaranth(unit, beats, seed=3)
    check_codes(f"{name} (amaranth.sim)", expected, got, inputs)
    assert overrun == 0


@pytest.mark.parametrize("name", ["mac-B", "tree-A"])
def test_saturation_clamps(name):
    """Sums driven past the output range give exactly the format's min / max code."""
    cfg, spec = UNITS[name]
    unit = make_unit(cfg, spec)
    beats = saturation_beats(unit)
    expected, _ = golden_outputs(unit, beats)
    got, _, _ = run_amaranth(unit, beats, seed=5)
    check_codes(f"{name} saturation", expected, got)
    # independent of golden: full-length sums of (min*min), (max*min), (max*max) products
    emit_idx = np.flatnonzero(beats.emit)
    full = emit_idx[~beats.clear[emit_idx].astype(bool)]  # the emits after the full-length sum
    fmts = [unit.out_formats[k] for k in beats.fmt[full]]
    lanes_got = got[np.isin(emit_idx, full)].reshape(len(full), -1)
    signs = np.sign(beats.a[full, 0] * (beats.b[full] if beats.b.ndim == 1 else beats.b[full, 0]))
    for f, s, row in zip(fmts, signs, lanes_got):
        assert set(row.tolist()) == {f.max_code if s > 0 else f.min_code}, (f, s, row)


@pytest.mark.parametrize("name", ["mac-A", "tree-B"])
def test_stochastic_rounding_follows_the_golden_lfsr(name):
    """Every emit stochastic: each LFSR advances once per emit and its new state's low
    bits are the addend (checked directly, and against nearest-even to show it differs)."""
    cfg, spec = UNITS[name]
    unit = make_unit(cfg, spec)
    beats = random_beats(unit, 600, np.random.default_rng(2), p_stochastic=1.0)
    beats.fmt[:] = 0
    got, _, _ = run_amaranth(unit, beats, p_idle=0.4, p_stall=0.4, seed=9)
    expected, inputs = golden_outputs(unit, beats)
    check_codes(f"{name} stochastic", expected, got, inputs)
    # the same by hand for lane 0: floor((acc + low bits of the advanced LFSR) / 2**shift), saturated
    f = unit.out_formats[0]
    shift = unit.acc_frac - f.frac_bits
    lane = getattr(unit, "lfsr_lane", 0)
    states = Lfsr(lane_seed(cfg.sr_seed, lane)).take(len(expected))
    prods = beats.a * (beats.b if beats.b.ndim == 2 else beats.b[:, None])
    acc, by_hand = 0, []
    for n in range(len(beats)):
        term = prods[n].sum() if beats.b.ndim == 2 else prods[n, 0]
        acc = term if beats.clear[n] else acc + term
        if beats.emit[n]:
            r = int(states[len(by_hand)]) & ((1 << shift) - 1)
            by_hand.append(min(max((int(acc) + r) >> shift, f.min_code), f.max_code))
    lane0 = got if got.ndim == 1 else got[:, 0]
    assert lane0.tolist() == by_hand
    beats.sto[:] = 0
    nearest, _ = golden_outputs(unit, beats)
    assert (nearest != expected).any()


def test_overrun_flag():
    unit = MacArray(CFG_A)
    ok = random_beats(unit, 200, np.random.default_rng(4))
    _, overrun, _ = run_amaranth(unit, ok, p_idle=0, p_stall=0)
    assert overrun == 0
    n = unit.max_terms + 1  # one term too many
    long = Beats(a=np.ones((n, unit.lanes), dtype=np.int64), b=np.ones(n, dtype=np.int64),
                 clear=np.eye(1, n, 0, dtype=np.int64)[0], emit=np.eye(1, n, n - 1, dtype=np.int64)[0],
                 fmt=np.zeros(n, dtype=np.int64), sto=np.zeros(n, dtype=np.int64))
    _, overrun, _ = run_amaranth(unit, long, p_idle=0, p_stall=0)
    assert overrun == 1


@pytest.mark.parametrize("kind", ["mac", "tree"])
def test_full_throughput(kind):
    """Without stalls the units take one beat per cycle: N beats + pipeline latency."""
    unit = make_unit(CFG_A, unit_spec(kind, CFG_A))
    beats = random_beats(unit, 300, np.random.default_rng(8))
    expected, _ = golden_outputs(unit, beats)
    got, _, ticks = run_amaranth(unit, beats, p_idle=0, p_stall=0, extra_cycles=0)
    check_codes(kind, expected, got)
    latency = 3 if kind == "mac" else 4
    assert ticks <= len(beats) + latency + 2, ticks


# ---------------------------------------------------------------------------------------
# Icarus and Verilator through sim.runners.cocotb_run


RTL_CASES = [("icarus", "mac-B"), ("icarus", "tree-A"), ("verilator", "mac-A"), ("verilator", "tree-B")]
RTL_BEATS = 10_000


@pytest.mark.rtl
@pytest.mark.parametrize("simulator,name", RTL_CASES)
def test_random_beats_rtl(simulator, name, require_tool):
    require_tool({"icarus": "iverilog"}.get(simulator, simulator))
    cfg, spec = UNITS[name]
    r = run_cocotb(lambda: make_unit(cfg, spec), test_module="sim.testbench.mac", simulator=simulator,
                   build_name=f"mac-{name}", config=cfg,
                   extra_env={"MAC_SPEC": json.dumps(spec), "MAC_BEATS": RTL_BEATS, "MAC_SEED": 17},
                   timeout_s=600)
    assert r.passed == 2 and r.failed == 0


@pytest.mark.rtl
@pytest.mark.parametrize("name", ["mac-A", "tree-A", "mac-B"])
def test_lint_clean(name, require_tool):
    require_tool("verilator")
    cfg, spec = UNITS[name]
    assert [str(w) for w in lint(make_unit(cfg, spec))] == []
