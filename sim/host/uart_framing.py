"""The host side of the trainer's UART byte protocol: frames with their CRC, the reply
parser, stop-and-wait with bounded retries (``FramedTransport``: board
``sim/host/serial_transport.py``, simulation ``sim/host/cocotb_uart.py``), and a Python
model of the device side for tests (``BridgeModel``). The wire's constants, frame
formats and CRC are in ``hdl/uart_protocol.py``, which the hardware bridge uses too.
See docs/uart.md.
"""
from __future__ import annotations

import collections
import struct

from hdl.uart_protocol import (ARG_BYTES, BEAT_LAST, CMD_OUTPUTS, CMD_READ, CMD_SEND, CMD_WRITE, MAX_CHUNK,
                               MAX_OUTPUTS, REPLY_FOR, RSP_ERROR, RSP_OUTPUTS, RSP_READ, RSP_SENT, RSP_WRITE,
                               WHY_CRC, WHY_TAG, code_bytes, crc16, error_frame)

from .transport import Transport

__all__ = [
    "frame", "encode_write", "encode_read", "encode_send", "encode_outputs", "encode_code", "decode_code",
    "reply_length", "ProtocolError", "UartBusError", "UartLinkError", "LinkTimeout", "FramedTransport",
    "BridgeModel", "LinkStats", "MAX_TRIES",
]

MAX_TRIES = 8  # attempts per command before UartLinkError
_RESULT_NAMES = {0: "OK", 2: "refused", 3: "nothing at the address"}


def frame(tag: int, seq: int, fields: bytes = b"") -> bytes:
    """``tag seq fields`` and their CRC, high byte first."""
    body = bytes([tag, seq & 0xFF]) + bytes(fields)
    return body + crc16(body).to_bytes(2, "big")


def encode_code(code: int, nbytes: int) -> bytes:
    return (int(code) & ((1 << 8 * nbytes) - 1)).to_bytes(nbytes, "little")


def decode_code(data: bytes) -> int:
    return int.from_bytes(data, "little")


def encode_write(seq: int, addr: int, value: int) -> bytes:
    return frame(CMD_WRITE, seq, struct.pack("<II", addr & 0xFFFFFFFF, value & 0xFFFFFFFF))


def encode_read(seq: int, addr: int) -> bytes:
    return frame(CMD_READ, seq, struct.pack("<I", addr & 0xFFFFFFFF))


def encode_send(seq: int, codes, nbytes: int, last: bool) -> bytes:
    codes = list(codes)
    if len(codes) > MAX_CHUNK:
        raise ValueError(f"one send command holds at most {MAX_CHUNK} beats, got {len(codes)}")
    return frame(CMD_SEND, seq, bytes([len(codes), BEAT_LAST if last else 0])
                 + b"".join(encode_code(c, nbytes) for c in codes))


def encode_outputs(seq: int, most: int) -> bytes:
    if not 1 <= most <= MAX_OUTPUTS:
        raise ValueError(f"an outputs command asks for 1..{MAX_OUTPUTS} beats, got {most}")
    return frame(CMD_OUTPUTS, seq, bytes([most]))


def reply_length(head: bytes, nbytes: int) -> int | None:
    """Length of the device frame starting with ``head`` (its first bytes: one, or three for
    'o'); None when the tag is no reply (the stream is out of step)."""
    tag = head[0]
    fixed = {RSP_WRITE: 5, RSP_READ: 9, RSP_SENT: 4, RSP_ERROR: 4}.get(tag)
    if fixed is not None:
        return fixed
    if tag == RSP_OUTPUTS:
        return 5 + head[2] * (1 + nbytes) if len(head) >= 3 else 3
    return None


class ProtocolError(RuntimeError):
    """The byte stream does not follow the protocol."""


class LinkTimeout(ProtocolError):
    """No (complete) reply in time; raised by a transport's ``_read``."""


class UartBusError(RuntimeError):
    """The device reported a bus error for a CSR access (``result``: 2 refused, 3 unmapped)."""

    def __init__(self, message: str, result: int):
        super().__init__(message)
        self.result = result


class UartLinkError(ProtocolError):
    """A command got no good reply within ``MAX_TRIES`` attempts; the message names it."""


class LinkStats:
    """What the link went through: commands, attempts beyond the first, and why."""

    def __init__(self):
        self.commands = 0
        self.retries = 0
        self.timeouts = 0  # no complete reply in time
        self.bad_replies = 0  # a reply that failed its CRC, had an unknown tag or the wrong seq
        self.refused = 0  # the device answered 'e': the command failed its check, not applied

    def as_dict(self) -> dict:
        return dict(vars(self))


class FramedTransport(Transport):
    """A ``sim.host.transport.Transport`` over any byte pipe, stop and wait with retries.

    Subclasses provide ``async _write(data)``, ``async _read(n) -> bytes`` (exactly ``n``
    bytes, or raise :class:`LinkTimeout`) and ``async _quiet()`` (return once the line has
    been idle for at least twice ``RESYNC_IDLE_BITS`` bit periods, discarding what came in
    meanwhile). A command whose reply does not come, fails its CRC, has the wrong tag or
    seq, or is 'e' (the device refused it), is sent again with the same seq after
    ``_quiet`` (the device resynchronises on that gap and answers a repeated seq from its
    last reply instead of executing it twice); after ``max_tries`` attempts
    :class:`UartLinkError` names the command. CSR accesses the device reports as bus
    errors raise :class:`UartBusError`. ``stats`` counts what happened.

    ``latch_signature``: then ``wait_idle`` (polls STATUS over the link) also reads
    SIGNATURE, ``peek_signature`` gives the SIGNATURE read when the trainer last went
    idle, and the transport waits for idle before sending each sample. Over a link this
    slow the trainer finishes a sample long before the host has read its outputs, so a
    SIGNATURE read "after the next sample's outputs" (sim/check/trainer_session.py) would
    already show the next update; latched at the idle point before the next sample, it
    shows exactly the last update.
    """

    def __init__(self, width: int, latch_signature: bool = False, max_tries: int = MAX_TRIES):
        self.width = width
        self.nbytes = code_bytes(width)
        self.mask = (1 << width) - 1
        self.latch_signature = latch_signature
        self.max_tries = max_tries
        self.stats = LinkStats()
        self._seq = 0
        self._synced = False
        self._signature = None
        self._beats = collections.deque()  # output beats taken but not yet handed out: (code, last)

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

    async def _quiet(self) -> None:
        raise NotImplementedError

    async def _read_reply(self) -> bytes:
        head = await self._read(1)
        need = reply_length(head, self.nbytes)
        if need is None:
            raise ProtocolError(f"unknown reply tag {head[0]:#04x}")
        if head[0] == RSP_OUTPUTS:
            head += await self._read(2)
            need = reply_length(head, self.nbytes)
        return head + await self._read(need - len(head))

    async def _sync(self) -> None:
        """Before the first command: the device may still hold the last seq of an earlier
        session, which a new command must not repeat (it would get that old reply). A read
        of ID with seq 0 either runs or is answered from the old reply (then the device's
        last seq is 0); either way the device's last seq is 0 afterwards and the real
        commands, from seq 1 on, all run."""
        self._synced = True
        await self.exchange("link sync (read of ID)", encode_read(0, 0))

    async def exchange(self, what: str, command: bytes) -> bytes:
        """Send ``command`` (a frame built with this transport's next seq) until a good reply
        comes; return the reply's fields (between seq and the CRC)."""
        if not self._synced:
            await self._sync()
        self.stats.commands += 1
        tag, seq = command[0], command[1]
        problem = "?"
        for attempt in range(self.max_tries):
            if attempt:
                self.stats.retries += 1
            await self._write(command)
            try:
                reply = await self._read_reply()
            except LinkTimeout as e:
                self.stats.timeouts += 1
                problem = f"no complete reply ({e})"
            except ProtocolError as e:
                self.stats.bad_replies += 1
                problem = str(e)
            else:
                if crc16(reply) != 0:
                    self.stats.bad_replies += 1
                    problem = f"reply {reply.hex()} failed its CRC"
                elif reply[0] == RSP_ERROR:
                    self.stats.refused += 1
                    problem = {WHY_CRC: "the device found the command's CRC wrong",
                               WHY_TAG: "the device saw no command tag"}.get(reply[1], f"device error {reply[1]}")
                elif reply[0] != REPLY_FOR[tag] or reply[1] != seq:
                    self.stats.bad_replies += 1
                    problem = f"reply {bytes(reply[:1])!r} seq {reply[1]} to {bytes([tag])!r} seq {seq}"
                elif reply[0] == RSP_OUTPUTS and reply[2] > command[2]:
                    self.stats.bad_replies += 1
                    problem = f"{reply[2]} output beats for a request of at most {command[2]}"
                else:
                    return reply[2:-2]
            await self._quiet()
        raise UartLinkError(f"{what}: no good reply after {self.max_tries} attempts (last: {problem})")

    def _next_seq(self) -> int:
        self._seq = self._seq % 255 + 1  # 1..255: 0 is the sync read's
        return self._seq

    async def csr_read(self, addr: int) -> int:
        fields = await self.exchange(f"CSR read of {addr:#010x}", encode_read(self._next_seq(), addr))
        if fields[0]:
            raise UartBusError(f"CSR read of {addr:#010x}: {_RESULT_NAMES.get(fields[0], fields[0])} "
                               f"(bus error; is the trainer busy?)", fields[0])
        return struct.unpack("<I", fields[1:5])[0]

    async def csr_write(self, addr: int, value: int) -> None:
        fields = await self.exchange(f"CSR write of {value & 0xFFFFFFFF:#x} to {addr:#010x}",
                                     encode_write(self._next_seq(), addr, value))
        if fields[0]:
            raise UartBusError(f"CSR write of {value & 0xFFFFFFFF:#x} to {addr:#010x}: "
                               f"{_RESULT_NAMES.get(fields[0], fields[0])} (bus error)", fields[0])

    async def send_chunk(self, codes, last: bool) -> None:
        """One 'S' command: up to MAX_CHUNK beats, ``last`` on the final one if ``last``."""
        codes = list(codes)
        await self.exchange(f"send of {len(codes)} beats", encode_send(self._next_seq(), codes, self.nbytes, last))

    async def send_beats(self, codes) -> None:
        if self.latch_signature:
            await self.wait_idle()
        codes = list(codes)
        for i in range(0, max(len(codes), 1), MAX_CHUNK):
            await self.send_chunk(codes[i:i + MAX_CHUNK], i + MAX_CHUNK >= len(codes))

    async def wait_sent(self) -> None:
        """Every 'S' returns once the trainer has accepted its beats: nothing to wait for."""

    async def recv_beats(self, n: int) -> list:
        empty = 0
        while len(self._beats) < n:
            most = min(MAX_OUTPUTS, n - len(self._beats))
            fields = await self.exchange(f"outputs request ({most} beats)", encode_outputs(self._next_seq(), most))
            empty = empty + 1 if fields[0] == 0 else 0
            if empty > self.max_polls:
                raise ProtocolError(f"no output beat after {self.max_polls} requests ({len(self._beats)} of {n} in)")
            step = 1 + self.nbytes
            for i in range(fields[0]):
                beat = fields[1 + i * step: 1 + (i + 1) * step]
                self._beats.append((decode_code(beat[1:]) & self.mask, bool(beat[0] & BEAT_LAST)))
        out = []
        for i in range(n):
            code, last = self._beats.popleft()
            if last != (i == n - 1):
                raise ProtocolError(f"output beat {i} of {n} has last={int(last)}")
            out.append(code)
        return out


class BridgeModel:
    """Python model of the device side (hdl/uart_bridge.py: CommandBridge) for tests.

    ``regs``: dict addr -> value (the CSR bus; missing addresses read 0); ``busy``: a
    callable, parameter accesses (``addr`` bit 28) while it returns True are refused.
    :meth:`feed` takes host bytes (``gap``: the line was idle for the resync gap before
    them) and returns the device's reply bytes; sent beats collect in ``beats`` as (code,
    last), in the order the device applied them; ``outputs`` (a deque of (code, last))
    is what 'O' commands take from. ``applied`` lists every command executed (tag, seq,
    fields), for tests that look for silent corruption.
    """

    def __init__(self, width: int, regs=None, busy=lambda: False):
        self.nbytes = code_bytes(width)
        self.width = width
        self.regs = dict(regs or {})
        self.busy = busy
        self.beats = []
        self.outputs = collections.deque()
        self.applied = []
        self._buf = bytearray()
        self._discard = False
        self._last_seq = None
        self._last_reply = b""

    def feed(self, data: bytes, gap: bool = False) -> bytes:
        out = bytearray()
        for i, b in enumerate(data):
            if gap and i == 0:
                self._buf, self._discard = bytearray(), False
            if self._discard:
                continue
            self._buf.append(b)
            out += self._step()
        return bytes(out)

    def _need(self) -> int | None:
        buf = self._buf
        if buf[0] not in ARG_BYTES:
            return None
        need = 2 + ARG_BYTES[buf[0]] + 2
        if buf[0] == CMD_SEND and len(buf) >= 3:
            need += min(buf[2], MAX_CHUNK + 1) * self.nbytes
        return need

    def _step(self) -> bytes:
        need = self._need()
        if need is None:
            self._buf, self._discard = bytearray(), True
            return error_frame(WHY_TAG)
        if len(self._buf) < need:
            return b""
        f, self._buf = bytes(self._buf), bytearray()
        if crc16(f) != 0 or (f[0] == CMD_SEND and f[2] > MAX_CHUNK) or (f[0] == CMD_OUTPUTS and not
                                                                           1 <= f[2] <= MAX_OUTPUTS):
            self._discard = True
            return error_frame(WHY_CRC)
        tag, seq, fields = f[0], f[1], f[2:-2]
        if seq == self._last_seq:
            return self._last_reply
        self.applied.append((tag, seq, fields))
        reply = self._execute(tag, fields)
        self._last_seq, self._last_reply = seq, frame(REPLY_FOR[tag], seq, reply)
        return self._last_reply

    def _execute(self, tag: int, fields: bytes) -> bytes:
        if tag == CMD_SEND:
            n, flags = fields[0], fields[1]
            for i in range(n):
                raw = decode_code(fields[2 + i * self.nbytes: 2 + (i + 1) * self.nbytes])
                self.beats.append((raw & ((1 << self.width) - 1), bool(flags & BEAT_LAST) and i == n - 1))
            return b""
        if tag == CMD_OUTPUTS:
            beats = [self.outputs.popleft() for _ in range(min(fields[0], len(self.outputs)))]
            w = self.width  # codes go out sign-extended to whole bytes
            return bytes([len(beats)]) + b"".join(
                bytes([BEAT_LAST if last else 0]) + encode_code(c - ((c >> (w - 1) & 1) << w), self.nbytes)
                for c, last in beats)
        addr = struct.unpack("<I", fields[:4])[0]
        if addr >> 29:  # beyond the control bus's addresses: nothing there (the bus is not used)
            return bytes([3]) if tag == CMD_WRITE else struct.pack("<BI", 3, 0)
        refused = bool(addr >> 28 & 1) and self.busy()
        if tag == CMD_WRITE:
            if not refused:
                self.regs[addr] = struct.unpack("<I", fields[4:8])[0]
            return bytes([2 if refused else 0])
        return struct.pack("<BI", 2 if refused else 0, 0 if refused else self.regs.get(addr, 0))
