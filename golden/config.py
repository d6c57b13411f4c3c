"""The one configuration object: network, number formats, training and hardware.

Loaded from TOML (see ``examples/*.toml``). The golden models and the hardware
generator both take a :class:`Config`; nothing is configured twice. Every invalid
value raises :class:`ConfigError` naming the field, the value and what is allowed.
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from .fixed import QFormat, bits_for_signed

__all__ = ["Config", "ConfigError", "load_config", "ACTIVATIONS", "LOSSES", "ROUNDING_MODES"]

ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh", "linear", "softmax")
LOSSES = ("mse", "cross_entropy")
ROUNDING_MODES = ("nearest_even", "stochastic")


class ConfigError(ValueError):
    """An invalid configuration: names the field, the value and what is allowed."""

    def __init__(self, field_name: str, value, allowed: str):
        self.field = field_name
        self.value = value
        self.allowed = allowed
        super().__init__(f"config field '{field_name}' = {value!r}: {allowed}")


@dataclass(frozen=True)
class Config:
    # network
    layers: tuple = (2, 4, 1)
    activations: tuple = ("sigmoid", "sigmoid")
    loss: str = "mse"
    leaky_alpha: float = 0.125
    # formats
    act: QFormat = QFormat(4, 12)
    weight: QFormat = QFormat(4, 12)
    error: QFormat = QFormat(4, 12)
    lr_frac_bits: int = 14
    # training
    learning_rate: float = 1.0
    batch_size: int = 1
    epochs: int = 1000
    rounding: str = "nearest_even"
    sr_seed: int = 1
    init_seed: int = 0
    # lookup tables
    lut_entries_log2: int = 8
    lut_range_log2: int = 3
    lut_interpolate: bool = False
    exp_entries_log2: int = 8
    exp_range_log2: int = 3
    recip_entries_log2: int = 8
    recip_frac_bits: int = 15
    # data
    dataset: str = "xor"
    test_fraction: float = 0.25
    split_seed: int = 0
    # hardware
    lanes: int = 8

    def __post_init__(self):
        _validate(self)

    # ---- derived quantities (documented in docs/arithmetic.md) -------------------
    @property
    def n_layers(self) -> int:
        """Number of weight layers."""
        return len(self.layers) - 1

    @property
    def lr_code(self) -> int:
        """Learning rate per sample of a batch: ``round(lr / B * 2**lr_frac_bits)``."""
        return int(round(self.learning_rate / self.batch_size * (1 << self.lr_frac_bits)))

    @property
    def leaky_alpha_code(self) -> int:
        return int(self.act.to_code(self.leaky_alpha))

    @property
    def update_frac_bits(self) -> int:
        """Fraction bits of an exact update term ``lr * delta * a``."""
        return self.lr_frac_bits + self.error.frac_bits + self.act.frac_bits

    @property
    def update_shift(self) -> int:
        """Right shift taking an update term to the weight format."""
        return self.update_frac_bits - self.weight.frac_bits

    def forward_acc_width(self) -> int:
        """Width of the forward accumulator: (n_in + 1) products W*a cannot overflow it."""
        n = max(self.layers[:-1]) + 1
        m = (-self.weight.min_code) * (-self.act.min_code)
        return bits_for_signed(-n * m, n * m)

    def backward_acc_width(self) -> int:
        """Width of the backward accumulator: n_out products W*delta."""
        n = max(self.layers[1:])
        m = (-self.weight.min_code) * (-self.error.min_code)
        return bits_for_signed(-n * m, n * m)

    def grad_acc_width(self) -> int:
        """Width of the mini-batch gradient accumulator: B terms lr*delta*a."""
        m = self.lr_code * (-self.error.min_code) * (-self.act.min_code) * self.batch_size
        return bits_for_signed(-m, m)

    def with_(self, **changes) -> "Config":
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


def _check(cond, name, value, allowed):
    if not cond:
        raise ConfigError(name, value, allowed)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v):
    """A finite int or float (not a bool)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _validate(c: Config):
    _check(isinstance(c.layers, tuple) and len(c.layers) >= 2 and all(_is_int(n) and n >= 1 for n in c.layers),
           "network.layers", c.layers, "a list of at least two positive integers (inputs, ..., outputs)")
    _check(isinstance(c.activations, tuple) and len(c.activations) == len(c.layers) - 1,
           "network.activations", c.activations,
           f"one activation per non-input layer ({len(c.layers) - 1} expected)")
    for i, a in enumerate(c.activations):
        _check(a in ACTIVATIONS, f"network.activations[{i}]", a, f"allowed: {', '.join(ACTIVATIONS)}")
        _check(a != "softmax" or i == len(c.activations) - 1, f"network.activations[{i}]", a,
               "softmax is allowed only on the last layer")
    _check(c.loss in LOSSES, "network.loss", c.loss, f"allowed: {', '.join(LOSSES)}")
    if c.activations[-1] == "softmax":
        _check(c.loss == "cross_entropy", "network.loss", c.loss, "softmax output requires loss = 'cross_entropy'")
        _check(c.layers[-1] >= 2, "network.layers", c.layers, "softmax needs at least 2 outputs")
    if c.loss == "cross_entropy":
        _check(c.activations[-1] == "softmax", "network.activations[-1]", c.activations[-1],
               "loss = 'cross_entropy' requires a softmax last layer")
    _check(_is_num(c.leaky_alpha) and 0 < c.leaky_alpha < 1, "network.leaky_alpha",
           c.leaky_alpha, "a number in (0, 1)")
    for name in ("act", "weight", "error"):
        fmt = getattr(c, name)
        _check(isinstance(fmt, QFormat), f"formats.{name}", fmt, "a format {int_bits, frac_bits}")
        _check(2 <= fmt.width <= 24, f"formats.{name}", str(fmt), "total width int_bits + frac_bits in [2, 24]")
    _check(c.act.int_bits >= 2, "formats.act.int_bits", c.act.int_bits,
           ">= 2 (sign plus one integer bit), so that 1.0 is representable")
    if "leaky_relu" in c.activations:
        _check(c.leaky_alpha_code >= 1, "network.leaky_alpha", c.leaky_alpha,
               f"must quantize to a non-zero code in {c.act}")
    _check(_is_int(c.lr_frac_bits) and 0 <= c.lr_frac_bits <= 24, "formats.lr_frac_bits", c.lr_frac_bits,
           "an integer in [0, 24]")
    _check(_is_int(c.batch_size) and 1 <= c.batch_size <= 4096, "training.batch_size", c.batch_size,
           "an integer in [1, 4096]")
    _check(_is_num(c.learning_rate) and c.learning_rate > 0, "training.learning_rate",
           c.learning_rate, "a positive finite number")
    _check(1 <= c.lr_code <= 0xFFFF, "training.learning_rate", c.learning_rate,
           f"learning_rate / batch_size * 2**lr_frac_bits must round to an integer in [1, 65535] "
           f"(it gives {c.lr_code}); change learning_rate or formats.lr_frac_bits")
    _check(0 <= c.update_shift <= 32, "formats.lr_frac_bits", c.lr_frac_bits,
           f"lr_frac_bits + error.frac_bits + act.frac_bits - weight.frac_bits must be in [0, 32] "
           f"(it is {c.update_shift}): the stochastic-rounding LFSR supplies at most 32 bits")
    _check(_is_int(c.epochs) and c.epochs >= 1, "training.epochs", c.epochs, "an integer >= 1")
    _check(c.rounding in ROUNDING_MODES, "training.rounding", c.rounding, f"allowed: {', '.join(ROUNDING_MODES)}")
    _check(_is_int(c.sr_seed) and 0 <= c.sr_seed < 2**32, "training.sr_seed", c.sr_seed, "an integer in [0, 2**32)")
    _check(_is_int(c.init_seed) and c.init_seed >= 0, "training.init_seed", c.init_seed, "an integer >= 0")
    for name, lo, hi in (("lut_entries_log2", 2, 14), ("exp_entries_log2", 2, 14), ("recip_entries_log2", 2, 14)):
        v = getattr(c, name)
        _check(_is_int(v) and lo <= v <= hi, f"lut.{name.removeprefix('lut_')}", v, f"an integer in [{lo}, {hi}]")
    _check(isinstance(c.lut_interpolate, bool), "lut.interpolate", c.lut_interpolate, "true or false")
    for name in ("lut_range_log2", "exp_range_log2"):
        v = getattr(c, name)
        _check(_is_int(v) and 0 <= v <= c.act.int_bits - 1, f"lut.{name.removeprefix('lut_')}", v,
               f"an integer in [0, {c.act.int_bits - 1}] (the table range 2**range_log2 must fit {c.act})")
    # a table interval must hold at least one input code
    _check(c.lut_range_log2 + 1 + c.act.frac_bits >= c.lut_entries_log2, "lut.entries_log2", c.lut_entries_log2,
           f"at most {c.lut_range_log2 + 1 + c.act.frac_bits} (one entry per input code of {c.act})")
    _check(c.exp_range_log2 + c.act.frac_bits >= c.exp_entries_log2, "lut.exp_entries_log2", c.exp_entries_log2,
           f"at most {c.exp_range_log2 + c.act.frac_bits} (one entry per input code of {c.act})")
    _check(_is_int(c.recip_frac_bits) and c.act.frac_bits <= c.recip_frac_bits <= 24, "lut.recip_frac_bits",
           c.recip_frac_bits, f"an integer in [{c.act.frac_bits}, 24]")
    _check(isinstance(c.dataset, str) and c.dataset, "data.dataset", c.dataset,
           "a dataset name (xor, iris, digits) or a path to an .npz file")
    _check(_is_num(c.test_fraction) and 0 <= c.test_fraction < 1, "data.test_fraction",
           c.test_fraction, "a number in [0, 1)")
    _check(_is_int(c.split_seed) and c.split_seed >= 0, "data.split_seed", c.split_seed, "an integer >= 0")
    _check(_is_int(c.lanes) and 1 <= c.lanes <= 64, "hardware.lanes", c.lanes, "an integer in [1, 64]")
    _check(c.forward_acc_width() <= 62 and c.backward_acc_width() <= 62 and c.grad_acc_width() <= 62,
           "formats", (str(c.act), str(c.weight), str(c.error)),
           "accumulators would exceed 62 bits; use narrower formats or smaller layers")


# TOML table -> {toml key: Config field}
_SECTIONS = {
    "network": {"layers": "layers", "activations": "activations", "loss": "loss", "leaky_alpha": "leaky_alpha"},
    "formats": {"act": "act", "weight": "weight", "error": "error", "lr_frac_bits": "lr_frac_bits"},
    "training": {"learning_rate": "learning_rate", "batch_size": "batch_size", "epochs": "epochs",
                 "rounding": "rounding", "sr_seed": "sr_seed", "init_seed": "init_seed"},
    "lut": {"entries_log2": "lut_entries_log2", "range_log2": "lut_range_log2", "interpolate": "lut_interpolate",
            "exp_entries_log2": "exp_entries_log2", "exp_range_log2": "exp_range_log2",
            "recip_entries_log2": "recip_entries_log2", "recip_frac_bits": "recip_frac_bits"},
    "data": {"dataset": "dataset", "test_fraction": "test_fraction", "split_seed": "split_seed"},
    "hardware": {"lanes": "lanes"},
}


def _format(name, v) -> QFormat:
    if isinstance(v, QFormat):
        return v
    if not (isinstance(v, dict) and set(v) == {"int_bits", "frac_bits"}):
        raise ConfigError(f"formats.{name}", v, "a table {int_bits = N, frac_bits = M}")
    try:
        return QFormat(v["int_bits"], v["frac_bits"])
    except ValueError as e:
        raise ConfigError(f"formats.{name}", v, str(e)) from None


def config_from_dict(d: dict) -> Config:
    kwargs = {}
    for section, table in d.items():
        if section not in _SECTIONS:
            raise ConfigError(section, "(table)", f"unknown section; allowed: {', '.join(_SECTIONS)}")
        if not isinstance(table, dict):
            raise ConfigError(section, table, "must be a table")
        for key, value in table.items():
            if key not in _SECTIONS[section]:
                raise ConfigError(f"{section}.{key}", value,
                                  f"unknown key; allowed in [{section}]: {', '.join(_SECTIONS[section])}")
            fname = _SECTIONS[section][key]
            if fname in ("act", "weight", "error"):
                value = _format(fname, value)
            elif fname in ("layers", "activations"):
                if not isinstance(value, list):
                    raise ConfigError(f"{section}.{key}", value, "must be a list")
                value = tuple(value)
            kwargs[fname] = value
    try:
        return Config(**kwargs)
    except TypeError as e:  # pragma: no cover - guarded by _SECTIONS
        raise ConfigError("config", kwargs, str(e)) from None


def load_config(path) -> Config:
    """Load and validate a TOML config file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError("file", str(path), f"cannot be read: {e.strerror}") from None
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("file", str(path), f"is not valid TOML: {e}") from None
    return config_from_dict(d)


def config_to_dict(c: Config) -> dict:
    """The config as TOML-shaped nested dicts (for reports and manifests)."""
    out = {}
    for section, table in _SECTIONS.items():
        out[section] = {}
        for key, fname in table.items():
            v = getattr(c, fname)
            if isinstance(v, QFormat):
                v = {"int_bits": v.int_bits, "frac_bits": v.frac_bits}
            elif isinstance(v, tuple):
                v = list(v)
            out[section][key] = v
    return out

