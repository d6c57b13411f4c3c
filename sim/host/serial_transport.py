"""Transport for ``sim.host.driver.TrainerHost`` over a serial port: the trainer on a board
(hdl/uart_bridge.py: ``UartTrainer``), through pyserial.

    from golden.config import load_config
    from sim.host.driver import TrainerHost
    from sim.host.serial_transport import SerialTransport

    cfg = load_config("examples/xor.toml")
    with SerialTransport("/dev/ttyUSB1", 115200, width=cfg.act.width) as link:
        host = TrainerHost(cfg, link)
        asyncio.run(host.check_id())

The byte protocol is sim/host/uart_framing.py's (``FramedTransport``), the same code the
simulated UART path runs. The coroutines block on the port (fine for a host script).
"""
from __future__ import annotations

from .uart_framing import FramedTransport, ProtocolError

__all__ = ["SerialTransport", "SerialTimeout"]


class SerialTimeout(ProtocolError):
    """The device did not answer in time."""


def _open(port: str, baud: int, timeout: float):
    try:
        import serial  # pyserial, imported only when a real port is opened
    except ImportError as e:
        raise RuntimeError("SerialTransport needs pyserial: pip install pyserial") from e
    try:
        return serial.serial_for_url(port, baudrate=baud, bytesize=8, parity="N", stopbits=1, timeout=timeout,
                                     write_timeout=timeout)
    except (serial.SerialException, ValueError) as e:
        raise RuntimeError(f"cannot open serial port {port!r} at {baud} Bd: {e}") from e


class SerialTransport(FramedTransport):
    """The four transport coroutines over a serial port (8N1).

    Parameters
    ----------
    port : str or file-like
        A pyserial port name or URL (``"/dev/ttyUSB1"``, ``"COM3"``, ``"loop://"``), or an
        open object with ``read(n)``, ``write(data)`` and optionally ``in_waiting``.
    baud : int
        Baud rate; must match the ``baud`` the bitstream was built with (UartTrainer).
    width : int
        The act code width in bits (``cfg.act.width``): it sets the bytes per code.
    timeout : float
        Seconds to wait for a reply before raising :class:`SerialTimeout`.
    latch_signature : bool
        Wait for idle before each sample and latch SIGNATURE there (see
        ``FramedTransport``), so per-update signature checks work; False streams samples
        back to back.
    """

    def __init__(self, port, baud: int = 115200, *, width: int | None = None, timeout: float = 2.0,
                 latch_signature: bool = True):
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"SerialTransport needs width=cfg.act.width (the act code width in bits), got {width!r}")
        if not isinstance(baud, int) or baud <= 0:
            raise ValueError(f"baud must be a positive integer, got {baud!r}")
        super().__init__(width, latch_signature=latch_signature)
        self.port_name = port if isinstance(port, str) else getattr(port, "name", repr(port))
        self.baud = baud
        self.timeout = timeout
        self.ser = _open(port, baud, timeout) if isinstance(port, str) else port
        if hasattr(self.ser, "reset_input_buffer"):
            self.ser.reset_input_buffer()

    def close(self) -> None:
        if hasattr(self.ser, "close"):
            self.ser.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    async def _write(self, data: bytes) -> None:
        n = self.ser.write(data)
        if n is not None and n != len(data):
            raise SerialTimeout(f"wrote {n} of {len(data)} bytes to {self.port_name} (write timeout)")
        if hasattr(self.ser, "flush"):
            self.ser.flush()

    async def _read(self, n: int) -> bytes:
        data = self.ser.read(n)
        if len(data) < n:
            raise SerialTimeout(
                f"no reply from {self.port_name} within {self.timeout} s (got {len(data)} of {n} bytes, "
                f"{self.proto.outstanding} command bytes unanswered): is the board running UartTrainer "
                f"at {self.baud} Bd with this config?")
        extra = getattr(self.ser, "in_waiting", 0) or 0
        if extra:
            data += self.ser.read(extra)
        return bytes(data)
