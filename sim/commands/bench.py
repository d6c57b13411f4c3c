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
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="out/bench", show_default=True)
def bench(config_path, samples, icarus_samples, random_data, out_dir):
    """Cycles per training sample, MAC utilization and simulation speed."""
    from golden.config import ConfigError, load_config
    from golden.datasets import DatasetError
    from hdl.layout import HardwareLimitError

    from ..bench import run_bench

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
        r = run_bench(cfg, samples=sims, simulators=tuple(sims), random_data=random_data)
    except (ConfigError, DatasetError, HardwareLimitError) as e:
        rep.fail(str(e))
    r["config_file"] = config_path
    path = rep.write_report(out_dir, r)
    con.print(f"useful MACs per sample   {r['useful_macs_per_sample']}")
    con.print(f"multipliers              {r['multipliers']}")
    con.print(f"ideal cycles per sample  {rep.fmt(r['ideal_cycles_per_sample'], 1)}")
    con.print(f"cycles per sample        {rep.fmt(r['cycles_per_sample'], 1)}  (hardware cycle counter)")
    con.print(f"MAC utilization          {rep.fmt(r['mac_utilization'], 3)}")
    for sim, v in r["sim_cycles_per_second"].items():
        con.print(f"simulation speed         {rep.fmt(v, 0)} cycles/s on {sim}")
    con.print(f"wrote {path}")
