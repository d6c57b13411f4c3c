"""cocotb side of the trainer component tests: plays a cycle schedule into the generated
Verilog and records the outputs.

The schedule (tests/hdl/trainer/helpers.py ``Schedule``, as JSON in the file named by env
``TB_SCHEDULE``) gives every input's value in every cycle; the inputs change half a cycle
before the clock edge that takes them, and the outputs are read once they have settled
(ReadOnly), as amaranth.sim's testbench reads them before its tick. The recording goes
to the file named by ``TB_RECORD``; the checks run in pytest on it, the same checks as
for amaranth.sim. Run through sim.runners.cocotb_run.run_cocotb (helpers.run_rtl).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly


def _read(handle, signed: bool) -> int:
    v = handle.value
    if hasattr(v, "to_signed"):
        return v.to_signed() if signed else v.to_unsigned()
    return int(v)


@cocotb.test()
async def play_schedule(dut):
    sched = json.loads(Path(os.environ["TB_SCHEDULE"]).read_text())
    handles = {}

    def handle(name):
        if name not in handles:
            handles[name] = getattr(dut, name)
        return handles[name]

    def drive(cyc):
        for name, v in cyc.items():
            h = handle(name)
            h.value = v & ((1 << len(h)) - 1)

    Clock(dut.clk, 10, unit="ns").start(start_high=False)
    dut.rst.value = 1
    drive(sched["inputs"][0])
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    record = []
    for cyc in sched["inputs"]:
        await FallingEdge(dut.clk)
        drive(cyc)
        await ReadOnly()
        record.append({name: _read(handle(name), sched["signed"][name]) for name in sched["outputs"]})
    Path(os.environ["TB_RECORD"]).write_text(json.dumps(record))
