"""cocotb test module for the AXI top (hdl/axi/top.py: ``AxiTrainer``), run by
sim/runners/axi_rtl.py under Icarus or Verilator. Every AXI transaction goes through
cocotbext-axi's bus functional models (sim/host/axi_transport.py).

The job is a JSON file named by ``BPF_JOB``: ``config``, ``plan`` (a pickled
sim.check.golden_plan.TrainingPlan), ``check_params``, ``stall_prob`` and ``seed`` (random
pauses on all seven AXI channels), ``progress`` (a JSON-lines file the parent tails) and
``result`` (the summary). The testcase picks the scenario:

``train``
    the unchanged ``TrainerHost`` trains by the plan: every output, every update's
    signature (or every parameter) and all parameters at the end equal golden;
``bus_errors``
    the AXI responses: OKAY for registers and parameters, DECERR outside the map,
    SLVERR for a refused access (read-only register, partial write strobes, a value out
    of range, a parameter access while a sample is loading), and nothing refused is applied.
"""
from __future__ import annotations

import json
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiResp, AxiStreamFrame

from golden.config import config_from_dict
from golden.fixed_model import FixedMLP

from hdl.axi.lite import byte_address
from hdl.csr import ID_VALUE, REG, STATUS_BITS, param_address
from sim.check.golden_plan import TrainingPlan
from sim.check.train_flow import run_training
from sim.check.trainer_session import TrainingSession
from sim.host.axi_transport import AxiTransport
from sim.host.driver import TrainerHost

CLOCK_NS = 10


def _job():
    with open(os.environ["BPF_JOB"]) as f:
        return json.load(f)


def _write(path, obj, mode="w"):
    if path:
        with open(path, mode) as f:
            f.write(json.dumps(obj) + "\n")


async def _start(dut, job):
    cfg = config_from_dict(job["config"])
    Clock(dut.aclk, CLOCK_NS, unit="ns").start()
    dut.aresetn.value = 0
    transport = AxiTransport(dut, cfg.act.width, job.get("stall_prob", 0.0), job.get("seed", 0))
    await ClockCycles(dut.aclk, 4)
    dut.aresetn.value = 1
    await ClockCycles(dut.aclk, 2)
    return cfg, transport, TrainerHost(cfg, transport)


@cocotb.test()
async def train(dut):
    """Train by the plan over AXI; zero mismatches."""
    job = _job()
    cfg, transport, host = await _start(dut, job)
    plan = TrainingPlan.load(job["plan"])
    progress = job.get("progress")
    count = {"n": 0}

    def on_sample():
        count["n"] += 1
        if count["n"] % 50 == 0:
            _write(progress, {"samples": count["n"]}, "a")

    t0 = time.perf_counter()
    c0 = get_sim_time("ns") / CLOCK_NS
    records, session = await run_training(cfg, plan, host, job.get("check_params", "signature"),
                                          on_epoch=lambda rec: _write(progress, {"epoch": rec.as_dict()}, "a"),
                                          on_sample=on_sample)
    r = session.result
    _write(job.get("result"), {
        "mismatches": r.mismatches,
        "first_mismatch": str(r.first) if r.first else None,
        "samples": r.samples,
        "updates": r.updates,
        "epochs": [rec.as_dict() for rec in records],
        "sim_cycles": get_sim_time("ns") / CLOCK_NS - c0,
        "wall_seconds": time.perf_counter() - t0,
        "axil_reads": transport.reads,
        "axil_writes": transport.writes,
        "stall_prob": job.get("stall_prob", 0.0),
    })
    assert r.mismatches == 0, str(r.first)


async def _expect(what, coro, resp):
    got = await coro
    assert got.resp == resp, f"{what}: expected {resp.name}, got {AxiResp(int(got.resp)).name}"
    return got


async def _pause_after_first_beat(dut, source):
    """Pause ``source`` once its first beat is taken: seen on settled values at the
    falling edge, before the rising edge at which the source would present the next."""
    while True:
        await FallingEdge(dut.aclk)
        if dut.s_axis_tvalid.value and dut.s_axis_tready.value:
            source.pause = True
            return


@cocotb.test()
async def bus_errors(dut):
    """OKAY, SLVERR and DECERR where docs/registers.md says, and refused writes change nothing."""
    job = _job()
    cfg, t, host = await _start(dut, job)
    axil = t.axil
    word = lambda v: (v & 0xFFFFFFFF).to_bytes(4, "little")  # noqa: E731
    value = lambda r: int.from_bytes(r.data, "little")  # noqa: E731
    OK, SLV, DEC = AxiResp.OKAY, AxiResp.SLVERR, AxiResp.DECERR
    checks = []

    async def read(what, addr, resp):
        r = await _expect(what, axil.read(addr, 4), resp)
        checks.append(what)
        return value(r)

    async def write(what, addr, data, resp):
        await _expect(what, axil.write(addr, data), resp)
        checks.append(what)

    assert await read("ID", byte_address(REG["ID"]), OK) == ID_VALUE
    p0 = param_address(*host.layout.param_location(0, 0, 0))
    w0 = await read("parameter read while idle", byte_address(p0), OK)
    await write("LR write", byte_address(REG["LR"]), word(cfg.lr_code + 1), OK)
    assert await read("LR read back", byte_address(REG["LR"]), OK) == cfg.lr_code + 1
    await write("LR back", byte_address(REG["LR"]), word(cfg.lr_code), OK)
    # outside the map
    await read("unknown register", byte_address(0x3F), DEC)
    await write("write to an unknown register", byte_address(0x3F), word(1), DEC)
    await read("bank past the last lane", byte_address(param_address(cfg.lanes, 0)), DEC)
    await read("word past the bank", byte_address(param_address(0, host.layout.bank_words)), DEC)
    await read("above the word-address space", 0x8000_0000, DEC)
    await write("write above the word-address space", 0xFFFF_FFFC, word(1), DEC)
    # refused
    await write("write to read-only ID", byte_address(REG["ID"]), word(0), SLV)
    await write("LR out of range", byte_address(REG["LR"]), word(0), SLV)
    assert await read("LR unchanged", byte_address(REG["LR"]), OK) == cfg.lr_code
    await write("partial write strobes", byte_address(REG["CTRL"]), b"\x01\x00", SLV)
    assert await read("CTRL unchanged", byte_address(REG["CTRL"]), OK) == 0
    # a parameter access while a sample is loading: the source stops after the first beat
    x = [cfg.act.one] + [0] * (cfg.layers[0] - 1)
    target = [cfg.act.one] * cfg.layers[-1]
    t.source.clear_pause_generator()
    t.source.pause = False  # (the generator's last value stays otherwise)
    stopper = cocotb.start_soon(_pause_after_first_beat(dut, t.source))
    await t.source.send(AxiStreamFrame(x + target))
    await stopper
    await ClockCycles(dut.aclk, 10)
    status = await read("STATUS while loading", byte_address(REG["STATUS"]), OK)
    assert status & STATUS_BITS["busy"], "the trainer is not busy with a partial sample"
    assert await read("parameter read while busy", byte_address(p0), SLV) == 0
    await write("parameter write while busy", byte_address(p0), word(w0 + 1), SLV)
    t.source.pause = False
    out = await t.recv_beats(cfg.layers[-1])
    golden = FixedMLP(cfg)
    trace = golden.train_sample(x, target)
    assert [v - (1 << cfg.act.width) if v >> (cfg.act.width - 1) else v for v in out] == list(trace.output)
    status = await read("STATUS after", byte_address(REG["STATUS"]), OK)
    assert status & STATUS_BITS["bus_error"], "refused accesses did not set the sticky bus_error flag"
    await host.clear_errors()
    await host.wait_idle()
    # the refused write was not applied: every parameter is golden's after that one update
    session = TrainingSession(cfg, host, golden, "every")
    await session.compare_params(1, golden.params)
    assert session.result.mismatches == 0, str(session.result.first)
    _write(job.get("result"), {"checks": checks, "mismatches": 0})
