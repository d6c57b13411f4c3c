"""The trainer over a UART: a command bridge from bytes to the control bus and sample
streams, and the board-level top ``UartTrainer`` (docs/uart.md).

The byte protocol's constants and CRC are defined once, in ``hdl/uart_protocol.py``; this
module and the host side (``sim/host/uart_framing.py``) both take them from there.
"""
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.config import Config

from .crc import crc16_step
from .csr import ADDR_WIDTH, CsrResult, CsrSignature
from .trainer import beat_layout, build_trainer
from .uart import UartRx, UartTx, uart_divisor
from .uart_frame_tx import FrameSender
from .uart_protocol import (ARG_BYTES, BEAT_LAST, CMD_OUTPUTS, CMD_READ, CMD_SEND, CMD_WRITE, CRC_INIT, MAX_CHUNK,
                            MAX_OUTPUTS, RESYNC_IDLE_BITS, RSP_OUTPUTS, RSP_READ, RSP_SENT, RSP_WRITE, RX_FIFO_DEPTH,
                            code_bytes)

__all__ = ["CommandBridge", "UartTrainer", "rx_byte_layout", "GapMarker"]

#: a received byte, and whether the line was idle for the resync gap before it
rx_byte_layout = data.StructLayout({"data": 8, "gap": 1})


class GapMarker(wiring.Component):
    """Marks each received byte with ``gap``: the line was idle for ``RESYNC_IDLE_BITS`` bit
    periods or more before it (the first byte after reset too). Counted from one byte's
    completion to the next: back to back they are 10 bit periods apart.

    Members
    -------
    i : In(stream.Signature(8))
        Bytes from the UART receiver (no backpressure: a receiver cannot wait).
    o : Out(stream.Signature(rx_byte_layout))
    """

    def __init__(self, divisor: int):
        self._limit = (10 + RESYNC_IDLE_BITS) * divisor
        super().__init__({"i": In(stream.Signature(8)), "o": Out(stream.Signature(rx_byte_layout))})

    def elaborate(self, platform):
        m = Module()
        idle = Signal(range(self._limit + 1), init=self._limit)
        m.d.comb += [self.o.valid.eq(self.i.valid), self.i.ready.eq(self.o.ready),
                     self.o.payload.data.eq(self.i.payload), self.o.payload.gap.eq(idle == self._limit)]
        with m.If(self.i.valid):
            m.d.sync += idle.eq(0)
        with m.Elif(idle != self._limit):
            m.d.sync += idle.eq(idle + 1)
        return m


class CommandBridge(wiring.Component):
    """Commands from a byte stream to the trainer's control bus and input stream; replies,
    framed with their CRC, back to a byte stream (protocol: ``hdl/uart_protocol.py``).

    One command at a time. A command is applied only once its CRC has checked: an 'S'
    command's codes wait in a buffer of ``MAX_CHUNK`` beats until then. A frame whose CRC
    fails, or a byte that starts no command, is answered with an 'e' frame, after which
    every byte is dropped until one that follows a resync gap (``i.payload.gap``); such a
    byte also abandons a partial frame. Every reply is built in a reply buffer and kept
    there: a command with the same ``seq`` as the last one executed gets that reply again
    and is not executed twice. A CSR command's result is the control bus's ``result``.

    Parameters
    ----------
    cfg : Config
        The trainer's config (the act code width sets the bytes per code).

    Members
    -------
    i : In(stream.Signature(rx_byte_layout))
        Bytes from the host, each with its ``gap`` flag (``GapMarker``).
    o : Out(stream.Signature(8))
        Bytes to the host.
    csr : Out(CsrSignature())
        Control bus, initiator side (connect to ``Trainer.csr``).
    s_data : Out(stream.Signature(beat_layout(cfg)))
        Sample beats to the trainer.
    m_data : In(stream.Signature(beat_layout(cfg)))
        Output beats from the trainer, taken by 'O' commands.
    error : Out(1)
        One-cycle pulse: a command was refused (CRC, unknown tag) or a CSR access was.
    """

    def __init__(self, cfg: Config):
        self._cfg = cfg
        self._nbytes = code_bytes(cfg.act.width)
        super().__init__({
            "i": In(stream.Signature(rx_byte_layout)),
            "o": Out(stream.Signature(8)),
            "csr": Out(CsrSignature()),
            "s_data": Out(stream.Signature(beat_layout(cfg))),
            "m_data": In(stream.Signature(beat_layout(cfg))),
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
        reply_max = 3 + MAX_OUTPUTS * (1 + CB)
        m.submodules.codes = codes = Memory(shape=8 * CB, depth=MAX_CHUNK, init=[])
        code_wr, code_rd = codes.write_port(), codes.read_port()
        m.submodules.replies = replies = Memory(shape=8, depth=reply_max, init=[])
        reply_wr, reply_rd = replies.write_port(), replies.read_port()
        m.submodules.sender = tx = FrameSender(reply_max)
        wiring.connect(m, tx.o, wiring.flipped(self.o))
        m.d.comb += [reply_rd.addr.eq(tx.rd_addr), tx.rd_data.eq(reply_rd.data)]

        b, gap = self.i.payload.data, self.i.payload.gap
        crc, cmd, seq, args = Signal(16), Signal(8), Signal(8), Signal(64)
        idx, nargs = Signal(range(9)), Signal(range(9))
        beat, bidx, code = Signal(range(MAX_CHUNK + 1)), Signal(range(CB)), Signal(8 * CB)
        last_seq, have_last = Signal(8), Signal()
        hdr, rlen, k = Signal(56), Signal(range(reply_max + 1)), Signal(3)
        n_out, wptr, ob, obeat = Signal(8), Signal(range(reply_max + 1)), Signal(range(CB + 1)), Signal(8 * (1 + CB))
        # one CRC step for every received byte; a byte that starts a frame steps from CRC_INIT
        start_frame = Signal()
        crc_next = crc16_step(Mux(start_frame, CRC_INIT, crc), b)
        count, flags, most = args[:8], args[8:16], args[:8]
        addr_ok = ~args[ADDR_WIDTH:32].any()
        assembled = Cat(code[8:], b) if CB > 1 else b
        m.d.comb += [code_wr.addr.eq(beat), code_wr.data.eq(assembled), code_rd.addr.eq(beat),
                     self.csr.addr.eq(args[:ADDR_WIDTH]), self.csr.wdata.eq(args[32:])]
        m.d.sync += self.error.eq(0)

        def take_tag():
            """The byte ``b`` starts a frame (whatever state the parser was in)."""
            m.d.comb += start_frame.eq(1)
            m.d.sync += [cmd.eq(b), crc.eq(crc_next), idx.eq(0)]
            with m.Switch(b):
                for tag, n in ARG_BYTES.items():
                    with m.Case(tag):
                        m.d.sync += nargs.eq(n)
                        m.next = "SEQ"
                with m.Default():
                    m.next = "ERR_TAG"

        def receive(body):
            """A parser state: take a byte; one after a resync gap starts a new frame."""
            m.d.comb += self.i.ready.eq(1)
            with m.If(self.i.valid):
                with m.If(gap):
                    take_tag()
                with m.Else():
                    m.d.sync += crc.eq(crc_next)
                    body()

        with m.FSM(name="bridge"):
            with m.State("TAG"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    take_tag()
            with m.State("SEQ"):
                def _seq():
                    m.d.sync += seq.eq(b)
                    m.next = "ARGS"
                receive(_seq)
            with m.State("ARGS"):
                def _args():
                    m.d.sync += [args.word_select(idx[:3], 8).eq(b), idx.eq(idx + 1)]
                    with m.If(idx == nargs - 1):
                        m.d.sync += [beat.eq(0), bidx.eq(0)]
                        with m.If((cmd == CMD_SEND) & (count > MAX_CHUNK)):
                            m.next = "ERR_CRC"  # no such command was sent: refuse before the buffer overflows
                        with m.Elif((cmd == CMD_SEND) & (count != 0)):
                            m.next = "CODES"
                        with m.Else():
                            m.next = "CRC0"
                receive(_args)
            with m.State("CODES"):
                def _codes():
                    with m.If(bidx == CB - 1):
                        m.d.comb += code_wr.en.eq(1)
                        m.d.sync += [bidx.eq(0), beat.eq(beat + 1)]
                        with m.If(beat == count - 1):
                            m.next = "CRC0"
                    with m.Else():
                        m.d.sync += [bidx.eq(bidx + 1), code.eq(assembled)]
                receive(_codes)
            with m.State("CRC0"):
                def _crc0():
                    m.next = "CRC1"
                receive(_crc0)
            with m.State("CRC1"):
                def _crc1():
                    args_ok = (cmd != CMD_OUTPUTS) | ((most >= 1) & (most <= MAX_OUTPUTS))
                    with m.If((crc_next != 0) | ~args_ok):
                        m.next = "ERR_CRC"
                    with m.Elif(have_last & (seq == last_seq)):
                        m.next = "SEND"  # a repeated command: its reply again, not executed twice
                    with m.Else():
                        m.d.sync += [beat.eq(0), n_out.eq(0), wptr.eq(3), ob.eq(0)]
                        with m.Switch(cmd):
                            with m.Case(CMD_WRITE, CMD_READ):
                                m.next = "CSR"
                            with m.Case(CMD_SEND):
                                m.next = "S_READ"
                            with m.Default():
                                m.next = "O_TAKE"
                receive(_crc1)
            for name, why in (("ERR_TAG", 1), ("ERR_CRC", 0)):
                with m.State(name):
                    m.d.comb += [tx.start.eq(1), tx.error.eq(1), tx.why.eq(why)]
                    m.d.sync += self.error.eq(1)
                    m.next = "ERR_WAIT"
            with m.State("ERR_WAIT"):
                with m.If(~tx.busy):
                    m.next = "DISCARD"
            with m.State("DISCARD"):  # until a byte after a resync gap
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid & gap):
                    take_tag()
            # ---- execution: the reply goes into the reply buffer, then out
            with m.State("CSR"):
                is_write = cmd == CMD_WRITE
                tag = Mux(is_write, Const(RSP_WRITE, 8), Const(RSP_READ, 8))
                with m.If(~addr_ok):  # beyond the control bus's addresses
                    m.d.sync += [hdr.eq(Cat(tag, seq, Const(CsrResult.UNMAPPED.value, 8), Const(0, 32))),
                                 k.eq(0), rlen.eq(Mux(is_write, 3, 7)), self.error.eq(1)]
                    m.next = "HDR"
                with m.Else():
                    m.d.comb += [self.csr.we.eq(is_write), self.csr.re.eq(~is_write)]
                    with m.If(self.csr.ack):
                        m.d.sync += [hdr.eq(Cat(tag, seq, self.csr.result.as_value(), Const(0, 6), self.csr.rdata)),
                                     k.eq(0), rlen.eq(Mux(is_write, 3, 7)),
                                     self.error.eq(self.csr.result != CsrResult.OK)]
                        m.next = "HDR"
            with m.State("S_READ"):  # the buffer's code arrives in the next cycle
                with m.If(count == 0):
                    m.d.sync += [hdr.eq(Cat(Const(RSP_SENT, 8), seq)), k.eq(0), rlen.eq(2)]
                    m.next = "HDR"
                with m.Else():
                    m.next = "S_BEAT"
            with m.State("S_BEAT"):
                m.d.comb += [self.s_data.valid.eq(1), self.s_data.payload.data.eq(code_rd.data[:AW]),
                             self.s_data.payload.last.eq(flags[0] & (beat == count - 1))]
                with m.If(self.s_data.ready):
                    m.d.sync += beat.eq(beat + 1)
                    with m.If(beat == count - 1):
                        m.d.sync += [hdr.eq(Cat(Const(RSP_SENT, 8), seq)), k.eq(0), rlen.eq(2)]
                        m.next = "HDR"
                    with m.Else():
                        m.next = "S_READ"
            with m.State("O_TAKE"):  # the output beats there now, at most `most`
                with m.If((n_out < most) & self.m_data.valid):
                    m.d.comb += self.m_data.ready.eq(1)
                    ext = Signal(signed(8 * CB))
                    m.d.comb += ext.eq(self.m_data.payload.data)
                    assert BEAT_LAST == 1
                    m.d.sync += [obeat.eq(Cat(self.m_data.payload.last, Const(0, 7), ext)), ob.eq(0)]
                    m.next = "O_BYTE"
                with m.Else():
                    m.d.sync += [hdr.eq(Cat(Const(RSP_OUTPUTS, 8), seq, n_out)), k.eq(0), rlen.eq(wptr)]
                    m.next = "HDR"
            with m.State("O_BYTE"):
                m.d.comb += [reply_wr.addr.eq(wptr), reply_wr.data.eq(obeat.word_select(ob, 8)), reply_wr.en.eq(1)]
                m.d.sync += [wptr.eq(wptr + 1), ob.eq(ob + 1)]
                with m.If(ob == CB):
                    m.d.sync += n_out.eq(n_out + 1)
                    m.next = "O_TAKE"
            with m.State("HDR"):  # the reply's first bytes (tag, seq, ...) into the buffer
                last_k = Mux(cmd == CMD_READ, 6, Mux(cmd == CMD_SEND, 1, 2))
                m.d.comb += [reply_wr.addr.eq(k), reply_wr.data.eq(hdr.word_select(k, 8)), reply_wr.en.eq(1)]
                m.d.sync += k.eq(k + 1)
                with m.If(k == last_k):
                    m.d.sync += [last_seq.eq(seq), have_last.eq(1)]
                    m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += [tx.start.eq(1), tx.length.eq(rlen)]
                m.next = "SEND_WAIT"
            with m.State("SEND_WAIT"):
                with m.If(~tx.busy):
                    m.next = "TAG"
        return m


class UartTrainer(wiring.Component):
    """The trainer behind a UART: ``Trainer`` + ``CommandBridge`` + 8N1 ``UartRx``/``UartTx``,
    with a ``GapMarker`` (resynchronisation) and a receive FIFO of ``RX_FIFO_DEPTH`` bytes
    (more than the longest command: the host waits for each reply).

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
        Sticky until reset: a framing error, a receive overrun, a command refused for its
        check or tag, or a refused CSR access (an LED).
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
        m.submodules.gap = gap = GapMarker(self._divisor)
        # bytes and their gap flags, 9 bits a FIFO entry
        m.submodules.rx_fifo = rx_fifo = fifo.SyncFIFOBuffered(width=rx_byte_layout.size, depth=RX_FIFO_DEPTH)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx), self.busy.eq(trainer.busy)]
        wiring.connect(m, urx.o, gap.i)
        m.d.comb += [rx_fifo.w_stream.payload.eq(gap.o.payload), rx_fifo.w_stream.valid.eq(gap.o.valid),
                     gap.o.ready.eq(rx_fifo.w_stream.ready),
                     bridge.i.payload.eq(rx_fifo.r_stream.payload), bridge.i.valid.eq(rx_fifo.r_stream.valid),
                     rx_fifo.r_stream.ready.eq(bridge.i.ready)]
        wiring.connect(m, bridge.o, utx.i)
        wiring.connect(m, bridge.csr, trainer.csr)
        wiring.connect(m, bridge.s_data, trainer.s_data)
        wiring.connect(m, trainer.m_data, bridge.m_data)
        with m.If(urx.framing_error | urx.overrun | bridge.error):
            m.d.sync += self.error.eq(1)
        return m
