"""What runs inside the simulators: cocotb test modules (``activation``, ``mac``, ``output``,
``trainer``, ``uart_trainer``; run by ``sim.runners``) and the stream helpers they and the
amaranth.sim tests share (``streams`` for cocotb, ``amaranth_streams`` for amaranth.sim)."""
