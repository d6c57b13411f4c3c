"""SerialTransport: TrainerHost over a serial port, here a fake port running the Python
model of the bridge (sim/host/uart_framing.py: BridgeModel), and pyserial's loop:// URL."""
import asyncio
import sys

import numpy as np
import pytest

from golden.config import load_config
from hdl.csr import ID_VALUE, REG, param_address
from hdl.layout import Layout
from sim.host.driver import TrainerHost
from sim.host.serial_transport import SerialTimeout, SerialTransport
from sim.host.uart_framing import BridgeModel, UartBusError, UartLinkError, encode_read

XOR = load_config("examples/xor.toml")


class FakeBoard:
    """A serial port whose far end is the bridge model plus a toy trainer: each complete
    sample answers with its first input code negated as the (single) output beat."""

    def __init__(self, width, busy=False):
        self.name = "fake0"
        self.model = BridgeModel(width, regs={REG["ID"]: ID_VALUE, REG["LR"]: 5, REG["SIGNATURE"]: 0x1234},
                                 busy=lambda: self.busy)
        self.busy = busy
        self.rx = bytearray()
        self.written = bytearray()
        self._beats = 0

    def write(self, data):
        self.written += data
        self.rx += self.model.feed(data)
        beats = self.model.beats[self._beats:]
        self._beats = len(self.model.beats)
        sample = []
        for code, last in beats:
            sample.append(code)
            if last:
                self.model.outputs.append((-sample[0] & 0xFFFF, True))
                sample = []
        return len(data)

    def read(self, n):
        n = min(n, len(self.rx))
        out, self.rx = bytes(self.rx[:n]), self.rx[n:]
        return out

    @property
    def in_waiting(self):
        return len(self.rx)


def test_host_driver_over_the_serial_transport():
    board = FakeBoard(XOR.act.width)
    link = SerialTransport(board, 115200, width=XOR.act.width)
    host = TrainerHost(XOR, link)

    async def main():
        await host.check_id()
        await host.write("LR", 9)
        assert await host.read("LR") == 9
        await host.write_param(0, 1, 2, -3)
        bank, addr = Layout(XOR).param_location(0, 1, 2)
        assert board.model.regs[param_address(bank, addr)] == (-3) & 0xFFFFFFFF
        assert await host.read_param(0, 1, 2) == -3
        await host.send_train(np.array([100, -7]), np.array([4096]))
        assert list(await host.recv_output()) == [-100]
        assert await host.signature() == 0x1234
    asyncio.run(main())
    assert board.model.beats == [(100, False), ((-7) & 0xFFFF, False), (4096, True)]
    # before the sample, the transport waited for idle (STATUS) and latched SIGNATURE
    seq = next(i for i in range(256) if encode_read(i, REG["STATUS"]) in board.written)
    assert board.written.index(encode_read(seq, REG["STATUS"])) < board.written.index(b"S")
    assert link.stats.retries == 0 and link.stats.commands > 0


def test_bus_error_reply_raises():
    board = FakeBoard(XOR.act.width, busy=True)
    host = TrainerHost(XOR, SerialTransport(board, 115200, width=XOR.act.width, latch_signature=False))
    with pytest.raises(UartBusError, match="refused"):
        asyncio.run(host._read_param(0, 0, 0))


def test_silent_port_times_out_with_a_clear_message():
    class Silent:
        name = "/dev/ttyNOWHERE"

        def write(self, data):
            return len(data)

        def read(self, n):
            return b""

    link = SerialTransport(Silent(), 115200, width=16, timeout=0.01)
    with pytest.raises(UartLinkError, match=r"link sync \(read of ID\): no good reply after 8 attempts .*"
                                            r"/dev/ttyNOWHERE: got 0 of 1 bytes within 0.01 s.*115200 Bd"):
        asyncio.run(link.csr_read(0))
    assert link.stats.timeouts == 8 and link.stats.retries == 7
    assert issubclass(SerialTimeout, Exception)


def test_real_pyserial_loopback_is_not_a_trainer():
    """pyserial's loop:// echoes the command back: the transport says the stream is not the protocol."""
    with SerialTransport("loop://", 115200, width=16, timeout=0.05) as link:
        with pytest.raises(UartLinkError, match="unknown reply tag 0x52"):
            asyncio.run(link.csr_read(REG["ID"]))


def test_missing_pyserial_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "serial", None)
    with pytest.raises(RuntimeError, match="pip install pyserial"):
        SerialTransport("/dev/ttyUSB0", 115200, width=16)


def test_width_is_required():
    with pytest.raises(ValueError, match="width=cfg.act.width"):
        SerialTransport(FakeBoard(16), 115200)
