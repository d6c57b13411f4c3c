"""The main job without the CLI: train in RTL simulation, compare with golden, summarise.

``run_train`` picks the simulator (Verilator, Icarus or Amaranth's own) and the host
interface (``bus``: the native bus, or the AXI top driven by cocotbext-axi), runs
``sim.check.train_flow.run_training`` inside it, and returns the report dictionary that the
``train`` command prints and writes to ``report.json``.
"""
from __future__ import annotations

import time

from golden.config import Config, config_to_dict
from golden.datasets import load_dataset

from hdl.layout import check_limits

from sim.check.golden_plan import make_plan

__all__ = ["run_train", "SIM_CHOICES", "summarise"]

SIM_CHOICES = ("verilator", "icarus", "amaranth")
BUS_CHOICES = ("native", "axi")


def _run_amaranth(cfg, plan, check_params, on_progress):
    from amaranth.sim import Simulator

    from hdl.trainer import build_trainer
    from sim.check.train_flow import run_training
    from sim.host.amaranth_transport import AmaranthTransport
    from sim.host.driver import TrainerHost

    dut = build_trainer(cfg)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    box = {}
    count = {"n": 0}

    def on_sample():
        count["n"] += 1
        if count["n"] % 10 == 0:
            on_progress({"samples": count["n"]})

    async def testbench(ctx):
        host = TrainerHost(cfg, AmaranthTransport(ctx, dut, cfg.act.width))
        t0 = time.perf_counter()
        records, session = await run_training(cfg, plan, host, check_params,
                                              on_epoch=lambda r: on_progress({"epoch": r.as_dict()}),
                                              on_sample=on_sample)
        box["records"], box["session"] = records, session
        box["wall"] = time.perf_counter() - t0

    sim.add_testbench(testbench)
    sim.run()
    r = box["session"].result
    return {
        "mismatches": r.mismatches, "first_mismatch": str(r.first) if r.first else None,
        "samples": r.samples, "updates": r.updates, "epochs": [x.as_dict() for x in box["records"]],
        "sim_cycles": None, "wall_seconds": box["wall"],
    }


def summarise(cfg: Config, simulator: str, raw: dict) -> dict:
    """Report fields from a raw job result (see docs and the issue's list)."""
    lay = check_limits(cfg)
    hist = raw["epochs"]
    last = hist[-1] if hist else {}
    samples = raw["samples"]
    train_cycles = last.get("train_cycles", 0)
    cps = train_cycles / samples if samples else None
    ideal = lay.useful_macs() / cfg.lanes
    util = lay.useful_macs() / (cps * cfg.lanes) if cps else None
    sim_cps = raw["sim_cycles"] / raw["wall_seconds"] if raw.get("sim_cycles") and raw.get("wall_seconds") else None
    return {
        "simulator": simulator,
        "mismatches": raw["mismatches"],
        "first_mismatch": raw["first_mismatch"],
        "samples": samples,
        "updates": raw.get("updates"),
        "epochs": len(hist),
        "rtl_test_accuracy": last.get("rtl_test_accuracy"),
        "fixed_test_accuracy": last.get("fixed_test_accuracy"),
        "float_test_accuracy": last.get("float_test_accuracy"),
        "cycles_per_sample": cps,
        "ideal_cycles_per_sample": ideal,
        "mac_utilization": util,
        "sim_cycles_per_second": sim_cps,
        "wall_seconds": raw.get("wall_seconds"),
        "history": hist,
        "config": config_to_dict(cfg),
    }


def run_train(cfg: Config, simulator: str = "verilator", dataset: str | None = None, epochs: int | None = None,
              max_samples: int | None = None, check_params: str | None = None, stall_prob: float = 0.0,
              on_progress=None, build_root: str = "build", evaluate: bool = True, dsp: str = "generic",
              bus: str = "native", seed: int = 0) -> dict:
    """``stall_prob``: random idle cycles and backpressure on the streams (and with
    ``bus="axi"`` on all seven AXI channels, seeded by ``seed``)."""
    if simulator not in SIM_CHOICES:
        raise ValueError(f"--sim must be one of {', '.join(SIM_CHOICES)}, got {simulator!r}")
    if bus not in BUS_CHOICES:
        raise ValueError(f"--bus must be one of {', '.join(BUS_CHOICES)}, got {bus!r}")
    if bus == "axi" and simulator == "amaranth":
        raise ValueError("--bus axi runs on verilator or icarus (its testbench is cocotbext-axi's bus models), "
                         "not on the amaranth simulator")
    check_limits(cfg)  # refuse what the hardware cannot hold before building anything
    ds = load_dataset(cfg, dataset)
    epochs = epochs if epochs is not None else cfg.epochs
    if check_params is None:  # full readback after every update when it is cheap
        n_params = sum((cfg.layers[l] + 1) * cfg.layers[l + 1] for l in range(cfg.n_layers))
        check_params = "every" if n_params <= 64 else "signature"
    on_progress = on_progress or (lambda rec: None)
    on_progress({"phase": "golden"})
    plan = make_plan(cfg, ds, epochs, max_samples, keep_params=check_params == "every", evaluate=evaluate)
    on_progress({"phase": "rtl"})
    if simulator == "amaranth":
        if dsp != "generic":
            raise ValueError(f"the Amaranth simulator runs only dsp='generic' (no models of primitives), got {dsp!r}")
        raw = _run_amaranth(cfg, plan, check_params, on_progress)
    elif bus == "axi":
        from sim.runners.axi_rtl import run_axi_job
        raw = run_axi_job(cfg, simulator, plan=plan, check_params=check_params, stall_prob=stall_prob, seed=seed,
                          on_progress=on_progress, build_root=build_root, dsp=dsp)
    else:
        from sim.runners.rtl_run import run_trainer_job
        raw = run_trainer_job(cfg, simulator, plan=plan, check_params=check_params, stall_prob=stall_prob,
                              on_progress=on_progress, build_root=build_root, dsp=dsp)
    out = summarise(cfg, simulator, raw)
    out["bus"] = bus
    return out

