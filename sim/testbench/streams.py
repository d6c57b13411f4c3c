"""Amaranth stream ports under cocotb: payload packing, cocotbext-axi's stream models bound
to them, a TB base.

In the Verilog that Amaranth emits, a stream port ``s`` is three top-level ports:
``s__payload`` (every field of a struct payload flattened into one vector, first field in
the low bits), ``s__valid`` and ``s__ready``. That is an AXI4-Stream channel with
``payload`` as TDATA and no TLAST: :class:`StreamBus` binds cocotbext-axi's
``AxiStreamSource`` / ``AxiStreamSink`` to it, so the drivers are the library's (one beat
a frame). :class:`PayloadCodec` packs and unpacks the vector from the Amaranth layout, so
testbenches work with dicts and lists of integers (signed fields sign-extended) and never
with bit offsets.

API (stable)
------------
``PayloadCodec(shape)`` -- ``shape`` is a ``data.StructLayout`` / ``ArrayLayout`` (nested
    freely) or a plain shape (``signed(16)``, an int width, an Enum).
    ``.width``; ``.pack(value) -> int`` (dict for structs, sequence for arrays, int for
    leaves or raw bits of a nested layout; missing struct keys pack as 0; out-of-range
    leaves and unknown keys raise ``ValueError``);
    ``.unpack(bits) -> dict | list | int``; ``.leaves`` = [(path, offset, width, signed)].
    ``pack(shape, value)`` / ``unpack(shape, bits)`` are one-shot shortcuts.

``pauses(spec, seed=None)`` -- a pause pattern for cocotbext-axi's ``set_pause_generator``
    (sources: idle cycles; sinks: backpressure): ``None``/``0`` never pauses (returns
    None); a float ``p`` in (0, 1) pauses each cycle with probability ``p`` from
    ``random.Random(seed)``; an iterable of 1/0 values is cycled (1 = pause this cycle).

``StreamBus(dut, name)`` -- the ``<name>__payload/__valid/__ready`` ports as a
    cocotbext-axi ``AxiStreamBus``.
``StreamSource(dut, name, clk, *, idle=None, seed=None, codec=None, reset=None)`` --
    cocotbext-axi's ``AxiStreamSource`` on it (one code a beat, its pause generator
    from ``pauses(idle, seed)``), plus ``extend(items)`` / ``send_item(item)`` that
    pack with the codec (``await src.wait()``: every beat taken).
``StreamSink(dut, name, clk, *, backpressure=None, seed=None, codec=None, reset=None)``
    -- cocotbext-axi's ``AxiStreamSink``, plus ``await wait_count(n,
    timeout_cycles=None)`` and ``payloads()`` (every beat received so far, decoded).
``TB(dut, *, period_ns=10, clk="clk", rst="rst")`` owns the clock
    (``Clock(dut.clk, period_ns, unit="ns")``, started in the constructor) and
    ``await reset(cycles=2)`` (Amaranth's synchronous ``rst``); ``tb.source(name, **kw)``
    and ``tb.sink(name, **kw)`` make the models on its clock and reset; ``await
    tb.cycles(n)``.

Typical use::

    tb = TB(dut)
    src = tb.source("i", idle=0.25, seed=1, codec=PayloadCodec(unit.in_layout))
    snk = tb.sink("o", backpressure=[0, 1, 1], codec=PayloadCodec(unit.out_layout))
    await tb.reset()
    src.extend(payload_dicts)
    await snk.wait_count(n_expected, timeout_cycles=100_000)
    got = snk.payloads()

A beat transfers at a rising edge where valid and ready were both high (cocotbext-axi
samples the handshake at the edge). Python runs every cycle here: for long runs prefer
bursts through a Verilog-side engine (ARCHITECTURE.md: Python per cycle is slow).
"""
from __future__ import annotations

import itertools
import random

from cocotb.triggers import ClockCycles, First
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

__all__ = ["PayloadCodec", "pack", "unpack", "pauses", "StreamBus", "StreamSource", "StreamSink", "TB"]


# ---------------------------------------------------------------------------------------
# payload packing (usable from plain Python and amaranth.sim tests)


class PayloadCodec:
    """Pack/unpack the flattened Verilog vector of an Amaranth payload shape."""

    def __init__(self, shape):
        from amaranth.lib import data
        self._data = data
        self.shape = shape
        self.leaves = list(self._walk(shape, 0, ()))
        self.width = self._width(shape)

    def _is_layout(self, shape):
        return isinstance(shape, self._data.Layout)

    def _width(self, shape):
        from amaranth.hdl import Shape
        return shape.size if self._is_layout(shape) else Shape.cast(shape).width

    def _walk(self, shape, offset, path):
        from amaranth.hdl import Shape
        if self._is_layout(shape):
            for key, fld in shape:
                yield from self._walk(fld.shape, offset + fld.offset, path + (key,))
        else:
            s = Shape.cast(shape)
            yield path, offset, s.width, s.signed

    def pack(self, value) -> int:
        return self._pack(self.shape, value, ())

    def _pack(self, shape, value, path):
        if self._is_layout(shape) and not isinstance(value, int):
            bits = 0
            if isinstance(shape, self._data.ArrayLayout):
                if len(value) != shape.length:
                    raise ValueError(f"payload field {_p(path)}: expected {shape.length} elements, got {len(value)}")
                for i, fld in shape:
                    bits |= self._pack(fld.shape, value[i], path + (i,)) << fld.offset
            else:
                unknown = set(value) - {k for k, _ in shape}
                if unknown:
                    raise ValueError(f"payload field {_p(path)}: unknown keys {sorted(unknown)}")
                for key, fld in shape:
                    v = value.get(key, 0)
                    bits |= self._pack(fld.shape, v, path + (key,)) << fld.offset
            return bits
        from amaranth.hdl import Shape, unsigned
        s = unsigned(shape.size) if self._is_layout(shape) else Shape.cast(shape)  # int: raw bits
        v = int(value.value if hasattr(value, "value") and not isinstance(value, int) else value)
        lo, hi = (-(1 << (s.width - 1)), (1 << (s.width - 1)) - 1) if s.signed else (0, (1 << s.width) - 1)
        if not lo <= v <= hi:
            raise ValueError(f"payload field {_p(path)} = {v} does not fit {s!r} [{lo}, {hi}]")
        return v & ((1 << s.width) - 1)

    def unpack(self, bits: int):
        return self._unpack(self.shape, int(bits), 0)

    def _unpack(self, shape, bits, offset):
        if self._is_layout(shape):
            if isinstance(shape, self._data.ArrayLayout):
                return [self._unpack(fld.shape, bits, offset + fld.offset) for _, fld in shape]
            return {key: self._unpack(fld.shape, bits, offset + fld.offset) for key, fld in shape}
        from amaranth.hdl import Shape
        s = Shape.cast(shape)
        v = (bits >> offset) & ((1 << s.width) - 1)
        if s.signed and s.width and v >> (s.width - 1):
            v -= 1 << s.width
        return v


def _p(path):
    return ".".join(str(x) for x in path) or "(payload)"


def pack(shape, value) -> int:
    return PayloadCodec(shape).pack(value)


def unpack(shape, bits: int):
    return PayloadCodec(shape).unpack(bits)


# ---------------------------------------------------------------------------------------
# pause patterns


def pauses(spec, seed=None):
    """An endless iterator of bools (True = pause this cycle), or None for never."""
    if spec is None or (isinstance(spec, (int, float)) and not isinstance(spec, bool) and spec == 0):
        return None
    if isinstance(spec, float):
        p = spec
        if not 0 < p < 1:
            raise ValueError(f"pause probability must be in [0, 1), got {spec!r}")
        rnd = random.Random(seed).random
        return iter(lambda: rnd() < p, None)
    pattern = [bool(x) for x in spec]
    if not pattern:
        raise ValueError("pause pattern must not be empty")
    if not any(pattern):
        return None
    return itertools.cycle(pattern)


# ---------------------------------------------------------------------------------------
# cocotbext-axi's stream models on Amaranth stream ports


class StreamBus(AxiStreamBus):
    """The Amaranth stream port ``<name>__payload/__valid/__ready`` as an AXI4-Stream bus:
    payload as TDATA, no TLAST (so a frame is one beat)."""

    _signals = {"tdata": "payload"}
    _optional_signals = {"tvalid": "valid", "tready": "ready"}

    def __init__(self, dut, name: str):
        super().__init__(dut, name, bus_separator="__")


class StreamSource(AxiStreamSource):
    """cocotbext-axi's source driving stream port ``name``: one item a beat, packed by
    ``codec``; idle cycles from ``pauses(idle, seed)``."""

    def __init__(self, dut, name: str, clk, *, idle=None, seed=None, codec: PayloadCodec | None = None, reset=None):
        super().__init__(StreamBus(dut, name), clk, reset, byte_lanes=1)
        self.codec = codec
        gen = pauses(idle, seed)
        if gen is not None:
            self.set_pause_generator(gen)

    def send_item(self, item) -> None:
        self.send_nowait(AxiStreamFrame([self.codec.pack(item) if self.codec is not None else int(item)]))

    def extend(self, items) -> None:
        for it in items:
            self.send_item(it)


class StreamSink(AxiStreamSink):
    """cocotbext-axi's sink on stream port ``name``; backpressure from
    ``pauses(backpressure, seed)``; ``wait_count`` and ``payloads`` over every beat."""

    def __init__(self, dut, name: str, clk, *, backpressure=None, seed=None, codec: PayloadCodec | None = None,
                 reset=None):
        super().__init__(StreamBus(dut, name), clk, reset, byte_lanes=1)
        self.codec, self.name, self.received = codec, name, []
        gen = pauses(backpressure, seed)
        if gen is not None:
            self.set_pause_generator(gen)

    def _drain(self) -> None:
        while not self.empty():
            self.received.extend(self.recv_nowait().tdata)

    async def wait_count(self, n: int, timeout_cycles: int | None = None) -> None:
        """Until ``n`` beats have arrived in all; AssertionError after ``timeout_cycles``
        cycles without a new one."""
        self._drain()
        while len(self.received) < n:
            if timeout_cycles is None:
                await self.wait()
            else:
                if self.empty():  # (AxiStreamSink.wait, with the timeout in cycles)
                    self.active_event.clear()
                    await First(self.active_event.wait(), ClockCycles(self.clock, timeout_cycles))
                if self.empty():
                    raise AssertionError(f"{self.name}: {len(self.received)} of {n} beats after "
                                         f"{timeout_cycles} cycles without one")
            self._drain()

    def payloads(self) -> list:
        """Every beat received so far, decoded by the codec."""
        self._drain()
        return [self.codec.unpack(v) if self.codec is not None else v for v in self.received]


class TB:
    """Testbench base: owns the clock and the synchronous reset of an Amaranth top."""

    def __init__(self, dut, *, period_ns: int = 10, clk: str = "clk", rst: str | None = "rst"):
        from cocotb.clock import Clock
        self.dut = dut
        self.clk = getattr(dut, clk)
        self.rst = getattr(dut, rst) if rst else None
        if self.rst is not None:
            self.rst.value = 0
        self.clock = Clock(self.clk, period_ns, unit="ns")
        self.clock.start(start_high=False)

    async def reset(self, cycles: int = 2) -> None:
        from cocotb.triggers import ClockCycles, RisingEdge
        if self.rst is None:
            return
        await RisingEdge(self.clk)
        self.rst.value = 1
        await ClockCycles(self.clk, cycles)
        self.rst.value = 0
        await RisingEdge(self.clk)

    async def cycles(self, n: int) -> None:
        from cocotb.triggers import ClockCycles
        await ClockCycles(self.clk, n)

    def source(self, name: str, **kw) -> StreamSource:
        return StreamSource(self.dut, name, self.clk, reset=self.rst, **kw)

    def sink(self, name: str, **kw) -> StreamSink:
        return StreamSink(self.dut, name, self.clk, reset=self.rst, **kw)
