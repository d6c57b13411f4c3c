"""In-order scoreboard: expected items (from the golden model) against what the design sent.

API (stable)
------------
``Scoreboard(name, *, max_reports=1)``
    ``expect(item, inputs=None)`` / ``expect_many(items, inputs=None)`` queue expected
    items in order, each with the inputs that produced it (shown in the report);
    ``actual(item)`` / ``actual_many(items)`` compare against the oldest pending expected
    item (exact equality after turning NumPy arrays and scalars into lists and ints);
    ``matched``, ``mismatches``, ``unexpected`` (actuals with nothing expected), ``pending``
    (expected, not yet seen), ``first_mismatch`` (a :class:`Mismatch` or None);
    ``report()`` a one-paragraph summary; ``check(allow_pending=False)`` raises
    ``AssertionError`` with the report when anything mismatched, arrived unexpectedly or
    (unless allowed) is still missing.
``check_codes(what, expected, actual, inputs=None)``
    Bulk form for NumPy arrays of integer codes (first axis = item): raises
    ``AssertionError`` naming the count of mismatching items and the FIRST one with its
    index, inputs, expected and actual codes.
``Mismatch(index, inputs, expected, actual, what=None, layer=None, position=None)``
    One disagreement; also what the trainer's checks (``sim.check.trainer_session``)
    record, with ``what`` differed and where (``layer``, ``position``; ``sample`` is
    ``index``).

Both work in plain Python, ``amaranth.sim`` testbenches and cocotb tests.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

__all__ = ["Scoreboard", "Mismatch", "check_codes", "normalize"]


def normalize(x):
    """NumPy arrays/scalars, tuples -> plain lists and ints, recursively (for == and printing)."""
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, dict):
        return {k: normalize(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [normalize(v) for v in x]
    return x


@dataclass
class Mismatch:
    """One disagreement between the expected (golden) and the actual value.

    ``index`` is the item's place in order (for the trainer: the sample), ``inputs`` what
    produced it. The trainer's checks also say ``what`` differed ("output", "signature",
    "param", ...) and where: ``layer`` and ``position`` in that layer's tensor.
    """
    index: int
    inputs: object
    expected: object
    actual: object
    what: str | None = None
    layer: int | None = None
    position: tuple | None = None

    @property
    def sample(self) -> int:
        return self.index

    def __str__(self):
        if self.what is not None:  # a trainer check
            where = f" layer {self.layer} index {self.position}" if self.layer is not None else ""
            return (f"first mismatch at sample {self.index}: {self.what}{where}: "
                    f"expected {self.expected}, actual {self.actual}")
        s = f"item {self.index}: expected {self.expected!r}, got {self.actual!r}"
        if self.inputs is not None:
            s += f" (inputs {self.inputs!r})"
        return s


class Scoreboard:
    """Compares items in order; remembers the first mismatches with their inputs."""

    def __init__(self, name: str, *, max_reports: int = 1, key=None):
        self.name = name
        self.max_reports = max_reports
        self._key = key if key is not None else normalize
        self._expected = deque()
        self._index = 0
        self.matched = 0
        self.mismatches = 0
        self.unexpected = 0
        self.reports: list[Mismatch] = []

    @property
    def pending(self) -> int:
        return len(self._expected)

    @property
    def first_mismatch(self) -> Mismatch | None:
        return self.reports[0] if self.reports else None

    def expect(self, item, inputs=None) -> None:
        self._expected.append((self._key(item), inputs))

    def expect_many(self, items, inputs=None) -> None:
        if inputs is None:
            for it in items:
                self.expect(it)
        else:
            for it, inp in zip(items, inputs, strict=True):
                self.expect(it, inp)

    def actual(self, item) -> bool:
        """Compare one actual item with the oldest expected; returns True on a match."""
        got = self._key(item)
        i = self._index
        self._index += 1
        if not self._expected:
            self.unexpected += 1
            if len(self.reports) < self.max_reports:
                self.reports.append(Mismatch(i, None, "(nothing expected)", got))
            return False
        exp, inp = self._expected.popleft()
        if exp == got:
            self.matched += 1
            return True
        self.mismatches += 1
        if len(self.reports) < self.max_reports:
            self.reports.append(Mismatch(i, normalize(inp), exp, got))
        return False

    def actual_many(self, items) -> int:
        """Compare several; returns how many matched."""
        return sum(self.actual(it) for it in items)

    def report(self) -> str:
        s = (f"{self.name}: {self.matched} matched, {self.mismatches} mismatched, "
             f"{self.unexpected} unexpected, {self.pending} missing")
        for m in self.reports:
            s += f"\n  first mismatch at {m}" if m is self.reports[0] else f"\n  then {m}"
        if self.pending:
            exp, inp = self._expected[0]
            s += f"\n  first missing: item {self._index} expected {exp!r}" + (
                f" (inputs {normalize(inp)!r})" if inp is not None else "")
        return s

    def check(self, allow_pending: bool = False) -> None:
        if self.mismatches or self.unexpected or (self.pending and not allow_pending):
            raise AssertionError(self.report())


def check_codes(what: str, expected, actual, inputs=None) -> None:
    """Exact comparison of integer code arrays (axis 0 = item); first mismatch reported."""
    exp = np.asarray(expected)
    got = np.asarray(actual)
    if exp.shape != got.shape:
        raise AssertionError(f"{what}: expected shape {exp.shape}, got {got.shape}")
    bad = exp != got
    if bad.ndim > 1:
        bad = bad.reshape(bad.shape[0], -1).any(axis=1)
    idx = np.flatnonzero(np.atleast_1d(bad))
    if idx.size:
        i = int(idx[0])
        e, a = (exp[i], got[i]) if exp.ndim else (exp, got)
        msg = (f"{what}: {idx.size} of {bad.size} items mismatch; first at index {i}: "
               f"expected {normalize(e)!r}, got {normalize(a)!r}")
        if inputs is not None:
            msg += f", inputs {normalize(inputs[i])!r}"
        raise AssertionError(msg)
