"""Transport for ``sim.host.driver.TrainerHost`` over Amaranth's own simulator (quick iteration).

Used inside an ``async def testbench(ctx)``; drives the trainer's csr bus and streams.
"""
from __future__ import annotations

from .transport import Transport

__all__ = ["AmaranthTransport"]


class AmaranthTransport(Transport):
    def __init__(self, ctx, dut, data_width: int):
        self.ctx = ctx
        self.dut = dut
        self.mask = (1 << data_width) - 1

    async def csr_read(self, addr: int) -> int:
        ctx, csr = self.ctx, self.dut.csr
        ctx.set(csr.addr, addr)
        ctx.set(csr.re, 1)
        value, = await ctx.tick().sample(csr.rdata).until(csr.ack)
        ctx.set(csr.re, 0)
        return value

    async def csr_write(self, addr: int, value: int) -> None:
        ctx, csr = self.ctx, self.dut.csr
        ctx.set(csr.addr, addr)
        ctx.set(csr.wdata, value & 0xFFFFFFFF)
        ctx.set(csr.we, 1)
        await ctx.tick().until(csr.ack)
        ctx.set(csr.we, 0)

    async def wait_idle(self) -> None:
        if self.ctx.get(self.dut.busy):
            await self.ctx.tick().until(~self.dut.busy)

    async def send_beats(self, codes) -> None:
        ctx, s = self.ctx, self.dut.s_data
        for i, c in enumerate(codes):
            ctx.set(s.payload, {"data": c, "last": i == len(codes) - 1})
            ctx.set(s.valid, 1)
            await ctx.tick().until(s.ready)
        ctx.set(s.valid, 0)

    async def recv_beats(self, n: int) -> list:
        ctx, s = self.ctx, self.dut.m_data
        out = []
        ctx.set(s.ready, 1)
        for i in range(n):
            payload, = await ctx.tick().sample(s.payload).until(s.valid)
            if bool(payload.last) != (i == n - 1):
                raise AssertionError(f"output beat {i} of {n} has last={int(payload.last)}")
            out.append(int(payload.data))
        ctx.set(s.ready, 0)
        return out
