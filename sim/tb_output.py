"""cocotb test module for hdl.output under Icarus and Verilator, bit-exact with golden.

The design under test is :class:`OutputTop` of one softmax + cross-entropy config: the
``SoftmaxUnit``, the ``CrossEntropyGradUnit`` and, for every elementwise last-layer kind,
an ``MseGradUnit`` of the same config with ``loss = "mse"``. Every stream is driven by the
burst/capture engines of the testbench top (sim/rtl_run.py) with random idle cycles and
backpressure, all units concurrently; the simulator runs free for a whole burst. Expected
values: golden.tables.softmax_codes and golden.fixed_model.FixedMLP.output_delta.

Job (JSON named by ``BPF_TB_JOB``, see sim/tb_activation.py): ``config``, ``vectors``
(how many output vectors per unit), ``gap``, ``seed``, ``result``.

The random data (:func:`logit_vectors`, :func:`ce_targets`, :func:`mse_inputs`) is shared
with the amaranth.sim tests in tests/hdl/test_output.py.
"""
from __future__ import annotations

import time

import cocotb
import numpy as np
from amaranth.hdl import Module, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from cocotb.triggers import ClockCycles

from golden.activations import FixedActivations
from golden.config import Config, config_to_dict
from golden.fixed_model import FixedMLP
from golden.tables import softmax_codes
from hdl.activation import ELEMENTWISE
from hdl.output import CrossEntropyGradUnit, MseGradUnit, SoftmaxUnit

from .tb_activation import BURST, Bursts, field, first_mismatches, load_job, reset, run_bursts, run_tb_job, write_result

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
    """Every output-layer unit of one softmax + cross-entropy config, as the RTL tests see it.

    Members
    -------
    softmax_i, softmax_o : the ports of ``SoftmaxUnit(cfg)``
    ce_i, ce_o : the ports of ``CrossEntropyGradUnit(cfg)``
    mse_<kind>_i, mse_<kind>_o : the ports of ``MseGradUnit(mse_config_of(cfg, kind))``
    """

    def __init__(self, cfg: Config):
        if cfg.loss != "cross_entropy":
            raise ValueError(f"OutputTop needs a softmax + cross-entropy config, got loss = {cfg.loss!r}")
        self._cfg = cfg
        aw, ew = signed(cfg.act.width), signed(cfg.error.width)

        def pair(i_layout, o_shape):
            return In(stream.Signature(i_layout)), Out(stream.Signature(o_shape))

        members = {}
        members["softmax_i"], members["softmax_o"] = pair(data.StructLayout({"z": aw, "last": 1}),
                                                          data.StructLayout({"p": aw, "last": 1}))
        members["ce_i"], members["ce_o"] = pair(data.StructLayout({"p": aw, "t": aw}), ew)
        for kind in ELEMENTWISE:
            members[f"mse_{kind}_i"], members[f"mse_{kind}_o"] = pair(data.StructLayout({"a": aw, "t": aw}), ew)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        units = {"softmax": SoftmaxUnit(self._cfg), "ce": CrossEntropyGradUnit(self._cfg)}
        for kind in ELEMENTWISE:
            units[f"mse_{kind}"] = MseGradUnit(mse_config_of(self._cfg, kind))
        for name, unit in units.items():
            m.submodules[name] = unit
            wiring.connect(m, wiring.flipped(getattr(self, f"{name}_i")), unit.i)
            wiring.connect(m, unit.o, wiring.flipped(getattr(self, f"{name}_o")))
        return m


def run_output_rtl(cfg: Config, simulator: str, *, vectors: int = 2000, gap: int = 77, seed: int = 1,
                   build_root: str = "build") -> dict:
    """``vectors`` random output vectors through every unit of :class:`OutputTop` on
    ``simulator``. Returns the result dict: per unit {"vectors", "beats", "mismatches",
    "extra_beats"}, ``failures``, ``stream_s`` and ``cycles``."""
    job = {"config": config_to_dict(cfg), "vectors": vectors, "gap": gap, "seed": seed}
    return run_tb_job(OutputTop(cfg), "output_top", "sim.tb_output", simulator, job, build_root)


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
    rng = np.random.default_rng(job.get("seed", 1))
    names = ["softmax", "ce"] + [f"mse_{k}" for k in ELEMENTWISE]
    for name in names:
        getattr(dut, f"{name}_i__valid").value = 0
        getattr(dut, f"{name}_o__ready").value = 0
    await reset(dut)

    # inputs and golden expectations per unit
    z = logit_vectors(cfg, count, rng)
    p = np.stack([softmax_codes(v, cfg) for v in z])
    last = np.tile(np.arange(n) == n - 1, count)
    t_ce = ce_targets(cfg, count, rng)
    mlp = FixedMLP(cfg)
    feeds = {"softmax": _pack([z.ravel(), last], W), "ce": _pack([p.ravel(), t_ce.ravel()], W)}
    want = {"softmax": (p.ravel(), last),
            "ce": (np.stack([mlp.output_delta(a, t) for a, t in zip(p, t_ce)]).ravel(),)}
    inputs = {"softmax": z.ravel(), "ce": list(zip(p.ravel().tolist(), t_ce.ravel().tolist()))}
    for kind in ELEMENTWISE:
        mcfg = mse_config_of(cfg, kind)
        a, t = mse_inputs(mcfg, count, rng)
        mmlp = FixedMLP(mcfg)
        feeds[f"mse_{kind}"] = _pack([a.ravel(), t.ravel()], W)
        want[f"mse_{kind}"] = (np.stack([mmlp.output_delta(av, tv) for av, tv in zip(a, t)]).ravel(),)
        inputs[f"mse_{kind}"] = list(zip(a.ravel().tolist(), t.ravel().tolist()))

    engines = [Bursts(dut, f"{name}_i", f"{name}_o", job.get("gap", 77)) for name in names]
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
            result["failures"] += first_mismatches("softmax p", list(np.repeat(np.arange(count), n)), gp,
                                                   want[name][0])
            result["failures"] += [f"softmax: last wrong at beat {b}" for b in np.flatnonzero(gl != want[name][1])[:3]]
        else:
            gd = field(got, 0, EW)
            mism = gd != want[name][0]
            result["failures"] += first_mismatches(f"{name} delta", inputs[name], gd, want[name][0])
        extra = eng.count() - len(feeds[name])
        if extra:
            result["failures"].append(f"{name}: {extra} extra output beats")
        result[name] = {"vectors": count, "beats": len(got), "mismatches": int(mism.sum()), "extra_beats": extra}
    bad = [f"softmax vector {v}: logits {z[v].tolist()}" for v in
           np.flatnonzero((field(outs[0], 0, W).reshape(-1, n) != p).any(axis=1))[:2]]
    result["failures"] += bad
    write_result(job, result)
    assert not result["failures"], result["failures"][:5]
