"""sim/host/uart_framing.py on its own: encoding, chunking, demultiplexing, flow control."""
import asyncio

import pytest

from hdl.uart_protocol import MAX_CHUNK, RX_FIFO_DEPTH, SEND_LAST, code_bytes
from sim.host.uart_framing import BridgeModel, FramedTransport, HostProtocol, ProtocolError, encode_send


def test_code_bytes():
    assert [code_bytes(w) for w in (1, 8, 9, 16, 17, 24, 25)] == [1, 1, 2, 2, 3, 3, 4]


def test_long_samples_are_chunked_to_fit_the_device_fifo():
    p = HostProtocol(20)
    frames = p.chunks(range(1000))
    assert all(len(f) <= RX_FIFO_DEPTH for f in frames)
    assert [f[2] & SEND_LAST for f in frames] == [0] * (len(frames) - 1) + [SEND_LAST]
    assert sum(f[1] for f in frames) == 1000 and max(f[1] for f in frames) <= MAX_CHUNK
    with pytest.raises(ValueError, match="at most 255 beats"):
        encode_send(range(256), 2, True)


def test_demultiplexes_beats_and_replies_fed_byte_by_byte():
    p = HostProtocol(12)
    p.sent(b"R")
    p.sent(b"S")
    stream = b"d\xff\x0f" + b"r\x00\x78\x56\x34\x12" + b"D\x01\x00" + b"s"
    for b in stream:
        p.feed(bytes([b]))
    assert list(p.beats) == [(0xFFF, False), (1, True)]
    assert list(p.replies) == [(ord("r"), 0, 0x12345678), (ord("s"), 0, None)]
    with pytest.raises(ProtocolError, match="no command outstanding"):
        p.feed(b"w\x00")
    with pytest.raises(ProtocolError, match="unknown frame tag 0x52"):
        HostProtocol(16).feed(b"R")


class LazyDevice(FramedTransport):
    """The bridge model, processing bytes only when the host reads: the unprocessed bytes
    are what the device's receive FIFO would hold."""

    def __init__(self):
        super().__init__(16)
        self.dev = BridgeModel(16)
        self.fifo = bytearray()
        self.out = bytearray()
        self.max_fifo = 0

    async def _write(self, data):
        self.fifo += data
        self.max_fifo = max(self.max_fifo, len(self.fifo))

    async def _read(self, n):
        while len(self.out) < n:
            if not self.fifo:
                raise AssertionError("host waits for a reply to nothing")
            self.out += self.dev.feed(bytes(self.fifo[:1]))
            del self.fifo[:1]
        data, self.out = bytes(self.out), bytearray()
        return data


def test_host_never_overruns_the_device_fifo():
    t = LazyDevice()

    async def main():
        for _ in range(5):
            await t.send_beats(list(range(-300, 300)))
        await t.wait_sent()
        await t.csr_write(3, 7)
        assert await t.csr_read(3) == 7

    asyncio.run(main())
    assert t.max_fifo <= RX_FIFO_DEPTH
    assert [c for c, _ in t.dev.beats] == [c & 0xFFFF for c in range(-300, 300)] * 5
    assert [i for i, (_, last) in enumerate(t.dev.beats) if last] == [599 + 600 * k for k in range(5)]
