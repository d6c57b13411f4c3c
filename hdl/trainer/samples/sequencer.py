"""The group sequencer: walks a group of samples through the phases of the samples
schedule and issues one beat per cycle (docs/trainer.md, "The samples schedule").

Per group (lane p holds sample p):

    FWD l     for each row j, for each input k: W[j, k] to every lane, times its a[k]
    OUT       for each output j: a[j] and t[j] of every lane (MSE deltas, the results)
    EXP, PROB (softmax) for each output j: e[j] and the sums; then p[j] and the deltas
    BWD l     (l = L-1 .. 1) for each input k, for each row j: W[j, k] times the lane's
              delta[j]; at the last j, the lane's delta_{l-1}[k]
    UPD l     (after BWD l; l = L-1 .. 0) for each row j, for each input k: the lanes'
              delta[j] a[k], summed over the lanes, to the update engine: one parameter
              per cycle

A phase waits only where it would read a value before its write: the next layer's
forward pass when a layer has at most DRAIN_LAG rows, the output pass for the last
activations, a backward or update pass for deltas made less than BWD_LAG cycles
before, and the next group for a weight of layer 0 written less than ``update_lag``
cycles before its read (with Adam after every group that applied: layer 0's biases are
written after the group ends).
"""
from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from golden.config import Config

from .loader import GroupBufferSignature
from .schedule import BWD_LAG, DRAIN_LAG, SampleLayout, param_layout, sample_issue_layout, w0_short

__all__ = ["GroupSequencer"]


class GroupSequencer(wiring.Component):
    """Members
    -------
    buffers : In(GroupBufferSignature)
        The loader's group buffers.
    issue : Out(sample_issue_layout)
        The beat of this cycle (its memory addresses are read this cycle).
    lanes_busy, update_busy, results_busy : In(1)
        A beat or its result still in the lanes' pipeline; an update beat in the reduction
        or the update engine; the result streamer still sending a group's outputs.
    results_go : Out(1);  results_count : Out(range(lanes + 1))
        Start sending the group's outputs (its last output row is written).
    retired : Out(range(lanes + 1))
        The group's samples, in the cycle it ends (0 otherwise).
    updated : Out(1)
        A pulse: a group applied an update.
    sig_clear : Out(1)
        The first update beat of a group that applies (the signatures start again).
    idle : Out(1)
        No group running and nothing pending.
    """

    def __init__(self, cfg: Config):
        self._cfg = cfg
        P = cfg.lanes
        super().__init__({
            "buffers": In(GroupBufferSignature(P)),
            "issue": Out(sample_issue_layout(cfg)),
            "lanes_busy": In(1),
            "update_busy": In(1),
            "results_busy": In(1),
            "results_go": Out(1),
            "results_count": Out(range(P + 1)),
            "retired": Out(range(P + 1)),
            "updated": Out(1),
            "sig_clear": Out(1),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        P, L, layers = cfg.lanes, cfg.n_layers, cfg.layers
        pl, sl = param_layout(cfg), SampleLayout(cfg)
        bufs, iss = self.buffers, self.issue
        buf, infer, apply = Signal(), Signal(), Signal()
        count = Signal(range(P + 1))
        mask = Signal(P)
        j = Signal(range(max(layers[1:]) + 1))  # a row (output unit) of the layer
        k = Signal(range(max(layers[:-1]) + 1))  # an input of the layer
        waddr = Signal.like(iss.waddr)
        colbase = Signal.like(iss.waddr)  # backward: the weight word of row 0, input k
        m.d.comb += self.results_count.eq(count)

        def beat(**fields):
            m.d.comb += [iss.valid.eq(1), iss.lanes.eq(mask), iss.apply.eq(apply)]
            for name, value in fields.items():
                m.d.comb += getattr(iss, name).eq(value)

        def count_up(n_j, n_k, *, j_outer=True):
            """Advance (j, k) over n_j x n_k; the comb value: this beat is the phase's last."""
            outer, inner, n_outer, n_inner = (j, k, n_j, n_k) if j_outer else (k, j, n_k, n_j)
            done = (outer == n_outer - 1) & (inner == n_inner - 1)
            with m.If(inner == n_inner - 1):
                m.d.sync += [inner.eq(0), outer.eq(outer + 1)]
            with m.Else():
                m.d.sync += inner.eq(inner + 1)
            return done

        softmax = cfg.activations[-1] == "softmax"
        # the next group waits for the update engine to empty where its forward pass would
        # read a parameter before its write: a layer 0 with at most update_lag weights, or
        # (Adam) any layer 0 after a group that applied: layer 0's biases queue behind its
        # weights (hdl/trainer/update.py) and are written after the group ends
        applied = Signal()  # the last group applied an update
        with m.FSM(name="seq"):
            with m.State("IDLE"):
                # the loader fills the buffers in turn, so the groups run in turn
                full, binfer, bapply, bcount = (Array(x) for x in (bufs.full, bufs.infer, bufs.apply, bufs.count))
                ready = full[buf]
                wait_w = (self.update_busy | self.lanes_busy) if w0_short(cfg) else Const(0)
                if cfg.optimizer == "adam" and not w0_short(cfg):
                    wait_w = applied & (self.update_busy | self.lanes_busy)
                # (the result streamer may still be sending: the host's reading does not keep
                # the trainer busy, as in the rows schedule's output FIFO)
                m.d.comb += self.idle.eq(~ready & ~bufs.loading & ~self.lanes_busy & ~self.update_busy)
                with m.If(ready & ~wait_w):
                    n = bcount[buf]
                    m.d.sync += [infer.eq(binfer[buf]), apply.eq(bapply[buf] & ~binfer[buf]),
                                 count.eq(n), mask.eq((Const(1, P + 1) << n) - 1), j.eq(0), k.eq(0),
                                 waddr.eq(pl.wbase(0))]
                    m.next = "FWD0"
            for l in range(L):
                n_in, n_out = layers[l], layers[l + 1]
                with m.State(f"FWD{l}"):
                    beat(fwd=1, layer=l, first=k == 0, last=k == n_in - 1, waddr=waddr, slot=pl.bias_slot(l, 0) + j,
                         in0=l == 0, iaddr=Mux(buf, sl.ibase(1), sl.ibase(0)) + k, aaddr=sl.abase(l) + k if l else 0,
                         dst=sl.abase(l + 1) + j)
                    m.d.sync += waddr.eq(waddr + 1)
                    with m.If(count_up(n_out, n_in)):
                        m.d.sync += [j.eq(0), k.eq(0)]
                        if l + 1 < L:
                            m.next = f"FWD{l + 1}" if n_out > DRAIN_LAG else f"FWD{l + 1}_WAIT"
                        else:
                            m.next = "OUT_WAIT"
                if l + 1 < L:
                    with m.State(f"FWD{l + 1}_WAIT"):
                        with m.If(~self.lanes_busy):
                            m.next = f"FWD{l + 1}"
            n_outL = layers[-1]
            taddr = Mux(buf, sl.tbase(1), sl.tbase(0)) + j
            with m.State("OUT_WAIT"):  # the last layer's activations written, the results sent
                with m.If(~self.lanes_busy & ~self.results_busy):
                    m.next = "EXP" if softmax else "OUT"
            if not softmax:
                with m.State("OUT"):
                    beat(out=1, layer=L - 1, first=j == 0, last=j == n_outL - 1, aaddr=sl.abase(L) + j,
                         taddr=taddr, dst=sl.dbase(L - 1) + j)
                    m.d.sync += j.eq(j + 1)
                    with m.If(j == n_outL - 1):
                        m.d.sync += j.eq(0)
                        m.next = "OUT_DONE"
            else:
                # each lane's softmax (hdl/trainer/samples/softmax.py): e over z and the sums,
                # then (the sums complete: R is ready by the first beat's stage R) p and the deltas
                with m.State("EXP"):
                    beat(exp=1, layer=L - 1, first=j == 0, last=j == n_outL - 1, aaddr=sl.abase(L) + j,
                         dst=sl.abase(L) + j)
                    m.d.sync += j.eq(j + 1)
                    with m.If(j == n_outL - 1):
                        m.d.sync += j.eq(0)
                        m.next = "EXP_DONE"
                with m.State("EXP_DONE"):
                    with m.If(~self.lanes_busy):
                        m.next = "PROB"
                with m.State("PROB"):
                    beat(prob=1, layer=L - 1, first=j == 0, last=j == n_outL - 1, aaddr=sl.abase(L) + j,
                         taddr=taddr, dst=sl.dbase(L - 1) + j)
                    m.d.sync += j.eq(j + 1)
                    with m.If(j == n_outL - 1):
                        m.d.sync += j.eq(0)
                        m.next = "OUT_DONE"
            with m.State("OUT_DONE"):  # the results and the output deltas written
                with m.If(~self.lanes_busy):
                    m.d.comb += self.results_go.eq(1)
                    m.d.sync += [j.eq(0), k.eq(0), colbase.eq(pl.wbase(L - 1)), waddr.eq(pl.wbase(L - 1))]
                    with m.If(infer):
                        m.next = "END"
                    with m.Else():
                        m.next = f"BWD{L - 1}" if L > 1 else "UPD0"
            for l in range(L - 1, -1, -1):
                n_in, n_out = layers[l], layers[l + 1]
                if l >= 1:
                    with m.State(f"BWD{l}"):
                        # W[j, k] at wbase + j n_in + k: j steps by n_in, k by one from colbase
                        beat(bwd=1, layer=l, first=j == 0, last=j == n_out - 1, waddr=waddr,
                             daddr=sl.dbase(l) + j, aaddr=sl.abase(l) + k, dst=sl.dbase(l - 1) + k)
                        with m.If(j == n_out - 1):
                            m.d.sync += [waddr.eq(colbase + 1), colbase.eq(colbase + 1)]
                        with m.Else():
                            m.d.sync += waddr.eq(waddr + n_in)
                        with m.If(count_up(n_out, n_in, j_outer=False)):
                            m.d.sync += [j.eq(0), k.eq(0), waddr.eq(pl.wbase(l))]
                            m.next = f"UPD{l}"
                with m.State(f"UPD{l}"):
                    if l == L - 1:  # (the update's first beat)
                        m.d.comb += self.sig_clear.eq((j == 0) & (k == 0) & apply)
                    beat(upd=1, layer=l, first=k == 0, last=k == n_in - 1, waddr=waddr,
                         slot=pl.bias_slot(l, 0) + j, daddr=sl.dbase(l) + j, in0=l == 0,
                         iaddr=Mux(buf, sl.ibase(1), sl.ibase(0)) + k, aaddr=sl.abase(l) + k if l else 0)
                    m.d.sync += waddr.eq(waddr + 1)
                    with m.If(count_up(n_out, n_in)):
                        m.d.sync += [j.eq(0), k.eq(0)]
                        if l == 0:
                            m.next = "END"
                        else:
                            # the deltas of layer l - 1 (BWD l's last writes) before their first read
                            short = n_out * n_in + 1 <= BWD_LAG
                            nxt = f"BWD{l - 1}" if l - 1 >= 1 else f"UPD{l - 1}"
                            m.d.sync += [colbase.eq(pl.wbase(l - 1)), waddr.eq(pl.wbase(l - 1))]
                            m.next = f"{nxt}_WAIT" if short else nxt
                if l < L - 1:
                    nxt = f"BWD{l}" if l >= 1 else f"UPD{l}"
                    with m.State(f"{nxt}_WAIT"):
                        with m.If(~self.lanes_busy):
                            m.next = nxt
            with m.State("END"):  # the group's buffer is free; its samples count
                m.d.comb += [bufs.release.eq(1), bufs.release_buf.eq(buf), self.updated.eq(apply),
                             self.retired.eq(count)]
                m.d.sync += [buf.eq(~buf), applied.eq(apply)]
                m.next = "IDLE"
        return m
