"""The trainer: forward pass, backpropagation and SGD update of an MLP, in hardware.

One ``Trainer(cfg)`` per config: P = cfg.lanes lanes, each one multiplier, parameters of
every layer banked by output row (hdl/layout.py). The top only instantiates the
components and connects them; docs/trainer.md opens with their block diagram.

    loader      s_data into the free one of two input buffers (the next sample loads
                while one trains); wrong lengths dropped and flagged
    sequencer   walks each sample through FWD, OUT, BWD, UPD per layer; issues beats
    lanes       the beat pipeline, the P multipliers, the forward accumulators
    drain       a row block's sums requantized and activated into the activations
    output      output codes to m_data; the output deltas (MSE, or softmax + CE)
    backward    adder tree over the lanes, running sum, delta of the layer below
    deltas      deltas and eps = lr x delta, by row slot
    update      the optimizer: parameter, gradient terms, state in; new parameter out
    params      the weight and bias banks
    registers   the CSR bus: registers, counters, parameter access while idle

Every narrowing is golden's requantize (hdl/arith.py); results equal golden/fixed_model.py
bit for bit. Backward of layer l runs before its update, so it sees the old weights.
"""
from __future__ import annotations

from amaranth.hdl import Module, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden.config import Config

from ..csr import CsrSignature
from ..dsp import DSP_KINDS, dsp_for_platform
from ..layout import Layout, check_limits
from .backward import BackwardReduction
from .beat import beat_layout
from .deltas import DeltaStore, eps_width
from .drain import ForwardDrain
from .lanes import LaneArray, product_shape
from .loader import SampleLoader
from .output_stage import OutputStage
from .params import ParameterBanks
from .registers import ControlRegisters
from .sequencer import Sequencer
from .state import StateBanks, state_regions
from .update import UpdateEngine

__all__ = ["Trainer", "beat_layout", "trainer_ports"]


def trainer_ports(cfg: Config) -> dict:
    """The ports every schedule's trainer has (documented on ``Trainer``)."""
    return {
        "s_data": In(stream.Signature(beat_layout(cfg))),
        "m_data": Out(stream.Signature(beat_layout(cfg))),
        "csr": In(CsrSignature()),
        "busy": Out(1),
        "param_signature": Out(32),
        "state_signature": Out(32),
    }


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
    param_signature, state_signature : Out(32)
        The SIGNATURE and STATE_SIGNATURE registers as wires (debug header, or a testbench
        checking every update without a bus transaction).
    """

    def __init__(self, cfg: Config, *, dsp: str | None = None):
        if dsp is not None and dsp not in DSP_KINDS:
            raise ValueError(f"dsp must be one of {', '.join(DSP_KINDS)}, got {dsp!r}")
        self._layout = check_limits(cfg)
        self._cfg = cfg
        # how the multipliers are built (hdl/dsp.py; the same cycles either way); None:
        # as the platform elaborating the trainer wants them (generic without one)
        self._dsp = dsp
        super().__init__(trainer_ports(cfg))

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
        P = cfg.lanes

        # the lanes' weights and biases, their deltas and eps, the activations
        m.submodules.params = banks = ParameterBanks(cfg, lay)
        m.submodules.deltas = deltas = DeltaStore(cfg, lay, dsp=dsp)
        m.submodules.drain = drain = ForwardDrain(cfg, lay)
        m.submodules.loader = loader = SampleLoader(cfg, lay)
        m.submodules.sequencer = seq = Sequencer(cfg, lay)
        m.submodules.lanes = lanes = LaneArray(cfg, lay, dsp=dsp)
        m.submodules.backward = bwd = BackwardReduction(cfg, lay, prod_shape=product_shape(cfg))
        m.submodules.update = upd = UpdateEngine(cfg, lay, grad_shape=product_shape(cfg), eps_shape=signed(eps_width(cfg)),
                                              dsp=dsp)
        m.submodules.output = out = OutputStage(cfg, lay)
        m.submodules.registers = regs = ControlRegisters(cfg, lay)

        # the host's ports
        wiring.connect(m, wiring.flipped(self.s_data), loader.s_data)
        wiring.connect(m, out.m_data, wiring.flipped(self.m_data))
        wiring.connect(m, wiring.flipped(self.csr), regs.csr)
        m.d.comb += [self.busy.eq(~seq.idle), self.param_signature.eq(upd.param_signature)]

        # sequencer -> the reads of each beat -> lanes
        iss = seq.issue
        m.d.comb += [lanes.issue.eq(iss), banks.addr.eq(iss.addr), banks.slot.eq(iss.slot),
                     upd.state_addr.eq(iss.addr), upd.state_slot.eq(iss.slot),
                     drain.a_addr.eq(seq.a_addr), loader.i_addr.eq(seq.i_addr),
                     deltas.d_addr.eq(seq.d_addr), deltas.e_addr.eq(seq.e_addr),
                     lanes.act.eq(drain.a_data), lanes.inp.eq(loader.i_data)]
        m.d.comb += [lanes.w[p].eq(banks.w_data[p]) for p in range(P)]
        m.d.comb += [lanes.b[p].eq(banks.b_data[p]) for p in range(P)]
        m.d.comb += [lanes.delta[p].eq(deltas.d_data[p]) for p in range(P)]
        m.d.comb += [lanes.eps[p].eq(deltas.e_data[p]) for p in range(P)]

        # lanes -> drain (forward), backward reduction, update engine
        m.d.comb += [drain.snapshot.eq(lanes.snapshot), bwd.beat.eq(lanes.bwd_beat), upd.beat.eq(lanes.upd_beat)]
        m.d.comb += [drain.sums[p].eq(lanes.sums[p]) for p in range(P)]
        m.d.comb += [bwd.prod[p].eq(lanes.prod[p]) for p in range(P)]
        m.d.comb += [upd.grad[p].eq(lanes.prod[p]) for p in range(P)]
        m.d.comb += [upd.eps[p].eq(lanes.eps_a[p]) for p in range(P)]
        m.d.comb += [upd.w[p].eq(lanes.w_a[p]) for p in range(P)]
        m.d.comb += [upd.b[p].eq(lanes.b_a[p]) for p in range(P)]
        for p in range(P):
            wiring.connect(m, upd.w_wr[p], banks.w_wr[p])
            wiring.connect(m, upd.b_wr[p], banks.b_wr[p])
        m.d.comb += [deltas.bwd_delta.eq(bwd.delta), deltas.out_delta.eq(out.delta), deltas.lr.eq(regs.lr)]

        # drain -> output stage (softmax logits); output stage <-> sequencer, loader, drain
        wiring.connect(m, drain.logit, out.logit)
        m.d.comb += [drain.room.eq(out.room), out.deriv.eq(lanes.deriv_out),
                     out.start.eq(seq.out_start), out.run.eq(seq.out_run), seq.out_done.eq(out.done),
                     seq.out_a_addr.eq(out.a_addr), out.a_data.eq(drain.a_data),
                     out.tbuf.eq(seq.buf), out.infer.eq(seq.infer_now),
                     loader.t_addr.eq(out.t_addr), out.t_data.eq(loader.t_data)]

        # the sequencer's view of the loader and the pipeline
        wiring.connect(m, loader.buffers, seq.buffers)
        m.d.comb += [seq.drain_active.eq(drain.active), seq.drain_busy.eq(drain.busy),
                     seq.in_flight.eq(lanes.in_flight), seq.fwd_last_in_flight.eq(lanes.fwd_last_in_flight),
                     seq.update_busy.eq(upd.busy), seq.update_folding.eq(upd.f_valid),
                     upd.sig_clear.eq(seq.sig_clear)]

        # control registers <-> loader, sequencer, update engine, parameter banks
        m.d.comb += [loader.mode_infer.eq(regs.mode_infer), regs.len_error.eq(loader.len_error),
                     regs.dropped.eq(loader.dropped), seq.batch.eq(regs.batch),
                     seq.batch_restart.eq(regs.batch_restart), regs.retired.eq(seq.retired),
                     regs.updated.eq(seq.updated), regs.idle.eq(seq.idle),
                     regs.param_signature.eq(upd.param_signature),
                     banks.bus_wr.eq(regs.param_wr), banks.bus_rd.eq(regs.param_rd)]
        m.d.comb += [regs.w_data[p].eq(banks.w_data[p]) for p in range(P)]
        m.d.comb += [regs.b_data[p].eq(banks.b_data[p]) for p in range(P)]
        m.d.comb += [regs.state_signature.eq(upd.state_signature), self.state_signature.eq(upd.state_signature)]
        if state_regions(cfg):
            self._optimizer_state(m, upd, regs, iss)
        return m

    def _optimizer_state(self, m, upd, regs, iss):
        """Momentum and Adam: the state banks between the update engine and the bus; Adam's
        ADAM_LR and powers between the registers and the engine."""
        cfg, P = self._cfg, self._cfg.lanes
        m.submodules.state = state = StateBanks(cfg, self._layout)
        m.d.comb += [state.addr.eq(iss.addr), state.slot.eq(iss.slot),
                     state.bus_wr.eq(regs.param_wr), state.bus_rd.eq(regs.param_rd)]
        for p in range(P):
            m.d.comb += [regs.s_w_data[p].eq(state.bus_w_data[p]), regs.s_b_data[p].eq(state.bus_b_data[p])]
            for name in ("s1", "s1b", "s2", "s2b"):
                if hasattr(state, name):
                    m.d.comb += getattr(upd, name)[p].eq(getattr(state, name)[p])
                    wiring.connect(m, getattr(upd, f"{name}_wr")[p], getattr(state, f"{name}_wr")[p])
        if cfg.optimizer == "adam":
            m.d.comb += [upd.adam_lr.eq(regs.adam_lr), upd.pow_wr.eq(regs.pow_wr),
                         regs.p1.eq(upd.p1), regs.p2.eq(upd.p2)]
