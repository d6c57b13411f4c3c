"""The sample-parallel trainer: lane p trains sample p of a group (``hardware.parallelism
= "samples"``; docs/trainer.md, "The samples schedule").

Each cycle one parameter is read and broadcast to the P lanes; each lane multiplies it
with its own sample's activation (forward) or delta (backward); an update beat sums the
lanes' products in an adder tree and updates one parameter. The parameters, the bus, the
update engine (the optimizer) and the state banks are the rows schedule's components,
built as for a one-lane trainer (``param_layout``): the host sees one bank.

    loader      s_data into the free one of two group buffers, sample p into lane p
    sequencer   walks a group through FWD, OUT, BWD, UPD per layer; issues beats
    lanes       the beat pipeline, the P multipliers, each lane's activations and deltas
    reduction   an update beat's P products summed, times lr
    update      the optimizer (hdl/trainer/update.py), one parameter per cycle
    params      the weights and biases (one bank)
    results     a group's outputs to m_data, sample after sample
    registers   the CSR bus
"""
from __future__ import annotations

import dataclasses

from amaranth.hdl import Const, Module
from amaranth.lib import wiring

from golden.config import Config

from ...dsp import DSP_KINDS, dsp_for_platform
from ...layout import check_limits
from ..params import ParameterBanks
from ..top import trainer_ports
from ..registers import ControlRegisters
from ..state import StateBanks, state_regions
from ..update import UpdateEngine, lane_flags
from .lanes import SampleLanes
from .loader import GroupLoader
from .reduction import GradientReduction, bias_shape, grad_shape
from .results import ResultStreamer
from .schedule import param_layout
from .sequencer import GroupSequencer

__all__ = ["SampleTrainer"]


class SampleTrainer(wiring.Component):
    """The samples schedule's trainer; its ports are the rows schedule's ``Trainer``'s
    (hdl/trainer/top.py), and CTRL bit 1 (FLUSH) starts a partial group."""

    def __init__(self, cfg: Config, *, dsp: str | None = None):
        if cfg.parallelism != "samples":
            raise ValueError(f"SampleTrainer builds hardware.parallelism = 'samples', got {cfg.parallelism!r}")
        if dsp is not None and dsp not in DSP_KINDS:
            raise ValueError(f"dsp must be one of {', '.join(DSP_KINDS)}, got {dsp!r}")
        check_limits(cfg)
        self._cfg, self._dsp = cfg, dsp
        # the parameters, the bus, the optimizer: as a one-lane trainer's
        self._pcfg = dataclasses.replace(cfg, lanes=1)
        self._layout = param_layout(cfg)
        super().__init__(trainer_ports(cfg))

    @property
    def cfg(self):
        return self._cfg

    @property
    def layout(self):
        return self._layout

    def elaborate(self, platform):
        cfg, pcfg, lay = self._cfg, self._pcfg, self._layout
        m = Module()
        dsp = self._dsp or dsp_for_platform(platform)
        P = cfg.lanes
        m.submodules.loader = loader = GroupLoader(cfg)
        m.submodules.sequencer = seq = GroupSequencer(cfg)
        m.submodules.lanes = lanes = SampleLanes(cfg, dsp=dsp)
        m.submodules.reduction = red = GradientReduction(cfg, dsp=dsp)
        m.submodules.update = upd = UpdateEngine(pcfg, lay, grad_shape=grad_shape(cfg), eps_shape=bias_shape(cfg),
                                                 dsp=dsp)
        m.submodules.params = banks = ParameterBanks(pcfg, lay)
        m.submodules.results = res = ResultStreamer(cfg)
        m.submodules.registers = regs = ControlRegisters(pcfg, lay, retire_max=P)

        # the host's ports
        wiring.connect(m, wiring.flipped(self.s_data), loader.s_data)
        wiring.connect(m, res.m_data, wiring.flipped(self.m_data))
        wiring.connect(m, wiring.flipped(self.csr), regs.csr)
        m.d.comb += [self.busy.eq(~seq.idle), self.param_signature.eq(upd.param_signature),
                     self.state_signature.eq(upd.state_signature)]

        # sequencer -> the reads of each beat -> lanes
        iss = seq.issue
        wiring.connect(m, loader.buffers, seq.buffers)
        m.d.comb += [lanes.issue.eq(iss), banks.addr.eq(iss.waddr), banks.slot.eq(iss.slot),
                     loader.i_addr.eq(iss.iaddr), loader.t_addr.eq(iss.taddr),
                     lanes.w.eq(banks.w_data[0]), lanes.b.eq(banks.b_data[0])]
        m.d.comb += [lanes.inp[p].eq(loader.i_data[p]) for p in range(P)]
        m.d.comb += [lanes.tgt[p].eq(loader.t_data[p]) for p in range(P)]

        # lanes -> reduction -> update engine -> parameters
        m.d.comb += [red.beat.eq(lanes.upd_beat), red.w.eq(lanes.w_a), red.b.eq(lanes.b_a), red.lr.eq(regs.lr)]
        m.d.comb += [red.prod[p].eq(lanes.upd_prod[p]) for p in range(P)]
        m.d.comb += [red.delta[p].eq(lanes.upd_delta[p]) for p in range(P)]
        ob = red.out_beat
        m.d.comb += [upd.beat.valid.eq(ob.valid), upd.beat.apply.eq(ob.apply), upd.beat.last.eq(ob.last),
                     upd.beat.addr.eq(ob.waddr), upd.beat.slot.eq(ob.slot), upd.beat.rv.eq(1),
                     *(getattr(upd.beat, k).eq(v) for k, v in lane_flags(ob.valid, ob.apply, ob.last, Const(1, 1)).items()),
                     upd.grad[0].eq(red.grad), upd.eps[0].eq(red.eps), upd.w[0].eq(red.w_out),
                     upd.b[0].eq(red.b_out), upd.state_addr.eq(red.state_addr), upd.state_slot.eq(red.state_slot),
                     upd.sig_clear.eq(seq.sig_clear)]
        wiring.connect(m, upd.w_wr[0], banks.w_wr[0])
        wiring.connect(m, upd.b_wr[0], banks.b_wr[0])

        # results
        m.d.comb += [res.res_wr.eq(lanes.res_wr), res.go.eq(seq.results_go), res.count.eq(seq.results_count)]

        # the sequencer's view of the pipeline
        m.d.comb += [seq.lanes_busy.eq(lanes.busy), seq.update_busy.eq(red.busy | upd.busy | upd.f_valid),
                     seq.results_busy.eq(res.busy)]

        # control registers <-> loader, sequencer, update engine, parameter banks
        m.d.comb += [loader.mode_infer.eq(regs.mode_infer), loader.flush.eq(regs.flush),
                     loader.batch.eq(regs.batch), loader.batch_restart.eq(regs.batch_restart),
                     regs.len_error.eq(loader.len_error), regs.dropped.eq(loader.dropped),
                     regs.retired.eq(seq.retired), regs.updated.eq(seq.updated), regs.idle.eq(seq.idle),
                     regs.param_signature.eq(upd.param_signature), regs.state_signature.eq(upd.state_signature),
                     banks.bus_wr.eq(regs.param_wr), banks.bus_rd.eq(regs.param_rd),
                     regs.w_data[0].eq(banks.w_data[0]), regs.b_data[0].eq(banks.b_data[0])]
        if state_regions(pcfg):
            m.submodules.state = state = StateBanks(pcfg, lay)
            m.d.comb += [state.addr.eq(red.state_addr), state.slot.eq(red.state_slot),
                         state.bus_wr.eq(regs.param_wr), state.bus_rd.eq(regs.param_rd),
                         regs.s_w_data[0].eq(state.bus_w_data[0]), regs.s_b_data[0].eq(state.bus_b_data[0])]
            for name in ("s1", "s1b", "s2", "s2b"):
                if hasattr(state, name):
                    m.d.comb += getattr(upd, name)[0].eq(getattr(state, name)[0])
                    wiring.connect(m, getattr(upd, f"{name}_wr")[0], getattr(state, f"{name}_wr")[0])
            if cfg.optimizer == "adam":
                m.d.comb += [upd.adam_lr.eq(regs.adam_lr), upd.pow_wr.eq(regs.pow_wr),
                             regs.p1.eq(upd.p1), regs.p2.eq(upd.p2)]
        return m
