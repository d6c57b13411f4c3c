"""The optimizer state banks: momentum's velocity, Adam's moments, banked like the parameters.

Each lane has a memory per state word for its weights (indexed like the weight memory)
and one for its biases (indexed like the bias memory). The update engine reads a word
with every update beat and writes the new one beside the new parameter; the bus reaches
them while the trainer is idle, so a host can save and restore a training run
(docs/registers.md: regions 1-3 of the parameter window). A state word wider than 32 bits
(Adam's v) is two memories, its low 32 bits and the rest, so a bus write of either half
is a plain write.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.config import Config

from ..layout import Layout
from .optimizer_cores import state_shapes
from .registers import bus_read_layout, bus_write_layout
from .update import NO_RW, ParamWrite

__all__ = ["StateBanks", "state_regions"]


def state_regions(cfg: Config) -> dict:
    """Bus region -> (state word, bit offset, width): 1 = s1, 2 = s2's low 32 bits, 3 = the rest."""
    s1, s2 = state_shapes(cfg)
    regions = {}
    if s1 is not None:
        regions[1] = ("s1", 0, Shape.cast(s1).width)
    if s2 is not None:
        w = Shape.cast(s2).width
        regions[2] = ("s2", 0, min(32, w))
        if w > 32:
            regions[3] = ("s2", 32, w - 32)
    return regions


class StateBanks(wiring.Component):
    """Members
    -------
    addr, slot : In
        The update engine's reads (issued with the beat); data on ``s1``, ``s1b``, ... a cycle later.
    s1, s1b, s2, s2b : Out.array(lanes)
        The words read: a weight's state and its row's bias's state.
    s1_wr, s1b_wr, s2_wr, s2b_wr : In(ParamWrite).array(lanes)
        The update engine's writes.
    bus_wr, bus_rd : In(bus_write_layout), In(bus_read_layout)
        The bus's accesses of regions 1-3; ``bus_w_data``, ``bus_b_data`` (Out, per bank, 32
        bits, zero- or sign-extended as the region's word): the words read, two cycles
        later (each block RAM's output goes straight into a register: a block RAM's data
        leaves it late, and the region's select comes after that register).
    """

    def __init__(self, cfg: Config, lay: Layout):
        self._cfg, self._lay = cfg, lay
        P = cfg.lanes
        wdepth, ddepth = max(lay.wdepth, 1), max(lay.ddepth, 1)
        ports = {"addr": In(range(max(wdepth, 2))), "slot": In(range(ddepth)),
                 "bus_wr": In(bus_write_layout(cfg)), "bus_rd": In(bus_read_layout(cfg)),
                 "bus_w_data": Out(32).array(P), "bus_b_data": Out(32).array(P)}
        for name, shape in zip(("s1", "s2"), state_shapes(cfg)):
            if shape is not None:
                ports.update({name: Out(shape).array(P), f"{name}b": Out(shape).array(P),
                              f"{name}_wr": In(ParamWrite(wdepth, shape)).array(P),
                              f"{name}b_wr": In(ParamWrite(ddepth, shape)).array(P)})
        super().__init__(ports)

    def elaborate(self, platform):
        cfg, lay = self._cfg, self._lay
        m = Module()
        wdepth, ddepth = max(lay.wdepth, 1), max(lay.ddepth, 1)
        bus_wr, bus_rd = self.bus_wr, self.bus_rd
        regions = state_regions(cfg)
        # the read's region and valid, with its data a cycle later; the region again beside
        # the registered data
        region_r, region_rr, valid_r = Signal.like(bus_rd.region), Signal.like(bus_rd.region), Signal()
        m.d.sync += [region_r.eq(bus_rd.region), region_rr.eq(region_r), valid_r.eq(bus_rd.valid)]
        for p in range(cfg.lanes):
            bus_words = {}
            for bias, depth, key in ((0, wdepth, ""), (1, ddepth, "b")):
                for name in ("s1", "s2"):
                    if not hasattr(self, name):
                        continue
                    shape = Shape.cast(getattr(self, name)[p].shape())
                    wr_in = getattr(self, f"{name}{key}_wr")[p]
                    parts = [(r, off, w) for r, (n, off, w) in regions.items() if n == name]
                    datas = []
                    for region, off, width in parts:
                        mem = Memory(shape=width, depth=depth, init=[], attrs=NO_RW)
                        m.submodules[f"{name}{key}_{region}_{p}"] = mem
                        rd, wr = mem.read_port(), mem.write_port()
                        with m.If(bus_rd.valid):
                            m.d.comb += rd.addr.eq(bus_rd.bias_word if bias else bus_rd.word)
                        with m.Else():
                            m.d.comb += rd.addr.eq(self.slot if bias else self.addr)
                        hit = bus_wr.valid & (bus_wr.region == region) & (bus_wr.bias == bias) & (bus_wr.bank == p)
                        with m.If(hit):
                            m.d.comb += [wr.addr.eq(bus_wr.bias_word if bias else bus_wr.word),
                                         wr.data.eq(bus_wr.data[:width]), wr.en.eq(1)]
                        with m.Else():
                            m.d.comb += [wr.addr.eq(wr_in.addr), wr.data.eq(wr_in.data.as_unsigned()[off:off + width]),
                                         wr.en.eq(wr_in.en)]
                        datas.append(rd.data)
                        # the bus sees s1 sign-extended, v's parts as they are (v >= 0)
                        held = Signal(width, name=f"bus_{name}{key}_{region}_{p}")
                        with m.If(valid_r):
                            m.d.sync += held.eq(rd.data)
                        bus_words[(region, bias)] = held.as_signed() if name == "s1" else held
                    m.d.comb += getattr(self, f"{name}{key}")[p].eq(Cat(*datas).as_signed() if shape.signed
                                                                    else Cat(*datas))
            for bias, out in ((0, self.bus_w_data[p]), (1, self.bus_b_data[p])):
                value = 0
                for region in regions:
                    value = Mux(region_rr == region, bus_words[(region, bias)], value)
                m.d.comb += out.eq(value)
        return m
