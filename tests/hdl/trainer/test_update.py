"""UpdateEngine (hdl/trainer/update.py) alone in amaranth.sim, bit-exact with golden.

Random act codes and deltas per sample, fed as the trainer feeds them (update beats in
the lanes' LFSR order, random idle cycles, garbage on lanes past the layer); every
parameter write equals golden FixedMLP.apply_update and lands UPDATE_LATENCY -
PIPE_LATENCY cycles after the beat's stage A, the signature equals
golden.signature.params_signature, s_valid/f_valid follow the beat by 1 and 3 cycles.
"""
import pytest

from .helpers import check_update, config, run_rtl, run_schedule, update_engine, update_stimulus

CASES = ["l4-b1-ne", "l3-b2-sr", "l1-b2-ne", "l1-b1-sr", "softmax-l2"]


@pytest.mark.parametrize("name", CASES)
def test_update_engine_matches_golden(name):
    cfg, lay = config(name)
    dut = update_engine(cfg, lay)
    stim = update_stimulus(cfg, lay, dut, n_samples=12, seed=7)
    updates, saturated, ties = stim.updates, stim.saturated, stim.ties
    assert updates == 12 // cfg.batch_size and saturated > 0, "the stimulus does not saturate"
    assert ties > 0 or cfg.rounding == "stochastic", "the stimulus has no rounding ties"
    check_update(cfg, stim, run_schedule(dut, stim.sched))


@pytest.mark.rtl
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_update_engine_rtl(simulator, require_tool, tmp_path):
    """The same stimulus through the generated Verilog: 3 lanes, batch 2, stochastic."""
    require_tool({"icarus": "iverilog"}.get(simulator, simulator))
    cfg, lay = config("l3-b2-sr")
    dut = update_engine(cfg, lay)
    stim = update_stimulus(cfg, lay, dut, n_samples=12, seed=7)
    check_update(cfg, stim, run_rtl(dut, stim.sched, simulator, "trainer-update-l3-b2-sr", tmp_path))
