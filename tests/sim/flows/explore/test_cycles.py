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


# The samples schedule (lane p trains sample p of a group): groups of P back to back
# through the train job's host (it sends a group while the one before trains), every group
# completing its mini-batch (batch = lanes: with Adam, each group writes its queued biases).
SAMPLES = [
    ("iris-samples-2lanes", IRIS.with_(parallelism="samples", lanes=2, batch_size=2)),  # softmax
    ("iris-samples-2lanes-adam", IRIS.with_(parallelism="samples", lanes=2, batch_size=2, optimizer="adam",
                                            learning_rate=0.01)),
    # a layer 0 of more weights than the update's latency: the next group waits for the
    # queued biases only because of Adam
    ("iris-samples-2lanes-adam-long-layer0", IRIS.with_(parallelism="samples", lanes=2, batch_size=2,
                                                        optimizer="adam", learning_rate=0.01, layers=(4, 12, 3))),
]


@pytest.mark.parametrize("name,cfg", SAMPLES, ids=[c[0] for c in SAMPLES])
def test_samples_figures_equal_the_hardware_counter(name, cfg):
    r = run_train(cfg, "amaranth", dataset="iris", epochs=1, max_samples=3 * cfg.lanes, check_params="signature",
                  evaluate=False)
    assert r["mismatches"] == 0
    groups = r["samples"] // cfg.lanes
    assert groups == 3
    counted = r["history"][-1]["train_cycles"]
    # the first group sent to an idle trainer, each later one back to back
    P = cfg.lanes
    assert counted == cycles.isolated_cycles(cfg) * P + (groups - 1) * cycles.streaming_cycles(cfg) * P
    f = cycles.cycle_figures(cfg)
    assert f["mac_utilization"] == pytest.approx(f["useful_macs_per_sample"] / (f["cycles_per_sample"] * P))


def test_samples_figures_are_not_the_rows_schedules():
    """Digits at 16 lanes (docs/trainer.md: 5,102 cycles per group back to back, 318.9 per
    sample, utilization 0.991); a batch of several groups averages them, with Adam its
    last group's queued biases."""
    from hdl.trainer.samples.schedule import adam_bias_queue, steady_group_cycles
    digits = load_config("examples/digits-samples.toml")
    f = cycles.cycle_figures(digits)
    assert f["cycles_per_sample"] == pytest.approx(5102 / 16) and f["mac_utilization"] == pytest.approx(0.991, abs=1e-3)
    assert f["cycles_per_sample"] != cycles.cycle_figures(digits.with_(parallelism="rows"))["cycles_per_sample"]
    adam = IRIS.with_(parallelism="samples", lanes=2, batch_size=4, optimizer="adam")
    assert adam_bias_queue(adam) == 8 + 3  # UPD1 and UPD0 back to back: no free cycle for a bias
    assert cycles.streaming_cycles(adam) == (2 * steady_group_cycles(adam) + adam_bias_queue(adam)) / 4
    # a first layer longer than the update's latency: with Adam the next group still waits
    # for the queued biases after a group that applied (with SGD it does not)
    long0 = XOR.with_(parallelism="samples", lanes=2, batch_size=2, layers=(8, 8, 1))
    assert steady_group_cycles(long0, apply=True) == steady_group_cycles(long0)
    long0 = long0.with_(optimizer="adam")
    assert steady_group_cycles(long0, apply=True) > steady_group_cycles(long0)


def test_a_space_over_both_schedules_runs_end_to_end(tmp_path):
    """rows and samples side by side; a batch that is not a multiple of the lanes is an
    invalid point with the config's own message, not a crash."""
    from distributed import Client, LocalCluster

    from golden.config import ConfigError, config_from_dict, config_to_dict
    from sim.flows.explore.flow import run_explore
    from sim.flows.explore.space import parse_space
    base = XOR.with_(batch_size=4, epochs=2)
    space = parse_space('"hardware.parallelism" = ["rows", "samples"]\n"hardware.lanes" = [2, 3]', base)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address="127.0.0.1:0") as cl, \
            Client(cl) as client:
        report = run_explore(client, space, ("golden", "cycles"), tmp_path)
    rows = {(r["hardware.parallelism"], r["hardware.lanes"]): r for r in report["rows"]}
    assert {k: r["status"] for k, r in rows.items()} == {
        ("rows", 2): "ok", ("rows", 3): "ok", ("samples", 2): "ok", ("samples", 3): "invalid"}
    d = config_to_dict(base.with_(lanes=3))
    d["hardware"]["parallelism"] = "samples"
    with pytest.raises(ConfigError) as e:
        config_from_dict(d)
    assert rows[("samples", 3)]["message"].endswith(str(e.value))
    want = cycles.cycle_figures(base.with_(parallelism="samples", lanes=2))["cycles_per_sample"]
    assert rows[("samples", 2)]["cycles_per_sample"] == pytest.approx(want)
    assert rows[("samples", 2)]["cycles_per_sample"] != rows[("rows", 2)]["cycles_per_sample"]
