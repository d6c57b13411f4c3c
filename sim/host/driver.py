"""Host driver of the trainer: one class, any transport.

``TrainerHost`` speaks in registers, parameters and samples; a transport moves words
(simulated bus in cocotb or amaranth.sim, or a serial link on a board). The same driver
code therefore runs against the simulation and the hardware. What a transport provides
is the protocol ``sim.host.transport.Transport``.
"""
from __future__ import annotations

import numpy as np

from golden.config import Config
from hdl.csr import CTRL_FLUSH, CTRL_INFER, ID_VALUE, REG, STATUS_BITS, param_address
from hdl.layout import param_layout

from .transport import TrainerError, Transport

__all__ = ["TrainerHost", "TrainerError"]


def _signed(v: int, width: int) -> int:
    v &= (1 << width) - 1
    return v - (1 << width) if v >> (width - 1) else v


class TrainerHost:
    def __init__(self, cfg: Config, transport: Transport):
        self.cfg = cfg
        self.layout = param_layout(cfg)  # (the samples schedule keeps its parameters in one bank)
        self.t = transport

    # ---- registers -------------------------------------------------------------------
    async def read(self, name: str) -> int:
        return await self.t.csr_read(REG[name])

    async def write(self, name: str, value: int) -> None:
        await self.t.csr_write(REG[name], value)

    async def check_id(self) -> None:
        got = await self.read("ID")
        if got != ID_VALUE:
            raise TrainerError(f"ID register reads {got:#010x}, expected {ID_VALUE:#010x}: not a trainer")

    async def set_mode(self, infer: bool) -> None:
        want = CTRL_INFER if infer else 0
        await self.write("CTRL", want)
        got = await self.read("CTRL")
        if got != want:
            raise TrainerError(f"CTRL reads {got:#x} after writing {want:#x}: the mode did not change")

    async def flush_group(self, infer: bool) -> None:
        """The samples schedule: start the partly filled group now (CTRL's FLUSH bit, the
        mode written again as it is), once every beat sent has reached the trainer (a
        FLUSH before them would find no group); nothing happens when no group is being
        filled."""
        await self.flush()
        await self.write("CTRL", (CTRL_INFER if infer else 0) | CTRL_FLUSH)

    async def status(self) -> dict:
        v = await self.read("STATUS")
        return {name: bool(v & bit) for name, bit in STATUS_BITS.items()}

    async def wait_idle(self) -> None:
        """Wait until the trainer has finished its sample (parameters are stable): on the
        transport's busy wire if it has one, else by polling STATUS."""
        await self.t.wait_idle()

    async def signature(self) -> int:
        """The SIGNATURE register; from the transport's wire when it has one (no bus access)."""
        return await self.t.peek_signature()

    async def clear_errors(self) -> None:
        await self.write("STATUS", STATUS_BITS["length_error"] | STATUS_BITS["bus_error"])

    async def cycles(self) -> int:
        lo = await self.read("CYCLES_LO")
        hi = await self.read("CYCLES_HI")
        return hi << 32 | lo

    # ---- parameters ------------------------------------------------------------------
    async def read_param(self, l: int, j: int, k: int) -> int:
        """One parameter (waits until the trainer is idle: it refuses access while busy)."""
        await self.wait_idle()
        return await self._read_param(l, j, k)

    async def _read_param(self, l, j, k) -> int:
        bank, addr = self.layout.param_location(l, j, k)
        return _signed(await self.t.csr_read(param_address(bank, addr)), self.cfg.weight.width)

    async def write_param(self, l: int, j: int, k: int, code: int) -> None:
        """Set one parameter (waits until the trainer is idle)."""
        await self.wait_idle()
        await self._write_param(l, j, k, code)

    async def _write_param(self, l, j, k, code) -> None:
        fmt = self.cfg.weight
        if not fmt.min_code <= int(code) <= fmt.max_code:
            raise ValueError(f"parameter code {code} of layer {l} [{j}, {k}] outside {fmt} "
                             f"[{fmt.min_code}, {fmt.max_code}]")
        bank, addr = self.layout.param_location(l, j, k)
        await self.t.csr_write(param_address(bank, addr), int(code) & 0xFFFFFFFF)

    async def read_params(self) -> list:
        """All parameters, one (n_out, n_in + 1) array per layer (in one burst when the
        transport reads several registers at once)."""
        await self.wait_idle()
        cfg, where = self.cfg, []
        for l in range(cfg.n_layers):
            for j in range(cfg.layers[l + 1]):
                for k in range(cfg.layers[l] + 1):
                    where.append(param_address(*self.layout.param_location(l, j, k)))
        words = iter(await self.t.csr_read_many(where))
        out = []
        for l in range(cfg.n_layers):
            w = np.zeros((cfg.layers[l + 1], cfg.layers[l] + 1), dtype=np.int64)
            for j in range(w.shape[0]):
                for k in range(w.shape[1]):
                    w[j, k] = _signed(next(words), cfg.weight.width)
            out.append(w)
        return out

    # ---- optimizer state (momentum, Adam; docs/registers.md, regions 1-3) -------------
    def _state_words(self):
        """(region, s, bit offset, width) of every bus word of a state entry."""
        from hdl.trainer.state import state_regions
        return [(r, name, off, w) for r, (name, off, w) in sorted(state_regions(self.cfg).items())]

    def _param_addresses(self, region: int) -> list:
        cfg, out = self.cfg, []
        for l in range(cfg.n_layers):
            for j in range(cfg.layers[l + 1]):
                for k in range(cfg.layers[l] + 1):
                    out.append(param_address(*self.layout.param_location(l, j, k), region=region))
        return out

    async def read_state(self) -> dict:
        """The optimizer state as golden's ``OptimizerState.copy_state()`` holds it: ``s1``,
        ``s2`` (one array per layer, parameter-shaped; zeros where unused) and Adam's powers
        ``p1``, ``p2`` (0 otherwise)."""
        await self.wait_idle()
        cfg = self.cfg
        shapes = [(cfg.layers[l + 1], cfg.layers[l] + 1) for l in range(cfg.n_layers)]
        state = {"s1": [np.zeros(s, np.int64) for s in shapes], "s2": [np.zeros(s, np.int64) for s in shapes],
                 "p1": 0, "p2": 0}
        fmts = {"s1": cfg.velocity if cfg.optimizer == "momentum" else cfg.adam_m, "s2": cfg.adam_v}
        for region, name, off, width in self._state_words():
            words = iter(await self.t.csr_read_many(self._param_addresses(region)))
            for a in state[name]:
                for j in range(a.shape[0]):
                    for k in range(a.shape[1]):
                        a[j, k] |= (next(words) & ((1 << width) - 1)) << off
        for name, arrays in state.items():
            if name in fmts and self._state_words():
                w = fmts[name].width
                for a in arrays:
                    a[:] = np.where(a >> (w - 1) & 1, a - (1 << w), a)
        if cfg.optimizer == "adam":
            state["p1"], state["p2"] = await self.read("BETA1_POW"), await self.read("BETA2_POW")
        return state

    async def write_state(self, state: dict) -> None:
        """Restore a state read by :meth:`read_state` (or golden's ``copy_state()``)."""
        await self.wait_idle()
        for region, name, off, width in self._state_words():
            codes = np.concatenate([np.asarray(a, np.int64).reshape(-1) for a in state[name]])
            for addr, v in zip(self._param_addresses(region), codes):
                await self.t.csr_write(addr, (int(v) >> off) & ((1 << width) - 1) & 0xFFFFFFFF)
        if self.cfg.optimizer == "adam":
            await self.write("BETA1_POW", int(state["p1"]))
            await self.write("BETA2_POW", int(state["p2"]))

    async def state_signature(self) -> int:
        """The STATE_SIGNATURE register; from the transport's wire when it has one."""
        peek = getattr(self.t, "peek_state_signature", None)
        return await peek() if peek is not None else await self.read("STATE_SIGNATURE")

    async def write_params(self, params) -> None:
        await self.wait_idle()
        for l, w in enumerate(params):
            for j in range(w.shape[0]):
                for k in range(w.shape[1]):
                    await self._write_param(l, j, k, int(w[j, k]))

    # ---- samples ---------------------------------------------------------------------
    def _codes(self, values, n, what, fmt):
        v = np.asarray(values, dtype=np.int64).reshape(-1)
        if v.size != n:
            raise ValueError(f"{what} has {v.size} codes, the network expects {n}")
        if v.min() < fmt.min_code or v.max() > fmt.max_code:
            raise ValueError(f"{what} holds codes outside {fmt} [{fmt.min_code}, {fmt.max_code}]")
        return [int(c) for c in v]

    async def send_train(self, x, t) -> None:
        """Queue one training sample (input codes, then target codes)."""
        c = self.cfg
        await self.t.send_beats(self._codes(x, c.layers[0], "input", c.act) +
                                self._codes(t, c.layers[-1], "target", c.act))

    async def send_infer(self, x) -> None:
        await self.t.send_beats(self._codes(x, self.cfg.layers[0], "input", self.cfg.act))

    async def flush(self) -> None:
        """Return once every beat sent so far has been accepted by the trainer."""
        await self.t.wait_sent()

    async def recv_output(self) -> np.ndarray:
        codes = await self.t.recv_beats(self.cfg.layers[-1])
        return np.array([_signed(v, self.cfg.act.width) for v in codes], dtype=np.int64)
