"""cocotb test module for hdl.activation under Icarus and Verilator, bit-exact with golden.

The design under test is :class:`ActivationTop` of one config: for every elementwise
kind, the combinational ``ActivationFunction`` and ``ActivationDerivative`` (swept over
EVERY input code by setting the input and reading the outputs, no clocking) and the
``ActivationUnit`` stream (driven by the burst/capture engines of the testbench top from
sim/rtl_run.py, with random idle cycles and backpressure from the wrapper's LFSRs; the
simulator runs free for a whole burst). The parent process (:func:`run_activation_rtl`)
builds the Verilog, runs this module and reads the result file; the job comes as a JSON
file named by the environment variable ``BPF_TB_JOB``:
``config`` (TOML-shaped dict), ``stream_codes`` (how many codes per kind go through the
stream units: ``"all"`` or a number), ``gap`` (wrapper stall threshold 0..255), ``seed``
and ``result`` (where the summary JSON is written).

Also the shared support of sim/tb_output.py: job loading, result writing, bursts.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import cocotb
import numpy as np
from amaranth.hdl import Cat, Module, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge, Timer

from golden.activations import FixedActivations
from golden.config import Config, config_from_dict, config_to_dict
from hdl.activation import ELEMENTWISE, ActivationDerivative, ActivationFunction, ActivationUnit

__all__ = ["ActivationTop", "run_activation_rtl", "run_tb_job", "Bursts"]

BURST = 4096  # beats per burst: sim.rtl_run.BURST_DEPTH (the wrapper's burst and capture memories)


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
    <kind>_i, <kind>_o : the stream ports of ``ActivationUnit(cfg, kind)`` per kind
    """

    def __init__(self, cfg: Config):
        self._cfg = cfg
        shape = signed(cfg.act.width)
        members = {"z": In(shape), "y": Out(2 * len(ELEMENTWISE) * cfg.act.width)}
        for kind in ELEMENTWISE:  # the ports of ActivationUnit
            members[f"{kind}_i"] = In(stream.Signature(shape))
            members[f"{kind}_o"] = Out(stream.Signature(data.StructLayout({"a": shape, "d": shape})))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        outs = []
        for kind in ELEMENTWISE:
            f = m.submodules[f"f_{kind}"] = ActivationFunction(self._cfg, kind)
            d = m.submodules[f"d_{kind}"] = ActivationDerivative(self._cfg, kind)
            u = m.submodules[f"u_{kind}"] = ActivationUnit(self._cfg, kind)
            m.d.comb += [f.z.eq(self.z), d.a.eq(self.z)]
            outs += [f.a, d.d]
            wiring.connect(m, wiring.flipped(getattr(self, f"{kind}_i")), u.i)
            wiring.connect(m, u.o, wiring.flipped(getattr(self, f"{kind}_o")))
        m.d.comb += self.y.eq(Cat(*outs))
        return m


# ---------------------------------------------------------------------------------------
# parent side: build, run, collect


def run_tb_job(top, toplevel: str, test_module: str, simulator: str, job: dict,
               build_root: str = "build") -> dict:
    """Build ``top`` (an Amaranth component) for ``simulator`` (hash-keyed, reused when
    unchanged), run the cocotb module ``test_module`` with ``job``, return its result dict
    (with ``build_s`` and ``run_s`` wall times)."""
    from amaranth.back import verilog

    from sim.rtl_run import prepare_build, run_cocotb_test

    t0 = time.perf_counter()
    build = prepare_build(verilog.convert(top, name=toplevel), toplevel, simulator, build_root)
    t1 = time.perf_counter()
    run_dir = build.run_dir(test_module.rsplit(".", 1)[-1])
    result = run_dir / "result.json"
    result.unlink(missing_ok=True)
    job = dict(job, result=str(result))
    job_file = run_dir / "job.json"
    job_file.write_text(json.dumps(job))
    failure = None
    try:
        run_cocotb_test(build, test_module, None, run_dir, extra_env={"BPF_TB_JOB": str(job_file)})
    except SystemExit as e:  # cocotb's runner exits when a test failed under pytest
        failure = e
    t2 = time.perf_counter()
    if not result.exists():
        raise RuntimeError(f"{simulator}: {test_module} wrote no result (exit {failure}); see {run_dir / 'sim.log'}")
    out = json.loads(result.read_text())
    out.update(build_s=round(t1 - t0, 2), run_s=round(t2 - t1, 2), log=str(run_dir / "sim.log"))
    if failure is not None:
        out.setdefault("failures", []).append(f"cocotb reported a failing test (exit {failure}), see {out['log']}")
    return out


def run_activation_rtl(cfg: Config, simulator: str, *, stream_codes="all", gap: int = 77, seed: int = 1,
                       build_root: str = "build") -> dict:
    """Exhaustive sweep of every combinational core plus the stream units, on ``simulator``.

    Returns the result dict: ``sweep`` {kind: {"codes", "forward_mismatches",
    "derivative_mismatches"}}, ``stream`` {kind: {"beats", "mismatches"}}, ``failures``
    (messages of the first mismatches), ``sweep_s``/``stream_s`` simulation times,
    ``cycles`` of the stream phase."""
    job = {"config": config_to_dict(cfg), "stream_codes": stream_codes, "gap": gap, "seed": seed}
    return run_tb_job(ActivationTop(cfg), "activation_top", "sim.tb_activation", simulator, job, build_root)


# ---------------------------------------------------------------------------------------
# simulator side: support shared with sim/tb_output.py


def load_job() -> tuple[dict, Config]:
    with open(os.environ["BPF_TB_JOB"]) as f:
        job = json.load(f)
    return job, config_from_dict(job["config"])


def write_result(job: dict, result: dict) -> None:
    with open(job["result"], "w") as f:
        json.dump(result, f)


def to_signed(v: int, width: int) -> int:
    v &= (1 << width) - 1
    return v - (1 << width) if v >> (width - 1) else v


def field(words: np.ndarray, lo: int, width: int) -> np.ndarray:
    """Signed field ``[lo, lo + width)`` of every (Python int) word, as int64."""
    mask = (1 << width) - 1
    raw = np.array([(int(w) >> lo) & mask for w in words], dtype=np.int64)
    return np.where(raw >> (width - 1) != 0, raw - (1 << width), raw)


async def reset(dut, cycles: int = 3) -> None:
    """Synchronous reset of the design (the clock runs in the wrapper)."""
    dut.rst.value = 1
    await ClockCycles(dut.clk, cycles)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


class Bursts:
    """The wrapper's burst engine of input stream ``i`` and capture engine of output
    stream ``o`` (sim/rtl_run.clock_wrapper). Beats move in bursts of at most BURST:
    :meth:`send` loads the burst memory through VPI and starts it, :meth:`arm` sets the
    capture goal, :meth:`wait` lets the simulator run free until it is met, :meth:`take`
    reads the captured beats. ``gap`` / 256 is the idle (input) and stall (output)
    probability of each cycle."""

    def __init__(self, dut, i: str, o: str, gap: int):
        self.dut = dut
        self.i, self.o = i, o
        self.gap = gap
        self.taken = 0
        getattr(dut, f"{o}__gap").value = gap
        getattr(dut, f"{o}__cap_enable").value = 1

    def _s(self, name):
        return getattr(self.dut, name)

    async def send(self, words) -> None:
        i = self.i
        while int(self._s(f"{i}__burst_req").value) != int(self._s(f"{i}__burst_ack").value):
            await RisingEdge(self.dut.clk)  # the previous burst is still streaming
        if not 0 < len(words) <= BURST:
            raise ValueError(f"a burst holds 1..{BURST} beats, got {len(words)}")
        mem = self._s(f"{i}__burst_mem")
        for k, w in enumerate(words):
            mem[k].value = int(w)
        self._s(f"{i}__burst_len").value = len(words)
        self._s(f"{i}__gap").value = self.gap
        self._s(f"{i}__burst_req").value = (int(self._s(f"{i}__burst_req").value) + 1) & 0xFFFFFFFF

    def arm(self, n: int) -> None:
        self._s(f"{self.o}__cap_goal").value = self.taken + n

    async def wait(self) -> None:
        done = self._s(f"{self.o}__cap_done")
        await ReadOnly()
        if not done.value:
            await RisingEdge(done)
        await RisingEdge(self.dut.clk)

    def take(self, n: int) -> list:
        mem = self._s(f"{self.o}__cap_mem")
        words = [int(mem[(self.taken + k) % BURST].value) for k in range(n)]
        self.taken += n
        return words

    def count(self) -> int:
        return int(self._s(f"{self.o}__cap_count").value)


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
        getattr(dut, f"{kind}_i__valid").value = 0
        getattr(dut, f"{kind}_o__ready").value = 0
    await reset(dut)

    # ---- exhaustive sweep of the combinational cores: set z, let it settle, read y
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
    rng = np.random.default_rng(job.get("seed", 1))
    n = job.get("stream_codes", "all")
    if n == "all":
        stream_in = rng.permutation(codes)
    else:
        stream_in = rng.integers(cfg.act.min_code, cfg.act.max_code + 1, int(n))
        stream_in[:4] = [cfg.act.min_code, cfg.act.max_code, 0, -1]
    engines = [Bursts(dut, f"{kind}_i", f"{kind}_o", job.get("gap", 77)) for kind in ELEMENTWISE]
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


if __name__ == "__main__":  # pragma: no cover - manual run: python -m sim.tb_activation <sim>
    from golden.config import Config as _C
    from golden.fixed import QFormat
    r = run_activation_rtl(_C(learning_rate=0.5, act=QFormat(4, 12)), sys.argv[1] if len(sys.argv) > 1 else "verilator",
                           build_root=str(Path(__file__).resolve().parent.parent / "build"))
    print(json.dumps({k: v for k, v in r.items() if k != "failures"}, indent=1), r["failures"][:5])
