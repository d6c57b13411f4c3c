"""``backprop-fpga``: the command-line interface (a click group).

Each subcommand lives in its own module under ``sim/commands/`` and is registered below
with one line. Heavy imports (golden/, hdl/, simulators) stay inside the commands so
``backprop-fpga --help`` is quick. Bad input (config, dataset, limits of the hardware)
ends with one line ``error: ...`` on stderr and exit code 2, never a traceback: see
``sim/report.py`` for that error path and the shared report/plot/progress helpers.
"""
from __future__ import annotations


import click

from . import report as rep


class CliGroup(click.Group):
    """A click group that turns registered user errors into ``error: ...`` and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as e:
            user = rep.as_user_error(e)
            if user is None:
                raise
            raise user from None


@click.group(cls=CliGroup)
@click.version_option(package_name="backprop-fpga")
def main():
    """Generate FPGA hardware that trains MLPs on chip, bit-exact with a NumPy golden model."""


# ---- subcommands: one module under sim/commands/ each, one line here ------------------
from .commands.golden import golden; main.add_command(golden)  # noqa: E402,E702
from .commands.train import train; main.add_command(train)  # noqa: E402,E702
from .commands.bench import bench; main.add_command(bench)  # noqa: E402,E702
from .commands.synth import synth; main.add_command(synth)  # noqa: E402,E702
from .commands.verilog import verilog; main.add_command(verilog)  # noqa: E402,E702
from .commands.build import build; main.add_command(build)  # noqa: E402,E702
from .commands.explore import explore; main.add_command(explore)  # noqa: E402,E702
from .commands.explore import explore_bench; main.add_command(explore_bench)  # noqa: E402,E702


if __name__ == "__main__":  # pragma: no cover
    main()
