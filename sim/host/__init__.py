"""The host side: one driver (``driver.TrainerHost``) over any transport (``transport.Transport``):
the simulated bus under amaranth.sim or cocotb, the simulated UART, or a serial port to a board
(the UART framing those share is ``uart_framing``)."""
