"""sim/host/transport.py: the Transport protocol's defaults, built on the four required coroutines."""
import asyncio

import pytest

from hdl.csr import REG, STATUS_BITS
from sim.host.amaranth_transport import AmaranthTransport
from sim.host.cocotb_transport import CocotbTransport
from sim.host.transport import SampleQueue, TrainerError, Transport
from sim.host.uart_framing import FramedTransport


class Registers(Transport):
    """A bus of plain registers; STATUS reads busy ``busy_reads`` times."""

    def __init__(self, busy_reads: int = 0):
        self.regs = {REG["SIGNATURE"]: 0x1234, 5: 50, 6: 60}
        self.busy_reads = busy_reads
        self.reads = []

    async def csr_read(self, addr):
        self.reads.append(addr)
        if addr == REG["STATUS"]:
            self.busy_reads -= 1
            return STATUS_BITS["busy"] if self.busy_reads >= 0 else 0
        return self.regs.get(addr, 0)

    async def csr_write(self, addr, value):
        self.regs[addr] = value

    async def send_beats(self, codes):
        pass

    async def recv_beats(self, n):
        return [0] * n


def test_defaults_poll_status_and_read_one_register_at_a_time():
    t = Registers(busy_reads=3)
    asyncio.run(t.wait_idle())
    assert t.reads == [REG["STATUS"]] * 4
    assert asyncio.run(t.peek_signature()) == 0x1234
    assert asyncio.run(t.csr_read_many([6, 5])) == [60, 50]
    assert asyncio.run(t.wait_sent()) is None


def test_default_wait_idle_gives_up():
    t = Registers(busy_reads=10)
    t.max_polls = 5
    with pytest.raises(TrainerError, match="still busy after 5 STATUS polls"):
        asyncio.run(t.wait_idle())


def test_the_four_coroutines_are_required():
    class NoRecv(Transport):
        async def csr_read(self, addr):
            return 0

        async def csr_write(self, addr, value):
            pass

        async def send_beats(self, codes):
            pass

    with pytest.raises(TypeError, match="recv_beats"):
        NoRecv()


def test_only_the_cocotb_transport_queues_samples():
    assert issubclass(CocotbTransport, SampleQueue)
    assert not issubclass(AmaranthTransport, SampleQueue)
    assert not issubclass(FramedTransport, SampleQueue)
