"""Every unit and the trainer pass ``verilator --lint-only -Wall`` with only the documented
waivers of sim/flows/lint.py, and each waiver is needed by some design (the list stays short)."""
import pytest
from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from golden.config import load_config
from sim.flows.lint import LINT_WAIVERS, lint
from sim.flows.synth import _design, unit_names
from tests.trainer.configs import optimizer_variants, sample_variants, variants

pytestmark = pytest.mark.rtl

UNIT_CONFIGS = ["examples/xor.toml", "examples/iris.toml", "examples/digits.toml"]
CASES = [pytest.param(load_config(c), u, id=f"{u}@{c.split('/')[-1]}")
         for c in UNIT_CONFIGS for u in unit_names()]
# the trainer variants cover every generator option; the larger ones (10 to 50 s each to
# elaborate and lint) run with the slow tests
_SLOW_TRAINERS = {"xor-4lanes", "3-hidden-layers", "batch4", "iris.toml", "digits.toml"}
_SAMPLES = [(f"samples-{n}", c) for n, c in sample_variants() if n in ("3layer-b8-4lanes-sr", "softmax-ce",
                                                                      "3layer-b8-sr-adam")]
_TRAINERS = variants() + optimizer_variants() + _SAMPLES + [(p.split("/")[-1], load_config(p)) for p in ("examples/iris.toml", "examples/digits.toml")]
CASES += [pytest.param(cfg, "trainer", id=f"trainer@{name}",
                       marks=[pytest.mark.slow] if name in _SLOW_TRAINERS else [])
          for name, cfg in _TRAINERS]


@pytest.mark.parametrize("cfg,unit", CASES)
def test_lint_clean(cfg, unit, require_tool):
    require_tool("verilator")
    assert [str(w) for w in lint(_design(cfg, unit))] == []


def test_every_waiver_is_needed(require_tool):
    """A waiver no design needs any more goes: the list stays short and honest."""
    require_tool("verilator")
    from golden.fixed import QFormat

    used = []
    xor = load_config("examples/xor.toml")
    designs = [_design(xor, u) for u in unit_names()]
    designs += [_design(cfg, "trainer") for name, cfg in variants() if name == "1lane-deep-backward"]
    designs += [_design(cfg, "trainer") for name, cfg in optimizer_variants() if name == "xor-adam"]
    # a requantization with a 1-bit shift (the backward sum rounded from weight Q8.1)
    designs.append(_design(xor.with_(weight=QFormat(8, 1), lr_frac_bits=4), "adder-tree"))
    for d in designs:
        lint(d, waived=used)
    need = {i for i, _ in used}
    unused = [f"{c} /{rx}/ ({why[:50]}...)" for i, (c, rx, _, why) in enumerate(LINT_WAIVERS) if i not in need]
    assert unused == []


class _Leaky(wiring.Component):
    """A signal of our own that nothing reads, and a comb case with a missing arm."""
    a: In(8)
    y: Out(8)

    def elaborate(self, platform):
        m = Module()
        dead = Signal(8)
        m.d.comb += dead.eq(self.a + 3)  # computed, never read: lint must report it
        m.d.comb += self.y.eq(self.a)
        return m


def test_waivers_do_not_hide_unused_logic(require_tool):
    require_tool("verilator")
    found = lint(_Leaky())
    assert [w.code for w in found] == ["UNUSEDSIGNAL"] and "dead" in found[0].message
