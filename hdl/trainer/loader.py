"""The sample loader: ``s_data`` into the free one of two input/target buffers.

Runs beside the sequencer: the next sample's beats are taken while the current one
trains. A buffer is full from its sample's last beat until the sequencer releases it.
A sample of the wrong length is dropped and flagged; nothing of it reaches a buffer the
sequencer would start on.
"""
from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.config import Config

from ..layout import Layout
from .beat import beat_layout
from .update import NO_RW

__all__ = ["SampleLoader", "BufferSignature"]


class BufferSignature(wiring.Signature):
    """The double buffer as the sequencer sees it (driven by the loader).

    Members
    -------
    full, infer : Out(1).array(2)
        Buffer b holds a whole sample; its mode.
    loading : Out(1)
        Part of a sample has been taken (or a too-long one is being skipped).
    release, release_buf : In(1)
        The sequencer is done with buffer ``release_buf``.
    """

    def __init__(self):
        super().__init__({"full": Out(1).array(2), "infer": Out(1).array(2), "loading": Out(1),
                          "release": In(1), "release_buf": In(1)})


class SampleLoader(wiring.Component):
    """Two input buffers (``n_in`` codes) and two target buffers (``n_out`` codes).

    Members
    -------
    s_data : In(stream.Signature(beat_layout))
        ``n_in`` input codes then (train mode) ``n_out`` targets, ``last`` on the final one.
    mode_infer : In(1)
        The mode of the next sample (latched with its first beat).
    buffers : Out(BufferSignature)
        The buffers' state, and their release by the sequencer.
    len_error, dropped : Out(1)
        Pulses: a sample had a wrong length; a sample was dropped.
    i_addr, t_addr : In
        Read addresses (both buffers, hdl/layout.py ``ibase``/``tbase``); ``i_data``,
        ``t_data`` (Out) a cycle later.

    The loader writes only a buffer that is not full, which the sequencer does not read.
    """

    def __init__(self, cfg: Config, lay: Layout):
        self._cfg, self._lay = cfg, lay
        AW = cfg.act.width
        super().__init__({
            "s_data": In(stream.Signature(beat_layout(cfg))),
            "mode_infer": In(1),
            "buffers": Out(BufferSignature()),
            "len_error": Out(1),
            "dropped": Out(1),
            "i_addr": In(range(max(lay.idepth, 2))),
            "t_addr": In(range(max(lay.tdepth, 2))),
            "i_data": Out(signed(AW)),
            "t_data": Out(signed(AW)),
        })

    def elaborate(self, platform):
        cfg, lay = self._cfg, self._lay
        m = Module()
        AW, n_in0, n_outL = cfg.act.width, cfg.layers[0], cfg.layers[-1]
        m.submodules.imem = imem = Memory(shape=signed(AW), depth=lay.idepth, init=[], attrs=NO_RW)
        m.submodules.tmem = tmem = Memory(shape=signed(AW), depth=lay.tdepth, init=[], attrs=NO_RW)
        i_rd, i_wr, t_rd, t_wr = imem.read_port(), imem.write_port(), tmem.read_port(), tmem.write_port()
        m.d.comb += [i_rd.addr.eq(self.i_addr), t_rd.addr.eq(self.t_addr),
                     self.i_data.eq(i_rd.data), self.t_data.eq(t_rd.data)]

        bufs = self.buffers
        full, infer = Array(bufs.full), Array(bufs.infer)
        lbuf = Signal()  # the buffer being filled
        load_cnt = Signal(range(n_in0 + n_outL + 1))
        skipping = Signal()  # too long: consuming up to and including `last`, then dropped
        load_mode = Signal()  # mode of the sample being loaded (CTRL until its first beat)
        expect = Signal(range(n_in0 + n_outL + 1))
        m.d.comb += [
            load_mode.eq(Mux(load_cnt == 0, self.mode_infer, infer[lbuf])),
            expect.eq(Mux(load_mode, n_in0, n_in0 + n_outL)),
            bufs.loading.eq((load_cnt != 0) | skipping),
        ]
        beat = self.s_data.payload
        with m.If(skipping):
            m.d.comb += self.s_data.ready.eq(1)
            with m.If(self.s_data.valid & beat.last):
                m.d.sync += skipping.eq(0)
                m.d.comb += self.dropped.eq(1)
        with m.Else():
            m.d.comb += self.s_data.ready.eq(~full[lbuf])
            with m.If(self.s_data.valid & ~full[lbuf]):
                with m.If(load_cnt == 0):
                    m.d.sync += infer[lbuf].eq(self.mode_infer)
                with m.If(load_cnt < n_in0):
                    m.d.comb += [i_wr.addr.eq(Mux(lbuf, lay.ibase(1), 0) + load_cnt), i_wr.data.eq(beat.data),
                                 i_wr.en.eq(1)]
                with m.Else():
                    m.d.comb += [t_wr.addr.eq(Mux(lbuf, lay.tbase(1), 0) + load_cnt - n_in0),
                                 t_wr.data.eq(beat.data), t_wr.en.eq(1)]
                with m.If(load_cnt == expect - 1):
                    m.d.sync += load_cnt.eq(0)
                    with m.If(beat.last):
                        m.d.sync += [full[lbuf].eq(1), lbuf.eq(~lbuf)]
                    with m.Else():
                        m.d.sync += skipping.eq(1)
                        m.d.comb += self.len_error.eq(1)
                with m.Elif(beat.last):  # too short: drop
                    m.d.sync += load_cnt.eq(0)
                    m.d.comb += [self.len_error.eq(1), self.dropped.eq(1)]
                with m.Else():
                    m.d.sync += load_cnt.eq(load_cnt + 1)
        with m.If(bufs.release):
            m.d.sync += full[bufs.release_buf].eq(0)
        return m
