"""``backprop-fpga golden``: the float and the fixed-point golden models side by side."""
from __future__ import annotations

import time
from dataclasses import asdict

import click

from .. import report as rep
from . import config_option, dataset_option, epochs_option, load_inputs, out_option

__all__ = ["golden"]

TABLE = rep.TextTable([("epoch", None), ("float loss", 5), ("fixed loss", 5),
                       ("float train", 3), ("fixed train", 3), ("float test", 3), ("fixed test", 3)])


@click.command()
@config_option(required=True)
@dataset_option
@epochs_option
@out_option("out/golden")
def golden(config_path, dataset, epochs, out_dir):
    """Train the float and the fixed-point golden models side by side.

    Both models start from the same quantized weights and see the same samples in the same
    order. Prints loss and train/test accuracy per epoch (every k-th epoch and the last
    on long runs), writes OUT/report.json and OUT/loss.png.
    """
    from golden.train import train_golden

    cfg, ds = load_inputs(config_path, dataset, epochs)
    epochs = cfg.epochs
    rep.prepare_out_dir(out_dir)
    con = rep.console()
    con.print(f"golden: {config_path}  layers {list(cfg.layers)} {'/'.join(cfg.activations)}, {cfg.loss}  "
              f"dataset {ds.name} ({len(ds.X_train)} train / {len(ds.X_test)} test)  {epochs} epochs")
    con.print(f"formats: act {cfg.act}, weight {cfg.weight}, error {cfg.error}; "
              f"learning rate {cfg.learning_rate}, batch {cfg.batch_size}, rounding {cfg.rounding}")
    con.print(TABLE.header())
    shown = rep.epoch_filter(epochs)
    prog, task = rep.progress_bar(con, "training", epochs * len(ds.X_train))

    def on_epoch(s):
        if shown(s.epoch):
            prog.console.print(TABLE.row(s.epoch, s.float_loss, s.fixed_loss, s.float_train_accuracy,
                                         s.fixed_train_accuracy, s.float_test_accuracy, s.fixed_test_accuracy))

    t0 = time.perf_counter()
    with prog:
        run = train_golden(cfg, ds, epochs=epochs, on_epoch=on_epoch, on_sample=lambda: prog.advance(task))
    seconds = time.perf_counter() - t0

    last = run.history[-1]
    report = {
        "command": "golden",
        "config_file": str(config_path),
        "dataset": ds.name,
        "train_samples": len(ds.X_train),
        "test_samples": len(ds.X_test),
        "epochs": epochs,
        "float_test_accuracy": last.float_test_accuracy,
        "fixed_test_accuracy": last.fixed_test_accuracy,
        "float_train_accuracy": last.float_train_accuracy,
        "fixed_train_accuracy": last.fixed_train_accuracy,
        "float_loss": last.float_loss,
        "fixed_loss": last.fixed_loss,
        "seconds": round(seconds, 3),
        "history": [asdict(h) for h in run.history],
    }
    path = rep.write_report(out_dir, report, cfg)
    png = rep.plot_losses(path.parent / "loss.png",
                          {"golden float": [h.float_loss for h in run.history],
                           "golden fixed": [h.fixed_loss for h in run.history]},
                          title=f"{ds.name}: {config_path}", ylabel=f"training loss ({cfg.loss})")
    con.print(f"test accuracy after {epochs} epochs: float {rep.fmt(last.float_test_accuracy, 3)}, "
              f"fixed {rep.fmt(last.fixed_test_accuracy, 3)}  ({seconds:.1f} s)")
    con.print(f"wrote {path} and {png}")
