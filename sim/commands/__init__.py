"""The ``backprop-fpga`` subcommands: one module per command, registered in ``sim/cli.py``.

Adding a command ``foo``:

1. Write ``sim/commands/foo.py`` defining ``foo``, a ``@click.command()``. Import only
   click, ``sim.report`` and this package at module level; import golden/, hdl/ and the
   simulator runners inside the function, so ``backprop-fpga --help`` stays fast.
2. Register it in ``sim/cli.py`` with one line in the command list:
   ``from .commands.foo import foo; main.add_command(foo)``.

Conventions (see ``sim/commands/golden.py`` for a complete example):

- the shared options below (``--config``, ``--dataset``, ``--epochs``, ``--out``) so every
  command spells them the same; :func:`load_inputs` loads the config and dataset;
- user errors: raise (or let through) ``ConfigError``, ``DatasetError``,
  ``HardwareLimitError`` or call ``sim.report.fail(msg)``: the user sees one line
  ``error: ...`` and exit code 2 (``sim.report.register_user_error`` adds other types);
- results: ``sim.report.write_report(out_dir, report, cfg)`` writes ``report.json`` with
  the config echoed; ``sim.report.plot_losses`` the loss plot; ``sim.report.progress_bar``
  a progress bar that stays silent in pipes and CI logs.
"""
from __future__ import annotations

import click

from .. import report as rep

__all__ = ["config_option", "dataset_option", "epochs_option", "out_option", "load_inputs"]


def config_option(required: bool = True, default: str | None = None):
    """``--config FILE`` (the TOML config), passed to the command as ``config_path``."""
    return click.option("--config", "config_path", type=click.Path(dir_okay=False), required=required,
                        default=default, show_default=default is not None,
                        help="TOML config file (see examples/*.toml).")


dataset_option = click.option("--dataset", default=None, metavar="NAME|FILE.npz",
                              help="xor, iris, digits or an .npz file with arrays X and y "
                                   "(default: the config's data.dataset).")

epochs_option = click.option("--epochs", type=click.IntRange(min=1), default=None,
                             help="Training epochs (default: the config's training.epochs).")


def out_option(default: str):
    """``--out DIR`` (where report.json and plots go), passed as ``out_dir``."""
    return click.option("--out", "out_dir", type=click.Path(file_okay=False), default=default,
                        show_default=True, help="Output directory for report.json and plots.")


def load_inputs(config_path, dataset: str | None = None, epochs: int | None = None):
    """Load the config and the dataset; command-line overrides go into the config.

    Returns ``(cfg, ds)``. ``cfg`` carries ``--dataset`` and ``--epochs`` when given, so a
    report that echoes it describes the run that actually happened. Bad input raises
    :class:`sim.report.UserError` (one line, exit code 2).
    """
    from golden.config import load_config
    from golden.datasets import load_dataset

    try:
        cfg = load_config(config_path)
        changes = {k: v for k, v in (("dataset", dataset), ("epochs", epochs)) if v is not None}
        if changes:
            cfg = cfg.with_(**changes)
        ds = load_dataset(cfg, dataset)
    except Exception as e:
        user = rep.as_user_error(e)
        if user is None:
            raise
        raise user from None
    return cfg, ds
