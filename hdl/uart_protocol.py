"""The trainer's byte protocol over a UART: the wire's constants, defined once, below both
the hardware bridge (``hdl/uart_bridge.py``) and the host side (``sim/host/uart_framing.py``:
encoding, parsing, flow control, the host transports' framing and a Python model of the
bridge). Pure Python. See docs/uart.md.

Frames, multi-byte fields little-endian::

    host -> device
      'W' 0x57  addr:u32 data:u32            CSR write       reply 'w' status:u8
      'R' 0x52  addr:u32                     CSR read        reply 'r' status:u8 data:u32
      'S' 0x53  count:u8 flags:u8 code*count send beats      reply 's' (once all are accepted)
    device -> host, unsolicited (interleaved with the replies, between frames)
      'd' 0x64  code                         one output beat (m_data), not the last of its sample
      'D' 0x44  code                         output beat with ``last`` set
      'e' 0x65  byte:u8                      an unknown command byte was dropped

A ``code`` is ``code_bytes(width) = ceil(width / 8)`` bytes, the two's-complement code
(little-endian; the device sign-extends, the host masks). ``flags`` bit 0 (``SEND_LAST``)
sets ``last`` on the chunk's final beat: a sample may be sent in several chunks. Status 0
= done, 1 = bus error (the trainer's sticky ``bus_error`` flag rose during the access, or
it was a parameter access while the trainer was busy; a refused read returns 0).

Flow control: the UART receiver cannot stall, so the device buffers received bytes in a
FIFO of ``RX_FIFO_DEPTH`` bytes, and every command is answered after its last byte has
left that FIFO. The host keeps at most ``RX_FIFO_DEPTH`` bytes of unanswered commands on
the wire; sends longer than that go in chunks of at most ``MAX_CHUNK`` beats.
"""
from __future__ import annotations

__all__ = [
    "CMD_WRITE", "CMD_READ", "CMD_SEND", "RSP_WRITE", "RSP_READ", "RSP_SENT", "OUT_BEAT", "OUT_BEAT_LAST",
    "RSP_ERROR", "SEND_LAST", "STATUS_OK", "STATUS_BUS_ERROR", "RX_FIFO_DEPTH", "MAX_CHUNK", "code_bytes",
]

CMD_WRITE = 0x57  # 'W'
CMD_READ = 0x52  # 'R'
CMD_SEND = 0x53  # 'S'
RSP_WRITE = 0x77  # 'w'
RSP_READ = 0x72  # 'r'
RSP_SENT = 0x73  # 's'
OUT_BEAT = 0x64  # 'd'
OUT_BEAT_LAST = 0x44  # 'D'
RSP_ERROR = 0x65  # 'e'

SEND_LAST = 0x01
STATUS_OK = 0
STATUS_BUS_ERROR = 1

RX_FIFO_DEPTH = 256  # bytes the device buffers between its UART receiver and the bridge
MAX_CHUNK = 255  # beats in one 'S' command (count is one byte)


def code_bytes(width: int) -> int:
    """Bytes per code on the wire: ceil(width / 8)."""
    if width < 1:
        raise ValueError(f"code width must be >= 1, got {width!r}")
    return (width + 7) // 8
