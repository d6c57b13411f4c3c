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
@out_option("out/synth")
def synth(config_path, target, unit, bus, freq_mhz, out_dir):
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
                       freq_mhz=freq_mhz)
    except DoesNotFit as e:
        rep.fail(f"the design does not fit {target}: {e}")
    con.print(f"LUTs {r['luts']}  FFs {r['ffs']}  DSPs {r['dsps']}  BRAMs {r['brams']}  "
              f"Fmax {rep.fmt(r['fmax_mhz'], 2)} MHz (timing {'met' if r.get('timing_met') else 'not met'})")
    con.print(f"wrote {out_dir}/report.json")
