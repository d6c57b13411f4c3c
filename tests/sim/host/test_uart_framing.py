"""sim/host/uart_framing.py on its own: frames and their CRC, the reply parser, and stop and
wait with retries against the Python model of the bridge over a line that flips bits and
drops bytes: every command is applied exactly once and unchanged, every reply the host
accepts is the one the device sent (no silent corruption), and what was detected and
retried is counted."""
import asyncio
import random
import struct

import pytest

from hdl.uart_protocol import (BEAT_LAST, CMD_READ, CMD_SEND, CMD_WRITE, MAX_CHUNK, MAX_OUTPUTS, RSP_READ, WHY_CRC,
                               code_bytes, crc16, error_frame)
from sim.host.uart_framing import (BridgeModel, FramedTransport, LinkTimeout, UartLinkError, encode_outputs,
                                   encode_read, encode_send, encode_write, frame)


def test_code_bytes_and_crc():
    assert [code_bytes(w) for w in (1, 8, 9, 16, 17, 24, 25)] == [1, 1, 2, 2, 3, 3, 4]
    assert crc16(b"123456789") == 0x29B1  # CRC-16/CCITT-FALSE check value
    f = encode_write(7, 0x1234, 0xDEADBEEF)
    assert f[:2] == b"W\x07" and struct.unpack("<II", f[2:10]) == (0x1234, 0xDEADBEEF) and crc16(f) == 0
    assert crc16(error_frame(WHY_CRC)) == 0
    with pytest.raises(ValueError, match=f"at most {MAX_CHUNK} beats"):
        encode_send(1, range(MAX_CHUNK + 1), 2, True)
    with pytest.raises(ValueError, match=f"1..{MAX_OUTPUTS}"):
        encode_outputs(1, 0)


def test_every_single_bit_flip_of_a_command_is_refused():
    model = BridgeModel(16)
    for cmd in (encode_write(3, 0x10, 0x55), encode_read(4, 0x10), encode_send(5, [1, -2, 3], 2, True),
                encode_outputs(6, 4)):
        for bit in range(8 * len(cmd)):
            bad = bytearray(cmd)
            bad[bit // 8] ^= 1 << bit % 8
            reply = model.feed(bytes(bad), gap=True)
            # either refused ('e'), or still waiting for bytes (a flipped length): never applied
            assert reply[:1] in (b"e", b""), (cmd.hex(), bit, reply)
        assert model.applied == []
    # a repeated seq is answered from the last reply, not executed again
    assert model.feed(encode_write(9, 0x10, 1), gap=True) == model.feed(encode_write(9, 0x10, 2), gap=True)
    assert model.regs[0x10] == 1 and len(model.applied) == 1


class NoisyLine(FramedTransport):
    """The host's framing against the bridge model over a line that flips each bit with
    probability ``p_flip`` and drops each byte with probability ``p_drop``, both ways
    (noisier than any working link, so ``max_tries`` is raised to keep a long 'o' reply
    from failing every attempt by chance)."""

    def __init__(self, width, p_flip, p_drop, seed, max_tries=16):
        super().__init__(width, max_tries=max_tries)
        self.dev = BridgeModel(width)
        self.rng = random.Random(seed)
        self.p_flip, self.p_drop = p_flip, p_drop
        self.flipped = self.dropped = 0
        self.rx = bytearray()
        self.gap = True

    def _noise(self, data: bytes) -> bytes:
        out = bytearray()
        for b in data:
            if self.rng.random() < self.p_drop:
                self.dropped += 1
                continue
            for bit in range(8):
                if self.rng.random() < self.p_flip:
                    b ^= 1 << bit
                    self.flipped += 1
            out.append(b)
        return bytes(out)

    async def _write(self, data):
        self.rx += self._noise(self.dev.feed(self._noise(data), gap=self.gap))
        self.gap = False

    async def _read(self, n):
        if len(self.rx) < n:
            raise LinkTimeout(f"{len(self.rx)} of {n} bytes")
        out, self.rx = bytes(self.rx[:n]), self.rx[n:]
        return out

    async def _quiet(self):
        self.rx.clear()
        self.gap = True  # the host waited: the device has seen the resync gap


def run_noisy_traffic(p_flip, p_drop, commands, seed=1):
    """Random writes, reads, sends and output requests over a noisy line; returns the link.
    Fails on any silent corruption: what the device applied must be exactly what the host
    meant, in order, each once; every value and output beat the host took must be the
    device's."""
    link = NoisyLine(16, p_flip, p_drop, seed)
    rng = random.Random(seed + 1)
    dev, meant, regs, samples = link.dev, [], {}, []
    sent_beats = []

    async def main():
        for _ in range(commands):
            op = rng.random()
            if op < 0.3:
                addr, value = rng.randrange(16), rng.getrandbits(32)
                await link.csr_write(addr, value)
                regs[addr] = value
                meant.append((CMD_WRITE, struct.pack("<II", addr, value)))
            elif op < 0.6:
                addr = rng.randrange(16)
                assert await link.csr_read(addr) == regs.get(addr, 0), "silent corruption of a read"
                meant.append((CMD_READ, struct.pack("<I", addr)))
            elif op < 0.8 or not samples:
                codes = [rng.randrange(-32768, 32768) for _ in range(rng.randint(1, 8))]
                await link.send_chunk(codes, True)
                sent_beats.extend((c & 0xFFFF, i == len(codes) - 1) for i, c in enumerate(codes))
                meant.append((CMD_SEND, bytes([len(codes), BEAT_LAST]) + b"".join(
                    (c & 0xFFFF).to_bytes(2, "little") for c in codes)))
                # the toy trainer's outputs: the sample's codes reversed
                outs = [c & 0xFFFF for c in codes[::-1]]
                dev.outputs.extend((c, i == len(outs) - 1) for i, c in enumerate(outs))
                samples.append(outs)
            else:
                want = samples.pop(0)
                assert await link.recv_beats(len(want)) == want, "silent corruption of output beats"

    asyncio.run(main())
    applied = [(t, bytes(f)) for t, _, f in dev.applied[1:] if t != ord("O")]  # [0]: the link sync
    assert applied == meant, "a command applied twice, changed or lost"
    assert dev.beats == sent_beats
    return link


def test_bit_flips_and_dropped_bytes_are_detected_and_retried():
    link = run_noisy_traffic(p_flip=0.002, p_drop=0.001, commands=26000)
    s = link.stats
    print(f"\nframing over a noisy line: {link.flipped} bits flipped, {link.dropped} bytes dropped; "
          f"{s.commands} commands, {s.retries} retries ({s.refused} refused by the device, "
          f"{s.bad_replies} bad replies, {s.timeouts} timeouts); 0 silent corruptions")
    assert link.flipped >= 10_000 and link.dropped >= 500
    assert s.retries == s.refused + s.bad_replies + s.timeouts > 0
    assert s.refused > 0 and s.bad_replies > 0 and s.timeouts > 0


@pytest.mark.slow
def test_fifty_thousand_flips_without_silent_corruption():
    link = run_noisy_traffic(p_flip=0.002, p_drop=0.001, commands=150_000, seed=7)
    print(f"\n{link.flipped} bits flipped, {link.dropped} bytes dropped, {link.stats.as_dict()}")
    assert link.flipped >= 50_000


def test_a_dead_line_raises_naming_the_command():
    link = NoisyLine(16, p_flip=0.0, p_drop=1.0, seed=0, max_tries=8)
    with pytest.raises(UartLinkError, match=r"link sync \(read of ID\): no good reply after 8 attempts"):
        asyncio.run(link.csr_write(3, 1))
    link = NoisyLine(16, 0.0, 0.0, 0, max_tries=8)
    asyncio.run(link.csr_read(0))  # synced
    link.p_drop = 1.0
    with pytest.raises(UartLinkError, match=r"CSR write of 0x1 to 0x00000003: no good reply after 8 attempts"):
        asyncio.run(link.csr_write(3, 1))


def test_reply_frames():
    assert frame(RSP_READ, 3, b"\x00\x01\x02\x03\x04")[:2] == b"r\x03"
