"""cocotb driver and monitor for ``amaranth.lib.stream`` ports, payload packing, a TB base.

In the Verilog that Amaranth emits, a stream port ``s`` is three top-level ports:
``s__payload`` (every field of a struct payload flattened into one vector, first field in
the low bits), ``s__valid`` and ``s__ready``. :class:`PayloadCodec` packs and unpacks
that vector from the Amaranth layout, so testbenches work with dicts and lists of
integers (signed fields sign-extended) and never with bit offsets.

API (stable)
------------
``PayloadCodec(shape)`` -- ``shape`` is a ``data.StructLayout`` / ``ArrayLayout`` (nested
    freely) or a plain shape (``signed(16)``, an int width, an Enum).
    ``.width``; ``.pack(value) -> int`` (dict for structs, sequence for arrays, int for
    leaves or raw bits of a nested layout; missing struct keys pack as 0; out-of-range
    leaves and unknown keys raise ``ValueError``);
    ``.unpack(bits) -> dict | list | int``; ``.leaves`` = [(path, offset, width, signed)].
    ``pack(shape, value)`` / ``unpack(shape, bits)`` are one-shot shortcuts.

``pauses(spec, seed=None)`` -- the pause pattern used by sources (idle cycles) and sinks
    (backpressure): ``None``/``0`` never pauses; a float ``p`` in (0, 1) pauses each cycle
    with probability ``p`` from ``random.Random(seed)``; an iterable of 1/0 values is
    cycled (1 = pause this cycle), e.g. ``[0, 0, 1]``.

``StreamSource(dut, name, clk, *, idle=None, seed=None, codec=None)`` drives
    ``<name>__payload/__valid`` and watches ``<name>__ready``.
    ``send_nowait(item)``, ``extend(items)``, ``await send(item)`` queue beats (ints, or
    values the codec packs); ``await wait_idle()`` returns when every queued beat has been
    accepted; ``sent`` counts accepted beats; ``pending`` is the queue length.
``StreamSink(dut, name, clk, *, backpressure=None, seed=None, codec=None)`` drives
    ``<name>__ready`` and collects beats: ``received`` (list of raw ints in arrival
    order), ``count``, ``await wait_count(n, timeout_cycles=None)``, ``await recv()``
    (next unread beat, decoded by the codec if given), ``payloads()`` (all decoded).
    Ready is high from the first edge on (except in backpressure cycles).
``TB(dut, *, period_ns=10, clk="clk", rst="rst")`` owns the clock
    (``Clock(dut.clk, period_ns, unit="ns")``, started in the constructor) and
    ``await reset(cycles=2)`` (Amaranth's synchronous ``rst``); ``tb.source(name, **kw)``
    and ``tb.sink(name, **kw)`` make drivers on its clock; ``await tb.cycles(n)``.
    Queue beats after ``reset()``: a beat "accepted" while ``rst`` is high is lost.

Typical use::

    tb = TB(dut)
    src = tb.source("i", idle=0.25, seed=1, codec=PayloadCodec(unit.in_layout))
    snk = tb.sink("o", backpressure=[0, 1, 1], codec=PayloadCodec(unit.out_layout))
    await tb.reset()
    src.extend(payload_dicts)
    await snk.wait_count(n_expected, timeout_cycles=100_000)
    got = snk.payloads()

Timing: drivers write right after a rising edge and sample the handshake in the
``ReadOnly`` phase before the next edge (the values the edge will see), which behaves the
same on Icarus and Verilator. A source inserts idle cycles only between beats (valid
never drops before its beat is accepted). A beat transfers at an edge where valid and
ready were both high. All drivers on one clock share a single coroutine: two trigger
wake-ups per clock cycle in total, none while only idle sources exist; for long runs
prefer bursts through a Verilog-side engine (ARCHITECTURE.md: Python per cycle is slow).
"""
from __future__ import annotations

import itertools
import random
from collections import deque

__all__ = ["PayloadCodec", "pack", "unpack", "pauses", "StreamSource", "StreamSink", "TB"]


# ---------------------------------------------------------------------------------------
# payload packing (no cocotb import: usable from plain Python and amaranth.sim tests)


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
# cocotb drivers


class _Engine:
    """One coroutine per clock runs every source and sink on it: right after each rising
    edge every driver writes (``_drive``), in the ReadOnly phase every busy driver samples
    (``_sample``). Two trigger wake-ups per clock cycle in total, however many streams;
    none while no driver is busy (sources with nothing queued, no sinks)."""

    _engines: dict = {}

    def __init__(self, clk):
        import cocotb
        from cocotb.triggers import Event
        self.clk = clk
        self.drivers = []
        self.wake = Event()
        self.task = cocotb.start_soon(self._run())

    @classmethod
    def get(cls, clk):
        eng = cls._engines.get(id(clk))
        # a previous cocotb test's engine was cancelled with that test: start a new one
        if eng is None or eng.clk is not clk or eng.task.done():
            eng = cls._engines[id(clk)] = cls(clk)
        return eng

    def add(self, driver):
        self.drivers.append(driver)
        self.wake.set()

    async def _run(self):
        from cocotb.triggers import ReadOnly, RisingEdge
        edge, ro = RisingEdge(self.clk), ReadOnly()
        drivers = self.drivers
        await edge
        while True:
            busy = [d for d in drivers if d._drive()]
            if busy:
                await ro
                for d in busy:
                    d._sample()
            else:  # nothing to do until a source gets data or a driver is added
                self.wake.clear()
                await self.wake.wait()
            await edge


class _StreamPort:
    """The three Verilog ports of stream ``name`` and the pause pattern of one end."""

    def __init__(self, dut, name: str, clk, pause, codec: PayloadCodec | None):
        self.name = name
        self.clk = clk
        self.codec = codec
        self._valid = getattr(dut, f"{name}__valid")
        self._payload = getattr(dut, f"{name}__payload")
        self._ready = getattr(dut, f"{name}__ready")
        self._pause = pause


class StreamSource(_StreamPort):
    """Drives an Amaranth input stream ``<name>__payload/__valid`` (watches ``__ready``)."""

    def __init__(self, dut, name: str, clk, *, idle=None, seed=None, codec: PayloadCodec | None = None):
        from cocotb.triggers import Event
        super().__init__(dut, name, clk, pauses(idle, seed), codec)
        self._queue = deque()
        self._idle = Event()
        self._idle.set()
        self._presenting = False
        self._valid_high = False
        self.sent = 0
        self._valid.value = 0
        self._engine = _Engine.get(clk)
        self._engine.add(self)

    @property
    def pending(self) -> int:
        return len(self._queue)

    def send_nowait(self, item) -> None:
        self._queue.append(self.codec.pack(item) if self.codec is not None else int(item))
        self._idle.clear()
        self._engine.wake.set()

    def extend(self, items) -> None:
        for it in items:
            self.send_nowait(it)

    async def send(self, item) -> None:
        self.send_nowait(item)

    async def wait_idle(self) -> None:
        """Return once every queued beat has been accepted by the design."""
        if self._queue:
            await self._idle.wait()

    def _drive(self) -> bool:
        if self._presenting:  # valid stays high until the beat is taken
            return True
        if self._queue and (self._pause is None or not next(self._pause)):
            self._payload.value = self._queue[0]
            self._valid.value = 1
            self._presenting = self._valid_high = True
            return True
        if self._valid_high:
            self._valid.value = 0
            self._valid_high = False
        return bool(self._queue)  # idle cycle with data waiting: stay scheduled

    def _sample(self) -> None:
        if self._presenting and self._ready.value:  # accepted at the coming edge
            self._queue.popleft()
            self.sent += 1
            self._presenting = False
            if not self._queue:
                self._idle.set()


class StreamSink(_StreamPort):
    """Drives ``<name>__ready`` of an Amaranth output stream and collects its beats."""

    def __init__(self, dut, name: str, clk, *, backpressure=None, seed=None, codec: PayloadCodec | None = None):
        from cocotb.triggers import Event
        super().__init__(dut, name, clk, pauses(backpressure, seed), codec)
        self.received: list[int] = []
        self._read = 0
        self._want = None
        self._event = Event()
        self._rdy = 0
        self._ready.value = 0
        _Engine.get(clk).add(self)

    @property
    def count(self) -> int:
        return len(self.received)

    def _decode(self, bits):
        return self.codec.unpack(bits) if self.codec is not None else bits

    def payloads(self) -> list:
        return [self._decode(b) for b in self.received]

    async def wait_count(self, n: int, timeout_cycles: int | None = None) -> None:
        """Wait until ``n`` beats have arrived in total (AssertionError after ``timeout_cycles``).
        One waiter at a time per sink."""
        if len(self.received) >= n:
            return
        self._want = n
        self._event.clear()
        try:
            if timeout_cycles is None:
                await self._event.wait()
            else:
                from cocotb.triggers import ClockCycles, First
                t = ClockCycles(self.clk, timeout_cycles)
                if await First(self._event.wait(), t) is t and len(self.received) < n:
                    raise AssertionError(f"stream {self.name}: {len(self.received)} of {n} beats after "
                                         f"{timeout_cycles} cycles")
        finally:
            self._want = None

    async def recv(self):
        """The next beat not yet returned by ``recv`` (decoded by the codec if any)."""
        await self.wait_count(self._read + 1)
        self._read += 1
        return self._decode(self.received[self._read - 1])

    def _drive(self) -> bool:
        r = 0 if (self._pause is not None and next(self._pause)) else 1
        if r != self._rdy:
            self._ready.value = self._rdy = r
        return True

    def _sample(self) -> None:
        if self._rdy and self._valid.value:
            got = self.received
            got.append(self._payload.value.to_unsigned())
            if self._want is not None and len(got) >= self._want:
                self._event.set()


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
        return StreamSource(self.dut, name, self.clk, **kw)

    def sink(self, name: str, **kw) -> StreamSink:
        return StreamSink(self.dut, name, self.clk, **kw)
