"""The trainer as one Verilog file plus a machine-readable manifest (``backprop-fpga verilog``).

``export_verilog(cfg, out_dir)`` writes

``trainer.v`` (``bus="native"``) or ``trainer_axi.v`` (``bus="axi"``)
    ``hdl.trainer.Trainer(cfg, dsp=dsp)`` converted by ``hdl.verilog.to_verilog`` with top
    module :data:`TOP` (``trainer``), or the same trainer inside ``hdl.axi.AxiTrainer``
    (top module ``trainer_axi``: AXI4-Stream ``s_axis_*``/``m_axis_*``, AXI4-Lite
    ``s_axi_*``, ``aclk``, ``aresetn``); submodules are emitted as further modules in the same
    file. ``dsp="generic"`` (default) writes every multiply as ``*`` for any tool and
    device; ``dsp="ecp5"`` instantiates MULT18X18D blocks with their own registers
    (hdl/dsp.py), as the ecp5-85k synthesis report and the ULX3S build do.
``manifest.json``
    what an integrator needs without reading Python: the top module's ports (name,
    direction, width, and the fields of stream payloads with their bit offsets), the
    register map (``hdl.csr.REG``, ``STATUS`` and ``CTRL`` bits), the parameter memory map
    (``PARAM_WINDOW``, bank shift, per layer the address formula and a table of every
    parameter's bank / word / bus address, all from ``hdl.layout.Layout.param_location``),
    the number formats, lanes, the full config (``golden.config.config_to_dict``), tool
    versions, ``git describe`` and the Verilator lint result.

Nothing here re-derives an address: the table is ``Layout.param_location`` evaluated for
every parameter and ``hdl.csr.param_address`` applied to it.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from golden.config import Config, config_to_dict

__all__ = ["TOP", "TOPS", "BUSES", "MANIFEST_VERSION", "export_verilog", "build_manifest", "port_list",
           "param_map", "run_lint", "top_design"]

TOP = "trainer"
BUSES = ("native", "axi")
TOPS = {"native": TOP, "axi": "trainer_axi"}  # top module (and file) name per bus
MANIFEST_VERSION = 1
#: parameter tables larger than this are left out of the manifest (the formula stays)
MAX_TABLE_PARAMS = 1 << 16


def _shape_info(shape) -> dict:
    """Width, signedness and (for struct layouts) fields of an Amaranth shape."""
    from amaranth.hdl import Shape
    from amaranth.lib import data

    if isinstance(shape, data.Layout):
        fields = []
        for name, field in shape:
            s = Shape.cast(field.shape)
            fields.append({"name": name, "offset": field.offset, "width": s.width, "signed": s.signed})
        return {"width": shape.size, "signed": False, "fields": fields}
    s = Shape.cast(shape)
    return {"width": s.width, "signed": s.signed}


def top_design(cfg: Config, bus: str = "native", dsp: str = "generic"):
    """The top component for ``bus``: the config's trainer (``build_trainer``) or ``AxiTrainer``
    (the same trainer inside)."""
    if bus not in BUSES:
        raise ValueError(f"bus must be one of {', '.join(BUSES)}, got {bus!r}")
    if bus == "axi":
        from hdl.axi import AxiTrainer
        return AxiTrainer(cfg, dsp=dsp)
    from hdl.trainer import build_trainer
    return build_trainer(cfg, dsp=dsp)


_CLOCK_PORTS = {"aclk": "clock (all logic on its rising edge)",
                "aresetn": "synchronous reset, active low (AMBA ARESETn)"}


def port_list(design) -> list:
    """The Verilog ports of a ``wiring.Component`` as ``hdl.verilog`` names them: ``clk`` and
    ``rst`` first, then every port member joined with ``__`` (``s_data__payload``); a
    component with its own names (``verilog_ports``: the AXI top) has those, joined with
    ``_`` (``s_axi_awaddr``), and its own clock and reset."""
    from amaranth.lib import wiring

    own = hasattr(design, "verilog_ports")
    ports = [] if own else [{"name": "clk", "direction": "input", "width": 1, "signed": False,
                             "meaning": "clock (all logic on its rising edge)"},
                            {"name": "rst", "direction": "input", "width": 1, "signed": False,
                             "meaning": "synchronous reset, active high"}]
    for path, member in design.signature.members.flatten():
        if not member.is_port:
            continue
        name = ("_" if own else "__").join(str(p) for p in path)
        entry = {"name": name,
                 "direction": "input" if member.flow == wiring.In else "output"}
        entry.update(_shape_info(member.shape))
        if len(path) > 1:
            entry["interface"] = str(path[0])
        if name in _CLOCK_PORTS and own:
            entry["meaning"] = _CLOCK_PORTS[name]
        ports.append(entry)
    return ports


def param_map(cfg: Config, *, table: bool | None = None) -> dict:
    """Where each parameter lives on the bus, from ``hdl.layout.Layout`` and ``hdl.csr``.

    ``table`` (default: when the network has at most :data:`MAX_TABLE_PARAMS` parameters)
    adds, per layer, ``params``: rows ``[j, k, bank, word, address]`` for every
    ``W_l[j, k]`` (``k = n_in`` is the bias).
    """
    from hdl.csr import ADDR_WIDTH, BANK_SHIFT, PARAM_WINDOW, param_address
    from hdl.layout import param_layout

    lay = param_layout(cfg)  # (the samples schedule keeps the parameters in one bank)
    n_params = sum((cfg.layers[l] + 1) * cfg.layers[l + 1] for l in range(cfg.n_layers))
    if table is None:
        table = n_params <= MAX_TABLE_PARAMS
    layers = []
    for l in range(cfg.n_layers):
        n_in, n_out = lay.n_in(l), lay.n_out(l)
        entry = {
            "layer": l, "n_in": n_in, "n_out": n_out, "bias_column": n_in,
            "blocks": lay.blocks(l), "row_words": lay.row_words(l), "wbase": lay.wbase(l),
            "bias_base": lay.wdepth + lay.dbase(l),
            "formula": (f"W[j, k] (k = {n_in} is the bias): bank = j % {lay.lanes}, "
                        f"word = {lay.wbase(l)} + (j // {lay.lanes}) * {lay.row_words(l)} + k for k < {n_in}, "
                        f"bias word = {lay.wdepth + lay.dbase(l)} + j // {lay.lanes}, "
                        f"address = 0x{PARAM_WINDOW:08X} | bank << {BANK_SHIFT} | word"),
        }
        if table:
            rows = []
            for j in range(n_out):
                for k in range(n_in + 1):
                    bank, word = lay.param_location(l, j, k)
                    rows.append([j, k, bank, word, param_address(bank, word)])
            entry["params_columns"] = ["j", "k", "bank", "word", "address"]
            entry["params"] = rows
        layers.append(entry)
    return {
        "param_window": PARAM_WINDOW, "bank_shift": BANK_SHIFT, "addr_width": ADDR_WIDTH,
        "banks": lay.lanes, "words_per_bank": lay.bank_words, "weight_words_per_bank": lay.wdepth,
        "parameters": n_params,
        "address": "PARAM_WINDOW | bank << bank_shift | word",
        "value": f"weight-format code: sign-extended to 32 bits on read, low {cfg.weight.width} bits on write",
        "access": "only while STATUS.busy is low (otherwise bus_error)",
        "layers": layers,
    }


def _register_map() -> dict:
    from hdl.csr import CTRL_INFER, ID_VALUE, REG, STATUS_BITS

    access = {"ID": "RO", "CTRL": "RW", "STATUS": "RO/W1C", "LR": "RW", "BATCH": "RW", "SAMPLES": "RO",
              "CYCLES_LO": "RO", "CYCLES_HI": "RO", "DROPPED": "RO", "SIGNATURE": "RO", "UPDATES": "RO"}
    return {
        "bus": "word-addressed, 32-bit data; hold addr and re (or we + wdata) until ack (one cycle, "
               "rdata valid in it); docs/registers.md",
        "registers": [{"name": n, "address": a, "access": access.get(n)} for n, a in REG.items()],
        "id_value": ID_VALUE,
        "ctrl_bits": {"infer": CTRL_INFER},
        "status_bits": dict(STATUS_BITS),
        "status_w1c": [n for n in STATUS_BITS if n != "busy"],
    }


def _formats(cfg: Config) -> dict:
    out = {}
    for name in ("act", "weight", "error"):
        q = getattr(cfg, name)
        out[name] = {"width": q.width, "int_bits": q.int_bits, "frac_bits": q.frac_bits, "signed": True,
                     "q": f"Q{q.int_bits}.{q.frac_bits}"}
    out["lr"] = {"width": 16, "frac_bits": cfg.lr_frac_bits, "signed": False, "reset_code": cfg.lr_code}
    out["accumulators"] = {"forward_width": cfg.forward_acc_width(), "backward_width": cfg.backward_acc_width(),
                           "grad_width": cfg.grad_acc_width()}
    return out


def _versions() -> dict:
    from importlib import metadata

    out = {}
    for dist in ("amaranth", "verilator", "backprop-fpga"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _git_describe():
    try:
        r = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"],
                           cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return (r.stdout.strip() or None) if r.returncode == 0 else None


def run_lint(cfg: Config, bus: str = "native") -> dict:
    """``sim.flows.lint.lint`` (verilator --lint-only -Wall with the documented waivers) on the
    ``bus`` top in its generic form; ``{"tool", "clean", "warnings", "waivers"}`` or
    ``{"clean": None, "error"}``."""
    from .lint import LINT_WAIVERS, lint

    base = {"tool": "verilator --lint-only -Wall (sim.flows.lint.lint)",
            "waivers": [{"code": c, "message": rx, "line": lrx, "reason": why} for c, rx, lrx, why in LINT_WAIVERS]}
    try:
        found = lint(lambda: top_design(cfg, bus), toplevel=TOPS[bus])
    except (RuntimeError, OSError, TypeError) as e:
        return {**base, "clean": None, "error": str(e)}
    return {**base, "clean": not found, "warnings": [str(w) for w in found]}


_DSP_MEANING = {
    "generic": "every multiply is a Verilog '*' between registers: any synthesis tool maps it",
    "ecp5": "the lane multipliers and lr x delta are Lattice ECP5 MULT18X18D primitives with their input and "
            "output registers (the same cycles as the generic form); the other multiplies are '*'",
}


def _axi_map(cfg: Config) -> dict:
    """What the AXI top adds: byte addresses, responses, the streams' tdata."""
    from hdl.axi import axi_data_width
    from hdl.axi.lite import byte_address
    from hdl.csr import PARAM_WINDOW, REG

    return {
        "interfaces": {
            "s_axis": "AXI4-Stream slave, samples: n_in input codes, then (train mode) n_out targets; tlast on "
                      "the final beat; a code in the low act.width bits of tdata (the bits above are ignored)",
            "m_axis": "AXI4-Stream master, results: the n_out output codes of every sample, sign-extended to "
                      "tdata; tlast on the final one",
            "s_axi": "AXI4-Lite slave, 32-bit data: the registers and the parameter window",
        },
        "tdata_width": axi_data_width(cfg),
        "addressing": "byte address = 4 * the word address of csr.registers and param_map (low two bits "
                      "ignored); byte addresses from 0x80000000 are outside the map",
        "registers": [{"name": n, "byte_address": byte_address(a)} for n, a in REG.items()],
        "param_window_byte_address": byte_address(PARAM_WINDOW),
        "param_byte_address": "4 * (PARAM_WINDOW | region << 26 | bank << 20 | word)",
        "responses": {
            "OKAY": "the access was done",
            "SLVERR": "refused, nothing changed: a parameter access while busy (a read returns 0), a write to a "
                      "read-only register, a value out of range, a BATCH or power write while busy, a write "
                      "whose wstrb is not 0b1111",
            "DECERR": "no register or parameter at the address (unknown register, bank or word past the "
                      "memories, a state region the optimizer lacks, or above the map)",
        },
        "note": "every SLVERR and DECERR from the trainer also sets the sticky STATUS bus_error flag",
    }


def build_manifest(cfg: Config, design, verilog_text: str, lint_result: dict | None,
                   dsp: str = "generic", bus: str = "native") -> dict:
    """The manifest dict (see the module docstring)."""
    clock = ({"port": "clk", "edge": "rising", "reset": "rst (synchronous, active high)"} if bus == "native" else
             {"port": "aclk", "edge": "rising", "reset": "aresetn (synchronous, active low)"})
    extra = {"axi": _axi_map(cfg)} if bus == "axi" else {}
    return {
        "manifest_version": MANIFEST_VERSION,
        "top_module": TOPS[bus],
        "verilog": f"{TOPS[bus]}.v",
        "bus": bus,
        "verilog_sha256": hashlib.sha256(verilog_text.encode()).hexdigest(),
        "clock": clock,
        "ports": port_list(design),
        **extra,
        "streams": {
            "s_data": "samples in: n_in input codes, then (train mode) n_out targets; last on the final beat",
            "m_data": "results out: the n_out output codes of every sample; last on the final one",
            "handshake": "AXI4-Stream style: a beat moves when valid and ready are both high at a clock edge",
        },
        "csr": _register_map(),
        "param_map": param_map(cfg),
        "formats": _formats(cfg),
        "lanes": cfg.lanes,
        "multipliers": {"dsp": dsp, "meaning": _DSP_MEANING[dsp]},
        "layers": list(cfg.layers),
        "activations": list(cfg.activations),
        "config": config_to_dict(cfg),
        "lint": lint_result,
        "tools": _versions(),
        "git": _git_describe(),
    }


def _dumps(obj, indent: int = 0) -> str:
    """JSON, indented, with lists of plain numbers (the parameter table rows) on one line."""
    pad, inner = " " * indent, " " * (indent + 2)
    if isinstance(obj, dict) and obj:
        items = [f"{inner}{json.dumps(str(k))}: {_dumps(v, indent + 2)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and obj and not all(isinstance(v, (int, float, str)) for v in obj):
        items = [inner + _dumps(v, indent + 2) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(obj)


def export_verilog(cfg: Config, out_dir, *, lint: bool = True, on_status=None, dsp: str = "generic",
                   bus: str = "native") -> dict:
    """Write ``out_dir/trainer.v`` (``trainer_axi.v`` with ``bus="axi"``) and
    ``out_dir/manifest.json``; return the manifest.

    ``lint``: run Verilator's lint on the same design and record it (``manifest["lint"]``;
    ``None`` when skipped); with ``dsp="ecp5"`` the lint is of the generic form, which
    differs only in its multipliers (Verilator has no model of the primitive to lint).
    Raises ``hdl.layout.HardwareLimitError`` for configs the generator refuses, and
    ``ValueError`` for an unknown ``dsp``.
    """
    from hdl.verilog import to_verilog

    say = on_status or (lambda msg: None)
    out = Path(out_dir)
    design = top_design(cfg, bus, dsp)
    out.mkdir(parents=True, exist_ok=True)
    say(f"verilog: converting the trainer ({'x'.join(map(str, cfg.layers))}, {cfg.lanes} lanes, {bus} bus)...")
    text = to_verilog(design, TOPS[bus])
    (out / f"{TOPS[bus]}.v").write_text(text)
    lint_result = None
    if lint:
        say("lint: verilator --lint-only -Wall ...")
        lint_result = run_lint(cfg, bus)
        if dsp != "generic":
            lint_result["of"] = "the generic form (the same design but for its multipliers)"
    manifest = build_manifest(cfg, design, text, lint_result, dsp, bus)
    (out / "manifest.json").write_text(_dumps(manifest) + "\n")
    return manifest
