"""``backprop-fpga explore``: design-space exploration on Dask (sim/flows/explore/)."""
from __future__ import annotations

import os

import click

from .. import report as rep
from . import config_option, epochs_option

__all__ = ["explore", "explore_bench"]

STAGE_HELP = "golden (always), cycles, synth (needs --target), rtl"


def _cluster_options(f):
    f = click.option("--connect-timeout", "connect_timeout", type=click.FloatRange(min=0.1), default=15.0,
                     show_default=True, help="Seconds to wait for --scheduler to answer.")(f)
    f = click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
                     help="Run on an existing Dask cluster (started with 'dask scheduler' and 'dask worker').")(f)
    f = click.option("--workers", type=click.IntRange(min=1), default=None,
                     help="Worker processes of the embedded Dask LocalCluster (default: the machine's cores).")(f)
    return f


@click.command()
@config_option(required=True)
@click.option("--space", "space_path", type=click.Path(dir_okay=False), required=True,
              help="SPACE.toml: quoted dotted config keys, each with a list of values; the space is their product.")
@click.option("--stages", "stages_text", default="golden,cycles", show_default=True, help=f"Stages: {STAGE_HELP}.")
@click.option("--target", type=click.Choice(("ecp5-85k", "ice40-up5k")), default=None,
              help="Device for the synth stage (Fmax also projects samples/s).")
@_cluster_options
@epochs_option
@click.option("--rtl-samples", type=click.IntRange(min=1), default=20, show_default=True,
              help="Training samples of the rtl stage's bit-exactness check.")
@click.option("--rtl-sim", type=click.Choice(("verilator", "icarus", "amaranth")), default="verilator",
              show_default=True, help="Simulator of the rtl stage.")
@click.option("--cost", type=click.Choice(("auto", "luts", "dsps", "bits", "multipliers", "cycles")), default="auto",
              show_default=True, help="Cost axis of pareto.png (auto: LUTs after synthesis, else the first of "
                                      "format bits, multipliers, cycles per sample that varies).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="out/explore", show_default=True,
              help="Output directory; a rerun with the same one skips the points already done.")
def explore(config_path, space_path, stages_text, target, scheduler, workers, connect_timeout, epochs, rtl_samples,
            rtl_sim, cost, out_dir):
    """Explore a design space: golden accuracy, cycles, resources and Fmax of every point.

    The points (the product of SPACE.toml's lists, applied to --config) run as Dask tasks, one
    per (point, stage), a point's stages in order; on an embedded LocalCluster of --workers
    processes, or on the cluster of --scheduler. Results stream into OUT/results.csv as they
    finish; at the end OUT/report.json and OUT/pareto.png (accuracy against cost, the Pareto
    front marked). A failed or lost task is reported and retried once; a rerun with the same
    --out skips the points already done.
    """
    from sim.flows.explore.flow import StageError, parse_stages

    if workers is not None and scheduler:
        rep.fail("give either --workers (an embedded LocalCluster) or --scheduler (an existing cluster), not both")
    try:
        stages = parse_stages(stages_text, target)
    except StageError as e:
        rep.fail(str(e))
    if target and "synth" not in stages:
        rep.fail(f"--target {target} is used by the synth stage only: add synth to --stages")
    base, space = _load(config_path, space_path, epochs)
    options = {"target": target, "simulator": rtl_sim, "samples": rtl_samples}
    report = _run(base, space, stages, options, config_path, space_path, workers, scheduler, out_dir, cost,
                  connect_timeout)
    if report["failed"] or report["status_counts"].get("mismatch"):
        raise SystemExit(1)


def _load(config_path, space_path, epochs):
    from golden.config import ConfigError, load_config

    from sim.flows.explore.space import SpaceError, load_space
    try:
        base = load_config(config_path)
        if epochs is not None:
            base = base.with_(epochs=epochs)
        space = load_space(space_path, base)
    except (ConfigError, SpaceError) as e:
        rep.fail(str(e))
    return base, space


def _run(base, space, stages, options, config_path, space_path, workers, scheduler, out_dir, cost,
         connect_timeout=15.0):
    from sim.flows.explore.flow import run_explore
    from sim.flows.explore.runner import ClusterError, dask_client

    out = rep.prepare_out_dir(out_dir)
    con = rep.console()
    n_workers = workers or os.cpu_count() or 1
    where = (f"the Dask cluster at {scheduler}" if scheduler else
             f"a local Dask cluster of {n_workers} worker{'s' if n_workers > 1 else ''}")
    con.print(f"explore: {config_path} x {space_path}: {len(space)} points ({' x '.join(str(len(v)) for v in space.lists.values())}"
              f" over {', '.join(space.keys)}), stages {','.join(stages)}, on {where}")
    valid = [p for p in space.points if p.valid]
    prog, task = rep.progress_bar(con, "explore", len(valid) * len(stages))
    width = len(str(len(space)))

    def on_event(ev):
        c = prog.console
        if ev.kind in ("result", "failed"):
            prog.advance(task)
        elif ev.kind == "invalid":
            c.print(f"[{ev.point.index + 1:>{width}}/{len(space)}] {ev.point.label()}  invalid: {ev.message}")
        elif ev.kind == "resumed":
            prog.advance(task, len(stages))
            c.print(f"[{ev.point.index + 1:>{width}}/{len(space)}] {ev.point.label()}  done before (in {out})")
        elif ev.kind == "retry":
            c.print(f"retry: {ev.stage} of point {ev.point.index + 1} ({ev.point.key}) failed, running it once more: "
                    f"{ev.message}")
        elif ev.kind == "failed":
            c.print(f"failed: {ev.stage} of point {ev.point.index + 1} ({ev.point.key}) failed twice: {ev.message}")
        elif ev.kind in ("lost", "no_workers"):
            c.print(f"cluster: {ev.message}")

    def on_row(row):
        p = space.points[row["index"]]
        prog.console.print(f"[{p.index + 1:>{width}}/{len(space)}] {p.label()}  {_figures(row)}")

    extra = {"config_file": str(config_path), "space_file": str(space_path), "target": options.get("target"),
             "cluster": {"scheduler": scheduler} if scheduler else {"local_workers": n_workers},
             "base_config": _config_dict(base)}
    try:
        with dask_client(None if scheduler else n_workers, scheduler, connect_timeout) as client, prog:
            report = run_explore(client, space, stages, out, options, on_event=on_event, on_row=on_row, cost=cost,
                                 title=f"{config_path} x {space_path}", extra_report=extra)
    except ClusterError as e:
        rep.fail(str(e))
    counts = ", ".join(f"{n} {s}" for s, n in sorted(report["status_counts"].items()))
    con.print(f"{len(space)} points: {counts}; {report['points_resumed']} done before; "
              f"{len(report['retried'])} retried, {len(report['failed'])} failed; {report['seconds']:.1f} s")
    front = [space.points[r["index"]].label() for r in report["rows"] if r["point"] in report["pareto_front"]]
    con.print(f"Pareto front ({report['cost']['label']} vs fixed-point accuracy): {len(front)} points")
    for label in front:
        con.print(f"  {label}")
    con.print(f"wrote {out}/results.csv, {out}/report.json and {out}/pareto.png")
    return report


def _config_dict(cfg):
    from golden.config import config_to_dict
    return config_to_dict(cfg)


def _figures(row) -> str:
    parts = []
    if row.get("fixed_test_accuracy") is not None:
        parts.append(f"float {rep.fmt(row['float_test_accuracy'], 3)} fixed {rep.fmt(row['fixed_test_accuracy'], 3)}")
    if row.get("cycles_per_sample") is not None:
        parts.append(f"cycles {rep.fmt(float(row['cycles_per_sample']), 1)} util {rep.fmt(row['mac_utilization'], 3)}")
    if row.get("luts") is not None:
        parts.append(f"LUTs {row['luts']} DSPs {row.get('dsps')} Fmax {rep.fmt(row.get('fmax_mhz'), 1)} MHz")
    if row.get("projected_samples_per_second"):
        parts.append(f"{rep.fmt(row['projected_samples_per_second'], 0)} samples/s")
    if row.get("rtl_bit_exact") is not None:
        parts.append(f"rtl {'bit-exact' if row['rtl_bit_exact'] else 'MISMATCH'} ({row.get('rtl_samples')} samples)")
    parts.append(row["status"] + (f" ({row['message']})" if row.get("message") else ""))
    return "  ".join(parts)



@click.command(name="explore-bench")
@config_option(required=False, default="examples/iris.toml")
@click.option("--space", "space_path", type=click.Path(dir_okay=False), default="examples/explore/bench-16.toml",
              show_default=True, help="The space to time (16 points by default).")
@click.option("--workers", type=click.IntRange(min=2), default=2, show_default=True,
              help="Workers of the second run (the first has one).")
@epochs_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="out/explore-bench", show_default=True)
def explore_bench(config_path, space_path, workers, epochs, out_dir):
    """Time explore (golden and cycles stages) on 1 worker and on --workers: both wall times
    and the speedup. Each run has its own LocalCluster and a fresh output directory; the
    results of the runs must agree. Writes OUT/report.json (with the load average before and
    after each run: run it on a quiet machine)."""
    from sim.flows.explore.bench import bench_workers

    base, space = _load(config_path, space_path, epochs)
    out = rep.prepare_out_dir(out_dir)
    con = rep.console()
    con.print(f"explore-bench: {config_path} x {space_path}: {len(space)} points, 1 vs {workers} workers "
              f"({os.cpu_count()} cores, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())})")
    r = bench_workers(space, (1, workers), on_status=lambda msg: con.print(f"  {msg}"))
    r.update(config_file=str(config_path), space_file=str(space_path))
    one, many = r["runs"]
    con.print(f"1 worker:  {one['wall_seconds']:.1f} s")
    con.print(f"{workers} workers: {many['wall_seconds']:.1f} s")
    con.print(f"speedup {r['speedup']:.2f}x ({r['speedup_excluding_cluster_start']:.2f}x without the clusters' "
              f"start-up); results {'identical' if r['same_results'] else 'DIFFER'}")
    path = rep.write_report(out, r)
    con.print(f"wrote {path}")
    if not r["same_results"]:
        raise SystemExit(1)
