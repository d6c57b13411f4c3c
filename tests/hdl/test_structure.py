"""The hardware's structure: every component is used, every block stays readable.

Issue 12's rules, checked on the code itself: each ``wiring.Component`` defined in hdl/ is
part of an elaborated design (the trainer, or the board top behind the UART), no
``elaborate()`` in hdl/ is longer than 200 lines, and the trainer's top, which only
instantiates and connects, at most 150.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

from amaranth.lib import wiring

import hdl
from golden.config import load_config
from hdl.axi import AxiTrainer
from hdl.trainer import Trainer, build_trainer
from hdl.uart_bridge import UartTrainer

HDL = Path(hdl.__file__).parent


def _component_classes():
    """Every wiring.Component subclass defined in a module of the hdl package."""
    found = {}
    for info in pkgutil.walk_packages([str(HDL)], prefix="hdl."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, wiring.Component) and obj.__module__ == info.name
                    and not name.startswith("_")):
                found[f"{info.name}.{name}"] = obj
    return found


def _used_classes(design):
    """Classes of every elaboratable in the design's hierarchy (the top included)."""
    used, todo = set(), [design]
    while todo:
        elab = todo.pop()
        used.add(type(elab))
        module = elab.elaborate(None)  # a Module: its submodules are elaboratables too
        entries = list(getattr(module, "_anon_submodules", [])) + list(getattr(module, "_named_submodules", {}).values())
        todo.extend(sub for sub, _src_loc in entries if hasattr(sub, "elaborate"))
    return used


def test_every_component_in_hdl_is_part_of_a_design():
    xor = load_config("examples/xor.toml")
    softmax = xor.with_(layers=(2, 5, 3), activations=("tanh", "softmax"), loss="cross_entropy", lanes=2,
                        batch_size=2)
    every_kind = xor.with_(layers=(2, 5, 4, 3, 1), lanes=2, activations=("tanh", "relu", "leaky_relu", "linear"))
    adam = xor.with_(optimizer="adam", learning_rate=0.05)
    samples = softmax.with_(parallelism="samples")  # (the samples schedule, hdl/trainer/samples/)
    used = set()
    for design in (Trainer(softmax), Trainer(every_kind), Trainer(adam), UartTrainer(xor, clk_freq=12_000_000),
                   build_trainer(samples), AxiTrainer(xor)):
        used |= _used_classes(design)
    unused = sorted(name for name, cls in _component_classes().items() if cls not in used)
    assert not unused, f"components no design instantiates: {', '.join(unused)}"


def _elaborate_lengths():
    for path in sorted(HDL.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name == "elaborate":
                yield path.relative_to(HDL.parent), node.lineno, node.end_lineno - node.lineno + 1


def test_no_elaborate_is_longer_than_a_few_screens():
    lengths = list(_elaborate_lengths())
    assert lengths, "no elaborate() found: the walk over hdl/ is broken"
    too_long = [f"{path}:{line} ({n} lines)" for path, line, n in lengths if n > 200]
    assert not too_long, f"elaborate() longer than 200 lines: {', '.join(too_long)}"
    top = [n for path, _, n in lengths if path.as_posix() == "hdl/trainer/top.py"]
    assert top and top[0] <= 150, f"the trainer top's elaborate() has {top} lines (at most 150: it only connects)"
