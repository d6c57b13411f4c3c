"""The trainer over a UART: a command bridge from bytes to the control bus and sample
streams, and the board-level top ``UartTrainer`` (docs/uart.md).

The byte protocol's constants are defined once, in ``hdl/uart_protocol.py``; this module
and the host side (``sim/host/uart_framing.py``) both take them from there.
"""
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.config import Config

from .csr import PARAM_WINDOW, REG, STATUS_BITS, CsrSignature
from .trainer import beat_layout, build_trainer
from .uart import UartRx, UartTx, uart_divisor
from .uart_protocol import (CMD_READ, CMD_SEND, CMD_WRITE, OUT_BEAT, OUT_BEAT_LAST, RSP_ERROR, RSP_READ, RSP_SENT,
                            RSP_WRITE, RX_FIFO_DEPTH, SEND_LAST, STATUS_BUS_ERROR, code_bytes)

__all__ = ["CommandBridge", "UartTrainer"]

_BUS_ERROR_BIT = STATUS_BITS["bus_error"].bit_length() - 1
_PARAM_BIT = PARAM_WINDOW.bit_length() - 1
_SEND_LAST_BIT = SEND_LAST.bit_length() - 1


class CommandBridge(wiring.Component):
    """Commands from a byte stream to the trainer's control bus and input stream; replies
    and output beats, framed, back to a byte stream (protocol: ``hdl/uart_protocol.py``).

    One command at a time, in order. A CSR command reads STATUS, does the access, reads
    STATUS again, and replies with status ``STATUS_BUS_ERROR`` when the trainer's sticky
    ``bus_error`` flag rose during it or when it was a parameter access while ``busy``.
    Output beats from ``m_data`` go out as tagged frames between reply frames (replies
    first); an output beat waits (backpressure) while a frame is being sent.

    Parameters
    ----------
    cfg : Config
        The trainer's config (the act code width sets the bytes per code).

    Members
    -------
    i : In(stream.Signature(8))
        Bytes from the host.
    o : Out(stream.Signature(8))
        Bytes to the host.
    csr : Out(CsrSignature())
        Control bus, initiator side (connect to ``Trainer.csr``).
    s_data : Out(stream.Signature(beat_layout(cfg)))
        Sample beats to the trainer.
    m_data : In(stream.Signature(beat_layout(cfg)))
        Output beats from the trainer.
    busy : In(1)
        The trainer's ``busy`` wire.
    error : Out(1)
        One-cycle pulse: an unknown command byte was dropped, or a CSR access was refused.
    """

    def __init__(self, cfg: Config):
        self._cfg = cfg
        self._nbytes = code_bytes(cfg.act.width)
        super().__init__({
            "i": In(stream.Signature(8)),
            "o": Out(stream.Signature(8)),
            "csr": Out(CsrSignature()),
            "s_data": Out(stream.Signature(beat_layout(cfg))),
            "m_data": In(stream.Signature(beat_layout(cfg))),
            "busy": In(1),
            "error": Out(1),
        })

    @property
    def cfg(self) -> Config:
        return self._cfg

    @property
    def code_bytes(self) -> int:
        return self._nbytes

    def elaborate(self, platform):
        m = Module()
        CB, AW = self._nbytes, self._cfg.act.width
        maxf = max(6, 1 + CB)  # longest frame to the host, bytes

        # ---------------- frames to the host ----------------------------------------------
        buf = Signal(8 * maxf)
        left = Signal(range(maxf + 1))
        resp_valid = Signal()
        resp_ready = Signal()
        resp_frame = Signal(8 * maxf)
        resp_len = Signal(range(maxf + 1))
        ext = Signal(signed(8 * CB))
        m.d.comb += [self.o.payload.eq(buf[:8]), self.o.valid.eq(left != 0), ext.eq(self.m_data.payload.data)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += [buf.eq(buf >> 8), left.eq(left - 1)]
        with m.If(left == 0):
            with m.If(resp_valid):
                m.d.comb += resp_ready.eq(1)
                m.d.sync += [buf.eq(resp_frame), left.eq(resp_len)]
            with m.Elif(self.m_data.valid):
                m.d.comb += self.m_data.ready.eq(1)
                tag = Mux(self.m_data.payload.last, Const(OUT_BEAT_LAST, 8), Const(OUT_BEAT, 8))
                m.d.sync += [buf.eq(Cat(tag, ext)), left.eq(1 + CB)]

        # ---------------- commands from the host ------------------------------------------
        cmd = Signal(8)
        args = Signal(64)  # W: addr, data; R: addr; S: count, flags
        idx = Signal(range(9))
        nargs = Signal(range(9))
        count = Signal(8)
        last_chunk = Signal()
        code = Signal(8 * CB)
        s0 = Signal(32)
        rdata = Signal(32)
        first = Signal()
        busy_at = Signal()
        addr = args[:32]
        is_write = cmd == CMD_WRITE
        status = Signal(8)
        m.d.sync += self.error.eq(0)

        with m.FSM(name="bridge"):
            with m.State("CMD"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [cmd.eq(self.i.payload), idx.eq(0)]
                    with m.Switch(self.i.payload):
                        with m.Case(CMD_WRITE):
                            m.d.sync += nargs.eq(8)
                            m.next = "ARGS"
                        with m.Case(CMD_READ):
                            m.d.sync += nargs.eq(4)
                            m.next = "ARGS"
                        with m.Case(CMD_SEND):
                            m.d.sync += nargs.eq(2)
                            m.next = "ARGS"
                        with m.Default():
                            m.d.sync += self.error.eq(1)
                            m.next = "UNKNOWN"
            with m.State("ARGS"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [args.word_select(idx[:3], 8).eq(self.i.payload), idx.eq(idx + 1)]
                    with m.If(idx == nargs - 1):
                        with m.If(cmd == CMD_SEND):
                            m.next = "SEND"
                        with m.Else():
                            m.next = "STATUS0"
            # CSR access: STATUS before, the access, STATUS after
            with m.State("STATUS0"):
                m.d.comb += [self.csr.addr.eq(REG["STATUS"]), self.csr.re.eq(1)]
                with m.If(self.csr.ack):
                    m.d.sync += [s0.eq(self.csr.rdata), first.eq(1)]
                    m.next = "ACCESS"
            with m.State("ACCESS"):
                m.d.comb += [self.csr.addr.eq(addr), self.csr.wdata.eq(args[32:]),
                             self.csr.we.eq(is_write), self.csr.re.eq(~is_write)]
                with m.If(first):  # the cycle in which the trainer decides to refuse or not
                    m.d.sync += [busy_at.eq(self.busy), first.eq(0)]
                with m.If(self.csr.ack):
                    m.d.sync += rdata.eq(self.csr.rdata)
                    m.next = "STATUS1"
            with m.State("STATUS1"):
                m.d.comb += [self.csr.addr.eq(REG["STATUS"]), self.csr.re.eq(1)]
                with m.If(self.csr.ack):
                    rose = self.csr.rdata[_BUS_ERROR_BIT] & ~s0[_BUS_ERROR_BIT]
                    m.d.sync += status.eq(Mux(rose | (addr[_PARAM_BIT] & busy_at), STATUS_BUS_ERROR, 0))
                    m.next = "CSR_EVAL"
            with m.State("CSR_EVAL"):
                m.d.comb += [resp_valid.eq(1),
                             resp_frame.eq(Mux(is_write, Cat(Const(RSP_WRITE, 8), status),
                                               Cat(Const(RSP_READ, 8), status, rdata))),
                             resp_len.eq(Mux(is_write, 2, 6))]
                with m.If(resp_ready):
                    m.d.sync += self.error.eq(status != 0)
                    m.next = "CMD"
            # send beats: count = args[0:8], flags = args[8:16]
            with m.State("SEND"):
                m.d.sync += [count.eq(args[:8]), last_chunk.eq(args[8 + _SEND_LAST_BIT]), idx.eq(0)]
                with m.If(args[:8] == 0):
                    m.next = "SENT"
                with m.Else():
                    m.next = "CODE"
            with m.State("CODE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    if CB == 1:
                        m.d.sync += code.eq(self.i.payload)
                    else:
                        m.d.sync += code.word_select(idx[:max(1, (CB - 1).bit_length())], 8).eq(self.i.payload)
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(idx == CB - 1):
                        m.next = "BEAT"
            with m.State("BEAT"):
                m.d.comb += [self.s_data.valid.eq(1), self.s_data.payload.data.eq(code[:AW]),
                             self.s_data.payload.last.eq(last_chunk & (count == 1))]
                with m.If(self.s_data.ready):
                    m.d.sync += [count.eq(count - 1), idx.eq(0)]
                    with m.If(count == 1):
                        m.next = "SENT"
                    with m.Else():
                        m.next = "CODE"
            with m.State("SENT"):
                m.d.comb += [resp_valid.eq(1), resp_frame.eq(RSP_SENT), resp_len.eq(1)]
                with m.If(resp_ready):
                    m.next = "CMD"
            with m.State("UNKNOWN"):
                m.d.comb += [resp_valid.eq(1), resp_frame.eq(Cat(Const(RSP_ERROR, 8), cmd)), resp_len.eq(2)]
                with m.If(resp_ready):
                    m.next = "CMD"
        return m


class UartTrainer(wiring.Component):
    """The trainer behind a UART: ``Trainer`` + ``CommandBridge`` + 8N1 ``UartRx``/``UartTx``,
    with a receive FIFO of ``RX_FIFO_DEPTH`` bytes (the host's flow-control window).

    Parameters
    ----------
    cfg : Config
        The network and hardware config.
    clk_freq : int
        Clock frequency of the ``sync`` domain in Hz.
    baud : int
        Baud rate (default 115200); ``round(clk_freq / baud)`` cycles per bit, refused by
        :func:`hdl.uart.uart_divisor` below 4 cycles or above 2 % baud error.

    Members
    -------
    rx : In(1)
        Serial line from the host (idle high).
    tx : Out(1)
        Serial line to the host (idle high).
    busy : Out(1)
        The trainer's busy wire (an LED).
    error : Out(1)
        Sticky until reset: a framing error, a receive overrun (the host overran the FIFO),
        an unknown command byte, or a refused CSR access (an LED).
    """

    def __init__(self, cfg: Config, *, clk_freq: int, baud: int = 115200):
        self._cfg = cfg
        self._divisor = uart_divisor(clk_freq, baud)
        self._clk_freq, self._baud = clk_freq, baud
        super().__init__({"rx": In(1), "tx": Out(1), "busy": Out(1), "error": Out(1)})

    @property
    def cfg(self) -> Config:
        return self._cfg

    @property
    def divisor(self) -> int:
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        m.submodules.trainer = trainer = build_trainer(self._cfg)
        m.submodules.bridge = bridge = CommandBridge(self._cfg)
        m.submodules.uart_rx = urx = UartRx(self._divisor)
        m.submodules.uart_tx = utx = UartTx(self._divisor)
        m.submodules.rx_fifo = rx_fifo = fifo.SyncFIFOBuffered(width=8, depth=RX_FIFO_DEPTH)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx), self.busy.eq(trainer.busy), bridge.busy.eq(trainer.busy)]
        wiring.connect(m, urx.o, rx_fifo.w_stream)
        wiring.connect(m, rx_fifo.r_stream, bridge.i)
        wiring.connect(m, bridge.o, utx.i)
        wiring.connect(m, bridge.csr, trainer.csr)
        wiring.connect(m, bridge.s_data, trainer.s_data)
        wiring.connect(m, trainer.m_data, bridge.m_data)
        with m.If(urx.framing_error | urx.overrun | bridge.error):
            m.d.sync += self.error.eq(1)
        return m
