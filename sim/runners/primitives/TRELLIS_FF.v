// Behavioural model of the Lattice ECP5 TRELLIS_FF as hdl/trainer/samples/lanes.py
// instantiates it (dsp="ecp5": copies of a register that yosys must not merge). Written
// for this project from the documented behaviour, not from a vendor library. Modelled:
// the rising-edge flip-flop, clock enable always on (CEMUX "1"), synchronous LSR
// (SRMODE "LSR_OVER_CE") to REGSET's value. Anything else stops the simulation (with a
// line starting "TRELLIS_FF model").
`default_nettype none
module TRELLIS_FF (input wire CLK, input wire LSR, input wire CE, input wire DI, input wire M, output reg Q);
    parameter GSR = "ENABLED";
    parameter CEMUX = "1";
    parameter CLKMUX = "CLK";
    parameter LSRMUX = "LSR";
    parameter SRMODE = "LSR_OVER_CE";
    parameter REGSET = "RESET";
    initial begin
        Q = (REGSET == "SET");
        if (CEMUX != "1" || CLKMUX != "CLK" || LSRMUX != "LSR" || SRMODE != "LSR_OVER_CE") begin
            $display("TRELLIS_FF model: only CEMUX \"1\", CLKMUX \"CLK\", LSRMUX \"LSR\", SRMODE \"LSR_OVER_CE\" are modelled");
            $finish;
        end
    end
    always @(posedge CLK) Q <= LSR ? (REGSET == "SET") : DI;
endmodule
`default_nettype wire
