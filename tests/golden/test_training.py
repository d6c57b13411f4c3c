"""Training acceptance with the example configs (16-bit formats), and the run's sample
bookkeeping (shared order, mini-batches across epoch boundaries)."""
import numpy as np
import pytest

from golden.config import load_config
from golden.datasets import epoch_order, load_dataset
from golden.fixed_model import FixedMLP, init_params
from golden.train import GoldenRun, train_golden


def run_example(name):
    cfg = load_config(f"examples/{name}.toml")
    assert cfg.act.width == cfg.weight.width == cfg.error.width == 16
    return train_golden(cfg, load_dataset(cfg))


def test_xor_fixed_model_classifies_all_four():
    run = run_example("xor")
    out = run.fixed_outputs(run.q.X_test)[:, 0]
    np.testing.assert_array_equal(out > 0.5, [False, True, True, False])
    last = run.history[-1]
    assert last.fixed_test_accuracy == 1.0 and last.float_test_accuracy == 1.0
    assert last.fixed_loss < 0.01  # MSE, reported in float from the output codes


def test_iris_fixed_tracks_float():
    last = run_example("iris").history[-1]
    assert abs(last.fixed_test_accuracy - last.float_test_accuracy) <= 0.02
    assert last.float_test_accuracy >= 0.9


def test_digits_fixed_tracks_float_and_float_learns():
    run = run_example("digits")
    last = run.history[-1]
    assert len(run.history) == 15
    assert last.float_test_accuracy >= 0.95
    assert abs(last.fixed_test_accuracy - last.float_test_accuracy) <= 0.02
    assert run.history[0].fixed_loss > last.fixed_loss


def test_batches_run_across_epoch_boundaries():
    """B = 3 on XOR's 4 samples: the batch counter is never reset, so feeding the
    concatenated epoch orders to one FixedMLP gives the same parameters."""
    cfg = load_config("examples/xor.toml").with_(batch_size=3, rounding="stochastic", lanes=3)
    ds = load_dataset(cfg)
    run = GoldenRun.start(cfg, ds)
    ref = FixedMLP(cfg, init_params(cfg))
    fed = 0
    for e in range(5):
        run.train_epoch(e)
        for i in epoch_order(4, e, cfg.split_seed):
            ref.train_sample(run.q.X_train[i], run.q.T_train[i])
            fed += 1
        assert run.fixed.batch_count == fed % 3 == ref.batch_count
        assert len(run._pending) == fed % 3  # the float model keeps the same partial batch
        for a, b in zip(run.fixed.params, ref.params):
            np.testing.assert_array_equal(a, b)


def test_float_and_fixed_start_from_the_same_parameters():
    cfg = load_config("examples/iris.toml")
    run = GoldenRun.start(cfg, load_dataset(cfg))
    for f, q in zip(run.flt.params, run.fixed.params):
        np.testing.assert_array_equal(f, cfg.weight.to_float(q))


def test_golden_run_is_deterministic():
    cfg = load_config("examples/xor.toml").with_(rounding="stochastic")
    a = train_golden(cfg, load_dataset(cfg), epochs=20)
    b = train_golden(cfg, load_dataset(cfg), epochs=20)
    for x, y in zip(a.fixed.params, b.fixed.params):
        np.testing.assert_array_equal(x, y)
    assert a.history == b.history


@pytest.mark.slow
def test_iris_with_stochastic_rounding_and_batches():
    cfg = load_config("examples/iris.toml").with_(rounding="stochastic", batch_size=4, learning_rate=0.2)
    last = train_golden(cfg, load_dataset(cfg)).history[-1]
    assert abs(last.fixed_test_accuracy - last.float_test_accuracy) <= 0.05


def test_iris_momentum_fixed_matches_float():
    """examples/iris-momentum.toml: momentum 0.9, batch 4; 45 test samples, so within one
    percentage point means the same count."""
    run = run_example("iris-momentum")
    assert run.cfg.optimizer == "momentum" and run.cfg.batch_size == 4
    last = run.history[-1]
    assert abs(last.fixed_test_accuracy - last.float_test_accuracy) <= 0.01
    assert last.float_test_accuracy >= 0.95


@pytest.mark.slow
def test_digits_adam_fixed_tracks_float_and_float_learns():
    run = run_example("digits-adam")
    assert run.cfg.optimizer == "adam" and run.cfg.batch_size == 16 and len(run.history) <= 15
    last = run.history[-1]
    assert last.float_test_accuracy >= 0.95
    assert abs(last.fixed_test_accuracy - last.float_test_accuracy) <= 0.01


def test_iris_adam_fixed_matches_float():
    """examples/iris-adam.toml: Adam at 0.005, batch 4; 45 test samples, so within one
    percentage point means the same count."""
    run = run_example("iris-adam")
    assert run.cfg.optimizer == "adam" and run.cfg.batch_size == 4
    last = run.history[-1]
    assert abs(last.fixed_test_accuracy - last.float_test_accuracy) <= 0.01
    assert last.float_test_accuracy >= 0.95


@pytest.mark.slow
def test_digits_momentum_fixed_tracks_float_and_float_learns():
    run = run_example("digits-momentum")
    assert run.cfg.optimizer == "momentum" and run.cfg.batch_size == 16 and len(run.history) <= 15
    last = run.history[-1]
    assert last.float_test_accuracy >= 0.95
    assert abs(last.fixed_test_accuracy - last.float_test_accuracy) <= 0.01
