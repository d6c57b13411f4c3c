"""Transport for ``sim.host.driver.TrainerHost`` over cocotb (Icarus, Verilator).

Drives the trainer's ports as Amaranth names them in Verilog (``s_data__payload``,
``s_data__valid``, ``csr__addr``, ...) inside the testbench top of sim/runners/rtl_run.py.
Samples and results move per sample, not per cycle: a sample's beats are written to a
file the wrapper loads into its burst memory (``$readmemh``, in the simulator's working
directory) and streams; results are captured by the wrapper and read back once the
expected number has arrived. The simulator runs free in between. ``send_samples`` /
``recv_samples`` move a whole queue of samples per wake-up: the wrapper releases each
sample once the previous one's results were captured (its hold bit), and the results
come back with the parameter signature the wrapper captured beside each result's first
beat (in the beat's first valid cycle). ``send_groups`` does the same for groups of
samples (the samples schedule): a group is released once the group before the previous
one has its results captured. ``csr_read_many`` reads a list of registers
through the wrapper's bus read engine.
Clock edges are awaited with ``edge()`` (the wrapper's ``clk_cycles`` counter when it
pulses the clock). Random idle cycles on the input stream and backpressure on the output
stream (``stall_prob``) come from the wrapper's LFSRs; control-bus accesses get random
idle cycles from a seeded generator. Handshakes on the control bus are decided on settled
values (ReadOnly) before the clock edge, the same on every simulator.
"""
from __future__ import annotations

import os
import random

import numpy as np
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from sim.runners.rtl_run import BURST_DEPTH

from .transport import Transport

__all__ = ["CocotbTransport"]


class CocotbTransport(Transport):
    """The trainer's ports in a cocotb simulation; also a ``SampleQueue`` (several samples
    per wake-up) with a burst ``csr_read_many``."""

    def __init__(self, dut, data_width: int, stall_prob: float = 0.0, seed: int = 0):
        self.dut = dut
        # the design's clock edges: the wrapper's cycle counter when it pulses the clock
        # (sim/runners/rtl_run.py: clock_wrapper(pulse_clock=True)), else the clock itself
        self._cycles = dut.clk_cycles if _has(dut, "clk_cycles") else None
        self.clk = None if self._cycles is not None else dut.clk
        self.w = data_width
        self.mask = (1 << data_width) - 1
        self.stall_prob = stall_prob
        self.rng = random.Random(seed)
        self._gap = min(255, int(stall_prob * 256))  # wrapper LFSR threshold for stream stalls
        self._taken = 0  # output beats taken from the wrapper's capture ring
        self._cap_base = 0  # the wrapper's m_data__cap_base: capture ring index = beat - base
        self._files = {}  # name -> file descriptor of the files the wrapper reads ($readmemh)
        self._bursts = int(dut.s_data__burst_req.value) if _has(dut, "s_data__burst_req") else 0  # bursts requested

    def edge(self):
        """A trigger firing at the design's next rising clock edge."""
        return self._cycles.value_change if self._cycles is not None else RisingEdge(self.clk)

    def _stall(self) -> bool:
        return self.stall_prob > 0 and self.rng.random() < self.stall_prob

    async def _idle_cycles(self):
        while self._stall():
            await self.edge()

    async def csr_read(self, addr: int) -> int:
        d = self.dut
        await self._idle_cycles()
        d.csr__addr.value = addr
        d.csr__re.value = 1
        while True:
            await self.edge()  # ack can only rise after an edge has seen `re`
            await ReadOnly()
            if d.csr__ack.value:
                value = int(d.csr__rdata.value)
                break
        await self.edge()
        d.csr__re.value = 0
        return value

    async def csr_write(self, addr: int, value: int) -> None:
        d = self.dut
        await self._idle_cycles()
        d.csr__addr.value = addr
        d.csr__wdata.value = value & 0xFFFFFFFF
        d.csr__we.value = 1
        while True:
            await ReadOnly()
            ack = bool(d.csr__ack.value)
            await self.edge()
            if ack:
                break
        d.csr__we.value = 0

    async def wait_idle(self) -> None:
        await ReadOnly()
        if self.dut.busy.value:
            await FallingEdge(self.dut.busy)
        await self.edge()

    async def wait_sent(self) -> None:
        """Until the wrapper has delivered every beat of the last burst."""
        await ReadOnly()
        if self.dut.s_data__active.value:
            await FallingEdge(self.dut.s_data__active)
        await self.edge()

    async def peek_signature(self) -> int:
        return int(self.dut.param_signature.value)

    async def peek_state_signature(self) -> int:
        return int(self.dut.state_signature.value)

    async def send_beats(self, codes) -> None:
        d = self.dut
        # the previous burst still streaming? (counted here: a value written in this time
        # step is not read back before the next, and two sends may follow each other)
        while self._bursts != int(d.s_data__burst_ack.value):
            await self.edge()
        n = len(codes)
        if n == 0:
            return
        if n > BURST_DEPTH:
            raise ValueError(f"a sample of {n} beats exceeds the testbench burst memory ({BURST_DEPTH})")
        words = np.asarray(codes, dtype=np.int64).reshape(-1) & self.mask
        words[-1] |= 1 << self.w
        self._put_hex("s_data__burst.hex", words, self.w + 2)
        d.s_data__load_len.value = n
        d.s_data__load_req.value = (int(d.s_data__load_req.value) + 1) & 0xFFFFFFFF
        d.s_data__burst_len.value = n
        d.s_data__gap.value = self._gap
        self._bursts = (self._bursts + 1) & 0xFFFFFFFF
        d.s_data__burst_req.value = self._bursts

    async def recv_beats(self, n: int) -> list:
        """The next ``n`` captured beats. The wrapper's capture count only grows: this side
        remembers how many it has taken and arms ``cap_goal`` for the beats it waits for."""
        d = self.dut
        goal = self._taken + n
        settled = False
        if int(d.m_data__cap_goal.value) != goal:
            d.m_data__cap_goal.value = goal
            d.m_data__gap.value = self._gap
            d.m_data__cap_enable.value = 1
            await ReadOnly()  # settled: is the goal already met?
            settled = True
        if not d.m_data__cap_done.value:
            await RisingEdge(d.m_data__cap_done)
            settled = False
        out = []
        mem = d.m_data__cap_mem
        for i in range(n):
            payload = int(mem[(self._taken + i - self._cap_base) % BURST_DEPTH].value)
            last = (payload >> self.w) & 1
            if last != (i == n - 1):
                raise AssertionError(f"output beat {i} of {n} has last={last}")
            out.append(payload & self.mask)
        self._taken = goal
        # arm the goal of the next result now (results always have the same length), so the
        # next call finds cap_done settled and waits on it at most once
        if settled:  # no writes in the read-only phase: move to the next edge first
            await self.edge()
        d.m_data__cap_goal.value = goal + n
        return out

    # ---- several samples per wake-up ---------------------------------------------------
    def queue_capacity(self, beats_per_sample: int, results_per_sample: int) -> int:
        """How many samples ``send_samples`` takes at once (the burst memory and the capture
        ring each hold BURST_DEPTH beats)."""
        return max(1, min(BURST_DEPTH // max(1, beats_per_sample), BURST_DEPTH // max(1, results_per_sample)))

    async def send_samples(self, samples, results_per_sample: int) -> None:
        """Queue several samples (lists of codes) in one burst. The first goes at once; each
        further one is held by the wrapper until the previous one's ``results_per_sample``
        beats are captured, as if the host sent it after receiving them. Expects every
        result of what was sent before to have been received (``recv_samples``)."""
        await self.send_groups([[codes] for codes in samples], results_per_sample, results_per_sample)

    async def send_groups(self, groups, results_per_sample: int, lag: int) -> None:
        """Queue groups of samples (lists of lists of codes) in one burst, as a host that
        sends a group and then reads the results of the group before it (the samples
        schedule). Group 0 goes at once; group k >= 1 is held by the wrapper until ``lag``
        result beats beyond those received so far and the results of groups 0 .. k - 2
        are captured. Groups 0 .. k - 2 of a held group k must all have the same size
        (the wrapper's hold goal grows by a fixed step): every group but the last two
        the same size."""
        d = self.dut
        groups = [g for g in groups if len(g)]
        if not groups:
            return
        if len({len(g) for g in groups[:-2]}) > 1:
            raise ValueError(f"groups of {[len(g) for g in groups]} samples: all but the last two must be "
                             "the same size (the wrapper's hold goal grows by a fixed step)")
        # the previous burst still streaming? (counted here: a value written in this time
        # step is not read back before the next, and two sends may follow each other)
        while self._bursts != int(d.s_data__burst_ack.value):
            await self.edge()
        samples = [codes for g in groups for codes in g]
        lens = [len(codes) for codes in samples]
        n = sum(lens)
        if n > BURST_DEPTH:
            raise ValueError(f"{len(samples)} samples of {n} beats exceed the testbench burst memory ({BURST_DEPTH})")
        words = np.concatenate([np.asarray(codes, dtype=np.int64).reshape(-1) for codes in samples]) & self.mask
        ends = np.cumsum(lens)
        words[ends - 1] |= 1 << self.w  # last
        sample_starts = np.concatenate([[0], ends[:-1]])  # beat of each sample's first code
        group_starts = np.cumsum([len(g) for g in groups[:-1]], dtype=np.int64)  # sample of each group's first
        words[sample_starts[group_starts]] |= 1 << (self.w + 1)  # hold: released once the results named above are in
        self._put_hex("s_data__burst.hex", words, self.w + 2)
        d.s_data__hold_goal.value = (self._taken + lag) & 0xFFFFFFFF
        d.s_data__hold_step.value = len(groups[0]) * results_per_sample
        d.s_data__load_len.value = n
        d.s_data__load_req.value = (int(d.s_data__load_req.value) + 1) & 0xFFFFFFFF
        d.s_data__burst_len.value = n
        d.s_data__gap.value = self._gap
        self._bursts = (self._bursts + 1) & 0xFFFFFFFF
        d.s_data__burst_req.value = self._bursts

    async def recv_samples(self, count: int, n: int) -> list:
        """The next ``count`` results of ``n`` beats each, as (codes, signature, state
        signature): the signatures are ``param_signature``, ``state_signature`` in the first cycle the result's first beat was
        valid. Each sample was held until the previous results were taken, so that beat is
        at the output FIFO's head as soon as it is written, before the sample's own update
        can fold a word into the signature, however long the host leaves it waiting (at
        the last beat, or when taken, the update may be under way)."""
        d = self.dut
        goal = self._taken + count * n
        if count * n > BURST_DEPTH:
            raise ValueError(f"{count} results of {n} beats exceed the testbench capture ring ({BURST_DEPTH})")
        count_now = int(d.m_data__cap_count.value)
        if count_now == self._taken and self._cap_base != self._taken:
            # nothing captured yet: store these results from ring index 0 (few handles to look up)
            self._cap_base = self._taken
            d.m_data__cap_base.value = self._cap_base & 0xFFFFFFFF
        d.m_data__cap_goal.value = goal
        d.m_data__gap.value = self._gap
        d.m_data__cap_enable.value = 1
        if count_now < goal:  # reached only at a later edge: the goal is armed by then
            await RisingEdge(d.m_data__cap_done)
        cap, tap, stap = d.m_data__cap_mem, d.m_data__tap_param_signature, d.m_data__tap_state_signature
        w, mask = self.w, self.mask
        out = []
        base = self._taken - self._cap_base
        for s_ in range(count):
            codes = []
            for i in range(n):
                payload = _read(cap[(base + i) % BURST_DEPTH])
                if (payload >> w) & 1 != (i == n - 1):
                    raise AssertionError(f"output beat {i} of {n} has last={(payload >> w) & 1}")
                codes.append(payload & mask)
            out.append((codes, _read(tap[base % BURST_DEPTH]), _read(stap[base % BURST_DEPTH])))
            base += n
        self._taken = goal
        return out

    async def csr_read_many(self, addrs) -> list:
        """Read the registers at ``addrs`` through the wrapper's bus read engine (the same
        handshake as ``csr_read``, without a Python wake-up per access)."""
        d = self.dut
        out = []
        for start in range(0, len(addrs), BURST_DEPTH):
            chunk = addrs[start:start + BURST_DEPTH]
            self._put_hex("csr__rd_addr.hex", np.asarray(chunk, dtype=np.int64), 32)
            d.csr__rd_len.value = len(chunk)
            d.csr__rd_load_req.value = (int(d.csr__rd_load_req.value) + 1) & 0xFFFFFFFF
            req = (int(d.csr__rd_req.value) + 1) & 0xFFFFFFFF
            d.csr__rd_req.value = req
            while int(d.csr__rd_ack.value) != req:
                await d.csr__rd_ack.value_change
            await self.edge()  # the wrapper has written the data file by then
            with open("csr__rd_data.hex") as f:
                words = [int(v, 16) for v in (line.split("//")[0].strip() for line in f)
                         if v and not v.startswith("@")]
            if len(words) != len(chunk):
                raise AssertionError(f"bus read engine returned {len(words)} words for {len(chunk)} addresses")
            out += words
        return out

    def _put_hex(self, name: str, words: np.ndarray, bits: int) -> None:
        """Write ``words`` (non-negative, < 2**bits) one per line in hex to ``name`` in the
        simulator's working directory, for the wrapper's $readmemh. Written in place:
        truncating a file to zero first is slow on some file systems."""
        digits = (bits + 3) // 4
        shifts = 4 * np.arange(digits - 1, -1, -1, dtype=np.int64)
        text = np.empty((len(words), digits + 1), dtype=np.uint8)
        text[:, :digits] = _HEX[(words.astype(np.int64)[:, None] >> shifts) & 0xF]
        text[:, digits] = ord("\n")
        data = text.tobytes()
        fd = self._files.get(name)
        if fd is None:
            fd = self._files[name] = os.open(name, os.O_RDWR | os.O_CREAT, 0o644)
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))


def _has(dut, name: str) -> bool:
    try:
        getattr(dut, name)
    except AttributeError:
        return False
    return True


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _read(handle) -> int:
    """A settled two-state value as an int (through the simulator object: building a
    LogicArray for each read costs more than the read)."""
    try:
        return int(handle._handle.get_signal_val_binstr(), 2)
    except AttributeError:  # another cocotb version
        return int(handle.value)
