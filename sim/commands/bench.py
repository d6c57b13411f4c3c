"""``backprop-fpga bench``: cycles per sample, MAC utilization and simulation speed."""
from __future__ import annotations


import click

from .. import report as rep

__all__ = ["bench"]


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), required=True, help="TOML config file.")
@click.option("--samples", type=click.IntRange(min=1), default=None,
              help="Training samples on Verilator (default: one epoch of the dataset, at most 2000).")
@click.option("--icarus-samples", type=click.IntRange(min=0), default=10, show_default=True,
              help="Training samples on Icarus (0 skips Icarus).")
@click.option("--random-data", is_flag=True, help="Random inputs and labels instead of the config's dataset.")
@click.option("--fmax-report", "fmax_report", type=click.Path(dir_okay=False), default=None,
              help="report.json of 'synth' or 'build' whose fmax_mhz projects the training throughput.")
@click.option("--target", type=click.Choice(("ecp5-85k", "ice40-up5k")), default=None,
              help="Synthesize for this device in the same run and project the throughput at its Fmax.")
@click.option("--cpu-samples", type=click.IntRange(min=1), default=2000, show_default=True,
              help="Samples timed for the host CPU's float training speed (NumPy, one core, the config's batch size).")
@click.option("--compare-optimizers", is_flag=True,
              help="Also run the same network and batch with sgd, momentum and adam on Verilator, side by side: "
                   "cycles per sample and the ratio to SGD's.")
@click.option("--bus", type=click.Choice(["native", "axi"]), default="native", show_default=True,
              help="Run the samples through the native bus or through the AXI top (cocotbext-axi drives it; "
                   "Python then runs every cycle: use fewer --samples).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="out/bench", show_default=True)
def bench(config_path, samples, icarus_samples, random_data, fmax_report, target, cpu_samples, compare_optimizers,
          bus, out_dir):
    """Cycles per training sample, MAC utilization, simulation speed, and training throughput:
    projected on the FPGA (Fmax / cycles per sample; Fmax from --fmax-report or --target) next
    to the host CPU's own float training speed (golden/float_model.py, one core, the config's
    batch size)."""
    from golden.config import ConfigError, load_config
    from golden.datasets import DatasetError
    from hdl.layout import HardwareLimitError

    from sim.flows.bench import cpu_float_throughput, fmax_from_report, projected_throughput, run_bench

    if fmax_report and target:
        rep.fail("give either --fmax-report or --target, not both")
    fmax = None
    if fmax_report:
        try:
            fmax = fmax_from_report(fmax_report)
        except ValueError as e:
            rep.fail(str(e))
    try:
        cfg = load_config(config_path)
        if samples is None:
            if random_data:
                samples = 500
            else:
                from golden.datasets import load_dataset
                samples = min(2000, len(load_dataset(cfg).X_train))
        sims = {"verilator": samples}
        if icarus_samples:
            sims["icarus"] = icarus_samples
        con = rep.console()
        con.print(f"bench: {config_path}  layers {list(cfg.layers)}  {cfg.lanes} lanes  "
                  f"({', '.join(f'{k}: {v} samples' for k, v in sims.items())})")
        r = run_bench(cfg, samples=sims, simulators=tuple(sims), random_data=random_data, bus=bus)
    except (ConfigError, DatasetError, HardwareLimitError) as e:
        rep.fail(str(e))
    r["config_file"] = config_path
    r["bus"] = bus
    if compare_optimizers:
        r["optimizers"] = _compare_optimizers(con, cfg, samples, random_data)
    # throughput ---------------------------------------------------------------------
    if target:
        from sim.flows.synth import DoesNotFit, SynthesisError, synthesize
        con.print(f"synth: {target} for the Fmax (the first run compiles WebAssembly)...")
        try:
            s = synthesize(cfg, target, out_dir=f"{out_dir}/synth-{target}",
                           on_status=lambda msg: con.print(f"  {msg}"))
            fmax = {"fmax_mhz": s["fmax_mhz"], "fmax_source": f"synthesize({target})", "fmax_target": target,
                    "fmax_timing_met": s.get("timing_met")}
            if s.get("fmax_caveat"):
                fmax["fmax_caveat"] = s["fmax_caveat"]
        except DoesNotFit as e:
            con.print(f"synth: {e}")
            fmax = {"fmax_mhz": None, "fmax_source": f"synthesize({target})", "fmax_target": target,
                    "fmax_error": str(e)}
        except SynthesisError as e:
            rep.fail(str(e))
    cpu = cpu_float_throughput(cfg, cpu_samples)
    r.update(cpu)
    r["fmax_mhz"] = fmax["fmax_mhz"] if fmax else None
    if fmax:
        r.update({k: v for k, v in fmax.items() if k != "fmax_mhz"})
        fc = fmax.get("fmax_config") or {}
        if fc and (fc.get("lanes") != cfg.lanes or list(fc.get("layers") or []) != list(cfg.layers)):
            r["fmax_config_mismatch"] = True
    r["projected_samples_per_second"] = projected_throughput(r.get("cycles_per_sample"), r["fmax_mhz"])
    if r["projected_samples_per_second"] and r["cpu_float_samples_per_second"]:
        r["projected_speedup_vs_cpu_float"] = r["projected_samples_per_second"] / r["cpu_float_samples_per_second"]
    if r.get("board_clock_mhz") and r.get("cycles_per_sample") and r["fmax_mhz"]:
        # what the board runs at: its own clock, if the design meets it
        met = r["fmax_mhz"] >= r["board_clock_mhz"] and r.get("fmax_timing_met") is not False
        r["samples_per_second_at_board_clock"] = (
            projected_throughput(r["cycles_per_sample"], r["board_clock_mhz"]) if met else None)
    path = rep.write_report(out_dir, r)
    con.print(f"useful MACs per sample   {r['useful_macs_per_sample']}")
    con.print(f"multipliers              {r['multipliers']}")
    con.print(f"ideal cycles per sample  {rep.fmt(r['ideal_cycles_per_sample'], 1)}")
    con.print(f"cycles per sample        {rep.fmt(r['cycles_per_sample'], 1)}  (hardware cycle counter)")
    con.print(f"MAC utilization          {rep.fmt(r['mac_utilization'], 3)}  (the {cfg.lanes} lane multipliers)")
    oc = r["optimizer"]
    con.print(f"optimizer                {oc['name']}: {oc['multipliers']} multipliers of its own"
              + "".join(f", {k} table {v}" for k, v in oc["tables"].items()))
    for sim, v in r["sim_cycles_per_second"].items():
        con.print(f"simulation speed         {rep.fmt(v, 0)} cycles/s on {sim}")
    con.print(f"CPU float training       {rep.fmt(r['cpu_float_samples_per_second'], 0)} samples/s  "
              f"(NumPy float64, one core, batch {r['cpu_float_batch_size']}, best of 3 x {r['cpu_float_samples']} "
              f"samples on this host)")
    if r["fmax_mhz"] is None:
        why = fmax.get("fmax_error") if fmax else None
        con.print("projected FPGA training  - (needs an Fmax: --fmax-report report.json or --target "
                  "ecp5-85k|ice40-up5k)" if not why else f"projected FPGA training  - ({why})")
    else:
        note = " (upper bound: iCE40 Fmax)" if r.get("fmax_caveat") else ""
        con.print(f"projected FPGA training  {rep.fmt(r['projected_samples_per_second'], 0)} samples/s  "
                  f"(Fmax {rep.fmt(r['fmax_mhz'], 2)} MHz / {rep.fmt(r['cycles_per_sample'], 1)} cycles per "
                  f"sample, from {r['fmax_source']}){note}; "
                  f"{rep.fmt(r.get('projected_speedup_vs_cpu_float'), 2)}x the CPU float figure")
        if r.get("board_clock_mhz"):
            con.print(f"at the board clock       {rep.fmt(r['samples_per_second_at_board_clock'], 0)} samples/s "
                      f"({r['board_clock_mhz']:g} MHz)" if r.get("samples_per_second_at_board_clock") else
                      f"at the board clock       - (timing not met at {r['board_clock_mhz']:g} MHz)")
        if r.get("fmax_config_mismatch"):
            con.print(f"warning: the Fmax report was made for {r['fmax_config']}, not layers "
                      f"{list(cfg.layers)} with {cfg.lanes} lanes")
    con.print(f"wrote {path}")


def _compare_optimizers(con, cfg, samples, random_data) -> dict:
    """Cycles per sample of the config with each optimizer, on Verilator, in this run."""
    from sim.flows.bench import optimizer_variants, run_bench
    rows = {}
    for name, c, note in optimizer_variants(cfg):
        con.print(f"optimizers: {name}{f' ({note})' if note else ''}, {samples} samples on verilator...")
        r = run_bench(c, samples={"verilator": samples}, simulators=("verilator",), random_data=random_data)
        rows[name] = {"cycles_per_sample": r["cycles_per_sample"], "mac_utilization": r["mac_utilization"],
                      "optimizer": r["optimizer"], "note": note}
    sgd = rows["sgd"]["cycles_per_sample"]
    con.print(f"optimizers at batch {cfg.batch_size}, {cfg.lanes} lanes (same data, same run):")
    con.print(f"  {'optimizer':<10} {'cycles/sample':>14} {'x SGD':>7} {'MAC util':>9} {'own mults':>10}")
    for name, row in rows.items():
        row["ratio_to_sgd"] = row["cycles_per_sample"] / sgd
        con.print(f"  {name:<10} {rep.fmt(row['cycles_per_sample'], 1):>14} {rep.fmt(row['ratio_to_sgd'], 3):>7} "
                  f"{rep.fmt(row['mac_utilization'], 3):>9} {row['optimizer']['multipliers']:>10}")
    return rows
