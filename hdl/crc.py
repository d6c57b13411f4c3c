"""CRC-16/CCITT-FALSE in hardware: one byte per step, the same function as
``hdl.uart_protocol.crc16_byte`` (the tests compare them on every byte)."""
from __future__ import annotations

from functools import reduce
from operator import xor

from amaranth.hdl import Cat, Value

from .uart_protocol import crc16_byte

__all__ = ["crc16_step"]


def _taps() -> list:
    """For each bit of the next CRC, the bits of ``crc`` (0-15) and ``byte`` (16-23) whose
    XOR it is: the CRC step is linear, so the reference's response to each single input
    bit gives the map (a flat XOR per bit instead of eight nested shift-and-XOR steps)."""
    taps = [[] for _ in range(16)]
    for i in range(24):
        crc, byte = (1 << i, 0) if i < 16 else (0, 1 << (i - 16))
        out = crc16_byte(crc, byte)
        for bit in range(16):
            if out >> bit & 1:
                taps[bit].append(i)
    return taps


_TAPS = _taps()


def crc16_step(crc: Value, byte: Value) -> Value:
    """The CRC after ``byte`` (8 bits) enters ``crc`` (16 bits), MSB first."""
    bits = [Value.cast(crc)[i] for i in range(16)] + [Value.cast(byte)[i] for i in range(8)]
    return Cat(*(reduce(xor, (bits[i] for i in taps)) for taps in _TAPS))
