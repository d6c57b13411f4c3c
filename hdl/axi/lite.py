"""An AXI4-Lite slave in front of the trainer's control bus (hdl/csr.py).

Byte addresses: the bus word ``w`` is at byte address ``4 * w`` (the two low address bits
are ignored, as usual for a 32-bit AXI4-Lite register file); addresses at or above
``4 << ADDR_WIDTH`` (byte address bit 31) are outside the map. One access at a time: a
write starts once both its address and its data are in, a read once its address is in;
a write whose address and data are both in goes before a read (a read may pass a write
whose data has not come yet). The response is the control bus's
``result`` (:class:`hdl.csr.CsrResult`: its values are AXI's), except where this bridge
refuses on its own: DECERR above the map, SLVERR for a write whose ``wstrb`` is not
``0b1111`` (the registers are 32-bit words; a partial write is refused, not applied).
"""
# (no `from __future__ import annotations`: the ports are class annotations Amaranth reads)
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..csr import ADDR_WIDTH, CsrSignature
from .signatures import AXI_RESP_DECERR, AXI_RESP_SLVERR, AxiLiteSignature

__all__ = ["AxiLiteToCsr", "AXI_ADDR_WIDTH", "byte_address"]

AXI_ADDR_WIDTH = 32


def byte_address(word_address: int) -> int:
    """The AXI4-Lite byte address of control-bus word ``word_address``."""
    return word_address << 2


class AxiLiteToCsr(wiring.Component):
    """AXI4-Lite slave to control-bus initiator.

    Members
    -------
    axi : In(AxiLiteSignature(32))
        The AXI4-Lite slave port.
    csr : Out(CsrSignature())
        The control bus, initiator side (connect to ``Trainer.csr``).

    Latency: AW and W (or AR) taken in one cycle, the control-bus access (2 cycles for a
    register, 3 for a parameter write, 6 for a read), then B (or R) from a register.
    No ready depends combinationally on a valid.
    """

    axi: In(AxiLiteSignature(AXI_ADDR_WIDTH))
    csr: Out(CsrSignature())

    def elaborate(self, platform):
        m = Module()
        axi, csr = self.axi, self.csr
        have_aw, have_w = Signal(), Signal()
        # a read and a write address may arrive in the same cycle: each has its register
        waddr, raddr = Signal(AXI_ADDR_WIDTH), Signal(AXI_ADDR_WIDTH)
        wdata, wstrb = Signal(32), Signal(4)
        resp, rdata = Signal(2), Signal(32)

        def unmapped(addr):  # above the control bus's word addresses
            return addr[ADDR_WIDTH + 2:].any()

        m.d.comb += [csr.wdata.eq(wdata), axi.bresp.eq(resp), axi.rresp.eq(resp), axi.rdata.eq(rdata)]

        with m.FSM(name="axil"):
            with m.State("IDLE"):
                m.d.comb += [axi.awready.eq(~have_aw), axi.wready.eq(~have_w),
                             axi.arready.eq(~(have_aw & have_w))]
                with m.If(axi.awvalid & ~have_aw):
                    m.d.sync += [have_aw.eq(1), waddr.eq(axi.awaddr)]
                with m.If(axi.wvalid & ~have_w):
                    m.d.sync += [have_w.eq(1), wdata.eq(axi.wdata), wstrb.eq(axi.wstrb)]
                with m.If(have_aw & have_w):
                    m.d.sync += [have_aw.eq(0), have_w.eq(0)]
                    with m.If(unmapped(waddr)):
                        m.d.sync += resp.eq(AXI_RESP_DECERR)
                        m.next = "B"
                    with m.Elif(wstrb != 0b1111):
                        m.d.sync += resp.eq(AXI_RESP_SLVERR)
                        m.next = "B"
                    with m.Else():
                        m.next = "WRITE"
                with m.Elif(axi.arvalid):
                    m.d.sync += raddr.eq(axi.araddr)
                    m.next = "READ"
            with m.State("WRITE"):
                m.d.comb += [csr.we.eq(1), csr.addr.eq(waddr[2:2 + ADDR_WIDTH])]
                with m.If(csr.ack):
                    m.d.sync += resp.eq(csr.result)
                    m.next = "B"
            with m.State("B"):
                m.d.comb += axi.bvalid.eq(1)
                with m.If(axi.bready):
                    m.next = "IDLE"
            with m.State("READ"):
                with m.If(unmapped(raddr)):
                    m.d.sync += [resp.eq(AXI_RESP_DECERR), rdata.eq(0)]
                    m.next = "R"
                with m.Else():
                    m.d.comb += [csr.re.eq(1), csr.addr.eq(raddr[2:2 + ADDR_WIDTH])]
                    with m.If(csr.ack):
                        m.d.sync += [resp.eq(csr.result), rdata.eq(csr.rdata)]
                        m.next = "R"
            with m.State("R"):
                m.d.comb += axi.rvalid.eq(1)
                with m.If(axi.rready):
                    m.next = "IDLE"
        return m
