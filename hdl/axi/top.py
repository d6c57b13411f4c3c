"""``AxiTrainer``: the trainer with AXI4-Stream samples and results, AXI4-Lite control.

The same trainer the native top is (``hdl.trainer.build_trainer(cfg)``), wrapped: nothing of the trainer
is configured or built twice. Its ports in Verilog (``verilog_ports``) carry the names
SoC tools expect::

    aclk, aresetn                              one clock; reset active low, synchronous
    s_axis_tdata/tvalid/tready/tlast           samples in (the trainer's s_data)
    m_axis_tdata/tvalid/tready/tlast           results out (the trainer's m_data)
    s_axi_aw*/w*/b*/ar*/r*                     AXI4-Lite: registers and parameter window

``tdata`` is ``axi_data_width(cfg)`` bits: the act code rounded up to whole bytes, the
code in the low bits. Input codes take the low ``act.width`` bits (the bits above are
ignored); output codes are sign-extended to the full width. Registers and the parameter
window are at byte address ``4 *`` their word address (docs/registers.md, "AXI").
"""
from __future__ import annotations

from amaranth.hdl import ClockDomain, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from golden.config import Config

from ..trainer import build_trainer
from .lite import AXI_ADDR_WIDTH, AxiLiteToCsr
from .signatures import AxiLiteSignature, AxiStreamSignature

__all__ = ["AxiTrainer", "axi_data_width"]


def axi_data_width(cfg: Config) -> int:
    """``tdata`` width of the sample and result streams: the act code in whole bytes."""
    return 8 * -(-cfg.act.width // 8)


class AxiTrainer(wiring.Component):
    """The trainer behind AXI4-Stream and AXI4-Lite.

    Parameters
    ----------
    cfg : Config
        The network and hardware config (as for ``Trainer``).
    dsp : str or None
        How the multipliers are built (``Trainer``'s ``dsp``).

    Members
    -------
    aclk : In(1)
        The clock of everything.
    aresetn : In(1)
        Synchronous reset, active low (AMBA's ARESETn).
    s_axis : In(AxiStreamSignature(axi_data_width(cfg)))
        Samples: ``n_in`` input codes then (train mode) ``n_out`` target codes, ``tlast``
        on the final beat (docs/registers.md: wrong lengths are dropped and flagged).
    m_axis : Out(AxiStreamSignature(axi_data_width(cfg)))
        Results: the ``n_out`` output codes of every sample, ``tlast`` on the final one.
    s_axi : In(AxiLiteSignature(32))
        Registers and parameter window; SLVERR for a refused access, DECERR outside the map.
    """

    def __init__(self, cfg: Config, *, dsp: str | None = None):
        self._trainer = build_trainer(cfg, dsp=dsp)  # validates cfg and dsp
        self._cfg = cfg
        width = axi_data_width(cfg)
        super().__init__({
            "aclk": In(1),
            "aresetn": In(1),
            "s_axis": In(AxiStreamSignature(width)),
            "m_axis": Out(AxiStreamSignature(width)),
            "s_axi": In(AxiLiteSignature(AXI_ADDR_WIDTH)),
        })

    @property
    def cfg(self) -> Config:
        return self._cfg

    @property
    def trainer(self) -> wiring.Component:
        return self._trainer

    def verilog_ports(self) -> dict:
        """Verilog port name -> signal: the members joined with ``_`` (``s_axi_awaddr``)."""
        return {"_".join(str(p) for p in path): value
                for path, member, value in self.signature.flatten(self)}

    def elaborate(self, platform):
        m = Module()
        # the design's one clock domain, from the AXI clock and reset
        m.domains.sync = sync = ClockDomain("sync")
        m.d.comb += [sync.clk.eq(self.aclk), sync.rst.eq(~self.aresetn)]
        m.submodules.trainer = trainer = self._trainer
        m.submodules.axil = axil = AxiLiteToCsr()
        wiring.connect(m, wiring.flipped(self.s_axi), axil.axi)
        wiring.connect(m, axil.csr, trainer.csr)

        aw = self._cfg.act.width
        s_in, s_out = trainer.s_data, trainer.m_data
        code_out = Signal(signed(aw))
        m.d.comb += [
            s_in.payload.data.eq(self.s_axis.tdata[:aw]), s_in.payload.last.eq(self.s_axis.tlast),
            s_in.valid.eq(self.s_axis.tvalid), self.s_axis.tready.eq(s_in.ready),
            code_out.eq(s_out.payload.data),
            self.m_axis.tdata.eq(code_out),  # sign-extended to the tdata width
            self.m_axis.tlast.eq(s_out.payload.last),
            self.m_axis.tvalid.eq(s_out.valid), s_out.ready.eq(self.m_axis.tready),
        ]
        return m
