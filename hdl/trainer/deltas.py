"""The delta/eps store: each lane's errors (deltas) and eps = lr x delta, by row slot.

A delta is written a cycle after it is made; its eps EPS_LAG cycles after the delta,
through one scalar multiplier between registers, so the update reads eps ready-made and
no lane spends a cycle on it.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.config import Config

from ..dsp import registered_product
from ..layout import Layout

__all__ = ["DeltaStore", "delta_write_layout", "eps_width"]


def eps_width(cfg: Config) -> int:
    """Width of eps = lr x delta: a 16-bit unsigned lr code times an error code, exact."""
    return 17 + cfg.error.width


def delta_write_layout(cfg: Config, lay: Layout) -> data.StructLayout:
    """A delta for bank ``lane``, row slot ``addr`` (written when ``valid``)."""
    return data.StructLayout({"valid": 1, "lane": range(cfg.lanes), "addr": range(max(lay.ddepth, 1)),
                              "delta": signed(cfg.error.width)})


class DeltaStore(wiring.Component):
    """P delta memories and P eps memories, by row slot (hdl/layout.py ``dbase``).

    Members
    -------
    out_delta, bwd_delta : In(delta_write_layout)
        Deltas from the output stage and from the backward reduction (never in the same
        cycle; the backward one wins).
    lr : In(16)
        The learning-rate code.
    d_addr, e_addr : In
        Read slots; ``d_data``, ``e_data`` (Out, per bank) a cycle later. Both read ports
        are transparent: the backward pass may read an output delta in the cycle it is
        written, a one-layer update an eps.

    Latency: a delta presented in cycle t is in its memory from t + 2 (registered, then
    written), its eps from t + 2 + EPS_LAG.
    """

    def __init__(self, cfg: Config, lay: Layout, *, dsp: str = "generic"):
        self._cfg, self._lay, self._dsp = cfg, lay, dsp
        P, ddepth = cfg.lanes, max(lay.ddepth, 1)
        super().__init__({
            "out_delta": In(delta_write_layout(cfg, lay)),
            "bwd_delta": In(delta_write_layout(cfg, lay)),
            "lr": In(16),
            "d_addr": In(range(ddepth)),
            "e_addr": In(range(ddepth)),
            "d_data": Out(signed(cfg.error.width)).array(P),
            "e_data": Out(signed(eps_width(cfg))).array(P),
        })

    def elaborate(self, platform):
        cfg, lay = self._cfg, self._lay
        m = Module()
        P, EW, EPSW = cfg.lanes, cfg.error.width, eps_width(cfg)
        ddepth = max(lay.ddepth, 1)
        # the delta write stage: a delta made last cycle, its bank and slot
        dw = Signal(delta_write_layout(cfg, lay))
        m.d.sync += dw.eq(Mux(self.bwd_delta.valid, self.bwd_delta, self.out_delta))
        # the eps stage: the delta written last cycle (lr x delta in the multiplier), then
        # the eps write stage: the product registered, written EPS_LAG cycles after the delta
        ew_valid, ew_lane, ew_addr = Signal(), Signal(range(P)), Signal(range(ddepth))
        ex_valid, ex_lane, ex_addr = Signal(), Signal(range(P)), Signal(range(ddepth))
        ex_eps = Signal(signed(EPSW))
        m.d.sync += [ew_valid.eq(dw.valid), ew_lane.eq(dw.lane), ew_addr.eq(dw.addr),
                     ex_valid.eq(ew_valid), ex_lane.eq(ew_lane), ex_addr.eq(ew_addr)]
        registered_product(m, self.lr, dw.delta, ex_eps, dsp=self._dsp, name="eps_mul")
        for p in range(P):
            dmem = Memory(shape=signed(EW), depth=ddepth, init=[])
            emem = Memory(shape=signed(EPSW), depth=ddepth, init=[])
            m.submodules[f"dmem{p}"], m.submodules[f"emem{p}"] = dmem, emem
            d_wr, e_wr = dmem.write_port(), emem.write_port()
            d_rd = dmem.read_port(transparent_for=(d_wr,))
            e_rd = emem.read_port(transparent_for=(e_wr,))
            m.d.comb += [d_wr.addr.eq(dw.addr), d_wr.data.eq(dw.delta), d_wr.en.eq(dw.valid & (dw.lane == p)),
                         e_wr.addr.eq(ex_addr), e_wr.data.eq(ex_eps), e_wr.en.eq(ex_valid & (ex_lane == p)),
                         d_rd.addr.eq(self.d_addr), e_rd.addr.eq(self.e_addr),
                         self.d_data[p].eq(d_rd.data), self.e_data[p].eq(e_rd.data)]
        return m
