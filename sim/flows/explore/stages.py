"""The stages of one design point, each a plain function that runs as one Dask task.

A task receives the point's config in the TOML layout (a dict: it pickles small and reads
the same on any worker), the previous stage's result and the stage's options, and returns
a JSON-ready dict with ``status``:

``ok``           the stage's figures follow;
``invalid``      the config, its dataset or the hardware generator refused the point (the
                 message is theirs: a deterministic answer, so it is a result, not a failure
                 to retry);
``not_covered``  the stage has no figure for this config (the cycle formula and Adam);
``does_not_fit`` synthesis: the design is too big for the device (a result too);
``mismatch``     rtl: the RTL disagreed with the golden model (a result: the point's verdict);
``skipped``      an earlier stage of the point was invalid or skipped.

Anything else raised is a failure: the runner reports it and retries the task once.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["STAGES", "run_stage", "STAGE_FUNCTIONS"]

# The order stages chain in: cheap first, so an invalid point stops before synthesis.
STAGES = ("golden", "cycles", "synth", "rtl")


def golden_stage(cfg, options: dict) -> dict:
    """Float and fixed-point golden training (golden/train.py) for the config's epochs."""
    from golden.datasets import load_dataset
    from golden.train import train_golden

    ds = load_dataset(cfg)
    t0 = time.perf_counter()
    last = train_golden(cfg, ds).history[-1]
    return {"float_test_accuracy": last.float_test_accuracy, "fixed_test_accuracy": last.fixed_test_accuracy,
            "float_train_accuracy": last.float_train_accuracy, "fixed_train_accuracy": last.fixed_train_accuracy,
            "float_loss": last.float_loss, "fixed_loss": last.fixed_loss, "epochs": cfg.epochs,
            "dataset": ds.name, "golden_seconds": time.perf_counter() - t0}


def cycles_stage(cfg, options: dict) -> dict:
    """Cycles per sample and MAC utilization from the schedule formula (cycles.py)."""
    from .cycles import cycle_figures
    return cycle_figures(cfg)


def synth_stage(cfg, options: dict) -> dict:
    """Synthesis, place and route (sim/flows/synth.py) for ``options["target"]``."""
    from sim.flows.synth import DoesNotFit, synthesize

    target = options["target"]
    out_dir = Path(options["out_dir"]) / "synth" / options["point"]
    try:
        r = synthesize(cfg, target, out_dir=out_dir)
    except DoesNotFit as e:
        return {"status": "does_not_fit", "message": str(e), "target": target}
    keep = ("target", "luts", "ffs", "dsps", "brams", "logic_cells", "fmax_mhz", "timing_met", "fmax_caveat",
            "runtime_s")
    return {k: r[k] for k in keep if k in r}


def rtl_stage(cfg, options: dict) -> dict:
    """A short training slice in RTL simulation, every output and update checked bit for bit
    against the golden fixed-point model (sim/train_job.py, as ``train`` runs it)."""
    from sim.train_job import run_train

    # one build directory per worker: two workers may build the same Verilog at once
    # (points that differ only in what the hardware does not see, e.g. the epochs)
    build_root = Path(options["build_root"]) / f"worker-{_worker_name()}"
    r = run_train(cfg, options["simulator"], epochs=1, max_samples=options["samples"], check_params="signature",
                  evaluate=False, build_root=str(build_root))
    out = {"rtl_simulator": options["simulator"], "rtl_samples": r["samples"], "rtl_mismatches": r["mismatches"],
           "rtl_bit_exact": r["mismatches"] == 0, "rtl_cycles_per_sample": r["cycles_per_sample"]}
    if r["mismatches"]:
        out.update(status="mismatch", message=r["first_mismatch"])
    return out


STAGE_FUNCTIONS = {"golden": golden_stage, "cycles": cycles_stage, "synth": synth_stage, "rtl": rtl_stage}


def _worker_name() -> str:
    """This Dask worker's name (stable across runs on a LocalCluster: 0, 1, ...), else the pid."""
    try:
        from distributed import get_worker
        return str(get_worker().name).replace("/", "_").replace(":", "_")
    except (ImportError, ValueError):
        return f"pid{os.getpid()}"


def _user_error_types():
    from golden.config import ConfigError
    from golden.datasets import DatasetError
    from hdl.layout import HardwareLimitError
    return ConfigError, DatasetError, HardwareLimitError


def run_stage(stage: str, config: dict, previous: dict | None, options: dict) -> dict:
    """The Dask task: run ``stage`` on the point ``config`` after ``previous`` (the result of
    the stage before it, or None for the first)."""
    from golden.config import config_from_dict

    from .cycles import NotCovered

    if previous is not None and previous.get("status") in ("invalid", "skipped"):
        return {"stage": stage, "status": "skipped", "message": f"{previous['stage']} stage {previous['status']}"}
    t0 = time.perf_counter()
    try:
        cfg = config_from_dict(config)
        out = STAGE_FUNCTIONS[stage](cfg, options)
    except NotCovered as e:
        out = {"status": "not_covered", "message": str(e)}
    except _user_error_types() as e:
        out = {"status": "invalid", "message": str(e)}
    out.setdefault("status", "ok")
    out["stage"] = stage
    out["seconds"] = time.perf_counter() - t0
    return out
