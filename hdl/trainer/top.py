"""The trainer: forward pass, backpropagation and SGD update of an MLP, in hardware.

One ``Trainer(cfg)`` per config. P = cfg.lanes lanes, each one multiplier; parameters of
every layer banked by output row (hdl/layout.py). The sequencer walks, per sample:

    LOAD   (beside the sequencer) input and target beats from ``s_data`` into the free one
           of two input buffers, while the other one trains; wrong length -> drop + flag
    FWD l  for each block of P rows: acc[p] = bias[row p] * 1.0, then for k < n_in:
           acc[p] += W[row p, k] * a[k]; a drain unit requantizes and activates the P sums
           while the next block accumulates
    OUT    output codes to ``m_data``, one per cycle; in training also the output deltas
    BWD l  for k: sum over row blocks of the P products W[j, k] * delta[j] (adder tree),
           requantize, times the derivative of the stored a[k] -> delta of layer l-1
    UPD l  for each block, for k: W -= round(eps[p] * a[k]) (or accumulate into the batch
           sums and apply on the batch's last sample), the bias (eps * 1.0, no multiply)
           beside the last weight; eps = lr * delta was stored beside each delta when it
           was computed, so blocks follow each other with no gap

Every narrowing is golden's requantize (hdl/arith.py); results equal golden/fixed_model.py
bit for bit. Backward of layer l runs before its update, so it sees the old weights.
"""
from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.config import Config
from golden.fixed_model import init_params
from golden.lfsr import LFSR_MASK, lane_seed
from golden.signature import SIGNATURE_ROTATE

from ..activation import ActivationDerivative, ActivationFunction
from ..arith import round_shift, saturate, saturating_sub
from ..dsp import DSP_KINDS, dsp_for_platform, registered_product
from ..csr import BANK_SHIFT, CTRL_INFER, ID_VALUE, PARAM_WINDOW, REG, CsrSignature
from ..layout import DRAIN_WRITE_LAG, EPS_LAG, PIPE_LATENCY, UPDATE_LATENCY, Layout, bwd_delta_lag, check_limits, tree_stages
from ..output import ce_delta, mse_delta
from .beat import beat_layout
from .backward import BackwardReduction
from .deltas import DeltaStore, eps_width
from .drain import ForwardDrain
from .lanes import LaneArray, product_shape
from .loader import SampleLoader
from .output_stage import OutputStage
from .params import ParameterBanks
from .registers import ControlRegisters
from .update import UpdateEngine

__all__ = ["Trainer", "beat_layout"]




class Trainer(wiring.Component):
    """MLP trainer generated from one config.

    Members
    -------
    s_data : In(stream.Signature(beat_layout))
        Samples: ``n_in`` input codes then (train mode) ``n_out`` target codes, ``last`` on
        the final beat.
    m_data : Out(stream.Signature(beat_layout))
        Results: the ``n_out`` output codes of every sample, ``last`` on the final one.
    csr : In(CsrSignature)
        Control/status and parameter access (hdl/csr.py, docs/registers.md).
    busy : Out(1)
        High from the first beat of a sample until the trainer can take the next one
        (the STATUS busy bit as a wire, for an interrupt or a testbench to wait on).
    param_signature : Out(32)
        The SIGNATURE register as a wire (debug header, or a testbench checking every
        update without a bus transaction).
    """

    def __init__(self, cfg: Config, *, dsp: str | None = None):
        if dsp is not None and dsp not in DSP_KINDS:
            raise ValueError(f"dsp must be one of {', '.join(DSP_KINDS)}, got {dsp!r}")
        self._layout = check_limits(cfg)
        self._cfg = cfg
        # how the multipliers are built (hdl/dsp.py; the same cycles either way); None:
        # as the platform elaborating the trainer wants them (generic without one)
        self._dsp = dsp
        super().__init__({
            "s_data": In(stream.Signature(beat_layout(cfg))),
            "m_data": Out(stream.Signature(beat_layout(cfg))),
            "csr": In(CsrSignature()),
            "busy": Out(1),
            "param_signature": Out(32),
        })

    @property
    def cfg(self):
        return self._cfg

    @property
    def layout(self) -> Layout:
        return self._layout

    def elaborate(self, platform):
        cfg, lay = self._cfg, self._layout
        m = Module()
        dsp = self._dsp or dsp_for_platform(platform)
        P, L = cfg.lanes, cfg.n_layers
        af, wf, ef = cfg.act.frac_bits, cfg.weight.frac_bits, cfg.error.frac_bits
        AW, WW, EW = cfg.act.width, cfg.weight.width, cfg.error.width
        one = cfg.act.one
        n_in0, n_outL = cfg.layers[0], cfg.layers[-1]
        train_B = cfg.batch_size > 1
        softmax_out = cfg.activations[-1] == "softmax"

        # ---------------- memories ----------------------------------------------------
        # the lanes' weights and biases (params.py) and deltas and eps (deltas.py)
        m.submodules.params = banks = ParameterBanks(cfg, lay)
        m.submodules.deltas = deltas = DeltaStore(cfg, lay, dsp=dsp)
        EPSW = eps_width(cfg)
        wdepth, ddepth = max(lay.wdepth, 1), max(lay.ddepth, 1)
        NO_RW = {"no_rw_check": 1}  # (the loader writes only the buffer the sequencer does not read)
        # the forward drain: requantize + activate a block's sums, the activations (drain.py)
        m.submodules.drain = drain = ForwardDrain(cfg, lay)
        # the output stage: result FIFO, softmax, output deltas (output_stage.py)
        m.submodules.output = out = OutputStage(cfg, lay)
        wiring.connect(m, out.m_data, wiring.flipped(self.m_data))

        # ---------------- control registers -------------------------------------------
        # the CSR bus: registers, counters, parameter access while idle (registers.py)
        m.submodules.registers = regs = ControlRegisters(cfg, lay)
        wiring.connect(m, wiring.flipped(self.csr), regs.csr)
        mode_infer, lr, batch = regs.mode_infer, regs.lr, regs.batch
        cur_infer = Signal()  # mode of the sample the sequencer works on
        # the sample loader: s_data into the free one of two input buffers (loader.py)
        m.submodules.loader = loader = SampleLoader(cfg, lay)
        wiring.connect(m, wiring.flipped(self.s_data), loader.s_data)
        buf_full, buf_infer = Array(loader.full), Array(loader.infer)
        m.d.comb += [loader.mode_infer.eq(mode_infer), regs.len_error.eq(loader.len_error),
                     regs.dropped.eq(loader.dropped)]
        cbuf = Signal()  # buffer the sequencer works on (or starts with next)
        m.d.comb += [loader.t_addr.eq(out.t_addr), out.t_data.eq(loader.t_data), out.a_data.eq(drain.a_data),
                     out.tbuf.eq(cbuf), out.infer.eq(cur_infer), deltas.out_delta.eq(out.delta)]
        m.d.comb += deltas.lr.eq(lr)
        batch_cnt = Signal(16)
        # this sample completes a mini-batch: a register (it gates every lane's signature),
        # a cycle behind batch_cnt and batch; both change only in cycles after which no
        # update beat is issued or retired for at least a cycle (finish_sample, idle bus)
        apply = Signal()
        m.d.sync += apply.eq(batch_cnt + 1 >= batch)

        # the lane array: the beat pipeline, multipliers, forward accumulators (lanes.py)
        m.submodules.lanes = lanes = LaneArray(cfg, lay, dsp=dsp)
        iss = lanes.issue
        m.d.comb += [lanes.act.eq(drain.a_data), lanes.inp.eq(loader.i_data), out.deriv.eq(lanes.deriv_out)]
        for p in range(P):
            m.d.comb += [lanes.w[p].eq(banks.w_data[p]), lanes.b[p].eq(banks.b_data[p]),
                         lanes.delta[p].eq(deltas.d_data[p]), lanes.eps[p].eq(deltas.e_data[p])]
        m.d.comb += [drain.snapshot.eq(lanes.snapshot)] + [drain.sums[p].eq(lanes.sums[p]) for p in range(P)]

        # datapath phase selection (comb), drives the multiplier operands
        ph_fwd, ph_bwd, ph_upd = iss.fwd, iss.bwd, iss.upd

        k_lane = Signal(range(P))  # k_cnt % P and k_cnt // P, kept as counters (no dividers)
        # counters as narrow as the network allows: their compares decide the sequencer's
        # next state every cycle
        max_in = max(cfg.layers[:-1])
        max_rows = max(lay.blocks(l) for l in range(L)) * P
        k_slot = Signal(range(max_in // P + 2))

        layer_of_state = iss.layer  # layer of the current sequencer state
        # issue-stage signals (comb defaults), set by the sequencer
        iss_valid, iss_first, iss_last = iss.valid, iss.first, iss.last
        iss_slot, iss_rowbase, iss_waddr = iss.slot, iss.rowbase, iss.addr
        m.d.comb += [iss.apply.eq(apply), iss.in0.eq(layer_of_state == 0), iss.klane.eq(k_lane), iss.kslot.eq(k_slot)]

        # the update engine: stage A's update beats in, parameter writes out (update.py)
        m.submodules.update = upd = UpdateEngine(cfg, lay, grad_shape=product_shape(cfg), eps_shape=signed(EPSW))
        m.d.comb += [upd.beat.eq(lanes.upd_beat), upd.state_addr.eq(iss.addr), upd.state_slot.eq(iss.slot)]
        for p in range(P):
            m.d.comb += [upd.w[p].eq(lanes.w_a[p]), upd.b[p].eq(lanes.b_a[p]), upd.grad[p].eq(lanes.prod[p]),
                         upd.eps[p].eq(lanes.eps_a[p])]
            wiring.connect(m, upd.w_wr[p], banks.w_wr[p])
            wiring.connect(m, upd.b_wr[p], banks.b_wr[p])
        # a forward block's last beat issued or in stage 1, R, 2 or M (its snapshot will need
        # the drain), kept as a register
        last_in_flight = Signal()
        m.d.sync += last_in_flight.eq((iss.valid & iss.last & iss.fwd) | lanes.fwd_last_in_flight)
        # a beat issued or in stage 1, R, 2, A, S or U (stage F only folds the signature);
        # a register (the same value as their OR)
        pipe_busy = Signal()
        m.d.sync += pipe_busy.eq(iss.valid | lanes.in_flight | upd.s_valid)

        # ---------------- CSR access to parameters (only while idle) -----------------
        idle = Signal()
        m.d.comb += [banks.addr.eq(iss_waddr), banks.slot.eq(iss_slot)]

        # ---------------- sequencer ---------------------------------------------------
        k_cnt = Signal(range(max_in + 1))
        # k_cnt's last value in the current phase (k_cnt == n_in - 1), a register kept beside
        # it: the phases' end tests, stalls and address updates start at a flip-flop
        k_last = Signal()

        # and the activation read address of input k (a_{l}[k] in the activation memory, or
        # a_0[k] in the input buffer), also a register beside it
        kaddr = Signal(range(max(lay.adepth, lay.idepth) + 1))

        def k_set0(l, buf=None):
            """k_cnt = 0 for a phase (or block) of layer l (input buffer `buf`, default cbuf)."""
            base = lay.abase(l) if l > 0 else Mux(cbuf if buf is None else buf, lay.ibase(1), 0)
            return [k_cnt.eq(0), k_last.eq(cfg.layers[l] == 1), kaddr.eq(base)]

        def k_inc(l):
            return [k_cnt.eq(k_cnt + 1), k_last.eq(k_cnt == cfg.layers[l] - 2), kaddr.eq(kaddr + 1)]
        rb_cnt = Signal(range(max_rows // P + 1))
        # the row block's first row and its slot (dbase(l) + rb_cnt: bias, delta and eps
        # word), kept as registers beside rb_cnt: the memories' read addresses and the
        # beat's control come from registers, not from a select over the states
        rowbase = Signal(range(max_rows + 1))
        slot = Signal(range(ddepth))
        m.d.comb += [iss_rowbase.eq(rowbase), iss_slot.eq(slot)]

        def rb_reset(l):
            """rb_cnt = 0 for a phase of layer l."""
            return [rb_cnt.eq(0), rowbase.eq(0), slot.eq(lay.dbase(min(l, L - 1)))]

        def rb_next():
            return [rb_cnt.eq(rb_cnt + 1), rowbase.eq(rowbase + P), slot.eq(slot + 1)]
        waddr = Signal(range(wdepth + 1))
        # every phase walks the parameter memories with the register waddr (BWD: wbase +
        # rb_cnt * rw + k_cnt, as a counter), so the read address comes straight from it
        m.d.comb += iss_waddr.eq(waddr)
        seq_run = Signal()  # the sequencer works on a sample (every state but IDLE)
        BDL = bwd_delta_lag(P)
        wait_cnt = Signal(range(BDL + 1))
        # DONE's count reaches SAMPLES/UPDATES as the last parameter is written (stage A)
        # (a training sample finishes with its last issue; stage U writes that word
        # UPDATE_LATENCY cycles later, when the count comes out of this delay line)
        retire_sample, retire_update = Signal(), Signal()  # set by finish_sample (later statements win)
        ret_line = Signal(2 * (UPDATE_LATENCY - 1))
        m.d.sync += [retire_sample.eq(0), retire_update.eq(0),
                     ret_line.eq(Cat(retire_sample, retire_update, ret_line[:-2]))]
        ret_s, ret_u = ret_line[-2], ret_line[-1]
        m.d.comb += [regs.retired.eq(ret_s), regs.updated.eq(ret_u)]
        # the next sample's forward pass reads layer 0's words in the order the update wrote
        # them, starting one cycle after its last issue: a word (or a block's bias) it would
        # read before the write lands, UPDATE_LATENCY cycles after that word's issue, makes
        # it wait for the pipeline to empty. That is when (blocks - 1) * n_in < UPDATE_LATENCY
        # (the bias of block b is read n_in cycles sooner than the same block's last weight).
        start_ok = Signal()
        if (lay.blocks(0) - 1) * n_in0 < UPDATE_LATENCY:
            m.d.comb += start_ok.eq(~pipe_busy)
        else:
            m.d.comb += start_ok.eq(1)

        def finish_sample():
            """The sample leaves the sequencer: free its buffer, count it, go on with the
            next one if it is loaded (its buffer full: from the cycle after its last beat,
            so the start does not hang off the stream's handshake)."""
            # SAMPLES and UPDATES count it when its last parameter is written (stage A)
            m.d.comb += [loader.release.eq(1), loader.release_buf.eq(cbuf)]
            m.d.sync += [cbuf.eq(~cbuf), retire_sample.eq(1),
                         retire_update.eq(~cur_infer & apply)]
            with m.If(~cur_infer):
                with m.If(apply):
                    m.d.sync += batch_cnt.eq(0)
                with m.Else():
                    m.d.sync += batch_cnt.eq(batch_cnt + 1)
            with m.If(buf_full[~cbuf] & start_ok):
                start_sample(~cbuf)
            with m.Else():
                m.next = "IDLE"

        def start_sample(buf):
            """Start the forward pass on input buffer `buf` (full)."""
            m.d.sync += rb_reset(0)
            m.d.sync += k_set0(0, buf)
            m.d.sync += [waddr.eq(lay.wbase(0)), cbuf.eq(buf),
                         cur_infer.eq(buf_infer[buf])]
            m.next = "FWD0"

        with m.FSM(name="seq") as fsm_seq:
            with m.State("IDLE"):
                # when idle with no full buffer, the loader fills cbuf: start once it is full
                with m.If(buf_full[cbuf] & start_ok):
                    start_sample(cbuf)

            for l in range(L):
                n_in, n_out = cfg.layers[l], cfg.layers[l + 1]
                nb = lay.blocks(l)
                last_layer = l == L - 1
                # ---- forward: issue reads -------------------------------------------
                with m.State(f"FWD{l}"):
                    m.d.comb += layer_of_state.eq(l)
                    m.d.comb += ph_fwd.eq(1)
                    is_last_k = k_last
                    # the snapshot at the end of this block needs the drain free
                    # (a block's last beat still in the pipeline will start the drain)
                    stall = is_last_k & (drain.active | last_in_flight)
                    if l == 0:
                        m.d.comb += loader.i_addr.eq(kaddr)
                    else:
                        m.d.comb += drain.a_addr.eq(kaddr)
                    with m.If(~stall):
                        m.d.comb += [iss_valid.eq(1), iss_first.eq(k_cnt == 0), iss_last.eq(is_last_k)]
                        m.d.sync += waddr.eq(waddr + 1)
                        with m.If(is_last_k):
                            m.d.sync += k_set0(l)
                            with m.If(rb_cnt == nb - 1):
                                m.d.sync += rb_reset(l + 1)
                                if not last_layer and (nb - 1) * P >= DRAIN_WRITE_LAG:
                                    # the drain writes row (nb-1)P + i DRAIN_WRITE_LAG cycles
                                    # after this issue plus i; the next layer reads it
                                    # (nb-1)P + i cycles after: the write lands first
                                    m.d.sync += k_set0(l + 1)
                                    m.d.sync += waddr.eq(lay.wbase(l + 1))
                                    m.next = f"FWD{l + 1}"
                                else:
                                    m.next = f"FWDW{l}"
                            with m.Else():
                                m.d.sync += rb_next()
                        with m.Else():
                            m.d.sync += k_inc(l)
                with m.State(f"FWDW{l}"):
                    m.d.comb += layer_of_state.eq(l)
                    m.d.comb += ph_fwd.eq(1)
                    done = ~pipe_busy & ~drain.busy
                    if last_layer and softmax_out:
                        # the softmax unit's probabilities go straight to m_data, and with the
                        # targets to the output deltas (no separate OUT pass)
                        m.d.comb += out.run.eq(1)
                        done = done & out.done
                    with m.If(done):
                        m.d.comb += out.start.eq(1)
                        if last_layer and softmax_out:
                            with m.If(cur_infer):
                                m.next = "DONE"
                            with m.Else():
                                m.d.sync += rb_reset(L - 1)
                                m.d.sync += k_set0(L - 1)
                                m.d.sync += waddr.eq(lay.wbase(L - 1))
                                m.next = f"BWD{L - 1}" if L > 1 else "EPSW"
                        elif last_layer:
                            m.next = "OUT"
                        else:
                            m.d.sync += rb_reset(l + 1)
                            m.d.sync += k_set0(l + 1)
                            m.d.sync += waddr.eq(lay.wbase(l + 1))
                            m.next = f"FWD{l + 1}"

            # ---- output codes (and output deltas when training) -------------------------
            if not softmax_out:  # (softmax: the FWDW state of the last layer does this)
                with m.State("OUT"):
                    m.d.comb += [out.run.eq(1), drain.a_addr.eq(out.a_addr)]
                    with m.If(out.done):  # the last delta is written now
                        with m.If(cur_infer):
                            m.next = "DONE"
                        with m.Else():
                            m.d.sync += rb_reset(L - 1)
                            m.d.sync += k_set0(L - 1)
                            m.d.sync += waddr.eq(lay.wbase(L - 1))
                            m.next = f"BWD{L - 1}" if L > 1 else "EPSW"

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
                n_in, n_out = cfg.layers[l], cfg.layers[l + 1]
                nb = lay.blocks(l)
                rw = lay.row_words(l)
                if l > 0:
                    # ---- backward through layer l: delta_{l-1}[k], k < n_in --------------
                    with m.State(f"BWD{l}"):
                        m.d.comb += layer_of_state.eq(l)
                        m.d.comb += ph_bwd.eq(1)
                        is_last_rb = rb_cnt == nb - 1
                        m.d.comb += [
                            iss_valid.eq(1), iss_first.eq(rb_cnt == 0), iss_last.eq(is_last_rb),
                            drain.a_addr.eq(kaddr),
                        ]
                        m.d.comb += deltas.d_addr.eq(slot)
                        with m.If(is_last_rb):
                            m.d.sync += rb_reset(l)
                            m.d.sync += waddr.eq(lay.wbase(l) + k_cnt + 1)
                            with m.If(k_last):
                                # stage 1 and the delta stage finish this layer's last input
                                # while the update starts (it reads neither)
                                m.d.sync += k_set0(l)
                                m.d.sync += [k_lane.eq(0), k_slot.eq(0), waddr.eq(lay.wbase(l))]
                                m.next = f"UPD{l}"
                            with m.Else():
                                m.d.sync += k_inc(l)
                                with m.If(k_lane == P - 1):
                                    m.d.sync += [k_lane.eq(0), k_slot.eq(k_slot + 1)]
                                with m.Else():
                                    m.d.sync += k_lane.eq(k_lane + 1)
                        with m.Else():
                            m.d.sync += rb_next()
                            m.d.sync += waddr.eq(waddr + rw)
                # ---- update layer l: the row words of every block, back to back ---------
                with m.State(f"UPD{l}"):
                    m.d.comb += layer_of_state.eq(l)
                    m.d.comb += ph_upd.eq(1)
                    is_last_k = k_last
                    m.d.comb += [
                        iss_valid.eq(1), iss_first.eq(k_cnt == 0), iss_last.eq(is_last_k),
                    ]
                    m.d.comb += deltas.e_addr.eq(slot)
                    if l == 0:
                        m.d.comb += loader.i_addr.eq(kaddr)
                    else:
                        m.d.comb += drain.a_addr.eq(kaddr)
                    if l == L - 1:  # the signature folds the parameters of this update only
                        m.d.comb += upd.sig_clear.eq(apply & (rb_cnt == 0) & (k_cnt == 0))
                    m.d.sync += waddr.eq(waddr + 1)  # blocks are contiguous in every bank
                    with m.If(is_last_k):
                        m.d.sync += k_set0(l)
                        with m.If(rb_cnt == nb - 1):
                            if l > 0:  # the next phase (backward or update) of layer l - 1
                                m.d.sync += k_set0(l - 1)
                            if l > 0 and nb * n_in >= BDL:
                                # the next phase reads layer l - 1 only, and the deltas and
                                # eps of layer l - 1 from this layer's backward pass are
                                # written by now: no need to drain
                                m.d.sync += rb_reset(l - 1)
                                m.d.sync += waddr.eq(lay.wbase(l - 1))
                                m.next = f"BWD{l - 1}" if l - 1 > 0 else f"UPD{l - 1}"
                            elif l > 0:  # a short update: wait for those writes
                                m.d.sync += rb_reset(l - 1)
                                m.d.sync += [waddr.eq(lay.wbase(l - 1)), wait_cnt.eq(BDL - nb * n_in)]
                                m.next = f"UPDW{l}"
                            else:  # the sample is done as its last parameter enters the pipeline
                                m.d.sync += rb_reset(0)
                                finish_sample()
                        with m.Else():
                            m.d.sync += rb_next()
                    with m.Else():
                        m.d.sync += k_inc(l)
                if l > 0 and nb * n_in < BDL:
                    with m.State(f"UPDW{l}"):
                        m.d.comb += layer_of_state.eq(l)
                        with m.If(wait_cnt <= 1):
                            m.next = f"BWD{l - 1}" if l - 1 > 0 else f"UPD{l - 1}"
                        with m.Else():
                            m.d.sync += wait_cnt.eq(wait_cnt - 1)

            with m.State("DONE"):  # (inference samples; a training sample finishes in UPD0)
                finish_sample()

        # idle: no sample anywhere in the trainer (none computing, none loaded, no beat of
        # one taken): parameters are stable and the bus may access them
        m.d.comb += seq_run.eq(~fsm_seq.ongoing("IDLE"))
        m.d.comb += idle.eq(~seq_run & ~buf_full[0] & ~buf_full[1] & ~loader.loading &
                            ~pipe_busy & ~upd.f_valid & ~retire_sample & (ret_line == 0))
        m.d.comb += [self.busy.eq(~idle), regs.idle.eq(idle)]
        m.d.comb += drain.room.eq(out.room)
        wiring.connect(m, drain.logit, out.logit)
        # the backward reduction: adder tree, running sum, delta_{l-1} (backward.py)
        m.submodules.backward = bwd = BackwardReduction(cfg, lay, prod_shape=product_shape(cfg))
        m.d.comb += [bwd.beat.eq(lanes.bwd_beat), deltas.bwd_delta.eq(bwd.delta)]
        m.d.comb += [bwd.prod[p].eq(lanes.prod[p]) for p in range(P)]

        # ---------------- the bus's parameter accesses (the trainer is idle) ----------------
        m.d.comb += [regs.param_signature.eq(upd.param_signature), self.param_signature.eq(upd.param_signature)]
        m.d.comb += [regs.w_data[p].eq(banks.w_data[p]) for p in range(P)]
        m.d.comb += [regs.b_data[p].eq(banks.b_data[p]) for p in range(P)]
        m.d.comb += [banks.bus_wr.eq(regs.param_wr), banks.bus_rd.eq(regs.param_rd)]
        with m.If(regs.batch_restart):
            m.d.sync += batch_cnt.eq(0)
        return m
