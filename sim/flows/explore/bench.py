"""The scale-out benchmark: the same space, golden and cycles stages, on 1 worker and on N.

Each run starts its own LocalCluster and writes into a fresh temporary directory (so no
point is skipped as done). Wall time counts from the cluster's start to the last result;
the cluster's start-up is also given on its own. The machine's load average before and after
each run is recorded: the figure means little on a machine that is busy with other work.
"""
from __future__ import annotations

import os
import tempfile
import time

from .flow import run_explore
from .runner import dask_client
from .space import Space

__all__ = ["bench_workers"]


def bench_workers(space: Space, workers=(1, 2), stages=("golden", "cycles"), on_status=None) -> dict:
    """Run ``space`` once per worker count; return the timings, the speedup of the last count
    over the first, and whether every run gave the same results."""
    say = on_status or (lambda msg: None)
    runs = []
    for n in workers:
        say(f"{n} worker{'s' if n > 1 else ''}: {len(space)} points, stages {','.join(stages)}...")
        load_before = os.getloadavg()
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            with dask_client(n) as client:
                t1 = time.perf_counter()
                report = run_explore(client, space, stages, tmp)
            wall = time.perf_counter() - t0
        rows = {r["point"]: (r["status"], r.get("float_test_accuracy"), r.get("fixed_test_accuracy"),
                             r.get("cycles_per_sample")) for r in report["rows"]}
        runs.append({"workers": n, "wall_seconds": wall, "cluster_start_seconds": t1 - t0,
                     "run_seconds": report["seconds"], "status_counts": report["status_counts"],
                     "load_average_before": load_before, "load_average_after": os.getloadavg(), "_rows": rows})
        say(f"{n} worker{'s' if n > 1 else ''}: {wall:.1f} s wall ({t1 - t0:.1f} s of it starting the cluster)")
    same = all(r["_rows"] == runs[0]["_rows"] for r in runs)
    for r in runs:
        del r["_rows"]
    return {"points": len(space), "stages": list(stages), "cpu_count": os.cpu_count(), "runs": runs,
            "speedup": runs[0]["wall_seconds"] / runs[-1]["wall_seconds"],
            "speedup_excluding_cluster_start": runs[0]["run_seconds"] / runs[-1]["run_seconds"],
            "same_results": same}
