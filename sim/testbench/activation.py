"""cocotb test module for hdl.activation under Icarus and Verilator, bit-exact with golden.

The design under test is :class:`ActivationTop` of one config: for every elementwise
kind, the combinational ``ActivationFunction`` and ``ActivationDerivative`` (swept over
EVERY input code by setting the input and reading the outputs, no clocking) and the
``ActivationUnit`` stream, fed and drained by the burst engines of :class:`BurstPair`
(random idle cycles and backpressure from LFSRs in the hardware; the simulator runs free
for a whole burst, Python touches the design per burst, not per cycle). The parent
process (:func:`run_activation_rtl`) builds and runs it through ``sim.runners.cocotb_run.run_cocotb``;
the job's options come as ``extra_env``: ``BPF_STREAM_CODES`` (codes per kind through the
stream units: ``all`` or a number), ``BPF_GAP`` (stall threshold 0..255), ``BPF_SEED``
and ``BPF_RESULT`` (where the summary JSON is written).

Also the shared support of sim/testbench/output.py: :class:`BurstSource`, :class:`BurstSink`,
:class:`BurstPair` (Amaranth) and :class:`Bursts`, :func:`run_bursts` (cocotb side).
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import cocotb
import numpy as np
from amaranth.hdl import Cat, Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge, Timer

from golden.activations import FixedActivations
from golden.config import Config
from hdl.activation import ELEMENTWISE, ActivationDerivative, ActivationFunction
from sim.testbench.stream_units import ActivationUnit

__all__ = ["ActivationTop", "run_activation_rtl", "run_tb", "BurstSource", "BurstSink", "BurstPair",
           "BURST_CONTROL", "Bursts", "run_bursts"]

BURST = 1024  # beats per burst: depth of the burst and capture memories


# ---------------------------------------------------------------------------------------
# burst engines (test harness hardware)

#: control ports of one :class:`BurstPair`, seen from the pair
BURST_CONTROL = wiring.Signature({
    "len": In(16),  # beats in the burst
    "req": In(32),  # start a burst by changing req; the source copies it to ack when done
    "ack": Out(32),
    "igap": In(8),  # idle probability of the source per beat: igap / 256
    "ogap": In(8),  # stall (ready low) probability of the sink per cycle: ogap / 256
    "enable": In(1),  # sink takes beats
    "goal": In(32),
    "count": Out(32),  # beats taken by the sink since reset
    "done": Out(1),  # count >= goal
})


def _lfsr_step(x):
    """16-bit Fibonacci LFSR x^16 + x^14 + x^13 + x^11 + 1 (maximal length)."""
    return Cat(x[15] ^ x[13] ^ x[12] ^ x[10], x[:15])


class BurstSource(wiring.Component):
    """Streams ``len`` beats from its memory ``mem`` (loaded by the testbench through VPI)
    whenever ``req`` differs from ``ack``, then sets ``ack = req``. Before each beat it
    idles while an LFSR byte is below ``gap``; once offered, a beat stays valid until taken.

    Members
    -------
    o : Out(stream.Signature(shape))
    len : In(16)
    req : In(32)
    ack : Out(32)
    gap : In(8)
    """

    def __init__(self, shape, depth: int = BURST, seed: int = 0xACE1):
        self._shape, self._depth, self._seed = shape, depth, seed
        super().__init__({"o": Out(stream.Signature(shape)), "len": In(16), "req": In(32), "ack": Out(32),
                          "gap": In(8)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=self._shape, depth=self._depth, init=[])
        rd = mem.read_port(domain="comb")
        pos = Signal(range(self._depth))
        lfsr = Signal(16, init=self._seed)
        offered = Signal()  # a beat is valid and not yet taken
        active = self.req != self.ack
        m.d.sync += lfsr.eq(_lfsr_step(lfsr))
        m.d.comb += [rd.addr.eq(pos), self.o.payload.eq(rd.data),
                     self.o.valid.eq(active & (offered | (lfsr[:8] >= self.gap)))]
        m.d.sync += offered.eq(self.o.valid & ~self.o.ready)
        with m.If(self.o.valid & self.o.ready):
            with m.If(pos == self.len - 1):
                m.d.sync += [pos.eq(0), self.ack.eq(self.req)]
            with m.Else():
                m.d.sync += pos.eq(pos + 1)
        return m


class BurstSink(wiring.Component):
    """Takes beats while ``enable`` (ready low at random: an LFSR byte below ``gap``) and
    stores beat number c at ``mem[c mod depth]`` (read by the testbench through VPI).

    Members
    -------
    i : In(stream.Signature(shape))
    enable : In(1)
    gap : In(8)
    goal : In(32)
    count : Out(32)
    done : Out(1)   ``count >= goal``
    """

    def __init__(self, shape, depth: int = BURST, seed: int = 0xBEEF):
        self._shape, self._depth, self._seed = shape, depth, seed
        super().__init__({"i": In(stream.Signature(shape)), "enable": In(1), "gap": In(8), "goal": In(32),
                          "count": Out(32), "done": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=self._shape, depth=self._depth, init=[])
        wr = mem.write_port()
        lfsr = Signal(16, init=self._seed)
        m.d.sync += lfsr.eq(_lfsr_step(lfsr))
        m.d.comb += [self.i.ready.eq(self.enable & (lfsr[:8] >= self.gap)), self.done.eq(self.count >= self.goal),
                     wr.addr.eq(self.count[:(self._depth - 1).bit_length()]), wr.data.eq(self.i.payload),
                     wr.en.eq(self.i.valid & self.i.ready)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += self.count.eq(self.count + 1)
        return m


class BurstPair(wiring.Component):
    """A stream unit (a component with ports ``i`` and ``o``) between a :class:`BurstSource`
    and a :class:`BurstSink`: submodules ``src``, ``unit``, ``sink``.

    Members
    -------
    ctl : Out(BURST_CONTROL)
    """

    def __init__(self, unit, depth: int = BURST):
        self._unit, self._depth = unit, depth
        super().__init__({"ctl": Out(BURST_CONTROL)})

    def elaborate(self, platform):
        m = Module()
        unit = m.submodules.unit = self._unit
        src = m.submodules.src = BurstSource(unit.i.payload.shape(), self._depth)
        sink = m.submodules.sink = BurstSink(unit.o.payload.shape(), self._depth)
        wiring.connect(m, src.o, unit.i)
        wiring.connect(m, unit.o, sink.i)
        c = self.ctl
        m.d.comb += [src.len.eq(c.len), src.req.eq(c.req), c.ack.eq(src.ack), src.gap.eq(c.igap),
                     sink.enable.eq(c.enable), sink.gap.eq(c.ogap), sink.goal.eq(c.goal), c.count.eq(sink.count),
                     c.done.eq(sink.done)]
        return m


# ---------------------------------------------------------------------------------------
# the design under test


class ActivationTop(wiring.Component):
    """Every elementwise activation of one config, as the RTL tests see it.

    Members
    -------
    z : In(signed(act.width))
        Input of every combinational core: ``ActivationFunction`` gets it as ``z``,
        ``ActivationDerivative`` as ``a``.
    y : Out(2 * len(ELEMENTWISE) * act.width)
        Outputs packed in ELEMENTWISE order, per kind ``act(z)`` then ``act'(z)``.
    <kind> : Out(BURST_CONTROL)
        Burst control of ``ActivationUnit(cfg, kind)`` in submodule ``<kind>_bench``.
    """

    def __init__(self, cfg: Config):
        self._cfg = cfg
        members = {"z": In(signed(cfg.act.width)), "y": Out(2 * len(ELEMENTWISE) * cfg.act.width)}
        members.update({kind: Out(BURST_CONTROL) for kind in ELEMENTWISE})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        outs = []
        for kind in ELEMENTWISE:
            f = m.submodules[f"f_{kind}"] = ActivationFunction(self._cfg, kind)
            d = m.submodules[f"d_{kind}"] = ActivationDerivative(self._cfg, kind)
            m.d.comb += [f.z.eq(self.z), d.a.eq(self.z)]
            outs += [f.a, d.d]
            bench = m.submodules[f"{kind}_bench"] = BurstPair(ActivationUnit(self._cfg, kind))
            wiring.connect(m, wiring.flipped(getattr(self, kind)), bench.ctl)
        m.d.comb += self.y.eq(Cat(*outs))
        return m


# ---------------------------------------------------------------------------------------
# parent side: build, run, collect


def run_tb(top, build_name: str, test_module: str, simulator: str, cfg: Config, params: dict,
           build_root=None, timeout_s: float = 900) -> dict:
    """Build ``top`` and run the cocotb module ``test_module`` on ``simulator`` through
    ``sim.runners.cocotb_run.run_cocotb`` (``cfg`` as the run's config, ``params`` as ``BPF_*``
    environment values); return the result dict the module wrote, with ``rebuilt``,
    ``elapsed_s`` and, when a cocotb test failed, its report in ``failures``."""
    from sim.runners.cocotb_run import run_cocotb

    with tempfile.TemporaryDirectory(prefix="bpf-tb-") as tmp:
        result = Path(tmp) / "result.json"
        env = {f"BPF_{k.upper()}": v for k, v in params.items()}
        env["BPF_RESULT"] = str(result)
        r = run_cocotb(top, test_module=test_module, simulator=simulator, build_name=build_name, config=cfg,
                       extra_env=env, timeout_s=timeout_s, check=False, build_root=build_root)
        if not result.exists():
            raise AssertionError(r.failure_report())
        out = json.loads(result.read_text())
    out.update(rebuilt=r.rebuilt, elapsed_s=round(r.elapsed_s, 2), log=str(r.log))
    if not r.ok:
        out.setdefault("failures", []).append(r.failure_report())
    return out


def run_activation_rtl(cfg: Config, simulator: str, *, stream_codes="all", gap: int = 77, seed: int = 1,
                       build_root=None) -> dict:
    """Exhaustive sweep of every combinational core plus the stream units, on ``simulator``.

    Returns the result dict: ``sweep`` {kind: {"codes", "forward_mismatches",
    "derivative_mismatches"}}, ``stream`` {kind: {"beats", "mismatches", "extra_beats"}},
    ``failures`` (the first mismatches), ``sweep_s`` / ``stream_s`` wall times of the two
    phases, ``cycles`` of the stream phase, ``rebuilt`` and ``elapsed_s``."""
    tag = f"{cfg.act.int_bits}.{cfg.act.frac_bits}-{cfg.lut_entries_log2}-{cfg.lut_range_log2}" \
          f"{'-interp' if cfg.lut_interpolate else ''}"
    return run_tb(ActivationTop(cfg), f"activation-{tag}", "sim.testbench.activation", simulator, cfg,
                  {"stream_codes": stream_codes, "gap": gap, "seed": seed}, build_root)


# ---------------------------------------------------------------------------------------
# simulator side: support shared with sim/testbench/output.py


def load_job() -> tuple[dict, Config]:
    """(the ``BPF_*`` parameters, lower-case without the prefix; the run's Config)."""
    from sim.runners.cocotb_run import test_config
    params = {k[4:].lower(): v for k, v in os.environ.items() if k.startswith("BPF_") and k != "BPF_CONFIG"}
    return params, test_config()


def write_result(job: dict, result: dict) -> None:
    with open(job["result"], "w") as f:
        json.dump(result, f)


def field(words, lo: int, width: int) -> np.ndarray:
    """Signed field ``[lo, lo + width)`` of every (Python int) word, as int64."""
    mask = (1 << width) - 1
    raw = np.array([(int(w) >> lo) & mask for w in words], dtype=np.int64)
    return np.where(raw >> (width - 1) != 0, raw - (1 << width), raw)


async def start(dut):
    """Clock (cocotb, 10 ns) and synchronous reset; returns the sim.testbench.streams.TB."""
    from sim.testbench.streams import TB
    tb = TB(dut)
    await tb.reset(3)
    return tb


class Bursts:
    """Testbench side of one :class:`BurstPair`: control ports ``<name>__*`` of the top,
    memories in ``<bench>.src.mem`` and ``<bench>.sink.mem``. Beats move in bursts of at
    most BURST: :meth:`send` loads the burst memory through VPI and starts it, :meth:`arm`
    sets the sink's goal, :meth:`wait` lets the simulator run free until it is met,
    :meth:`take` reads the captured beats. ``gap`` / 256 is the idle (source) and stall
    (sink) probability."""

    def __init__(self, dut, name: str, bench: str, gap: int):
        self.dut = dut
        self.name = name
        b = getattr(dut, bench)
        self.src_mem = b.src.mem
        self.sink_mem = b.sink.mem
        self.taken = 0
        self._s("igap").value = gap
        self._s("ogap").value = gap
        self._s("enable").value = 1
        self._s("goal").value = 0xFFFFFFFF

    def _s(self, port):
        return getattr(self.dut, f"{self.name}__{port}")

    async def send(self, words) -> None:
        while int(self._s("req").value) != int(self._s("ack").value):
            await RisingEdge(self.dut.clk)  # the previous burst is still streaming
        if not 0 < len(words) <= BURST:
            raise ValueError(f"a burst holds 1..{BURST} beats, got {len(words)}")
        for k, w in enumerate(words):
            self.src_mem[k].value = int(w)
        self._s("len").value = len(words)
        self._s("req").value = (int(self._s("req").value) + 1) & 0xFFFFFFFF

    def arm(self, n: int) -> None:
        self._s("goal").value = self.taken + n

    async def wait(self) -> None:
        done = self._s("done")
        await ReadOnly()
        if not done.value:
            await RisingEdge(done)
        await RisingEdge(self.dut.clk)

    def take(self, n: int) -> list:
        words = [int(self.sink_mem[(self.taken + k) % BURST].value) for k in range(n)]
        self.taken += n
        return words

    def count(self) -> int:
        return int(self._s("count").value)


async def run_bursts(dut, engines: list, payloads: list, chunks: list | None = None) -> list:
    """Push ``payloads[e]`` (lists of words) through ``engines[e]`` concurrently, one burst
    of at most ``chunks[e]`` (default BURST) beats per engine at a time, each burst's
    outputs awaited before the next; return every engine's captured words. A unit that
    emits one beat per input beat only after a whole vector needs bursts of whole vectors."""
    chunks = chunks or [BURST] * len(engines)
    got = [[] for _ in engines]
    pos = [0] * len(engines)
    while any(p < len(w) for p, w in zip(pos, payloads)):
        sizes = []
        for e, (eng, words) in enumerate(zip(engines, payloads)):
            chunk = words[pos[e]:pos[e] + min(chunks[e], BURST)]
            sizes.append(len(chunk))
            if chunk:
                await eng.send(chunk)
                eng.arm(len(chunk))
        for eng, n in zip(engines, sizes):
            if n:
                await eng.wait()
        for e, (eng, n) in enumerate(zip(engines, sizes)):
            if n:
                got[e] += eng.take(n)
                pos[e] += n
    return got


def first_mismatches(what: str, inputs, got, want, limit: int = 3) -> list:
    bad = np.flatnonzero(np.asarray(got) != np.asarray(want))
    return [f"{what}: input {inputs[b]!r}: RTL {got[b]}, golden {want[b]}" for b in bad[:limit]]


# ---------------------------------------------------------------------------------------
# the tests


@cocotb.test()
async def activation_rtl(dut):
    """Every code through every combinational core, then random codes (or every code)
    through every ActivationUnit with random stalls; all compared with golden."""
    job, cfg = load_job()
    W = cfg.act.width
    mask = (1 << W) - 1
    fa = FixedActivations(cfg)
    codes = cfg.act.all_codes()
    result = {"simulator": cocotb.SIM_NAME, "act": str(cfg.act), "interpolate": cfg.lut_interpolate,
              "sweep": {}, "stream": {}, "failures": []}
    for kind in ELEMENTWISE:
        for port in ("len", "req", "igap", "ogap", "enable", "goal"):
            getattr(dut, f"{kind}__{port}").value = 0
    dut.z.value = 0

    # ---- exhaustive sweep of the combinational cores: set z, let it settle, read y (no clock)
    t0 = time.perf_counter()
    words = []
    z = dut.z
    y = dut.y
    for c in codes.tolist():
        z.value = c & mask
        await Timer(1, "ns")
        words.append(int(y.value))
    result["sweep_s"] = round(time.perf_counter() - t0, 2)
    for k, kind in enumerate(ELEMENTWISE):
        fwd = field(words, 2 * k * W, W)
        der = field(words, (2 * k + 1) * W, W)
        want_f = fa.forward(kind, codes)
        want_d = fa.derivative(kind, codes)
        result["sweep"][kind] = {"codes": len(codes), "forward_mismatches": int((fwd != want_f).sum()),
                                 "derivative_mismatches": int((der != want_d).sum())}
        result["failures"] += first_mismatches(f"{kind} forward", codes.tolist(), fwd, want_f)
        result["failures"] += first_mismatches(f"{kind} derivative", codes.tolist(), der, want_d)

    # ---- stream units, all kinds concurrently, random idle cycles and backpressure
    await start(dut)  # the clock runs from here on (not during the sweep: it costs time)
    rng = np.random.default_rng(int(job.get("seed", 1)))
    n = job.get("stream_codes", "all")
    if n == "all":
        stream_in = rng.permutation(codes)
    else:
        stream_in = rng.integers(cfg.act.min_code, cfg.act.max_code + 1, int(n))
        stream_in[:4] = [cfg.act.min_code, cfg.act.max_code, 0, -1]
    engines = [Bursts(dut, kind, f"{kind}_bench", int(job.get("gap", 77))) for kind in ELEMENTWISE]
    t0 = time.perf_counter()
    c0 = cocotb.utils.get_sim_time("ns")
    outs = await run_bursts(dut, engines, [[c & mask for c in stream_in.tolist()]] * len(ELEMENTWISE))
    result["stream_s"] = round(time.perf_counter() - t0, 2)
    result["cycles"] = int((cocotb.utils.get_sim_time("ns") - c0) // 10)
    await ClockCycles(dut.clk, 8)  # then nothing more may come out
    for kind, eng, got in zip(ELEMENTWISE, engines, outs):
        a = field(got, 0, W)
        d = field(got, W, W)
        want_a = fa.forward(kind, stream_in)
        want_d = fa.derivative(kind, want_a)
        mism = int(((a != want_a) | (d != want_d)).sum())
        extra = eng.count() - len(stream_in)
        result["stream"][kind] = {"beats": len(got), "mismatches": mism, "extra_beats": extra}
        result["failures"] += first_mismatches(f"{kind} stream a", stream_in.tolist(), a, want_a)
        result["failures"] += first_mismatches(f"{kind} stream d", stream_in.tolist(), d, want_d)
        if extra:
            result["failures"].append(f"{kind} stream: {extra} extra output beats")
    write_result(job, result)
    assert not result["failures"], result["failures"][:5]

