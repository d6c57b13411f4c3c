"""sim.runners.cocotb_run / sim.testbench.streams on Icarus and Verilator with a small stream design.

This file is also the cocotb test module that the runner tests run (the cocotb tests
below are named ``cocotb_*`` so pytest does not collect them).
"""
from __future__ import annotations

import os
import random

import pytest

try:
    import cocotb
except ImportError:  # pragma: no cover
    cocotb = None

from amaranth.hdl import Module, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sim.flows.lint import lint
from sim.runners.cocotb_run import available_simulators, default_build_root, run_cocotb, test_config, test_param
from sim.testbench.streams import PayloadCodec, pauses

try:
    from tests.conftest import require_tool
except ImportError:  # pragma: no cover - the shared conftest provides it
    def require_tool(name):
        tool = {"iverilog": "icarus"}.get(name, name)
        if tool in available_simulators():
            return
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is not installed; CI=true requires every simulator", pytrace=False)
        pytest.skip(f"{name} is not installed")

LAYOUT = data.StructLayout({"x": signed(8), "y": data.ArrayLayout(signed(5), 3), "tag": 2})


class AddOne(wiring.Component):
    """Registered stream stage: out.x = in.x + inc (wrapping, test design only), y and tag copied."""

    def __init__(self, inc: int = 1):
        self.inc = inc
        super().__init__({"i": In(stream.Signature(LAYOUT)), "o": Out(stream.Signature(LAYOUT))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(self.o.ready | ~self.o.valid)
        with m.If(self.i.ready):
            m.d.sync += [self.o.valid.eq(self.i.valid),
                         self.o.payload.x.eq(self.i.payload.x + self.inc),
                         self.o.payload.y.eq(self.i.payload.y),
                         self.o.payload.tag.eq(self.i.payload.tag)]
        return m


def random_items(n, seed):
    rng = random.Random(seed)
    return [{"x": rng.randint(-128, 127), "y": [rng.randint(-16, 15) for _ in range(3)], "tag": rng.randint(0, 3)}
            for _ in range(n)]


def expected(item):
    return {"x": (item["x"] + 1 + 128) % 256 - 128, "y": item["y"], "tag": item["tag"]}


# ---------------------------------------------------------------------------------------
# cocotb tests (run inside the simulator)

if cocotb is not None:
    @cocotb.test()
    async def cocotb_stream_roundtrip(dut):
        from sim.check.scoreboard import Scoreboard
        from sim.testbench.streams import TB
        cfg = test_config()
        assert cfg is not None and cfg.lanes == 3, cfg
        n = test_param("N_ITEMS", 200, int)
        tb = TB(dut)
        codec = PayloadCodec(LAYOUT)
        src = tb.source("i", idle=0.3, seed=1, codec=codec)
        snk = tb.sink("o", backpressure=[0, 1, 1, 0, 1], codec=codec)
        await tb.reset()
        items = random_items(n, 5)
        src.extend(items)
        await snk.wait_count(n, timeout_cycles=20 * n)
        await tb.cycles(10)
        sb = Scoreboard("AddOne", key=lambda v: v)
        sb.expect_many([expected(it) for it in items], inputs=items)
        sb.actual_many(snk.payloads())
        sb.check()

    @cocotb.test()
    async def cocotb_deliberate_failure(dut):
        from sim.testbench.streams import TB
        tb = TB(dut)
        await tb.reset()
        assert 1 + 1 == 3, "deliberate failure"

    @cocotb.test()
    async def cocotb_fails_at_once(dut):
        from cocotb.triggers import Timer
        await Timer(10, "ns")
        assert 1 + 1 == 3, "deliberate failure"

    @cocotb.test()
    async def cocotb_passes_at_once(dut):
        from cocotb.triggers import Timer
        await Timer(10, "ns")

    @cocotb.test()
    async def cocotb_hangs(dut):
        from cocotb.triggers import Event

        from sim.testbench.streams import TB
        TB(dut)  # the clock keeps the simulator busy forever
        await Event().wait()  # never set


# ---------------------------------------------------------------------------------------
# pytest

def test_codec_roundtrip():
    codec = PayloadCodec(LAYOUT)
    assert codec.width == 8 + 15 + 2
    for it in random_items(100, 1):
        assert codec.unpack(codec.pack(it)) == it
    assert codec.pack({"x": -1}) == 0xFF
    with pytest.raises(ValueError, match="x = 128"):
        codec.pack({"x": 128})
    with pytest.raises(ValueError, match="unknown keys"):
        codec.pack({"z": 1})


def test_pauses():
    assert pauses(None) is None and pauses(0) is None and pauses([0, 0]) is None
    p = pauses([1, 0, 0])
    assert [next(p) for _ in range(6)] == [True, False, False] * 2
    a, b = pauses(0.5, seed=3), pauses(0.5, seed=3)
    assert [next(a) for _ in range(50)] == [next(b) for _ in range(50)]
    with pytest.raises(ValueError):
        pauses(1.0)


@pytest.mark.rtl
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_runner_passes_and_build_is_stable(simulator):
    from golden.config import Config
    require_tool({"icarus": "iverilog"}.get(simulator, simulator))
    cfg = Config(lanes=3)
    kw = dict(test_module="tests.sim.runners.test_cocotb_run", simulator=simulator, build_name="addone", config=cfg,
              testcase="cocotb_stream_roundtrip", extra_env={"N_ITEMS": 300})
    r1 = run_cocotb(AddOne, **kw)  # builds unless an earlier session did
    assert r1.passed == 1 and r1.failed == 0 and r1.ok
    assert r1.build_dir.parent == default_build_root().resolve() / simulator and r1.build_dir.name.startswith("addone-")
    marker = r1.build_dir / "built.ok"
    mtime = marker.stat().st_mtime_ns
    r2 = run_cocotb(AddOne(), **kw)
    assert r2.build_dir == r1.build_dir and not r2.rebuilt
    assert marker.stat().st_mtime_ns == mtime
    assert r2.run_dir != r1.run_dir and r2.passed == 1


@pytest.mark.rtl
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_runner_reports_failure(simulator):
    from sim.runners.cocotb_run import CocotbFailure
    require_tool({"icarus": "iverilog"}.get(simulator, simulator))
    with pytest.raises(CocotbFailure, match="FAILED cocotb_deliberate_failure: .*deliberate failure") as e:
        run_cocotb(AddOne, test_module="tests.sim.runners.test_cocotb_run", simulator=simulator, build_name="addone",
                   testcase="cocotb_deliberate_failure")
    r = e.value.result
    assert r.failed == 1 and r.passed == 0 and not r.ok and isinstance(e.value, AssertionError)
    assert r.tests[0].name == "cocotb_deliberate_failure" and r.tests[0].sim_time_ns > 0


@pytest.mark.rtl
def test_rtl_run_reports_a_failed_test_outside_pytest(tmp_path, monkeypatch):
    """The CLI's runs (sim.runners.rtl_run) read cocotb's results: outside pytest cocotb's runner
    returns normally also when a test failed."""
    require_tool("iverilog")
    from sim.runners.cocotb_run import verilog_for
    from sim.runners.rtl_run import prepare_build, run_cocotb_test
    build = prepare_build(verilog_for(AddOne, "top"), "top", "icarus", str(tmp_path))
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)  # as when `backprop-fpga train` runs it
    bad = run_cocotb_test(build, "tests.sim.runners.test_cocotb_run", "cocotb_fails_at_once", tmp_path / "bad")
    assert not bad["passed"] and "deliberate failure" in bad["failure"], bad
    good = run_cocotb_test(build, "tests.sim.runners.test_cocotb_run", "cocotb_passes_at_once", tmp_path / "good")
    assert good["passed"], good
    none = run_cocotb_test(build, "tests.sim.runners.test_cocotb_run", "no_such_test", tmp_path / "none")
    assert not none["passed"], none


@pytest.mark.rtl
def test_runner_timeout_and_missing_test(tmp_path):
    require_tool("iverilog")
    r = run_cocotb(AddOne, test_module="tests.sim.runners.test_cocotb_run", simulator="icarus", build_name="addone",
                   testcase="cocotb_hangs", timeout_s=3, check=False)
    assert not r.ok and "timeout" in r.error
    with pytest.raises(AssertionError, match="no test ran"):
        run_cocotb(AddOne, test_module="tests.sim.runners.test_cocotb_run", simulator="icarus", build_name="addone",
                   testcase="no_such_test")


@pytest.mark.rtl
def test_lint_addone():
    require_tool("verilator")
    assert lint(AddOne) == []


@pytest.mark.rtl
def test_new_design_gets_new_build_dir(tmp_path):
    """A different Verilog text hashes to a different directory, built there once."""
    require_tool("iverilog")
    kw = dict(test_module="tests.sim.runners.test_cocotb_run", simulator="icarus", build_name="addone",
              testcase="cocotb_stream_roundtrip", config={"hardware": {"lanes": 3}}, build_root=tmp_path)
    r = run_cocotb(AddOne, **kw)
    assert r.rebuilt and r.ok and r.build_dir.parent == tmp_path / "icarus"
    r2 = run_cocotb(lambda: AddOne(inc=2), check=False, **kw)  # the cocotb test expects +1: fails
    assert r2.rebuilt and r2.build_dir != r.build_dir and r2.failed == 1
    assert "first mismatch at item 0" in r2.tests[0].message


def test_amaranth_streams_with_stalls():
    from amaranth.sim import Simulator

    from sim.check.scoreboard import Scoreboard
    from sim.testbench.amaranth_streams import random_stall, stream_get, stream_put
    dut = AddOne()
    items = random_items(300, 2)
    rng = random.Random(1)
    sb = Scoreboard("AddOne/amaranth")
    sb.expect_many([expected(it) for it in items], inputs=items)
    codec = PayloadCodec(LAYOUT)

    async def producer(ctx):
        for it in items:
            await stream_put(ctx, dut.i, it, stall=random_stall(rng, 0.3))

    async def consumer(ctx):
        for _ in items:
            v = await stream_get(ctx, dut.o, stall=random_stall(rng, 0.4))
            sb.actual(codec.unpack(v.as_value().value))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    sb.check()



def test_repo_root_is_the_project_root():
    """Builds default to <repo>/build and cocotb's processes import from <repo>, however deep
    the runner modules sit in sim/."""
    from sim.runners import cocotb_run, rtl_run
    assert (cocotb_run.REPO / "pyproject.toml").is_file() and (cocotb_run.REPO / "sim").is_dir()
    assert rtl_run._REPO == cocotb_run.REPO
