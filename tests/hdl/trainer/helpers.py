"""Shared pieces of the trainer component tests (tests/hdl/trainer/).

* ``CONFIGS``: small variants of examples/xor.toml (lanes 1/2/3/4/9, batch 1 and 2,
  nearest-even and stochastic rounding, deep networks, softmax + cross-entropy).
* ``codes``: random codes of a format, mixing uniform codes, small ones and the edges.
* Cycle schedules: a component's inputs for every cycle (flat Verilog port names, the
  names ``amaranth.back.verilog`` gives: ``w__0``, ``w_wr__0__en``) and the outputs to
  record. ``run_schedule`` plays one in amaranth.sim; tests/hdl/trainer/tb_components.py
  plays the same one in Icarus or Verilator; the checks read only the recording.
* The stimulus and expected results of UpdateEngine and BackwardReduction, which both
  simulators share. Expected values come from golden/ only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
from amaranth.hdl import Shape, Value, signed
from amaranth.lib import data
from amaranth.lib.wiring import In
from amaranth.sim import Simulator

from golden.config import Config, load_config
from golden.fixed import QFormat
from golden.fixed_model import FixedMLP, SampleTrace
from golden.signature import params_signature
from golden.tables import softmax_codes
from hdl.layout import PIPE_LATENCY, UPDATE_LATENCY, check_limits, tree_stages
from hdl.trainer.deltas import eps_width
from hdl.trainer.update import lane_flags

XOR = "examples/xor.toml"


def xor(**changes) -> Config:
    return load_config(XOR).with_(**changes)


CONFIGS = {
    # examples/xor.toml as it is: 2-4-1 sigmoid, 4 lanes, batch 1, lr 2.0
    "l4-b1-ne": xor(),
    # 5 hidden rows on 3 lanes (a partial block), a fractional rate (bias steps round)
    "l3-b2-sr": xor(lanes=3, layers=(2, 5, 1), batch_size=2, rounding="stochastic", sr_seed=7, learning_rate=1.3),
    "l1-b2-ne": xor(lanes=1, batch_size=2),
    # sr_seed 0: lane 0's seed is 1 (golden.lfsr.lane_seed)
    "l1-b1-sr": xor(lanes=1, rounding="stochastic", sr_seed=0, learning_rate=0.7),
    "deep-l1": xor(lanes=1, layers=(2, 4, 3, 1), activations=("sigmoid",) * 3),
    "deep-l3": xor(lanes=3, layers=(3, 7, 5, 2), activations=("tanh", "relu", "leaky_relu")),
    # 9 lanes: a two-level adder tree, three groups of banks on the bus
    "deep-l9": xor(lanes=9, layers=(2, 11, 10, 2), activations=("sigmoid", "tanh", "linear")),
    "mse3-l2": xor(lanes=2, layers=(2, 4, 3), activations=("sigmoid", "tanh")),
    # 3 logits on 2 lanes: the softmax layer takes two row blocks
    "softmax-l2": xor(lanes=2, layers=(2, 5, 3), activations=("tanh", "softmax"), loss="cross_entropy"),
}


def config(name: str):
    """(cfg, Layout) of ``CONFIGS[name]``."""
    cfg = CONFIGS[name]
    return cfg, check_limits(cfg)


def codes(rng, fmt: QFormat, size) -> np.ndarray:
    """Random codes of ``fmt``: a third uniform, a third small (|x| <= 1/4), a third edge
    values (min, max, 0, +-1 LSB, +-1.0, powers of two: they make rounding ties)."""
    lo, hi = fmt.min_code, fmt.max_code
    edges = np.array([lo, hi, 0, 1, -1, fmt.one, -fmt.one] + [s << e for e in range(fmt.width - 1) for s in (1, -1)])
    edges = np.clip(edges, lo, hi)
    small = max(fmt.one >> 2, 1)
    pick = rng.integers(0, 3, size)
    return np.choose(pick, [rng.integers(lo, hi + 1, size), rng.integers(-small, small + 1, size),
                            rng.choice(edges, size)]).astype(np.int64)


def random_params(cfg: Config, rng) -> list:
    return [codes(rng, cfg.weight, (cfg.layers[l + 1], cfg.layers[l] + 1)) for l in range(cfg.n_layers)]


def random_activations(cfg: Config, mlp: FixedMLP, rng) -> list:
    """a_0 (random input codes) .. a_L, each a_{l+1} the golden activation of random z."""
    a = [codes(rng, cfg.act, cfg.layers[0])]
    for l, kind in enumerate(cfg.activations):
        z = codes(rng, cfg.act, cfg.layers[l + 1])
        a.append(softmax_codes(z, cfg) if kind == "softmax" else mlp.acts.forward(kind, z))
    return a


def lane_product_shape(cfg: Config) -> Shape:
    """The lanes' exact product (hdl/trainer/top.py: eps or a weight times an act or error code)."""
    return signed(max(cfg.weight.width, eps_width(cfg), 17) + max(cfg.act.width, cfg.error.width))


def garbage(rng, shape) -> int:
    """A random value of ``shape`` (what an unused input may carry)."""
    shape = Shape.cast(shape)
    bits = 0
    for i in range(0, shape.width, 32):  # (wide structs: 32 bits at a time)
        bits |= int(rng.integers(0, 1 << 32)) << i
    bits &= (1 << shape.width) - 1
    return bits - (1 << shape.width) if shape.signed and bits >> (shape.width - 1) else bits


# ---------------------------------------------------------------------------------------
# cycle schedules


def port_shapes(dut) -> dict:
    """Flat Verilog port name -> Shape, for every port of a wiring.Component."""
    return {"__".join(map(str, path)): Shape.cast(Value.cast(value).shape())
            for path, _, value in dut.signature.flatten(dut)}


def input_shapes(dut) -> dict:
    """Flat name -> Shape of the component's inputs."""
    return {"__".join(map(str, path)): Shape.cast(Value.cast(value).shape())
            for path, member, value in dut.signature.flatten(dut) if member.flow == In}


def ports(dut) -> dict:
    return {"__".join(map(str, path)): Value.cast(value) for path, _, value in dut.signature.flatten(dut)}


@dataclass
class Schedule:
    """``inputs[c]``: every input's value in cycle c; ``outputs``: ports recorded each cycle
    (after the inputs of the cycle are applied, before its clock edge)."""
    inputs: list
    outputs: tuple
    signed: dict = field(default_factory=dict)  # output name -> signed

    def to_json(self) -> str:
        return json.dumps({"inputs": self.inputs, "outputs": list(self.outputs), "signed": self.signed})


def new_schedule(dut, outputs) -> Schedule:
    shapes = port_shapes(dut)
    return Schedule([], tuple(outputs), {n: shapes[n].signed for n in outputs})


def simulate(dut, *testbenches, background=(), max_cycles: int = 20_000) -> None:
    """Run ``testbenches`` (and ``background`` ones) on ``dut`` in amaranth.sim; fail,
    naming the testbenches still waiting, if they have not finished within ``max_cycles``
    (a handshake that never comes must not hang the suite)."""
    finished = set()

    def named(tb):
        async def wrapper(ctx):
            await tb(ctx)
            finished.add(tb.__name__)
        return wrapper

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for tb in background:
        sim.add_testbench(tb, background=True)
    for tb in testbenches:
        sim.add_testbench(named(tb))
    steps = 0
    while sim.advance():
        steps += 1  # (two per clock cycle: its rising and its falling edge)
        if steps > 2 * max_cycles:
            waiting = [tb.__name__ for tb in testbenches if tb.__name__ not in finished]
            raise AssertionError(f"{type(dut).__name__}: testbenches {waiting} still waiting after "
                                 f"{max_cycles} cycles")


def run_schedule(dut, sched: Schedule) -> list:
    """Play ``sched`` in amaranth.sim; the recorded outputs, one dict per cycle."""
    p = ports(dut)
    rec = []

    async def testbench(ctx):
        for cyc in sched.inputs:
            for name, v in cyc.items():
                ctx.set(p[name], v)
            rec.append({n: ctx.get(p[n]) for n in sched.outputs})
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return rec


def check_events(got: list, want: list, what: str) -> None:
    """``got``: tuples (cycle, where..., value) seen; ``want``: (tuple, label) expected, all
    but the value keying an event. Every expected event must be seen exactly as expected,
    and nothing else."""
    seen = {}
    for g in got:
        seen.setdefault(g[:-1], []).append(g)
    for w, label in want:
        g = seen.pop(w[:-1], [])
        if not g:  # the same place a few cycles off?
            near = [e for e in got if e[1:-1] == w[1:-1] and 0 < abs(e[0] - w[0]) <= 3]
            g = f"nothing in that cycle; there {near} instead" if near else "nothing"
        assert g == [w], f"{what}: {label}: expected {w} (cycle, where..., value), hardware {g}"
    extra = sorted(e for es in seen.values() for e in es)
    assert not extra, f"{what}: unexpected {extra[:6]} ({len(extra)} in all)"


# ---------------------------------------------------------------------------------------
# UpdateEngine: stimulus and expectations

def update_engine(cfg, lay):
    from hdl.trainer.update import UpdateEngine
    return UpdateEngine(cfg, lay, grad_shape=lane_product_shape(cfg), eps_shape=signed(eps_width(cfg)))


@dataclass
class UpdateStimulus:
    sched: Schedule
    writes: list  # ((cycle, kind, lane, addr, data), label)
    signatures: list  # (cycle, golden signature, label)
    beat_valid: list  # per cycle
    updates: int
    saturated: int  # parameters golden clamps (their unclamped step leaves the range)
    ties: int  # nearest-even: steps exactly halfway between two codes


def update_stimulus(cfg, lay, dut, n_samples: int, seed: int) -> UpdateStimulus:
    """``n_samples`` samples of random act codes a_l and deltas, in the order the trainer
    issues update beats (layers last to first, row blocks, columns; the bias beside the
    last column), with random idle cycles; golden FixedMLP.accumulate / apply_update gives
    every parameter after each mini-batch, golden.signature its signature."""
    rng = np.random.default_rng(seed)
    P, L, B = cfg.lanes, cfg.n_layers, cfg.batch_size
    shapes = input_shapes(dut)
    outs = [f"{k}_wr__{p}__{f}" for k in "wb" for p in range(P) for f in ("addr", "data", "en")]
    sched = new_schedule(dut, outs + ["param_signature", "s_valid", "f_valid"])
    beat_layout = dut.beat.shape()
    mlp = FixedMLP(cfg, random_params(cfg, rng))
    writes, signatures, saturated, ties, updates = [], [], 0, 0, 0
    lr = cfg.lr_code
    cyc = sched.inputs

    def idle(n):
        for _ in range(n):
            c = {n_: garbage(rng, s) for n_, s in shapes.items()}
            g = beat_layout.from_bits(c["beat"])
            # not valid: valid and the lanes' enables 0 (the rest garbage)
            c["beat"] = beat_layout.const({**{k: g[k] for k in ("apply", "last", "addr", "slot", "rv")},
                                           "valid": 0, **lane_flags(0, 0, 0, 0)}).as_bits()
            c["sig_clear"] = 0
            cyc.append(c)

    idle(PIPE_LATENCY + 2)
    for s in range(n_samples):
        apply = (s + 1) % B == 0
        a = [codes(rng, cfg.act, cfg.layers[l]) for l in range(L)]
        deltas = [codes(rng, cfg.error, cfg.layers[l + 1]) for l in range(L)]
        before = [p.copy() for p in mlp.params]
        mlp.accumulate(SampleTrace(z=[], a=a), deltas)
        if apply:
            grad = [g.copy() for g in mlp.grad]
            mlp.apply_update()
            sh = cfg.update_shift
            for l in range(L):
                ties += int(((grad[l] & ((1 << sh) - 1)) == (1 << (sh - 1))).sum()) if sh > 0 else 0
                raw = before[l] - (grad[l] >> sh)  # the step floored: still out of range when clamped
                saturated += int(((raw > cfg.weight.max_code + 1) | (raw < cfg.weight.min_code - 1)).sum())
        after = mlp.params
        # the trainer issues sig_clear with the update's first beat, PIPE_LATENCY cycles
        # before its stage A; the previous sample's last beat folds 3 cycles after its
        # stage A, its signature is read a cycle later: a gap of at least 9 cycles
        idle(int(rng.integers(9, 13)))
        first = None
        for l in range(L - 1, -1, -1):
            n_in = cfg.layers[l]
            for rb in range(lay.blocks(l)):
                for k in range(n_in):
                    if rng.random() < 0.25:
                        idle(int(rng.integers(1, 3)))
                    c = len(cyc)
                    first = c if first is None else first
                    idle(1)
                    addr, slot, last = lay.wbase(l) + rb * n_in + k, lay.dbase(l) + rb, k == n_in - 1
                    rv = 0
                    for p in range(P):
                        j = rb * P + p
                        if j >= cfg.layers[l + 1]:
                            continue
                        rv |= 1 << p
                        eps = lr * int(deltas[l][j])
                        cyc[c].update({f"w__{p}": int(before[l][j, k]), f"b__{p}": int(before[l][j, n_in]),
                                       f"grad__{p}": eps * int(a[l][k]), f"eps__{p}": eps})
                        if apply:
                            where = f"sample {s}, layer {l}, row {j}"
                            writes.append(((c + UPDATE_LATENCY - PIPE_LATENCY, "w", p, addr, int(after[l][j, k])),
                                           f"{where}, weight {k}"))
                            if last:
                                writes.append(((c + UPDATE_LATENCY - PIPE_LATENCY, "b", p, slot,
                                                int(after[l][j, n_in])), f"{where}, bias"))
                    cyc[c]["beat"] = beat_layout.const({"valid": 1, "apply": apply, "last": last, "addr": addr,
                                                        "slot": slot, "rv": rv,
                                                        **lane_flags(1, apply, last, rv)}).as_bits()
                    cyc[c - PIPE_LATENCY].update(state_addr=addr, state_slot=slot)
        if apply:
            updates += 1
            cyc[first - PIPE_LATENCY]["sig_clear"] = 1
            signatures.append((len(cyc) - 1 + 4, params_signature(cfg, after), f"update {updates} (sample {s})"))
    idle(8)
    beat_valid = [c["beat"] & 1 for c in cyc]
    return UpdateStimulus(sched, writes, signatures, beat_valid, updates, saturated, ties)


def check_update(cfg, stim: UpdateStimulus, rec: list) -> None:
    P = cfg.lanes
    got = [(c, k, p, r[f"{k}_wr__{p}__addr"], r[f"{k}_wr__{p}__data"])
           for c, r in enumerate(rec) for k in "wb" for p in range(P) if r[f"{k}_wr__{p}__en"]]
    check_events(got, stim.writes, "parameter writes (golden FixedMLP.apply_update)")
    for c, sig, label in stim.signatures:
        assert rec[c]["param_signature"] == sig, \
            f"{label}: signature {rec[c]['param_signature']:#010x}, golden params_signature {sig:#010x}"
    v = stim.beat_valid
    assert [r["s_valid"] for r in rec[1:]] == v[:-1], "s_valid is not the beat's valid a cycle later (stage S)"
    assert [r["f_valid"] for r in rec[3:]] == v[:-3], "f_valid is not the beat's valid 3 cycles later (stage F)"


# ---------------------------------------------------------------------------------------
# BackwardReduction: stimulus and expectations

def backward_reduction(cfg, lay):
    from hdl.trainer.backward import BackwardReduction
    return BackwardReduction(cfg, lay, prod_shape=lane_product_shape(cfg))


def backward_lag(cfg) -> int:
    """The documented latency: the delta leaves tree_stages(P) + 5 cycles after the last beat."""
    return tree_stages(cfg.lanes) + 5


def backward_stimulus(cfg, lay, dut, n_samples: int, seed: int):
    """Random parameters, activations and output deltas; for every sample golden
    FixedMLP.backward gives every hidden layer's deltas. The beats bring, per input k of layer l
    (l = L-1 .. 1) and row block, the P products W_l[j, k] * delta_l[j] (0 past the
    layer) and sigma'(a_l[k]), with random idle cycles. Expected: delta_{l-1}[k] at bank
    k mod P, slot dbase(l-1) + k // P, backward_lag(cfg) cycles after the block's last beat.
    Returns (schedule, expected events, how many sums leave the error range)."""
    rng = np.random.default_rng(seed)
    P, L = cfg.lanes, cfg.n_layers
    shapes = input_shapes(dut)
    sched = new_schedule(dut, ["delta"])
    beat_layout = dut.beat.shape()
    mlp = FixedMLP(cfg, random_params(cfg, rng))
    want, saturated = [], 0
    cyc = sched.inputs
    lag = backward_lag(cfg)

    def idle(n):
        for _ in range(n):
            c = {n_: garbage(rng, s) for n_, s in shapes.items()}
            c["beat"] &= ~1
            cyc.append(c)

    idle(2)
    for s in range(n_samples):
        a = random_activations(cfg, mlp, rng)
        # any error code is a possible output delta (e.g. a linear output's a - t): golden's
        # backward from a random one, so that the hidden sums reach the error format's ends
        delta_out = codes(rng, cfg.error, cfg.layers[-1])
        mlp.output_delta = lambda a_out, t: delta_out
        deltas = mlp.backward(SampleTrace(z=[], a=a), None)
        for l in range(L - 1, 0, -1):
            nb, n_out = lay.blocks(l), cfg.layers[l + 1]
            d = mlp.acts.derivative(cfg.activations[l - 1], a[l])
            raw = (mlp.params[l][:, :-1].T @ deltas[l]) >> (cfg.weight.frac_bits + 1)  # the sum, halved
            saturated += int((abs(raw) > cfg.error.max_code).sum())
            for k in range(cfg.layers[l]):
                for rb in range(nb):
                    if rng.random() < 0.2:
                        idle(int(rng.integers(1, 3)))
                    c = len(cyc)
                    idle(1)
                    for p in range(P):
                        j = rb * P + p
                        cyc[c][f"prod__{p}"] = int(mlp.params[l][j, k]) * int(deltas[l][j]) if j < n_out else 0
                    cyc[c]["beat"] = beat_layout.const({
                        "valid": 1, "first": rb == 0, "last": rb == nb - 1, "layer": l, "d": int(d[k]),
                        "klane": k % P, "kslot": k // P}).as_bits()
                want.append(((c + lag, k % P, lay.dbase(l - 1) + k // P, int(deltas[l - 1][k])),
                             f"sample {s}, delta_{l - 1}[{k}]"))
    idle(lag + 3)
    return sched, want, saturated


def check_backward(cfg, lay, dut, want: list, rec: list) -> None:
    layout = dut.delta.shape()
    got = []
    for c, r in enumerate(rec):
        v = data.Const(layout, r["delta"])
        if v.valid:
            got.append((c, int(v.lane), int(v.addr), int(v.delta)))
    check_events(got, want, "deltas (golden FixedMLP.backward)")


# ---------------------------------------------------------------------------------------
# the same schedules on Icarus and Verilator


def run_rtl(dut, sched: Schedule, simulator: str, build_name: str, tmp_path) -> list:
    """Play ``sched`` in ``dut``'s generated Verilog (tests/hdl/trainer/tb_components.py,
    sim.runners.cocotb_run.run_cocotb); the recorded outputs, as run_schedule returns them."""
    from sim.runners.cocotb_run import run_cocotb

    sched_path, rec_path = tmp_path / "schedule.json", tmp_path / "record.json"
    sched_path.write_text(sched.to_json())
    run_cocotb(dut, test_module="tests.hdl.trainer.tb_components", simulator=simulator, build_name=build_name,
               extra_env={"TB_SCHEDULE": sched_path, "TB_RECORD": rec_path}, timeout_s=600)
    return json.loads(rec_path.read_text())
