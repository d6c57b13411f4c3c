"""Datasets that need no download, the seeded split, input scaling and sample order.

Features are scaled into [0, 1] with the per-feature minimum and maximum of the training
split (test features are clipped to the same range), then quantized to the act format.
Targets: one-hot rows (act-format 1.0 / 0.0) for classification; the values themselves
for regression (``.npz`` with a float ``y``, MSE only).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import Config

__all__ = ["Dataset", "DatasetError", "load_dataset", "epoch_order", "BUILTIN"]

BUILTIN = ("xor", "iris", "digits")


class DatasetError(ValueError):
    pass


@dataclass
class Dataset:
    name: str
    X_train: np.ndarray  # floats in [0, 1]
    y_train: np.ndarray  # int labels, or float targets (N, n_out) for regression
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int | None  # None for regression

    def targets(self, y, n_out: int) -> np.ndarray:
        """Float target rows for the network's ``n_out`` outputs."""
        if self.n_classes is None:
            return np.asarray(y, dtype=np.float64).reshape(len(y), n_out)
        if n_out == 1:  # binary classification with one output: target is the label itself
            return np.asarray(y, dtype=np.float64).reshape(-1, 1)
        return np.eye(n_out)[np.asarray(y)]

    def accuracy(self, outputs, y) -> float:
        """Fraction classified right: argmax for several outputs, threshold 0.5 for one."""
        outputs = np.atleast_2d(outputs)
        if self.n_classes is None:
            return float("nan")
        pred = (outputs[:, 0] > 0.5).astype(int) if outputs.shape[1] == 1 else outputs.argmax(axis=1)
        return float(np.mean(pred == np.asarray(y)))


def _xor():
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    y = np.array([0, 1, 1, 0])
    return X, y


def _sklearn(name):
    from sklearn import datasets as skd  # bundled files, no download
    d = skd.load_iris() if name == "iris" else skd.load_digits()
    return d.data.astype(np.float64), d.target.astype(int)


def _npz(path: Path):
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DatasetError(f"dataset file {str(path)!r} is a single .npy array, not an .npz archive "
                               f"with arrays 'X' and 'y'")
        with loaded as f:
            if "X" not in f or "y" not in f:
                raise DatasetError(f"dataset file {str(path)!r} must hold arrays 'X' and 'y' (found: {', '.join(f.files)})")
            X, y = np.asarray(f["X"]), np.asarray(f["y"])
    except (OSError, ValueError) as e:
        if isinstance(e, DatasetError):
            raise
        raise DatasetError(f"dataset file {str(path)!r} cannot be read as .npz: {e}") from None
    if X.ndim != 2 or len(X) != len(y) or len(X) == 0:
        raise DatasetError(f"dataset {str(path)!r}: X must be (samples, features) and y must have one row per "
                           f"sample; got X{X.shape}, y{y.shape}")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise DatasetError(f"dataset {str(path)!r}: X must hold numbers, found dtype {X.dtype}")
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise DatasetError(f"dataset {str(path)!r}: y must hold class labels or numbers, found dtype {y.dtype}")
    if not np.all(np.isfinite(X.astype(np.float64))):
        raise DatasetError(f"dataset {str(path)!r}: X contains NaN or infinite values")
    return X.astype(np.float64), y


def _split(n, test_fraction, seed):
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_fraction))
    return perm[n_test:], perm[:n_test]


def load_dataset(cfg: Config, name: str | None = None) -> Dataset:
    """Load ``name`` (default: ``cfg.dataset``), split it and scale it; check it fits the network."""
    name = name or cfg.dataset
    n_in, n_out = cfg.layers[0], cfg.layers[-1]
    if name == "xor":
        X, y = _xor()
        tr = te = np.arange(4)  # four points: train and test on all of them
    elif name in ("iris", "digits"):
        X, y = _sklearn(name)
        tr, te = _split(len(X), cfg.test_fraction, cfg.split_seed)
    elif name.endswith(".npz"):
        path = Path(name)
        if not path.exists():
            raise DatasetError(f"dataset file {name!r} does not exist")
        X, y = _npz(path)
        tr, te = _split(len(X), cfg.test_fraction, cfg.split_seed)
    else:
        raise DatasetError(f"unknown dataset {name!r}; allowed: {', '.join(BUILTIN)} or a path to an .npz file")

    if X.shape[1] != n_in:
        raise DatasetError(f"dataset {name!r} has {X.shape[1]} features but network.layers[0] = {n_in}")
    if np.issubdtype(y.dtype, np.integer) and y.ndim == 1:
        n_classes = int(y.max()) + 1
        if y.min() < 0:
            raise DatasetError(f"dataset {name!r}: class labels must be >= 0, found {int(y.min())}")
        if n_out == 1 and (n_classes > 2 or cfg.loss != "mse"):
            raise DatasetError(f"dataset {name!r} has {n_classes} classes; one output (network.layers[-1] = 1) "
                               f"works only for two classes with loss = 'mse'")
        if n_out > 1 and n_classes > n_out:
            raise DatasetError(f"dataset {name!r} has {n_classes} classes but network.layers[-1] = {n_out}")
    else:
        n_classes = None
        y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        if y.shape[1] != n_out or cfg.loss != "mse":
            raise DatasetError(f"dataset {name!r}: regression targets need loss = 'mse' and "
                               f"{y.shape[1]} outputs (network.layers[-1] = {n_out})")
        lo, hi = cfg.act.to_float(cfg.act.min_code), cfg.act.to_float(cfg.act.max_code)
        if y.min() < lo or y.max() > hi:
            raise DatasetError(f"dataset {name!r}: targets must lie in the act format range [{lo}, {hi}]")

    lo = X[tr].min(axis=0)
    span = X[tr].max(axis=0) - lo
    span[span == 0] = 1.0  # constant feature: maps to 0
    scale = lambda A: np.clip((A - lo) / span, 0.0, 1.0)
    return Dataset(name=Path(name).stem if name.endswith(".npz") else name,
                   X_train=scale(X[tr]), y_train=y[tr], X_test=scale(X[te]), y_test=y[te], n_classes=n_classes)


def epoch_order(n: int, epoch: int, seed: int) -> np.ndarray:
    """Order of the training samples in epoch ``epoch`` (seeded shuffle, same for all models)."""
    return np.random.default_rng([seed, epoch]).permutation(n)
