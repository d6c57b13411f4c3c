"""8N1 UART receiver and transmitter with byte streams (docs/uart.md).

The bit period is a divisor in clock cycles, computed by the caller with
:func:`uart_divisor` (``round(clk_freq / baud)``, refused below 4 cycles per bit or with a
baud error above 2 %).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["UartRx", "UartTx", "uart_divisor", "MIN_DIVISOR", "MAX_BAUD_ERROR"]

MIN_DIVISOR = 4
MAX_BAUD_ERROR = 0.02


def uart_divisor(clk_freq: int, baud: int) -> int:
    """Clock cycles per bit, ``round(clk_freq / baud)``.

    Raises
    ------
    ValueError
        If the divisor is below :data:`MIN_DIVISOR` or the baud rate it gives is off by more
        than :data:`MAX_BAUD_ERROR` (2 %); the message names the values.
    """
    if not isinstance(clk_freq, (int, float)) or not isinstance(baud, (int, float)) or clk_freq <= 0 or baud <= 0:
        raise ValueError(f"clk_freq and baud must be positive numbers, got clk_freq={clk_freq!r}, baud={baud!r}")
    divisor = round(clk_freq / baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(f"UART divisor {divisor} = round(clk_freq={clk_freq!r} Hz / baud={baud!r}) is below "
                         f"{MIN_DIVISOR} clock cycles per bit: raise the clock or lower the baud rate")
    actual = clk_freq / divisor
    err = abs(actual - baud) / baud
    if err > MAX_BAUD_ERROR:
        raise ValueError(f"UART baud error {err:.2%} exceeds {MAX_BAUD_ERROR:.0%}: clk_freq={clk_freq!r} Hz with "
                         f"divisor {divisor} gives {actual:.1f} Bd instead of baud={baud!r}")
    return divisor


def _check(divisor) -> int:
    if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < MIN_DIVISOR:
        raise ValueError(f"UART divisor must be an integer >= {MIN_DIVISOR} clock cycles per bit, got {divisor!r}")
    return divisor


class _UartPort(wiring.Component):
    """What both directions share: the bit period in clock cycles, checked once.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (>= 4).
    """

    def __init__(self, divisor: int):
        self._divisor = _check(divisor)
        super().__init__()

    @property
    def divisor(self) -> int:
        return self._divisor


class UartTx(_UartPort):
    """8N1 transmitter: start bit (0), 8 data bits LSB first, stop bit (1); constructed
    with the bit period ``divisor`` (see ``_UartPort``).

    Members
    -------
    i : In(stream.Signature(8))
        Bytes to send; ``ready`` is high while the line is idle (after the stop bit).
    tx : Out(1)
        The serial line, registered, idle high.
    """

    i: In(stream.Signature(8))
    tx: Out(1, init=1)

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        shreg = Signal(10)  # [0] start, [1..8] data, [9] stop
        bits = Signal(range(11))  # bit periods left in the frame
        cnt = Signal(range(d))
        m.d.comb += self.i.ready.eq(bits == 0)
        with m.If(bits == 0):
            with m.If(self.i.valid):
                m.d.sync += [shreg.eq(Cat(Const(0, 1), self.i.payload, Const(1, 1))), bits.eq(10),
                             cnt.eq(d - 1), self.tx.eq(0)]
        with m.Elif(cnt == 0):
            m.d.sync += [cnt.eq(d - 1), bits.eq(bits - 1), shreg.eq(shreg >> 1),
                         self.tx.eq(Mux(bits == 1, 1, shreg[1]))]
        with m.Else():
            m.d.sync += cnt.eq(cnt - 1)
        return m


class UartRx(_UartPort):
    """8N1 receiver: 2-flop synchronizer, start bit found on the falling edge and checked
    at its middle, data and stop bits sampled mid-bit.

    A frame whose stop bit samples low is dropped with a one-cycle ``framing_error``
    pulse; the receiver then waits for the line to go high before looking for a start bit.
    A byte that completes while the previous one is still waiting on ``o`` is dropped with
    a one-cycle ``overrun`` pulse (the receiver cannot stall the line: buffer behind it).
    Constructed with the bit period ``divisor`` (see ``_UartPort``).

    Members
    -------
    rx : In(1)
        The serial line (asynchronous; idle high).
    o : Out(stream.Signature(8))
        Received bytes.
    framing_error : Out(1)
        One-cycle pulse: a frame with a low stop bit was dropped.
    overrun : Out(1)
        One-cycle pulse: a byte was dropped because ``o`` was not ready for it.
    """

    rx: In(1, init=1)
    o: Out(stream.Signature(8))
    framing_error: Out(1)
    overrun: Out(1)

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        s1 = Signal(init=1)
        line = Signal(init=1)
        m.d.sync += [s1.eq(self.rx), line.eq(s1)]
        cnt = Signal(range(d))
        nbit = Signal(range(8))
        shreg = Signal(8)

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        m.d.sync += [self.framing_error.eq(0), self.overrun.eq(0)]

        with m.FSM(name="uart_rx"):
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += cnt.eq(d // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(cnt == 0):
                    with m.If(line):  # a glitch, not a start bit
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [cnt.eq(d - 1), nbit.eq(0)]
                        m.next = "DATA"
                with m.Else():
                    m.d.sync += cnt.eq(cnt - 1)
            with m.State("DATA"):
                with m.If(cnt == 0):
                    m.d.sync += [shreg.eq(Cat(shreg[1:], line)), cnt.eq(d - 1), nbit.eq(nbit + 1)]
                    with m.If(nbit == 7):
                        m.next = "STOP"
                with m.Else():
                    m.d.sync += cnt.eq(cnt - 1)
            with m.State("STOP"):
                with m.If(cnt == 0):
                    with m.If(line):
                        with m.If(self.o.valid & ~self.o.ready):
                            m.d.sync += self.overrun.eq(1)
                        with m.Else():
                            m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += self.framing_error.eq(1)
                        m.next = "BREAK"
                with m.Else():
                    m.d.sync += cnt.eq(cnt - 1)
            with m.State("BREAK"):  # wait for the line to return high
                with m.If(line):
                    m.next = "IDLE"
        return m
