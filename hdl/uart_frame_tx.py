"""The device's frame sender: a reply from the bridge's reply buffer, or a fixed error
frame, with its CRC appended (hdl/uart_protocol.py; docs/uart.md)."""
from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .crc import crc16_step
from .uart_protocol import CRC_INIT, WHY_CRC, WHY_TAG, error_frame

__all__ = ["FrameSender"]


class FrameSender(wiring.Component):
    """Sends ``length`` bytes of the reply buffer and their CRC (high byte first), or the
    'e' frame for ``why``.

    Parameters
    ----------
    depth : int
        Bytes in the reply buffer.

    Members
    -------
    start : In(1)
        Pulse: send the reply buffer's first ``length`` bytes (``error`` low) or the 'e'
        frame (``error`` high; ``why``: 0 for WHY_CRC, 1 for WHY_TAG).
    length : In(range(depth + 1))
    error, why : In(1)
    rd_addr : Out(range(depth))
        The reply buffer's read address; ``rd_data`` (In(8)) is its byte a cycle later.
    o : Out(stream.Signature(8))
        Bytes to the UART transmitter.
    busy : Out(1)
        From ``start`` until the frame's last byte has been taken.
    """

    def __init__(self, depth: int):
        self._depth = depth
        super().__init__({"start": In(1), "length": In(range(depth + 1)), "error": In(1), "why": In(1),
                          "rd_addr": Out(range(depth)), "rd_data": In(8), "o": Out(stream.Signature(8)),
                          "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        crc, k, left = Signal(16), Signal(range(self._depth + 1)), Signal(range(self._depth + 1))
        fixed = Signal(32)  # the 'e' frame, shifted out a byte at a time
        frames = [Const(int.from_bytes(error_frame(w), "little"), 32) for w in (WHY_CRC, WHY_TAG)]
        m.d.comb += self.rd_addr.eq(k)
        with m.FSM(name="frame_tx"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [crc.eq(CRC_INIT), k.eq(0), left.eq(self.length)]
                    with m.If(self.error):
                        m.d.sync += [fixed.eq(Mux(self.why, frames[1], frames[0])), left.eq(4)]
                        m.next = "FIXED"
                    with m.Else():
                        m.next = "READ"
            with m.State("READ"):  # the buffer's byte k arrives in the next cycle
                m.d.comb += self.busy.eq(1)
                m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += [self.busy.eq(1), self.o.valid.eq(1), self.o.payload.eq(self.rd_data)]
                with m.If(self.o.ready):
                    m.d.sync += [crc.eq(crc16_step(crc, self.rd_data)), k.eq(k + 1)]
                    with m.If(k + 1 == left):
                        m.next = "CRC_HI"
                    with m.Else():
                        m.next = "READ"
            with m.State("CRC_HI"):
                m.d.comb += [self.busy.eq(1), self.o.valid.eq(1), self.o.payload.eq(crc[8:])]
                with m.If(self.o.ready):
                    m.next = "CRC_LO"
            with m.State("CRC_LO"):
                m.d.comb += [self.busy.eq(1), self.o.valid.eq(1), self.o.payload.eq(crc[:8])]
                with m.If(self.o.ready):
                    m.next = "IDLE"
            with m.State("FIXED"):
                m.d.comb += [self.busy.eq(1), self.o.valid.eq(1), self.o.payload.eq(fixed[:8])]
                with m.If(self.o.ready):
                    m.d.sync += [fixed.eq(fixed >> 8), left.eq(left - 1)]
                    with m.If(left == 1):
                        m.next = "IDLE"
        return m
