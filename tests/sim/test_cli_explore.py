"""``backprop-fpga explore`` on the command line: a run's files, and one clear line with
exit code 2 for each kind of bad input."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest


def explore(*args):
    return subprocess.run([sys.executable, "-m", "sim.cli", "explore", *args], capture_output=True, text=True,
                          timeout=120)


def test_a_run_writes_csv_report_and_pareto_plot(tmp_path):
    space = tmp_path / "s.toml"
    space.write_text('"formats.weight.frac_bits" = [12, 30]\n"training.rounding" = ["nearest_even", "stochastic"]\n')
    out = tmp_path / "out"
    r = explore("--config", "examples/xor.toml", "--space", str(space), "--epochs", "20", "--workers", "1",
                "--stages", "golden", "--out", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    lines = (out / "results.csv").read_text().splitlines()
    assert lines[0].startswith("point,index,formats.weight.frac_bits,training.rounding,status,")
    assert len(lines) == 5
    rep = json.loads((out / "report.json").read_text())
    assert rep["status_counts"] == {"ok": 2, "invalid": 2}
    assert rep["stages"] == ["golden"] and rep["cost"]["metric"] == "bits"
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "invalid: config field 'formats.weight'" in r.stdout
    assert r.stdout.count("  ok") == 2


@pytest.mark.parametrize("args, needle", [
    (["--stages", "golden,synth"], "--stages synth needs --target"),
    (["--stages", "golden,timing"], "unknown stage 'timing'; allowed: golden, cycles, synth, rtl"),
    (["--target", "ecp5-85k"], "--target ecp5-85k is used by the synth stage only"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "either --workers"),
    (["--scheduler", "tcp://127.0.0.1:1", "--connect-timeout", "0.5"], "cannot reach the Dask scheduler at"),
])
def test_bad_options_exit_2_with_one_line(tmp_path, args, needle):
    space = tmp_path / "s.toml"
    space.write_text('"hardware.lanes" = [1]\n')
    r = explore("--config", "examples/xor.toml", "--space", str(space), "--out", str(tmp_path / "o"), *args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


@pytest.mark.parametrize("text, needle", [
    ('"hardware.lane" = [1]', "key 'hardware.lane': unknown config key 'lane'; allowed in [hardware]: lanes"),
    ('"hardware.lanes" = []', "key 'hardware.lanes' has an empty list"),
])
def test_a_bad_space_exits_2_naming_the_key(tmp_path, text, needle):
    space = tmp_path / "s.toml"
    space.write_text(text)
    r = explore("--config", "examples/xor.toml", "--space", str(space), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and needle in r.stderr, r.stderr
