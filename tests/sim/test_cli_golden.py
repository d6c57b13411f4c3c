"""``backprop-fpga golden``: report.json agrees with a direct golden run, loss.png is a PNG,
the table is thinned on long runs, pipes and CI get plain text, and bad input ends with
one ``error: ...`` line and exit code 2."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from golden.config import config_to_dict, load_config
from golden.datasets import load_dataset
from golden.train import train_golden
from sim import report as rep
from sim.cli import main

ROOT = Path(__file__).resolve().parents[2]
XOR = str(ROOT / "examples" / "xor.toml")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def golden(*args):
    return CliRunner().invoke(main, ["golden", *map(str, args)])


def table_epochs(output: str) -> list[int]:
    """Epoch numbers of the printed table rows (lines of numbers starting with an int)."""
    rows = [line.split() for line in output.splitlines()]
    return [int(r[0]) for r in rows if len(r) == 7 and r[0].isdigit()]


def nan_to_none(d: dict) -> dict:
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in d.items()}


def test_report_matches_a_direct_golden_run(tmp_path):
    epochs = 45
    r = golden("--config", XOR, "--epochs", epochs, "--out", tmp_path)
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "report.json").read_text())

    cfg = load_config(XOR)
    run = train_golden(cfg, load_dataset(cfg), epochs=epochs)
    last = run.history[-1]
    assert report["epochs"] == epochs and report["dataset"] == "xor"
    assert report["train_samples"] == report["test_samples"] == 4
    for key in ("float_test_accuracy", "fixed_test_accuracy", "float_train_accuracy", "fixed_train_accuracy",
                "float_loss", "fixed_loss"):
        assert report[key] == getattr(last, key), key  # bit-identical: same code, same seeds
    assert report["history"] == [h.__dict__ for h in run.history]
    assert report["config"] == config_to_dict(cfg.with_(epochs=epochs))  # the run as it happened

    assert (tmp_path / "loss.png").read_bytes()[:8] == PNG_MAGIC
    assert table_epochs(r.output) == list(range(0, epochs, 3)) + [epochs - 1]  # <= 20 rows + the last
    assert "float test" in r.output and "wrote" in r.output


def test_dataset_override_and_regression_targets(tmp_path):
    """An .npz dataset replaces the config's; regression has no accuracy (null, '-')."""
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(40, 2))
    np.savez(tmp_path / "reg.npz", X=X, y=(0.25 + 0.5 * X[:, :1] * X[:, 1:]))
    r = golden("--config", XOR, "--dataset", tmp_path / "reg.npz", "--epochs", 2, "--out", tmp_path / "o")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["config"]["data"]["dataset"] == str(tmp_path / "reg.npz")
    assert report["dataset"] == "reg" and report["train_samples"] + report["test_samples"] == 40
    assert report["fixed_test_accuracy"] is None and report["fixed_loss"] > 0
    assert report["history"][-1] == nan_to_none(report["history"][-1])
    assert " - " in r.output.splitlines()[-3]  # last table row shows '-' for accuracies


def test_pipe_in_ci_gets_plain_lines(tmp_path):
    env = dict(os.environ, CI="true", PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-m", "sim.cli", "golden", "--config", XOR, "--epochs", "3",
                        "--out", str(tmp_path)], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                       env=env, cwd=tmp_path, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "\x1b" not in p.stdout and "\r" not in p.stdout  # no cursor movement or colour
    assert table_epochs(p.stdout) == [0, 1, 2]
    assert all(len(line) < 200 for line in p.stdout.splitlines())


BAD_TOML = {
    "unknown_key": ("[network]\nlayerz = [2, 1]\n", "network.layerz"),
    "unknown_section": ("[netwerk]\nlayers = [2, 1]\n", "netwerk"),
    "bad_value": ("[training]\nrounding = 'up'\n", "training.rounding"),
    "not_toml": ("[network\nlayers = ", "not valid TOML"),
}


@pytest.mark.parametrize("case", BAD_TOML)
def test_bad_config_exits_2_with_one_line(tmp_path, case):
    text, needle = BAD_TOML[case]
    (tmp_path / "bad.toml").write_text(text)
    r = golden("--config", tmp_path / "bad.toml", "--out", tmp_path / "o")
    assert_one_line_error(r, needle)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args,needle", [
    (["--config", "missing.toml"], "cannot be read"),
    (["--config", XOR, "--dataset", "mnist"], "unknown dataset 'mnist'"),
    (["--config", XOR, "--dataset", "iris"], "4 features but network.layers[0] = 2"),
    (["--config", XOR, "--dataset", "nope.npz"], "does not exist"),
    (["--config", XOR, "--dataset", "{tmp}/empty.npz"], "must hold arrays 'X' and 'y'"),
    (["--config", XOR, "--out", "{tmp}/file/o"], "cannot create output directory"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, args, needle):
    np.savez(tmp_path / "empty.npz", Z=np.zeros(3))
    (tmp_path / "file").write_text("")
    r = golden(*[a.format(tmp=tmp_path) for a in args])
    assert_one_line_error(r, needle)


def assert_one_line_error(r, needle):
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.stderr
    assert "Traceback" not in r.output
    assert isinstance(r.exception, SystemExit)  # a clean exit, not an uncaught exception


def test_real_process_prints_no_traceback(tmp_path):
    p = subprocess.run([sys.executable, "-m", "sim.cli", "golden", "--config", str(tmp_path / "missing.toml")],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.startswith("error: config field 'file'") and p.stderr.count("\n") == 1
    assert "Traceback" not in p.stderr


def test_help_imports_no_heavy_modules():
    """Commands import golden/, hdl/, numpy, matplotlib and rich lazily: --help stays fast."""
    code = ("import sys; from click.testing import CliRunner; from sim.cli import main\n"
            "for args in (['--help'], ['golden', '--help']):\n"
            "    r = CliRunner().invoke(main, args); assert r.exit_code == 0, r.output\n"
            "heavy = ('numpy', 'golden', 'hdl', 'amaranth', 'matplotlib', 'rich', 'cocotb')\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


def test_shared_helpers():
    shown = rep.epoch_filter(500)
    assert [e for e in range(500) if shown(e)] == list(range(0, 500, 25)) + [499]
    assert [e for e in range(3) if rep.epoch_filter(3)(e)] == [0, 1, 2]
    assert rep.as_user_error(RuntimeError("a bug")) is None  # bugs keep their traceback
    from golden.datasets import DatasetError
    err = rep.as_user_error(DatasetError("two\nlines"))
    assert isinstance(err, rep.UserError) and err.exit_code == 2 and err.format_message() == "two lines"


def test_ci_runs_exactly_the_readme_test_command():
    """README.md opens with two bash blocks (main job, tests); .ci/run runs the second verbatim."""
    import re
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    assert blocks[0].strip() == "pip install -e . && backprop-fpga train --config examples/xor.toml"
    test_line = blocks[1].strip()
    assert "\n" not in test_line and test_line.endswith("pytest -n 2")
    assert test_line in (ROOT / ".ci" / "run").read_text().splitlines()


# ---- the optimizer in the output and the report; --compare-optimizers ----------------------

def xor_with(tmp_path, name, **training):
    """examples/xor.toml with [training] keys changed, written to tmp_path/name.toml."""
    text = Path(XOR).read_text()
    for key, value in training.items():
        text = text.replace("[training]\n", f"[training]\n{key} = {value!r}\n".replace("'", '"'), 1)
        text = "\n".join(line for line in text.splitlines()
                         if not (line.startswith(f"{key} = ") and line != f"{key} = {value!r}".replace("'", '"')))
    path = tmp_path / f"{name}.toml"
    path.write_text(text + "\n")
    return path


@pytest.mark.parametrize("training, line, info", [
    ({}, "optimizer: sgd", {"name": "sgd", "learning_rate": 2.0}),
    ({"optimizer": "momentum", "momentum": 0.75, "learning_rate": 0.5},
     "optimizer: momentum, momentum 0.75 (fixed point: mu = 786432/2^20)",
     {"name": "momentum", "learning_rate": 0.5, "momentum": 0.75,
      "fixed_point": {"momentum_code": 786432, "momentum": 0.75}}),
    ({"optimizer": "adam", "learning_rate": 0.05, "beta2": 0.99, "epsilon": 0.002},
     "optimizer: adam, beta1 0.9, beta2 0.99, epsilon 0.002 (fixed point: beta1 = 1 - 104858/2^20, "
     "beta2 = 1 - 10486/2^20)",
     {"name": "adam", "learning_rate": 0.05, "beta1": 0.9, "beta2": 0.99, "epsilon": 0.002,
      "fixed_point": {"c1": 104858, "c2": 10486, "beta1": 1 - 104858 / 2 ** 20, "beta2": 1 - 10486 / 2 ** 20,
                      "adam_lr_code": round(0.05 * 2 ** 17), "alpha_frac_bits": 17}}),
])
def test_optimizer_is_printed_and_reported(tmp_path, training, line, info):
    cfg_path = xor_with(tmp_path, "cfg", **training)
    r = golden("--config", cfg_path, "--epochs", 3, "--out", tmp_path / "o")
    assert r.exit_code == 0, r.output
    assert line in r.output.splitlines()
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["optimizer"] == info
    for key, value in training.items():
        assert report["config"]["training"][key] == value
    cfg = load_config(cfg_path)
    last = train_golden(cfg, load_dataset(cfg), epochs=3).history[-1]
    assert report["fixed_loss"] == last.fixed_loss and report["float_loss"] == last.float_loss


def test_compare_optimizers_matches_three_direct_runs(tmp_path):
    epochs = 4
    r = golden("--config", XOR, "--epochs", epochs, "--out", tmp_path, "--compare-optimizers",
               "--lr", "adam=0.03")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["mode"] == "compare_optimizers" and report["epochs"] == epochs
    assert (tmp_path / "optimizers.png").read_bytes()[:8] == PNG_MAGIC
    assert report["plot"] == str(tmp_path / "optimizers.png") and not (tmp_path / "loss.png").exists()
    cfg = load_config(XOR).with_(epochs=epochs)
    assert report["config"] == config_to_dict(cfg)
    # xor is SGD with lr 2.0: momentum 0.9 gets 2.0 x (1 - 0.9) = 0.2; adam the --lr value
    want = {"sgd": 2.0, "momentum": 0.2, "adam": 0.03}
    assert [e["optimizer"]["name"] for e in report["runs"]] == ["sgd", "momentum", "adam"]
    for entry in report["runs"]:
        name = entry["optimizer"]["name"]
        assert entry["optimizer"]["learning_rate"] == want[name]
        c = cfg.with_(optimizer=name, learning_rate=want[name])
        run = train_golden(c, load_dataset(c), epochs=epochs)
        assert entry["history"] == [h.__dict__ for h in run.history], name
        assert entry["fixed_loss"] == run.history[-1].fixed_loss
    assert "comparing optimizers: sgd lr 2.0, momentum lr 0.2, adam lr 0.03" in r.output
    assert len(table_epochs(r.output)) == 3 * epochs
    assert "optimizer: adam, beta1 0.9" in r.output


def test_plot_option_names_the_png(tmp_path):
    r = golden("--config", XOR, "--epochs", 2, "--out", tmp_path / "o", "--plot", tmp_path / "pics" / "xor.png")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "pics" / "xor.png").read_bytes()[:8] == PNG_MAGIC
    assert not (tmp_path / "o" / "loss.png").exists()


def test_compare_learning_rate_defaults(tmp_path):
    from sim.commands.golden import compare_learning_rates, parse_lr_option
    mom = load_config(XOR).with_(optimizer="momentum", learning_rate=0.5, momentum=0.75)
    assert compare_learning_rates(mom, {}) == {"sgd": 2.0, "momentum": 0.5, "adam": 0.01}
    adam = load_config(XOR).with_(optimizer="adam", learning_rate=0.05)
    rates = parse_lr_option("sgd=1.5, momentum=0.15")
    assert compare_learning_rates(adam, rates) == {"sgd": 1.5, "momentum": 0.15, "adam": 0.05}
    assert compare_learning_rates(load_config(XOR), {"sgd": 1.0}) == {"sgd": 1.0, "momentum": 0.2, "adam": 0.01}


@pytest.mark.parametrize("args, needle", [
    (["--lr", "adam=0.01"], "--lr needs --compare-optimizers"),
    (["--compare-optimizers", "--lr", "adamw=0.01"], "NAME one of sgd, momentum, adam"),
    (["--compare-optimizers", "--lr", "adam"], "expected NAME=RATE pairs"),
    (["--compare-optimizers", "--lr", "adam=fast"], "'fast' is not a number (the learning rate of adam)"),
    (["--compare-optimizers", "--lr", "momentum=0.00001"],
     "--compare-optimizers: momentum with learning rate 1e-05: config field 'training.learning_rate'"),
    (["--config", "{adam}", "--compare-optimizers"], "no learning rate for sgd and momentum (the config's "
                                                     "optimizer is adam"),
])
def test_compare_optimizers_bad_input_exits_2_with_one_line(tmp_path, args, needle):
    adam = xor_with(tmp_path, "adam", optimizer="adam", learning_rate=0.05)
    args = [a.format(adam=adam) for a in args]
    if "--config" not in args:
        args = ["--config", XOR, *args]
    r = golden(*args, "--epochs", 1, "--out", tmp_path / "o")
    assert_one_line_error(r, needle)
