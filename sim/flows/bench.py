"""Benchmark: cycles per training sample from the hardware's own counter, MAC utilization,
and simulation speed per simulator.

Definitions (docs and ARCHITECTURE.md): useful MACs per sample = forward + backward
(layers >= 2) + weight-gradient products; ideal cycles = useful MACs / multipliers;
utilization = useful MACs / (cycles x multipliers), cycles averaged over the samples run.
Data is the config's dataset, or random samples when the config names none that fits.
"""
from __future__ import annotations

import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from golden.config import Config
from hdl.layout import check_limits

__all__ = ["run_bench", "random_dataset_file", "cpu_float_throughput", "fmax_from_report", "projected_throughput"]


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
              build_root: str = "build", random_data: bool = False, on_progress=None, bus: str = "native") -> dict:
    """Train a few samples on each simulator and read the figures.

    ``samples`` maps simulator -> training samples to run (Icarus is ~100x slower).
    ``bus``: through the native bus or the AXI top (``sim.train_job.run_train``).
    """
    from sim.train_job import run_train

    lay = check_limits(cfg)
    samples = samples or {"verilator": 200, "icarus": 10}
    out = {"useful_macs_per_sample": lay.useful_macs(), "multipliers": cfg.lanes,
           "ideal_cycles_per_sample": lay.useful_macs() / cfg.lanes, "sim_cycles_per_second": {},
           "optimizer": optimizer_cost(cfg)}
    with tempfile.TemporaryDirectory() as tmp:
        dataset = None
        if random_data or cfg.dataset not in ("xor", "iris", "digits") and not cfg.dataset.endswith(".npz"):
            dataset = random_dataset_file(cfg, max(samples.values()) + 10, tmp)
        for sim in simulators:
            r = run_train(cfg, sim, dataset=dataset, epochs=1, max_samples=samples[sim],
                          check_params="signature", build_root=build_root, on_progress=on_progress,
                          evaluate=False, bus=bus)
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


def optimizer_cost(cfg: Config) -> dict:
    """The optimizer's own multipliers, as MULT18X18D blocks, and tables (beside the lanes'
    multipliers, which MAC utilization counts): hdl/trainer/optimizer_cores.py and
    adam_scalars.py, each multiply as pipelined_product splits it."""
    from amaranth.hdl import signed, unsigned

    from golden.config import ADAM_ALPHA_WIDTH, OPT_FRAC_BITS
    from golden.tables import rsqrt_table
    from hdl.dsp import partial_products as pp
    P = cfg.lanes
    if cfg.optimizer == "sgd":
        return {"name": "sgd", "multipliers": 0, "tables": {}}
    if cfg.optimizer == "momentum":  # mu * v, in a weight core and a bias core per lane
        per_core = pp(signed(cfg.velocity.width), unsigned(OPT_FRAC_BITS))
        return {"name": "momentum", "multipliers": 2 * P * per_core, "tables": {}}
    fm, fv, r = cfg.adam_m, cfg.adam_v, cfg.adam_r_format
    per_lane = (pp(signed(fm.width), signed(fm.width))                                  # g g
                + pp(signed(fm.width + 1), unsigned(cfg.adam_c1.bit_length()))          # c1 (g - m)
                + pp(signed(fv.width + 1), unsigned(cfg.adam_c2.bit_length()))          # c2 (sq - v)
                + pp(unsigned(16), unsigned(16))                                        # mantissa x R2
                + pp(signed(fm.width), signed(r.width))                                 # m r
                + pp(signed(fm.width + r.width), unsigned(ADAM_ALPHA_WIDTH - 1)))      # (m r) alpha
    once = pp(unsigned(ADAM_ALPHA_WIDTH - 1), unsigned(16)) + 2 * pp(unsigned(32), unsigned(OPT_FRAC_BITS))
    n = len(rsqrt_table(cfg))
    return {"name": "adam", "multipliers": P * per_lane + once,
            "tables": {"rsqrt": f"{P} x {n} x {r.width} bits", "recip": f"1 x {1 << cfg.recip_entries_log2} x 16 bits"}}


def optimizer_variants(cfg: Config) -> list:
    """The config with each optimizer (same network, batch, data) for a side-by-side cycle
    count: (name, config, note). The learning rate does not change the cycles; where Adam's
    lane multiplier 2**lr_frac_bits / B would not fit 16 bits, fewer lr_frac_bits."""
    from golden.config import ConfigError, OPTIMIZERS
    out = []
    for opt in OPTIMIZERS:
        c, note = None, ""
        for lrf in range(cfg.lr_frac_bits, -1, -1):
            try:
                c = cfg.with_(optimizer=opt, lr_frac_bits=lrf)
                break
            except ConfigError:
                continue
        if c is None:
            raise ValueError(f"no lr_frac_bits makes a valid {opt} variant of this config")
        if c.lr_frac_bits != cfg.lr_frac_bits:
            note = f"lr_frac_bits {c.lr_frac_bits}"
        out.append((opt, c, note))
    return out


# ---- throughput: hardware projection and the host CPU's float training ------------------

def cpu_float_throughput(cfg: Config, samples: int = 2000, seed: int = 0, repeats: int = 3,
                         batch_size: int | None = None) -> dict:
    """Training samples per second of the float64 NumPy reference (golden/float_model.py) on
    one core of this host: the same network and optimizer, ``batch_size`` samples per update
    (default ``cfg.batch_size``: a like-for-like comparison, since NumPy gains most from a
    batch), ``samples`` random samples (rounded up to whole batches) timed (wall clock,
    ``perf_counter``) after a short warm-up, ``repeats`` times. BLAS is held to one thread
    (threadpoolctl), so the figure is one core's. The headline is the best run (the machine
    may be shared); every run is listed in ``cpu_float_runs_samples_per_second``."""
    from threadpoolctl import threadpool_limits

    from golden.fixed_model import init_params_float
    from golden.float_model import FloatMLP

    B = cfg.batch_size if batch_size is None else batch_size
    if samples < 1 or repeats < 1 or B < 1:
        raise ValueError(f"samples, repeats and batch_size must be >= 1, got samples={samples!r}, "
                         f"repeats={repeats!r}, batch_size={B!r}")
    n_batches = -(-samples // B)
    samples = n_batches * B
    rng = np.random.default_rng(seed)
    n_in, n_out = cfg.layers[0], cfg.layers[-1]
    X = rng.random((samples, n_in))
    if n_out == 1:
        T = rng.integers(0, 2, size=(samples, 1)).astype(np.float64)
    else:
        T = np.eye(n_out)[rng.integers(0, n_out, size=samples)]
    model = FloatMLP(cfg, init_params_float(cfg))
    runs = []
    with threadpool_limits(limits=1):
        for i in range(min(20, n_batches)):  # warm-up: first calls allocate and fault pages in
            model.step(X[i * B:(i + 1) * B], T[i * B:(i + 1) * B])
        for _ in range(repeats):
            t0 = time.perf_counter()
            for i in range(n_batches):
                model.step(X[i * B:(i + 1) * B], T[i * B:(i + 1) * B])
            runs.append(time.perf_counter() - t0)
    dt = min(runs)
    return {"cpu_float_samples_per_second": samples / dt, "cpu_float_samples": samples, "cpu_float_batch_size": B,
            "cpu_float_seconds": dt, "cpu_float_runs_samples_per_second": [samples / t for t in runs],
            "cpu": {"machine": platform.machine(), "processor": platform.processor(),
                    "python": platform.python_version(), "numpy": np.__version__, "threads": 1}}


def fmax_from_report(path) -> dict:
    """``fmax_mhz`` and where it came from, from a report.json of ``synth`` or ``build``.

    Raises ValueError (a user error) when the file cannot be read or has no Fmax."""
    p = Path(path)
    try:
        rep = json.loads(p.read_text())
    except OSError as e:
        raise ValueError(f"--fmax-report {str(p)!r} cannot be read: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"--fmax-report {str(p)!r} is not JSON: {e}") from None
    fmax = rep.get("fmax_mhz") if isinstance(rep, dict) else None
    if not isinstance(fmax, (int, float)) or isinstance(fmax, bool) or fmax <= 0:
        raise ValueError(f"--fmax-report {str(p)!r} has no positive 'fmax_mhz' (got {fmax!r}); "
                         f"use a report.json of 'backprop-fpga synth' or 'backprop-fpga build'")
    src = {"fmax_source": str(p)}
    for key, name in (("target", "fmax_target"), ("board", "fmax_board"), ("board_clock_mhz", "board_clock_mhz"),
                      ("timing_met", "fmax_timing_met"), ("fmax_caveat", "fmax_caveat")):
        if rep.get(key) is not None:
            src[name] = rep[key]
    c = rep.get("config") if isinstance(rep, dict) else None
    if isinstance(c, dict):  # synth's {"layers", "lanes"} or the TOML layout of config_to_dict
        layers = c.get("layers", (c.get("network") or {}).get("layers"))
        lanes = c.get("lanes", (c.get("hardware") or {}).get("lanes"))
        src["fmax_config"] = {k: v for k, v in (("layers", layers), ("lanes", lanes)) if v is not None}
    return {"fmax_mhz": float(fmax), **src}


def projected_throughput(cycles_per_sample, fmax_mhz) -> float | None:
    """Training samples per second at ``fmax_mhz``: ``Fmax / cycles per sample``."""
    if not cycles_per_sample or not fmax_mhz:
        return None
    return fmax_mhz * 1e6 / cycles_per_sample
