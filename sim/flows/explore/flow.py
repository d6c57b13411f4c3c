"""The explore job without the CLI: run a space, keep results.csv current as results arrive,
and finish with report.json and pareto.png."""
from __future__ import annotations

import time
from pathlib import Path

from .outputs import COSTS, choose_cost, plot_pareto, write_csv
from .runner import run_space
from .space import Space
from .stages import STAGES
from .store import ResultStore, point_row

__all__ = ["run_explore", "parse_stages", "StageError"]


class StageError(ValueError):
    """A bad --stages / --target combination (a user error)."""


def parse_stages(text: str, target: str | None) -> tuple:
    """``"golden,cycles,synth"`` -> the stages in run order; golden is always run."""
    names = [s.strip() for s in (text or "").split(",") if s.strip()]
    unknown = [s for s in names if s not in STAGES]
    if unknown:
        raise StageError(f"--stages {text!r}: unknown stage {unknown[0]!r}; allowed: {', '.join(STAGES)} "
                         f"(comma-separated; golden always runs)")
    stages = tuple(s for s in STAGES if s in names or s == "golden")
    if "synth" in stages and not target:
        raise StageError("--stages synth needs --target ecp5-85k or ice40-up5k (the device to synthesize for)")
    return stages


def run_explore(client, space: Space, stages: tuple, out_dir, options: dict | None = None, on_event=None,
                on_row=None, cost: str = "auto", title: str = "", extra_report: dict | None = None) -> dict:
    """Run ``space`` on ``client`` into ``out_dir``; return the report (also report.json).

    ``on_event`` gets every runner event (runner.Event); ``on_row(row)`` each point's row once
    all its stages have answered. results.csv is rewritten after every result, so it always
    holds what has finished.
    """
    from sim.report import write_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = ResultStore(out)
    options = dict(options or {}, out_dir=str(out.resolve()))
    options.setdefault("build_root", str((out / "build").resolve()))
    by_key = {p.key: p for p in space.points}
    csv_path = out / "results.csv"

    def rows():
        return [point_row(p, stages, store.results.get(p.key, {})) for p in space.points]

    def event(ev):
        if ev.kind in ("result", "failed") and ev.point is not None:
            write_csv(csv_path, space.keys, rows())
            row = point_row(by_key[ev.point.key], stages, store.results.get(ev.point.key, {}))
            if on_row is not None and row["status"] != "pending" and _is_last_answer(ev, stages):
                on_row(row)
        if on_event is not None:
            on_event(ev)

    t0 = time.perf_counter()
    summary = run_space(client, space, stages, options, store, on_event=event)
    seconds = time.perf_counter() - t0
    all_rows = rows()
    write_csv(csv_path, space.keys, all_rows)
    cost = choose_cost(cost, all_rows)
    # every point with an accuracy and the cost figure (a design too big for the device has
    # no LUT count, so it drops out of a LUT plot by itself); never a mismatch or a failure
    plotted = [r for r in all_rows if r["status"] in ("ok", "does_not_fit")]
    png, front = plot_pareto(out / "pareto.png", plotted, cost, title=title)
    counts = {}
    for r in all_rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    report = {
        "command": "explore",
        **(extra_report or {}),
        "stages": list(stages),
        "varied_keys": list(space.keys),
        "points": len(space),
        "status_counts": counts,
        "tasks_submitted": summary.tasks_submitted,
        "points_resumed": summary.resumed,
        "retried": [{"point": k, "stage": s, "error": m} for k, s, m in summary.retried],
        "failed": [{"point": k, "stage": s, "error": m} for k, s, m in summary.failed],
        "lost_workers": summary.lost_workers,
        "seconds": round(seconds, 3),
        "cost": {"metric": cost, "field": COSTS[cost][0], "label": COSTS[cost][1]},
        "pareto_front": [r["point"] for r in front],
        "results_csv": str(csv_path),
        "pareto_png": str(png),
        "rows": all_rows,
    }
    write_report(out, report)
    return report


def _is_last_answer(ev, stages: tuple) -> bool:
    """The event completes its point: the last stage answered, or a stage failed for good."""
    return ev.kind == "failed" or ev.stage == stages[-1]
