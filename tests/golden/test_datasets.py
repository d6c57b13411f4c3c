"""golden.datasets: built-in datasets, scaling into [0, 1], the seeded split, .npz errors."""
import numpy as np
import pytest

from golden.config import load_config
from golden.datasets import DatasetError, _split, epoch_order, load_dataset
from golden.train import quantize_dataset


def cfg_for(name, **kw):
    cfg = load_config(f"examples/{name}.toml")
    return cfg.with_(**kw) if kw else cfg


@pytest.mark.parametrize("name, n, n_feat, n_classes, test_fraction", [
    ("iris", 150, 4, 3, 0.3), ("digits", 1797, 64, 10, 0.25)])
def test_builtin_shapes_split_and_scaling(name, n, n_feat, n_classes, test_fraction):
    cfg = cfg_for(name)
    ds = load_dataset(cfg)
    n_test = round(n * test_fraction)
    assert ds.X_train.shape == (n - n_test, n_feat) and ds.X_test.shape == (n_test, n_feat)
    assert ds.y_train.shape == (n - n_test,) and ds.y_test.shape == (n_test,)
    assert ds.n_classes == n_classes
    assert set(np.unique(np.concatenate([ds.y_train, ds.y_test]))) == set(range(n_classes))
    # scaled with the training split's min / max: train spans [0, 1] per non-constant feature
    for X in (ds.X_train, ds.X_test):
        assert X.min() >= 0.0 and X.max() <= 1.0
    const = ds.X_train.max(axis=0) == ds.X_train.min(axis=0)
    np.testing.assert_array_equal(ds.X_train.min(axis=0), 0.0)
    np.testing.assert_array_equal(ds.X_train.max(axis=0)[~const], 1.0)
    np.testing.assert_array_equal(ds.X_train[:, const], 0.0)
    # deterministic for one seed, different for another
    again = load_dataset(cfg)
    np.testing.assert_array_equal(ds.X_train, again.X_train)
    np.testing.assert_array_equal(ds.y_test, again.y_test)
    other = load_dataset(cfg.with_(split_seed=1))
    assert not np.array_equal(ds.y_test, other.y_test) or not np.array_equal(ds.X_test, other.X_test)


def test_split_is_a_seeded_partition():
    tr, te = _split(150, 0.3, 0)
    assert len(te) == 45 and len(tr) == 105
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, te])), np.arange(150))
    perm = np.random.default_rng(0).permutation(150)
    np.testing.assert_array_equal(te, perm[:45])
    np.testing.assert_array_equal(tr, perm[45:])
    assert len(_split(10, 0.0, 3)[1]) == 0


def test_iris_split_matches_raw_data():
    """The scaled split is an affine image of the raw rows the seeded permutation picks."""
    from sklearn.datasets import load_iris
    raw = load_iris()
    cfg = cfg_for("iris")
    ds = load_dataset(cfg)
    tr, te = _split(150, cfg.test_fraction, cfg.split_seed)
    lo = raw.data[tr].min(axis=0)
    span = raw.data[tr].max(axis=0) - lo
    np.testing.assert_allclose(ds.X_train, (raw.data[tr] - lo) / span, atol=1e-15)
    np.testing.assert_allclose(ds.X_test, np.clip((raw.data[te] - lo) / span, 0, 1), atol=1e-15)
    np.testing.assert_array_equal(ds.y_train, raw.target[tr])
    np.testing.assert_array_equal(ds.y_test, raw.target[te])


def test_xor():
    ds = load_dataset(cfg_for("xor"))
    np.testing.assert_array_equal(ds.X_train, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(ds.X_test, ds.X_train)
    np.testing.assert_array_equal(ds.y_train, [0, 1, 1, 0])
    assert ds.n_classes == 2
    np.testing.assert_array_equal(ds.targets(ds.y_train, 1), [[0], [1], [1], [0]])


def test_quantized_inputs_and_one_hot_targets():
    cfg = cfg_for("iris")
    ds = load_dataset(cfg)
    q = quantize_dataset(cfg, ds)
    np.testing.assert_array_equal(q.X_train, np.clip(np.rint(ds.X_train * 4096), -32768, 32767))
    assert q.X_train.min() >= 0 and q.X_train.max() == 4096
    np.testing.assert_array_equal(q.T_train.sum(axis=1), 4096)
    np.testing.assert_array_equal(q.T_train.argmax(axis=1), ds.y_train)


def test_epoch_order_is_seeded_per_epoch():
    a, b = epoch_order(100, 0, 0), epoch_order(100, 1, 0)
    np.testing.assert_array_equal(np.sort(a), np.arange(100))
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, epoch_order(100, 0, 0))
    np.testing.assert_array_equal(a, np.random.default_rng([0, 0]).permutation(100))
    assert not np.array_equal(a, epoch_order(100, 0, 1))


def test_accuracy_rules():
    ds = load_dataset(cfg_for("xor"))
    assert ds.accuracy(np.array([[0.4], [0.6], [0.51], [0.5]]), np.array([0, 1, 1, 0])) == 1.0
    assert ds.accuracy(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1])) == 0.5


# ---- .npz files ----------------------------------------------------------------------------

def npz(tmp_path, name="d.npz", **arrays):
    p = tmp_path / name
    np.savez(p, **arrays)
    return str(p)


def test_npz_classification_and_regression(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(5, 3, (40, 2))
    path = npz(tmp_path, X=X, y=(X[:, 0] > 5).astype(int))
    ds = load_dataset(cfg_for("xor", dataset=path))
    assert ds.name == "d" and ds.n_classes == 2
    assert ds.X_train.shape == (30, 2) and ds.X_test.shape == (10, 2)
    path = npz(tmp_path, "r.npz", X=X, y=rng.uniform(0, 1, (40, 1)))
    ds = load_dataset(cfg_for("xor", dataset=path, test_fraction=0.5))
    assert ds.n_classes is None and ds.y_train.shape == (20, 1)


def bad_npz_cases(tmp_path):
    X = np.zeros((6, 2))
    y = np.array([0, 1, 0, 1, 0, 1])
    (tmp_path / "garbage.npz").write_text("not a zip file")
    np.save(tmp_path / "single.npy", X)
    (tmp_path / "single.npy").rename(tmp_path / "single.npz")
    return [
        ("missing-y", npz(tmp_path, "a.npz", X=X), "must hold arrays 'X' and 'y'"),
        ("missing-X", npz(tmp_path, "b.npz", data=X, y=y), "found: data, y"),
        ("wrong-feature-count", npz(tmp_path, "c.npz", X=np.zeros((6, 3)), y=y), "3 features"),
        ("X-1d", npz(tmp_path, "d.npz", X=np.zeros(6), y=y), "X must be (samples, features)"),
        ("length-mismatch", npz(tmp_path, "e.npz", X=X, y=y[:5]), "one row per sample"),
        ("empty", npz(tmp_path, "f.npz", X=np.zeros((0, 2)), y=np.zeros(0, dtype=int)), "X must be"),
        ("nan", npz(tmp_path, "g.npz", X=np.full((6, 2), np.nan), y=y), "NaN"),
        ("strings", npz(tmp_path, "h.npz", X=np.full((6, 2), "a"), y=y), "X must hold numbers"),
        ("string-labels", npz(tmp_path, "i.npz", X=X, y=np.array(list("abcdef"))), "y must hold"),
        ("negative-label", npz(tmp_path, "j.npz", X=X, y=-y), "labels must be >= 0"),
        ("three-classes-one-output", npz(tmp_path, "k.npz", X=X, y=np.arange(6) % 3), "3 classes"),
        ("regression-wrong-width", npz(tmp_path, "l.npz", X=X, y=np.zeros((6, 2))), "regression targets"),
        ("regression-out-of-range", npz(tmp_path, "m.npz", X=X, y=np.full(6, 100.0)), "act format range"),
        ("not-a-zip", str(tmp_path / "garbage.npz"), "cannot be read"),
        ("npy-inside", str(tmp_path / "single.npz"), "single .npy array"),
        ("no-such-file", str(tmp_path / "nope.npz"), "does not exist"),
        ("unknown-name", "mnist", "unknown dataset 'mnist'"),
    ]


def test_bad_npz_raises_dataset_error_with_clear_message(tmp_path):
    for case, path, text in bad_npz_cases(tmp_path):
        with pytest.raises(DatasetError) as info:
            load_dataset(cfg_for("xor", dataset=path))
        assert text in str(info.value), (case, str(info.value))


def test_builtin_must_fit_network():
    with pytest.raises(DatasetError, match="4 features but network.layers\\[0\\] = 2"):
        load_dataset(cfg_for("xor", dataset="iris"))
    with pytest.raises(DatasetError, match="10 classes but network.layers\\[-1\\] = 3"):
        load_dataset(cfg_for("iris", layers=(64, 8, 3), dataset="digits"))
