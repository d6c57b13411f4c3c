"""DeltaStore (hdl/trainer/deltas.py) alone in amaranth.sim.

Random delta writes from the output stage or the backward reduction (now and then both in
one cycle: the backward one wins), random read slots every cycle, the learning-rate code
changed between bursts. The reference follows the docstring: a delta presented in cycle
t is written in cycle t + 1, its eps = lr x delta (the exact product golden
FixedMLP.accumulate scales by) EPS_LAG cycles later, and both read ports are
transparent: d_data / e_data in cycle c + 1 show the memories as written up to cycle c.
"""
import numpy as np
import pytest

from hdl.layout import EPS_LAG
from hdl.trainer.deltas import DeltaStore

from .helpers import codes, config, input_shapes, garbage, new_schedule, run_schedule


@pytest.mark.parametrize("name", ["l4-b1-ne", "l1-b1-sr", "deep-l3", "deep-l9"])
def test_delta_store_reads_what_was_written(name):
    cfg, lay = config(name)
    dut = DeltaStore(cfg, lay)
    rng = np.random.default_rng(7)
    P, depth, n = cfg.lanes, max(lay.ddepth, 1), 400
    sched = new_schedule(dut, [f"{k}_data__{p}" for k in "de" for p in range(P)])
    layout = dut.out_delta.shape()
    dmem, emem = np.zeros((P, depth), dtype=np.int64), np.zeros((P, depth), dtype=np.int64)
    want_d, want_e = np.zeros((n, P), dtype=np.int64), np.zeros((n, P), dtype=np.int64)
    pending = {}  # cycle -> [(memory, lane, slot, value)]
    lr, quiet = cfg.lr_code, 0
    for c in range(n):
        cyc = {k: garbage(rng, s) for k, s in input_shapes(dut).items()}
        for port in ("out_delta", "bwd_delta"):
            cyc[port] &= ~1  # valid is bit 0
        if quiet >= 3 and rng.random() < 0.05:  # a new rate between bursts (nothing in flight)
            lr, quiet = int(rng.integers(1, 1 << 16)), 0
        cyc["lr"] = lr
        if rng.random() < 0.5 and c < n - 8:
            quiet = 0
            lane, slot, delta = int(rng.integers(P)), int(rng.integers(depth)), int(codes(rng, cfg.error, 1)[0])
            write = layout.const({"valid": 1, "lane": lane, "addr": slot, "delta": delta}).as_bits()
            both = rng.random() < 0.1
            cyc["bwd_delta" if both or rng.random() < 0.5 else "out_delta"] = write
            if both:  # the output stage's delta in the same cycle is lost
                cyc["out_delta"] = layout.const({"valid": 1, "lane": int(rng.integers(P)),
                                                 "addr": int(rng.integers(depth)), "delta": -delta}).as_bits()
            pending.setdefault(c + 1, []).append((dmem, lane, slot, delta))
            pending.setdefault(c + 1 + EPS_LAG, []).append((emem, lane, slot, lr * delta))
        else:
            quiet += 1
        for mem, lane, slot, v in pending.pop(c, []):
            mem[lane, slot] = v
        if c + 1 < n:  # transparent reads of this cycle's state
            want_d[c + 1], want_e[c + 1] = dmem[:, cyc["d_addr"] % depth], emem[:, cyc["e_addr"] % depth]
        cyc["d_addr"] %= depth
        cyc["e_addr"] %= depth
        sched.inputs.append(cyc)
    rec = run_schedule(dut, sched)
    for k, want in (("d", want_d), ("e", want_e)):
        got = np.array([[r[f"{k}_data__{p}"] for p in range(P)] for r in rec])
        bad = [tuple(i) for i in np.argwhere(got != want)]
        n_bad = len(bad)
        assert n_bad == 0, f"{k}_data: first difference in cycle {bad[0][0]}, bank {bad[0][1]}: " \
                           f"expected {want[bad[0]]}, hardware {got[bad[0]]} ({n_bad} in all)"
