"""hdl/dsp.py: the registered multiply, generic and as the ECP5 MULT18X18D.

The primitive cannot run in the Amaranth simulator; under Icarus it runs on the
behavioural model in sim/runners/primitives, side by side with the generic form, and both are
compared with Python's exact product of the operands presented two cycles earlier.
"""
from __future__ import annotations

import random
import subprocess

import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hdl.dsp import registered_product
from sim.runners.primitives import primitive_models
from tests.conftest import require_tool

CYCLES = 3000


class _Both(wiring.Component):
    """``a * b`` through the generic form and through the primitive, side by side."""

    def __init__(self, a_shape, b_shape):
        super().__init__({"a": In(a_shape), "b": In(b_shape), "generic": Out(signed(36)), "ecp5": Out(signed(36))})

    def elaborate(self, platform):
        m = Module()
        registered_product(m, self.a, self.b, self.generic, dsp="generic", name="g")
        registered_product(m, self.a, self.b, self.ecp5, dsp="ecp5", name="e")
        return m


def _testbench(a_bits: int, b_bits: int) -> str:
    """Random operands every cycle (each one's extremes often), printed with both products
    as they stand in that cycle: row t's products are those of row t - 2's operands."""
    return f"""
module tb;
  reg clk = 1'b0;
  reg [{a_bits - 1}:0] a = 0;
  reg [{b_bits - 1}:0] b = 0;
  wire [35:0] g, e;
  top dut(.clk(clk), .rst(1'b0), .a(a), .b(b), .generic(g), .ecp5(e));
  integer i, seed;
  initial begin
    seed = 7;
    for (i = 0; i < {CYCLES}; i = i + 1) begin
      @(negedge clk);
      case ($random(seed) & 7)
        0: a = {{{a_bits}{{1'b1}}}};
        1: a = {{1'b1, {{{a_bits - 1}{{1'b0}}}}}};
        2: a = {{1'b0, {{{a_bits - 1}{{1'b1}}}}}};
        default: a = $random(seed);
      endcase
      case ($random(seed) & 7)
        0: b = {{{b_bits}{{1'b1}}}};
        1: b = {{1'b1, {{{b_bits - 1}{{1'b0}}}}}};
        default: b = $random(seed);
      endcase
      #1 $display("%0d %0d %0d %0d", a, b, g, e);  // the operands for the next edge, the products now
      @(posedge clk);
    end
    $finish;
  end
  always #5 clk = ~clk;
endmodule
"""


def _run(tmp_path, a_shape, b_shape) -> list[tuple[int, int, int, int]]:
    require_tool("iverilog")
    src = tmp_path / "dsp_tb.v"
    src.write_text(verilog.convert(_Both(a_shape, b_shape), name="top") + primitive_models("ecp5")
                   + _testbench(a_shape.width, b_shape.width))
    exe = tmp_path / "dsp_tb.vvp"
    subprocess.run(["iverilog", "-o", str(exe), "-s", "tb", str(src)], check=True, capture_output=True, text=True)
    out = subprocess.run(["vvp", "-n", str(exe)], check=True, capture_output=True, text=True).stdout
    assert "MULT18X18D model" not in out, out
    return [tuple(int(v) for v in line.split()) for line in out.splitlines() if line and line[0].isdigit()]


def _value(code: int, shape) -> int:
    return code - (1 << shape.width) if shape.signed and code >> (shape.width - 1) else code


@pytest.mark.parametrize("a_shape, b_shape", [
    (unsigned(17), signed(16)),  # a lane's low half (hdl/trainer.py)
    (signed(16), signed(16)),  # a lane's high half
    (unsigned(16), signed(16)),  # lr x delta
    (signed(18), signed(18)),  # the widest operands one block takes
    (signed(20), signed(16)),  # wider: the generic form on ecp5 too
], ids=["u17xs16", "s16xs16", "u16xs16", "s18xs18", "s20xs16"])
def test_primitive_and_generic_give_the_exact_product_two_cycles_later(a_shape, b_shape, tmp_path):
    rows = _run(tmp_path, a_shape, b_shape)
    assert len(rows) == CYCLES
    for t in range(2, CYCLES):
        a, b = rows[t - 2][0], rows[t - 2][1]
        want = (_value(a, a_shape) * _value(b, b_shape)) % (1 << 36)
        g, e = rows[t][2], rows[t][3]
        assert (g, e) == (want, want), f"cycle {t}: {a} x {b} gave generic {g}, ecp5 {e}, want {want}"


def test_wide_operands_keep_the_generic_form_and_narrow_products_are_refused():
    m = Module()
    # 20-bit codes (tests/uart: codes wider than 16 bits): no primitive, a plain multiply
    registered_product(m, Signal(signed(20)), Signal(signed(16)), Signal(signed(36)), dsp="ecp5", name="wide")
    registered_product(m, Signal(18), Signal(signed(16)), Signal(signed(35)), dsp="ecp5", name="u18")
    assert "wide" not in m._named_submodules and "u18" not in m._named_submodules
    registered_product(m, Signal(17), Signal(signed(18)), Signal(signed(36)), dsp="ecp5", name="fits")
    assert "fits" in m._named_submodules
    with pytest.raises(ValueError, match=r"z: a 32-bit product register is narrower than the exact product \(33 bits\)"):
        registered_product(m, Signal(16), Signal(signed(16)), Signal(signed(32)), name="z")
    with pytest.raises(ValueError, match=r"dsp must be one of generic, ecp5, got 'xilinx'"):
        registered_product(m, Signal(signed(8)), Signal(signed(8)), Signal(signed(16)), dsp="xilinx")


def test_the_platform_picks_the_form():
    """The ULX3S (an ECP5 platform) gets the primitive; the iCEBreaker and no platform
    (simulation, plain Verilog export) get the generic form."""
    from amaranth_boards.icebreaker import ICEBreakerPlatform
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    from hdl.dsp import dsp_for_platform
    assert dsp_for_platform(ULX3S_85F_Platform()) == "ecp5"
    assert dsp_for_platform(ICEBreakerPlatform()) == "generic"
    assert dsp_for_platform(None) == "generic"
