"""cocotb test module: the trainer driven over its simulated UART (run by sim/runners/uart_rtl.py).

The job is a JSON file named by ``BPF_JOB``: ``config``, ``plan`` (a pickled
sim.check.golden_plan.TrainingPlan), ``check_params``, ``divisor``, ``result`` (where the
summary goes) and optionally ``noise`` (``p_flip``, ``p_drop``, ``seed``: bits flipped and
bytes dropped on the simulated line, both ways, during the ``train`` testcase) and
``max_tries`` (attempts per command; a line noisier than any working one needs more). The host side is the unchanged ``TrainerHost`` over a UART transport
(sim/host/cocotb_uart.py); every output, the SIGNATURE register after every update (read over
the UART) and a full parameter readback at the end are compared with golden.
"""
from __future__ import annotations

import json
import os
import time

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles
from cocotb.utils import get_sim_time

from golden.config import config_from_dict
from golden.fixed_model import FixedMLP

from sim.check.golden_plan import TrainingPlan
from sim.check.train_flow import run_training
from sim.check.trainer_session import TrainingSession
from sim.host.cocotb_uart import CocotbBitUartTransport, CocotbUartTransport, LineNoise, reset_uart_top
from sim.host.driver import TrainerHost
from sim.host.uart_framing import MAX_TRIES, UartBusError

CLOCK_NS = 10


def _job():
    with open(os.environ["BPF_JOB"]) as f:
        return json.load(f)


def _write(job, obj):
    with open(job["result"], "w") as f:
        json.dump(obj, f)


@cocotb.test()
async def train(dut):
    """Train by the plan over the UART (through a noisy line when the job says so); zero
    mismatches."""
    job = _job()
    cfg = config_from_dict(job["config"])
    plan = TrainingPlan.load(job["plan"])
    await reset_uart_top(dut)
    noise = LineNoise(**job["noise"]) if job.get("noise") else None
    transport = CocotbUartTransport(dut, cfg.act.width, job["divisor"], noise=noise,
                                    max_tries=job.get("max_tries", MAX_TRIES))
    host = TrainerHost(cfg, transport)
    t0 = time.perf_counter()
    c0 = get_sim_time("ns") / CLOCK_NS
    records, board = await run_training(cfg, plan, host, job.get("check_params", "signature"))
    wall = time.perf_counter() - t0
    r = board.result
    _write(job, {
        "mismatches": r.mismatches,
        "first_mismatch": str(r.first) if r.first else None,
        "samples": r.samples,
        "updates": r.updates,
        "epochs": [rec.as_dict() for rec in records],
        "sim_cycles": get_sim_time("ns") / CLOCK_NS - c0,
        "wall_seconds": wall,
        "bytes_sent": transport.bytes_sent,
        "bytes_received": transport.bytes_received,
        "signature_reads": r.updates,
        "error_led": int(dut.error.value),
        "link": transport.stats.as_dict(),
        "noise": noise.as_dict() if noise else None,
    })
    assert r.mismatches == 0, str(r.first)
    if noise is None:
        assert not dut.error.value, "the UART top's error output is set"
        assert transport.stats.retries == 0, transport.stats.as_dict()


@cocotb.test()
async def busy_read(dut):
    """A parameter read while the trainer is busy (a sample half sent) comes back as a bus
    error, not a hang; after the sample completes the same read succeeds and training
    stays bit-exact."""
    job = _job()
    cfg = config_from_dict(job["config"])
    await reset_uart_top(dut)
    transport = CocotbUartTransport(dut, cfg.act.width, job["divisor"])
    host = TrainerHost(cfg, transport)
    golden = FixedMLP(cfg)
    session = TrainingSession(cfg, host, golden, "every")
    await host.check_id()
    x = np.array([cfg.act.one, 0])
    t = np.array([cfg.act.one])
    codes = [int(v) for v in x] + [int(v) for v in t]
    # the first beat only, without `last`: the trainer is busy loading a sample
    await transport.send_chunk(codes[:1], last=False)
    assert (await host.status())["busy"]
    refused = False
    try:
        await host._read_param(0, 0, 0)
    except UartBusError:
        refused = True
    assert refused, "a parameter read while busy was not reported as an error"
    assert (await host.status())["bus_error"], "the STATUS bus_error flag is not set"
    try:
        await host._write_param(0, 0, 0, 5)
    except UartBusError:
        refused = True
    else:
        refused = False
    assert refused, "a parameter write while busy was not reported as an error"
    await transport.send_chunk(codes[1:], last=True)
    await host.clear_errors()
    trace = golden.train_sample(x, t)
    out = await host.recv_output()
    assert list(out) == list(trace.output), (out, trace.output)
    await host.wait_idle()
    got = await host.read_param(0, 0, 0)
    assert got == int(golden.params[0][0, 0]), (got, golden.params[0][0, 0])
    r = await session.finish()
    _write(job, {"mismatches": r.mismatches, "first_mismatch": str(r.first) if r.first else None,
                 "refused": True})
    assert r.mismatches == 0, str(r.first)


@cocotb.test()
async def bit_level(dut):
    """The same host over cocotbext-uart's bit-level UART models (not hdl/uart.py on the
    host side): ID, a few training samples with outputs and every parameter checked."""
    job = _job()
    cfg = config_from_dict(job["config"])
    await reset_uart_top(dut, bit_level=True)
    transport = CocotbBitUartTransport(dut, cfg.act.width, job["divisor"])
    host = TrainerHost(cfg, transport)
    await host.check_id()
    session = TrainingSession(cfg, host, FixedMLP(cfg), "every")
    plan = TrainingPlan.load(job["plan"])
    n = job.get("samples", 4)
    t0 = time.perf_counter()
    c0 = get_sim_time("ns") / CLOCK_NS
    for i in range(n):
        await session.train_sample(plan.X_train[i % len(plan.X_train)], plan.T_train[i % len(plan.T_train)])
    r = await session.finish()
    _write(job, {"mismatches": r.mismatches, "first_mismatch": str(r.first) if r.first else None,
                 "samples": r.samples, "updates": r.updates, "wall_seconds": time.perf_counter() - t0,
                 "sim_cycles": get_sim_time("ns") / CLOCK_NS - c0})
    assert r.mismatches == 0, str(r.first)
    # a framing error (a break: the line low for 12 bit periods) lights the error output,
    # and the link still works afterwards
    assert not dut.error.value, "error output set by normal traffic"
    await transport.source.wait()
    dut.py_rx.value = 0
    await ClockCycles(dut.clk, 12 * job["divisor"])
    dut.py_rx.value = 1
    await ClockCycles(dut.clk, 2 * job["divisor"])
    assert dut.error.value, "a framing error did not set the error output"
    await host.check_id()
