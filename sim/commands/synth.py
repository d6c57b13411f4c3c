"""``backprop-fpga synth``: synthesis, place and route with YoWASP; resources and Fmax."""
from __future__ import annotations

import click

from .. import report as rep
from . import config_option, out_option

__all__ = ["synth"]

TARGETS = ("ecp5-85k", "ice40-up5k")


@click.command()
@config_option(required=True)
@click.option("--target", type=click.Choice(TARGETS), required=True, help="Device to place and route for.")
@click.option("--unit", default="trainer", show_default=True,
              help="trainer, trainer-axi, mac, adder-tree, softmax or activation-<kind>.")
@click.option("--bus", type=click.Choice(["native", "axi"]), default="native", show_default=True,
              help="With --unit trainer: the native top, or the AXI top (the same as --unit trainer-axi).")
@click.option("--freq", "freq_mhz", type=click.FloatRange(min=1), default=None,
              help="Clock target in MHz (default: 100 on ecp5-85k, 30 on ice40-up5k).")
@click.option("--no-route", "no_route", is_flag=True,
              help="Stop after placement: Fmax is nextpnr's estimate from predicted net delays, and the worst "
                   "paths are listed (routing the larger trainers takes hours).")
@click.option("--paths", "n_paths", type=click.IntRange(min=0), default=3, show_default=True,
              help="How many of the worst paths to print (report.json keeps 10).")
@out_option("out/synth")
def synth(config_path, target, unit, bus, freq_mhz, no_route, n_paths, out_dir):
    """Synthesize the trainer (or one unit) and report LUTs, flip-flops, DSPs, block RAMs and Fmax.

    The first run of a YoWASP tool compiles WebAssembly (about a minute); progress lines show
    which step is running. Writes OUT/report.json (fmax_mhz, luts, ffs, dsps, brams).
    """
    from golden.config import load_config

    from sim.flows.synth import UNITS, DoesNotFit, synthesize

    if unit not in UNITS:
        rep.fail(f"--unit {unit!r} is not a unit; allowed: {', '.join(UNITS)}")
    if bus == "axi":
        if unit not in ("trainer", "trainer-axi"):
            rep.fail(f"--bus axi applies to --unit trainer, not {unit!r}")
        unit = "trainer-axi"
    cfg = load_config(config_path)
    con = rep.console()
    con.print(f"synth: {config_path}  unit {unit}  target {target}  ({cfg.lanes} lanes)")
    try:
        r = synthesize(cfg, target, unit, out_dir=out_dir, on_status=lambda msg: con.print(f"  {msg}"),
                       freq_mhz=freq_mhz, route=not no_route)
    except DoesNotFit as e:
        rep.fail(f"the design does not fit {target}: {e}")
    con.print(f"LUTs {r['luts']}  FFs {r['ffs']}  DSPs {r['dsps']}  BRAMs {r['brams']}  "
              f"Fmax {rep.fmt(r['fmax_mhz'], 2)} MHz ({r['fmax_kind']}; timing {'met' if r.get('timing_met') else 'not met'})")
    tp = r.get("timing_paths") or {}
    if tp.get("failing_groups"):
        con.print(f"failing endpoints: {tp['failing_endpoints_below_ns'].get('0', 0)} of {tp['endpoints']}; "
                  f"worst groups (launching signal -> capturing signal, # = lane or bit):")
        for gr in tp["failing_groups"][:max(n_paths, 5)]:
            con.print(f"    {gr['worst_ns']:7.2f} ns  {gr['endpoints']:5d} endpoints  {gr['from']} -> {gr['to']}")
    for p in tp.get("paths", [])[:n_paths]:
        con.print(f"path {p['required_ns']:.2f} ns ({p['logic_cells']} cells, {p['routing_ns']:.2f} ns routing): "
                  f"{p['from']} -> {p['to']}")
        for cell, port, incr, at in p["steps"]:
            con.print(f"    {at:7.3f}  +{incr:.3f}  {cell} {port}")
    con.print(f"wrote {out_dir}/report.json")
