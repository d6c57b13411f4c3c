"""The host side of the trainer's UART byte protocol: frame encoding and parsing
(``HostProtocol``, sans-IO), the framing every byte-pipe transport shares
(``FramedTransport``: board ``sim/host/serial_transport.py``, simulation ``sim/host/cocotb_uart.py``),
and a Python model of the device side for tests (``BridgeModel``). The wire's constants
and frame formats are in ``hdl/uart_protocol.py``, which the hardware bridge uses too.
See docs/uart.md.
"""
from __future__ import annotations

import collections
import struct

from hdl.uart_protocol import (CMD_READ, CMD_SEND, CMD_WRITE, MAX_CHUNK, OUT_BEAT, OUT_BEAT_LAST, RSP_ERROR,
                               RSP_READ, RSP_SENT, RSP_WRITE, RX_FIFO_DEPTH, SEND_LAST, STATUS_BUS_ERROR, STATUS_OK,
                               code_bytes)

from .transport import Transport

__all__ = [
    "reply_length", "encode_write", "encode_read", "encode_send", "encode_code", "decode_code",
    "ProtocolError", "UartBusError", "HostProtocol", "FramedTransport", "BridgeModel",
]

_ARG_BYTES = {CMD_WRITE: 8, CMD_READ: 4, CMD_SEND: 2}


def encode_code(code: int, nbytes: int) -> bytes:
    return (int(code) & ((1 << 8 * nbytes) - 1)).to_bytes(nbytes, "little")


def decode_code(data: bytes) -> int:
    return int.from_bytes(data, "little")


def encode_write(addr: int, value: int) -> bytes:
    return struct.pack("<BII", CMD_WRITE, addr & 0xFFFFFFFF, value & 0xFFFFFFFF)


def encode_read(addr: int) -> bytes:
    return struct.pack("<BI", CMD_READ, addr & 0xFFFFFFFF)


def encode_send(codes, nbytes: int, last: bool) -> bytes:
    codes = list(codes)
    if len(codes) > MAX_CHUNK:
        raise ValueError(f"one send command holds at most {MAX_CHUNK} beats, got {len(codes)}")
    return bytes([CMD_SEND, len(codes), SEND_LAST if last else 0]) + b"".join(encode_code(c, nbytes) for c in codes)


def reply_length(tag: int, nbytes: int) -> int:
    """Total length of the device frame starting with ``tag`` (ProtocolError if unknown)."""
    n = {RSP_WRITE: 2, RSP_READ: 6, RSP_SENT: 1, OUT_BEAT: 1 + nbytes, OUT_BEAT_LAST: 1 + nbytes, RSP_ERROR: 2}.get(tag)
    if n is None:
        raise ProtocolError(f"unknown frame tag {tag:#04x} from the device (out of sync, or wrong baud rate?)")
    return n


class ProtocolError(RuntimeError):
    """The byte stream does not follow the protocol."""


class UartBusError(RuntimeError):
    """The device reported a bus error for a CSR access."""


class HostProtocol:
    """Sans-IO host side: encodes commands, parses device bytes, keeps the flow-control window.

    ``width``: act code width in bits. Feed received bytes with :meth:`feed`; output beats
    collect in ``beats`` (deque of (code, last)), replies to commands in ``replies`` (deque
    of (tag, status, data)). :meth:`may_send` says whether a command of n bytes fits in the
    device's receive FIFO given the commands not yet answered.
    """

    def __init__(self, width: int, window: int = RX_FIFO_DEPTH):
        self.width = width
        self.nbytes = code_bytes(width)
        self.mask = (1 << width) - 1
        self.window = window
        self.pending = collections.deque()  # (tag expected, bytes) of commands not yet answered
        self.beats = collections.deque()
        self.replies = collections.deque()
        self.errors = []  # bytes the device reported as unknown commands
        self._buf = bytearray()

    @property
    def outstanding(self) -> int:
        return sum(n for _, n in self.pending)

    def may_send(self, n: int) -> bool:
        return self.outstanding + n <= self.window

    def sent(self, frame: bytes) -> None:
        tag = {CMD_WRITE: RSP_WRITE, CMD_READ: RSP_READ, CMD_SEND: RSP_SENT}[frame[0]]
        self.pending.append((tag, len(frame)))

    def chunks(self, codes) -> list:
        """'S' frames for one sample: ``last`` on the final beat, each frame fitting the window."""
        codes = list(codes)
        per = max(1, min(MAX_CHUNK, (self.window - 3) // self.nbytes))
        out = []
        for i in range(0, max(len(codes), 1), per):
            part = codes[i:i + per]
            out.append(encode_send(part, self.nbytes, i + per >= len(codes)))
        return out

    def need(self) -> int:
        """Bytes still missing to complete the frame being received (1 when between frames)."""
        if not self._buf:
            return 1
        return reply_length(self._buf[0], self.nbytes) - len(self._buf)

    def feed(self, data: bytes) -> None:
        for b in data:
            self._buf.append(b)
            if len(self._buf) < reply_length(self._buf[0], self.nbytes):
                continue
            frame, self._buf = bytes(self._buf), bytearray()
            self._frame(frame)

    def _frame(self, f: bytes) -> None:
        tag = f[0]
        if tag in (OUT_BEAT, OUT_BEAT_LAST):
            self.beats.append((decode_code(f[1:]) & self.mask, tag == OUT_BEAT_LAST))
            return
        if tag == RSP_ERROR:
            self.errors.append(f[1])
            raise ProtocolError(f"the device dropped unknown command byte {f[1]:#04x}")
        if not self.pending:
            raise ProtocolError(f"reply {bytes([tag])!r} with no command outstanding")
        want, _ = self.pending.popleft()
        if tag != want:
            raise ProtocolError(f"expected reply {bytes([want])!r}, got {bytes([tag])!r}")
        status = f[1] if tag in (RSP_WRITE, RSP_READ) else STATUS_OK
        data = struct.unpack("<I", f[2:6])[0] if tag == RSP_READ else None
        self.replies.append((tag, status, data))


class FramedTransport(Transport):
    """A ``sim.host.transport.Transport`` over any byte pipe.

    Subclasses provide ``async _write(data: bytes)`` and ``async _read(n) -> bytes``
    (at least ``n`` bytes, more if already available; raise on timeout). CSR accesses the
    device reports as bus errors raise :class:`UartBusError`.

    ``latch_signature``: then ``wait_idle`` (polls STATUS over the link) also reads
    SIGNATURE, ``peek_signature`` gives the SIGNATURE read when the trainer last went
    idle, and the transport waits for idle before sending each sample. Over a link this slow the trainer finishes a
    sample long before the host has read its outputs, so a SIGNATURE read "after the
    next sample's outputs" (sim/check/trainer_session.py) would already show the next update;
    latched at the idle point before the next sample, it shows exactly the last update.
    """

    def __init__(self, width: int, window: int = RX_FIFO_DEPTH, latch_signature: bool = False):
        self.proto = HostProtocol(width, window)
        self.latch_signature = latch_signature
        self._signature = None

    async def wait_idle(self) -> None:
        await super().wait_idle()
        if self.latch_signature:
            self._signature = await super().peek_signature()

    async def peek_signature(self) -> int:
        if not self.latch_signature:
            return await super().peek_signature()
        if self._signature is None:
            self._signature = await super().peek_signature()
        return self._signature

    async def _write(self, data: bytes) -> None:
        raise NotImplementedError

    async def _read(self, n: int) -> bytes:
        raise NotImplementedError

    async def _pump(self) -> None:
        """Read and parse at least one more frame's worth of bytes."""
        self.proto.feed(await self._read(self.proto.need()))

    async def _command(self, frame: bytes) -> None:
        while not self.proto.may_send(len(frame)):
            if not self.proto.pending:
                raise ProtocolError(f"a {len(frame)}-byte command exceeds the device FIFO ({self.proto.window})")
            await self._pump()
        await self._write(frame)
        self.proto.sent(frame)

    async def _reply(self, tag: int):
        """The reply ``tag`` to the latest command; 's' replies of earlier sends are skipped."""
        while True:
            while not self.proto.replies:
                await self._pump()
            t, status, data = self.proto.replies.popleft()
            if t == tag:
                return t, status, data
            if t != RSP_SENT:
                raise ProtocolError(f"expected reply {bytes([tag])!r}, got {bytes([t])!r}")

    async def csr_read(self, addr: int) -> int:
        await self._drain_sends()
        await self._command(encode_read(addr))
        _, status, data = await self._reply(RSP_READ)
        if status != STATUS_OK:
            raise UartBusError(f"CSR read of {addr:#010x} refused (bus error; is the trainer busy?)")
        return data

    async def csr_write(self, addr: int, value: int) -> None:
        await self._drain_sends()
        await self._command(encode_write(addr, value))
        _, status, _ = await self._reply(RSP_WRITE)
        if status != STATUS_OK:
            raise UartBusError(f"CSR write of {value & 0xFFFFFFFF:#x} to {addr:#010x} refused (bus error)")

    async def _drain_sends(self) -> None:
        """Consume 's' replies already queued (sends do not wait for theirs)."""
        while self.proto.replies and self.proto.replies[0][0] == RSP_SENT:
            self.proto.replies.popleft()

    async def send_beats(self, codes) -> None:
        if self.latch_signature:
            await self.wait_idle()
        for frame in self.proto.chunks(codes):
            await self._command(frame)
        await self._drain_sends()

    async def wait_sent(self) -> None:
        """Until the trainer has accepted every beat sent so far."""
        while any(t == RSP_SENT for t, _ in self.proto.pending):
            await self._pump()
        await self._drain_sends()

    async def recv_beats(self, n: int) -> list:
        out = []
        for i in range(n):
            while not self.proto.beats:
                await self._pump()
            code, last = self.proto.beats.popleft()
            if last != (i == n - 1):
                raise ProtocolError(f"output beat {i} of {n} has last={int(last)}")
            out.append(code)
        await self._drain_sends()
        return out


class BridgeModel:
    """Python model of the device side (hdl/uart_bridge.py: CommandBridge) for tests.

    ``regs``: dict addr -> value (the CSR bus; missing addresses read 0); ``busy``: a
    callable, parameter accesses (``addr`` bit 28) while it returns True are bus errors.
    :meth:`feed` takes host bytes and returns the device's reply bytes; sent beats
    collect in ``beats`` as (code, last); :meth:`output` frames an output beat.
    """

    def __init__(self, width: int, regs=None, busy=lambda: False):
        self.nbytes = code_bytes(width)
        self.width = width
        self.regs = dict(regs or {})
        self.busy = busy
        self.beats = []
        self._buf = bytearray()

    def output(self, code: int, last: bool) -> bytes:
        return bytes([OUT_BEAT_LAST if last else OUT_BEAT]) + encode_code(code, self.nbytes)

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        for b in data:
            self._buf.append(b)
            out += self._step()
        return bytes(out)

    def _step(self) -> bytes:
        buf = self._buf
        cmd = buf[0]
        if cmd not in _ARG_BYTES:
            self._buf = bytearray()
            return bytes([RSP_ERROR, cmd])
        need = 1 + _ARG_BYTES[cmd]
        if cmd == CMD_SEND and len(buf) >= 3:
            need += buf[1] * self.nbytes
        if len(buf) < need:
            return b""
        self._buf = bytearray()
        if cmd == CMD_SEND:
            n, flags = buf[1], buf[2]
            for i in range(n):
                raw = decode_code(buf[3 + i * self.nbytes: 3 + (i + 1) * self.nbytes])
                self.beats.append((raw & ((1 << self.width) - 1), bool(flags & SEND_LAST) and i == n - 1))
            return bytes([RSP_SENT])
        addr = struct.unpack("<I", buf[1:5])[0]
        err = bool(addr >> 28 & 1) and self.busy()
        if cmd == CMD_WRITE:
            if not err:
                self.regs[addr] = struct.unpack("<I", buf[5:9])[0]
            return bytes([RSP_WRITE, STATUS_BUS_ERROR if err else STATUS_OK])
        value = 0 if err else self.regs.get(addr, 0)
        return struct.pack("<BBI", RSP_READ, STATUS_BUS_ERROR if err else STATUS_OK, value)
