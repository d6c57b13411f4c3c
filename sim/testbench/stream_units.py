"""Stream harnesses for the unit tests: the trainer's elementwise and output-delta
arithmetic behind a stream with one registered stage, so that a testbench can push
random values with random stalls through it.

They are test scaffolding, not hardware the trainer instantiates: each wraps exactly the
block or function the trainer uses (``hdl.activation.ActivationFunction`` /
``ActivationDerivative``, ``hdl.output.mse_delta`` / ``ce_delta``), so what they check is
what the trainer computes.
"""
from __future__ import annotations

from amaranth.hdl import Module, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.config import Config
from hdl.activation import ActivationDerivative, ActivationFunction, ELEMENTWISE, _check_kind
from hdl.output import ce_delta, mse_delta

__all__ = ["ActivationUnit", "MseGradUnit", "CrossEntropyGradUnit", "register_stage"]


def register_stage(m: Module, i, o, fields: dict):
    """One registered pipeline stage between stream ``i`` and stream ``o`` that honours
    backpressure at full throughput: the output register loads when it is empty or being
    emptied this cycle (``o.ready | ~o.valid``), which is also ``i.ready``. ``fields`` maps
    output payload field names (or ``None`` for a plain payload) to comb values of ``i``."""
    take = ~o.valid | o.ready
    m.d.comb += i.ready.eq(take)
    with m.If(take):
        m.d.sync += o.valid.eq(i.valid)
        for name, value in fields.items():
            target = o.payload if name is None else getattr(o.payload, name)
            m.d.sync += target.eq(value)


class ActivationUnit(wiring.Component):
    """Stream wrapper: z in, (a = act(z), d = act'(a)) out, one registered stage (latency 1,
    one beat per cycle), honours backpressure.

    Parameters
    ----------
    cfg : Config
    kind : str
        One of :data:`ELEMENTWISE`.

    Members
    -------
    i : In(stream.Signature(signed(act.width)))
    o : Out(stream.Signature(StructLayout({"a", "d"})))
    """

    def __init__(self, cfg: Config, kind: str):
        _check_kind(kind)
        self._cfg, self._kind = cfg, kind
        shape = signed(cfg.act.width)
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(data.StructLayout({"a": shape, "d": shape}))),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.f = f = ActivationFunction(self._cfg, self._kind)
        m.submodules.df = df = ActivationDerivative(self._cfg, self._kind)
        m.d.comb += [f.z.eq(self.i.payload), df.a.eq(f.a)]
        register_stage(m, self.i, self.o, {"a": f.a, "d": df.d})
        return m


class MseGradUnit(wiring.Component):
    """Stream unit for the MSE output delta, one registered stage, honours backpressure.

    The activation derivative is computed inside from the output activation ``a`` with
    :class:`~hdl.activation.ActivationDerivative` of the last layer's activation kind.

    Parameters
    ----------
    cfg : Config
        A config with ``loss = "mse"``.

    Members
    -------
    i : In(stream.Signature(StructLayout({"a": signed(act.width), "t": signed(act.width)})))
    o : Out(stream.Signature(signed(error.width)))   the delta

    Raises
    ------
    ValueError
        If the config's loss is not ``"mse"``.
    """

    def __init__(self, cfg: Config):
        if cfg.loss != "mse" or cfg.activations[-1] not in ELEMENTWISE:
            raise ValueError(f"MseGradUnit needs loss = 'mse' with an elementwise last activation, got "
                             f"loss = {cfg.loss!r}, activation {cfg.activations[-1]!r}")
        self._cfg = cfg
        aw = signed(cfg.act.width)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"a": aw, "t": aw}))),
            "o": Out(stream.Signature(signed(cfg.error.width))),
        })

    def elaborate(self, platform):
        c = self._cfg
        m = Module()
        m.submodules.deriv = deriv = ActivationDerivative(c, c.activations[-1])
        m.d.comb += deriv.a.eq(self.i.payload.a)
        register_stage(m, self.i, self.o, {None: mse_delta(self.i.payload.a, self.i.payload.t, deriv.d, c)})
        return m


class CrossEntropyGradUnit(wiring.Component):
    """Stream unit for the softmax + cross-entropy output delta ``p - t``, one registered
    stage, honours backpressure.

    Parameters
    ----------
    cfg : Config
        A config with ``loss = "cross_entropy"``.

    Members
    -------
    i : In(stream.Signature(StructLayout({"p": signed(act.width), "t": signed(act.width)})))
    o : Out(stream.Signature(signed(error.width)))   the delta

    Raises
    ------
    ValueError
        If the config's loss is not ``"cross_entropy"``.
    """

    def __init__(self, cfg: Config):
        if cfg.loss != "cross_entropy":
            raise ValueError(f"CrossEntropyGradUnit needs loss = 'cross_entropy', got {cfg.loss!r}")
        self._cfg = cfg
        aw = signed(cfg.act.width)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"p": aw, "t": aw}))),
            "o": Out(stream.Signature(signed(cfg.error.width))),
        })

    def elaborate(self, platform):
        m = Module()
        register_stage(m, self.i, self.o, {None: ce_delta(self.i.payload.p, self.i.payload.t, self._cfg)})
        return m
