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

__all__ = ["Config", "ConfigError", "load_config", "ACTIVATIONS", "LOSSES", "ROUNDING_MODES", "OPTIMIZERS",
           "OPT_FRAC_BITS", "BETA_POW_FRAC_BITS", "ADAM_R_WIDTH", "ADAM_ALPHA_WIDTH"]

ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh", "linear", "softmax")
LOSSES = ("mse", "cross_entropy")
ROUNDING_MODES = ("nearest_even", "stochastic")
OPTIMIZERS = ("sgd", "momentum", "adam")
# the hardware schedules (docs/trainer.md): lane p takes row p of a block, or sample p of a group
PARALLELISMS = ("rows", "samples")
# Fraction bits of the optimizer coefficients: momentum, 1 - beta1, 1 - beta2 (docs/arithmetic.md §10).
OPT_FRAC_BITS = 20
# Fraction bits of Adam's running powers beta1**t, beta2**t.
BETA_POW_FRAC_BITS = 32
# Width of Adam's 1 / (sqrt(v_hat) + eps) table entries and of its step size alpha_t
# (signed, non-negative: one 18 x 18 multiplier each).
ADAM_R_WIDTH = 18
ADAM_ALPHA_WIDTH = 18


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
    velocity: QFormat = QFormat(4, 20)   # momentum: lr * v, in weight units
    adam_m: QFormat = QFormat(2, 16)     # adam: the gradient and its first moment
    adam_v: QFormat = QFormat(4, 36)     # adam: the second moment (very small values)
    # training
    learning_rate: float = 1.0
    batch_size: int = 1
    epochs: int = 1000
    rounding: str = "nearest_even"
    sr_seed: int = 1
    init_seed: int = 0
    optimizer: str = "sgd"
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-3
    # lookup tables
    lut_entries_log2: int = 8
    lut_range_log2: int = 3
    lut_interpolate: bool = False
    exp_entries_log2: int = 8
    exp_range_log2: int = 3
    recip_entries_log2: int = 8
    recip_frac_bits: int = 15
    rsqrt_entries_log2: int = 5
    # data
    dataset: str = "xor"
    test_fraction: float = 0.25
    split_seed: int = 0
    # hardware
    lanes: int = 8
    parallelism: str = "rows"

    def __post_init__(self):
        _validate(self)

    # ---- derived quantities (documented in docs/arithmetic.md) -------------------
    @property
    def n_layers(self) -> int:
        """Number of weight layers."""
        return len(self.layers) - 1

    @property
    def update_lanes(self) -> int:
        """Parameters updated per cycle, each drawing from an LFSR of its own and folding into
        a signature of its own (docs/arithmetic.md §7): the lanes in the rows schedule (lane p
        updates rows p, p + P, ...), one in the samples schedule (one parameter per cycle)."""
        return self.lanes if self.parallelism == "rows" else 1

    @property
    def lr_code(self) -> int:
        """The lanes' gradient multiplier (the LR register): ``round(lr / B * 2**lr_frac_bits)``;
        Adam takes the plain batch mean, ``round(2**lr_frac_bits / B)``, and applies lr in its step."""
        lr = 1.0 if self.optimizer == "adam" else self.learning_rate
        return int(round(lr / self.batch_size * (1 << self.lr_frac_bits)))

    # ---- optimizer codes (docs/arithmetic.md §10) -------------------------------
    @property
    def momentum_code(self) -> int:
        return int(round(self.momentum * (1 << OPT_FRAC_BITS)))

    @property
    def adam_c1(self) -> int:
        """``round((1 - beta1) * 2**OPT_FRAC_BITS)``; the fixed model's beta1 is ``1 - c1 / 2**20``."""
        return int(round((1.0 - self.beta1) * (1 << OPT_FRAC_BITS)))

    @property
    def adam_c2(self) -> int:
        return int(round((1.0 - self.beta2) * (1 << OPT_FRAC_BITS)))

    @property
    def adam_r_format(self) -> QFormat:
        """Format of the 1 / (sqrt(v_hat) + eps) table: 1/eps (its largest entry) fits."""
        int_bits = math.ceil(1.0 / self.epsilon).bit_length() + 1
        return QFormat(int_bits, ADAM_R_WIDTH - int_bits)

    @property
    def adam_alpha_frac_bits(self) -> int:
        """Fraction bits of the step size alpha_t = lr / (1 - beta1**t) <= lr / (1 - beta1): as
        many as fit its 17 bits, but no more than keep the step's shift within the LFSR's 32."""
        fit = ADAM_ALPHA_WIDTH - 2 - math.floor(math.log2(self.learning_rate / (1.0 - self.beta1)))
        return min(fit, 32 + self.weight.frac_bits - self.adam_m.frac_bits - self.adam_r_format.frac_bits)

    @property
    def adam_lr_code(self) -> int:
        """The ADAM_LR register: ``round(lr * 2**adam_alpha_frac_bits)``."""
        return int(round(self.learning_rate * (1 << self.adam_alpha_frac_bits)))

    @property
    def adam_exponents(self) -> tuple:
        """(lowest, highest) exponent E of v_hat = 2**E * mantissa the 1/(sqrt+eps) table covers:
        below, the entry is within 2**-12 relative of 1/eps (or v_hat is under the v format's
        resolution, so v = 0 reads the first entry); above, v_hat exceeds the largest v times the largest correction 1/(1-beta2)."""
        lo = 2 * math.floor(math.log2(self.epsilon)) - 24
        hi = self.adam_v.int_bits - 1 + math.ceil(math.log2(1.0 / (1.0 - self.beta2))) + 1
        return lo, hi

    @property
    def adam_step_shift(self) -> int:
        """Right shift taking m * r * alpha to the weight format."""
        return self.adam_m.frac_bits + self.adam_r_format.frac_bits + self.adam_alpha_frac_bits - self.weight.frac_bits

    @property
    def velocity_step_shift(self) -> int:
        return self.velocity.frac_bits - self.weight.frac_bits

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
           (f"learning_rate / batch_size * 2**lr_frac_bits must round to an integer in [1, 65535] "
            f"(it gives {c.lr_code}); change learning_rate or formats.lr_frac_bits") if c.optimizer != "adam" else
           (f"with optimizer = 'adam' the lanes multiply by 2**lr_frac_bits / batch_size, which must round to "
            f"an integer in [1, 65535] (it gives {c.lr_code}); change formats.lr_frac_bits"))
    _check(0 <= c.update_shift <= 32, "formats.lr_frac_bits", c.lr_frac_bits,
           f"lr_frac_bits + error.frac_bits + act.frac_bits - weight.frac_bits must be in [0, 32] "
           f"(it is {c.update_shift}): the stochastic-rounding LFSR supplies at most 32 bits")
    _check(_is_int(c.epochs) and c.epochs >= 1, "training.epochs", c.epochs, "an integer >= 1")
    _validate_optimizer(c)
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
    _check(c.parallelism in PARALLELISMS, "hardware.parallelism", c.parallelism,
           f"allowed: {', '.join(repr(x) for x in PARALLELISMS)}")
    max_lanes = 64 if c.parallelism == "rows" else 128
    _check(_is_int(c.lanes) and 1 <= c.lanes <= max_lanes, "hardware.lanes", c.lanes,
           f"an integer in [1, {max_lanes}] (with parallelism = {c.parallelism!r})")
    if c.parallelism == "samples":
        _check(c.batch_size % c.lanes == 0, "training.batch_size", c.batch_size,
               f"a multiple of hardware.lanes = {c.lanes} with parallelism = 'samples' (the lanes take the "
               f"samples of a mini-batch, {c.lanes} at a time)")
    _check(c.forward_acc_width() <= 62 and c.backward_acc_width() <= 62 and c.grad_acc_width() <= 62,
           "formats", (str(c.act), str(c.weight), str(c.error)),
           "accumulators would exceed 62 bits; use narrower formats or smaller layers")


def _validate_optimizer(c: Config):
    """The optimizer keys (docs/arithmetic.md §10). Only the chosen optimizer's keys and
    formats are checked, so an SGD config never fails on Adam's defaults."""
    _check(c.optimizer in OPTIMIZERS, "training.optimizer", c.optimizer, f"allowed: {', '.join(OPTIMIZERS)}")
    one = 1 << OPT_FRAC_BITS
    if c.optimizer == "momentum":
        _check(_is_num(c.momentum) and 0 <= c.momentum < 1, "training.momentum", c.momentum, "a number in [0, 1)")
        _check(c.momentum_code < one, "training.momentum", c.momentum,
               f"must round to a code below 2**{OPT_FRAC_BITS} (at most {1 - 2.0 ** -OPT_FRAC_BITS})")
        v = c.velocity
        _check(isinstance(v, QFormat) and v.width <= 32, "formats.velocity", str(v), "a format at most 32 bits wide")
        _check(v.int_bits >= c.weight.int_bits and 0 <= c.velocity_step_shift <= 32, "formats.velocity", str(v),
               f"int_bits >= weight.int_bits ({c.weight.int_bits}) and frac_bits in "
               f"[{c.weight.frac_bits}, {c.weight.frac_bits + 32}] (the weight's, up to the LFSR's 32 bits more)")
        x = max(OPT_FRAC_BITS + v.frac_bits, c.update_frac_bits)
        width = max(OPT_FRAC_BITS + v.width + x - OPT_FRAC_BITS - v.frac_bits, c.grad_acc_width() + x - c.update_frac_bits) + 1
        _check(width <= 62, "formats.velocity", str(v),
               f"mu * v + G is summed exactly in {width} bits; at most 62 allowed (use fewer velocity frac_bits)")
    if c.optimizer != "adam":
        return
    for key in ("beta1", "beta2"):
        b = getattr(c, key)
        _check(_is_num(b) and 0 < b < 1, f"training.{key}", b, "a number in (0, 1)")
        code = c.adam_c1 if key == "beta1" else c.adam_c2
        _check(1 <= code < one, f"training.{key}", b,
               f"1 - {key} must round to a code in [1, 2**{OPT_FRAC_BITS}) (it gives {code}): "
               f"{key} in [{2.0 ** -(OPT_FRAC_BITS + 1)}, {1 - 2.0 ** -(OPT_FRAC_BITS + 1)}]")
    _check(_is_num(c.epsilon) and 2.0 ** -13 <= c.epsilon <= 1, "training.epsilon", c.epsilon,
           f"a number in [2**-13 = {2.0 ** -13:.3g}, 1]: 1/epsilon, the largest entry of the 1/(sqrt(v_hat) + "
           f"epsilon) table, must fit its {ADAM_R_WIDTH}-bit codes with at least 4 fraction bits")
    _check(c.learning_rate / (1 - c.beta1) < 2 ** 14, "training.learning_rate", c.learning_rate,
           "learning_rate / (1 - beta1) must be below 2**14 (the step size's format)")
    _check(c.adam_lr_code >= 16, "training.learning_rate", c.learning_rate,
           f"must be at least 16 * 2**-{c.adam_alpha_frac_bits} = {16 * 2.0 ** -c.adam_alpha_frac_bits:.3g} "
           f"(the ADAM_LR code keeps 4 significant bits; the step's 32-bit rounding shift limits its fraction "
           f"bits); or give formats.adam_m fewer frac_bits")
    m, v = c.adam_m, c.adam_v
    _check(isinstance(m, QFormat) and 2 <= m.width <= 18, "formats.adam_m", str(m),
           "a format 2..18 bits wide (an 18 x 18 multiplier squares it)")
    _check(isinstance(v, QFormat) and v.width <= 42, "formats.adam_v", str(v),
           "a format at most 42 bits wide (v * 2**20 + c2 * (g*g - v) is summed exactly in 62 bits)")
    _check(v.int_bits >= 2 * m.int_bits - 1, "formats.adam_v", str(v),
           f"int_bits >= {2 * m.int_bits - 1} (the square of the largest adam_m must fit)")
    _check(c.adam_exponents[0] < c.adam_exponents[1], "formats.adam_v", str(v), "must cover epsilon**2")
    _check(_is_int(c.rsqrt_entries_log2) and 1 <= c.rsqrt_entries_log2 <= 8, "lut.rsqrt_entries_log2",
           c.rsqrt_entries_log2, "an integer in [1, 8]")
    lo, hi = c.adam_exponents
    _check((hi - lo + 1) << c.rsqrt_entries_log2 <= 8192, "lut.rsqrt_entries_log2", c.rsqrt_entries_log2,
           f"the table has {hi - lo + 1} exponents x 2**rsqrt_entries_log2 entries; at most 8192 allowed")
    _check(0 <= c.adam_step_shift <= 32, "formats.adam_m", str(m),
           f"adam_m.frac_bits + r frac bits ({c.adam_r_format.frac_bits}) + alpha frac bits "
           f"({c.adam_alpha_frac_bits}) - weight.frac_bits must be in [0, 32] (it is {c.adam_step_shift})")


# TOML table -> {toml key: Config field}
_SECTIONS = {
    "network": {"layers": "layers", "activations": "activations", "loss": "loss", "leaky_alpha": "leaky_alpha"},
    "formats": {"act": "act", "weight": "weight", "error": "error", "lr_frac_bits": "lr_frac_bits",
                "velocity": "velocity", "adam_m": "adam_m", "adam_v": "adam_v"},
    "training": {"learning_rate": "learning_rate", "batch_size": "batch_size", "epochs": "epochs",
                 "rounding": "rounding", "sr_seed": "sr_seed", "init_seed": "init_seed",
                 "optimizer": "optimizer", "momentum": "momentum", "beta1": "beta1", "beta2": "beta2",
                 "epsilon": "epsilon"},
    "lut": {"entries_log2": "lut_entries_log2", "range_log2": "lut_range_log2", "interpolate": "lut_interpolate",
            "exp_entries_log2": "exp_entries_log2", "exp_range_log2": "exp_range_log2",
            "recip_entries_log2": "recip_entries_log2", "recip_frac_bits": "recip_frac_bits",
            "rsqrt_entries_log2": "rsqrt_entries_log2"},
    "data": {"dataset": "dataset", "test_fraction": "test_fraction", "split_seed": "split_seed"},
    "hardware": {"lanes": "lanes", "parallelism": "parallelism"},
}


_FORMAT_FIELDS = ("act", "weight", "error", "velocity", "adam_m", "adam_v")


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
            if fname in _FORMAT_FIELDS:
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

