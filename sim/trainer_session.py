"""Train the hardware through a host driver and check every bit against the golden model.

Transport-agnostic (amaranth.sim, cocotb, or a board): the caller brings a ``TrainerHost``.
For every sample the output codes are compared with the golden forward pass; after every
update the parameter signature register is compared with the golden signature, and
(``check_params="every"``) all parameters are read back and compared. The first mismatch
is kept with its sample, layer, index, expected and actual codes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from golden.config import Config
from golden.fixed_model import FixedMLP
from golden.signature import params_signature

__all__ = ["Mismatch", "SessionResult", "TrainingSession"]


@dataclass
class Mismatch:
    sample: int
    what: str  # "output", "signature", "param", "dropped"
    layer: int | None
    index: tuple | None
    expected: int
    actual: int

    def __str__(self):
        where = f" layer {self.layer} index {self.index}" if self.layer is not None else ""
        return (f"first mismatch at sample {self.sample}: {self.what}{where}: "
                f"expected {self.expected}, actual {self.actual}")


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


class TrainingSession:
    def __init__(self, cfg: Config, host, golden: FixedMLP, check_params: str = "every"):
        if check_params not in ("every", "signature", "end"):
            raise ValueError(f"check_params must be 'every', 'signature' or 'end', got {check_params!r}")
        self.cfg = cfg
        self.host = host
        self.golden = golden
        self.check_params = check_params
        self.result = SessionResult()

    async def compare_params(self, sample: int, expected: list) -> int:
        actual = await self.host.read_params()
        bad = 0
        for l, (e, a) in enumerate(zip(expected, actual)):
            diff = np.argwhere(e != a)
            if diff.size:
                j, k = (int(v) for v in diff[0])
                self.result.add(Mismatch(sample, "param", l, (j, k), int(e[j, k]), int(a[j, k])), len(diff))
                bad += len(diff)
        return bad

    async def train_sample(self, x, t) -> np.ndarray:
        r = self.result
        n = r.samples
        await self.host.send_train(x, t)
        out = await self.host.recv_output()
        trace = self.golden.train_sample(x, t)
        r.outputs.append(out)
        r.golden_outputs.append(trace.output)
        diff = np.flatnonzero(out != trace.output)
        if diff.size:
            i = int(diff[0])
            r.add(Mismatch(n, "output", self.cfg.n_layers - 1, (i,), int(trace.output[i]), int(out[i])), diff.size)
        if trace.params_after is not None:
            r.updates += 1
            if self.check_params == "every":
                await self.compare_params(n, trace.params_after)
            elif self.check_params == "signature":
                want = params_signature(self.cfg, trace.params_after)
                await self.host.wait_idle()
                got = await self.host.read("SIGNATURE")
                if got != want:
                    r.add(Mismatch(n, "signature", None, None, want, got))
        r.samples += 1
        return out

    async def infer(self, x) -> np.ndarray:
        await self.host.send_infer(x)
        out = await self.host.recv_output()
        want = self.golden.forward(x).output
        diff = np.flatnonzero(out != want)
        if diff.size:
            i = int(diff[0])
            self.result.add(Mismatch(self.result.samples, "infer output", self.cfg.n_layers - 1, (i,),
                                     int(want[i]), int(out[i])), diff.size)
        return out

    async def finish(self) -> SessionResult:
        """Final full parameter readback (whatever the per-update check was)."""
        await self.compare_params(self.result.samples, self.golden.params)
        return self.result
