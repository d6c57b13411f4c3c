"""``backprop-fpga``: the command-line interface (a click group).

Each subcommand lives in its own module under ``sim/commands/`` and is registered below
with one line. Heavy imports (golden/, hdl/, simulators) stay inside the commands so
``backprop-fpga --help`` is quick. Bad input (config, dataset, limits of the hardware)
ends with one line ``error: ...`` on stderr and exit code 2, never a traceback: see
``sim/report.py`` for that error path and the shared report/plot/progress helpers.
"""
from __future__ import annotations

import sys

import click

from . import report as rep
from .commands import load_inputs


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


# ---- commands still defined in this file ------------------------------------------------
# TODO(owners of train/bench): move each into sim/commands/<name>.py and replace it with
# one registration line above.

@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default="examples/xor.toml",
              show_default=True, help="TOML config file.")
@click.option("--dataset", default=None, help="xor, iris, digits or a .npz file (default: the config's).")
@click.option("--sim", "simulator", type=click.Choice(["verilator", "icarus", "amaranth"]), default="verilator",
              show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epochs (default: the config's).")
@click.option("--max-samples", type=click.IntRange(min=1), default=None,
              help="Train on at most this many samples per epoch (short runs).")
@click.option("--check-params", type=click.Choice(["every", "signature"]), default=None,
              help="After every update read back all parameters, or compare the parameter signature "
                   "(default: every for networks of <= 64 parameters). A full readback ends every run.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="out/train", show_default=True)
def train(config_path, dataset, simulator, epochs, max_samples, check_params, out_dir):
    """Train in RTL simulation and compare every output and update with the golden model."""
    from golden.config import ConfigError
    from hdl.layout import HardwareLimitError

    from .train_job import run_train

    cfg, ds = load_inputs(config_path, dataset)
    epochs = epochs or cfg.epochs
    con = rep.console()
    per_epoch = min(max_samples or len(ds.X_train), len(ds.X_train))
    con.print(f"train: {config_path}  layers {list(cfg.layers)}  {cfg.lanes} lanes  dataset {ds.name}  "
              f"{epochs} epochs x {per_epoch} samples  on {simulator}")
    every = max(1, epochs // 20)
    con.print(f"{'epoch':>6} {'rtl loss':>10} {'fixed loss':>10} {'float loss':>10} "
              f"{'rtl acc':>8} {'fixed acc':>9} {'float acc':>9} {'mismatches':>10}")
    prog, task = rep.progress_bar(con, "golden plan", epochs * per_epoch)
    state = {"samples": 0}

    def on_progress(rec):
        if rec.get("phase") == "rtl":
            prog.update(task, description=f"RTL ({simulator})", completed=0)
            state["samples"] = 0
        elif "samples" in rec:
            prog.update(task, completed=rec["samples"])
        elif "epoch" in rec:
            h = rec["epoch"]
            prog.update(task, completed=h["samples"])
            if h["epoch"] % every == 0 or h["epoch"] == epochs - 1 or h["mismatches"]:
                prog.console.print(
                    f"{h['epoch']:>6} {rep.fmt(h['rtl_loss'], 5):>10} {rep.fmt(h['fixed_loss'], 5):>10} "
                    f"{rep.fmt(h['float_loss'], 5):>10} {rep.fmt(h['rtl_test_accuracy'], 3):>8} "
                    f"{rep.fmt(h['fixed_test_accuracy'], 3):>9} {rep.fmt(h['float_test_accuracy'], 3):>9} "
                    f"{h['mismatches']:>10}")

    try:
        with prog:
            r = run_train(cfg, simulator, dataset=dataset, epochs=epochs, max_samples=max_samples,
                          check_params=check_params, on_progress=on_progress)
    except (ConfigError, HardwareLimitError) as e:
        rep.fail(str(e))
    path = rep.write_report(out_dir, r)
    hist = r["history"]
    rep.plot_losses(f"{out_dir}/loss.png", {"RTL": [h["rtl_loss"] for h in hist],
                                            "golden fixed": [h["fixed_loss"] for h in hist],
                                            "golden float": [h["float_loss"] for h in hist]},
                    f"{config_path} on {simulator}")
    con.print(f"samples {r['samples']}, updates {r['updates']}, mismatches {r['mismatches']}")
    con.print(f"test accuracy: RTL {rep.fmt(r['rtl_test_accuracy'])}, golden fixed "
              f"{rep.fmt(r['fixed_test_accuracy'])}, golden float {rep.fmt(r['float_test_accuracy'])}")
    con.print(f"cycles per sample {rep.fmt(r['cycles_per_sample'], 1)} (ideal {rep.fmt(r['ideal_cycles_per_sample'], 1)}),"
              f" MAC utilization {rep.fmt(r['mac_utilization'], 3)}, "
              f"simulation {rep.fmt(r['sim_cycles_per_second'], 0)} cycles/s")
    con.print(f"wrote {path} and {out_dir}/loss.png")
    if r["mismatches"]:
        click.echo(f"FAIL: {r['first_mismatch']}", err=True)
        sys.exit(1)
    con.print("PASS: RTL equals the golden fixed-point model bit for bit")


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), required=True, help="TOML config file.")
@click.option("--samples", type=click.IntRange(min=1), default=None,
              help="Training samples on Verilator (default: one epoch of the dataset, at most 2000).")
@click.option("--icarus-samples", type=click.IntRange(min=0), default=10, show_default=True,
              help="Training samples on Icarus (0 skips Icarus).")
@click.option("--random-data", is_flag=True, help="Random inputs and labels instead of the config's dataset.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="out/bench", show_default=True)
def bench(config_path, samples, icarus_samples, random_data, out_dir):
    """Cycles per training sample, MAC utilization and simulation speed."""
    from golden.config import ConfigError, load_config
    from golden.datasets import DatasetError
    from hdl.layout import HardwareLimitError

    from .bench import run_bench

    try:
        cfg = load_config(config_path)
        if samples is None:
            if random_data:
                samples = 500
            else:
                from golden.datasets import load_dataset
                samples = min(2000, len(load_dataset(cfg).X_train))
        sims = {"verilator": samples}
        if icarus_samples:
            sims["icarus"] = icarus_samples
        con = rep.console()
        con.print(f"bench: {config_path}  layers {list(cfg.layers)}  {cfg.lanes} lanes  "
                  f"({', '.join(f'{k}: {v} samples' for k, v in sims.items())})")
        r = run_bench(cfg, samples=sims, simulators=tuple(sims), random_data=random_data)
    except (ConfigError, DatasetError, HardwareLimitError) as e:
        rep.fail(str(e))
    r["config_file"] = config_path
    path = rep.write_report(out_dir, r)
    con.print(f"useful MACs per sample   {r['useful_macs_per_sample']}")
    con.print(f"multipliers              {r['multipliers']}")
    con.print(f"ideal cycles per sample  {rep.fmt(r['ideal_cycles_per_sample'], 1)}")
    con.print(f"cycles per sample        {rep.fmt(r['cycles_per_sample'], 1)}  (hardware cycle counter)")
    con.print(f"MAC utilization          {rep.fmt(r['mac_utilization'], 3)}")
    for sim, v in r["sim_cycles_per_second"].items():
        con.print(f"simulation speed         {rep.fmt(v, 0)} cycles/s on {sim}")
    con.print(f"wrote {path}")


main.add_command(train)
main.add_command(bench)


if __name__ == "__main__":  # pragma: no cover
    main()
