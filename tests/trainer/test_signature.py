"""The vectorised parameter signature equals its word-by-word definition, and it sees
every single-parameter change."""
import numpy as np

from golden.fixed_model import init_params
from golden.signature import params_signature, params_signature_reference

from .configs import variants


def test_vectorised_signature_equals_definition():
    for _, cfg in variants():
        params = init_params(cfg)
        assert params_signature(cfg, params) == params_signature_reference(cfg, params)


def test_any_single_parameter_change_changes_the_signature():
    rng = np.random.default_rng(0)
    for _, cfg in variants():
        params = init_params(cfg)
        base = params_signature(cfg, params)
        for _ in range(20):
            l = int(rng.integers(cfg.n_layers))
            j, k = (int(rng.integers(n)) for n in params[l].shape)
            changed = [p.copy() for p in params]
            changed[l][j, k] += int(rng.choice([-1, 1, 77]))
            assert params_signature(cfg, changed) != base
