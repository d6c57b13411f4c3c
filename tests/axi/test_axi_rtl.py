"""The AXI top under Verilator and Icarus, every transaction through cocotbext-axi
(sim/testbench/axi_trainer.py): XOR trains bit-exactly with random pauses on all seven
AXI channels, and the responses are OKAY / SLVERR / DECERR where docs/registers.md says."""
import pytest

from golden.config import load_config
from golden.datasets import load_dataset
from sim.check.golden_plan import make_plan
from sim.runners.axi_rtl import run_axi_job

from tests.conftest import require_tool

pytestmark = pytest.mark.rtl

XOR = load_config("examples/xor.toml")
# Python drives every cycle here (cocotbext-axi), so runs stay short; the full XOR run to
# 4/4 is the slow test below and `backprop-fpga train --bus axi`
EPOCHS = {"verilator": 6, "icarus": 2}


def _sim(name):
    require_tool("iverilog" if name == "icarus" else "verilator")


def _build_root(tmp_path):
    return str(tmp_path.parent / "build")


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_xor_trains_over_axi_with_random_backpressure(simulator, tmp_path):
    _sim(simulator)
    plan = make_plan(XOR, load_dataset(XOR), EPOCHS[simulator], keep_params=True)
    r = run_axi_job(XOR, simulator, plan=plan, check_params="every", stall_prob=0.3, seed=3,
                    build_root=_build_root(tmp_path))
    assert r["tests"]["passed"], r["tests"]["failure"]
    assert r["mismatches"] == 0, r["first_mismatch"]
    assert r["samples"] == 4 * EPOCHS[simulator] and r["updates"] == r["samples"]
    last = r["epochs"][-1]
    assert last["rtl_test_accuracy"] == last["fixed_test_accuracy"]
    assert [e["rtl_loss"] for e in r["epochs"]] == [e["fixed_loss"] for e in r["epochs"]]


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_axi_responses(simulator, tmp_path):
    _sim(simulator)
    r = run_axi_job(XOR, simulator, testcase="bus_errors", stall_prob=0.2, seed=5, build_root=_build_root(tmp_path))
    assert r["tests"]["passed"], r["tests"]["failure"]
    assert len(r["checks"]) >= 20


@pytest.mark.slow
def test_xor_reaches_four_of_four_over_axi(tmp_path):
    _sim("verilator")
    plan = make_plan(XOR, load_dataset(XOR), 300)
    r = run_axi_job(XOR, "verilator", plan=plan, stall_prob=0.25, seed=1, build_root=_build_root(tmp_path))
    assert r["mismatches"] == 0, r["first_mismatch"]
    assert r["epochs"][-1]["rtl_test_accuracy"] == 1.0
