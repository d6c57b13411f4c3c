"""Transport for ``sim.host.TrainerHost`` over cocotb (Icarus, Verilator).

Drives the trainer's ports as Amaranth names them in Verilog (``s_data__payload``,
``s_data__valid``, ``csr__addr``, ...). Each beat costs two simulator callbacks: the
handshake is decided on settled values (ReadOnly) before the clock edge, which is the
same on every simulator. Optional random idle (source) and backpressure (sink) cycles
come from seeded generators.
"""
from __future__ import annotations

import random

from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

__all__ = ["CocotbTransport"]


class CocotbTransport:
    def __init__(self, dut, data_width: int, stall_prob: float = 0.0, seed: int = 0):
        self.dut = dut
        self.clk = dut.clk
        self.w = data_width
        self.mask = (1 << data_width) - 1
        self.stall_prob = stall_prob
        self.rng = random.Random(seed)

    def _stall(self) -> bool:
        return self.stall_prob > 0 and self.rng.random() < self.stall_prob

    async def _idle_cycles(self):
        while self._stall():
            await RisingEdge(self.clk)

    async def csr_read(self, addr: int) -> int:
        d = self.dut
        await self._idle_cycles()
        d.csr__addr.value = addr
        d.csr__re.value = 1
        while True:
            await ReadOnly()
            if d.csr__ack.value:
                value = int(d.csr__rdata.value)
                await RisingEdge(self.clk)
                break
            await RisingEdge(self.clk)
        d.csr__re.value = 0
        return value

    async def csr_write(self, addr: int, value: int) -> None:
        d = self.dut
        await self._idle_cycles()
        d.csr__addr.value = addr
        d.csr__wdata.value = value & 0xFFFFFFFF
        d.csr__we.value = 1
        while True:
            await ReadOnly()
            ack = bool(d.csr__ack.value)
            await RisingEdge(self.clk)
            if ack:
                break
        d.csr__we.value = 0

    async def wait_idle(self) -> None:
        await ReadOnly()
        if self.dut.busy.value:
            await FallingEdge(self.dut.busy)
        await RisingEdge(self.clk)

    async def send_beats(self, codes) -> None:
        d = self.dut
        n = len(codes)
        for i, c in enumerate(codes):
            if self._stall():
                d.s_data__valid.value = 0
                await self._idle_cycles()
            d.s_data__payload.value = (int(c) & self.mask) | ((i == n - 1) << self.w)
            d.s_data__valid.value = 1
            while True:
                await ReadOnly()
                ready = bool(d.s_data__ready.value)
                await RisingEdge(self.clk)
                if ready:
                    break
        d.s_data__valid.value = 0

    async def recv_beats(self, n: int) -> list:
        d = self.dut
        out = []
        while len(out) < n:
            stall = self._stall()
            d.m_data__ready.value = 0 if stall else 1
            await ReadOnly()
            valid = bool(d.m_data__valid.value)
            if not valid and not stall:
                # let the simulator run free until the trainer has output (no per-cycle Python)
                await RisingEdge(d.m_data__valid)
                await ReadOnly()
                valid = bool(d.m_data__valid.value)
            payload = int(d.m_data__payload.value) if valid and not stall else None
            await RisingEdge(self.clk)
            if payload is not None:
                last = (payload >> self.w) & 1
                if last != (len(out) == n - 1):
                    raise AssertionError(f"output beat {len(out)} of {n} has last={last}")
                out.append(payload & self.mask)
        d.m_data__ready.value = 0
        return out
