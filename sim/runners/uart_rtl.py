"""Run the trainer over its UART (hdl/uart_bridge.py: UartTrainer) in Icarus or Verilator.

The simulated top, ``UartSimTop``, is the board top ``UartTrainer`` with the host's end of
the serial line beside it: a UartTx driving the trainer's ``rx`` pin and a UartRx sampling
its ``tx`` pin, both with byte streams (``h_in`` / ``h_out``). sim/runners/rtl_run.py's testbench
wrapper turns those streams into a burst memory and a capture ring that the cocotb side
(sim/host/cocotb_uart.py) fills and reads through VPI without advancing time, so the bits
move in Verilog at full simulator speed and Python only handles whole frames. A second
path for a pure-Python bit-level model: with ``rx_sel`` high the trainer's ``rx`` pin
follows ``py_rx`` (driven bit by bit from cocotb), and ``tx`` is the trainer's pin.
"""
from __future__ import annotations

import json

from amaranth.hdl import Module, Mux
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden.config import Config, config_to_dict

__all__ = ["UartSimTop", "SIM_CLOCK_HZ", "DEFAULT_DIVISOR", "uart_top_verilog", "run_uart_job"]

SIM_CLOCK_HZ = 100_000_000  # the wrapper's clock: 10 ns period (sim/runners/rtl_run.py)
DEFAULT_DIVISOR = 8  # clock cycles per bit in simulation


class UartSimTop(wiring.Component):
    """``UartTrainer`` plus the host's UART, for simulation.

    Members
    -------
    h_in : In(stream.Signature(8))
        Bytes the host sends (serialised onto the trainer's ``rx`` pin).
    h_out : Out(stream.Signature(8))
        Bytes received from the trainer's ``tx`` pin (no backpressure: a UART cannot stall).
    rx_sel : In(1)
        0: the trainer's ``rx`` comes from the host UartTx; 1: from ``py_rx``.
    py_rx : In(1)
        The line a bit-level Python model drives.
    tx : Out(1)
        The trainer's ``tx`` pin.
    busy, error : Out(1)
        UartTrainer's LED outputs.
    h_overrun : Out(1)
        The host-side receiver dropped a byte (the testbench did not take it in time).
    """

    def __init__(self, cfg: Config, divisor: int = DEFAULT_DIVISOR):
        self._cfg = cfg
        self._divisor = divisor
        super().__init__({
            "h_in": In(stream.Signature(8)),
            "h_out": Out(stream.Signature(8)),
            "rx_sel": In(1),
            "py_rx": In(1),
            "tx": Out(1),
            "busy": Out(1),
            "error": Out(1),
            "h_overrun": Out(1),
        })

    @property
    def baud(self) -> int:
        return SIM_CLOCK_HZ // self._divisor

    def elaborate(self, platform):
        from hdl.uart import UartRx, UartTx
        from hdl.uart_bridge import UartTrainer

        m = Module()
        m.submodules.dut = dut = UartTrainer(self._cfg, clk_freq=SIM_CLOCK_HZ, baud=self.baud)
        assert dut.divisor == self._divisor
        m.submodules.host_tx = htx = UartTx(self._divisor)
        m.submodules.host_rx = hrx = UartRx(self._divisor)
        wiring.connect(m, wiring.flipped(self.h_in), htx.i)
        wiring.connect(m, hrx.o, wiring.flipped(self.h_out))
        m.d.comb += [
            dut.rx.eq(Mux(self.rx_sel, self.py_rx, htx.tx)),
            hrx.rx.eq(dut.tx),
            self.tx.eq(dut.tx),
            self.busy.eq(dut.busy),
            self.error.eq(dut.error),
        ]
        with m.If(hrx.overrun):
            m.d.sync += self.h_overrun.eq(1)
        return m


def uart_top_verilog(cfg: Config, divisor: int = DEFAULT_DIVISOR) -> str:
    from hdl.verilog import to_verilog
    return to_verilog(UartSimTop(cfg, divisor), "uart_top")


def run_uart_job(cfg: Config, simulator: str, *, testcase: str = "train", plan=None,
                 check_params: str = "signature", divisor: int = DEFAULT_DIVISOR, build_root: str = "build",
                 extra: dict | None = None) -> dict:
    """Build (once per design) and run one testcase of sim/testbench/uart_trainer.py; returns the
    result dict the test wrote plus ``tests`` (passed, log). Raises RuntimeError naming
    the first failure when the simulation fails without writing a result."""
    from .rtl_run import prepare_build, run_cocotb_test

    build = prepare_build(uart_top_verilog(cfg, divisor), "uart_top", simulator, build_root)
    job_dir = build.run_dir(f"uart-{testcase}")
    result = job_dir / "result.json"
    result.unlink(missing_ok=True)
    plan_file = job_dir / "plan.pickle"
    if plan is not None:
        plan.save(plan_file)
    job = {"config": config_to_dict(cfg), "plan": str(plan_file), "check_params": check_params,
           "divisor": divisor, "result": str(result), **(extra or {})}
    job_file = job_dir / "job.json"
    job_file.write_text(json.dumps(job))
    tests = run_cocotb_test(build, "sim.testbench.uart_trainer", testcase, job_dir, extra_env={"BPF_JOB": str(job_file)})
    if not result.exists():
        raise RuntimeError(f"the {simulator} UART simulation failed: {tests.get('failure', '?')} "
                           f"(log: {tests.get('log')})")
    data = json.loads(result.read_text())
    data["tests"] = tests
    return data
