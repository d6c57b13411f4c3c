"""``backprop-fpga build``: a bitstream of the UART trainer for a board (amaranth-boards + YoWASP)."""
from __future__ import annotations

import click

from .. import report as rep
from . import config_option

__all__ = ["build"]

BOARDS = ("ulx3s-85f", "icebreaker")


@click.command()
@config_option(required=True)
@click.option("--board", type=click.Choice(BOARDS), required=True, help="Board to build the bitstream for.")
@click.option("--baud", type=click.IntRange(min=1), default=115200, show_default=True, help="UART baud rate.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Build directory: platform files, logs, bitstream, report.json (default out/build/<board>).")
def build(config_path, board, baud, out_dir):
    """Build a bitstream: the trainer behind a UART bridge on the board's clock and UART pins.

    yosys, then a fit check of its cell counts against the device (a design that does not
    fit stops here, before place and route, naming the resource), nextpnr with the board
    clock as the constraint, ecppack/icepack. Prints resources and Fmax against the board
    clock; writes OUT/report.json (fmax_mhz, luts, ffs, dsps, brams, bitstream,
    board_clock_mhz, timing_met). The first YoWASP run compiles WebAssembly (about a minute).
    """
    from golden.config import load_config

    from sim.flows.board_build import BOARDS as BOARD_INFO
    from sim.flows.board_build import build_bitstream
    from sim.flows.synth import DoesNotFit, SynthesisError

    cfg = load_config(config_path)
    out_dir = out_dir or f"out/build/{board}"
    rep.prepare_out_dir(out_dir)
    con = rep.console()
    con.print(f"build: {config_path}  board {board} ({BOARD_INFO[board].description})  "
              f"layers {list(cfg.layers)}  {cfg.lanes} lanes  {baud} Bd")
    try:
        r = build_bitstream(cfg, board, out_dir, baud=baud, on_status=lambda msg: con.print(f"  {msg}"))
    except DoesNotFit as e:
        where = "before place and route" if e.report and e.report.get("utilization") is None else "at placement"
        rep.fail(f"{e} [{where}; {out_dir}/report.json]")
    except SynthesisError as e:
        rep.fail(str(e))
    except (ValueError, ImportError) as e:  # a baud rate the UART refuses, hdl.uart_bridge missing
        rep.fail(str(e))
    clk = r["board_clock_mhz"]
    con.print(f"LUTs {r['luts']}  FFs {r['ffs']}  DSPs {r['dsps']}  BRAMs {r['brams']}"
              + (f"  logic cells {r['logic_cells']}" if "logic_cells" in r else ""))
    verdict = "PASS" if r["timing_met"] else "FAIL"
    con.print(f"Fmax {rep.fmt(r['fmax_mhz'], 2)} MHz against the {clk:g} MHz board clock: {verdict}"
              + (" (iCE40: DSP path pieces included, see dsp_path_segments_ns)" if r.get("fmax_caveat") else ""))
    con.print(f"bitstream {r['bitstream']} ({r['bitstream_bytes']} bytes)")
    path = rep.write_report(out_dir, r, cfg)
    con.print(f"wrote {path}")
