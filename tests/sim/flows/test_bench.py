"""``backprop-fpga bench``: projected training throughput (Fmax / cycles per sample) next to
the host CPU's float training speed."""
import dataclasses
import json

import pytest
from click.testing import CliRunner

from golden.config import load_config
from sim.cli import main
from sim.flows.bench import cpu_float_throughput, fmax_from_report, projected_throughput


def _fmax_file(tmp_path, **fields):
    path = tmp_path / "report.json"
    rep = {"target": "ecp5-85k", "fmax_mhz": 25.06, "timing_met": False,
           "config": {"layers": [2, 4, 1], "lanes": 4}, **fields}
    path.write_text(json.dumps(rep))
    return path


def test_cpu_float_throughput_is_measured():
    r = cpu_float_throughput(load_config("examples/xor.toml"), samples=300)
    assert r["cpu_float_samples"] == 300
    assert r["cpu_float_seconds"] > 0
    assert r["cpu_float_samples_per_second"] == pytest.approx(300 / r["cpu_float_seconds"])
    assert max(r["cpu_float_runs_samples_per_second"]) == pytest.approx(r["cpu_float_samples_per_second"])
    with pytest.raises(ValueError):
        cpu_float_throughput(load_config("examples/xor.toml"), samples=0)


def test_cpu_float_throughput_steps_at_the_configs_batch_size(monkeypatch):
    """Like for like: the CPU trains with the config's batch size (whole batches), one
    BLAS thread."""
    from threadpoolctl import threadpool_info

    from golden.float_model import FloatMLP
    cfg = load_config("examples/digits.toml")
    cfg = dataclasses.replace(cfg, batch_size=8)
    seen, threads = [], []
    step = FloatMLP.step

    def spy(self, X, T):
        seen.append(len(X))
        threads.append(max(i["num_threads"] for i in threadpool_info()) if threadpool_info() else 1)
        return step(self, X, T)

    monkeypatch.setattr(FloatMLP, "step", spy)
    r = cpu_float_throughput(cfg, samples=60, repeats=1)
    assert r["cpu_float_batch_size"] == 8 and r["cpu_float_samples"] == 64  # 60 rounded up to 8 batches
    assert set(seen) == {8} and len(seen) == 8 + 8  # 8 warm-up batches, then the timed 8
    assert set(threads) == {1}
    assert cpu_float_throughput(cfg, samples=5, repeats=1, batch_size=1)["cpu_float_batch_size"] == 1


def test_fmax_from_report_and_projection(tmp_path):
    f = fmax_from_report(_fmax_file(tmp_path))
    assert f["fmax_mhz"] == 25.06 and f["fmax_target"] == "ecp5-85k"
    assert f["fmax_config"] == {"layers": [2, 4, 1], "lanes": 4}
    assert projected_throughput(100.0, 25.0) == pytest.approx(250_000.0)
    assert projected_throughput(None, 25.0) is None and projected_throughput(100.0, None) is None
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"fmax_mhz": None}))
    with pytest.raises(ValueError, match="fmax_mhz"):
        fmax_from_report(bad)


def test_bench_projects_throughput_from_an_fmax_report(tmp_path, require_tool):
    require_tool("verilator")
    fmax = _fmax_file(tmp_path)
    out = tmp_path / "b"
    r = CliRunner().invoke(main, ["bench", "--config", "examples/xor.toml", "--samples", "8",
                                  "--icarus-samples", "0", "--cpu-samples", "200",
                                  "--fmax-report", str(fmax), "--out", str(out)])
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["fmax_mhz"] == 25.06
    assert rep["cycles_per_sample"] > 0
    assert rep["projected_samples_per_second"] == pytest.approx(25.06e6 / rep["cycles_per_sample"])
    assert rep["cpu_float_samples_per_second"] > 0 and rep["cpu_float_samples"] == 200
    assert rep["fmax_source"] == str(fmax) and "fmax_config_mismatch" not in rep
    assert "projected FPGA training" in r.output and "CPU float training" in r.output


def test_bench_without_fmax_reports_cpu_only(tmp_path, require_tool):
    require_tool("verilator")
    out = tmp_path / "b"
    r = CliRunner().invoke(main, ["bench", "--config", "examples/xor.toml", "--samples", "4",
                                  "--icarus-samples", "0", "--cpu-samples", "100", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["fmax_mhz"] is None and rep["projected_samples_per_second"] is None
    assert rep["cpu_float_samples_per_second"] > 0
    assert "needs an Fmax" in r.output


def test_bench_bad_fmax_report_is_a_user_error(tmp_path):
    r = CliRunner().invoke(main, ["bench", "--config", "examples/xor.toml",
                                  "--fmax-report", str(tmp_path / "missing.json")])
    assert r.exit_code == 2 and "cannot be read" in r.output
    r = CliRunner().invoke(main, ["bench", "--config", "examples/xor.toml", "--target", "ecp5-85k",
                                  "--fmax-report", str(_fmax_file(tmp_path))])
    assert r.exit_code == 2 and "not both" in r.output


@pytest.mark.slow  # three Verilator builds (about 100 s): with the long suite
def test_bench_compares_the_optimizers_side_by_side(tmp_path, require_tool):
    """--compare-optimizers: the same network, batch and data with sgd, momentum and adam in
    one run; cycles from the hardware counter; Adam's bias queue costs cycles at batch 1
    (the next sample waits for it), and each optimizer's own multipliers are reported."""
    require_tool("verilator")
    out = tmp_path / "b"
    r = CliRunner().invoke(main, ["bench", "--config", "examples/xor.toml", "--samples", "8", "--icarus-samples", "0",
                                  "--cpu-samples", "50", "--compare-optimizers", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = json.loads((out / "report.json").read_text())["optimizers"]
    assert list(rows) == ["sgd", "momentum", "adam"]
    assert rows["sgd"]["ratio_to_sgd"] == 1.0 and rows["sgd"]["optimizer"]["multipliers"] == 0
    # MULT18X18D blocks: momentum, 2 cores x 4 lanes x (24-bit v: 2 pieces) x (20-bit mu: 2 pieces);
    # adam, per lane g g 1, c1 (g - m) 2, c2 (sq - v) 3, mantissa x R2 1, m r 1, (m r) alpha 3,
    # and once lr x R1 1 and two powers x beta 2 x 4
    assert rows["momentum"]["ratio_to_sgd"] >= 1.0 and rows["momentum"]["optimizer"]["multipliers"] == 2 * 4 * 2 * 2
    assert rows["adam"]["ratio_to_sgd"] > 1.0 and rows["adam"]["optimizer"]["multipliers"] == 4 * 11 + 1 + 8
    assert "x SGD" in r.output and "adam" in r.output
