"""Register and memory map of the trainer's control/status bus (docs/registers.md).

Word-addressed, 32-bit data. Shared by the hardware and the host driver.
"""
from __future__ import annotations

from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["CsrSignature", "CsrResult", "REG", "ID_VALUE", "PARAM_WINDOW", "param_address", "CTRL_INFER",
           "CTRL_FLUSH", "STATUS_BITS", "READ_ONLY"]

ID_VALUE = 0xBF0A_0001

REG = {
    "ID": 0x00,          # RO  identification, ID_VALUE
    "CTRL": 0x01,        # RW  bit0: mode (0 train, 1 infer); bit1 (write): FLUSH, the samples schedule starts a partial group
    "STATUS": 0x02,      # RO  bit0 busy, bit1 length error (sticky), bit2 bus error (sticky); write 1s to clear
    "LR": 0x03,          # RW  learning-rate code (lr / B * 2**lr_frac_bits)
    "BATCH": 0x04,       # RW  mini-batch size, 1 .. config batch_size
    "SAMPLES": 0x05,     # RO  samples completed (train and infer)
    "CYCLES_LO": 0x06,   # RO  cycles spent on samples, low word (latched on read of LO)
    "CYCLES_HI": 0x07,   # RO  high word of the value latched by the last CYCLES_LO read
    "DROPPED": 0x08,     # RO  samples dropped for a wrong length
    "SIGNATURE": 0x09,   # RO  fold of every parameter written by the last update (see golden signature)
    "UPDATES": 0x0A,     # RO  parameter updates applied
    "STATE_SIGNATURE": 0x0B,  # RO  fold of the optimizer state written by the last update (0 with SGD)
    "ADAM_LR": 0x0C,     # RW  (adam) learning-rate code, lr * 2**adam_alpha_frac_bits
    "BETA1_POW": 0x0D,   # RW  (adam) beta1**t of the next update t, 32 fraction bits; writable while idle
    "BETA2_POW": 0x0E,   # RW  (adam) beta2**t
}
#: registers a write refuses (CsrResult.REFUSED); STATUS is write-1-to-clear, not read-only
READ_ONLY = ("ID", "SAMPLES", "CYCLES_LO", "CYCLES_HI", "DROPPED", "SIGNATURE", "UPDATES", "STATE_SIGNATURE")
CTRL_INFER = 1 << 0
CTRL_FLUSH = 1 << 1
STATUS_BITS = {"busy": 1 << 0, "length_error": 1 << 1, "bus_error": 1 << 2}

# Parameter window: address = PARAM_WINDOW | region << 26 | bank << 20 | word address in the
# bank. Region 0: the parameters; 1: the optimizer's first state word (momentum's velocity,
# Adam's m); 2: Adam's v, low 32 bits; 3: Adam's v, bits 32 and up (hdl/trainer/state.py).
PARAM_WINDOW = 1 << 28
BANK_SHIFT = 20
REGION_SHIFT = 26
ADDR_WIDTH = 29


def param_address(bank: int, addr: int, region: int = 0) -> int:
    return PARAM_WINDOW | (region << REGION_SHIFT) | (bank << BANK_SHIFT) | addr


class CsrResult(enum.Enum, shape=2):
    """How an access ended, valid with ``ack``. The values are AXI's xRESP codes, so the
    AXI4-Lite bridge (hdl/axi/lite.py) passes them on as they are; every result but ``OK``
    also sets the sticky STATUS ``bus_error`` flag."""
    OK = 0b00
    REFUSED = 0b10   # SLVERR: a parameter access while busy, a write to a read-only register, a value out of range
    UNMAPPED = 0b11  # DECERR: no register or parameter at this address


class CsrSignature(wiring.Signature):
    """A simple synchronous register bus (host side is the initiator).

    The host holds ``addr`` and ``re`` (or ``we`` with ``wdata``) until it sees ``ack``
    high at a clock edge; ``ack`` is high for exactly one cycle, with ``rdata`` and
    ``result`` (:class:`CsrResult`) valid in it. In the cycle after ``ack`` the host drops
    ``re``/``we`` or presents its next access.
    """

    def __init__(self):
        super().__init__({
            "addr": Out(ADDR_WIDTH),
            "wdata": Out(32),
            "we": Out(1),
            "re": Out(1),
            "rdata": In(32),
            "ack": In(1),
            "result": In(CsrResult),
        })
