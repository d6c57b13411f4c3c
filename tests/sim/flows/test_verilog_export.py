"""``backprop-fpga verilog``: the Verilog file, its manifest (ports, register map, every
parameter's address from hdl.layout.Layout) and the Verilator lint result."""
import json
import re

import pytest
from click.testing import CliRunner

from golden.config import load_config
from hdl.csr import BANK_SHIFT, PARAM_WINDOW, REG, STATUS_BITS, param_address
from hdl.layout import Layout
from sim.cli import main
from sim.flows.verilog_export import TOP, export_verilog

from tests.trainer.configs import xor


def test_manifest_addresses_agree_with_layout(tmp_path):
    # 3 lanes over layers of 5, 4 and 1 rows: partial blocks, three layers, wbase > 0
    cfg = xor(lanes=3, layers=(2, 5, 4, 1), activations=("sigmoid",) * 3)
    m = export_verilog(cfg, tmp_path, lint=False)
    assert m["lint"] is None
    pm = m["param_map"]
    assert pm["param_window"] == PARAM_WINDOW and pm["bank_shift"] == BANK_SHIFT
    assert pm["banks"] == 3 and pm["words_per_bank"] == Layout(cfg).bank_words
    lay = Layout(cfg)
    seen = set()
    for l, entry in enumerate(pm["layers"]):
        n_in, n_out = cfg.layers[l], cfg.layers[l + 1]
        assert (entry["n_in"], entry["n_out"], entry["bias_column"]) == (n_in, n_out, n_in)
        assert entry["params_columns"] == ["j", "k", "bank", "word", "address"]
        table = {(j, k): (bank, word, addr) for j, k, bank, word, addr in entry["params"]}
        assert len(table) == n_out * (n_in + 1)  # every weight and the bias, once
        for j in range(n_out):
            for k in range(n_in + 1):
                bank, word = lay.param_location(l, j, k)
                assert table[j, k] == (bank, word, param_address(bank, word)), (l, j, k)
                assert (bank, word) not in seen
                seen.add((bank, word))
    assert sum(len(e["params"]) for e in pm["layers"]) == pm["parameters"]
    # the manifest on disk is the returned one
    assert json.loads((tmp_path / "manifest.json").read_text()) == json.loads(json.dumps(m))


def test_verilog_command_writes_verilog_manifest_and_lint(tmp_path, require_tool):
    require_tool("verilator")
    out = tmp_path / "v"
    r = CliRunner().invoke(main, ["verilog", "--config", "examples/xor.toml", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "lint:" in r.output
    text = (out / "trainer.v").read_text()
    m = json.loads((out / "manifest.json").read_text())
    rep = json.loads((out / "report.json").read_text())
    assert m["top_module"] == TOP == "trainer"
    header = re.search(rf"^module {TOP}\(([^)]*)\);", text, re.M)
    assert header, "top module missing"
    header_ports = {p.strip() for p in header.group(1).split(",")}
    names = {p["name"] for p in m["ports"]}
    assert names == header_ports
    assert {"clk", "rst", "s_data__payload", "s_data__valid", "s_data__ready", "m_data__payload",
            "csr__addr", "csr__rdata", "csr__ack", "busy", "param_signature"} <= names
    # each port declared in the top module with the manifest's direction and width
    top_text = text[header.start():text.index("endmodule", header.start())]
    for p in m["ports"]:
        rng = "" if p["width"] == 1 else rf"\[{p['width'] - 1}:0\] "
        assert re.search(rf"^\s*{p['direction']} {rng}{p['name']};", top_text, re.M), p
    payload = next(p for p in m["ports"] if p["name"] == "s_data__payload")
    cfg = load_config("examples/xor.toml")
    assert payload["fields"] == [
        {"name": "data", "offset": 0, "width": cfg.act.width, "signed": True},
        {"name": "last", "offset": cfg.act.width, "width": 1, "signed": False}]
    # register map, formats, config
    assert {r["name"]: r["address"] for r in m["csr"]["registers"]} == REG
    assert m["csr"]["status_bits"] == STATUS_BITS
    assert m["formats"]["act"] == {"width": 16, "int_bits": 4, "frac_bits": 12, "signed": True, "q": "Q4.12"}
    assert m["lanes"] == 4 and m["config"]["network"]["layers"] == [2, 4, 1]
    assert m["tools"]["amaranth"] and "git" in m
    # lint: ran, and nothing beyond the documented waivers (sim.flows.lint.LINT_WAIVERS)
    lint = m["lint"]
    assert lint["clean"] is not None, lint.get("error")
    assert lint["clean"], "lint warnings not waived:\n" + "\n".join(lint["warnings"][:20])
    assert rep["lint_clean"] is True and rep["top_module"] == "trainer"
    assert rep["config"]["hardware"]["lanes"] == 4


def test_verilog_command_bad_config_is_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[hardware]\nlanes = 0\n")
    r = CliRunner().invoke(main, ["verilog", "--config", str(bad), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert "lanes" in r.output and "Traceback" not in r.output


def test_ecp5_export_instantiates_the_primitives_and_says_so(tmp_path):
    cfg = xor(lanes=2)
    generic = export_verilog(cfg, tmp_path / "g", lint=False)
    ecp5 = export_verilog(cfg, tmp_path / "e", lint=False, dsp="ecp5")
    assert "MULT18X18D" not in (tmp_path / "g" / "trainer.v").read_text()
    text = (tmp_path / "e" / "trainer.v").read_text()
    # two halves per lane and lr x delta, each with its input and output registers
    assert text.count("MULT18X18D ") == 2 * cfg.lanes + 1
    assert text.count('.REG_OUTPUT_CLK("CLK0")') == 2 * cfg.lanes + 1
    assert (generic["multipliers"]["dsp"], ecp5["multipliers"]["dsp"]) == ("generic", "ecp5")
    assert generic["ports"] == ecp5["ports"] and generic["param_map"] == ecp5["param_map"]
    with pytest.raises(ValueError, match="dsp must be one of generic, ecp5, got 'xilinx'"):
        export_verilog(cfg, tmp_path / "x", lint=False, dsp="xilinx")
