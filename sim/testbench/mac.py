"""cocotb tests for hdl.mac (MacArray, AdderTree), and the stimulus/golden helpers shared
with the amaranth.sim tests in tests/hdl/test_mac.py.

The unit under test is described by a JSON-able *spec* (``unit_spec`` / ``make_unit``),
so the cocotb side rebuilds the same Python object (for layouts and parameters, not
elaborated) from ``run_cocotb(..., config=cfg, extra_env={"MAC_SPEC": json.dumps(spec)})``.

Environment read by the cocotb tests: ``MAC_SPEC`` (required), ``MAC_BEATS`` (default
2000), ``MAC_SEED`` (0), ``MAC_IDLE`` / ``MAC_BACKPRESSURE`` (pause probabilities,
default 0.25 / 0.3).

Expected values come only from golden/: exact integer sums (NumPy int64, the accumulator
is at most 62 bits), golden.fixed.requantize, and golden.lfsr.Lfsr per accumulator.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from golden.config import Config
from golden.fixed import QFormat, requantize
from golden.lfsr import Lfsr, lane_seed

__all__ = ["unit_spec", "make_unit", "Beats", "random_codes", "random_beats", "saturation_beats",
           "golden_outputs", "payloads"]


# ---------------------------------------------------------------------------------------
# unit description


def _fmt(f):
    return QFormat(*f) if not isinstance(f, QFormat) else f


def unit_spec(kind: str, cfg: Config, **kw) -> dict:
    """A JSON-able description of a unit: kind ("mac" / "tree") plus constructor options."""
    if kind not in ("mac", "tree"):
        raise ValueError(f"kind must be 'mac' or 'tree', got {kind!r}")
    spec = {"kind": kind}
    for k, v in kw.items():
        if k in ("a_fmt", "b_fmt"):
            v = [v.int_bits, v.frac_bits]
        elif k == "out_formats":
            v = [[f.int_bits, f.frac_bits] for f in v]
        spec[k] = v
    return spec


def make_unit(cfg: Config, spec: dict):
    from hdl.mac import AdderTree, MacArray
    kw = {k: v for k, v in spec.items() if k != "kind"}
    for k in ("a_fmt", "b_fmt"):
        if k in kw:
            kw[k] = _fmt(kw[k])
    if "out_formats" in kw:
        kw["out_formats"] = tuple(_fmt(f) for f in kw["out_formats"])
    return (MacArray if spec["kind"] == "mac" else AdderTree)(cfg, **kw)


def _is_tree(unit) -> bool:
    from hdl.mac import AdderTree
    return isinstance(unit, AdderTree)


# ---------------------------------------------------------------------------------------
# stimulus


@dataclass
class Beats:
    """Input beats as arrays: a (N, P); b (N,) for MacArray, (N, P) for AdderTree; flags (N,)."""

    a: np.ndarray
    b: np.ndarray
    clear: np.ndarray
    emit: np.ndarray
    fmt: np.ndarray
    sto: np.ndarray

    def __len__(self):
        return len(self.clear)

    def concat(self, other: "Beats") -> "Beats":
        return Beats(*(np.concatenate([getattr(self, f), getattr(other, f)]) for f in
                       ("a", "b", "clear", "emit", "fmt", "sto")))


def payloads(beats: Beats) -> list:
    """Payload dicts (the unit's in_layout) for each beat."""
    a, b = beats.a.tolist(), beats.b.tolist()
    cl, em, fm, st = (x.tolist() for x in (beats.clear, beats.emit, beats.fmt, beats.sto))
    return [{"a": a[n], "b": b[n], "op": {"clear": cl[n], "emit": em[n]}, "fmt": fm[n], "stochastic": st[n]}
            for n in range(len(cl))]


def random_codes(rng, fmt: QFormat, size) -> np.ndarray:
    """Codes of ``fmt`` mixing extremes (min, max, 0, +-1: 10 %), uniform over the range
    (20 %) and log-uniform magnitudes with random trailing zeros (70 %: sums that stay in
    range and rounding ties)."""
    size = tuple(np.atleast_1d(size))
    w = fmt.width
    kind = rng.random(size)
    extremes = np.array([fmt.min_code, fmt.max_code, 0, 1, -1], dtype=np.int64)
    ext = extremes[rng.integers(0, len(extremes), size)]
    full = rng.integers(fmt.min_code, fmt.max_code + 1, size)
    mag_bits = rng.integers(0, w, size)
    mag = rng.integers(0, 1 << 62, size) & ((np.int64(1) << mag_bits) - 1)
    zeros = rng.integers(0, max(1, w // 2), size)
    small = ((mag >> zeros) << zeros) * np.where(rng.random(size) < 0.5, -1, 1)
    small = np.clip(small, fmt.min_code, fmt.max_code)
    return np.where(kind < 0.1, ext, np.where(kind < 0.3, full, small)).astype(np.int64)


def random_beats(unit, n: int, rng, *, p_mid_emit: float = 0.1, p_stochastic: float = 0.5,
                 p_extreme_group: float = 0.05) -> Beats:
    """``n`` beats grouped into sums of random length (1 .. the unit's limit), each group
    starting with ``op.clear`` and ending with ``op.emit`` (plus extra emits mid-sum with
    probability ``p_mid_emit``); random output format and rounding per beat. A fraction
    of the groups are full-length sums of extreme codes (saturating outputs)."""
    P = unit.lanes
    limit = unit.max_beats if _is_tree(unit) else unit.max_terms
    a = random_codes(rng, unit.a_fmt, (n, P))
    b = random_codes(rng, unit.b_fmt, (n, P) if _is_tree(unit) else (n,))
    clear = np.zeros(n, dtype=np.int64)
    emit = (rng.random(n) < p_mid_emit).astype(np.int64)
    pos = 0
    while pos < n:
        length = min(int(rng.integers(1, limit + 1)), n - pos)
        if rng.random() < p_extreme_group:
            length = min(limit, n - pos)
            sl = slice(pos, pos + length)
            ca = [unit.a_fmt.min_code, unit.a_fmt.max_code][int(rng.integers(0, 2))]
            cb = [unit.b_fmt.min_code, unit.b_fmt.max_code][int(rng.integers(0, 2))]
            a[sl] = ca
            b[sl] = cb
        clear[pos] = 1
        emit[pos + length - 1] = 1
        pos += length
    fmt = rng.integers(0, len(unit.out_formats), n)
    sto = (rng.random(n) < p_stochastic).astype(np.int64)
    return Beats(a, b, clear, emit, fmt, sto)


def saturation_beats(unit) -> Beats:
    """Full-length sums driven past every output format's range: (min*min) and (max*min)
    products, each emitted in every format with both roundings; the first emit of each
    sum also happens after one term."""
    P = unit.lanes
    limit = unit.max_beats if _is_tree(unit) else unit.max_terms
    rows = []
    for ca, cb in ((unit.a_fmt.min_code, unit.b_fmt.min_code), (unit.a_fmt.max_code, unit.b_fmt.min_code),
                   (unit.a_fmt.max_code, unit.b_fmt.max_code)):
        for k in range(len(unit.out_formats)):
            for sto in (0, 1):
                for t in range(limit):
                    rows.append((ca, cb, int(t == 0), int(t == limit - 1 or t == 0), k, sto))
    r = np.array(rows, dtype=np.int64)
    n = len(r)
    a = np.repeat(r[:, 0:1], P, axis=1)
    b = np.repeat(r[:, 1:2], P, axis=1) if _is_tree(unit) else r[:, 1].copy()
    return Beats(a, b, r[:, 2], r[:, 3], r[:, 4], r[:, 5])


# ---------------------------------------------------------------------------------------
# golden


class _GroupInputs:
    """Lazily built 'inputs' of emit e for a mismatch report: the beats of its sum."""

    def __init__(self, beats: Beats, emit_idx, starts):
        self.beats, self.emit_idx, self.starts = beats, emit_idx, starts

    def __getitem__(self, e):
        n = int(self.emit_idx[e])
        s = int(self.starts[n])
        sl = slice(s, n + 1)
        return {"beats": [s, n], "a": self.beats.a[sl].tolist(), "b": self.beats.b[sl].tolist(),
                "fmt": int(self.beats.fmt[n]), "stochastic": int(self.beats.sto[n])}


def golden_outputs(unit, beats: Beats):
    """Expected output codes of every emit, in order: (codes, inputs).

    ``codes``: (E, P) for MacArray, (E,) for AdderTree. ``inputs[e]`` describes the
    beats of emit ``e``'s sum (for the scoreboard's first-mismatch report)."""
    tree = _is_tree(unit)
    if unit.acc_width > 62:
        raise ValueError(f"accumulator of {unit.acc_width} bits exceeds the int64 golden arithmetic")
    prods = beats.a * (beats.b if tree else beats.b[:, None])
    if tree:
        prods = prods.sum(axis=1, keepdims=True)
    n, lanes = prods.shape
    # the accumulator, beat by beat: restart at clear, else add (reset value 0)
    acc = np.zeros(lanes, dtype=np.int64)
    start = 0
    starts = np.zeros(n, dtype=np.int64)
    emit_idx, acc_e = [], []
    for k in range(n):
        if beats.clear[k]:
            acc = prods[k].copy()
            start = k
        else:
            acc = acc + prods[k]
        starts[k] = start
        if beats.emit[k]:
            emit_idx.append(k)
            acc_e.append(acc)
    emit_idx = np.array(emit_idx, dtype=np.int64)
    acc_e = np.array(acc_e, dtype=np.int64).reshape(len(emit_idx), lanes)
    fmt_e, sto_e = beats.fmt[emit_idx], beats.sto[emit_idx]
    # one LFSR per accumulator, advanced once per stochastic emit
    n_sto = int(sto_e.sum())
    seeds = [lane_seed(unit.cfg.sr_seed, unit.lfsr_lane)] if tree else \
        [lane_seed(unit.cfg.sr_seed, p) for p in range(lanes)]
    rand = np.zeros_like(acc_e)
    rand[sto_e == 1] = np.stack([Lfsr(s).take(n_sto) for s in seeds], axis=1)
    out = np.zeros_like(acc_e)
    for k, f in enumerate(unit.out_formats):
        for mode, flag in (("nearest_even", 0), ("stochastic", 1)):
            sel = (fmt_e == k) & (sto_e == flag)
            if sel.any():
                out[sel] = requantize(acc_e[sel], unit.acc_frac, f, mode, rand[sel] if flag else None)
    if tree:
        out = out[:, 0]
    return out, _GroupInputs(beats, emit_idx, starts)


# ---------------------------------------------------------------------------------------
# cocotb tests

try:
    import cocotb
except ImportError:  # pragma: no cover
    cocotb = None


async def _run_stream(dut, beats: Beats, unit, idle, backpressure, seed):
    from sim.check.scoreboard import check_codes
    from sim.testbench.streams import TB, PayloadCodec
    expected, inputs = golden_outputs(unit, beats)
    tb = TB(dut)
    src = tb.source("i", idle=idle or None, seed=seed, codec=PayloadCodec(unit.in_layout))
    snk = tb.sink("o", backpressure=backpressure or None, seed=seed + 1)
    await tb.reset()
    src.extend(payloads(beats))
    await snk.wait_count(len(expected), timeout_cycles=20 * len(beats) + 100)
    await src.wait_idle()
    await tb.cycles(10)
    out = PayloadCodec(unit.out_layout)
    got = np.array([out.unpack(v) for v in snk.received], dtype=np.int64)
    check_codes(f"{type(unit).__name__} on {len(beats)} beats", expected, got, inputs)
    assert int(dut.overrun.value) == 0, "overrun flagged on sums within max_terms"
    dut._log.info("%s: %d beats, %d emits, all equal to golden", type(unit).__name__, len(beats), len(expected))


if cocotb is not None:
    @cocotb.test()
    async def mac_random_stream(dut):
        """Random beats with random idle cycles and backpressure, checked against golden."""
        from sim.runners.cocotb_run import test_config, test_param
        cfg = test_config()
        unit = make_unit(cfg, json.loads(test_param("MAC_SPEC")))
        seed = test_param("MAC_SEED", 0, int)
        beats = random_beats(unit, test_param("MAC_BEATS", 2000, int), np.random.default_rng(seed))
        await _run_stream(dut, beats, unit, test_param("MAC_IDLE", 0.25, float),
                          test_param("MAC_BACKPRESSURE", 0.3, float), seed)

    @cocotb.test()
    async def mac_saturation(dut):
        """Sums past the output range clamp to the format's min/max code."""
        from sim.runners.cocotb_run import test_config, test_param
        cfg = test_config()
        unit = make_unit(cfg, json.loads(test_param("MAC_SPEC")))
        await _run_stream(dut, saturation_beats(unit), unit, 0.2, 0.2, 7)
