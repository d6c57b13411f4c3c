"""Where an exploration's results live while it runs: ``OUT/results.jsonl``.

One JSON line per finished (point, stage), appended as the result arrives, so an
interrupted run loses nothing it finished and a rerun with the same ``--out`` skips it:
points are identified by the hash of their full resolved config (``Point.key``), not by
their position in the space, so editing SPACE.toml keeps the results of the points it still
holds. A stage that failed (after its retry) is recorded too, and runs again on a rerun.

:func:`point_row` merges a point's stage results into the one row of results.csv.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from .space import Point

__all__ = ["ResultStore", "point_row", "format_bits", "ROW_FIELDS", "FINAL_STATUSES"]

# stage statuses that are the point's answer (a rerun keeps them); "failed" is not one
FINAL_STATUSES = ("ok", "invalid", "not_covered", "does_not_fit", "mismatch", "skipped")

# results.csv columns after the point's hash, index and varied keys
ROW_FIELDS = ("status", "format_bits", "float_test_accuracy", "fixed_test_accuracy", "accuracy_drop", "float_loss", "fixed_loss",
              "cycles_per_sample", "ideal_cycles_per_sample", "mac_utilization", "target", "luts", "ffs", "dsps",
              "brams", "fmax_mhz", "timing_met", "projected_samples_per_second", "rtl_bit_exact", "rtl_samples",
              "rtl_cycles_per_sample", "message")


class ResultStore:
    """The append-only record of an exploration in ``out_dir/results.jsonl``."""

    def __init__(self, out_dir):
        self.path = Path(out_dir) / "results.jsonl"
        self.results: dict[str, dict[str, dict]] = {}  # point key -> stage -> result
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            for n, line in enumerate(self.path.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    self.results.setdefault(rec["point"], {})[rec["stage"]] = rec["result"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    # a line cut short by a crash: that result is simply run again
                    continue

    def done(self, key: str) -> dict:
        """stage -> result of the stages of point ``key`` that need not run again."""
        return {s: r for s, r in self.results.get(key, {}).items() if r.get("status") in FINAL_STATUSES}

    def record(self, point: Point, stage: str, result: dict) -> None:
        from sim.report import _clean
        self.results.setdefault(point.key, {})[stage] = result
        rec = {"point": point.key, "index": point.index, "values": point.values, "stage": stage,
               "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "result": result}
        with self.path.open("a") as f:
            f.write(json.dumps(_clean(rec)) + "\n")


def format_bits(config: dict) -> int:
    """Bits of an activation, a weight and an error word together (a cost proxy for formats)."""
    f = config["formats"]
    return sum(f[k]["int_bits"] + f[k]["frac_bits"] for k in ("act", "weight", "error"))


def point_row(point: Point, stages: tuple, results: dict) -> dict:
    """One row of results.csv: the point's figures and its status.

    ``status`` is ``ok`` when every requested stage answered; otherwise the first answer that
    is not a figure (``invalid``, ``failed``, ``mismatch``, ``does_not_fit``) or ``pending``;
    ``message`` says which stage and why. A stage the formula does not cover leaves its
    columns empty and the status ``ok`` (its message says so)."""
    from sim.flows.bench import projected_throughput

    row = {"point": point.key, "index": point.index, **point.values}
    try:
        row["format_bits"] = format_bits(point.config)
    except (KeyError, TypeError):  # an invalid point's formats may not be formats
        pass
    if not point.valid:
        row.update(status="invalid", message=point.error)
        return row
    status, notes = "ok", []
    for stage in stages:
        r = results.get(stage)
        if r is None:
            status = "pending" if status == "ok" else status
            continue
        row.update({k: v for k, v in r.items() if k not in ("status", "stage", "message", "seconds")})
        st = r.get("status", "ok")
        if st not in ("ok", "skipped"):
            notes.append(f"{stage}: {r.get('message', st)}")
            if st != "not_covered" and status in ("ok", "pending"):
                status = st
    if row.get("float_test_accuracy") is not None and row.get("fixed_test_accuracy") is not None:
        row["accuracy_drop"] = row["float_test_accuracy"] - row["fixed_test_accuracy"]
    cps = row.get("cycles_per_sample") or row.get("rtl_cycles_per_sample")
    row["projected_samples_per_second"] = projected_throughput(cps, row.get("fmax_mhz"))
    row["status"] = status
    row["message"] = "; ".join(notes) or None
    return row
