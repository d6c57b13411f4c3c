"""Transport for ``sim.host.TrainerHost`` over cocotb (Icarus, Verilator).

Drives the trainer's ports as Amaranth names them in Verilog (``s_data__payload``,
``s_data__valid``, ``csr__addr``, ...) inside the testbench top of sim/rtl_run.py.
Samples and results move per sample, not per cycle: a sample's beats are written into the
wrapper's burst memory through VPI and the wrapper streams them; results are captured by
the wrapper and read back once the expected number has arrived. The simulator runs free
in between. Random idle cycles on the input stream and backpressure on the output stream
(``stall_prob``) come from the wrapper's LFSRs; control-bus accesses get random idle
cycles from a seeded generator. Handshakes on the control bus are decided on settled
values (ReadOnly) before the clock edge, the same on every simulator.
"""
from __future__ import annotations

import random

from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from .rtl_run import BURST_DEPTH

__all__ = ["CocotbTransport"]


class CocotbTransport:
    def __init__(self, dut, data_width: int, stall_prob: float = 0.0, seed: int = 0):
        self.dut = dut
        self.clk = dut.clk
        self.w = data_width
        self.mask = (1 << data_width) - 1
        self.stall_prob = stall_prob
        self.rng = random.Random(seed)
        self._gap = min(255, int(stall_prob * 256))  # wrapper LFSR threshold for stream stalls
        self._taken = 0  # output beats taken from the wrapper's capture ring

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
            await RisingEdge(self.clk)  # ack can only rise after an edge has seen `re`
            await ReadOnly()
            if d.csr__ack.value:
                value = int(d.csr__rdata.value)
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

    async def wait_sent(self) -> None:
        """Until the wrapper has delivered every beat of the last burst."""
        await ReadOnly()
        if self.dut.s_data__active.value:
            await FallingEdge(self.dut.s_data__active)
        await RisingEdge(self.clk)

    async def peek_signature(self) -> int:
        return int(self.dut.param_signature.value)

    async def send_beats(self, codes) -> None:
        d = self.dut
        while int(d.s_data__burst_req.value) != int(d.s_data__burst_ack.value):
            await RisingEdge(self.clk)  # the previous burst is still streaming
        n = len(codes)
        if n > BURST_DEPTH:
            raise ValueError(f"a sample of {n} beats exceeds the testbench burst memory ({BURST_DEPTH})")
        mem = d.s_data__burst_mem
        for i, c in enumerate(codes):
            mem[i].value = (int(c) & self.mask) | ((i == n - 1) << self.w)
        d.s_data__burst_len.value = n
        d.s_data__gap.value = self._gap
        d.s_data__burst_req.value = (int(d.s_data__burst_req.value) + 1) & 0xFFFFFFFF

    async def recv_beats(self, n: int) -> list:
        """The next ``n`` captured beats. The wrapper's capture count only grows: this side
        remembers how many it has taken and arms ``cap_goal`` for the beats it waits for."""
        d = self.dut
        goal = self._taken + n
        settled = False
        if int(d.m_data__cap_goal.value) != goal:
            d.m_data__cap_goal.value = goal
            d.m_data__gap.value = self._gap
            d.m_data__cap_enable.value = 1
            await ReadOnly()  # settled: is the goal already met?
            settled = True
        if not d.m_data__cap_done.value:
            await RisingEdge(d.m_data__cap_done)
            settled = False
        out = []
        mem = d.m_data__cap_mem
        for i in range(n):
            payload = int(mem[(self._taken + i) % BURST_DEPTH].value)
            last = (payload >> self.w) & 1
            if last != (i == n - 1):
                raise AssertionError(f"output beat {i} of {n} has last={last}")
            out.append(payload & self.mask)
        self._taken = goal
        # arm the goal of the next result now (results always have the same length), so the
        # next call finds cap_done settled and waits on it at most once
        if settled:  # no writes in the read-only phase: move to the next edge first
            await RisingEdge(self.clk)
        d.m_data__cap_goal.value = goal + n
        return out
