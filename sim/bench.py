"""Benchmark: cycles per training sample from the hardware's own counter, MAC utilization,
and simulation speed per simulator.

Definitions (docs and ARCHITECTURE.md): useful MACs per sample = forward + backward
(layers >= 2) + weight-gradient products; ideal cycles = useful MACs / multipliers;
utilization = useful MACs / (cycles x multipliers), cycles averaged over the samples run.
Data is the config's dataset, or random samples when the config names none that fits.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from golden.config import Config
from hdl.layout import check_limits

__all__ = ["run_bench", "random_dataset_file"]


def random_dataset_file(cfg: Config, n: int, directory: str, seed: int = 0) -> str:
    """An .npz of random inputs in [0, 1] and random class labels shaped for ``cfg``."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, cfg.layers[0]))
    n_classes = cfg.layers[-1] if cfg.layers[-1] > 1 else 2
    y = rng.integers(0, n_classes, size=n)
    path = Path(directory) / f"random-{cfg.layers[0]}x{n}.npz"
    np.savez(path, X=X, y=y)
    return str(path)


def run_bench(cfg: Config, samples: dict | None = None, simulators=("verilator", "icarus"),
              build_root: str = "build", random_data: bool = False, on_progress=None) -> dict:
    """Train a few samples on each simulator and read the figures.

    ``samples`` maps simulator -> training samples to run (Icarus is ~100x slower).
    """
    from .train_job import run_train

    lay = check_limits(cfg)
    samples = samples or {"verilator": 200, "icarus": 10}
    out = {"useful_macs_per_sample": lay.useful_macs(), "multipliers": cfg.lanes,
           "ideal_cycles_per_sample": lay.useful_macs() / cfg.lanes, "sim_cycles_per_second": {}}
    with tempfile.TemporaryDirectory() as tmp:
        dataset = None
        if random_data or cfg.dataset not in ("xor", "iris", "digits") and not cfg.dataset.endswith(".npz"):
            dataset = random_dataset_file(cfg, max(samples.values()) + 10, tmp)
        for sim in simulators:
            r = run_train(cfg, sim, dataset=dataset, epochs=1, max_samples=samples[sim],
                          check_params="signature", build_root=build_root, on_progress=on_progress,
                          evaluate=False)
            if r["mismatches"]:
                raise AssertionError(f"{sim}: {r['first_mismatch']}")
            out["sim_cycles_per_second"][sim] = r["sim_cycles_per_second"]
            out.setdefault("cycles_per_sample_by_simulator", {})[sim] = r["cycles_per_sample"]
            # the average depends on the number of samples (the first sample's loading is not
            # overlapped), so the headline figure comes from the longest run
            if sim == max(samples, key=lambda k: samples[k] if k in simulators else -1):
                out["cycles_per_sample"] = r["cycles_per_sample"]
                out["mac_utilization"] = r["mac_utilization"]
                out["samples"] = r["samples"]
    return out
