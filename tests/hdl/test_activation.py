"""hdl.activation under amaranth.sim, bit-exact against golden.activations.

Every activation function and derivative is swept over EVERY input code of 16-bit act
formats (Q4.12 and Q6.10, tables with and without interpolation, plus a table fine enough
to have no interpolation fraction); the stream wrapper runs random codes with random
valid gaps and backpressure.
"""
import os

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.activations import FixedActivations
from golden.config import Config
from golden.fixed import QFormat
from hdl.activation import ELEMENTWISE, ActivationDerivative, ActivationFunction
from sim.testbench.stream_units import ActivationUnit
from sim.testbench.amaranth_streams import put_all, random_stall, stream_get

# ---------------------------------------------------------------------------------------
# configs: 16-bit act formats, different table shapes


def act_config(name: str, interpolate: bool = False) -> Config:
    """Configs whose act format is 16 bits wide (every code is swept)."""
    base = dict(learning_rate=0.5, lut_interpolate=interpolate)
    if name == "q4.12":
        return Config(act=QFormat(4, 12), lut_entries_log2=8, lut_range_log2=3, leaky_alpha=0.125, **base)
    if name == "q6.10":
        return Config(act=QFormat(6, 10), lut_entries_log2=6, lut_range_log2=4, leaky_alpha=0.1, **base)
    if name == "q4.12-fine":  # one table entry per input code: no interpolation fraction (shift 0)
        return Config(act=QFormat(4, 12), lut_entries_log2=14, lut_range_log2=1, leaky_alpha=0.3, **base)
    if name == "q6.10-shift1":  # interpolation fraction of a single bit
        return Config(act=QFormat(6, 10), lut_entries_log2=11, lut_range_log2=1, leaky_alpha=0.25, **base)
    raise ValueError(name)


def sweep_comb(dut, in_port, out_port, codes) -> np.ndarray:
    """Set every input code on a combinational core and read the output (no clock)."""
    got = np.zeros(len(codes), dtype=np.int64)

    async def testbench(ctx):
        for i, c in enumerate(codes.tolist()):
            ctx.set(in_port, c)
            got[i] = ctx.get(out_port)

    sim = Simulator(dut)
    sim.add_testbench(testbench)
    sim.run()
    return got


def assert_codes_equal(got, expected, codes, what):
    bad = np.flatnonzero(got != expected)
    assert bad.size == 0, (f"{what}: {bad.size} mismatches of {len(codes)}; first at input code "
                           f"{codes[bad[0]]}: hardware {got[bad[0]]}, golden {expected[bad[0]]}")


# ---------------------------------------------------------------------------------------
# exhaustive sweeps of the combinational cores

FORWARD_CASES = (
    [(fmt, kind, False) for fmt in ("q4.12", "q6.10") for kind in ("relu", "leaky_relu", "linear")]
    + [(fmt, kind, interp) for fmt in ("q4.12", "q6.10") for kind in ("sigmoid", "tanh") for interp in (False, True)]
    + [("q4.12-fine", "sigmoid", True), ("q6.10-shift1", "tanh", True)]
)


@pytest.mark.parametrize("fmt,kind,interp", FORWARD_CASES,
                         ids=[f"{f}-{k}{'-interp' if i else ''}" for f, k, i in FORWARD_CASES])
def test_activation_function_every_code(fmt, kind, interp):
    cfg = act_config(fmt, interp)
    codes = cfg.act.all_codes()
    assert len(codes) == 1 << 16
    dut = ActivationFunction(cfg, kind)
    got = sweep_comb(dut, dut.z, dut.a, codes)
    assert_codes_equal(got, FixedActivations(cfg).forward(kind, codes), codes, f"{kind} forward {cfg.act}")


DERIVATIVE_CASES = [(fmt, kind) for fmt in ("q4.12", "q6.10") for kind in ELEMENTWISE]


@pytest.mark.parametrize("fmt,kind", DERIVATIVE_CASES, ids=[f"{f}-{k}" for f, k in DERIVATIVE_CASES])
def test_activation_derivative_every_code(fmt, kind):
    """The derivative from every stored-output code (including codes the forward function
    never produces: the unit must still equal golden there, e.g. saturate a(1-a))."""
    cfg = act_config(fmt)
    codes = cfg.act.all_codes()
    dut = ActivationDerivative(cfg, kind)
    got = sweep_comb(dut, dut.a, dut.d, codes)
    assert_codes_equal(got, FixedActivations(cfg).derivative(kind, codes), codes, f"{kind} derivative {cfg.act}")


def test_bad_kind_is_rejected():
    cfg = act_config("q4.12")
    for cls in (ActivationFunction, ActivationDerivative, ActivationUnit):
        with pytest.raises(ValueError, match="'softmax'"):
            cls(cfg, "softmax")


def test_ports():
    cfg = act_config("q6.10")
    f, d = ActivationFunction(cfg, "tanh"), ActivationDerivative(cfg, "tanh")
    assert f.z.shape().width == f.a.shape().width == 16 and f.z.shape().signed
    assert d.a.shape().width == d.d.shape().width == 16 and d.d.shape().signed


# ---------------------------------------------------------------------------------------
# stream wrapper with random stalls


@pytest.mark.parametrize("kind", ELEMENTWISE)
def test_activation_unit_stream_random_stalls(kind):
    cfg = act_config("q4.12", interpolate=(kind == "tanh"))
    rng = np.random.default_rng(sum(map(ord, kind)))
    codes = rng.integers(cfg.act.min_code, cfg.act.max_code + 1, 1500)
    codes[:4] = [cfg.act.min_code, cfg.act.max_code, 0, -1]
    fa = FixedActivations(cfg)
    want_a = fa.forward(kind, codes)
    want_d = fa.derivative(kind, want_a)

    dut = ActivationUnit(cfg, kind)
    got_a, got_d = [], []

    async def producer(ctx):
        await put_all(ctx, dut.i, codes.tolist(), stall=random_stall(rng, 0.3))

    async def consumer(ctx):
        stall = random_stall(rng, 0.4)
        for _ in codes:
            out = await stream_get(ctx, dut.o, stall=stall)
            got_a.append(out.a)
            got_d.append(out.d)
        for _ in range(10):  # nothing more comes out
            await ctx.tick()
            assert not ctx.get(dut.o.valid)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    np.testing.assert_array_equal(np.array(got_a), want_a)
    np.testing.assert_array_equal(np.array(got_d), want_d)


# ---------------------------------------------------------------------------------------
# the same on Icarus and Verilator (sim/testbench/activation.py)


def require_simulator(name):
    """Skip locally when a simulator is missing; in CI (CI=true) a missing simulator fails."""
    from sim.runners.cocotb_run import available_simulators

    if name not in available_simulators():
        msg = f"simulator {name} is not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(msg + " (CI must run every simulator)")
        pytest.skip(msg)


def check_rtl_result(r):
    assert not r["failures"], r["failures"][:6]
    for kind in ELEMENTWISE:
        s = r["sweep"][kind]
        assert s == {"codes": 1 << 16, "forward_mismatches": 0, "derivative_mismatches": 0}, (kind, s)
        st = r["stream"][kind]
        assert st["mismatches"] == 0 and st["extra_beats"] == 0, (kind, st)


RTL_CASES = [  # (config, interpolation); one representative config in the default suite
    pytest.param("q4.12", True, id="q4.12-interp"),
    pytest.param("q4.12", False, id="q4.12", marks=pytest.mark.slow),
    pytest.param("q6.10", True, id="q6.10-interp", marks=pytest.mark.slow),
    pytest.param("q6.10", False, id="q6.10", marks=pytest.mark.slow),
    pytest.param("q4.12-fine", True, id="q4.12-fine-interp", marks=pytest.mark.slow),
    pytest.param("q6.10-shift1", True, id="q6.10-shift1-interp", marks=pytest.mark.slow),
]


@pytest.mark.rtl
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
@pytest.mark.parametrize("fmt,interp", RTL_CASES)
def test_activation_rtl_every_code(simulator, fmt, interp, request):
    """Every code of the act format through the five combinational forward/derivative
    pairs (set and read, no clock), and through the five ActivationUnit streams with random
    stalls: all 65,536 codes per kind on Verilator (and in slow runs on Icarus), 8,192
    random codes per kind on Icarus by default."""
    require_simulator(simulator)
    from sim.testbench.activation import run_activation_rtl

    cfg = act_config(fmt, interp)
    slow = request.node.get_closest_marker("slow") is not None
    n = "all" if simulator == "verilator" or slow else 8192
    r = run_activation_rtl(cfg, simulator, stream_codes=n)
    check_rtl_result(r)
    assert all(r["stream"][k]["beats"] == (1 << 16 if n == "all" else n) for k in ELEMENTWISE)
