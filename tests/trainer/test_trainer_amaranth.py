"""The trainer under Amaranth's simulator: every output and every parameter after every
update equal the golden fixed-point model, for configs that stress the sequencer."""
import numpy as np
import pytest

from golden.config import Config
from hdl.layout import HardwareLimitError, check_limits
from hdl.trainer import Trainer
from sim.amaranth_run import run_amaranth_session

from .configs import variants, xor


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


@pytest.mark.parametrize("name,cfg", [v for v in variants() if v[1].activations[-1] != "softmax"],
                         ids=[v[0] for v in variants() if v[1].activations[-1] != "softmax"])
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
