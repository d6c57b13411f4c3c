"""The forward drain: a row block's P sums, requantized and activated one per cycle, into
the activation memory (or, on a softmax layer, to the softmax unit as logits).

The lanes hand over a block's sums as a snapshot and go on accumulating the next block
while the drain works through this one.
"""
from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.config import Config

from ..activation import ActivationFunction
from ..arith import round_shift, saturate
from ..layout import Layout

__all__ = ["ForwardDrain", "snapshot_layout", "logit_layout"]


def _row_shape(cfg: Config, lay: Layout):
    return range(max(lay.blocks(l) for l in range(cfg.n_layers)) * cfg.lanes + 1)


def snapshot_layout(cfg: Config, lay: Layout) -> data.StructLayout:
    """A block's sums are complete: its first row, its layer, and whether its second row
    is past the layer (the block's last row is its first)."""
    return data.StructLayout({"valid": 1, "rowbase": _row_shape(cfg, lay), "layer": range(cfg.n_layers + 1),
                              "one_row": 1})


def logit_layout(cfg: Config) -> data.StructLayout:
    return data.StructLayout({"z": signed(cfg.act.width), "last": 1})


class ForwardDrain(wiring.Component):
    """Requantize + activate the P sums of a row block; the activation memory.

    Members
    -------
    snapshot : In(snapshot_layout)
        A block's sums are in ``sums`` this cycle (the lanes' stage A of its last beat).
    sums : In(signed(forward_acc_width)).array(lanes)
        The block's exact sums W a + b.
    active : Out(1)
        The drain holds a snapshot (the next block's last beat must wait).
    busy : Out(1)
        A row anywhere in the drain (its register stages included).
    logit : Out(stream.Signature(logit_layout))
        A softmax layer's rows, to the softmax unit. ``valid`` does not wait for ``ready``:
        the drain's head waits instead, until the unit is ready and ``room`` is high.
    room : In(1)
        The output FIFO has room for a whole output vector (softmax only).
    a_addr : In
        Activation memory read address (hdl/layout.py ``abase``); ``a_data`` a cycle later.

    Latency: a row leaves the drain's head into a rounding register, a saturation
    register, then is activated and written (DRAIN_WRITE_LAG counts from the block's last
    issue); one row per cycle.
    """

    def __init__(self, cfg: Config, lay: Layout):
        self._cfg, self._lay = cfg, lay
        P = cfg.lanes
        super().__init__({
            "snapshot": In(snapshot_layout(cfg, lay)),
            "sums": In(signed(cfg.forward_acc_width())).array(P),
            "active": Out(1),
            "busy": Out(1),
            "logit": Out(stream.Signature(logit_layout(cfg))),
            "room": In(1),
            "a_addr": In(range(max(lay.adepth, 2))),
            "a_data": Out(signed(cfg.act.width)),
        })

    def elaborate(self, platform):
        cfg, lay = self._cfg, self._lay
        m = Module()
        P, L, AW, wf = cfg.lanes, cfg.n_layers, cfg.act.width, cfg.weight.frac_bits
        n_outL = cfg.layers[-1]
        m.submodules.amem = amem = Memory(shape=signed(AW), depth=lay.adepth, init=[])
        a_rd, a_wr = amem.read_port(), amem.write_port()
        m.d.comb += [a_rd.addr.eq(self.a_addr), self.a_data.eq(a_rd.data)]

        # the drain's copy of a block's sums, a shift register: the drain takes lane 0 and
        # shifts (no P-way select in front of the requantizer)
        shadow = [Signal(signed(cfg.forward_acc_width()), name=f"shadow{p}") for p in range(P)]
        active = self.active
        sel = Signal(range(P + 1))
        layer = Signal(range(L + 1))
        row = Signal(_row_shape(cfg, lay))  # the block's first row + sel, kept as a counter
        stall = Signal()
        n_out_of = Array(Const(cfg.layers[l + 1], range(max(cfg.layers[1:]) + 1)) for l in range(L))
        # the drain's two register stages: the sum rounded to act's fraction bits (zq), then
        # saturated (zr), each with its row and layer; requantize(sum, wf + af, act) in halves
        zq = Signal(round_shift(shadow[0], wf).shape())
        zq_valid, zq_row, zq_layer = Signal(), Signal.like(row, name="zq_row"), Signal.like(layer, name="zq_layer")
        zr = Signal(signed(AW))
        zr_valid, zr_row, zr_layer = Signal(), Signal.like(row, name="zr_row"), Signal.like(layer, name="zr_layer")
        m.d.comb += self.busy.eq(active | zq_valid | zr_valid)

        # Later statements win: the advance comes before the snapshot that may land in the
        # same cycle. `last` (a register: the end test is known a cycle ahead) marks the
        # block's last row; the shift runs on every advance (after the last row it moves
        # nothing used)
        last = Signal()
        with m.If(active & ~stall):
            m.d.sync += [shadow[p].eq(shadow[p + 1]) for p in range(P - 1)]
            with m.If(last):
                m.d.sync += active.eq(0)
            with m.Else():
                m.d.sync += row.eq(row + 1)
                if P > 1:  # (one lane: every row is a block's last, the lane count is not kept)
                    m.d.sync += [sel.eq(sel + 1), last.eq((sel + 1 == P - 1) | (row + 2 >= n_out_of[layer]))]
        with m.If(self.snapshot.valid):
            m.d.sync += [shadow[p].eq(self.sums[p]) for p in range(P)]
            m.d.sync += [active.eq(1), row.eq(self.snapshot.rowbase), layer.eq(self.snapshot.layer),
                         last.eq(self.snapshot.one_row if P > 1 else 1)]
            if P > 1:
                m.d.sync += sel.eq(0)

        # one lane per cycle, rounded into zq, saturated into zr; from there it is activated
        # and written as a_{l+1}, or feeds the softmax unit. zq and zr always move on (their
        # consumers always take them); only the drain's head may wait, on registers: a
        # softmax layer's rows until the softmax unit takes logits and the output FIFO has
        # room for the whole vector (go). Once a vector's first row goes, neither can change
        # before its last row is in: the unit takes logits until the last, and the FIFO's
        # level only falls until the first probability is written.
        m.d.sync += [zr.eq(saturate(zq, cfg.act)), zr_valid.eq(zq_valid), zr_row.eq(zq_row), zr_layer.eq(zq_layer)]
        with m.If(active & ~stall):
            m.d.sync += [zq.eq(round_shift(shadow[0], wf)), zq_valid.eq(row < n_out_of[layer]), zq_row.eq(row),
                         zq_layer.eq(layer)]
        with m.Else():
            m.d.sync += zq_valid.eq(0)
        if cfg.activations[-1] == "softmax":
            go = Signal()
            m.d.sync += go.eq(self.room & self.logit.ready)
            m.d.comb += stall.eq((layer == L - 1) & ~go)
            # zr's logit: valid and last decoded as zq moves into zr
            m.d.sync += [self.logit.valid.eq(zq_valid & (zq_layer == L - 1)),
                         self.logit.payload.last.eq(zq_row == n_outL - 1)]
            m.d.comb += self.logit.payload.z.eq(zr)
        units = {kind: ActivationFunction(cfg, kind) for kind in sorted(set(cfg.activations) - {"softmax"})}
        for kind, unit in units.items():  # one per kind in use, shared by its layers
            m.submodules[f"act_{kind}"] = unit
        with m.Switch(zr_layer):
            for l in range(L):
                kind = cfg.activations[l]
                if kind == "softmax":  # (its rows went to `logit`)
                    continue
                with m.Case(l):
                    m.d.comb += units[kind].z.eq(zr)
                    with m.If(zr_valid):
                        m.d.comb += [a_wr.addr.eq(lay.abase(l + 1) + zr_row), a_wr.data.eq(units[kind].a),
                                     a_wr.en.eq(1)]
        return m
