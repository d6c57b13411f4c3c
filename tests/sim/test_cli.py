"""The CLI: reports, plots and exit codes; bad input gets one clear message and code 2."""
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from golden.config import load_config
from golden.datasets import load_dataset
from golden.train import train_golden
from sim.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_golden_report_matches_a_direct_golden_run(tmp_path):
    out = tmp_path / "g"
    r = run("golden", "--config", "examples/xor.toml", "--epochs", "30", "--out", str(out))
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "report.json").read_text())
    cfg = load_config("examples/xor.toml")
    direct = train_golden(cfg, load_dataset(cfg), epochs=30).history[-1]
    assert rep["epochs"] == 30
    assert rep["fixed_test_accuracy"] == direct.fixed_test_accuracy
    assert rep["float_test_accuracy"] == direct.float_test_accuracy
    assert rep["fixed_loss"] == pytest.approx(direct.fixed_loss, rel=0, abs=0)
    assert rep["config"]["network"]["layers"] == [2, 4, 1]
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_on_amaranth_writes_the_report_fields(tmp_path):
    out = tmp_path / "t"
    r = run("train", "--config", "examples/xor.toml", "--sim", "amaranth", "--epochs", "3", "--out", str(out))
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "report.json").read_text())
    for key in ("mismatches", "samples", "rtl_test_accuracy", "fixed_test_accuracy", "float_test_accuracy",
                "cycles_per_sample", "mac_utilization", "sim_cycles_per_second"):
        assert key in rep
    assert rep["mismatches"] == 0 and rep["samples"] == 12
    assert rep["cycles_per_sample"] > rep["ideal_cycles_per_sample"] > 0
    assert "PASS" in r.output


@pytest.mark.parametrize("toml,needle", [
    ("[network]\nlayerz = [2, 1]\n", "network.layerz"),
    ("[training]\nrounding = 'up'\n", "training.rounding"),
    ("[network]\nactivations = ['softmax', 'sigmoid']\n", "softmax"),
    ("not toml at all [", "not valid TOML"),
])
@pytest.mark.parametrize("command", ["golden", "train"])
def test_bad_config_exits_2_with_one_message(tmp_path, toml, needle, command):
    bad = tmp_path / "bad.toml"
    bad.write_text(toml)
    r = subprocess.run([sys.executable, "-m", "sim.cli", command, "--config", str(bad)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert needle in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_missing_config_and_bad_dataset_exit_2(tmp_path):
    r = run("golden", "--config", str(tmp_path / "nope.toml"))
    assert r.exit_code == 2 and "cannot be read" in r.output
    r = run("golden", "--config", "examples/xor.toml", "--dataset", "mnist")
    assert r.exit_code == 2 and "unknown dataset 'mnist'" in r.output
    r = run("golden", "--config", "examples/xor.toml", "--dataset", "iris")
    assert r.exit_code == 2 and "4 features but network.layers[0] = 2" in r.output


def test_config_too_big_for_the_hardware_exits_2(tmp_path):
    big = tmp_path / "big.toml"
    big.write_text(open("examples/xor.toml").read().replace("layers = [2, 4, 1]", "layers = [2, 5000, 1]"))
    r = run("train", "--config", str(big), "--sim", "amaranth")
    assert r.exit_code == 2 and "exceeds the limit" in r.output
