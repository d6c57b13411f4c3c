"""From a config to files for users and tools: Verilog export with its manifest
(``verilog_export``), Verilator lint (``lint``), synthesis, place and route and timing
reports (``synth``), board bitstreams (``board_build``) and throughput benches (``bench``)."""
