"""``backprop-fpga golden``: the float and the fixed-point golden models side by side."""
from __future__ import annotations

import time
from dataclasses import asdict

import click

from .. import report as rep
from . import config_option, dataset_option, epochs_option, load_inputs, out_option

__all__ = ["golden", "optimizer_info", "optimizer_text", "compare_learning_rates", "parse_lr_option"]

TABLE = rep.TextTable([("epoch", None), ("float loss", 5), ("fixed loss", 5),
                       ("float train", 3), ("fixed train", 3), ("float test", 3), ("fixed test", 3)])
SUMMARY = rep.TextTable([("optimizer", None), ("lr", None), ("float loss", 5), ("fixed loss", 5),
                         ("float test", 3), ("fixed test", 3)])

OPTIMIZER_NAMES = ("sgd", "momentum", "adam")
# Adam's learning rate when the config's optimizer is not Adam: its step is about lr per
# update whatever the gradient's scale, so no other optimizer's rate carries over.
ADAM_DEFAULT_LR = 0.01
PLOT_STYLE = {"sgd": "C0", "momentum": "C1", "adam": "C2"}


def optimizer_info(cfg) -> dict:
    """The optimizer of a config for report.json: its name, learning rate and coefficients,
    and the fixed-point codes the hardware uses (docs/arithmetic.md §10)."""
    from golden.config import OPT_FRAC_BITS

    one = 1 << OPT_FRAC_BITS
    info = {"name": cfg.optimizer, "learning_rate": cfg.learning_rate}
    if cfg.optimizer == "momentum":
        info["momentum"] = cfg.momentum
        info["fixed_point"] = {"momentum_code": cfg.momentum_code, "momentum": cfg.momentum_code / one}
    elif cfg.optimizer == "adam":
        info.update(beta1=cfg.beta1, beta2=cfg.beta2, epsilon=cfg.epsilon)
        info["fixed_point"] = {"c1": cfg.adam_c1, "c2": cfg.adam_c2, "beta1": 1 - cfg.adam_c1 / one,
                               "beta2": 1 - cfg.adam_c2 / one, "adam_lr_code": cfg.adam_lr_code,
                               "alpha_frac_bits": cfg.adam_alpha_frac_bits}
    return info


def optimizer_text(cfg) -> str:
    """One line: ``optimizer: adam, beta1 0.9, beta2 0.999, epsilon 0.001 (fixed point: ...)``."""
    if cfg.optimizer == "momentum":
        return (f"optimizer: momentum, momentum {cfg.momentum} "
                f"(fixed point: mu = {cfg.momentum_code}/2^20)")
    if cfg.optimizer == "adam":
        return (f"optimizer: adam, beta1 {cfg.beta1}, beta2 {cfg.beta2}, epsilon {cfg.epsilon} "
                f"(fixed point: beta1 = 1 - {cfg.adam_c1}/2^20, beta2 = 1 - {cfg.adam_c2}/2^20)")
    return f"optimizer: {cfg.optimizer}"


def parse_lr_option(text: str | None) -> dict:
    """``--lr sgd=0.05,momentum=0.005,adam=0.01`` -> {"sgd": 0.05, ...} (any subset)."""
    out = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in OPTIMIZER_NAMES:
            rep.fail(f"--lr {text!r}: expected NAME=RATE pairs separated by commas, NAME one of "
                     f"{', '.join(OPTIMIZER_NAMES)} (e.g. --lr sgd=0.05,adam=0.01)")
        try:
            out[name] = float(value)
        except ValueError:
            rep.fail(f"--lr {text!r}: {value.strip()!r} is not a number (the learning rate of {name})")
    return out


def compare_learning_rates(cfg, overrides: dict) -> dict:
    """The learning rate of each optimizer for --compare-optimizers.

    The config's own optimizer keeps training.learning_rate. SGD and momentum share one step
    on a steady gradient: momentum's rate is SGD's times (1 - momentum), SGD's is momentum's
    over (1 - momentum). Adam's is ADAM_DEFAULT_LR unless the config is Adam. ``--lr``
    overrides any of them; a rate that cannot be derived (SGD or momentum when the config
    is Adam) must be given."""
    lr, mu = cfg.learning_rate, cfg.momentum
    sgd = {"sgd": lr, "momentum": lr / (1 - mu)}.get(cfg.optimizer)
    rates = {"sgd": sgd, "momentum": None if sgd is None else sgd * (1 - mu),
             "adam": lr if cfg.optimizer == "adam" else ADAM_DEFAULT_LR}
    rates = {n: None if r is None else float(f"{r:.12g}") for n, r in rates.items()}  # 0.005, not 0.004999...
    rates[cfg.optimizer] = lr
    rates.update(overrides)
    missing = [n for n in OPTIMIZER_NAMES if rates[n] is None]
    if missing:
        rep.fail(f"--compare-optimizers: no learning rate for {' and '.join(missing)} (the config's "
                 f"optimizer is {cfg.optimizer}, whose learning rate does not carry over); give one, "
                 f"e.g. --lr " + ",".join(f"{n}=0.05" for n in missing))
    return rates


def _run_summary(run) -> dict:
    last = run.history[-1]
    return {
        "float_test_accuracy": last.float_test_accuracy,
        "fixed_test_accuracy": last.fixed_test_accuracy,
        "float_train_accuracy": last.float_train_accuracy,
        "fixed_train_accuracy": last.fixed_train_accuracy,
        "float_loss": last.float_loss,
        "fixed_loss": last.fixed_loss,
    }


@click.command()
@config_option(required=True)
@dataset_option
@epochs_option
@out_option("out/golden")
@click.option("--compare-optimizers", is_flag=True,
              help="Train sgd, momentum and adam on the same data, initial weights and order; "
                   "one loss plot with float and fixed curves of all three.")
@click.option("--lr", "lr_text", default=None, metavar="NAME=RATE,...",
              help="With --compare-optimizers: learning rates, e.g. sgd=0.05,momentum=0.005,adam=0.01. "
                   "Default: the config's for its own optimizer; momentum = SGD's x (1 - momentum) "
                   "and back; adam 0.01.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, metavar="FILE.png",
              help="Where the loss plot goes (default OUT/loss.png, or OUT/optimizers.png "
                   "with --compare-optimizers).")
def golden(config_path, dataset, epochs, out_dir, compare_optimizers, lr_text, plot_path):
    """Train the float and the fixed-point golden models side by side.

    Both models start from the same quantized weights and see the same samples in the same
    order. Prints the optimizer, loss and train/test accuracy per epoch (every k-th epoch
    and the last on long runs), writes OUT/report.json and OUT/loss.png.

    With --compare-optimizers the run is repeated for sgd, momentum and adam (each with
    its own learning rate, see --lr) and the plot shows all six loss curves.
    """
    if lr_text is not None and not compare_optimizers:
        rep.fail("--lr needs --compare-optimizers (a single run uses training.learning_rate)")
    overrides = parse_lr_option(lr_text)
    cfg, ds = load_inputs(config_path, dataset, epochs)
    if compare_optimizers:
        return _compare(cfg, ds, config_path, out_dir, overrides, plot_path)

    from golden.train import train_golden

    epochs = cfg.epochs
    rep.prepare_out_dir(out_dir)
    con = rep.console()
    con.print(f"golden: {config_path}  layers {list(cfg.layers)} {'/'.join(cfg.activations)}, {cfg.loss}  "
              f"dataset {ds.name} ({len(ds.X_train)} train / {len(ds.X_test)} test)  {epochs} epochs")
    con.print(f"formats: act {cfg.act}, weight {cfg.weight}, error {cfg.error}; "
              f"learning rate {cfg.learning_rate}, batch {cfg.batch_size}, rounding {cfg.rounding}")
    con.print(optimizer_text(cfg))
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
        "optimizer": optimizer_info(cfg),
        **_run_summary(run),
        "seconds": round(seconds, 3),
        "history": [asdict(h) for h in run.history],
    }
    path = rep.write_report(out_dir, report, cfg)
    png = rep.plot_losses(plot_path or path.parent / "loss.png",
                          {"golden float": [h.float_loss for h in run.history],
                           "golden fixed": [h.fixed_loss for h in run.history]},
                          title=f"{ds.name}: {config_path} ({cfg.optimizer})", ylabel=f"training loss ({cfg.loss})")
    con.print(f"test accuracy after {epochs} epochs: float {rep.fmt(last.float_test_accuracy, 3)}, "
              f"fixed {rep.fmt(last.fixed_test_accuracy, 3)}  ({seconds:.1f} s)")
    con.print(f"wrote {path} and {png}")


def _compare(cfg, ds, config_path, out_dir, overrides, plot_path):
    """--compare-optimizers: one golden run per optimizer, one report, one plot."""
    from golden.config import ConfigError
    from golden.train import train_golden

    rates = compare_learning_rates(cfg, overrides)
    cfgs = {}
    for name in OPTIMIZER_NAMES:
        try:
            cfgs[name] = cfg.with_(optimizer=name, learning_rate=rates[name])
        except ConfigError as e:
            rep.fail(f"--compare-optimizers: {name} with learning rate {rates[name]}: {e}")
    epochs = cfg.epochs
    out = rep.prepare_out_dir(out_dir)
    con = rep.console()
    con.print(f"golden: {config_path}  layers {list(cfg.layers)} {'/'.join(cfg.activations)}, {cfg.loss}  "
              f"dataset {ds.name} ({len(ds.X_train)} train / {len(ds.X_test)} test)  {epochs} epochs")
    con.print(f"formats: act {cfg.act}, weight {cfg.weight}, error {cfg.error}; "
              f"batch {cfg.batch_size}, rounding {cfg.rounding}")
    con.print("comparing optimizers: " + ", ".join(f"{n} lr {rates[n]}" for n in OPTIMIZER_NAMES)
              + "  (same data, initial weights and order)")
    shown = rep.epoch_filter(epochs)
    prog, task = rep.progress_bar(con, "training", len(OPTIMIZER_NAMES) * epochs * len(ds.X_train))
    runs, entries = {}, []
    t0 = time.perf_counter()
    with prog:
        for name, c in cfgs.items():
            prog.console.print(f"{optimizer_text(c)}; learning rate {c.learning_rate}")
            prog.console.print(TABLE.header())

            def on_epoch(s):
                if shown(s.epoch):
                    prog.console.print(TABLE.row(s.epoch, s.float_loss, s.fixed_loss, s.float_train_accuracy,
                                                 s.fixed_train_accuracy, s.float_test_accuracy,
                                                 s.fixed_test_accuracy))

            t1 = time.perf_counter()
            runs[name] = run = train_golden(c, ds, epochs=epochs, on_epoch=on_epoch,
                                            on_sample=lambda: prog.advance(task))
            entries.append({"optimizer": optimizer_info(c), **_run_summary(run),
                            "seconds": round(time.perf_counter() - t1, 3),
                            "history": [asdict(h) for h in run.history]})
    seconds = time.perf_counter() - t0

    con.print(SUMMARY.header())
    for name, e in zip(runs, entries):
        con.print(SUMMARY.row(name, f"{rates[name]:g}", e["float_loss"], e["fixed_loss"], e["float_test_accuracy"],
                              e["fixed_test_accuracy"]))
    png_path = plot_path or out / "optimizers.png"
    series, styles = {}, {}
    for name, run in runs.items():
        for model, dash in (("float", "-"), ("fixed", "--")):
            label = f"{name} (lr {rates[name]}) {model}"
            series[label] = [getattr(h, f"{model}_loss") for h in run.history]
            styles[label] = {"color": PLOT_STYLE[name], "linestyle": dash}
    png = rep.plot_losses(png_path, series, styles=styles,
                          title=f"{ds.name}: {config_path}, batch {cfg.batch_size} (float solid, fixed dashed)",
                          ylabel=f"training loss ({cfg.loss})")
    report = {
        "command": "golden",
        "mode": "compare_optimizers",
        "config_file": str(config_path),
        "dataset": ds.name,
        "train_samples": len(ds.X_train),
        "test_samples": len(ds.X_test),
        "epochs": epochs,
        "plot": str(png),
        "runs": entries,
        "seconds": round(seconds, 3),
    }
    path = rep.write_report(out_dir, report, cfg)
    con.print(f"({seconds:.1f} s)")
    con.print(f"wrote {path} and {png}")
