"""Run the AXI top (hdl/axi/top.py: ``AxiTrainer``) in Icarus or Verilator.

The design is built by sim/runners/cocotb_run.py (a build directory per Verilog text,
reused while the design is unchanged) with cocotb driving the clock; the testbench is
sim/testbench/axi_trainer.py, whose AXI traffic all goes through cocotbext-axi. The job
runs in a background thread so the caller can follow its progress (``on_progress``).
"""
from __future__ import annotations

import json
import threading
from pathlib import Path

from golden.config import Config, config_to_dict

__all__ = ["AXI_TOP", "run_axi_job"]

AXI_TOP = "trainer_axi"


def run_axi_job(cfg: Config, simulator: str, *, testcase: str = "train", plan=None, check_params: str = "signature",
                stall_prob: float = 0.0, seed: int = 0, on_progress=None, build_root: str = "build",
                dsp: str = "generic", timeout_s: float | None = None) -> dict:
    """Build (once per design) and run one testcase of sim/testbench/axi_trainer.py; returns
    the result dict the test wrote plus ``tests`` (the cocotb outcome). ``stall_prob``:
    random pauses on every AXI channel. Raises RuntimeError naming the first failure when
    the simulation ends without a result."""
    from hdl.axi import AxiTrainer

    from .cocotb_run import run_cocotb

    if dsp != "generic":
        raise ValueError(f"the AXI testbench simulates dsp='generic' only, got {dsp!r}")
    job_dir = Path(build_root).resolve() / "axi-jobs" / f"{simulator}-{testcase}-{threading.get_ident()}"
    job_dir.mkdir(parents=True, exist_ok=True)
    progress, result = job_dir / "progress.jsonl", job_dir / "result.json"
    for f in (progress, result):
        f.unlink(missing_ok=True)
    plan_file = job_dir / "plan.pickle"
    if plan is not None:
        plan.save(plan_file)
    job = {"config": config_to_dict(cfg), "plan": str(plan_file), "check_params": check_params,
           "stall_prob": stall_prob, "seed": seed, "progress": str(progress), "result": str(result)}
    job_file = job_dir / "job.json"
    job_file.write_text(json.dumps(job))

    outcome = {}

    def target():
        try:
            outcome["run"] = run_cocotb(lambda: AxiTrainer(cfg), test_module="sim.testbench.axi_trainer",
                                        simulator=simulator, build_name=AXI_TOP, toplevel=AXI_TOP,
                                        testcase=testcase, extra_env={"BPF_JOB": str(job_file)},
                                        timeout_s=timeout_s, check=False, build_root=build_root)
        except BaseException as e:  # reported to the caller below
            outcome["error"] = e

    th = threading.Thread(target=target, daemon=True)
    th.start()
    seen = 0
    while th.is_alive():
        th.join(0.2)
        if on_progress is not None and progress.exists():
            for line in progress.read_text().splitlines()[seen:]:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    break  # partly written: read it next time
                on_progress(rec)
                seen += 1
    if "error" in outcome:
        raise outcome["error"]
    run = outcome["run"]
    if not result.exists():
        raise RuntimeError(f"the {simulator} AXI simulation failed: {run.failure_report()}")
    data = json.loads(result.read_text())
    data["tests"] = {"passed": run.ok, "failure": None if run.ok else run.failure_report(), "log": str(run.log)}
    return data
