"""SPACE.toml: the design space of ``backprop-fpga explore``, the product of lists of config values.

Each key names a config key in the TOML layout of the config file, dotted and quoted, and
its value is the list of values to try::

    "formats.act" = [{ int_bits = 6, frac_bits = 10 }, { int_bits = 5, frac_bits = 7 }]
    "formats.weight.frac_bits" = [8, 10, 12]
    "training.rounding" = ["nearest_even", "stochastic"]

The space is the product of the lists, in the file's key order (the last key varies
fastest). A key may stop at a table (``"formats.act"``, or a whole section such as
``"formats"``): a table value is merged into the base config's table, so
``"formats" = [{ act = {...}, weight = {...} }, ...]`` varies several keys together. The
key ``"config"`` stands for the whole config, for keys of several sections that must change
together (``"config" = [{ formats = { act = {...} }, lut = { exp_entries_log2 = 6 } }]``).
A one-value list sets a key for every point. Unquoted dotted keys and ``[section]`` tables
mean the same paths.

A key that is not in the config, a value that is not a non-empty list, or two keys of which
one contains the other are mistakes in the space: :class:`SpaceError`, one message naming
the key, the value and what is allowed. A point whose values the config refuses is not a
mistake in the space: it is an *invalid point*, reported with the config's own message
(:class:`golden.config.ConfigError`), and the other points still run.
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from golden.config import Config, ConfigError, config_from_dict, config_to_dict

__all__ = ["SpaceError", "Space", "Point", "load_space", "parse_space", "point_hash", "show_value", "ROOT_KEY"]

# the key that stands for the whole config (tables merged into it)
ROOT_KEY = "config"


class SpaceError(ValueError):
    """A mistake in SPACE.toml (a user error: one line, exit code 2)."""


@dataclass(frozen=True)
class Point:
    """One point of the space: the varied values, the resolved config (or why there is none)."""
    index: int
    values: dict          # dotted key -> value, in the space's key order
    config: dict          # the resolved config in the TOML layout (what the tasks receive)
    cfg: Config | None    # None for an invalid point
    error: str | None     # the config's own message for an invalid point
    key: str              # hash of the full resolved config: the point's identity across runs

    @property
    def valid(self) -> bool:
        return self.cfg is not None

    def label(self) -> str:
        """``formats.act=Q6.10 training.rounding=stochastic``."""
        return " ".join(f"{k}={show_value(v)}" for k, v in self.values.items())


@dataclass(frozen=True)
class Space:
    keys: tuple                      # the varied dotted keys
    lists: dict                      # dotted key -> list of values
    points: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.points)


def point_hash(config: dict) -> str:
    """12 hex digits of SHA-256 over the config's canonical JSON (sorted keys)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def show_value(v) -> str:
    """A value for a table or a CSV cell: formats as ``Q6.10``, tables as ``k=v,...``."""
    if isinstance(v, dict):
        if set(v) == {"int_bits", "frac_bits"}:
            return f"Q{v['int_bits']}.{v['frac_bits']}"
        return "{" + ",".join(f"{k}={show_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(show_value(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def load_space(path, base: Config) -> Space:
    """Read SPACE.toml at ``path`` and expand it against the ``base`` config."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise SpaceError(f"space file {str(p)!r} cannot be read: {e.strerror or e}") from None
    return parse_space(text, base, source=str(p))


def parse_space(text: str, base: Config, source: str = "SPACE.toml") -> Space:
    """The space of ``text`` (TOML) around ``base``: every point, valid or not."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpaceError(f"{source} is not valid TOML: {e}") from None
    base_dict = config_to_dict(base)
    lists = {}
    if isinstance(raw.get(ROOT_KEY), list):
        lists[ROOT_KEY] = raw.pop(ROOT_KEY)
        if not lists[ROOT_KEY]:
            raise SpaceError(f"{source}: key {ROOT_KEY!r} has an empty list: give at least one table to merge "
                             f"into the config")
        for v in lists[ROOT_KEY]:
            _check_merge((), v, base_dict, source)
    for path, value in _flatten(raw):
        key = ".".join(path)
        _check_path(path, base_dict, source)
        if not isinstance(value, list):
            raise SpaceError(f"{source}: key {key!r} = {value!r}: the value must be a list of the values to try, "
                             f"e.g. {key!r} = [{show_value(_get(base_dict, path))!s}, ...]")
        if not value:
            raise SpaceError(f"{source}: key {key!r} has an empty list: give at least one value to try")
        for v in value:
            _check_merge(path, v, _get(base_dict, path), source)
        lists[key] = value
    if not lists:
        raise SpaceError(f"{source} has no keys: give at least one dotted config key with a list of values, "
                         f"e.g. \"training.rounding\" = [\"nearest_even\", \"stochastic\"]")
    keys = tuple(lists)
    for a, b in itertools.permutations(keys, 2):
        if b.startswith(a + "."):
            raise SpaceError(f"{source}: keys {a!r} and {b!r} overlap ({a!r} contains {b!r}); vary one of them")
    for v in lists.get(ROOT_KEY, ()):
        for path, _ in _flatten(v):
            inner = ".".join(path)
            for k in keys:
                if k != ROOT_KEY and (k == inner or inner.startswith(k + ".") or k.startswith(inner + ".")):
                    raise SpaceError(f"{source}: key {ROOT_KEY!r} sets {inner!r}, which key {k!r} varies too; "
                                     f"vary it in one place")
    points = [_resolve(i, dict(zip(keys, combo)), base_dict)
              for i, combo in enumerate(itertools.product(*(lists[k] for k in keys)))]
    return Space(keys, lists, points)


def _flatten(d: dict, prefix: tuple = ()):
    """(path, value) for every leaf; quoted dotted keys split at their dots."""
    for k, v in d.items():
        path = prefix + tuple(k.split("."))
        if isinstance(v, dict):
            yield from _flatten(v, path)
        else:
            yield path, v


def _get(d: dict, path: tuple):
    for part in path:
        d = d[part]
    return d


def _check_path(path: tuple, base_dict: dict, source: str):
    key = ".".join(path)
    node = base_dict
    for i, part in enumerate(path):
        if not isinstance(node, dict):
            raise SpaceError(f"{source}: key {key!r}: {'.'.join(path[:i])!r} is a value, not a table, "
                             f"so it has no key {part!r}")
        if part not in node:
            where = f"[{'.'.join(path[:i])}]" if i else "the config's top level (its sections)"
            raise SpaceError(f"{source}: key {key!r}: unknown config key {part!r}; allowed in {where}: "
                             f"{', '.join(node)}")
        node = node[part]


def _check_merge(path: tuple, value, target, source: str):
    """A table value merges into a table: each of its keys must exist there."""
    key = ".".join(path) or ROOT_KEY
    if isinstance(target, dict):
        if not isinstance(value, dict):
            raise SpaceError(f"{source}: key {key!r}: {value!r} is not a table; {key!r} is a table with keys "
                             f"{', '.join(target)}")
        for k, v in value.items():
            if k not in target:
                raise SpaceError(f"{source}: key {key!r}: value {show_value(value)}: unknown key {k!r}; "
                                 f"allowed: {', '.join(target)}")
            _check_merge(path + (k,), v, target[k], source)


def _merge(target: dict, value: dict):
    for k, v in value.items():
        if isinstance(v, dict) and isinstance(target.get(k), dict):
            _merge(target[k], v)
        else:
            target[k] = copy.deepcopy(v)


def _resolve(index: int, values: dict, base_dict: dict) -> Point:
    d = copy.deepcopy(base_dict)
    for key, v in values.items():
        if key == ROOT_KEY:
            _merge(d, v)
            continue
        path = key.split(".")
        parent = _get(d, tuple(path[:-1]))
        if isinstance(v, dict) and isinstance(parent[path[-1]], dict):
            _merge(parent[path[-1]], v)
        else:
            parent[path[-1]] = copy.deepcopy(v)
    try:
        cfg = config_from_dict(d)
    except ConfigError as e:
        return Point(index, values, d, None, str(e), point_hash(d))
    except (TypeError, ValueError) as e:  # a value of a type the validation did not expect
        return Point(index, values, d, None, f"config refused: {e}", point_hash(d))
    resolved = config_to_dict(cfg)
    return Point(index, values, resolved, cfg, None, point_hash(resolved))
