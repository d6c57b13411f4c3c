"""What a link to the trainer provides: the :class:`Transport` protocol.

``TrainerHost`` (driver.py) speaks in registers, parameters and samples; a transport moves
words and beats: the simulated bus under amaranth.sim (amaranth_transport.py) or cocotb
(cocotb_transport.py), the simulated UART (cocotb_uart.py) or a serial port to a board
(serial_transport.py). Four coroutines are required; the others have defaults built on
those four, which a transport gets by subclassing ``Transport`` and overrides when it can
do better (a busy wire instead of polling STATUS, a burst read instead of one read each).

:class:`SampleQueue` is an optional capability: queueing several samples per wake-up
(cocotb_transport.py). The scoreboard uses it when the transport has it.
"""
from __future__ import annotations

from abc import abstractmethod
from typing import Protocol, runtime_checkable

from hdl.csr import REG, STATUS_BITS

__all__ = ["Transport", "SampleQueue", "TrainerError"]


class TrainerError(RuntimeError):
    """The trainer does not behave as one (wrong ID, mode not taken, busy for ever)."""


class Transport(Protocol):
    """A link to the trainer's control bus and sample streams."""

    max_polls: int = 1_000_000  # STATUS polls before the default ``wait_idle`` gives up

    @abstractmethod
    async def csr_read(self, addr: int) -> int:
        """One control-bus read."""

    @abstractmethod
    async def csr_write(self, addr: int, value: int) -> None:
        """One control-bus write."""

    @abstractmethod
    async def send_beats(self, codes: list[int]) -> None:
        """One sample's codes to the input stream, ``last`` set on the final one."""

    @abstractmethod
    async def recv_beats(self, n: int) -> list[int]:
        """The next ``n`` output codes (raw, unsigned); checks ``last`` on the n-th."""

    async def wait_idle(self) -> None:
        """Until the trainer has finished its sample (its parameters are stable).
        Default: poll STATUS until ``busy`` is clear."""
        for _ in range(self.max_polls):
            if not (await self.csr_read(REG["STATUS"])) & STATUS_BITS["busy"]:
                return
        raise TrainerError(f"trainer still busy after {self.max_polls} STATUS polls")

    async def peek_signature(self) -> int:
        """The parameter signature. Default: a read of the SIGNATURE register."""
        return await self.csr_read(REG["SIGNATURE"])

    async def wait_sent(self) -> None:
        """Until the trainer has accepted every beat sent so far. Default: return at once
        (``send_beats`` itself returns once its beats are accepted)."""

    async def csr_read_many(self, addrs: list[int]) -> list[int]:
        """Reads of ``addrs``, in order. Default: one ``csr_read`` each."""
        return [await self.csr_read(a) for a in addrs]


@runtime_checkable
class SampleQueue(Protocol):
    """A transport that moves several samples per wake-up, each held until the previous
    one's results are in (or, ``send_groups``, groups of samples each held until the
    results of the group before the previous one are in), and returns each result with
    the signature seen beside it."""

    def queue_capacity(self, beats_per_sample: int, results_per_sample: int) -> int:
        """How many samples one ``send_samples`` call takes."""

    async def send_samples(self, samples: list[list[int]], results_per_sample: int) -> None:
        """Queue ``samples`` (lists of codes)."""

    async def send_groups(self, groups: list[list[list[int]]], results_per_sample: int, lag: int) -> None:
        """Queue groups of samples (the samples schedule): group 0 at once, group k >= 1
        once ``lag`` more results and those of groups 0 .. k - 2 are in."""

    async def recv_samples(self, count: int, n: int) -> list[tuple[list[int], int]]:
        """The next ``count`` results of ``n`` raw codes each, as (codes, signature)."""
