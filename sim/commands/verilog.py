"""``backprop-fpga verilog``: the trainer as one Verilog file plus manifest.json."""
from __future__ import annotations

import click

from .. import report as rep
from . import config_option

__all__ = ["verilog"]


@click.command()
@config_option(required=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="out/verilog", show_default=True,
              help="Output directory for trainer.v, manifest.json and report.json.")
@click.option("--no-lint", is_flag=True, help="Skip the Verilator lint (manifest lint = null).")
@click.option("--dsp", type=click.Choice(["generic", "ecp5"]), default="generic", show_default=True,
              help="Multipliers as Verilog '*' (any tool, any FPGA) or as ECP5 MULT18X18D primitives with their "
                   "own registers (what `synth --target ecp5-85k` and the ULX3S build use; same cycles).")
@click.option("--bus", type=click.Choice(["native", "axi"]), default="native", show_default=True,
              help="The host interface: the native CSR bus and streams (top `trainer`), or AXI4-Stream "
                   "s_axis/m_axis and AXI4-Lite s_axi with aclk/aresetn (top `trainer_axi`, docs/registers.md).")
def verilog(config_path, out_dir, no_lint, dsp, bus):
    """Write the trainer as one Verilog file (top module `trainer`, or `trainer_axi` with
    --bus axi) and OUT/manifest.json.

    The manifest lists the ports (stream payload fields included), the register map, every
    parameter's bus address (from hdl/layout.py), the number formats, lanes, the config,
    tool versions and git describe, and the result of `verilator --lint-only -Wall` with
    the project's documented waivers.
    """
    from golden.config import load_config

    from sim.flows.verilog_export import TOPS, export_verilog

    cfg = load_config(config_path)
    con = rep.console()
    out = rep.prepare_out_dir(out_dir)
    top = TOPS[bus]
    con.print(f"verilog: {config_path}  layers {list(cfg.layers)}  {cfg.lanes} lanes  multipliers: {dsp}  bus: {bus}")
    m = export_verilog(cfg, out, lint=not no_lint, on_status=lambda msg: con.print(f"  {msg}"), dsp=dsp, bus=bus)
    n_in = sum(1 for p in m["ports"] if p["direction"] == "input")
    con.print(f"top module {top}: {n_in} inputs, {len(m['ports']) - n_in} outputs; "
              f"{m['param_map']['parameters']} parameters in {m['param_map']['banks']} banks "
              f"of {m['param_map']['words_per_bank']} words")
    lint = m["lint"]
    if lint is None:
        con.print("lint: skipped (--no-lint)")
    elif lint["clean"] is None:
        con.print(f"lint: could not run: {lint['error']}")
    elif lint["clean"]:
        of = "" if dsp == "generic" else ", of the generic form: Verilator has no model of MULT18X18D"
        con.print(f"lint: clean (verilator -Wall, {len(lint['waivers'])} documented waivers{of})")
    else:
        codes = {}
        for w in lint["warnings"]:
            code = w.split(":", 1)[0].removeprefix("%Warning-")
            codes[code] = codes.get(code, 0) + 1
        con.print(f"lint: {len(lint['warnings'])} warnings not waived ("
                  + ", ".join(f"{c} x{n}" for c, n in sorted(codes.items())) + "); first ones:")
        for w in lint["warnings"][:5]:
            con.print(f"  {w}")
    report = {
        "top_module": top, "bus": bus, "verilog": str(out / f"{top}.v"), "manifest": str(out / "manifest.json"),
        "verilog_sha256": m["verilog_sha256"], "ports": len(m["ports"]),
        "parameters": m["param_map"]["parameters"], "dsp": dsp,
        "lint_clean": None if lint is None else lint["clean"],
        "lint_warnings": None if lint is None else len(lint.get("warnings", [])),
        "git": m["git"], "tools": m["tools"],
    }
    path = rep.write_report(out, report, cfg)
    con.print(f"wrote {out / f'{top}.v'}, {out / 'manifest.json'} and {path}")
