"""``backprop-fpga train``: the main job, training in RTL simulation against the golden model."""
from __future__ import annotations

import sys

import click

from .. import report as rep
from . import load_inputs

__all__ = ["train"]


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
@click.option("--bus", type=click.Choice(["native", "axi"]), default="native", show_default=True,
              help="Train through the native bus, or through the AXI top (AXI4-Stream + AXI4-Lite, driven by "
                   "cocotbext-axi; verilator or icarus).")
@click.option("--stall-prob", type=click.FloatRange(0.0, 0.9), default=0.0, show_default=True,
              help="Random idle cycles and backpressure per cycle on the streams (with --bus axi on every AXI "
                   "channel).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random stalls.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="out/train", show_default=True)
def train(config_path, dataset, simulator, epochs, max_samples, check_params, bus, stall_prob, seed, out_dir):
    """Train in RTL simulation and compare every output and update with the golden model."""
    from golden.config import ConfigError
    from hdl.layout import HardwareLimitError

    from ..train_job import run_train

    cfg, ds = load_inputs(config_path, dataset)
    epochs = epochs or cfg.epochs
    con = rep.console()
    per_epoch = min(max_samples or len(ds.X_train), len(ds.X_train))
    con.print(f"train: {config_path}  layers {list(cfg.layers)}  {cfg.lanes} lanes  dataset {ds.name}  "
              f"{epochs} epochs x {per_epoch} samples  on {simulator}" + ("  over AXI" if bus == "axi" else ""))
    every = max(1, epochs // 20)
    con.print("losses: mean over the epoch's training samples, each taken before its update; "
              "accuracies: test set after the epoch")
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
                          check_params=check_params, on_progress=on_progress, bus=bus, stall_prob=stall_prob,
                          seed=seed)
    except (ConfigError, HardwareLimitError, ValueError) as e:
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
