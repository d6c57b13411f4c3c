"""results.csv rows, the Pareto front and its plot."""
from __future__ import annotations

import csv

from golden.config import load_config
from sim.flows.explore.outputs import choose_cost, pareto_front, plot_pareto, write_csv
from sim.flows.explore.space import parse_space
from sim.flows.explore.store import point_row

SPACE = parse_space('"formats.act.frac_bits" = [10, 30]\n"hardware.lanes" = [4]',
                    load_config("examples/iris.toml"))
OK, BAD = SPACE.points

GOLDEN = {"stage": "golden", "status": "ok", "float_test_accuracy": 0.96, "fixed_test_accuracy": 0.94,
          "float_loss": 0.1, "fixed_loss": 0.2}
CYCLES = {"stage": "cycles", "status": "ok", "cycles_per_sample": 96, "mac_utilization": 0.5}
SYNTH = {"stage": "synth", "status": "ok", "luts": 1000, "fmax_mhz": 96.0}


def test_pareto_front_keeps_what_nothing_beats():
    pts = [(10, 0.9), (20, 0.95), (15, 0.85), (20, 0.9), (30, 0.95), (5, 0.5), (10, 0.9)]
    # (15, .85) is beaten by (10, .9); (20, .9) by (20, .95); (30, .95) by (20, .95); the two
    # (10, .9) tie and both stay
    assert pareto_front(pts) == [5, 0, 6, 1]


def test_a_row_merges_the_stages_and_projects_throughput():
    row = point_row(OK, ("golden", "cycles", "synth"), {"golden": GOLDEN, "cycles": CYCLES, "synth": SYNTH})
    assert row["status"] == "ok" and row["message"] is None
    assert row["accuracy_drop"] == GOLDEN["float_test_accuracy"] - GOLDEN["fixed_test_accuracy"]
    assert row["projected_samples_per_second"] == 96e6 / 96
    assert row["formats.act.frac_bits"] == 10 and row["format_bits"] == 14 + 16 + 16


def test_row_status_names_the_first_stage_that_is_not_a_figure():
    pending = point_row(OK, ("golden", "cycles"), {"golden": GOLDEN})
    assert pending["status"] == "pending"
    nofit = {"stage": "synth", "status": "does_not_fit", "message": "LUTs over"}
    row = point_row(OK, ("golden", "cycles", "synth"), {"golden": GOLDEN, "cycles": CYCLES, "synth": nofit})
    assert row["status"] == "does_not_fit" and row["message"] == "synth: LUTs over"
    assert row["projected_samples_per_second"] is None
    adam = {"stage": "cycles", "status": "not_covered", "message": "adam"}
    row = point_row(OK, ("golden", "cycles"), {"golden": GOLDEN, "cycles": adam})
    assert row["status"] == "ok" and row["message"] == "cycles: adam"
    invalid = point_row(BAD, ("golden",), {})
    assert invalid["status"] == "invalid" and "formats.act" in invalid["message"]


def test_csv_has_the_varied_keys_and_the_figures(tmp_path):
    rows = [point_row(OK, ("golden", "cycles"), {"golden": GOLDEN, "cycles": CYCLES}), point_row(BAD, ("golden",), {})]
    write_csv(tmp_path / "results.csv", SPACE.keys, rows)
    with (tmp_path / "results.csv").open() as f:
        got = list(csv.DictReader(f))
    assert [r["formats.act.frac_bits"] for r in got] == ["10", "30"]
    assert [r["status"] for r in got] == ["ok", "invalid"]
    assert got[0]["fixed_test_accuracy"] == "0.94" and got[0]["cycles_per_sample"] == "96"
    assert got[1]["fixed_test_accuracy"] == "" and "formats.act" in got[1]["message"]


def test_cost_choice_and_plot(tmp_path):
    a = {"fixed_test_accuracy": 0.9, "float_test_accuracy": 0.95, "format_bits": 48, "multipliers": 4, "luts": None}
    b = dict(a, format_bits=36, fixed_test_accuracy=0.8)
    assert choose_cost("auto", [a, b]) == "bits"
    assert choose_cost("auto", [a, dict(a, multipliers=8)]) == "multipliers"
    assert choose_cost("auto", [a, dict(b, luts=10)]) == "luts"
    assert choose_cost("cycles", [a, b]) == "cycles"
    path, front = plot_pareto(tmp_path / "p.png", [a, b, dict(a, format_bits=40, fixed_test_accuracy=0.7)], "bits")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [r["format_bits"] for r in front] == [36, 48]
