"""Shared output of the CLI commands: report.json, loss plots, progress bars, tables.

Every command writes ``DIR/report.json`` (pretty JSON, NaN written as null) and prints a
readable summary; long runs show a progress bar that also works in a pipe or in CI.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

__all__ = ["write_report", "plot_losses", "progress_bar", "console", "fmt"]


def _clean(obj):
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return _clean(obj.item())
    return obj


def write_report(out_dir, report: dict) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.json"
    path.write_text(json.dumps(_clean(report), indent=2) + "\n")
    return path


def plot_losses(path, series: dict, title: str, ylabel: str = "training loss") -> Path:
    """One PNG with a curve per named series (epochs on x)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for (name, values), style in zip(series.items(), ("-", "--", ":", "-.")):
        ax.plot(range(len(values)), values, style, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if any(v is not None and v > 0 for vals in series.values() for v in vals):
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def console():
    from rich.console import Console
    return Console(highlight=False)


def progress_bar(con, description: str, total: int | None):
    """A rich progress bar; in a non-terminal (CI, pipe) rich prints nothing per update and
    the caller's per-epoch lines carry the progress."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                 console=con, transient=False, disable=not con.is_terminal)
    task = p.add_task(description, total=total)
    return p, task


def fmt(v, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)
