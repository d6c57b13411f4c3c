"""An exploration's files: ``results.csv`` (one row per point), ``report.json`` and
``pareto.png`` (accuracy against cost, the Pareto front marked)."""
from __future__ import annotations

import csv
import math
from pathlib import Path

from .space import show_value
from .store import ROW_FIELDS

__all__ = ["write_csv", "pareto_front", "COSTS", "choose_cost", "plot_pareto"]

# cost axis -> (row field, axis label); lower is better
COSTS = {
    "luts": ("luts", "LUTs"),
    "dsps": ("dsps", "DSP blocks"),
    "multipliers": ("multipliers", "lane multipliers"),
    "cycles": ("cycles_per_sample", "cycles per training sample"),
    "bits": ("format_bits", "bits per act + weight + error word"),
}


def write_csv(path, keys: tuple, rows: list) -> Path:
    """results.csv: point hash, index, the varied keys (formats as ``Q6.10``), ROW_FIELDS."""
    path = Path(path)
    fields = ["point", "index", *keys, *ROW_FIELDS]
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for row in sorted(rows, key=lambda r: r["index"]):
            w.writerow({k: _cell(row.get(k), k in keys) for k in fields})
    tmp.replace(path)  # a reader never sees half a file
    return path


def _cell(v, varied: bool):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if varied or isinstance(v, (dict, list, tuple)):
        return show_value(v)
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def choose_cost(cost: str, rows: list) -> str:
    """``auto``: LUTs when synthesis ran; else the first of format bits, multipliers (lanes)
    and cycles per sample that differs between the points; else format bits."""
    if cost != "auto":
        return cost
    if any(r.get("luts") is not None for r in rows):
        return "luts"
    for name in ("bits", "multipliers", "cycles"):
        if len({r.get(COSTS[name][0]) for r in rows if r.get(COSTS[name][0]) is not None}) > 1:
            return name
    return "bits"


def pareto_front(points: list) -> list:
    """Indices of the (cost, accuracy) pairs no other pair beats: lower or equal cost with
    higher or equal accuracy, one of them strictly. Sorted by cost."""
    front = []
    for i, (c, a) in enumerate(points):
        if not any((c2 <= c and a2 >= a) and (c2 < c or a2 > a) for j, (c2, a2) in enumerate(points) if j != i):
            front.append(i)
    return sorted(front, key=lambda i: points[i])


def plot_pareto(path, rows: list, cost: str, title: str = "") -> tuple[Path, list]:
    """pareto.png: fixed-point test accuracy against the cost, every finished point a dot,
    the front joined and ringed, float accuracy as a faint marker above each point.
    Returns the path and the rows on the front."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    field, label = COSTS[cost]
    use = [r for r in rows if r.get(field) is not None and r.get("fixed_test_accuracy") is not None]
    xy = [(float(r[field]), float(r["fixed_test_accuracy"])) for r in use]
    front = [use[i] for i in pareto_front(xy)]
    fig = Figure(figsize=(7, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if use:
        ax.scatter([x for x, _ in xy], [y for _, y in xy], s=18, color="C0", label="fixed point (golden)")
        fl = [(float(r[field]), r["float_test_accuracy"]) for r in use if r.get("float_test_accuracy") is not None]
        ax.scatter([x for x, _ in fl], [y for _, y in fl], s=80, marker="_", linewidths=1.5, color="0.55",
                   label="float (same point)", zorder=1)
        fx = [float(r[field]) for r in front]
        fy = [float(r["fixed_test_accuracy"]) for r in front]
        ax.plot(fx, fy, "-o", color="C3", mfc="none", ms=9, label="Pareto front")
    else:
        ax.text(0.5, 0.5, f"no finished point has {label} and an accuracy", ha="center", transform=ax.transAxes)
    ax.set_xlabel(f"{label} (lower is better)")
    ax.set_ylabel("test accuracy")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if use:
        ax.legend(loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path, front
