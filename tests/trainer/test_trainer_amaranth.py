"""The trainer under Amaranth's simulator: every output and every parameter after every
update equal the golden fixed-point model, for configs that stress the sequencer."""
import numpy as np
import pytest

from golden.config import Config
from hdl.layout import HardwareLimitError, check_limits
from hdl.trainer import Trainer
from sim.runners.amaranth_run import run_amaranth_session

from .configs import optimizer_variants, variants, xor


def random_samples(cfg: Config, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    one = cfg.act.one
    X = rng.integers(0, one + 1, size=(n, cfg.layers[0]))
    n_out = cfg.layers[-1]
    if n_out == 1:
        T = rng.integers(0, 2, size=(n, 1)) * one
    else:
        T = np.eye(n_out, dtype=np.int64)[rng.integers(0, n_out, size=n)] * one
    return X, T


@pytest.mark.parametrize("name,cfg", variants(), ids=[v[0] for v in variants()])
def test_training_matches_golden_bit_for_bit(name, cfg):
    X, T = random_samples(cfg, 8)
    init = {}

    async def script(session):
        init["params"] = [p.copy() for p in session.golden.params]
        for x, t in zip(X, T):
            await session.train_sample(x, t)
        await session.host.set_mode(infer=True)
        for x in X[:2]:
            await session.infer(x)

    r = run_amaranth_session(cfg, script, check_params="every")
    assert r.mismatches == 0, str(r.first)
    assert r.samples == 8 and r.updates == 8 // cfg.batch_size
    # not vacuous: training moved the parameters the hardware was compared against
    assert any(np.any(a != b) for a, b in zip(init["params"], _golden_final(cfg, X, T)))


@pytest.mark.parametrize("name,cfg", optimizer_variants(), ids=[v[0] for v in optimizer_variants()])
def test_optimizer_state_matches_golden_after_every_update(name, cfg):
    """Momentum and Adam: after every update every parameter and every state word (and
    Adam's beta powers) read back over the bus equal golden's; the state really moved."""
    X, T = random_samples(cfg, 12, seed=3)
    box = {}

    async def script(session):
        for x, t in zip(X, T):
            await session.train_sample(x, t)
        box["state"] = session.golden.opt.copy_state()
        await session.finish()

    r = run_amaranth_session(cfg, script, check_params="every")
    assert r.mismatches == 0, str(r.first)
    assert r.updates == 12 // cfg.batch_size
    s = box["state"]
    assert all(np.count_nonzero(a) > a.size // 2 for a in s["s1"]), "the first state word hardly moved"
    if cfg.optimizer == "adam":
        assert all(np.count_nonzero(a) > a.size // 2 for a in s["s2"]), "Adam's v hardly moved"


@pytest.mark.parametrize("layers,acts,loss", [((3, 2), ("sigmoid",), "mse"),
                                              ((3, 3), ("softmax",), "cross_entropy")],
                         ids=["mse", "softmax"])
def test_one_layer_network_updates_from_the_eps_written_that_cycle(layers, acts, loss):
    """With one layer the update starts right after the output deltas: its first eps read
    meets the write of the last eps (the eps memory's read port is transparent)."""
    cfg = xor(layers=layers, activations=acts, loss=loss, lanes=2)
    X, T = random_samples(cfg, 6, seed=5)

    async def script(session):
        for x, t in zip(X, T):
            await session.train_sample(x, t)

    r = run_amaranth_session(cfg, script, check_params="every")
    assert r.mismatches == 0, str(r.first)
    assert r.updates == 6


def _golden_final(cfg, X, T):
    from golden.fixed_model import FixedMLP
    g = FixedMLP(cfg)
    for x, t in zip(X, T):
        g.train_sample(x, t)
    return g.params


def test_a_corrupted_parameter_is_reported_with_its_location():
    """The scoreboard catches a single wrong parameter and names layer, index, codes."""
    cfg = xor()
    X, T = random_samples(cfg, 2)

    async def script(session):
        await session.train_sample(X[0], T[0])
        await session.host.write_param(0, 1, 0, 123)  # corrupt W_0[1, 0] behind golden's back
        await session.train_sample(X[1], T[1])

    r = run_amaranth_session(cfg, script, check_params="every")
    assert r.mismatches > 0
    assert r.first.sample == 1


def test_config_too_big_for_the_hardware_is_refused_before_generation():
    cfg = xor(layers=(5000, 4, 1), lanes=4)
    with pytest.raises(HardwareLimitError, match=r"network.layers\[0\] = 5000 exceeds the limit"):
        check_limits(cfg)
    with pytest.raises(HardwareLimitError):
        Trainer(cfg)


def test_signature_check_over_the_bus_catches_a_wrong_update():
    """check_params='signature' reads the SIGNATURE register after every update: equal while
    the hardware follows golden, different as soon as one parameter is not."""
    cfg = xor(rounding="stochastic", batch_size=2, lanes=3)
    X, T = random_samples(cfg, 6, seed=4)

    async def clean(session):
        for x, t in zip(X, T):
            await session.train_sample(x, t)

    r = run_amaranth_session(cfg, clean, check_params="signature")
    assert r.mismatches == 0 and r.updates == 3, str(r.first)

    async def corrupted(session):
        await session.train_sample(X[0], T[0])
        await session.host.write_param(1, 0, 2, 99)  # behind golden's back, before the update
        for x, t in zip(X[1:], T[1:]):
            await session.train_sample(x, t)

    r = run_amaranth_session(cfg, corrupted, check_params="signature")
    assert r.mismatches > 0
    assert r.first.what in ("signature", "output")


# softmax outputs of several widths and lane counts (one, two and several row blocks in
# the output layer, a partial last block): the softmax unit's and the output stage's
# terms of the formula
_SOFTMAX = [("softmax-7out-4lanes", xor(layers=(3, 6, 7), activations=("relu", "softmax"), loss="cross_entropy",
                                        lanes=4)),
            ("softmax-4out-1lane", xor(layers=(2, 3, 4), activations=("tanh", "softmax"), loss="cross_entropy",
                                       lanes=1))]
_FORMULA = [v for v in variants() + optimizer_variants() + _SOFTMAX if v[1].optimizer != "adam"]


@pytest.mark.parametrize("name,cfg", _FORMULA, ids=[v[0] for v in _FORMULA])
def test_cycle_counter_matches_the_schedule_formula(name, cfg):
    """The hardware's own cycle counter equals the schedule in docs/trainer.md, sample by sample."""
    from hdl.layout import expected_train_cycles
    X, T = random_samples(cfg, 3)
    per_sample = []

    async def script(session):
        for x, t in zip(X, T):
            await session.host.wait_idle()
            before = await session.host.cycles()
            await session.train_sample(x, t)
            await session.host.wait_idle()
            per_sample.append(await session.host.cycles() - before)

    r = run_amaranth_session(cfg, script, check_params="end")
    assert r.mismatches == 0, str(r.first)
    assert per_sample == [expected_train_cycles(cfg)] * 3


def test_next_sample_loads_while_one_trains_and_bad_samples_leave_it_alone():
    """Overlapped loading: while sample A trains, B (infer, mode latched at its first beat
    although CTRL changes again before it runs) is taken into the other input buffer; with the
    host not reading outputs, a too-short and a too-long sample arrive while B waits in its
    output phase: both dropped and flagged, nothing of them reaches B or C; every output and
    the final parameters equal golden; no output lost or duplicated."""
    from hdl.csr import param_address
    cfg = xor(lanes=3, layers=(2, 5, 2), activations=("tanh", "sigmoid"))
    X, T = random_samples(cfg, 3, seed=11)
    got = {}

    async def script(session):
        host, g = session.host, session.golden
        exp_a = g.train_sample(X[0], T[0]).output
        exp_b = g.forward(X[1]).output
        exp_c = g.train_sample(X[2], T[2]).output
        await host.send_train(X[0], T[0])  # A: the sequencer starts on its last beat
        st = await host.status()
        assert st["busy"]
        # the bus refuses parameters while the sequencer runs
        assert await host.t.csr_read(param_address(0, 0)) == 0
        assert (await host.status())["bus_error"]
        await host.clear_errors()
        await host.set_mode(infer=True)
        await host.send_infer(X[1])  # B, into the other buffer while A trains
        await host.set_mode(infer=False)
        codes = [int(v) for v in X[2]] + [int(v) for v in T[2]]
        await host.t.send_beats(codes[:-1])  # too short (waits for A's buffer)
        await host.t.send_beats(codes + [0])  # too long
        assert await host.read("DROPPED") == 2
        assert (await host.status())["length_error"]
        await host.clear_errors()
        await host.send_train(X[2], T[2])  # C
        got["a"] = await host.recv_output()
        got["b"] = await host.recv_output()
        got["c"] = await host.recv_output()
        await host.wait_idle()
        assert await host.read("SAMPLES") == 3
        assert await host.read("UPDATES") == 2
        for k, e in (("a", exp_a), ("b", exp_b), ("c", exp_c)):
            session.check_output(k, got[k], e)

    r = run_amaranth_session(cfg, script, check_params="end")
    assert r.mismatches == 0, str(r.first)


def test_back_to_back_samples_cost_the_compute_schedule_only():
    """Beats sent while the previous sample trains: a sample after the first costs the
    schedule without its loading, as long as loading fits in the compute time."""
    from hdl.layout import PIPELINE_TAIL, expected_train_cycles
    # (layer 0 in three blocks of four words: the next sample starts without waiting for
    # the last update's writes, see start_ok in hdl/trainer.py)
    cfg = xor(lanes=2, layers=(4, 5, 1))
    from hdl.layout import UPDATE_LATENCY, Layout
    assert (Layout(cfg).blocks(0) - 1) * cfg.layers[0] >= UPDATE_LATENCY
    X, T = random_samples(cfg, 4, seed=2)
    box = {}

    async def script(session):
        host = session.host
        await host.wait_idle()
        c0 = await host.cycles()
        exps = [session.golden.train_sample(x, t).output for x, t in zip(X, T)]
        await host.send_train(X[0], T[0])
        for i in range(1, len(X)):
            await host.send_train(X[i], T[i])  # loads while sample i-1 trains
            session.check_output("output", await host.recv_output(), exps[i - 1])
        session.check_output("output", await host.recv_output(), exps[-1])
        await host.wait_idle()
        box["cycles"] = await host.cycles() - c0

    r = run_amaranth_session(cfg, script, check_params="end")
    assert r.mismatches == 0, str(r.first)
    load = cfg.layers[0] + cfg.layers[-1]  # the loading cycles the formula counts
    # each later sample's loading and the previous one's pipeline tail overlap its compute
    assert box["cycles"] == len(X) * expected_train_cycles(cfg) - (len(X) - 1) * (load + PIPELINE_TAIL)


def test_softmax_output_waits_for_room_in_the_output_fifo():
    """With the host not reading outputs, the next softmax vector waits until the output
    FIFO can take all of it (its probabilities are written without a ready check): no
    output lost, every output, result and parameter equal golden."""
    cfg = xor(layers=(2, 5, 3), activations=("tanh", "softmax"), loss="cross_entropy", lanes=2)
    X, T = random_samples(cfg, 3, seed=5)
    box = {"per_sample": 200}  # cycles of one sample of this network: about 100

    async def script(session):
        host = session.host
        exps = [session.golden.train_sample(x, t).output for x, t in zip(X, T)]
        await host.send_train(X[0], T[0])
        await host.send_train(X[1], T[1])  # loads while the first trains
        await host.t.ctx.tick().repeat(3 * box["per_sample"])  # both samples' time, and more
        box["samples_unread"] = await host.read("SAMPLES")
        for i in range(2):
            session.check_output("output", await _recv_within(host.t, cfg, 100), exps[i])
        await host.send_train(X[2], T[2])
        session.check_output("output", await host.recv_output(), exps[2])
        await host.wait_idle()
        box["samples"] = await host.read("SAMPLES")

    r = run_amaranth_session(cfg, script, check_params="end")
    assert r.mismatches == 0, str(r.first)
    # the second sample held its output vector back while the first one's filled the FIFO
    assert box["samples_unread"] == 1
    assert box["samples"] == 3


async def _recv_within(t, cfg, max_cycles):
    """One output vector from the AmaranthTransport ``t``, failing (not hanging) when a
    code does not come within ``max_cycles``."""
    ctx, s = t.ctx, t.dut.m_data
    codes = []
    ctx.set(s.ready, 1)
    for _ in range(cfg.layers[-1]):
        for _ in range(max_cycles):
            *_, payload, valid = await ctx.tick().sample(s.payload, s.valid)
            if valid:
                codes.append(int(payload.data))
                break
        else:
            raise AssertionError(f"output code {len(codes)} did not come within {max_cycles} cycles")
    ctx.set(s.ready, 0)
    w = cfg.act.width
    return np.array([c - (1 << w) if c >> (w - 1) else c for c in codes], dtype=np.int64)


@pytest.mark.parametrize("opt", ["momentum", "adam"])
def test_a_training_run_saved_and_restored_over_the_bus_continues_bit_exactly(opt):
    """The host saves parameters and optimizer state after 4 updates, trains 4 more, restores
    the save and trains the same 4 again: outputs, parameters and state equal golden's
    continuation from the save both times. Random state words (every bit of Adam's 40-bit v,
    both bus regions) written and read back first: the bus reaches every bit."""
    from golden.fixed_model import FixedMLP
    cfg = dict(optimizer_variants())[f"xor-{opt}"]
    X, T = random_samples(cfg, 8, seed=11)
    rng = np.random.default_rng(4)

    async def script(session):
        host, golden = session.host, session.golden
        fmts = {"s1": cfg.velocity if opt == "momentum" else cfg.adam_m, "s2": cfg.adam_v}
        noise = {name: [rng.integers(0 if name == "s2" else fmts[name].min_code, fmts[name].max_code + 1,
                                     size=p.shape) for p in golden.params] for name in ("s1", "s2")}
        noise.update(p1=int(rng.integers(1 << 31)), p2=int(rng.integers(1 << 31)))
        if opt == "momentum":
            noise["s2"] = [np.zeros_like(p) for p in golden.params]
            noise.update(p1=0, p2=0)
        await host.write_state(noise)
        got = await host.read_state()
        for name in ("s1", "s2"):
            assert all(np.array_equal(a, b) for a, b in zip(got[name], noise[name])), f"{name} round trip"
        assert (got["p1"], got["p2"]) == (noise["p1"], noise["p2"])
        assert max(int(a.max()) for a in noise["s2"]) >= (1 << 32) or opt == "momentum"
        await host.write_state(golden.opt.copy_state())  # back to the start
        for x, t in zip(X[:4], T[:4]):
            await session.train_sample(x, t)
        saved = (await host.read_params(), await host.read_state())
        for x, t in zip(X[4:], T[4:]):
            await session.train_sample(x, t)
        await host.write_params(saved[0])
        await host.write_state(saved[1])
        # golden restarts from the same save
        again = FixedMLP(cfg, saved[0])
        again.opt.s1, again.opt.s2 = [a.copy() for a in saved[1]["s1"]], [a.copy() for a in saved[1]["s2"]]
        again.opt.p1, again.opt.p2 = saved[1]["p1"], saved[1]["p2"]
        session.golden = again
        for x, t in zip(X[4:], T[4:]):
            await session.train_sample(x, t)
        assert all(np.array_equal(a, b) for a, b in zip(again.params, golden.params)), \
            "golden's continuation from the save differs from its first run"
        await session.finish()

    r = run_amaranth_session(cfg, script, check_params="every")
    assert r.mismatches == 0, str(r.first)
    assert r.updates == 12
