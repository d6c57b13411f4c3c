"""Transport for ``sim.host.driver.TrainerHost`` over the trainer's AXI interfaces (cocotb).

The AXI top (hdl/axi/top.py: ``AxiTrainer``) is driven by cocotbext-axi's bus functional
models: ``AxiLiteMaster`` on ``s_axi_*`` for registers and parameters, ``AxiStreamSource``
on ``s_axis_*`` for samples, ``AxiStreamSink`` on ``m_axis_*`` for results. An access
the trainer refuses comes back as SLVERR, one outside the map as DECERR: both raise
:class:`AxiResponseError` naming the address and the response.

``pauses(seed, p)`` gives every channel its own random pause pattern (idle cycles on the
sources, backpressure on the sinks: AW, W, AR, B, R, the sample stream and the result
stream), so the design sees random handshakes on all three interfaces.

Like the UART transports (sim/host/uart_framing.py: ``FramedTransport``) this one has no
side wires: the parameter signature is read over the bus. A read "once the next sample
has produced its outputs" (sim/check/trainer_session.py) could already see that
sample's update, so the transport waits for idle before each sample and latches
SIGNATURE and STATE_SIGNATURE there; ``peek_signature`` returns the latched values.
"""
from __future__ import annotations

import itertools
import logging
import random

from cocotbext.axi import (AxiLiteBus, AxiLiteMaster, AxiResp, AxiStreamBus, AxiStreamFrame, AxiStreamSink,
                           AxiStreamSource)

from hdl.axi.lite import byte_address
from hdl.csr import REG

from .transport import Transport

__all__ = ["AxiTransport", "AxiResponseError", "random_pauses"]


class AxiResponseError(RuntimeError):
    """An AXI4-Lite access answered SLVERR (refused) or DECERR (outside the map)."""

    def __init__(self, op: str, addr: int, resp):
        self.op, self.addr, self.resp = op, addr, AxiResp(int(resp))
        super().__init__(f"AXI4-Lite {op} of byte address {addr:#010x} answered {self.resp.name}")


def random_pauses(p: float, seed: int):
    """An endless 1/0 pattern (1 = pause this cycle), each cycle 1 with probability ``p``."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"pause probability must be in [0, 1), got {p!r}")
    rng = random.Random(seed)
    return (int(rng.random() < p) for _ in itertools.count())


class AxiTransport(Transport):
    """The trainer's AXI ports in a cocotb simulation, through cocotbext-axi.

    Parameters
    ----------
    dut : cocotb handle
        The ``AxiTrainer`` top (ports ``aclk``, ``aresetn``, ``s_axis_*``, ``m_axis_*``,
        ``s_axi_*``); the clock must be running.
    data_width : int
        The act code width (``cfg.act.width``): results are masked to it.
    stall_prob : float
        Probability of a pause in any cycle on each of the seven channels (0: none).
    seed : int
        Seeds the pause patterns (each channel its own).
    """

    def __init__(self, dut, data_width: int, stall_prob: float = 0.0, seed: int = 0):
        self.mask = (1 << data_width) - 1
        clk, rst = dut.aclk, dut.aresetn
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi"), clk, rst, reset_active_level=False)
        # one code per beat: the whole tdata is one "byte" (no tkeep)
        self.source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), clk, rst, reset_active_level=False,
                                      byte_lanes=1)
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), clk, rst, reset_active_level=False,
                                  byte_lanes=1)
        self.tdata_mask = (1 << len(dut.s_axis_tdata)) - 1
        for bfm in (self.axil.write_if, self.axil.read_if, self.source, self.sink):
            bfm.log.setLevel(logging.WARNING)  # a line per transaction costs more than the simulation
        if stall_prob:
            channels = [self.axil.write_if.aw_channel, self.axil.write_if.w_channel, self.axil.write_if.b_channel,
                        self.axil.read_if.ar_channel, self.axil.read_if.r_channel, self.source, self.sink]
            for n, ch in enumerate(channels):
                ch.set_pause_generator(random_pauses(stall_prob, seed * 16 + n))
        self._beats = []  # received codes not yet handed out, with their tlast
        self._signature = None
        self._state_signature = None
        self.reads = self.writes = 0

    async def csr_read(self, addr: int) -> int:
        r = await self.axil.read(byte_address(addr), 4)
        self.reads += 1
        if r.resp != AxiResp.OKAY:
            raise AxiResponseError("read", byte_address(addr), r.resp)
        return int.from_bytes(r.data, "little")

    async def csr_write(self, addr: int, value: int) -> None:
        r = await self.axil.write(byte_address(addr), (value & 0xFFFFFFFF).to_bytes(4, "little"))
        self.writes += 1
        if r.resp != AxiResp.OKAY:
            raise AxiResponseError("write", byte_address(addr), r.resp)

    async def wait_idle(self) -> None:
        await self.source.wait()  # beats still queued would make the trainer busy again
        await super().wait_idle()
        self._signature = await self.csr_read(REG["SIGNATURE"])
        self._state_signature = await self.csr_read(REG["STATE_SIGNATURE"])

    async def peek_signature(self) -> int:
        if self._signature is None:
            await self.wait_idle()
        return self._signature

    async def peek_state_signature(self) -> int:
        if self._state_signature is None:
            await self.wait_idle()
        return self._state_signature

    async def send_beats(self, codes) -> None:
        # the last update's signatures, latched before this sample can start another one
        await self.wait_idle()
        await self.source.send(AxiStreamFrame([int(c) & self.tdata_mask for c in codes]))

    async def wait_sent(self) -> None:
        await self.source.wait()

    async def recv_beats(self, n: int) -> list:
        while len(self._beats) < n:
            frame = await self.sink.recv(compact=False)
            codes = list(frame.tdata)
            self._beats += [(c & self.mask, i == len(codes) - 1) for i, c in enumerate(codes)]
        out = []
        for i in range(n):
            code, last = self._beats.pop(0)
            if last != (i == n - 1):
                raise AssertionError(f"output beat {i} of {n} has tlast={int(last)}")
            out.append(code)
        return out
