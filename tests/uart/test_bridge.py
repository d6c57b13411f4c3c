"""CommandBridge under amaranth.sim against the Python model of the protocol
(sim/host/uart_framing.py: BridgeModel), byte for byte: random commands, some of them
corrupted (flipped bits, dropped bytes, a resync gap before the next), repeated seqs; an
emulated trainer control bus (refusal of parameter accesses while busy) and random stalls
on every stream."""
import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from golden.config import load_config
from golden.fixed import QFormat
from hdl.crc import crc16_step
from hdl.csr import PARAM_WINDOW, REG, CsrResult
from hdl.uart_bridge import CommandBridge
from hdl.uart_protocol import MAX_OUTPUTS, crc16_byte
from sim.host.uart_framing import BridgeModel, encode_outputs, encode_read, encode_send, encode_write
from sim.testbench.amaranth_streams import random_stall, stream_get, stream_put

XOR = load_config("examples/xor.toml")


class BusTarget:
    """The trainer's CSR bus as far as the bridge can see it (and as BridgeModel models it)."""

    def __init__(self, regs):
        self.regs = dict(regs)
        self.busy = False
        self.accesses = []

    def access(self, addr, we, wdata):
        self.accesses.append((addr, we, wdata))
        if addr & PARAM_WINDOW and self.busy:
            return 0, CsrResult.REFUSED
        if we:
            self.regs[addr] = wdata
            return 0, CsrResult.OK
        return self.regs.get(addr, 0), CsrResult.OK


def run_bridge(cfg, chunks, *, regs=None, out_beats=(), busy_script=None, seed=1, stall=0.3):
    """Feed ``chunks`` ((bytes, gap before them) pairs) to the bridge; returns (bytes out,
    beats on s_data, bus target)."""
    dut = CommandBridge(cfg)
    target = BusTarget(regs or {})
    rng = random.Random(seed)
    got_bytes, got_beats = [], []
    state = {"done": False}

    async def host_tx(ctx):
        for data, gap in chunks:
            for i, b in enumerate(data):
                await stream_put(ctx, dut.i, {"data": b, "gap": int(gap and i == 0)}, stall=random_stall(rng, stall))
        quiet = 0  # let the bridge finish: silence on every port
        while quiet < 300:
            await ctx.tick()
            quiet = 0 if ctx.get(dut.o.valid) or ctx.get(dut.s_data.valid) or ctx.get(dut.csr.re) \
                or ctx.get(dut.csr.we) else quiet + 1
        state["done"] = True

    async def host_rx(ctx):
        while True:
            got_bytes.append(await stream_get(ctx, dut.o, stall=random_stall(rng, stall)))

    async def sink(ctx):
        while True:
            p = await stream_get(ctx, dut.s_data, stall=random_stall(rng, stall))
            got_beats.append((p.data, bool(p.last)))

    async def source(ctx):  # no stalls: an 'O' takes the beats there at the time, as the model does
        for code, last in out_beats:
            await stream_put(ctx, dut.m_data, {"data": code, "last": last})

    async def bus(ctx):
        acking = False
        async for _, _, re, we, addr, wdata in ctx.tick().sample(dut.csr.re, dut.csr.we, dut.csr.addr,
                                                                   dut.csr.wdata):
            if busy_script is not None:
                target.busy = busy_script(len(target.accesses))
            if acking:
                ctx.set(dut.csr.ack, 0)
                acking = False
                continue
            if re or we:
                rdata, result = target.access(addr, we, wdata)
                ctx.set(dut.csr.rdata, rdata)
                ctx.set(dut.csr.result, result)
                ctx.set(dut.csr.ack, 1)
                acking = True

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(host_tx)
    for tb in (host_rx, sink, source, bus):
        sim.add_testbench(tb, background=True)
    sim.run()
    assert state["done"]
    return bytes(got_bytes), got_beats, target


def _traffic(cfg, rng, n=60):
    """Random commands, a fifth of them corrupted (a flipped bit or a dropped byte) and
    then sent again after a resync gap with the same seq, some good ones repeated (a lost
    reply); the output beats the 'O' commands will find."""
    w, nb = cfg.act.width, (cfg.act.width + 7) // 8
    chunks, outs, seq = [], [], 0
    for _ in range(n):
        seq = seq % 255 + 1
        kind = rng.choice("WRSO")
        if kind == "W":
            f = encode_write(seq, rng.choice([REG["LR"], REG["CTRL"], 0x123456, 1 << 30]), rng.getrandbits(32))
        elif kind == "R":
            f = encode_read(seq, rng.choice([REG["LR"], 0x123456, 1 << 29]))
        elif kind == "S":
            codes = [rng.randrange(-(1 << (w - 1)), 1 << (w - 1)) for _ in range(rng.randrange(0, 10))]
            f = encode_send(seq, codes, nb, rng.random() < 0.7)
        else:
            k = rng.randint(1, 5)
            outs += [(rng.randrange(-(1 << (w - 1)), 1 << (w - 1)), rng.random() < 0.3) for _ in range(k)]
            f = encode_outputs(seq, rng.randint(1, MAX_OUTPUTS))
        if rng.random() < 0.2:
            bad = bytearray(f)
            if rng.random() < 0.5:
                bit = rng.randrange(8 * len(bad))
                bad[bit // 8] ^= 1 << bit % 8
            else:
                del bad[rng.randrange(len(bad))]
            chunks.append((bytes(bad), True))
        chunks.append((f, True))
        if rng.random() < 0.1:
            chunks.append((f, True))  # the host lost the reply and asks again: not executed twice
    return chunks, outs


@pytest.mark.parametrize("changes", [{}, {"act": QFormat(6, 14)},
                                     {"act": QFormat(4, 3), "lut_entries_log2": 6, "exp_entries_log2": 6}],
                         ids=["16bit", "20bit-3bytes", "7bit"])
def test_bridge_matches_the_protocol_model(changes):
    cfg = XOR.with_(**changes) if changes else XOR
    rng = random.Random(5)
    chunks, outs = _traffic(cfg, rng)
    mask = (1 << cfg.act.width) - 1
    model = BridgeModel(cfg.act.width, regs={REG["LR"]: 77})
    model.outputs.extend((c & mask, last) for c, last in outs)
    want = b"".join(model.feed(data, gap=gap) for data, gap in chunks)
    got, beats, target = run_bridge(cfg, chunks, regs={REG["LR"]: 77}, out_beats=outs)
    assert got == want
    assert b"e" in got  # some commands were refused
    assert [(c & mask, last) for c, last in beats] == model.beats
    assert target.regs == model.regs
    assert len(target.accesses) == sum(t in b"WR" and not (f[:4] and int.from_bytes(f[:4], "little") >> 29)
                                       for t, _, f in model.applied)


def test_parameter_access_while_busy_is_refused():
    """A parameter read while busy replies result 2 (refused) with data 0; idle, it succeeds."""
    addr = PARAM_WINDOW | 5
    chunks = [(encode_read(1, addr), True), (encode_write(2, addr, 9), False), (encode_read(3, addr), False)]
    got, _, target = run_bridge(XOR, chunks, regs={addr: 1234}, busy_script=lambda n: n < 2)
    model = BridgeModel(XOR.act.width, regs={addr: 1234}, busy=iter([True, True, False]).__next__)
    assert got == b"".join(model.feed(d, gap=g) for d, g in chunks)
    assert got[2] == 2 and got[3:7] == bytes(4)  # refused, data 0
    assert target.regs[addr] == 1234 and got[-7:-2] == bytes([0]) + (1234).to_bytes(4, "little")


def test_crc_step_matches_the_reference():
    crc, byte = Signal(16), Signal(8)
    m = Module()
    out = Signal(16)
    m.d.comb += out.eq(crc16_step(crc, byte))
    rng = random.Random(3)
    cases = [(rng.getrandbits(16), rng.getrandbits(8)) for _ in range(300)] + [(0xFFFF, b) for b in range(256)]

    async def tb(ctx):
        for c, b in cases:
            ctx.set(crc, c)
            ctx.set(byte, b)
            assert ctx.get(out) == crc16_byte(c, b), (c, b)

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
