"""Transport for ``sim.host.driver.TrainerHost`` over a serial port: the trainer on a board
(hdl/uart_bridge.py: ``UartTrainer``), through pyserial.

    from golden.config import load_config
    from sim.host.driver import TrainerHost
    from sim.host.serial_transport import SerialTransport

    cfg = load_config("examples/xor.toml")
    with SerialTransport("/dev/ttyUSB1", 115200, width=cfg.act.width) as link:
        host = TrainerHost(cfg, link)
        asyncio.run(host.check_id())

The byte protocol is sim/host/uart_framing.py's (``FramedTransport``: CRC, stop and wait,
retries), the same code the simulated UART path runs. The coroutines block on the port
(fine for a host script).
"""
from __future__ import annotations

from hdl.uart_protocol import RESYNC_IDLE_BITS

from .uart_framing import FramedTransport, LinkTimeout, MAX_TRIES

__all__ = ["SerialTransport", "SerialTimeout"]

#: the quiet time before a retry, at least: USB-serial adapters deliver bytes in bursts a
#: few milliseconds apart, so a shorter silence does not mean the device has finished
MIN_QUIET_S = 0.02


class SerialTimeout(LinkTimeout):
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
    """The transport coroutines over a serial port (8N1).

    Parameters
    ----------
    port : str or file-like
        A pyserial port name or URL (``"/dev/ttyUSB1"``, ``"COM3"``, ``"loop://"``), or an
        open object with ``read(n)``, ``write(data)`` and optionally ``timeout`` and
        ``in_waiting``.
    baud : int
        Baud rate; must match the ``baud`` the bitstream was built with (UartTrainer).
    width : int
        The act code width in bits (``cfg.act.width``): it sets the bytes per code.
    timeout : float
        Seconds to wait for a reply before the attempt counts as lost (then the command is
        sent again, up to ``max_tries`` times, before :class:`UartLinkError`).
    latch_signature : bool
        Wait for idle before each sample and latch SIGNATURE there (see
        ``FramedTransport``), so per-update signature checks work; False streams samples
        back to back.
    """

    def __init__(self, port, baud: int = 115200, *, width: int | None = None, timeout: float = 2.0,
                 latch_signature: bool = True, max_tries: int = MAX_TRIES):
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"SerialTransport needs width=cfg.act.width (the act code width in bits), got {width!r}")
        if not isinstance(baud, int) or baud <= 0:
            raise ValueError(f"baud must be a positive integer, got {baud!r}")
        super().__init__(width, latch_signature=latch_signature, max_tries=max_tries)
        self.port_name = port if isinstance(port, str) else getattr(port, "name", repr(port))
        self.baud = baud
        self.timeout = timeout
        self.quiet_s = max(MIN_QUIET_S, 2 * RESYNC_IDLE_BITS / baud)
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
                f"{self.port_name}: got {len(data)} of {n} bytes within {self.timeout} s; if this persists, "
                f"is the board running UartTrainer at {self.baud} Bd with this config?")
        return bytes(data)

    async def _quiet(self) -> None:
        """Read and drop until the port has been silent for ``quiet_s``."""
        old = getattr(self.ser, "timeout", None)
        try:
            if old is not None:
                self.ser.timeout = self.quiet_s
            for _ in range(100_000):  # bounded: a device that never stops talking is broken
                if not self.ser.read(4096):
                    return
        finally:
            if old is not None:
                self.ser.timeout = old
        raise SerialTimeout(f"{self.port_name} never went quiet (wrong baud rate, or not the trainer?)")
