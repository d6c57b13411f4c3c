"""The result streamer: a group's outputs to ``m_data``, sample after sample.

The output pass writes output j of every lane as one row; the streamer then reads the
rows back sample by sample (lane p, outputs 0 .. n_out - 1, ``last`` on the final one)
for the group's samples only, through a small FIFO so that ``m_data`` may wait.
"""
from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.config import Config

from ..beat import beat_layout

__all__ = ["ResultStreamer"]

FIFO_DEPTH = 4


class ResultStreamer(wiring.Component):
    """Members
    -------
    res_wr : In
        A row of results from the lanes (``en``, ``row``, ``data``: P codes).
    go : In(1);  count : In(range(lanes + 1))
        Send the group's ``count`` samples (their rows are written).
    m_data : Out(stream.Signature(beat_layout))
    busy : Out(1)
        Rows still to be read (the next group's output pass waits: it overwrites them).
    """

    def __init__(self, cfg: Config):
        self._cfg = cfg
        P, AW, n = cfg.lanes, cfg.act.width, cfg.layers[-1]
        super().__init__({
            "res_wr": In(data.StructLayout({"en": 1, "row": range(max(n, 2)), "data": P * AW})),
            "go": In(1),
            "count": In(range(P + 1)),
            "m_data": Out(stream.Signature(beat_layout(cfg))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        P, AW, n = cfg.lanes, cfg.act.width, cfg.layers[-1]
        m.submodules.rmem = rmem = Memory(shape=P * AW, depth=max(n, 2), init=[])
        rd, wr = rmem.read_port(), rmem.write_port()
        m.d.comb += [wr.addr.eq(self.res_wr.row), wr.data.eq(self.res_wr.data), wr.en.eq(self.res_wr.en)]
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=AW + 1, depth=FIFO_DEPTH)

        active, lane, row = Signal(), Signal(range(P + 1)), Signal(range(max(n, 2)))
        count = Signal(range(P + 1))
        inflight, in_lane, in_last = Signal(), Signal(range(P)), Signal()
        room = fifo.level + inflight < FIFO_DEPTH
        m.d.comb += [rd.addr.eq(row), self.busy.eq(active | inflight)]
        m.d.sync += inflight.eq(0)
        with m.If(self.go):
            m.d.sync += [active.eq(self.count != 0), lane.eq(0), row.eq(0), count.eq(self.count)]
        with m.Elif(active & room):
            # read row `row`; its lane `lane` goes into the FIFO a cycle later
            m.d.sync += [inflight.eq(1), in_lane.eq(lane), in_last.eq(row == n - 1)]
            with m.If(row == n - 1):
                m.d.sync += [row.eq(0), lane.eq(lane + 1)]
                with m.If(lane + 1 == count):
                    m.d.sync += active.eq(0)
            with m.Else():
                m.d.sync += row.eq(row + 1)
        codes = Array(rd.data[p * AW:(p + 1) * AW] for p in range(P))
        m.d.comb += [fifo.w_data.eq(Cat(codes[in_lane], in_last)), fifo.w_en.eq(inflight)]
        m.d.comb += [self.m_data.valid.eq(fifo.r_rdy), self.m_data.payload.data.eq(fifo.r_data[:AW].as_signed()),
                     self.m_data.payload.last.eq(fifo.r_data[AW]), fifo.r_en.eq(self.m_data.ready)]
        return m
