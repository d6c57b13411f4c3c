"""AXI4-Lite and AXI4-Stream as Amaranth signatures, seen from the initiator (the master
drives the ``Out`` members). Member names are the AMBA ones without the prefix, so a
component's ``s_axi`` member flattens to ``s_axi_awaddr``, ``s_axi_awvalid``, ... when its
ports are joined with ``_`` (hdl/verilog.py)."""
from __future__ import annotations

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AxiLiteSignature", "AxiStreamSignature", "AXI_RESP_OKAY", "AXI_RESP_SLVERR", "AXI_RESP_DECERR"]

AXI_RESP_OKAY, AXI_RESP_SLVERR, AXI_RESP_DECERR = 0b00, 0b10, 0b11


class AxiLiteSignature(wiring.Signature):
    """AXI4-Lite with 32-bit data, without the optional AWPROT/ARPROT (the trainer has no
    protection levels): write address, write data, write response, read address, read data.

    Parameters
    ----------
    addr_width : int
        Width of ``awaddr`` and ``araddr`` (byte addresses).
    """

    def __init__(self, addr_width: int = 32):
        if not isinstance(addr_width, int) or not 3 <= addr_width <= 64:
            raise ValueError(f"addr_width must be an integer in 3..64, got {addr_width!r}")
        self._addr_width = addr_width
        super().__init__({
            "awaddr": Out(addr_width), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(32), "wstrb": Out(4), "wvalid": Out(1), "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_width), "arvalid": Out(1), "arready": In(1),
            "rdata": In(32), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })

    @property
    def addr_width(self) -> int:
        return self._addr_width

    def __eq__(self, other):
        return isinstance(other, AxiLiteSignature) and other.addr_width == self.addr_width

    def __repr__(self):
        return f"AxiLiteSignature({self._addr_width})"


class AxiStreamSignature(wiring.Signature):
    """AXI4-Stream with TDATA, TVALID, TREADY and TLAST (no TKEEP/TSTRB: every beat is one
    whole code; no TID/TDEST/TUSER).

    Parameters
    ----------
    data_width : int
        Width of ``tdata``, a multiple of 8 as AXI4-Stream requires.
    """

    def __init__(self, data_width: int):
        if not isinstance(data_width, int) or data_width < 8 or data_width % 8:
            raise ValueError(f"AXI4-Stream tdata width must be a positive multiple of 8, got {data_width!r}")
        self._data_width = data_width
        super().__init__({"tdata": Out(data_width), "tvalid": Out(1), "tready": In(1), "tlast": Out(1)})

    @property
    def data_width(self) -> int:
        return self._data_width

    def __eq__(self, other):
        return isinstance(other, AxiStreamSignature) and other.data_width == self.data_width

    def __repr__(self):
        return f"AxiStreamSignature({self._data_width})"
