"""UartRx / UartTx under amaranth.sim against a bit-level Python model of the line:
every byte both ways, a Tx -> Rx round trip, a framing error, the divisor rule."""
import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from hdl.uart import UartRx, UartTx, uart_divisor


def _frame_bits(byte: int, stop: int = 1) -> list:
    return [0] + [(byte >> i) & 1 for i in range(8)] + [stop]


async def drive_line(ctx, pin, bits, period: int):
    for b in bits:
        ctx.set(pin, b)
        await ctx.tick().repeat(period)


def run(dut, *testbenches):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for tb in testbenches:
        sim.add_testbench(tb, background=tb is not testbenches[0])
    sim.run()


@pytest.mark.parametrize("divisor,period", [(8, 8), (16, 16), (25, 24), (25, 26), (5, 5)])
def test_rx_receives_every_byte(divisor, period):
    """The line runs from the Python model; a bit period off by 4 % still decodes."""
    dut = UartRx(divisor)
    got = []

    async def line(ctx):
        ctx.set(dut.o.ready, 1)
        await ctx.tick().repeat(5)
        for byte in range(256):
            await drive_line(ctx, dut.rx, _frame_bits(byte), period)
        await ctx.tick().repeat(3 * divisor)

    async def sink(ctx):
        async for _, _, valid, payload, fe in ctx.tick().sample(dut.o.valid, dut.o.payload, dut.framing_error):
            assert not fe, f"framing error after {got}"
            if valid:
                got.append(payload)

    run(dut, line, sink)
    assert got == list(range(256))


@pytest.mark.parametrize("divisor", [4, 9])
def test_tx_sends_every_byte(divisor):
    dut = UartTx(divisor)
    got = []

    async def source(ctx):
        for byte in range(256):
            ctx.set(dut.i.payload, byte)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)
        await ctx.tick().repeat(12 * divisor)

    async def line_model(ctx):
        """Find the start bit's falling edge, sample every bit at its middle, check the timing."""
        prev = 1
        while True:
            level = ctx.get(dut.tx)
            if prev == 1 and level == 0:
                bits = []
                await ctx.tick().repeat(divisor // 2)
                for i in range(10):
                    bits.append(ctx.get(dut.tx))
                    if i < 9:
                        await ctx.tick().repeat(divisor)
                assert bits[0] == 0 and bits[9] == 1, f"bad frame {bits}"
                got.append(sum(b << i for i, b in enumerate(bits[1:9])))
                level = 1  # the middle of the stop bit: look for the next falling edge
            prev = level
            await ctx.tick()

    run(dut, source, line_model)
    assert got == list(range(256))


def test_tx_is_idle_high_after_reset():
    dut = UartTx(4)

    async def tb(ctx):
        for _ in range(20):
            assert ctx.get(dut.tx) == 1 and ctx.get(dut.i.ready) == 1
            await ctx.tick()

    run(dut, tb)


def test_round_trip_tx_to_rx():
    m = Module()
    m.submodules.tx = tx = UartTx(7)
    m.submodules.rx = rx = UartRx(7)
    m.d.comb += rx.rx.eq(tx.tx)
    got = []

    async def source(ctx):
        for byte in range(256):
            ctx.set(tx.i.payload, byte)
            ctx.set(tx.i.valid, 1)
            await ctx.tick().until(tx.i.ready)
        ctx.set(tx.i.valid, 0)
        await ctx.tick().repeat(12 * 7)

    async def sink(ctx):
        ctx.set(rx.o.ready, 1)
        async for _, _, valid, payload in ctx.tick().sample(rx.o.valid, rx.o.payload):
            if valid:
                got.append(payload)

    run(m, source, sink)
    assert got == list(range(256))


def test_framing_error_drops_the_frame_and_recovers():
    dut = UartRx(8)
    got, errors = [], []

    async def line(ctx):
        ctx.set(dut.o.ready, 1)
        await ctx.tick().repeat(5)
        await drive_line(ctx, dut.rx, _frame_bits(0x5A), 8)
        await drive_line(ctx, dut.rx, _frame_bits(0xC3, stop=0) + [0] * 12, 8)  # low stop bit, then a break
        await drive_line(ctx, dut.rx, [1, 1], 8)
        await drive_line(ctx, dut.rx, _frame_bits(0x81), 8)
        await ctx.tick().repeat(20)

    async def sink(ctx):
        async for _, _, valid, payload, fe in ctx.tick().sample(dut.o.valid, dut.o.payload, dut.framing_error):
            if valid:
                got.append(payload)
            if fe:
                errors.append(len(got))

    run(dut, line, sink)
    assert got == [0x5A, 0x81]
    assert errors == [1], "exactly one framing error, after the first byte"


def test_overrun_is_flagged_when_nobody_reads():
    dut = UartRx(4)
    seen = []

    async def line(ctx):
        await ctx.tick().repeat(3)
        for byte in (1, 2):
            await drive_line(ctx, dut.rx, _frame_bits(byte), 4)
        await ctx.tick().repeat(10)

    async def mon(ctx):
        async for _, _, ov, payload in ctx.tick().sample(dut.overrun, dut.o.payload):
            if ov:
                seen.append(payload)

    run(dut, line, mon)
    assert seen == [1], "the second byte is dropped, the first one kept"


def test_divisor_rule():
    assert uart_divisor(100_000_000, 115200) == 868
    assert uart_divisor(25_000_000, 115200) == 217
    with pytest.raises(ValueError, match=r"divisor 3 .*clk_freq=1000000 .*baud=300000"):
        uart_divisor(1_000_000, 300_000)
    with pytest.raises(ValueError, match=r"baud error 8\.51% .*clk_freq=1000000 .*230400"):
        uart_divisor(1_000_000, 230_400)
    with pytest.raises(ValueError, match="divisor must be an integer >= 4"):
        UartRx(3)
    with pytest.raises(ValueError, match="divisor must be an integer >= 4"):
        UartTx(2.5)


@pytest.mark.parametrize("divisor", [4, 8, 13])
def test_rx_timing_synchronizer_and_mid_bit_sampling(divisor):
    """The byte appears 2 (synchronizer) + divisor // 2 (to mid start bit) + 9 * divisor
    (to mid stop bit) + 1 (output register) cycles after the falling edge of the start bit."""
    dut = UartRx(divisor)
    seen = []

    async def line(ctx):
        ctx.set(dut.o.ready, 1)
        await ctx.tick().repeat(4)
        ctx.set(dut.rx, 0)
        t = 0
        for bit in _frame_bits(0xA5)[1:] + [1] * 4:
            for _ in range(divisor):
                await ctx.tick()
                t += 1
                if ctx.get(dut.o.valid) and not seen:
                    seen.append((t, ctx.get(dut.o.payload)))
            ctx.set(dut.rx, bit)

    run(dut, line)
    assert seen == [(2 + divisor // 2 + 9 * divisor + 1, 0xA5)]
