"""The cycles stage's formula against the hardware's own cycle counter (amaranth.sim):
a short training run through the ``train`` job's host counts the isolated cycles for its
first sample and the streaming cycles for each one after it."""
from __future__ import annotations

import pytest

from golden.config import load_config
from sim.flows.explore import cycles
from sim.flows.explore.stages import run_stage
from sim.train_job import run_train

IRIS = load_config("examples/iris.toml")
XOR = load_config("examples/xor.toml")

CASES = [
    ("iris-softmax-4lanes", IRIS),                       # softmax, first layer short
    ("iris-softmax-1lane", IRIS.with_(lanes=1)),        # softmax, many blocks
    ("iris-momentum-2lanes", IRIS.with_(lanes=2, optimizer="momentum", learning_rate=0.005)),
    ("xor-deep-2lanes", XOR.with_(lanes=2, layers=(2, 5, 4, 3, 1), activations=("sigmoid",) * 4)),
]


def test_the_cases_cover_both_schedules():
    assert {cycles._short(c) for _, c in CASES} == {True, False}
    assert {c.activations[-1] for _, c in CASES} == {"softmax", "sigmoid"}


@pytest.mark.parametrize("name,cfg", CASES, ids=[c[0] for c in CASES])
def test_formula_equals_the_hardware_counter(name, cfg):
    r = run_train(cfg, "amaranth", dataset="iris" if cfg.layers[0] == 4 else None, epochs=1, max_samples=6,
                  check_params="signature", evaluate=False)
    assert r["mismatches"] == 0
    n = r["samples"]
    assert n >= 4
    counted = r["history"][-1]["train_cycles"]
    assert counted == cycles.isolated_cycles(cfg) + (n - 1) * cycles.streaming_cycles(cfg)


def test_figures_follow_the_definitions():
    f = cycles.cycle_figures(IRIS)
    assert f["useful_macs_per_sample"] == 2 * (4 * 8 + 8 * 3) + 8 * 3
    assert f["ideal_cycles_per_sample"] == f["useful_macs_per_sample"] / 4
    assert f["mac_utilization"] == pytest.approx(f["useful_macs_per_sample"] / (f["cycles_per_sample"] * 4))
    assert f["cycles_per_sample_isolated"] - f["cycles_per_sample"] == 4 + 3  # the loading, hidden


def test_adam_is_not_covered_and_says_so():
    adam = XOR.with_(optimizer="adam", learning_rate=0.1)
    with pytest.raises(cycles.NotCovered, match="adam"):
        cycles.isolated_cycles(adam)
    from golden.config import config_to_dict
    r = run_stage("cycles", config_to_dict(adam), {"stage": "golden", "status": "ok"}, {})
    assert r["status"] == "not_covered" and "rtl stage" in r["message"]
