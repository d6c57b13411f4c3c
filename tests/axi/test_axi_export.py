"""``backprop-fpga verilog --bus axi``: the AXI top with the standard port names, lint-clean,
its manifest describing the AXI map; the native top unchanged beside it."""
import json
import re

from click.testing import CliRunner

from golden.config import load_config
from hdl.axi import AxiTrainer, axi_data_width
from hdl.csr import PARAM_WINDOW, REG
from sim.cli import main

XOR = load_config("examples/xor.toml")

AXI_PORTS = {
    "aclk", "aresetn",
    "s_axis_tdata", "s_axis_tvalid", "s_axis_tready", "s_axis_tlast",
    "m_axis_tdata", "m_axis_tvalid", "m_axis_tready", "m_axis_tlast",
    "s_axi_awaddr", "s_axi_awvalid", "s_axi_awready", "s_axi_wdata", "s_axi_wstrb", "s_axi_wvalid",
    "s_axi_wready", "s_axi_bresp", "s_axi_bvalid", "s_axi_bready", "s_axi_araddr", "s_axi_arvalid",
    "s_axi_arready", "s_axi_rdata", "s_axi_rresp", "s_axi_rvalid", "s_axi_rready",
}


def test_verilog_bus_axi_writes_the_axi_top(tmp_path, require_tool):
    require_tool("verilator")
    out = tmp_path / "v"
    r = CliRunner().invoke(main, ["verilog", "--config", "examples/xor.toml", "--bus", "axi", "--out", str(out)])
    assert r.exit_code == 0, r.output
    text = (out / "trainer_axi.v").read_text()
    header = re.search(r"^module trainer_axi\(([^)]*)\);", text, re.M)
    assert header, "top module trainer_axi missing"
    assert {p.strip() for p in header.group(1).split(",")} == AXI_PORTS
    m = json.loads((out / "manifest.json").read_text())
    assert m["top_module"] == "trainer_axi" and m["bus"] == "axi"
    assert {p["name"] for p in m["ports"]} == AXI_PORTS
    assert m["lint"]["clean"] is True, m["lint"].get("warnings")
    assert m["clock"] == {"port": "aclk", "edge": "rising", "reset": "aresetn (synchronous, active low)"}
    axi = m["axi"]
    assert axi["tdata_width"] == 16
    assert {r["name"]: r["byte_address"] for r in axi["registers"]} == {n: 4 * a for n, a in REG.items()}
    assert axi["param_window_byte_address"] == 4 * PARAM_WINDOW == 0x4000_0000
    assert set(axi["responses"]) == {"OKAY", "SLVERR", "DECERR"}
    widths = {p["name"]: p["width"] for p in m["ports"]}
    assert widths["s_axi_awaddr"] == widths["s_axi_araddr"] == 32 and widths["s_axi_wstrb"] == 4
    assert widths["s_axi_bresp"] == widths["s_axi_rresp"] == 2


def test_tdata_is_the_act_code_in_whole_bytes():
    from golden.fixed import QFormat
    assert axi_data_width(XOR) == 16
    assert axi_data_width(XOR.with_(act=QFormat(4, 8))) == 16
    assert axi_data_width(XOR.with_(act=QFormat(6, 14))) == 24
    top = AxiTrainer(XOR.with_(act=QFormat(6, 14)))
    assert len(top.s_axis.tdata) == len(top.m_axis.tdata) == 24


def test_both_tops_wrap_one_trainer():
    """The AXI top adds no trainer logic of its own: its trainer is ``Trainer(cfg)``."""
    from hdl.trainer import Trainer
    top = AxiTrainer(XOR)
    assert type(top.trainer) is Trainer and top.trainer.cfg is XOR
