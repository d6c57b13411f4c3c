"""The group loader: ``s_data`` into the free one of two group buffers, sample p of a
group into lane p.

A buffer holds up to P samples (inputs and, in train mode, targets), written lane by lane
into the wide input and target memories (hdl/trainer/samples/schedule.py). It is full
when its P-th sample is in, when the host flushes (CTRL bit 1: a partial group, say the
last of an epoch, trains with the lanes it has), or when the next sample's mode differs
from the group's (a group is all training or all inference). A sample of the wrong length
is dropped and flagged, as in the rows schedule's loader. A group never spans two
mini-batches: the loader counts the training samples of the batch and closes a group at
the batch's last one (the update applies at the end of a group).
"""
from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.config import Config

from ..beat import beat_layout
from ..update import NO_RW
from .schedule import SampleLayout

__all__ = ["GroupLoader", "GroupBufferSignature"]


class GroupBufferSignature(wiring.Signature):
    """The two group buffers as the sequencer sees them.

    Members
    -------
    full, infer, apply : Out(1).array(2)
        Buffer b holds a group ready to run; its mode; its last sample completes a
        mini-batch (the update applies).
    count : Out(range(lanes + 1)).array(2)
        Its samples (lanes 0 .. count - 1).
    loading : Out(1)
        A group is being filled (partly loaded samples or lanes).
    release, release_buf : In(1)
        The sequencer is done with buffer ``release_buf``.
    """

    def __init__(self, lanes: int):
        super().__init__({"full": Out(1).array(2), "infer": Out(1).array(2), "apply": Out(1).array(2),
                          "count": Out(range(lanes + 1)).array(2), "loading": Out(1),
                          "release": In(1), "release_buf": In(1)})


class GroupLoader(wiring.Component):
    """Members
    -------
    s_data : In(stream.Signature(beat_layout))
        Samples, one after the other: ``n_in`` inputs then (train mode) ``n_out`` targets.
    mode_infer, flush : In(1)
        CTRL's mode of the next sample; a pulse: close the group being filled.
    batch, batch_restart : In
        The mini-batch size (BATCH); a pulse: the batch count starts again.
    buffers : Out(GroupBufferSignature)
    len_error, dropped : Out(1)
        Pulses: a sample had a wrong length; one was dropped.
    i_addr, t_addr : In;  i_data, t_data : Out(P-lane words)
        The sequencer's reads (a cycle later).
    """

    def __init__(self, cfg: Config):
        self._cfg, self._sl = cfg, SampleLayout(cfg)
        P, AW = cfg.lanes, cfg.act.width
        super().__init__({
            "s_data": In(stream.Signature(beat_layout(cfg))),
            "mode_infer": In(1),
            "flush": In(1),
            "batch": In(16),
            "batch_restart": In(1),
            "buffers": Out(GroupBufferSignature(P)),
            "len_error": Out(1),
            "dropped": Out(1),
            "i_addr": In(range(max(self._sl.idepth, 2))),
            "t_addr": In(range(max(self._sl.tdepth, 2))),
            "i_data": Out(signed(AW)).array(P),
            "t_data": Out(signed(AW)).array(P),
        })

    def elaborate(self, platform):
        cfg, sl = self._cfg, self._sl
        m = Module()
        P, AW, n_in0, n_outL = cfg.lanes, cfg.act.width, cfg.layers[0], cfg.layers[-1]
        # the wide memories, written a lane at a time (granularity: one lane's code)
        imem = Memory(shape=P * AW, depth=sl.idepth, init=[], attrs=NO_RW)
        tmem = Memory(shape=P * AW, depth=sl.tdepth, init=[], attrs=NO_RW)
        m.submodules.imem, m.submodules.tmem = imem, tmem
        i_rd, t_rd = imem.read_port(), tmem.read_port()
        i_wr, t_wr = imem.write_port(granularity=AW), tmem.write_port(granularity=AW)
        # the writes a cycle after the beat's acceptance, from registers (the acceptance
        # logic and the lane enable stay off the block RAMs' inputs); a buffer's last write
        # lands in the cycle its `full` is first seen, before the sequencer's first read
        wr_data = Signal(AW)
        i_req = Signal.like(i_wr.addr, name="i_wr_addr"), Signal(P, name="i_wr_en")
        t_req = Signal.like(t_wr.addr, name="t_wr_addr"), Signal(P, name="t_wr_en")
        m.d.comb += [i_wr.addr.eq(i_req[0]), i_wr.en.eq(i_req[1]), i_wr.data.eq(wr_data.replicate(P)),
                     t_wr.addr.eq(t_req[0]), t_wr.en.eq(t_req[1]), t_wr.data.eq(wr_data.replicate(P))]
        m.d.sync += [i_req[1].eq(0), t_req[1].eq(0), wr_data.eq(self.s_data.payload.data)]
        m.d.comb += [i_rd.addr.eq(self.i_addr), t_rd.addr.eq(self.t_addr)]
        m.d.comb += [self.i_data[p].eq(i_rd.data[p * AW:(p + 1) * AW]) for p in range(P)]
        m.d.comb += [self.t_data[p].eq(t_rd.data[p * AW:(p + 1) * AW]) for p in range(P)]

        bufs = self.buffers
        full, infer, count, apply = Array(bufs.full), Array(bufs.infer), Array(bufs.count), Array(bufs.apply)
        bpos = Signal(16)  # training samples of the mini-batch before the one being loaded
        lbuf = Signal()  # the buffer being filled
        lane = Signal(range(P + 1))  # samples in it so far
        beat_n = Signal(range(n_in0 + n_outL + 1))  # beats of the sample being loaded
        skipping = Signal()  # too long: consuming up to and including `last`, then dropped
        flush_req = Signal()
        load_mode = Signal()
        expect = Signal(range(n_in0 + n_outL + 1))
        m.d.comb += [load_mode.eq(Mux(beat_n == 0, self.mode_infer, infer[lbuf])),
                     expect.eq(Mux(load_mode, n_in0, n_in0 + n_outL)),
                     bufs.loading.eq((beat_n != 0) | skipping | (lane != 0))]
        close = Signal()  # the group being filled is complete
        with m.If(self.flush):
            m.d.sync += flush_req.eq(1)
        # between samples: close a partial group on a flush or when the mode changes
        between = (beat_n == 0) & ~skipping & ~full[lbuf] & (lane != 0)
        m.d.comb += close.eq(between & ((flush_req | self.flush) |
                                        (self.s_data.valid & (self.mode_infer != infer[lbuf]))))
        with m.If(close):
            m.d.sync += [full[lbuf].eq(1), lbuf.eq(~lbuf), lane.eq(0), flush_req.eq(0)]
        with m.Elif((lane == 0) & (beat_n == 0)):
            m.d.sync += flush_req.eq(0)  # (nothing to flush)

        beat = self.s_data.payload
        lane_en = Signal(P)
        m.d.comb += lane_en.eq(1 << lane[:max(1, (P - 1).bit_length())] if P > 1 else 1)
        with m.If(skipping):
            m.d.comb += self.s_data.ready.eq(1)
            with m.If(self.s_data.valid & beat.last):
                m.d.sync += skipping.eq(0)
                m.d.comb += self.dropped.eq(1)
        with m.Elif(~close):
            m.d.comb += self.s_data.ready.eq(~full[lbuf])
            with m.If(self.s_data.valid & ~full[lbuf]):
                with m.If((beat_n == 0) & (lane == 0)):
                    m.d.sync += infer[lbuf].eq(self.mode_infer)
                with m.If(beat_n < n_in0):
                    m.d.sync += [i_req[0].eq(Mux(lbuf, sl.ibase(1), 0) + beat_n), i_req[1].eq(lane_en)]
                with m.Else():
                    m.d.sync += [t_req[0].eq(Mux(lbuf, sl.tbase(1), 0) + beat_n - n_in0), t_req[1].eq(lane_en)]
                with m.If(beat_n == expect - 1):
                    m.d.sync += beat_n.eq(0)
                    with m.If(beat.last):
                        ends_batch = ~load_mode & (bpos + 1 >= self.batch)
                        m.d.sync += [count[lbuf].eq(lane + 1), apply[lbuf].eq(ends_batch)]
                        with m.If(~load_mode):
                            m.d.sync += bpos.eq(Mux(ends_batch, 0, bpos + 1))
                        with m.If((lane == P - 1) | ends_batch):
                            m.d.sync += [full[lbuf].eq(1), lbuf.eq(~lbuf), lane.eq(0)]
                        with m.Else():
                            m.d.sync += lane.eq(lane + 1)
                    with m.Else():
                        m.d.sync += skipping.eq(1)
                        m.d.comb += self.len_error.eq(1)
                with m.Elif(beat.last):  # too short: drop
                    m.d.sync += beat_n.eq(0)
                    m.d.comb += [self.len_error.eq(1), self.dropped.eq(1)]
                with m.Else():
                    m.d.sync += beat_n.eq(beat_n + 1)
        with m.If(self.batch_restart):
            m.d.sync += bpos.eq(0)
        with m.If(bufs.release):
            m.d.sync += full[bufs.release_buf].eq(0)
        return m
