"""The parameter banks: each lane's weight and bias memories.

Row j of every layer lives in bank j mod P (hdl/layout.py); the datapath reads a word
of every bank per beat, the update engine writes them back, and the bus reaches them
while the trainer is idle.
"""
from __future__ import annotations

from amaranth.hdl import Module, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.config import Config
from golden.fixed_model import init_params

from ..layout import Layout
from .registers import bus_read_layout, bus_write_layout
from .update import NO_RW, ParamWrite

__all__ = ["ParameterBanks", "initial_banks"]


def initial_banks(cfg: Config, lay: Layout):
    """The initial weight and bias words of every bank (golden.fixed_model.init_params)."""
    P = cfg.lanes
    winit = [[0] * max(lay.wdepth, 1) for _ in range(P)]
    binit = [[0] * max(lay.ddepth, 1) for _ in range(P)]
    for l, w in enumerate(init_params(cfg)):
        for j in range(w.shape[0]):
            for k in range(w.shape[1] - 1):
                b, a = lay.param_location(l, j, k)
                winit[b][a] = int(w[j, k])
            binit[j % P][lay.bias_slot(l, j)] = int(w[j, -1])
    return winit, binit


class ParameterBanks(wiring.Component):
    """P weight memories and P bias memories (one word per row slot).

    Members
    -------
    addr, slot : In
        The datapath's read addresses: a weight word (the same in every bank) and a row
        block's bias slot; the words come out a cycle later on ``w_data``, ``b_data``.
    w_data, b_data : Out(signed(weight.width)).array(lanes)
        Every bank's word read.
    w_wr, b_wr : In(ParamWrite).array(lanes)
        The update engine's writes.
    bus_wr, bus_rd : In(bus_write_layout), In(bus_read_layout)
        The bus's accesses; they take the ports over (the bus only reaches idle banks).
    """

    def __init__(self, cfg: Config, lay: Layout):
        self._cfg, self._lay = cfg, lay
        P, WW = cfg.lanes, cfg.weight.width
        wdepth, ddepth = max(lay.wdepth, 1), max(lay.ddepth, 1)
        super().__init__({
            "addr": In(range(max(wdepth, 2))),
            "slot": In(range(ddepth)),
            "w_data": Out(signed(WW)).array(P),
            "b_data": Out(signed(WW)).array(P),
            "w_wr": In(ParamWrite(wdepth, signed(WW))).array(P),
            "b_wr": In(ParamWrite(ddepth, signed(WW))).array(P),
            "bus_wr": In(bus_write_layout(cfg)),
            "bus_rd": In(bus_read_layout(cfg)),
        })

    def elaborate(self, platform):
        cfg, lay = self._cfg, self._lay
        m = Module()
        WW = cfg.weight.width
        winit, binit = initial_banks(cfg, lay)
        bus_wr, bus_rd = self.bus_wr, self.bus_rd
        for p in range(cfg.lanes):
            wmem = Memory(shape=signed(WW), depth=len(winit[p]), init=winit[p], attrs=NO_RW)
            # biases: read with a block's first forward beat and its last update beat,
            # written beside the row's last weight
            bmem = Memory(shape=signed(WW), depth=len(binit[p]), init=binit[p], attrs=NO_RW)
            m.submodules[f"wmem{p}"], m.submodules[f"bmem{p}"] = wmem, bmem
            w_rd, w_wr, b_rd, b_wr = wmem.read_port(), wmem.write_port(), bmem.read_port(), bmem.write_port()
            m.d.comb += [self.w_data[p].eq(w_rd.data), self.b_data[p].eq(b_rd.data)]
            with m.If(bus_rd.valid):
                m.d.comb += [w_rd.addr.eq(bus_rd.word), b_rd.addr.eq(bus_rd.bias_word)]
            with m.Else():
                m.d.comb += [w_rd.addr.eq(self.addr), b_rd.addr.eq(self.slot)]
            ours = bus_wr.valid & (bus_wr.region == 0)  # (regions 1-3: the optimizer state)
            with m.If(ours & bus_wr.bias):
                m.d.comb += [b_wr.addr.eq(bus_wr.bias_word), b_wr.data.eq(bus_wr.data[:WW]), b_wr.en.eq(bus_wr.bank == p)]
            with m.Else():
                m.d.comb += [b_wr.addr.eq(self.b_wr[p].addr), b_wr.data.eq(self.b_wr[p].data),
                             b_wr.en.eq(self.b_wr[p].en)]
            with m.If(ours & ~bus_wr.bias):
                m.d.comb += [w_wr.addr.eq(bus_wr.word), w_wr.data.eq(bus_wr.data[:WW]), w_wr.en.eq(bus_wr.bank == p)]
            with m.Else():
                m.d.comb += [w_wr.addr.eq(self.w_wr[p].addr), w_wr.data.eq(self.w_wr[p].data),
                             w_wr.en.eq(self.w_wr[p].en)]
        return m
