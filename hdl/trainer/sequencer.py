"""The sequencer: walks every sample through its phases and issues the lanes' beats.

Per sample (docs/trainer.md has the cycle counts):

    FWD l   for each block of P rows, for k < n_in: one beat (W[row, k], a[k]); FWDW l
            waits for the drain when the next layer would read a row before it is written
    OUT     (MSE) the output stage sends the codes and forms the output deltas; with a
            softmax output the last FWDW does this
    BWD l   for each k < n_in, for each row block: one beat (W[row, k], delta[row])
    UPD l   for each block, for k < n_in: one beat (eps[row], a[k]); UPDW l waits for the
            backward pass's deltas when a short update would read them too soon
    DONE    (inference) the sample leaves; a training sample leaves with its last issue

The next sample's beats may start as the last ones leave: the phase travels with the
beat, and the memories are written before any later beat reads them (the waits above).
"""
from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from golden.config import Config

from ..layout import DRAIN_WRITE_LAG, EPS_LAG, Layout, bwd_delta_lag, update_latency
from .backward import k_slot_shape
from .lanes import issue_layout
from .loader import BufferSignature

__all__ = ["Sequencer"]


class _Walk:
    """The counters of a phase's walk over a layer, each a register kept beside the count
    it derives from (the phases' end tests, stalls and read addresses start at flip-flops,
    not at a select over the states).

    ``k`` counts inputs (``k_last``: the layer's last; ``kaddr``: a[k]'s address in the
    activation memory, or in the input buffer for layer 0; ``k_lane``/``k_slot``: k mod P
    and k // P, backward only). ``rb`` counts row blocks (``rowbase``: the block's first
    row; ``slot``: its bias/delta/eps word, dbase(l) + rb). ``waddr`` walks the weight
    memories (backward: wbase + rb * row_words + k, as a counter)."""

    def __init__(self, cfg: Config, lay: Layout, buf):
        P, L = cfg.lanes, cfg.n_layers
        self._cfg, self._lay, self._buf = cfg, lay, buf
        max_rows = max(lay.blocks(l) for l in range(L)) * P
        self.k = Signal(range(max(cfg.layers[:-1]) + 1))
        self.k_last = Signal()
        self.kaddr = Signal(range(max(lay.adepth, lay.idepth) + 1))
        self.k_lane = Signal(range(P))
        self.k_slot = Signal(k_slot_shape(cfg))
        self.rb = Signal(range(max_rows // P + 1))
        self.rowbase = Signal(range(max_rows + 1))
        self.slot = Signal(range(max(lay.ddepth, 1)))
        self.waddr = Signal(range(max(lay.wdepth, 1) + 1))

    def k_reset(self, l, buf=None):
        """k = 0 for a phase (or block) of layer l (layer 0: input buffer ``buf``)."""
        base = self._lay.abase(l) if l > 0 else Mux(self._buf if buf is None else buf, self._lay.ibase(1), 0)
        return [self.k.eq(0), self.k_last.eq(self._cfg.layers[l] == 1), self.kaddr.eq(base)]

    def k_next(self, l):
        return [self.k.eq(self.k + 1), self.k_last.eq(self.k == self._cfg.layers[l] - 2), self.kaddr.eq(self.kaddr + 1)]

    def k_lane_next(self, m):
        with m.If(self.k_lane == self._cfg.lanes - 1):
            m.d.sync += [self.k_lane.eq(0), self.k_slot.eq(self.k_slot + 1)]
        with m.Else():
            m.d.sync += self.k_lane.eq(self.k_lane + 1)

    def rb_reset(self, l):
        """rb = 0 for a phase of layer l."""
        return [self.rb.eq(0), self.rowbase.eq(0), self.slot.eq(self._lay.dbase(min(l, self._cfg.n_layers - 1)))]

    def rb_next(self):
        return [self.rb.eq(self.rb + 1), self.rowbase.eq(self.rowbase + self._cfg.lanes), self.slot.eq(self.slot + 1)]

    def phase(self, l, buf=None):
        """Every counter at the start of a phase of layer l."""
        return self.rb_reset(l) + self.k_reset(l, buf) + [self.waddr.eq(self._lay.wbase(l))]


class Sequencer(wiring.Component):
    """The phase state machine, its counters, and the trainer's idle/busy bookkeeping.

    Members
    -------
    issue : Out(issue_layout)
        The beat issued this cycle (``valid``) and the phase it belongs to.
    a_addr, i_addr, d_addr, e_addr : Out
        The reads issued with it: a[k] (activation memory or input buffer), the block's
        delta and eps slot.
    buffers : In(BufferSignature)
        The loader's buffers (hdl/trainer/loader.py); ``release`` as a sample leaves.
    buf, infer_now : Out(1)
        The buffer of the sample in work, and whether it is an inference.
    drain_active, drain_busy : In(1)
        The drain holds a block; a row anywhere in it.
    in_flight, fwd_last_in_flight, update_busy, update_folding : In(1)
        Beats in the lanes' stages (a forward block's last one); an update beat in stage S;
        a written word folding into the signature.
    out_start, out_run : Out(1); out_done : In(1); out_a_addr : In
        The output stage's phase (see OutputStage) and its activation read.
    sig_clear : Out(1)
        The first beat of an update that applies: the signature starts again.
    batch, batch_restart : In
        The mini-batch size and its restart (a BATCH write).
    retired, updated : Out(1)
        A sample's (and its update's) last parameter was written: the counters count it.
    idle : Out(1)
        No sample anywhere in the trainer: the bus may reach the parameters.
    """

    def __init__(self, cfg: Config, lay: Layout):
        self._cfg, self._lay = cfg, lay
        ddepth = max(lay.ddepth, 1)
        super().__init__({
            "issue": Out(issue_layout(cfg, lay)),
            "a_addr": Out(range(max(lay.adepth, 2))),
            "i_addr": Out(range(max(lay.idepth, 2))),
            "d_addr": Out(range(ddepth)),
            "e_addr": Out(range(ddepth)),
            "buffers": In(BufferSignature()),
            "buf": Out(1),
            "infer_now": Out(1),
            "drain_active": In(1),
            "drain_busy": In(1),
            "in_flight": In(1),
            "fwd_last_in_flight": In(1),
            "update_busy": In(1),
            "update_folding": In(1),
            "out_start": Out(1),
            "out_run": Out(1),
            "out_done": In(1),
            "out_a_addr": In(range(max(lay.adepth, 2))),
            "sig_clear": Out(1),
            "batch": In(16),
            "batch_restart": In(1),
            "retired": Out(1),
            "updated": Out(1),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        cfg, lay = self._cfg, self._lay
        m = Module()
        L, iss = cfg.n_layers, self.issue
        self._walk = w = _Walk(cfg, lay, self.buf)
        m.d.comb += [iss.rowbase.eq(w.rowbase), iss.slot.eq(w.slot), iss.addr.eq(w.waddr),
                     iss.klane.eq(w.k_lane), iss.kslot.eq(w.k_slot), iss.in0.eq(iss.layer == 0),
                     self.buffers.release_buf.eq(self.buf)]
        self._bookkeeping(m)
        with m.FSM(name="seq") as fsm:
            with m.State("IDLE"):
                # when idle with no full buffer, the loader fills `buf`: start once it is full
                with m.If(Array(self.buffers.full)[self.buf] & self._start_ok):
                    self._start_sample(m, self.buf)
            for l in range(L):
                self._forward(m, l)
            if cfg.activations[-1] != "softmax":  # (softmax: the last FWDW does this)
                with m.State("OUT"):
                    m.d.comb += [self.out_run.eq(1), self.a_addr.eq(self.out_a_addr)]
                    with m.If(self.out_done):  # the last delta is written now
                        self._after_output(m)
            if L == 1:
                # a one-layer update: its last eps is written EPS_LAG cycles after the last delta
                eps_cnt = Signal(range(EPS_LAG + 1))
                with m.State("EPSW"):
                    with m.If(eps_cnt == EPS_LAG - 1):
                        m.d.sync += eps_cnt.eq(0)
                        m.next = "UPD0"
                    with m.Else():
                        m.d.sync += eps_cnt.eq(eps_cnt + 1)
            for l in range(L - 1, -1, -1):
                if l > 0:
                    self._backward(m, l)
                self._update(m, l)
            with m.State("DONE"):  # (inference samples; a training sample finishes in UPD0)
                self._finish_sample(m)
        # idle: no sample anywhere in the trainer (none computing, none loaded, no beat of
        # one taken): parameters are stable and the bus may access them
        m.d.comb += self.idle.eq(fsm.ongoing("IDLE") & ~self.buffers.full[0] & ~self.buffers.full[1] & ~self.buffers.loading &
                                 ~self._pipe_busy & ~self.update_folding & ~self._retire_sample &
                                 (self._ret_line == 0))
        with m.If(self.batch_restart):  # (a BATCH write: the bus reaches an idle trainer only)
            m.d.sync += self._batch_cnt.eq(0)
        return m

    def _bookkeeping(self, m):
        """The mini-batch count, the retire delay line, the pipeline's busy flags and the
        start condition of a sample."""
        cfg, lay, iss = self._cfg, self._lay, self.issue
        # this sample completes a mini-batch: a register (it gates every lane's signature),
        # a cycle behind the count and BATCH; both change only in cycles after which no
        # update beat is issued or retired for at least a cycle (a sample's end, idle bus)
        self._batch_cnt, apply = Signal(16), Signal()
        m.d.sync += apply.eq(self._batch_cnt + 1 >= self.batch)
        m.d.comb += iss.apply.eq(apply)
        # a sample's SAMPLES/UPDATES count comes out of this delay line as its last
        # parameter is written (a training sample finishes with its last issue; stage U
        # writes that word UPDATE_LATENCY cycles later)
        self._retire_sample, self._retire_update = Signal(), Signal()
        self._ret_line = ret_line = Signal(2 * (update_latency(cfg) - 1))
        m.d.sync += [self._retire_sample.eq(0), self._retire_update.eq(0),
                     ret_line.eq(Cat(self._retire_sample, self._retire_update, ret_line[:-2]))]
        m.d.comb += [self.retired.eq(ret_line[-2]), self.updated.eq(ret_line[-1])]
        # a forward block's last beat issued or in stage 1, R, 2 or M (its snapshot will need
        # the drain), and a beat issued or in stage 1, R, 2, A, S or U (stage F only folds
        # the signature): registers, the same values as the ORs
        self._last_in_flight, self._pipe_busy = Signal(), Signal()
        m.d.sync += [self._last_in_flight.eq((iss.valid & iss.last & iss.fwd) | self.fwd_last_in_flight),
                     self._pipe_busy.eq(iss.valid | self.in_flight | self.update_busy)]
        # the next sample's forward pass reads layer 0's words in the order the update wrote
        # them, starting one cycle after its last issue: a word (or a block's bias) it would
        # read before the write lands, update_latency cycles after that word's issue, makes
        # it wait for the pipeline to empty. That is when (blocks - 1) * n_in < update_latency
        # (the bias of block b is read n_in cycles sooner than the same block's last weight).
        # Adam's biases queue for a free cycle of the lane's one core: after a sample that
        # updated, the next one waits for them all.
        self._wait_cnt = Signal(range(bwd_delta_lag(cfg.lanes) + 1))  # UPDW's count
        short = (lay.blocks(0) - 1) * cfg.layers[0] < update_latency(cfg)
        self._updated_last = Signal()  # the sample that left last applied an update
        if short:
            self._start_ok = self._start_ok_now = ~self._pipe_busy
        elif cfg.optimizer == "adam":  # (as a sample leaves, its own apply decides)
            self._start_ok = ~self._pipe_busy | ~self._updated_last
            self._start_ok_now = ~self._pipe_busy | ~(~self.infer_now & iss.apply)
        else:
            self._start_ok = self._start_ok_now = 1

    def _start_sample(self, m, buf):
        """Start the forward pass on input buffer ``buf`` (full)."""
        m.d.sync += self._walk.phase(0, buf)
        m.d.sync += [self.buf.eq(buf), self.infer_now.eq(Array(self.buffers.infer)[buf])]
        m.next = "FWD0"

    def _finish_sample(self, m):
        """The sample leaves the sequencer: free its buffer, count it, go on with the next
        one if it is loaded (its buffer full: from the cycle after its last beat, so the
        start does not hang off the stream's handshake)."""
        infer, apply = self.infer_now, self.issue.apply
        m.d.comb += self.buffers.release.eq(1)
        m.d.sync += [self.buf.eq(~self.buf), self._retire_sample.eq(1), self._retire_update.eq(~infer & apply),
                     self._updated_last.eq(~infer & apply)]
        with m.If(~infer):
            m.d.sync += self._batch_cnt.eq(Mux(apply, 0, self._batch_cnt + 1))
        with m.If(Array(self.buffers.full)[~self.buf] & self._start_ok_now):
            self._start_sample(m, ~self.buf)
        with m.Else():
            m.next = "IDLE"

    def _after_output(self, m):
        """The output deltas are written: an inference is done, a training sample goes
        backward (a one-layer network to its update, once the last eps is written)."""
        L = self._cfg.n_layers
        with m.If(self.infer_now):
            m.next = "DONE"
        with m.Else():
            m.d.sync += self._walk.phase(L - 1)
            m.next = f"BWD{L - 1}" if L > 1 else "EPSW"

    def _forward(self, m, l):
        """FWD l issues the row blocks' beats; FWDW l waits for the drain (and on the last
        layer of a softmax network, for the output stage)."""
        cfg, lay, w, iss = self._cfg, self._lay, self._walk, self.issue
        P, L, nb = cfg.lanes, cfg.n_layers, lay.blocks(l)
        last_layer = l == L - 1
        with m.State(f"FWD{l}"):
            m.d.comb += [iss.layer.eq(l), iss.fwd.eq(1)]
            m.d.comb += (self.i_addr if l == 0 else self.a_addr).eq(w.kaddr)
            # the snapshot at the end of this block needs the drain free (a block's last
            # beat still in the pipeline will start the drain)
            with m.If(~(w.k_last & (self.drain_active | self._last_in_flight))):
                m.d.comb += [iss.valid.eq(1), iss.first.eq(w.k == 0), iss.last.eq(w.k_last)]
                m.d.sync += w.waddr.eq(w.waddr + 1)
                with m.If(w.k_last):
                    m.d.sync += w.k_reset(l)
                    with m.If(w.rb == nb - 1):
                        m.d.sync += w.rb_reset(l + 1)
                        if not last_layer and (nb - 1) * P >= DRAIN_WRITE_LAG:
                            # the drain writes row (nb-1)P + i DRAIN_WRITE_LAG cycles after
                            # this issue plus i; the next layer reads it (nb-1)P + i cycles
                            # after: the write lands first
                            m.d.sync += w.k_reset(l + 1) + [w.waddr.eq(lay.wbase(l + 1))]
                            m.next = f"FWD{l + 1}"
                        else:
                            m.next = f"FWDW{l}"
                    with m.Else():
                        m.d.sync += w.rb_next()
                with m.Else():
                    m.d.sync += w.k_next(l)
        with m.State(f"FWDW{l}"):
            m.d.comb += [iss.layer.eq(l), iss.fwd.eq(1)]
            done = ~self._pipe_busy & ~self.drain_busy
            softmax_here = last_layer and cfg.activations[-1] == "softmax"
            if softmax_here:
                # the softmax unit's probabilities go straight to m_data, and with the
                # targets to the output deltas (no separate OUT pass)
                m.d.comb += self.out_run.eq(1)
                done = done & self.out_done
            with m.If(done):
                m.d.comb += self.out_start.eq(1)
                if softmax_here:
                    self._after_output(m)
                elif last_layer:
                    m.next = "OUT"
                else:
                    m.d.sync += w.phase(l + 1)
                    m.next = f"FWD{l + 1}"

    def _backward(self, m, l):
        """BWD l: for each input k, the row blocks' beats; delta_{l-1}[k] follows."""
        lay, w, iss = self._lay, self._walk, self.issue
        nb = lay.blocks(l)
        with m.State(f"BWD{l}"):
            m.d.comb += [iss.layer.eq(l), iss.bwd.eq(1), iss.valid.eq(1), iss.first.eq(w.rb == 0),
                         iss.last.eq(w.rb == nb - 1), self.a_addr.eq(w.kaddr), self.d_addr.eq(w.slot)]
            with m.If(w.rb == nb - 1):
                m.d.sync += w.rb_reset(l) + [w.waddr.eq(lay.wbase(l) + w.k + 1)]
                with m.If(w.k_last):
                    # stage 1 and the delta stage finish this layer's last input while the
                    # update starts (it reads neither)
                    m.d.sync += w.k_reset(l) + [w.k_lane.eq(0), w.k_slot.eq(0), w.waddr.eq(lay.wbase(l))]
                    m.next = f"UPD{l}"
                with m.Else():
                    m.d.sync += w.k_next(l)
                    w.k_lane_next(m)
            with m.Else():
                m.d.sync += w.rb_next() + [w.waddr.eq(w.waddr + lay.row_words(l))]

    def _update(self, m, l):
        """UPD l: the row words of every block, back to back; then layer l - 1's backward
        pass (or update), after UPDW l where its deltas would not be written yet."""
        cfg, lay, w, iss = self._cfg, self._lay, self._walk, self.issue
        nb, n_in, BDL = lay.blocks(l), cfg.layers[l], bwd_delta_lag(cfg.lanes)
        nxt = f"BWD{l - 1}" if l - 1 > 0 else f"UPD{l - 1}"
        wait_cnt = self._wait_cnt
        with m.State(f"UPD{l}"):
            m.d.comb += [iss.layer.eq(l), iss.upd.eq(1), iss.valid.eq(1), iss.first.eq(w.k == 0),
                         iss.last.eq(w.k_last), self.e_addr.eq(w.slot)]
            m.d.comb += (self.i_addr if l == 0 else self.a_addr).eq(w.kaddr)
            if l == cfg.n_layers - 1:  # the signature folds the parameters of this update only
                m.d.comb += self.sig_clear.eq(iss.apply & (w.rb == 0) & (w.k == 0))
            m.d.sync += w.waddr.eq(w.waddr + 1)  # blocks are contiguous in every bank
            with m.If(w.k_last):
                m.d.sync += w.k_reset(l)
                with m.If(w.rb == nb - 1):
                    if l > 0:  # the next phase (backward or update) of layer l - 1
                        m.d.sync += w.phase(l - 1)
                    if l > 0 and nb * n_in >= BDL:
                        # the next phase reads layer l - 1 only, and the deltas and eps of
                        # layer l - 1 from this layer's backward pass are written by now
                        m.next = nxt
                    elif l > 0:  # a short update: wait for those writes
                        m.d.sync += wait_cnt.eq(BDL - nb * n_in)
                        m.next = f"UPDW{l}"
                    else:  # the sample is done as its last parameter enters the pipeline
                        m.d.sync += w.rb_reset(0)
                        self._finish_sample(m)
                with m.Else():
                    m.d.sync += w.rb_next()
            with m.Else():
                m.d.sync += w.k_next(l)
        if l > 0 and nb * n_in < BDL:
            with m.State(f"UPDW{l}"):
                m.d.comb += iss.layer.eq(l)
                with m.If(wait_cnt <= 1):
                    m.next = nxt
                with m.Else():
                    m.d.sync += wait_cnt.eq(wait_cnt - 1)
