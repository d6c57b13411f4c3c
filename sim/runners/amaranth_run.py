"""Run a training session on the trainer under Amaranth's simulator (no Verilog needed).

Slow (a few k cycles/s) but quick to start: the place to iterate on the design with tiny
networks. Long runs belong on Verilator (sim/runners/rtl_run.py).
"""
from __future__ import annotations

from amaranth.sim import Simulator

from golden.config import Config
from golden.fixed_model import FixedMLP

from hdl.trainer import build_trainer
from sim.check.trainer_session import SessionResult, TrainingSession
from sim.host.amaranth_transport import AmaranthTransport
from sim.host.driver import TrainerHost

__all__ = ["run_amaranth_session"]


def run_amaranth_session(cfg: Config, script, check_params: str = "every", vcd: str | None = None) -> SessionResult:
    """Build the trainer for ``cfg`` and run ``await script(session)`` against it.

    ``script`` is an async function taking a :class:`TrainingSession`; the session's
    golden model starts from the same initial parameters the hardware memories hold.
    """
    dut = build_trainer(cfg)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    box = {}

    async def testbench(ctx):
        host = TrainerHost(cfg, AmaranthTransport(ctx, dut, cfg.act.width))
        await host.check_id()
        session = TrainingSession(cfg, host, FixedMLP(cfg), check_params)
        await script(session)
        box["result"] = await session.finish()

    sim.add_testbench(testbench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return box["result"]
