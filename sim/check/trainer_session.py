"""Train the hardware through a host driver and check every bit against the golden model.

Transport-agnostic (amaranth.sim, cocotb, or a board): the caller brings a ``TrainerHost``.
For every sample the output codes are compared with the golden forward pass; after every
update the parameter signature register is compared with the golden signature, and
(``check_params="every"``) all parameters are read back and compared. The first mismatch
is kept with its sample, layer, index, expected and actual codes.

The expectations come from the caller (``train``, ``infer``, ``finish``: what
``sim.check.train_flow`` does with a precomputed plan) or from a golden model stepped
alongside (``golden``: ``train_sample``, and ``infer`` / ``finish`` without expectations).
Mismatches are ``sim.check.scoreboard.Mismatch`` records.

A transport that queues several samples per wake-up (``sim.host.transport.SampleQueue``,
sim/host/cocotb_transport.py) gets them in batches (``train_many``/``infer_many``); every
sample's outputs and every update's signature are still compared, one by one, in order.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from golden.config import Config
from golden.fixed_model import FixedMLP
from golden.signature import params_signature, state_signature
from sim.host.driver import _signed
from sim.host.transport import SampleQueue

from .scoreboard import Mismatch

__all__ = ["SessionResult", "TrainingSession"]


@dataclass
class SessionResult:
    samples: int = 0
    updates: int = 0
    mismatches: int = 0
    first: Mismatch | None = None
    outputs: list = field(default_factory=list)  # RTL output codes per training sample
    golden_outputs: list = field(default_factory=list)  # golden fixed output codes per training sample

    def add(self, mm: Mismatch, count: int = 1):
        self.mismatches += count
        if self.first is None:
            self.first = mm


def _mismatch(sample: int, what: str, expected, actual, layer=None, position=None) -> Mismatch:
    return Mismatch(sample, None, expected, actual, what=what, layer=layer, position=position)


class TrainingSession:
    """Drives the trainer through ``host`` and compares what it did with what golden says
    (given by the caller, or by ``golden`` stepped alongside); keeps the first mismatch."""

    def __init__(self, cfg: Config, host, golden: FixedMLP | None = None, check_params: str = "every"):
        if check_params not in ("every", "signature", "end"):
            raise ValueError(f"check_params must be 'every', 'signature' or 'end', got {check_params!r}")
        self.cfg = cfg
        self.host = host
        self.golden = golden
        self.check_params = check_params
        self.result = SessionResult()
        self._pending_signature = None  # (sample, expected) read once the next sample is under way
        # the samples schedule (hardware.parallelism = "samples") trains P samples at once:
        # a group's samples are sent before its outputs are read
        self._group_size = cfg.lanes if cfg.parallelism == "samples" else 1
        self._group = []  # (expected_output, update) of the group being sent
        self._unread = []  # the last group sent whole, its outputs not read yet
        self._pending = []  # (x, t, expected_output, update) not sent yet (train_many, groups queued)

    def check_output(self, what: str, out, expected) -> None:
        r = self.result
        diff = np.flatnonzero(np.asarray(out) != np.asarray(expected))
        if diff.size:
            i = int(diff[0])
            r.add(_mismatch(r.samples, what, int(expected[i]), int(out[i]), self.cfg.n_layers - 1, (i,)), diff.size)

    async def compare_params(self, sample: int, expected: list) -> int:
        actual = await self.host.read_params()
        bad = 0
        for l, (e, a) in enumerate(zip(expected, actual)):
            diff = np.argwhere(e != a)
            if diff.size:
                j, k = (int(v) for v in diff[0])
                self.result.add(_mismatch(sample, "param", int(e[j, k]), int(a[j, k]), l, (j, k)), len(diff))
                bad += len(diff)
        return bad

    async def compare_state(self, sample: int, expected: dict) -> int:
        """The optimizer state (momentum, Adam) read back against golden's, entry by entry."""
        if self.cfg.optimizer == "sgd":
            return 0
        actual = await self.host.read_state()
        bad = 0
        for name in ("s1", "s2"):
            for l, (e, a) in enumerate(zip(expected[name], actual[name])):
                diff = np.argwhere(np.asarray(e) != a)
                if diff.size:
                    j, k = (int(v) for v in diff[0])
                    self.result.add(_mismatch(sample, f"state {name}", int(e[j, k]), int(a[j, k]), l, (j, k)),
                                    len(diff))
                    bad += len(diff)
        for name in ("p1", "p2"):
            if actual[name] != expected[name]:
                self.result.add(_mismatch(sample, f"state {name}", expected[name], actual[name]))
                bad += 1
        return bad

    async def check_update(self, signature: int, params=None, state_sig: int = 0, state=None) -> None:
        """After an update: all parameters and optimizer state (check_params='every', needs
        ``params`` and ``state``) or the two signatures.

        The signatures are read once the next sample has produced its outputs (its own update
        has not started then, and this one has finished), so the host never waits for idle.
        """
        r = self.result
        r.updates += 1
        if self.check_params == "every" and params is not None:
            await self.compare_params(r.samples, params)
            if state is not None:
                await self.compare_state(r.samples, state)
        elif self.check_params in ("every", "signature"):
            self._pending_signature = (r.samples, signature, state_sig)

    async def _check_pending_signature(self, wait_idle: bool = False) -> None:
        if self._pending_signature is None:
            return
        if wait_idle:
            await self.host.wait_idle()
        got_state = await self.host.state_signature() if self.cfg.optimizer != "sgd" else 0
        self._resolve_pending_signature(await self.host.signature(), got_state)

    def _resolve_pending_signature(self, got: int, got_state: int | None) -> None:
        """Compare the pending update's signatures with ``got``, ``got_state`` (read once the
        next result arrived; ``got_state`` None: not read)."""
        if self._pending_signature is None:
            return
        sample, want, want_state = self._pending_signature
        self._pending_signature = None
        if got != want:
            self.result.add(_mismatch(sample, "signature", want, got))
        if got_state is not None and got_state != want_state:
            self.result.add(_mismatch(sample, "state signature", want_state, got_state))

    async def train(self, x, t, expected_output, update=None) -> np.ndarray | None:
        """One training sample; ``update`` = (signature, params or None) if it completes a
        batch. The samples schedule: the sample joins the group being sent, whose outputs
        are read and checked when it is complete (P samples, or the batch's last; then
        the last sample's output is returned, else None)."""
        await self.host.send_train(x, t)
        if self._group_size > 1:
            self._group.append((expected_output, update))
            if len(self._group) < self._group_size and update is None:
                return None
            # the group is sent; the one before it (if unread) is read now, so the trainer
            # loads a group while it trains the previous one. A full readback after an
            # update needs the trainer idle: then each group is read at once.
            prev, self._unread = self._unread, self._group
            self._group = []
            out = await self._read_group(prev) if prev else None
            # a transport that queues groups but cannot take a whole one (a group over its
            # burst memory) reads the signatures off the live wire: read each group before
            # the next is sent, or the next update may have written by the time its first
            # output is read
            too_big = isinstance(self.host.t, SampleQueue) and self._group_queue() is None
            if self.check_params == "every" or too_big:
                out = await self._read_group(self._unread)
                self._unread = []
            return out
        out = await self.host.recv_output()
        await self._check_pending_signature()
        await self._record(out, expected_output, update)
        return out

    async def _read_group(self, group) -> np.ndarray | None:
        """The outputs of a group sent (the samples schedule), checked in order."""
        out = None
        for i, (expected_output, update) in enumerate(group):
            out = await self.host.recv_output()
            if i == 0:
                await self._check_pending_signature()
            await self._record(out, expected_output, update)
        return out

    async def flush(self) -> None:
        """Train the partial group being sent now (the samples schedule; the end of an
        epoch): the trainer's FLUSH, then its outputs. Nothing to do otherwise."""
        t = self._group_queue()
        if t is not None and (self._pending or self._unread):
            # groups queued (train_many): the open group goes in one burst (the results of
            # every group before the unread one are in), then as below
            group, self._pending = self._pending, []
            n_out = self.cfg.layers[-1]
            if group:
                await t.send_groups([self._sample_codes(group)], n_out, 0)
            if self._unread:
                unread, self._unread = self._unread, []
                await self._read_groups(t, [unread])
            if group:
                await self.host.flush_group(infer=False)
                await self._read_groups(t, [[(e, u) for _, _, e, u in group]])
            return
        if self._unread:
            group, self._unread = self._unread, []
            await self._read_group(group)
        if self._group:
            group, self._group = self._group, []
            await self.host.flush_group(infer=False)
            await self._read_group(group)

    async def _record(self, out, expected_output, update) -> None:
        """Keep and check one trained sample's output, then its update (if it made one)."""
        self.result.outputs.append(out)
        self.result.golden_outputs.append(np.asarray(expected_output))
        self.check_output("output", out, expected_output)
        if update is not None:
            await self.check_update(*update)
        self.result.samples += 1

    # ---- several samples per transport wake-up ------------------------------------------
    def _queue(self, infer: bool) -> SampleQueue | None:
        """The transport, if it queues several samples per wake-up and may here (when
        training, updates are checked by signature: a full readback after every update
        needs the trainer idle)."""
        t = self.host.t
        if not isinstance(t, SampleQueue) or (not infer and self.check_params == "every") or self._group_size > 1:
            return None
        return t

    def _group_queue(self, infer: bool = False) -> SampleQueue | None:
        """The samples schedule: the transport, if it queues groups of samples per wake-up
        (``send_groups``) and may here (when training, updates checked by signature: a
        full readback after every update needs the trainer idle) and a group fits in one
        burst."""
        t = self.host.t
        if self._group_size <= 1 or not infer and self.check_params == "every" or not isinstance(t, SampleQueue):
            return None
        n_in, n_out = self.cfg.layers[0], self.cfg.layers[-1]
        return t if t.queue_capacity(n_in + (0 if infer else n_out), n_out) >= self._group_size else None

    def batch_capacity(self, infer: bool = False) -> int:
        """Samples per ``train_many``/``infer_many`` call: 1 unless the transport queues
        several (``sim.host.transport.SampleQueue``)."""
        if self._group_size > 1:  # the samples schedule: a group per call, or as many as a queue takes
            t = self._group_queue(infer)
            if t is None:
                return self._group_size
            n_in, n_out = self.cfg.layers[0], self.cfg.layers[-1]
            return self._group_size * (t.queue_capacity(n_in + (0 if infer else n_out), n_out) // self._group_size)
        t = self._queue(infer)
        if t is None:
            return 1
        n_in, n_out = self.cfg.layers[0], self.cfg.layers[-1]
        return t.queue_capacity(n_in + (0 if infer else n_out), n_out)

    async def _exchange(self, codes: list) -> list:
        """Send samples (lists of codes) in one queue; their outputs and signatures."""
        host, n_out, aw = self.host, self.cfg.layers[-1], self.cfg.act.width
        await host.t.send_samples(codes, n_out)
        res = await host.t.recv_samples(len(codes), n_out)
        # (a transport that taps the state signature too gives it third)
        return [(np.array([_signed(v, aw) for v in r[0]], dtype=np.int64), r[1], r[2] if len(r) > 2 else None)
                for r in res]

    def _sample_codes(self, items, infer: bool = False) -> np.ndarray:
        """The beats of samples (x, t, ...), one row each: input codes, then (training)
        target codes, checked against the activation format as ``TrainerHost`` checks them."""
        c = self.cfg
        x = np.asarray([it[0] for it in items], dtype=np.int64).reshape(len(items), -1)
        t = (np.zeros((len(items), 0), dtype=np.int64) if infer
             else np.asarray([it[1] for it in items], dtype=np.int64).reshape(len(items), -1))
        rows = np.concatenate([x, t], axis=1)
        if (x.shape[1] != c.layers[0] or t.shape[1] != (0 if infer else c.layers[-1])
                or rows.size and (rows.min() < c.act.min_code or rows.max() > c.act.max_code)):
            for it in items:  # the host's own checks name the culprit
                self.host._codes(it[0], c.layers[0], "input", c.act)
                if not infer:
                    self.host._codes(it[1], c.layers[-1], "target", c.act)
        return rows

    async def _recv_outputs(self, t, count: int) -> tuple:
        """The next ``count`` results in one wake-up: (signed output codes, one row each;
        the transport's (codes, signature, state signature) per result)."""
        n_out, aw = self.cfg.layers[-1], self.cfg.act.width
        if not count:
            return np.zeros((0, n_out), dtype=np.int64), []
        res = await t.recv_samples(count, n_out)
        codes = np.asarray([r[0] for r in res], dtype=np.int64).reshape(count, n_out) & ((1 << aw) - 1)
        return np.where(codes >> (aw - 1), codes - (1 << aw), codes), res  # (driver._signed)

    async def _read_groups(self, t, groups) -> list:
        """The outputs of ``groups`` sent (lists of (expected_output, update)), in one
        wake-up, checked in order; each group's first result brings the parameter and
        state signatures the wrapper saw beside its first beat, which check the update
        before it (the samples schedule: that beat is valid before the group's own update
        starts, after the previous one's last write)."""
        codes, res = await self._recv_outputs(t, sum(len(g) for g in groups))
        outs = []
        k = 0
        for group in groups:
            for i, (expected_output, update) in enumerate(group):
                r, out = res[k], codes[k]
                k += 1
                if i == 0:
                    self._resolve_pending_signature(r[1], r[2] if len(r) > 2 else None)
                await self._record(out, expected_output, update)
                outs.append(out)
        return outs

    async def _train_groups(self, t, items) -> list:
        """The samples schedule with a transport that queues groups: ``items`` join the
        samples not sent yet; every complete group (P samples, or a batch's last) goes out
        in bursts of as many groups as the transport takes, each group held by the wrapper
        until the group before the previous one has its outputs captured (as ``train``
        does: send a group, then read the one before it). After each burst the outputs
        of the unread group and of every group of the burst but its last are read and
        checked in order. A group still open waits for more samples or ``flush``."""
        P, n_in, n_out = self._group_size, self.cfg.layers[0], self.cfg.layers[-1]
        self._pending += items
        closed, group = [], []
        for it in self._pending:
            group.append(it)
            if len(group) == P or it[3] is not None:
                closed.append(group)
                group = []
        self._pending = group
        send_cap = t.queue_capacity(n_in + n_out, n_out)  # samples a burst takes
        recv_cap = t.queue_capacity(1, n_out)  # results a capture takes
        outs = []
        while closed:
            burst = [closed.pop(0)]
            while closed:
                size = sum(len(g) for g in burst) + len(closed[0])
                # (the wrapper holds group k until the results of groups 0 .. k - 2 are in,
                # its goal growing by a fixed step: all but the last two the same size)
                if (size > send_cap or len(self._unread) + size - len(closed[0]) > recv_cap
                        or len({len(g) for g in burst[:-1]}) > 1):
                    break
                burst.append(closed.pop(0))
            await t.send_groups([self._sample_codes(g) for g in burst], n_out, len(self._unread) * n_out)
            reading = ([self._unread] if self._unread else []) + [[(e, u) for _, _, e, u in g] for g in burst[:-1]]
            self._unread = [(e, u) for _, _, e, u in burst[-1]]
            outs += await self._read_groups(t, reading)
        return outs

    async def train_many(self, items) -> list:
        """``train`` for each (x, t, expected_output, update) of ``items``, queued together
        when the transport can (``batch_capacity``); checks and results as ``train``."""
        items = list(items)
        t = self._group_queue()
        if t is not None and not self._group:
            return await self._train_groups(t, items)
        if len(items) == 1 or self._queue(infer=False) is None:
            return [await self.train(*it) for it in items]
        c, host = self.cfg, self.host
        codes = [host._codes(x, c.layers[0], "input", c.act) + host._codes(t, c.layers[-1], "target", c.act)
                 for x, t, _, _ in items]
        outs = []
        for (_, _, expected_output, update), (out, sig, ssig) in zip(items, await self._exchange(codes)):
            self._resolve_pending_signature(sig, ssig)  # the previous update, read as this result arrived
            await self._record(out, expected_output, update)
            outs.append(out)
        return outs

    async def infer_many(self, items) -> list:
        """``infer`` for each (x, expected_output) of ``items``, queued together when possible
        (the samples schedule: in groups of P, the last one flushed)."""
        items = list(items)
        t = self._group_queue(infer=True)
        if t is not None:
            return await self._infer_groups(t, items)
        if self._group_size > 1:
            await self.flush()
            outs = []
            for start in range(0, len(items), self._group_size):
                group = items[start:start + self._group_size]
                for x, _ in group:
                    await self.host.send_infer(x)
                if len(group) < self._group_size:
                    await self.host.flush_group(infer=True)
                for i, (x, want) in enumerate(group):
                    out = await self.host.recv_output()
                    if i == 0:
                        await self._check_pending_signature()
                    self.check_output("infer output", out, self._golden().forward(x).output if want is None else want)
                    outs.append(out)
            return outs
        if len(items) == 1 or self._queue(infer=True) is None:
            return [await self.infer(x, want) for x, want in items]
        c, host = self.cfg, self.host
        codes = [host._codes(x, c.layers[0], "input", c.act) for x, _ in items]
        outs = []
        for (_, want), (out, sig, ssig) in zip(items, await self._exchange(codes)):
            self._resolve_pending_signature(sig, ssig)
            self.check_output("infer output", out, want)
            outs.append(out)
        return outs

    async def _infer_groups(self, t, items) -> list:
        """``infer_many`` on the samples schedule with a transport that queues groups: the
        whole groups in one burst, each held by the wrapper until the previous one's
        outputs are captured (a host sending a group, then reading its outputs), read in
        one wake-up; a last partial group in its own burst, FLUSHed. Every output is
        checked; the first result brings the signatures that check a pending update."""
        await self.flush()
        P, n_out = self._group_size, self.cfg.layers[-1]
        whole, cap = len(items) // P * P, self.batch_capacity(infer=True)
        parts = [items[i:min(i + cap, whole)] for i in range(0, whole, cap)] + [items[whole:]]
        outs = []
        for part in parts:
            if not part:
                continue
            groups = [self._sample_codes(part[i:i + P], infer=True) for i in range(0, len(part), P)]
            await t.send_groups(groups, n_out, len(groups[0]) * n_out)
            if len(part) < P:
                await self.host.flush_group(infer=True)
            codes, res = await self._recv_outputs(t, len(part))
            for k, (x, want) in enumerate(part):
                if k % P == 0:
                    self._resolve_pending_signature(res[k][1], res[k][2] if len(res[k]) > 2 else None)
                self.check_output("infer output", codes[k], self._golden().forward(x).output if want is None else want)
                outs.append(codes[k])
        return outs

    async def infer(self, x, expected_output=None) -> np.ndarray:
        """One inference; ``expected_output`` defaults to the golden model's forward pass
        (the samples schedule: a group of one, flushed)."""
        if self._group_size > 1:
            return (await self.infer_many([(x, expected_output)]))[0]
        if expected_output is None:
            expected_output = self._golden().forward(x).output
        await self.host.send_infer(x)
        out = await self.host.recv_output()
        await self._check_pending_signature()
        self.check_output("infer output", out, expected_output)
        return out

    async def finish(self, final_params=None, final_state=None) -> SessionResult:
        """Final full parameter (and optimizer state) readback, whatever the per-update check
        was; ``final_params``/``final_state`` default to the golden model's."""
        if final_params is None:
            final_params = self._golden().params
        if final_state is None and self.golden is not None:
            final_state = self.golden.opt.copy_state()
        await self.flush()
        await self._check_pending_signature(wait_idle=True)
        await self.compare_params(self.result.samples, final_params)
        if final_state is not None:
            await self.compare_state(self.result.samples, final_state)
        status = await self.host.status()
        for flag in ("length_error", "bus_error"):
            if status[flag]:  # the run itself never sends bad samples or bad accesses
                self.result.add(_mismatch(self.result.samples, f"{flag} flag set", 0, 1))
        return self.result

    # ---- expectations from the golden model stepped alongside ---------------------------
    def _golden(self) -> FixedMLP:
        if self.golden is None:
            raise ValueError("this session has no golden model: pass the expected values")
        return self.golden

    async def train_sample(self, x, t) -> np.ndarray:
        """One training sample, its expectations from the golden model's own step."""
        trace = self._golden().train_sample(x, t)
        update = None
        if trace.params_after is not None:
            update = (params_signature(self.cfg, trace.params_after), trace.params_after,
                      state_signature(self.cfg, trace.state_after), trace.state_after)
        return await self.train(x, t, trace.output, update)
