"""BackwardReduction (hdl/trainer/backward.py) alone in amaranth.sim, bit-exact with golden.

Random parameters, activations and output deltas; golden FixedMLP.backward gives every
hidden delta.
The lanes' products W[j, k] * delta[j] of each row block come in with random idle cycles
and garbage in between; each delta_{l-1}[k] must leave for bank k mod P, slot
dbase(l-1) + k // P, exactly tree_stages(P) + 5 cycles after its last block's beat.
"""
import pytest

from hdl.layout import tree_stages

from .helpers import backward_reduction, backward_stimulus, check_backward, config, run_rtl, run_schedule

CASES = ["l4-b1-ne", "deep-l1", "deep-l3", "deep-l9", "softmax-l2"]


@pytest.mark.parametrize("name", CASES)
def test_backward_reduction_matches_golden(name):
    cfg, lay = config(name)
    dut = backward_reduction(cfg, lay)
    sched, want, saturated = backward_stimulus(cfg, lay, dut, n_samples=10, seed=7)
    assert saturated > 0, "no sum leaves the error format: the stimulus does not saturate"
    check_backward(cfg, lay, dut, want, run_schedule(dut, sched))


def test_nine_lanes_take_two_tree_levels():
    assert tree_stages(9) == 2 and tree_stages(4) == 1


@pytest.mark.rtl
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_backward_reduction_rtl(simulator, require_tool, tmp_path):
    """The same stimulus through the generated Verilog: 9 lanes, a two-level tree."""
    require_tool({"icarus": "iverilog"}.get(simulator, simulator))
    cfg, lay = config("deep-l9")
    dut = backward_reduction(cfg, lay)
    sched, want, _ = backward_stimulus(cfg, lay, dut, n_samples=10, seed=7)
    check_backward(cfg, lay, dut, want, run_rtl(dut, sched, simulator, "trainer-backward-deep-l9", tmp_path))
