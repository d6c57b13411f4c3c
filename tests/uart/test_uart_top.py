"""UartTrainer's constructor and ports as the board build uses them, and a clean
Verilator lint of the UART components."""
import pytest
from amaranth.lib.wiring import In, Out

from golden.config import load_config
from golden.fixed import QFormat
from hdl.uart import UartRx, UartTx
from hdl.uart_bridge import CommandBridge, UartTrainer

from ..conftest import require_tool

XOR = load_config("examples/xor.toml")


def test_board_constructor_and_ports():
    top = UartTrainer(XOR, clk_freq=25_000_000, baud=115200)
    assert top.divisor == 217
    members = dict(top.signature.members)
    assert members["rx"] == In(1) and members["tx"] == Out(1)
    assert set(members) == {"rx", "tx", "busy", "error"}
    assert UartTrainer(XOR, clk_freq=48_000_000).divisor == 417  # default 115200 Bd


@pytest.mark.parametrize("clk_freq,baud,match", [
    (400_000, 115200, r"divisor 3 .*clk_freq=400000 .*baud=115200"),
    (1_000_000, 230400, r"baud error 8\.51% .*clk_freq=1000000"),
])
def test_board_constructor_refuses_bad_clocks(clk_freq, baud, match):
    with pytest.raises(ValueError, match=match):
        UartTrainer(XOR, clk_freq=clk_freq, baud=baud)


@pytest.mark.rtl
def test_uart_components_lint_clean():
    require_tool("verilator")
    from sim.flows.lint import lint
    for design in (UartRx(8), UartTx(217), CommandBridge(XOR), CommandBridge(XOR.with_(act=QFormat(6, 14)))):
        assert lint(design) == [], type(design).__name__
