"""What every CLI command shares: the error path, report.json, loss plots, progress, tables.

Only the standard library and click are imported at module level (``backprop-fpga
--help`` stays fast); rich, matplotlib and golden/ are imported where they are used.

Error path
    A user error (bad config, bad dataset, a config the hardware cannot hold, an output
    directory that cannot be written) prints one line ``error: ...`` to stderr and exits
    with code 2, without a traceback. Commands either let :class:`golden.config.ConfigError`,
    :class:`golden.datasets.DatasetError` or :class:`hdl.layout.HardwareLimitError`
    propagate (the CLI group turns them into that line, see :func:`as_user_error`), or
    call :func:`fail` themselves. :func:`register_user_error` adds another exception type.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import click

__all__ = [
    "EXIT_USER_ERROR", "UserError", "fail", "register_user_error", "as_user_error",
    "prepare_out_dir", "write_report", "plot_losses", "console", "progress_bar", "epoch_filter", "TextTable", "fmt",
]

EXIT_USER_ERROR = 2

# "module:Class" of exceptions that are the user's mistake, not a bug. Resolved lazily
# through sys.modules: an exception that was raised has its module imported already, and
# the CLI need not import golden/ or hdl/ (Amaranth) to recognise it.
_USER_ERRORS = [
    "golden.config:ConfigError",
    "golden.datasets:DatasetError",
    "hdl.layout:HardwareLimitError",
]


class UserError(click.ClickException):
    """A problem with the user's input: shown as one line ``error: ...``, exit code 2."""

    exit_code = EXIT_USER_ERROR

    def __init__(self, message: str):
        lines = [line.strip() for line in str(message).splitlines() if line.strip()]
        super().__init__(" ".join(lines))  # always one line

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", file=file, err=file is None)


def fail(message: str):
    """Stop the command with ``error: message`` on stderr and exit code 2."""
    raise UserError(message)


def register_user_error(spec: str) -> None:
    """Treat exceptions of ``"package.module:ClassName"`` (and subclasses) as user errors."""
    if ":" not in spec:
        raise ValueError(f"expected 'package.module:ClassName', got {spec!r}")
    if spec not in _USER_ERRORS:
        _USER_ERRORS.append(spec)


def as_user_error(exc: BaseException):
    """A :class:`UserError` for ``exc`` if it is a registered user error, else ``None``."""
    for spec in _USER_ERRORS:
        module_name, _, cls_name = spec.partition(":")
        module = sys.modules.get(module_name)
        cls = getattr(module, cls_name, None) if module is not None else None
        if isinstance(cls, type) and isinstance(exc, cls):
            return UserError(str(exc))
    return None


# ---- report.json -------------------------------------------------------------------

def _clean(obj):
    """JSON-ready: NaN/inf become null, numpy scalars and arrays become Python values."""
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy arrays and scalars
        return _clean(obj.tolist())
    if hasattr(obj, "item") and callable(obj.item):
        return _clean(obj.item())
    return obj


def prepare_out_dir(out_dir) -> Path:
    """Create ``out_dir`` before a long run, so an unwritable one fails at once (exit 2)."""
    path = Path(out_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        fail(f"cannot create output directory {str(path)!r}: {e.strerror or e}")
    return path


def write_report(out_dir, report: dict, cfg=None) -> Path:
    """Write ``out_dir/report.json`` (indented; NaN as null) and return its path.

    With ``cfg`` (a :class:`golden.config.Config`) the config is echoed under ``"config"``
    in the TOML layout of ``golden.config.config_to_dict``, so the report says exactly what
    ran. A directory that cannot be written is a user error.
    """
    report = dict(report)
    if cfg is not None:
        from golden.config import config_to_dict
        report["config"] = config_to_dict(cfg)
    path = Path(out_dir) / "report.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_clean(report), indent=2) + "\n")
    except OSError as e:
        fail(f"cannot write {str(path)!r}: {e.strerror or e}")
    return path


# ---- loss plot -----------------------------------------------------------------------

def plot_losses(path, series: dict, title: str = "", ylabel: str = "training loss", xlabel: str = "epoch",
                styles: dict | None = None) -> Path:
    """Write one PNG with a curve per named series, e.g. ``{"float": [...], "fixed": [...]}``.

    Point i of a series is plotted at x = i (epoch 0, 1, ...). ``None``/NaN points are gaps.
    The y axis is logarithmic when every plotted value is positive. ``styles`` may give a
    series matplotlib line keywords (``{"adam fixed": {"color": "C2", "linestyle": "--"}}``);
    the others cycle through solid, dashed, dotted and dash-dot. Uses the Agg canvas
    directly, so no display and no global pyplot state are involved.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    values = []
    for (name, ys), style in zip(series.items(), ("-", "--", ":", "-.") * 4):
        ys = [math.nan if v is None else float(v) for v in ys]
        values += [v for v in ys if math.isfinite(v)]
        kw = (styles or {}).get(name) or {"linestyle": style}
        ax.plot(range(len(ys)), ys, label=name, marker="o" if len(ys) == 1 else None, **kw)
    if values and min(values) > 0:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if series:
        ax.legend()
    fig.tight_layout()
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    except OSError as e:
        fail(f"cannot write {str(path)!r}: {e.strerror or e}")
    return path


# ---- console output ------------------------------------------------------------------

def console():
    """A rich console on stdout for plain text: no markup (paths may hold ``[...]``), no
    highlighting, and no wrapping at 80 columns when writing to a pipe or a log."""
    from rich.console import Console
    return Console(highlight=False, markup=False, soft_wrap=True)


def progress_bar(con, description: str, total: int | None):
    """A rich progress bar and its task: ``prog, task = progress_bar(con, "training", n)``.

    Use ``with prog:``, ``prog.advance(task)`` / ``prog.update(task, completed=...,
    description=...)``, and ``prog.console.print(...)`` for lines above the bar. On a
    console that is not interactive (a pipe, a file) or under ``CI=true`` the bar is
    disabled and prints nothing, so logs hold only the command's own lines (its rows).
    """
    import os

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    prog = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=con, transient=True,
                    disable=not con.is_interactive or os.environ.get("CI") == "true")
    task = prog.add_task(description, total=total)
    return prog, task


def epoch_filter(epochs: int, max_rows: int = 20):
    """Which epochs a table prints: every k-th (k chosen so at most ``max_rows`` rows,
    from epoch 0) plus the last, e.g. 500 epochs -> 0, 25, ..., 475, 499."""
    k = max(1, math.ceil(epochs / max_rows))
    return lambda e: e % k == 0 or e == epochs - 1


class TextTable:
    """Plain fixed-width rows, printed one at a time as results arrive (pipe-friendly).

    ``columns``: (title, digits) pairs; digits is used for floats (see :func:`fmt`).
    """

    def __init__(self, columns):
        self.columns = [(title, digits, max(len(title), 7 if digits is None else digits + 3))
                        for title, digits in columns]

    def header(self) -> str:
        return " ".join(f"{title:>{w}}" for title, _, w in self.columns)

    def row(self, *values) -> str:
        return " ".join(f"{fmt(v, 4 if d is None else d):>{w}}" for v, (_, d, w) in zip(values, self.columns))


def fmt(v, digits: int = 4) -> str:
    """A number for a table: floats with ``digits`` decimals, None/NaN as ``-``."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)
