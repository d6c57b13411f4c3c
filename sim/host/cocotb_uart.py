"""Transports for ``sim.host.driver.TrainerHost`` over the trainer's simulated UART (cocotb).

Both speak the byte protocol of sim/host/uart_framing.py (``FramedTransport``: CRC, stop and
wait, retries: the same code the board's ``SerialTransport`` runs); they differ in who
toggles the serial line:

``CocotbUartTransport(dut, width, divisor)``
    The fast path. The host's UART is HDL beside the design (sim/runners/uart_rtl.py:
    ``UartSimTop``); bytes go into the testbench wrapper's burst memory and come back
    from its capture ring (sim/runners/rtl_run.py: ``clock_wrapper``), so Python handles frames
    and the simulator runs free while the bits move. ``noise`` (a :class:`LineNoise`)
    flips bits and drops bytes on the way, both directions.
``CocotbBitUartTransport(dut, width, divisor)``
    cocotbext-uart's ``UartSource`` drives the trainer's ``rx`` pin (``py_rx``) and its
    ``UartSink`` samples ``tx``, bit by bit from Python: independent of hdl/uart.py,
    slower (a Python wake-up per bit).

Both poll STATUS and read SIGNATURE over the link, as on a board (no side wires); with
``latch_signature`` (default) they wait for idle before each sample and latch SIGNATURE
there (``FramedTransport``), so the scoreboard's per-update signature check holds.
Timeouts and the quiet wait before a retry are in simulated time, from the bit period.
"""
from __future__ import annotations

import random

from cocotb.triggers import ClockCycles, First, ReadOnly, RisingEdge, Timer
from cocotbext.uart import UartSink, UartSource

from hdl.uart_protocol import RESYNC_IDLE_BITS
from sim.runners.rtl_run import BURST_DEPTH

from .uart_framing import MAX_TRIES, FramedTransport, LinkTimeout

__all__ = ["CocotbUartTransport", "CocotbBitUartTransport", "LineNoise", "reset_uart_top", "CLOCK_NS"]

CLOCK_NS = 10  # the wrapper's clock period (sim/runners/uart_rtl.py: SIM_CLOCK_HZ)
#: beyond the bytes on the line, a reply may wait this long (the trainer accepting a
#: sample while it computes the previous one)
TRAINER_SLACK_CYCLES = 50_000


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


class LineNoise:
    """Corrupts bytes on the simulated line: each byte dropped with probability ``p_drop``,
    each bit of the others flipped with probability ``p_flip``; counts what it did."""

    def __init__(self, p_flip: float = 0.0, p_drop: float = 0.0, seed: int = 0):
        for name, p in (("p_flip", p_flip), ("p_drop", p_drop)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {p!r}")
        self.p_flip, self.p_drop = p_flip, p_drop
        self.rng = random.Random(seed)
        self.flipped = self.dropped = self.bytes = 0

    def __call__(self, data: bytes) -> bytes:
        out = bytearray()
        for b in data:
            self.bytes += 1
            if self.p_drop and self.rng.random() < self.p_drop:
                self.dropped += 1
                continue
            if self.p_flip:
                for bit in range(8):
                    if self.rng.random() < self.p_flip:
                        b ^= 1 << bit
                        self.flipped += 1
            out.append(b)
        return bytes(out)

    def as_dict(self) -> dict:
        return {"flipped_bits": self.flipped, "dropped_bytes": self.dropped, "bytes": self.bytes}


class _SimTimed(FramedTransport):
    """Timeouts and quiet waits in simulated time, from the bit period."""

    def __init__(self, width: int, divisor: int, latch_signature: bool, max_tries: int = MAX_TRIES):
        super().__init__(width, latch_signature=latch_signature, max_tries=max_tries)
        self.divisor = divisor
        self._last_write = 0

    def _timeout_ns(self, n: int) -> int:
        """The command still going out, ``n`` reply bytes and the resync gap, plus slack."""
        byte_times = self._last_write + n + 2 * RESYNC_IDLE_BITS // 10 + 4
        return (byte_times * 10 * self.divisor + TRAINER_SLACK_CYCLES) * CLOCK_NS

    def _quiet_ns(self) -> int:
        return 2 * RESYNC_IDLE_BITS * self.divisor * CLOCK_NS


class CocotbUartTransport(_SimTimed):
    """Frames through the wrapper's burst memory (``h_in``) and capture ring (``h_out``)."""

    def __init__(self, dut, width: int, divisor: int, latch_signature: bool = True, noise: LineNoise | None = None,
                 max_tries: int = MAX_TRIES):
        super().__init__(width, divisor, latch_signature, max_tries)
        self.dut = dut
        self.clk = dut.clk
        self.noise = noise
        self._req = int(dut.h_in__burst_req.value)
        self._taken = int(dut.h_out__cap_count.value)
        self._rx = bytearray()  # received (after the noise), not yet read
        self.bytes_sent = 0
        self.bytes_received = 0

    async def _write(self, data: bytes) -> None:
        d = self.dut
        data = self.noise(data) if self.noise else data
        if len(data) > BURST_DEPTH:
            raise ValueError(f"{len(data)} bytes exceed the testbench burst memory ({BURST_DEPTH})")
        while int(d.h_in__burst_ack.value) != self._req:  # the previous frame is still on the line
            await d.h_in__burst_ack.value_change
        self._last_write = len(data)
        if not data:
            return
        mem = d.h_in__burst_mem
        for i, b in enumerate(data):
            mem[i].value = b
        d.h_in__burst_len.value = len(data)
        self._req = (self._req + 1) & 0xFFFFFFFF
        d.h_in__burst_req.value = self._req
        self.bytes_sent += len(data)

    def _collect(self) -> None:
        """Everything the capture ring holds that this side has not taken, through the noise."""
        d = self.dut
        if d.h_overrun.value:
            raise AssertionError("the host-side UART receiver overran (a byte from the trainer was lost)")
        count = int(d.h_out__cap_count.value)
        if count - self._taken > BURST_DEPTH:
            raise AssertionError("the capture ring wrapped before the testbench read it")
        mem = d.h_out__cap_mem
        got = bytes(int(mem[i % BURST_DEPTH].value) & 0xFF for i in range(self._taken, count))
        self._taken = count
        self.bytes_received += len(got)
        self._rx += self.noise(got) if self.noise else got

    async def _read(self, n: int) -> bytes:
        d = self.dut
        deadline = Timer(self._timeout_ns(n), "ns")  # (from each wait: no byte in that long)
        self._collect()
        while len(self._rx) < n:
            # wake once the bytes still missing are captured (one wake-up per reply on a clean
            # line; a dropped byte means another round, or the deadline)
            d.h_out__cap_goal.value = (self._taken + n - len(self._rx)) & 0xFFFFFFFF
            await ReadOnly()
            if not d.h_out__cap_done.value:
                fired = await First(RisingEdge(d.h_out__cap_done), deadline)
                if fired is deadline:
                    await RisingEdge(self.clk)
                    raise LinkTimeout(f"{len(self._rx)} of {n} reply bytes after {self._timeout_ns(n)} ns")
            await RisingEdge(self.clk)  # out of the read-only phase
            self._collect()
        out, self._rx = bytes(self._rx[:n]), self._rx[n:]
        return out

    async def _quiet(self) -> None:
        d = self.dut
        for _ in range(10_000):
            before = int(d.h_out__cap_count.value)
            await Timer(self._quiet_ns(), "ns")
            if int(d.h_out__cap_count.value) == before and int(d.h_in__burst_ack.value) == self._req:
                self._collect()
                self._rx.clear()
                return
        raise AssertionError("the trainer's tx line never went quiet")


class CocotbBitUartTransport(_SimTimed):
    """Frames over the trainer's pins, bit by bit, through cocotbext-uart (``rx_sel`` must be 1)."""

    def __init__(self, dut, width: int, divisor: int, latch_signature: bool = True):
        super().__init__(width, divisor, latch_signature)
        baud = 1_000_000_000 // (divisor * CLOCK_NS)
        self.source = UartSource(dut.py_rx, baud=baud, bits=8, stop_bits=1)
        self.sink = UartSink(dut.tx, baud=baud, bits=8, stop_bits=1)
        self._rx = bytearray()

    async def _write(self, data: bytes) -> None:
        self._last_write = len(data)
        await self.source.write(data)

    async def _read(self, n: int) -> bytes:
        timeout = self._timeout_ns(n)
        while len(self._rx) < n:
            if self.sink.empty():
                await self.sink.wait(timeout, "ns")
                if self.sink.empty():
                    raise LinkTimeout(f"{len(self._rx)} of {n} reply bytes after {timeout} ns")
            self._rx += self.sink.read_nowait(self.sink.count())
        out, self._rx = bytes(self._rx[:n]), self._rx[n:]
        return out

    async def _quiet(self) -> None:
        await self.source.wait()
        for _ in range(10_000):
            before = self.sink.count()
            await Timer(self._quiet_ns(), "ns")
            if self.sink.count() == before and self.sink.idle():
                self.sink.clear()
                self._rx.clear()
                return
        raise AssertionError("the trainer's tx line never went quiet")
