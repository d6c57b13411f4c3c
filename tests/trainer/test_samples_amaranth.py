"""The samples schedule (hardware.parallelism = "samples") under Amaranth's simulator:
every output and every parameter (and optimizer state word) after every update equal the
golden model's, including partial groups (FLUSH) and groups cut short by a mode change."""
import numpy as np
import pytest

from hdl.trainer import SampleTrainer, build_trainer
from sim.runners.amaranth_run import run_amaranth_session

from .configs import sample_variants, xor
from .test_trainer_amaranth import random_samples


@pytest.mark.parametrize("name,cfg", sample_variants(), ids=[v[0] for v in sample_variants()])
def test_samples_schedule_matches_golden_bit_for_bit(name, cfg):
    n = 2 * cfg.batch_size + 3 * (cfg.batch_size > 1)  # two whole batches, then part of one
    X, T = random_samples(cfg, n, seed=11)
    init = {}

    async def script(session):
        init["params"] = [p.copy() for p in session.golden.params]
        for x, t in zip(X, T):
            await session.train_sample(x, t)
        await session.flush()  # the partial group trains now (no update: its batch is not complete)
        await session.host.set_mode(infer=True)
        await session.infer_many([(x, None) for x in X[:cfg.lanes + 1]])  # a whole group and one more
        init["final"] = [p.copy() for p in session.golden.params]
        await session.host.set_mode(infer=False)

    r = run_amaranth_session(cfg, script, check_params="every")
    assert r.mismatches == 0, str(r.first)
    assert r.samples == n and r.updates == n // cfg.batch_size
    # not vacuous: training moved the parameters the hardware was compared against
    assert any(np.any(a != b) for a, b in zip(init["params"], init["final"]))


def test_a_mode_change_closes_a_group():
    """Two training samples, then an inference without a FLUSH: the loader closes the
    training group when the mode changes (a group is all training or all inference)."""
    cfg = xor(lanes=4, batch_size=4, parallelism="samples")
    X, T = random_samples(cfg, 3, seed=2)

    async def script(session):
        for x, t in zip(X[:2], T[:2]):
            await session.host.send_train(x, t)
        await session.host.set_mode(infer=True)
        await session.host.send_infer(X[2])
        await session.host.flush_group(infer=True)
        g = session.golden
        for x, t in zip(X[:2], T[:2]):
            want = g.train_sample(x, t).output
            assert list(await session.host.recv_output()) == list(want)
        assert list(await session.host.recv_output()) == list(g.forward(X[2]).output)
        session.result.samples += 2
        await session.host.set_mode(infer=False)

    r = run_amaranth_session(cfg, script, check_params="every")
    assert r.mismatches == 0, str(r.first)


def test_build_trainer_follows_the_parallelism():
    assert isinstance(build_trainer(xor(lanes=2, batch_size=2, parallelism="samples")), SampleTrainer)
    assert not isinstance(build_trainer(xor()), SampleTrainer)


CYCLE_VARIANTS = [v for v in sample_variants() if v[0] in ("xor-lanes4-batch4", "xor-lanes2-batch4", "1lane",
                                                             "3layer-b8-4lanes-sr", "tanh-relu-leaky-linear",
                                                             "softmax-ce", "relu-softmax-3lanes")]


@pytest.mark.parametrize("name,cfg", CYCLE_VARIANTS, ids=[v[0] for v in CYCLE_VARIANTS])
def test_group_cycles_match_the_formula(name, cfg):
    """The counter over one training group sent to an idle trainer equals
    expected_group_cycles (docs/trainer.md), for a whole group and a flushed partial one
    (the Amaranth transport's FLUSH write is decoded the cycle after the last beat)."""
    from hdl.trainer.samples.schedule import expected_group_cycles
    X, T = random_samples(cfg, 2 * cfg.lanes, seed=4)
    got = {}

    async def script(session):
        host = session.host
        for count in sorted({cfg.lanes, max(1, cfg.lanes - 1)}, reverse=True):
            await host.wait_idle()
            before = await host.cycles()
            for x, t in zip(X[:count], T[:count]):
                await session.train_sample(x, t)
            await session.flush()
            await host.wait_idle()
            got[count] = await host.cycles() - before

    r = run_amaranth_session(cfg, script, check_params="signature")
    assert r.mismatches == 0, str(r.first)
    assert got == {n: expected_group_cycles(cfg, n, flush_after=1) for n in got}


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_signatures_read_between_updates_are_the_last_updates(optimizer):
    """The host reads an update's signatures when the next group's first output arrives;
    by then the next update has been issued (a short network) but not written: the
    registers must still hold the last update's signatures, not a cleared 0 (a group whose
    update has 43 cycles of latency with Adam read 0 before the clear waited for the first
    written word)."""
    cfg = xor(layers=(2, 5, 4, 1), activations=("sigmoid",) * 3, lanes=2, batch_size=2, optimizer=optimizer,
              learning_rate=0.1, parallelism="samples")
    X, T = random_samples(cfg, 8, seed=3)

    async def script(session):
        for x, t in zip(X, T):
            await session.train_sample(x, t)
        await session.flush()

    r = run_amaranth_session(cfg, script, check_params="signature")
    assert r.mismatches == 0, str(r.first)
    assert r.updates == 4
