"""cocotb test module for the trainer (run by sim/runners/rtl_run.py under Icarus or Verilator).

The job comes as a JSON file named by the environment variable ``BPF_JOB``:
``config`` (TOML-shaped dict), ``plan`` (a pickled sim.check.golden_plan.TrainingPlan: samples
and every expected code), ``check_params``, ``stall_prob``, ``seed``, ``progress`` (a
JSON-lines file the parent tails) and ``result`` (where the summary is written); the
``bad_length`` scenario uses ``dataset``. Which scenario runs is the cocotb testcase.
"""
from __future__ import annotations

import json
import os
import time

import cocotb
import numpy as np
from cocotb.utils import get_sim_time

from golden.config import config_from_dict
from golden.datasets import load_dataset
from golden.fixed_model import FixedMLP
from golden.train import quantize_dataset

from sim.check.golden_plan import TrainingPlan
from sim.check.train_flow import run_training
from sim.check.trainer_session import TrainingSession
from sim.host.cocotb_transport import CocotbTransport
from sim.host.driver import TrainerHost

CLOCK_NS = 10


def _job():
    with open(os.environ["BPF_JOB"]) as f:
        return json.load(f)


async def _start(dut, job):
    cfg = config_from_dict(job["config"])
    # the clock runs in the Verilog wrapper (sim/runners/rtl_run.py: clock_wrapper), period CLOCK_NS,
    # one rising edge per time step (pulse_clock): the transport's edge() follows it
    for name in ("s_data__valid", "m_data__ready", "csr__re", "csr__we", "csr__addr", "csr__wdata"):
        getattr(dut, name).value = 0
    transport = CocotbTransport(dut, cfg.act.width, job.get("stall_prob", 0.0), job.get("seed", 0))
    dut.rst.value = 1
    for _ in range(3):
        await transport.edge()
    dut.rst.value = 0
    await transport.edge()
    return cfg, TrainerHost(cfg, transport)


def _write(path, obj, mode="w"):
    if path:
        with open(path, mode) as f:
            f.write(json.dumps(obj) + "\n")


@cocotb.test()
async def train(dut):
    """The main job: train epoch by epoch, compare every output and every update with golden."""
    job = _job()
    cfg, host = await _start(dut, job)
    plan = TrainingPlan.load(job["plan"])
    progress = job.get("progress")
    count = {"n": 0}

    def on_sample():
        count["n"] += 1
        if count["n"] % 50 == 0:
            _write(progress, {"samples": count["n"]}, "a")

    def on_epoch(rec):
        _write(progress, {"epoch": rec.as_dict()}, "a")

    t0, cpu0 = time.perf_counter(), time.process_time()
    c0 = get_sim_time("ns") / CLOCK_NS
    records, session = await run_training(cfg, plan, host, job.get("check_params", "signature"),
                                          on_epoch=on_epoch, on_sample=on_sample)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    sim_cycles = get_sim_time("ns") / CLOCK_NS - c0
    r = session.result
    _write(job.get("result"), {
        "mismatches": r.mismatches,
        "first_mismatch": str(r.first) if r.first else None,
        "samples": r.samples,
        "updates": r.updates,
        "epochs": [rec.as_dict() for rec in records],
        "sim_cycles": sim_cycles,
        "wall_seconds": wall,
        "cpu_seconds": cpu,  # the simulator process's CPU time (Verilator and Python), for a load-independent figure
        "dropped": await host.read("DROPPED"),
    })
    assert r.mismatches == 0, str(r.first)


@cocotb.test()
async def bad_length(dut):
    """Short and long samples set the error flag, are dropped, and lose nothing after them."""
    job = _job()
    cfg, host = await _start(dut, job)
    ds = load_dataset(cfg, job.get("dataset"))
    q = quantize_dataset(cfg, ds)
    session = TrainingSession(cfg, host, FixedMLP(cfg), "every")
    n_in, n_out = cfg.layers[0], cfg.layers[-1]
    x, t = q.X_train[0], q.T_train[0]
    good = [int(v) for v in x] + [int(v) for v in t]
    await session.train_sample(q.X_train[1], q.T_train[1])
    await host.wait_idle()
    assert not (await host.status())["length_error"]
    await host.t.send_beats(good[:-1])  # too short
    await host.flush()
    await host.wait_idle()
    assert (await host.status())["length_error"], "short sample did not set the length error flag"
    await host.clear_errors()
    await host.t.send_beats(good + [0, 0])  # too long
    await host.flush()
    await host.wait_idle()
    assert (await host.status())["length_error"], "long sample did not set the length error flag"
    assert await host.read("DROPPED") == 2
    assert await host.read("SAMPLES") == 1, "a dropped sample was counted as trained"
    await host.clear_errors()
    for i in range(len(q.X_train[:4])):
        await session.train_sample(q.X_train[i], q.T_train[i])
    r = await session.finish()
    _write(job.get("result"), {"mismatches": r.mismatches, "first_mismatch": str(r.first) if r.first else None,
                               "samples": r.samples})
    assert r.mismatches == 0, str(r.first)
    assert not (await host.status())["length_error"]
    assert np.all(np.array([len(o) for o in r.outputs]) == n_out)
    _ = n_in
