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
