"""Build Verilog and run it: any component under a cocotb test module on Icarus or
Verilator (``cocotb_run``), the trainer's jobs in its Verilog testbench wrapper
(``rtl_run``), the trainer under the UART (``uart_rtl``), the trainer under amaranth.sim
(``amaranth_run``), and the behavioural models of FPGA primitives compiled with designs
that use them (``primitives``)."""
