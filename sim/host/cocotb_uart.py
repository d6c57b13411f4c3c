"""Transports for ``sim.host.driver.TrainerHost`` over the trainer's simulated UART (cocotb).

Both speak the byte protocol of sim/host/uart_framing.py (``FramedTransport``: the same code
the board's ``SerialTransport`` runs); they differ in who toggles the serial line:

``CocotbUartTransport(dut, width)``
    The fast path. The host's UART is HDL beside the design (sim/runners/uart_rtl.py:
    ``UartSimTop``); bytes go into the testbench wrapper's burst memory and come back
    from its capture ring (sim/runners/rtl_run.py: ``clock_wrapper``), so Python handles frames
    and the simulator runs free while the bits move.
``CocotbBitUartTransport(dut, width, divisor)``
    A pure-Python 8N1 model (``UartSource`` drives ``py_rx`` bit by bit, ``UartSink``
    samples ``tx`` mid-bit): independent of hdl/uart.py, slower (a Python wake-up per bit).

Both poll STATUS and read SIGNATURE over the link, as on a board (no side wires); with
``latch_signature`` (default) they wait for idle before each sample and latch SIGNATURE
there (``FramedTransport``), so the scoreboard's per-update signature check holds.
"""
from __future__ import annotations

import collections

import cocotb
from cocotb.triggers import ClockCycles, Event, FallingEdge, ReadOnly, RisingEdge

from sim.runners.rtl_run import BURST_DEPTH
from .uart_framing import FramedTransport

__all__ = ["CocotbUartTransport", "CocotbBitUartTransport", "UartSource", "UartSink", "reset_uart_top"]


async def reset_uart_top(dut, bit_level: bool = False) -> None:
    """Reset the simulated top (sim/runners/uart_rtl.py) and start capturing what the trainer sends."""
    dut.h_out__cap_enable.value = 1
    dut.h_out__gap.value = 0
    dut.h_in__gap.value = 0
    dut.rx_sel.value = int(bit_level)
    dut.py_rx.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


class CocotbUartTransport(FramedTransport):
    """Frames through the wrapper's burst memory (``h_in``) and capture ring (``h_out``)."""

    def __init__(self, dut, width: int, latch_signature: bool = True):
        super().__init__(width, latch_signature=latch_signature)
        self.dut = dut
        self.clk = dut.clk
        self._req = int(dut.h_in__burst_req.value)
        self._taken = int(dut.h_out__cap_count.value)
        self.bytes_sent = 0
        self.bytes_received = 0

    async def _write(self, data: bytes) -> None:
        d = self.dut
        if len(data) > BURST_DEPTH:
            raise ValueError(f"{len(data)} bytes exceed the testbench burst memory ({BURST_DEPTH})")
        while int(d.h_in__burst_ack.value) != self._req:  # the previous frame is still on the line
            await d.h_in__burst_ack.value_change
        mem = d.h_in__burst_mem
        for i, b in enumerate(data):
            mem[i].value = b
        d.h_in__burst_len.value = len(data)
        self._req = (self._req + 1) & 0xFFFFFFFF
        d.h_in__burst_req.value = self._req
        self.bytes_sent += len(data)

    async def _read(self, n: int) -> bytes:
        d = self.dut
        d.h_out__cap_goal.value = (self._taken + n) & 0xFFFFFFFF
        await ReadOnly()
        readonly = True
        if not d.h_out__cap_done.value:
            await RisingEdge(d.h_out__cap_done)
            readonly = False
        if d.h_overrun.value:
            raise AssertionError("the host-side UART receiver overran (a byte from the trainer was lost)")
        count = int(d.h_out__cap_count.value)
        if count - self._taken > BURST_DEPTH:
            raise AssertionError("the capture ring wrapped before the testbench read it")
        mem = d.h_out__cap_mem
        out = bytes(int(mem[i % BURST_DEPTH].value) & 0xFF for i in range(self._taken, count))
        self._taken = count
        self.bytes_received += len(out)
        if readonly:  # back to a phase where the next command may write
            await RisingEdge(self.clk)
        return out


class UartSource:
    """Drives an 8N1 line from cocotb, one bit per ``divisor`` clock cycles."""

    def __init__(self, clk, pin, divisor: int):
        self.clk, self.pin, self.divisor = clk, pin, divisor
        self.queue = collections.deque()
        self._wake = Event()
        self._idle = Event()
        self._idle.set()
        pin.value = 1
        cocotb.start_soon(self._run())

    def write(self, data: bytes) -> None:
        self.queue.extend(data)
        self._idle.clear()
        self._wake.set()

    async def wait(self) -> None:
        await self._idle.wait()

    async def _run(self):
        while True:
            if not self.queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                await RisingEdge(self.clk)
            byte = self.queue.popleft()
            for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                self.pin.value = bit
                await ClockCycles(self.clk, self.divisor)


class UartSink:
    """Samples an 8N1 line from cocotb: waits for the start bit's falling edge, then
    samples each bit in its middle; a low stop bit raises."""

    def __init__(self, clk, pin, divisor: int):
        self.clk, self.pin, self.divisor = clk, pin, divisor
        self.data = collections.deque()
        self._got = Event()
        cocotb.start_soon(self._run())

    async def _run(self):
        d = self.divisor
        while True:
            await FallingEdge(self.pin)
            await ClockCycles(self.clk, d // 2)
            if self.pin.value:
                continue  # a glitch
            byte = 0
            for i in range(8):
                await ClockCycles(self.clk, d)
                byte |= int(self.pin.value) << i
            await ClockCycles(self.clk, d)
            if not self.pin.value:
                raise AssertionError(f"framing error on the trainer's tx line after byte {byte:#04x}")
            self.data.append(byte)
            self._got.set()

    async def read(self, n: int) -> bytes:
        while len(self.data) < n:
            self._got.clear()
            await self._got.wait()
        out = bytes(self.data)
        self.data.clear()
        return out


class CocotbBitUartTransport(FramedTransport):
    """Frames over the trainer's pins, bit by bit from Python (``rx_sel`` must be 1)."""

    def __init__(self, dut, width: int, divisor: int, latch_signature: bool = True):
        super().__init__(width, latch_signature=latch_signature)
        self.source = UartSource(dut.clk, dut.py_rx, divisor)
        self.sink = UartSink(dut.clk, dut.tx, divisor)

    async def _write(self, data: bytes) -> None:
        self.source.write(data)

    async def _read(self, n: int) -> bytes:
        return await self.sink.read(n)
