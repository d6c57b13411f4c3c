"""CommandBridge under amaranth.sim against the Python model of the protocol
(sim/host/uart_framing.py: BridgeModel for the device side, HostProtocol for the host side),
with an emulated trainer control bus (2-cycle accesses, sticky bus_error, refusal of
parameter accesses while busy) and random stalls on every stream."""
import random

import pytest
from amaranth.sim import Simulator

from golden.config import load_config
from golden.fixed import QFormat
from hdl.csr import PARAM_WINDOW, REG, STATUS_BITS
from hdl.uart_bridge import CommandBridge
from hdl.uart_protocol import RSP_ERROR, code_bytes
from sim.host.uart_framing import BridgeModel, HostProtocol, ProtocolError, encode_read, encode_write
from sim.testbench.amaranth_streams import random_stall, stream_get, stream_put

XOR = load_config("examples/xor.toml")


class BusTarget:
    """The trainer's CSR behaviour as far as the bridge can see it."""

    def __init__(self, regs):
        self.regs = dict(regs)
        self.bus_error = False
        self.busy = False
        self.accesses = []

    def access(self, addr, we, wdata):
        self.accesses.append((addr, we, wdata))
        if addr & PARAM_WINDOW and self.busy:
            self.bus_error = True
            return 0
        if addr == REG["STATUS"]:
            if we:
                if wdata & STATUS_BITS["bus_error"]:
                    self.bus_error = False
                return 0
            return int(self.busy) | (STATUS_BITS["bus_error"] if self.bus_error else 0)
        if we:
            if addr == REG["ID"]:  # read-only
                self.bus_error = True
                return 0
            self.regs[addr] = wdata
            return 0
        return self.regs.get(addr, 0)


def run_bridge(cfg, host_bytes, *, regs=None, out_beats=(), busy_script=None, seed=1, stall=0.3):
    """Feed ``host_bytes`` to the bridge; returns (bytes out, beats on s_data, bus target)."""
    dut = CommandBridge(cfg)
    target = BusTarget(regs or {})
    rng = random.Random(seed)
    got_bytes, got_beats = [], []
    state = {"done": False}

    async def host_tx(ctx):
        for b in host_bytes:
            await stream_put(ctx, dut.i, b, stall=random_stall(rng, stall))
        # let the bridge finish: wait for silence on every port
        quiet = 0
        while quiet < 200:
            await ctx.tick()
            quiet = 0 if ctx.get(dut.o.valid) or ctx.get(dut.s_data.valid) or ctx.get(dut.csr.re) \
                or ctx.get(dut.csr.we) or ctx.get(dut.m_data.valid) else quiet + 1
        state["done"] = True

    async def host_rx(ctx):
        while True:
            got_bytes.append(await stream_get(ctx, dut.o, stall=random_stall(rng, stall)))

    async def sink(ctx):
        while True:
            p = await stream_get(ctx, dut.s_data, stall=random_stall(rng, stall))
            got_beats.append((p.data, bool(p.last)))

    async def source(ctx):
        for code, last in out_beats:
            await stream_put(ctx, dut.m_data, {"data": code, "last": last}, stall=random_stall(rng, stall))

    async def bus(ctx):
        acking = False
        async for _, _, re, we, addr, wdata in ctx.tick().sample(dut.csr.re, dut.csr.we, dut.csr.addr,
                                                                   dut.csr.wdata):
            if busy_script is not None:
                target.busy = busy_script(len(target.accesses))
                ctx.set(dut.busy, target.busy)
            if acking:
                ctx.set(dut.csr.ack, 0)
                acking = False
                continue
            if re or we:
                ctx.set(dut.csr.rdata, target.access(addr, we, wdata))
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


def _commands(cfg, rng, n=40):
    """A random command sequence (writes, reads, sends of 0..9 beats) and the codes sent;
    a small window splits samples into several 'S' chunks (``last`` only on the final one)."""
    proto = HostProtocol(cfg.act.width, window=3 + 4 * code_bytes(cfg.act.width))
    out = bytearray()
    n_csr = 0
    for _ in range(n):
        kind = rng.choice("WRS")
        n_csr += kind != "S"
        if kind == "W":
            out += encode_write(rng.choice([REG["LR"], REG["CTRL"], 0x123456, rng.getrandbits(28)]),
                                rng.getrandbits(32))
        elif kind == "R":
            out += encode_read(rng.choice([REG["LR"], 0x123456, rng.getrandbits(28)]))
        else:
            w = cfg.act.width
            codes = [rng.randrange(-(1 << (w - 1)), 1 << (w - 1)) for _ in range(rng.randrange(0, 10))]
            for frame in proto.chunks(codes) if codes else []:
                out += frame
    return bytes(out), n_csr


@pytest.mark.parametrize("changes", [{}, {"act": QFormat(6, 14)}, {"act": QFormat(4, 3), "lut_entries_log2": 6, "exp_entries_log2": 6}],
                         ids=["16bit", "20bit-3bytes", "7bit"])
def test_bridge_matches_the_protocol_model(changes):
    cfg = XOR.with_(**changes) if changes else XOR
    rng = random.Random(5)
    host_bytes, n_csr = _commands(cfg, rng)
    model = BridgeModel(cfg.act.width, regs={REG["LR"]: 77})
    want = model.feed(host_bytes)
    got, beats, target = run_bridge(cfg, host_bytes, regs={REG["LR"]: 77})
    assert got == want
    mask = (1 << cfg.act.width) - 1
    assert [(c & mask, last) for c, last in beats] == model.beats
    assert target.regs == model.regs
    # every CSR command is STATUS, access, STATUS on the bus
    assert len(target.accesses) == 3 * n_csr
    assert all(a[0] == REG["STATUS"] for a in target.accesses[0::3])


def test_output_beats_interleave_with_replies():
    cfg = XOR.with_(act=QFormat(6, 14))
    rng = random.Random(2)
    outs = [(rng.randrange(-(1 << 19), 1 << 19), i % 3 == 2) for i in range(30)]
    host_bytes = b"".join(encode_read(REG["LR"]) for _ in range(10))
    got, _, _ = run_bridge(cfg, host_bytes, regs={REG["LR"]: 0xDEADBEEF}, out_beats=outs)
    proto = HostProtocol(cfg.act.width)
    for _ in range(10):
        proto.sent(encode_read(REG["LR"]))
    proto.feed(got)
    assert list(proto.beats) == [(c & ((1 << 20) - 1), last) for c, last in outs]
    assert list(proto.replies) == [(ord("r"), 0, 0xDEADBEEF)] * 10
    assert code_bytes(20) == 3


def test_parameter_access_while_busy_is_reported():
    """A parameter read while busy replies status 1 with data 0; the next one, idle, succeeds."""
    addr = PARAM_WINDOW | 5
    host_bytes = encode_read(addr) + encode_write(REG["STATUS"], STATUS_BITS["bus_error"]) + encode_read(addr) + \
        encode_write(addr, 9) + encode_read(REG["ID"])
    # busy during the first access (accesses 0..2), idle afterwards
    got, _, target = run_bridge(XOR, host_bytes, regs={addr: 1234, REG["ID"]: 0xBF0A0001},
                                busy_script=lambda n: n < 3)
    proto = HostProtocol(XOR.act.width)
    for cmd in (encode_read(addr), encode_write(0, 0), encode_read(addr), encode_write(0, 0), encode_read(0)):
        proto.sent(cmd)
    proto.feed(got)
    r = list(proto.replies)
    assert r[0] == (ord("r"), 1, 0), "refused read must say so"
    assert r[1] == (ord("w"), 0, None)
    assert r[2] == (ord("r"), 0, 1234)
    assert r[3] == (ord("w"), 0, None) and target.regs[addr] == 9
    assert r[4] == (ord("r"), 0, 0xBF0A0001)


def test_unknown_command_byte_is_reported_and_skipped():
    host_bytes = b"\x00\xff" + encode_read(REG["LR"])
    got, _, _ = run_bridge(XOR, host_bytes, regs={REG["LR"]: 3})
    assert got == bytes([RSP_ERROR, 0x00, RSP_ERROR, 0xFF]) + b"r\x00\x03\x00\x00\x00"
    proto = HostProtocol(XOR.act.width)
    with pytest.raises(ProtocolError, match="unknown command byte 0x00"):
        proto.feed(got)


def test_refusals_are_reported_whatever_the_sticky_flag():
    """Both detections: a bus error that raises the sticky flag (write to read-only ID), and
    a parameter access while busy with the flag already set (nothing rises then)."""
    addr = PARAM_WINDOW | 3
    host_bytes = encode_write(REG["ID"], 1) + encode_read(addr) + encode_write(REG["LR"], 2)
    got, _, target = run_bridge(XOR, host_bytes, regs={addr: 77}, busy_script=lambda n: 3 <= n < 6)
    assert target.bus_error, "the flag stays set (nobody cleared it)"
    assert got == b"w\x01" + b"r\x01\x00\x00\x00\x00" + b"w\x00"
