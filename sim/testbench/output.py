"""cocotb test module for hdl.output under Icarus and Verilator, bit-exact with golden.

The design under test is :class:`OutputTop` of one softmax + cross-entropy config: the
``SoftmaxUnit``, the ``CrossEntropyGradUnit`` and, for every elementwise last-layer kind,
an ``MseGradUnit`` of the same config with ``loss = "mse"``. Every stream is driven by the
burst engines of sim.testbench.activation.BurstPair with random idle cycles and backpressure
from LFSRs in the hardware, all units concurrently; the simulator runs free for a whole
burst. Expected values: golden.tables.softmax_codes and FixedMLP.output_delta.

Built and run through ``sim.runners.cocotb_run.run_cocotb`` by :func:`run_output_rtl`; options as
``extra_env`` (see sim/testbench/activation.py): ``BPF_VECTORS`` (output vectors per unit),
``BPF_GAP``, ``BPF_SEED``, ``BPF_RESULT``.

The random data (:func:`logit_vectors`, :func:`ce_targets`, :func:`mse_inputs`) is shared
with the amaranth.sim tests in tests/hdl/test_output.py.
"""
from __future__ import annotations

import time

import cocotb
import numpy as np
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out
from cocotb.triggers import ClockCycles

from golden.activations import FixedActivations
from golden.config import Config
from golden.fixed_model import FixedMLP
from golden.tables import softmax_codes
from hdl.activation import ELEMENTWISE
from hdl.output import SoftmaxUnit
from sim.testbench.stream_units import CrossEntropyGradUnit, MseGradUnit

from .activation import (BURST, BURST_CONTROL, BurstPair, Bursts, field, first_mismatches, load_job, run_bursts,
                            run_tb, start, write_result)

UNITS = ("softmax", "ce") + tuple(f"mse_{k}" for k in ELEMENTWISE)

__all__ = ["OutputTop", "run_output_rtl", "logit_vectors", "ce_targets", "mse_inputs", "mse_config_of"]


# ---------------------------------------------------------------------------------------
# random data


def logit_vectors(cfg: Config, count: int, rng) -> np.ndarray:
    """``count`` random logit vectors of ``cfg.layers[-1]`` codes mixing the cases that
    matter: uniform codes, ties (all equal, or drawn from a few values), saturated min/max
    codes, narrow spreads (many non-zero exps), spreads of a few exp-table ranges and
    extremes only. The first three are all-min, all-max and one max among mins."""
    n = cfg.layers[-1]
    lo, hi = cfg.act.min_code, cfg.act.max_code
    one = cfg.act.one
    out = np.empty((count, n), dtype=np.int64)
    for v in range(count):
        kind = v % 6
        if kind == 0:
            z = rng.integers(lo, hi + 1, n)
        elif kind == 1:  # all tied, or ties among a few values
            z = rng.choice(rng.integers(lo, hi + 1, int(rng.integers(1, 4))), n)
        elif kind == 2:  # saturated logits mixed with random ones
            z = np.where(rng.random(n) < 0.5, rng.choice([lo, hi], n), rng.integers(lo, hi + 1, n))
        elif kind == 3:  # narrow spread around a random centre
            c = int(rng.integers(lo, hi + 1))
            z = np.clip(c + rng.integers(-2 * one, 2 * one + 1, n), lo, hi)
        elif kind == 4:  # a spread of a few table ranges
            c = int(rng.integers(lo // 2, hi // 2))
            r = one << (cfg.exp_range_log2 + 1)
            z = np.clip(c + rng.integers(-r, r, n), lo, hi)
        else:  # extremes only
            z = rng.choice([lo, lo + 1, hi - 1, hi, 0, -1], n)
        out[v] = z
    out[:3] = lo
    out[1] = hi
    out[2, 0] = hi
    return out


def ce_targets(cfg: Config, count: int, rng) -> np.ndarray:
    """Targets for the cross-entropy delta: one-hot (1.0 at a random class) for most
    vectors, arbitrary codes (min/max, 0, -1.0, random; so p - t saturates) for a quarter."""
    n = cfg.layers[-1]
    lo, hi = cfg.act.min_code, cfg.act.max_code
    t = np.zeros((count, n), dtype=np.int64)
    t[np.arange(count), rng.integers(0, n, count)] = cfg.act.one
    wild = rng.random(count) < 0.25
    shape = (int(wild.sum()), n)
    t[wild] = np.where(rng.random(shape) < 0.5, rng.choice([lo, hi, 0, -cfg.act.one], shape),
                       rng.integers(lo, hi + 1, shape))
    return t


def mse_config_of(cfg: Config, kind: str) -> Config:
    """The same config with an elementwise last layer ``kind`` and MSE loss."""
    return cfg.with_(activations=cfg.activations[:-1] + (kind,), loss="mse")


def mse_inputs(cfg: Config, count: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(a, t) for the MSE delta of ``cfg`` (loss mse): a = forward of random z (a quarter
    from extreme z), the last quarter arbitrary stored codes; t random with extremes."""
    n = cfg.layers[-1]
    kind = cfg.activations[-1]
    lo, hi = cfg.act.min_code, cfg.act.max_code
    z = rng.integers(lo, hi + 1, (count, n))
    q = count // 4
    z[:q] = rng.choice([lo, hi, 0, -1, 1], (q, n))
    a = FixedActivations(cfg).forward(kind, z)
    a[count - q:] = rng.integers(lo, hi + 1, (q, n))
    t = np.where(rng.random((count, n)) < 0.3, rng.choice([lo, hi, 0, cfg.act.one], (count, n)),
                 rng.integers(lo, hi + 1, (count, n)))
    return a, t


# ---------------------------------------------------------------------------------------
# the design under test


class OutputTop(wiring.Component):
    """Every output-layer unit of one softmax + cross-entropy config, as the RTL tests see it,
    each between the burst engines of a :class:`~sim.testbench.activation.BurstPair`.

    Members
    -------
    softmax : Out(BURST_CONTROL)   ``SoftmaxUnit(cfg)`` (submodule ``softmax_bench``)
    ce : Out(BURST_CONTROL)   ``CrossEntropyGradUnit(cfg)``
    mse_<kind> : Out(BURST_CONTROL)   ``MseGradUnit(mse_config_of(cfg, kind))`` per elementwise kind
    """

    def __init__(self, cfg: Config):
        if cfg.loss != "cross_entropy":
            raise ValueError(f"OutputTop needs a softmax + cross-entropy config, got loss = {cfg.loss!r}")
        self._cfg = cfg
        super().__init__({name: Out(BURST_CONTROL) for name in UNITS})

    def elaborate(self, platform):
        m = Module()
        units = {"softmax": SoftmaxUnit(self._cfg), "ce": CrossEntropyGradUnit(self._cfg)}
        for kind in ELEMENTWISE:
            units[f"mse_{kind}"] = MseGradUnit(mse_config_of(self._cfg, kind))
        for name, unit in units.items():
            bench = m.submodules[f"{name}_bench"] = BurstPair(unit)
            wiring.connect(m, wiring.flipped(getattr(self, name)), bench.ctl)
        return m


def run_output_rtl(cfg: Config, simulator: str, *, vectors: int = 2000, gap: int = 77, seed: int = 1,
                   build_root=None) -> dict:
    """``vectors`` random output vectors through every unit of :class:`OutputTop` on
    ``simulator``. Returns the result dict: per unit {"vectors", "beats", "mismatches",
    "extra_beats"}, ``failures``, ``stream_s``, ``cycles``, ``rebuilt`` and ``elapsed_s``."""
    tag = f"{cfg.act.int_bits}.{cfg.act.frac_bits}-n{cfg.layers[-1]}-{cfg.exp_entries_log2}-{cfg.exp_range_log2}-" \
          f"{cfg.recip_entries_log2}-{cfg.recip_frac_bits}{'-interp' if cfg.lut_interpolate else ''}"
    return run_tb(OutputTop(cfg), f"output-{tag}", "sim.testbench.output", simulator, cfg,
                  {"vectors": vectors, "gap": gap, "seed": seed}, build_root)


# ---------------------------------------------------------------------------------------
# the test


def _pack(fields, width) -> list:
    """Words of several fields (arrays of codes, least significant first), each ``width`` bits
    (the last may be narrower: only its low bits are kept)."""
    mask = (1 << width) - 1
    out = np.zeros(len(fields[0]), dtype=object)
    for k, f in enumerate(fields):
        out = out + (np.asarray(f, dtype=np.int64).astype(object) & mask) * (1 << (k * width))
    return [int(v) for v in out]


@cocotb.test()
async def output_rtl(dut):
    """Random vectors through the softmax, CE and every MSE unit concurrently, with stalls."""
    job, cfg = load_job()
    W, EW = cfg.act.width, cfg.error.width
    n = cfg.layers[-1]
    count = int(job.get("vectors", 2000))
    rng = np.random.default_rng(int(job.get("seed", 1)))
    names = list(UNITS)
    for name in names:
        for port in ("len", "req", "igap", "ogap", "enable", "goal"):
            getattr(dut, f"{name}__{port}").value = 0
    await start(dut)

    # inputs and golden expectations per unit
    z = logit_vectors(cfg, count, rng)
    p = np.stack([softmax_codes(v, cfg) for v in z])
    last = np.tile(np.arange(n) == n - 1, count)
    t_ce = ce_targets(cfg, count, rng)
    mlp = FixedMLP(cfg)
    feeds = {"softmax": _pack([z.ravel(), last], W), "ce": _pack([p.ravel(), t_ce.ravel()], W)}
    want = {"softmax": (p.ravel(), last),
            "ce": (np.stack([mlp.output_delta(a, t) for a, t in zip(p, t_ce)]).ravel(),)}
    inputs = {"ce": list(zip(p.ravel().tolist(), t_ce.ravel().tolist()))}  # (p, t) per beat
    for kind in ELEMENTWISE:
        mcfg = mse_config_of(cfg, kind)
        a, t = mse_inputs(mcfg, count, rng)
        mmlp = FixedMLP(mcfg)
        feeds[f"mse_{kind}"] = _pack([a.ravel(), t.ravel()], W)
        want[f"mse_{kind}"] = (np.stack([mmlp.output_delta(av, tv) for av, tv in zip(a, t)]).ravel(),)
        inputs[f"mse_{kind}"] = list(zip(a.ravel().tolist(), t.ravel().tolist()))

    engines = [Bursts(dut, name, f"{name}_bench", int(job.get("gap", 77))) for name in names]
    t0 = time.perf_counter()
    c0 = cocotb.utils.get_sim_time("ns")
    chunks = [(BURST // n) * n if name == "softmax" else BURST for name in names]  # whole vectors
    outs = await run_bursts(dut, engines, [feeds[name] for name in names], chunks)
    result = {"simulator": cocotb.SIM_NAME, "act": str(cfg.act), "n": n, "failures": [],
              "stream_s": round(time.perf_counter() - t0, 2),
              "cycles": int((cocotb.utils.get_sim_time("ns") - c0) // 10)}
    await ClockCycles(dut.clk, 40)  # then nothing more may come out

    for name, eng, got in zip(names, engines, outs):
        if name == "softmax":
            gp, gl = field(got, 0, W), field(got, W, 1) != 0
            mism = (gp != want[name][0]) | (gl != want[name][1])
            for v in np.flatnonzero(mism.reshape(-1, n).any(axis=1))[:3]:
                result["failures"].append(f"softmax of {z[v].tolist()}: RTL p {gp.reshape(-1, n)[v].tolist()} "
                                          f"last {gl.reshape(-1, n)[v].astype(int).tolist()}, golden "
                                          f"{p[v].tolist()}")
        else:
            gd = field(got, 0, EW)
            mism = gd != want[name][0]
            result["failures"] += first_mismatches(f"{name} delta", inputs[name], gd, want[name][0])
        extra = eng.count() - len(feeds[name])
        if extra:
            result["failures"].append(f"{name}: {extra} extra output beats")
        result[name] = {"vectors": count, "beats": len(got), "mismatches": int(mism.sum()), "extra_beats": extra}
    write_result(job, result)
    assert not result["failures"], result["failures"][:5]
