"""golden.config: the example configs load; every invalid field raises ConfigError naming
the field and the value."""
import copy
import math
import tomllib
from pathlib import Path

import pytest

from golden.config import Config, ConfigError, config_from_dict, config_to_dict, load_config
from golden.fixed import QFormat

EXAMPLES = sorted(Path("examples").glob("*.toml"))


def base():
    return tomllib.loads(Path("examples/xor.toml").read_text())


def with_(changes):
    """The xor example with ``{"section.key": value}`` changes (value DELETE removes the key)."""
    d = base()
    for dotted, v in changes.items():
        if "." not in dotted:
            d[dotted] = v
            continue
        sec, key = dotted.split(".", 1)
        d.setdefault(sec, {})[key] = v
    return d


SOFTMAX3 = {"network.layers": [2, 4, 3], "network.activations": ["tanh", "softmax"],
            "network.loss": "cross_entropy"}
Q = lambda i, f: {"int_bits": i, "frac_bits": f}  # noqa: E731

# (id, changes, field named in the error, text of the value in the message)
BAD = [
    ("unknown-section", {"bogus": {"x": 1}}, "bogus", "'(table)'"),
    ("section-not-table", {"network": 3}, "network", "3"),
    ("unknown-key", {"network.hidden": 4}, "network.hidden", "4"),
    ("unknown-key-lut", {"lut.size": 8}, "lut.size", "8"),
    ("layers-one", {"network.layers": [2], "network.activations": []}, "network.layers", "(2,)"),
    ("layers-zero", {"network.layers": [2, 0, 1]}, "network.layers", "(2, 0, 1)"),
    ("layers-float", {"network.layers": [2, 4.0, 1]}, "network.layers", "(2, 4.0, 1)"),
    ("layers-not-list", {"network.layers": "2,4,1"}, "network.layers", "'2,4,1'"),
    ("activations-count", {"network.activations": ["sigmoid"]}, "network.activations", "('sigmoid',)"),
    ("activations-not-list", {"network.activations": "sigmoid"}, "network.activations", "'sigmoid'"),
    ("activation-unknown", {"network.activations": ["gelu", "sigmoid"]}, "network.activations[0]", "'gelu'"),
    ("softmax-not-last", {**SOFTMAX3, "network.activations": ["softmax", "softmax"]},
     "network.activations[0]", "'softmax'"),
    ("loss-unknown", {"network.loss": "hinge"}, "network.loss", "'hinge'"),
    ("ce-without-softmax", {"network.loss": "cross_entropy"}, "network.activations[-1]", "'sigmoid'"),
    ("softmax-with-mse", {**SOFTMAX3, "network.loss": "mse"}, "network.loss", "'mse'"),
    ("softmax-one-output", {**SOFTMAX3, "network.layers": [2, 4, 1]}, "network.layers", "(2, 4, 1)"),
    ("leaky-alpha-zero", {"network.leaky_alpha": 0.0}, "network.leaky_alpha", "0.0"),
    ("leaky-alpha-one", {"network.leaky_alpha": 1}, "network.leaky_alpha", "1"),
    ("leaky-alpha-negative", {"network.leaky_alpha": -0.1}, "network.leaky_alpha", "-0.1"),
    ("leaky-alpha-nan", {"network.leaky_alpha": math.nan}, "network.leaky_alpha", "nan"),
    ("leaky-alpha-string", {"network.leaky_alpha": "small"}, "network.leaky_alpha", "'small'"),
    ("leaky-alpha-quantizes-to-0", {"network.activations": ["leaky_relu", "sigmoid"], "network.leaky_alpha": 1e-5},
     "network.leaky_alpha", "1e-05"),
    ("format-missing-frac", {"formats.act": {"int_bits": 4}}, "formats.act", "{'int_bits': 4}"),
    ("format-extra-key", {"formats.weight": {"int_bits": 4, "frac_bits": 12, "signed": True}}, "formats.weight",
     "'signed': True"),
    ("format-not-table", {"formats.error": 16}, "formats.error", "16"),
    ("format-int-bits-0", {"formats.weight": Q(0, 12)}, "formats.weight", "'int_bits': 0"),
    ("format-negative-frac", {"formats.error": Q(4, -1)}, "formats.error", "'frac_bits': -1"),
    ("format-float-bits", {"formats.act": Q(4, 12.5)}, "formats.act", "12.5"),
    ("format-bool-bits", {"formats.weight": Q(True, 12)}, "formats.weight", "'int_bits': True"),
    ("format-wider-than-48", {"formats.act": Q(30, 19)}, "formats.act", "'int_bits': 30"),
    ("format-wider-than-24", {"formats.act": Q(16, 12)}, "formats.act", "'Q16.12'"),
    ("format-width-1", {"formats.error": Q(1, 0)}, "formats.error", "'Q1.0'"),
    ("act-int-bits-1", {"formats.act": Q(1, 15)}, "formats.act.int_bits", "1"),
    ("lr-frac-negative", {"formats.lr_frac_bits": -1}, "formats.lr_frac_bits", "-1"),
    ("lr-frac-25", {"formats.lr_frac_bits": 25}, "formats.lr_frac_bits", "25"),
    ("lr-frac-float", {"formats.lr_frac_bits": 12.0}, "formats.lr_frac_bits", "12.0"),
    ("update-shift-over-32", {"formats.lr_frac_bits": 24, "training.learning_rate": 2.0 ** -12,
                              "formats.error": Q(4, 20), "formats.act": Q(4, 12)}, "formats.lr_frac_bits", "24"),
    ("update-shift-negative", {"formats.lr_frac_bits": 0, "formats.weight": Q(2, 22), "formats.act": Q(4, 4),
                               "formats.error": Q(4, 4), "lut.entries_log2": 4, "lut.range_log2": 2,
                               "lut.exp_entries_log2": 4, "lut.recip_frac_bits": 8}, "formats.lr_frac_bits", "0"),
    ("lr-zero", {"training.learning_rate": 0.0}, "training.learning_rate", "0.0"),
    ("lr-negative", {"training.learning_rate": -0.5}, "training.learning_rate", "-0.5"),
    ("lr-string", {"training.learning_rate": "fast"}, "training.learning_rate", "'fast'"),
    ("lr-bool", {"training.learning_rate": True}, "training.learning_rate", "True"),
    ("lr-inf", {"training.learning_rate": math.inf}, "training.learning_rate", "inf"),
    ("lr-nan", {"training.learning_rate": math.nan}, "training.learning_rate", "nan"),
    ("lr-quantizes-to-0", {"training.learning_rate": 1e-5}, "training.learning_rate", "1e-05"),
    ("lr-over-batch-quantizes-to-0", {"training.learning_rate": 0.0005, "training.batch_size": 8},
     "training.learning_rate", "0.0005"),
    ("lr-code-too-big", {"training.learning_rate": 100.0}, "training.learning_rate", "100.0"),
    ("batch-zero", {"training.batch_size": 0}, "training.batch_size", "0"),
    ("batch-huge", {"training.batch_size": 5000}, "training.batch_size", "5000"),
    ("batch-float", {"training.batch_size": 2.0}, "training.batch_size", "2.0"),
    ("epochs-zero", {"training.epochs": 0}, "training.epochs", "0"),
    ("epochs-string", {"training.epochs": "many"}, "training.epochs", "'many'"),
    ("rounding-unknown", {"training.rounding": "truncate"}, "training.rounding", "'truncate'"),
    ("rounding-case", {"training.rounding": "Stochastic"}, "training.rounding", "'Stochastic'"),
    ("sr-seed-negative", {"training.sr_seed": -1}, "training.sr_seed", "-1"),
    ("sr-seed-too-big", {"training.sr_seed": 2 ** 32}, "training.sr_seed", "4294967296"),
    ("init-seed-negative", {"training.init_seed": -3}, "training.init_seed", "-3"),
    ("entries-small", {"lut.entries_log2": 1}, "lut.entries_log2", "1"),
    ("entries-big", {"lut.entries_log2": 15}, "lut.entries_log2", "15"),
    ("exp-entries-zero", {"lut.exp_entries_log2": 0}, "lut.exp_entries_log2", "0"),
    ("recip-entries-big", {"lut.recip_entries_log2": 20}, "lut.recip_entries_log2", "20"),
    ("interpolate-string", {"lut.interpolate": "yes"}, "lut.interpolate", "'yes'"),
    ("interpolate-int", {"lut.interpolate": 1}, "lut.interpolate", "1"),
    ("range-beyond-format", {"lut.range_log2": 4}, "lut.range_log2", "4"),
    ("exp-range-negative", {"lut.exp_range_log2": -1}, "lut.exp_range_log2", "-1"),
    ("entries-finer-than-codes", {"lut.range_log2": 0, "lut.entries_log2": 14}, "lut.entries_log2", "14"),
    ("exp-entries-finer-than-codes", {"lut.exp_range_log2": 0, "lut.exp_entries_log2": 13},
     "lut.exp_entries_log2", "13"),
    ("recip-frac-below-act", {"lut.recip_frac_bits": 11}, "lut.recip_frac_bits", "11"),
    ("recip-frac-25", {"lut.recip_frac_bits": 25}, "lut.recip_frac_bits", "25"),
    ("dataset-empty", {"data.dataset": ""}, "data.dataset", "''"),
    ("dataset-number", {"data.dataset": 3}, "data.dataset", "3"),
    ("test-fraction-one", {"data.test_fraction": 1.0}, "data.test_fraction", "1.0"),
    ("test-fraction-negative", {"data.test_fraction": -0.1}, "data.test_fraction", "-0.1"),
    ("test-fraction-bool", {"data.test_fraction": False}, "data.test_fraction", "False"),
    ("split-seed-negative", {"data.split_seed": -1}, "data.split_seed", "-1"),
    ("lanes-zero", {"hardware.lanes": 0}, "hardware.lanes", "0"),
    ("lanes-65", {"hardware.lanes": 65}, "hardware.lanes", "65"),
    ("lanes-float", {"hardware.lanes": 4.0}, "hardware.lanes", "4.0"),
    ("parallelism-unknown", {"hardware.parallelism": "columns"}, "hardware.parallelism", "'columns'"),
    ("samples-batch-not-multiple", {"hardware.parallelism": "samples", "hardware.lanes": 4, "training.batch_size": 6},
     "training.batch_size", "6"),
    ("samples-lanes-129", {"hardware.parallelism": "samples", "hardware.lanes": 129, "training.batch_size": 129},
     "hardware.lanes", "129"),
    ("accumulator-over-62-bits", {"network.layers": [100000, 1], "network.activations": ["sigmoid"],
                                  "formats.act": Q(12, 12), "formats.weight": Q(12, 12), "formats.error": Q(12, 12)},
     "formats", "'Q12.12'"),
]


@pytest.mark.parametrize("changes, field, value_text", [pytest.param(*c[1:], id=c[0]) for c in BAD])
def test_invalid_field_raises_config_error_naming_field_and_value(changes, field, value_text):
    with pytest.raises(ConfigError) as info:
        config_from_dict(with_(changes))
    e = info.value
    msg = str(e)
    assert e.field == field, msg
    assert f"'{field}'" in msg, msg
    assert value_text in msg, msg
    assert e.allowed and e.allowed in msg


def test_samples_parallelism_allows_128_lanes_and_names_both_keys():
    c = config_from_dict(with_({"hardware.parallelism": "samples", "hardware.lanes": 128, "training.batch_size": 256}))
    assert c.update_lanes == 1 and c.lanes == 128
    assert config_from_dict(base()).update_lanes == config_from_dict(base()).lanes
    with pytest.raises(ConfigError, match="multiple of hardware.lanes = 4"):
        config_from_dict(with_({"hardware.parallelism": "samples", "hardware.lanes": 4, "training.batch_size": 6}))


def test_every_bad_case_is_good_without_its_change():
    Config()  # the defaults are valid
    config_from_dict(base())
    config_from_dict(with_(SOFTMAX3))
    config_from_dict(with_({"training.learning_rate": 0.0005}))  # fails only with batch_size 8


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_load_and_round_trip(path):
    cfg = load_config(path)
    assert isinstance(cfg, Config)
    assert cfg.dataset == path.stem.split("-")[0]  # digits-adam.toml trains digits
    assert config_from_dict(config_to_dict(cfg)) == cfg
    d = tomllib.loads(path.read_text())
    assert list(cfg.layers) == d["network"]["layers"]
    assert cfg.act == QFormat(**d["formats"]["act"])


def test_examples_are_the_three_documented_ones():
    assert {p.stem for p in EXAMPLES} >= {"xor", "iris", "digits"}


def test_load_config_file_errors(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "missing.toml")
    assert info.value.field == "file" and "missing.toml" in str(info.value)
    bad = tmp_path / "bad.toml"
    bad.write_text("[network\nlayers = [")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert info.value.field == "file" and "TOML" in str(info.value)


def test_config_error_is_a_value_error_and_with_revalidates():
    cfg = load_config("examples/xor.toml")
    with pytest.raises(ValueError):
        cfg.with_(lanes=0)
    assert cfg.with_(lanes=2).lanes == 2
    with pytest.raises(Exception):
        cfg.lanes = 2  # frozen


def test_derived_quantities():
    cfg = load_config("examples/digits.toml")  # act Q6.10, weight Q4.12, error Q2.14, lrf 16, lr 0.02
    assert cfg.n_layers == 2
    assert cfg.update_frac_bits == 16 + 14 + 10 and cfg.update_shift == 40 - 12
    # forward: 65 products of at most 2^15 * 2^15 = 2^30 each -> |acc| <= 65 * 2^30 < 2^37 -> 38 bits
    assert cfg.forward_acc_width() == 38
    # backward: 32 products of at most 2^15 * 2^15 -> 2^35 exactly: needs 37 bits (+2^35 is not in 36)
    assert cfg.backward_acc_width() == 37
    # gradient: lr_code 1311 * 2^15 * 2^15 * B=1 < 2^41 -> 42 bits
    assert cfg.lr_code == 1311 and cfg.grad_acc_width() == 42
    # the bias column counts as a full product: (3 inputs + 1) * 2^30 = 2^32 -> 34 bits
    c = Config(layers=(3, 1), activations=("sigmoid",))
    assert c.forward_acc_width() == 34
    # xor: backward over at most 4 rows: 4 * 2^30 = 2^32 -> 34; gradient: lr_code 8192 * 2^30 = 2^43 -> 45
    x = load_config("examples/xor.toml")
    assert x.backward_acc_width() == 34 and x.lr_code == 8192 and x.grad_acc_width() == 45
    assert x.with_(batch_size=4, learning_rate=8.0).grad_acc_width() == 45 + 2


def test_config_error_message_format():
    e = ConfigError("training.rounding", "x", "allowed: a, b")
    assert str(e) == "config field 'training.rounding' = 'x': allowed: a, b"


def test_unchanged_base_is_not_mutated():
    d = base()
    snapshot = copy.deepcopy(d)
    config_from_dict(d)
    assert d == snapshot
