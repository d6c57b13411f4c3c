"""hdl/verilog.py: the one place that makes Verilog."""
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hdl.verilog import to_verilog


class Inc(wiring.Component):
    i: In(8)
    o: Out(8)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.o.eq(self.i + 1)
        return m


def test_top_module_is_named_and_has_the_signature_ports():
    text = to_verilog(Inc(), "inc")
    assert "module inc(" in text
    for port in ("clk", "rst", "i", "o"):
        assert f" {port};" in text or f" {port}," in text, port
