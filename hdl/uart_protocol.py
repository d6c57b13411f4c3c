"""The trainer's byte protocol over a UART: the wire's constants and its check, defined once,
below both the hardware bridge (``hdl/uart_bridge.py``) and the host side
(``sim/host/uart_framing.py``: encoding, parsing, retries, a Python model of the bridge).
Pure Python. See docs/uart.md.

Every frame, both ways, is ``tag seq fields... crc_hi crc_lo``: ``crc`` is CRC-16/CCITT
(:func:`crc16`) over ``tag`` to the last field, sent high byte first, so the CRC of a whole
good frame is 0. Multi-byte fields are little-endian. Stop and wait: the host sends one
command and waits for its reply; the device speaks only in replies::

    host -> device
      'W' 0x57 seq addr:u32 data:u32           CSR write      reply 'w' seq result:u8
      'R' 0x52 seq addr:u32                    CSR read       reply 'r' seq result:u8 data:u32
      'S' 0x53 seq count:u8 flags:u8 code*count  send beats   reply 's' seq (once all are accepted)
      'O' 0x4F seq max:u8                      take outputs   reply 'o' seq n:u8 (flags:u8 code)*n
    device -> host, instead of a reply
      'e' 0x65 why:u8                          the command was refused and not applied

A ``code`` is ``code_bytes(width) = ceil(width / 8)`` bytes (two's complement; the device
sign-extends, the host masks). ``flags`` bit 0 (``BEAT_LAST``) is ``last`` on the
chunk's final beat ('S') or on an output beat ('o'). ``result`` is the control bus's
(hdl/csr.py: ``CsrResult``): 0 done, 2 refused, 3 nothing at the address.

Integrity: the device applies a command only when its CRC checks; otherwise it answers
'e' (``WHY_CRC``, or ``WHY_TAG`` for a byte that starts no command) and drops every byte
until the line has been idle for ``RESYNC_IDLE_BITS`` bit periods (a byte after such a
gap always starts a new frame, abandoning a partial one). ``seq`` makes retries safe:
the device keeps its last reply, and a command whose ``seq`` equals the last executed
one is answered with that reply again, not executed twice (a lost 's' reply must not
send a sample twice, a lost 'o' must not lose outputs).
"""
from __future__ import annotations

__all__ = [
    "CMD_WRITE", "CMD_READ", "CMD_SEND", "CMD_OUTPUTS", "RSP_WRITE", "RSP_READ", "RSP_SENT", "RSP_OUTPUTS",
    "RSP_ERROR", "WHY_CRC", "WHY_TAG", "BEAT_LAST", "RX_FIFO_DEPTH", "MAX_CHUNK", "MAX_OUTPUTS",
    "RESYNC_IDLE_BITS", "CRC_INIT", "CRC_POLY", "code_bytes", "crc16", "crc16_byte", "ARG_BYTES", "REPLY_FOR",
    "error_frame",
]

CMD_WRITE = 0x57  # 'W'
CMD_READ = 0x52  # 'R'
CMD_SEND = 0x53  # 'S'
CMD_OUTPUTS = 0x4F  # 'O'
RSP_WRITE = 0x77  # 'w'
RSP_READ = 0x72  # 'r'
RSP_SENT = 0x73  # 's'
RSP_OUTPUTS = 0x6F  # 'o'
RSP_ERROR = 0x65  # 'e'

WHY_CRC = 1  # the frame's CRC did not check
WHY_TAG = 2  # the first byte is no command

#: bytes between ``seq`` and the CRC (the 'S' codes come on top)
ARG_BYTES = {CMD_WRITE: 8, CMD_READ: 4, CMD_SEND: 2, CMD_OUTPUTS: 1}
REPLY_FOR = {CMD_WRITE: RSP_WRITE, CMD_READ: RSP_READ, CMD_SEND: RSP_SENT, CMD_OUTPUTS: RSP_OUTPUTS}

BEAT_LAST = 0x01

RX_FIFO_DEPTH = 256  # bytes the device buffers between its UART receiver and the bridge
MAX_CHUNK = 64  # beats in one 'S' command: the bridge holds them until the CRC checks
MAX_OUTPUTS = 16  # beats in one 'o' reply: the bridge keeps the reply for a retry
#: idle bit periods after which the next byte starts a frame (the resynchronisation gap)
RESYNC_IDLE_BITS = 20

CRC_POLY = 0x1021  # CRC-16/CCITT-FALSE: x^16 + x^12 + x^5 + 1, MSB first,
CRC_INIT = 0xFFFF  # initial value 0xFFFF, no reflection, no final XOR


def code_bytes(width: int) -> int:
    """Bytes per code on the wire: ceil(width / 8)."""
    if width < 1:
        raise ValueError(f"code width must be >= 1, got {width!r}")
    return (width + 7) // 8


def crc16_byte(crc: int, byte: int) -> int:
    """One byte into the CRC (MSB first); the hardware's ``hdl.crc.crc16_step`` is the same."""
    crc ^= (byte & 0xFF) << 8
    for _ in range(8):
        crc = ((crc << 1) ^ CRC_POLY if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


def crc16(data: bytes, crc: int = CRC_INIT) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (``crc16(b"123456789") == 0x29B1``)."""
    for b in data:
        crc = crc16_byte(crc, b)
    return crc


def error_frame(why: int) -> bytes:
    """The device's 'e' frame, CRC included."""
    body = bytes([RSP_ERROR, why])
    return body + crc16(body).to_bytes(2, "big")
