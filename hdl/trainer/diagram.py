"""The trainer's block diagram, read from the code (docs/trainer.md, docs/trainer_blocks.png).

Nothing here is a hand-kept list of connections: ``block_edges`` elaborates the top
(``Trainer(cfg).elaborate(None)``, a Module that only instantiates components and connects
them), maps every port signal of every submodule and of the Trainer itself to (node, port
path), and turns each comb assignment of the top, ``dst_port.eq(expr of src ports)``, into
an edge src -> dst. ``wiring.connect`` adds the same assignments, one per member; its
interfaces (streams, the CSR bus, the write ports) are drawn as one edge from the side
that drives the interface to the other, whichever way each member points.

    python -m hdl.trainer.diagram [config.toml]

rewrites docs/trainer_blocks.png and the Mermaid block between ``<!-- blocks:begin -->``
and ``<!-- blocks:end -->`` in docs/trainer.md (tests/hdl/trainer/test_diagram.py checks
that block against the code).
"""
from __future__ import annotations

import re
import sys
import textwrap
from dataclasses import dataclass, field, replace
from pathlib import Path

from amaranth.hdl import Const, Signal, Value
# not public in Amaranth 0.5, like Module._statements and ._named_submodules below: the
# statement and expression nodes of the top's wiring
from amaranth.hdl._ast import Assign, Concat, Operator, Slice
from amaranth.lib import data, wiring
from amaranth.lib.wiring import Flow

from golden.config import Config, load_config

from .top import Trainer

__all__ = ["block_nodes", "block_edges", "unconnected_ports", "mermaid", "mermaid_block",
           "render_png", "update_doc", "doc_block", "DEFAULT_CONFIG", "DOC", "PNG", "BEGIN", "END"]

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO / "examples" / "digits.toml"
DOC = REPO / "docs" / "trainer.md"
PNG = REPO / "docs" / "trainer_blocks.png"
BEGIN, END = "<!-- blocks:begin -->", "<!-- blocks:end -->"

# The host's side of the Trainer's ports: what it drives (the Trainer's In ports) and what
# it reads (the Trainer's Out ports), two nodes at the left and right edges.
HOST_IN, HOST_OUT = "host_in", "host_out"

# A short role per component for the boxes (a component missing here shows its class name).
ROLES = {
    "params": "weight and bias banks",
    "deltas": "deltas and eps by slot",
    "drain": "requantize, activate",
    "loader": "two input buffers",
    "sequencer": "phases of each sample; issues the beats",
    "lanes": "pipeline, P multipliers",
    "backward": "adder tree, delta below",
    "update": "optimizer: new params",
    "output": "m_data; output deltas",
    "registers": "CSR bus: registers, counters, parameter access",
}


@dataclass(frozen=True, eq=False)
class _Port:
    node: str
    path: tuple           # member path, as Signature.flatten gives it
    label: str            # path with lane/buffer indices collapsed: w_data[*], s_data
    interface: bool       # the leaf is a member of an interface (stream, bus) member
    drives: bool          # this node drives the leaf (Out of a component, In of the Trainer)
    drives_interface: bool  # this node is the initiating side of the interface
    value: Value          # the port's value-like (a View for struct ports)


@dataclass
class Edge:
    src: str
    dst: str
    ports: list = field(default_factory=list)   # "name" or "src_name>dst_name", in code order

    def as_tuple(self):
        return (self.src, self.dst, list(self.ports))


def _collapse(path):
    out = ""
    for item in path:
        out += "[*]" if isinstance(item, int) else ("." if out else "") + item
    return out


def _ports_of(node, component, *, host=False):
    """Every leaf port of ``component``: (signal, _Port)."""
    members = component.signature.members
    for path, member, value in component.signature.flatten(component):
        top = members[path[0]]
        interface = top.is_signature
        if interface:
            # the interface member and its indices (w_wr[3]); the leaf below it
            label = _collapse(path[:1 + len(top.dimensions)])
        else:
            label = _collapse(path)
        drives = (member.flow == Flow.Out) != host
        drives_if = (top.flow == Flow.Out) != host
        yield Value.cast(value), _Port(node, path, label, interface, drives, drives_if, value)


def _top(cfg: Config):
    trainer = Trainer(cfg)
    m = trainer.elaborate(None)
    subs = {name: sub for name, (sub, *_) in m._named_submodules.items()}
    if m._anon_submodules:
        raise ValueError("the top has anonymous submodules; name them (m.submodules.name = ...)")
    return trainer, m, subs


def block_nodes(cfg: Config) -> list[tuple[str, str]]:
    """(node, class name) for the host's two sides and every submodule of the top, in order."""
    _, _, subs = _top(cfg)
    return ([(HOST_IN, "host")] + [(n, type(s).__name__) for n, s in subs.items()]
            + [(HOST_OUT, "host")])


def _reads(expr, ports):
    """The ports an expression reads: (port, how), in code order; ``how`` formats the port's
    label: ``{}``, a struct field ``{}.addr``, an inversion ``~{}``."""
    if isinstance(expr, Signal):
        return [(ports.get(id(expr)), "{}" if id(expr) in ports else expr.name)]
    if isinstance(expr, Slice):
        inner = expr.value
        if isinstance(inner, Signal) and id(inner) in ports:
            shape = ports[id(inner)].value.shape()
            if isinstance(shape, data.Layout):
                for name, fld in shape:
                    if fld.offset == expr.start and fld.width == expr.stop - expr.start:
                        return [(ports[id(inner)], "{}." + name)]
        return [(p, f"{how}[{expr.start}:{expr.stop}]") for p, how in _reads(inner, ports)]
    if isinstance(expr, Operator):
        reads = [r for op in expr.operands for r in _reads(op, ports)]
        if expr.operator in ("u", "s"):       # as_unsigned / as_signed: the same bits
            return reads
        if expr.operator == "~":
            return [(p, "~" + how) for p, how in reads]
        return [(p, f"{expr.operator}({how})") for p, how in reads]
    if isinstance(expr, Concat):
        return [r for part in expr.parts for r in _reads(part, ports)]
    if isinstance(expr, Const):
        return []
    raise TypeError(f"the top's wiring uses {expr!r}, which the diagram does not read")


def _wiring(cfg: Config):
    trainer, m, subs = _top(cfg)
    ports = {}
    for sig, port in _ports_of(HOST_IN, trainer, host=True):
        # the host drives the Trainer's In ports (left), reads its Out ports (right); an
        # interface by the way it points as a whole (m_data's ready is driven by the host)
        ports[id(sig)] = port if port.drives_interface else replace(port, node=HOST_OUT)
    for name, sub in subs.items():
        if not isinstance(sub, wiring.Component):
            raise ValueError(f"submodule {name} is not a wiring.Component")
        for sig, port in _ports_of(name, sub):
            ports[id(sig)] = port
    domains = set(m._statements) - {"comb"}
    if domains:
        raise ValueError(f"the top has {sorted(domains)} statements; it should only connect")
    links = []    # (src port, how it is read, dst port), in code order
    for stmt in m._statements.get("comb", []):
        if not isinstance(stmt, Assign):
            raise ValueError(f"the top has a {type(stmt).__name__}; it should only connect")
        (dst, how), = _reads(stmt.lhs, ports)
        if dst is None or dst.drives or how != "{}":
            raise ValueError(f"{stmt!r}: the target is not an input port")
        for src, how in _reads(stmt.rhs, ports):
            if src is None:
                raise ValueError(f"{stmt!r}: reads {how}, not a port")
            if not src.drives:
                raise ValueError(f"{stmt!r}: reads {src.node}.{_collapse(src.path)}, an input")
            links.append((src, how, dst))
    return ports, links


def block_edges(cfg: Config) -> list[tuple[str, str, list[str]]]:
    """(src, dst, ports) for every pair of nodes the top connects, from the top's code.

    ``ports`` names what flows, lane and buffer indices collapsed (``w_data[*]``): the
    port's name when both sides call it the same, else ``src>dst`` (``a_data>act``); a
    field of a struct port as ``issue.addr>addr``; an interface (stream, bus) by its name,
    from the side that drives it. Nodes: ``host_in`` (the Trainer's In ports, driven by
    the host), the top's submodules, ``host_out`` (the Trainer's Out ports).
    """
    _, links = _wiring(cfg)
    edges: dict[tuple[str, str], Edge] = {}
    for src, how, dst in links:
        if src.interface and dst.interface:
            if src.drives_interface == dst.drives_interface:
                raise ValueError(f"{src.label} and {dst.label}: both sides drive the interface")
            if not src.drives_interface:
                src, dst = dst, src
        s = how.format(src.label)
        name = s if s == dst.label else f"{s}>{dst.label}"
        edge = edges.setdefault((src.node, dst.node), Edge(src.node, dst.node))
        if name not in edge.ports:
            edge.ports.append(name)
    order = {n: i for i, (n, _) in enumerate(block_nodes(cfg))}
    return [e.as_tuple() for e in sorted(edges.values(), key=lambda e: (order[e.src], order[e.dst]))]


def unconnected_ports(cfg: Config) -> dict[str, list[str]]:
    """Submodule ports the top leaves alone: ``{"inputs": undriven, "outputs": unread}``,
    each as ``node.port``."""
    ports, links = _wiring(cfg)
    used = {(p.node, p.path) for s_, _, d in links for p in (s_, d)}
    out = {"inputs": [], "outputs": []}
    for p in ports.values():
        if p.node in (HOST_IN, HOST_OUT) or (p.node, p.path) in used:
            continue
        kind = "outputs" if p.drives else "inputs"
        if f"{p.node}.{p.label}" not in out[kind]:
            out[kind].append(f"{p.node}.{p.label}")
    return out


def mermaid(cfg: Config) -> str:
    """The block diagram as a Mermaid ``flowchart LR``."""
    nodes = block_nodes(cfg)
    lines = ["flowchart LR"]
    for node, cls in nodes:
        if node in (HOST_IN, HOST_OUT):
            lines.append(f'    {node}(["host"])')
        else:
            lines.append(f'    {node}["<b>{node}</b><br/>{ROLES.get(node, cls)}"]')
    for src, dst, ports in block_edges(cfg):
        label = ", ".join(p.replace(">", " → ") for p in ports)
        lines.append(f'    {src} -- "{label}" --> {dst}')
    return "\n".join(lines) + "\n"


def mermaid_block(cfg: Config) -> str:
    return f"```mermaid\n{mermaid(cfg)}```\n"


# ---------------------------------------------------------------------------------------
# the picture: a fixed layout. The sequencer (control) is a bar along the top and the
# registers (CSR side) a bar along the bottom, so their many connections are short vertical
# arrows; the datapath runs left to right between them, one column per box.

_BARS = {"sequencer": 11.6, "registers": -0.4}    # y of the bars
_UP, _MID, _LOW = 7.5, 5.1, 2.7                     # the datapath's three rows
_COL = 3.6                                          # one box per column: the bars' arrows
_BOXES = {                                          # are vertical and cross no other box
    HOST_IN: (0, _MID),
    "loader": (1, _UP),
    "params": (2, _LOW),
    "lanes": (3, _MID),
    "drain": (4, _UP),
    "update": (5, _LOW),
    "backward": (6, _MID),
    "deltas": (7, _LOW),
    "output": (8, _UP),
    HOST_OUT: (9, _MID),
}
# arc3 bends: the default is straight, or 0.15 for a pair of opposite arrows; the loader <->
# output pair arcs over the drain
_RAD = {("loader", "output"): -0.07, ("output", "loader"): 0.10,
        ("output", "drain"): 0.04, ("drain", "output"): 0.12}
# where along an arrow its label sits (default the middle): off the crossing arrows
_LABEL_AT = {("update", HOST_OUT): 0.8, ("deltas", "lanes"): 0.35}
_CHANNEL_X = -1.3 * _COL                            # the sequencer <-> registers arrows


def _short(port):
    """A port on the picture: the name the receiver gives it (the Mermaid has both)."""
    return port.split(">")[-1]


def render_png(cfg: Config, path, *, title: str | None = None):
    """Draw the block diagram with matplotlib (boxes, labelled arrows) into ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    nodes = block_nodes(cfg)
    edges = block_edges(cfg)
    bw, bh, barh = 3.0, 1.3, 1.1
    pos, spare = {}, 0
    for node, _ in nodes:
        if node in _BARS:
            pos[node] = None
        elif node in _BOXES:
            col, y = _BOXES[node]
            pos[node] = (col * _COL, y)
        else:                      # a component this layout does not know yet: a row below
            pos[node] = ((1 + spare) * _COL, -2.5)
            spare += 1
    xs = [xy[0] for xy in pos.values() if xy]
    x0, x1 = _CHANNEL_X - 0.6, max(xs) + bw / 2 + 0.2
    y0 = min([y - barh / 2 for y in _BARS.values()] + [xy[1] - bh / 2 for xy in pos.values() if xy]) - 0.8
    fig, ax = plt.subplots(figsize=(26, 12))
    ax.set_xlim(x0 - 0.3, x1 + 0.3)
    ax.set_ylim(y0, max(_BARS.values()) + barh)
    ax.set_aspect("equal")
    ax.axis("off")

    patches = {}
    for node, cls in nodes:
        host = node in (HOST_IN, HOST_OUT)
        if node in _BARS:
            y = _BARS[node]
            patch = FancyBboxPatch((x0, y - barh / 2), x1 - x0, barh, boxstyle="round,pad=0.05",
                                   fc="#fbe5c8", ec="#333333", lw=1.5, zorder=3)
            t = ax.text(x0 + 0.3, y, f"{node}   ", ha="left", va="center", fontsize=16,
                        weight="bold", zorder=4)
            ax.annotate(ROLES.get(node, cls), xycoords=t, xy=(1, 0.5), va="center", fontsize=12,
                        zorder=4)
        else:
            x, y = pos[node]
            patch = FancyBboxPatch((x - bw / 2, y - bh / 2), bw, bh,
                                   boxstyle="round,pad=0.05,rounding_size=0.5" if host else "round,pad=0.05",
                                   fc="#eeeeee" if host else "#dbe9f6", ec="#333333", lw=1.5, zorder=3)
            if host:
                ax.text(x, y, "host", ha="center", va="center", fontsize=16, weight="bold", zorder=4)
            else:
                ax.text(x, y + 0.25, node, ha="center", va="center", fontsize=16, weight="bold", zorder=4)
                ax.text(x, y - 0.3, ROLES.get(node, cls), ha="center", va="center", fontsize=11, zorder=4)
        ax.add_patch(patch)
        patches[node] = patch

    def label(x, y, names, per_line, va="center", **kw):
        text = "\n".join(", ".join(names[i:i + per_line]) for i in range(0, len(names), per_line))
        ax.text(x, y, text, fontsize=11, zorder=6, va=va,
                bbox=dict(fc="white", ec="none", alpha=0.9, pad=0.6), **kw)

    pairs = {(s_, d) for s_, d, _ in edges}
    for src, dst, ports in edges:
        names = list(dict.fromkeys(_short(p) for p in ports))
        both = (dst, src) in pairs
        if src in _BARS or dst in _BARS:
            # a vertical arrow between a bar and a box, or between the bars at the left; a
            # pair of opposite arrows side by side, the bar's own on the left
            bar, other = (src, dst) if src in _BARS else (dst, src)
            color = "#8a5a00" if bar == "sequencer" else "#3f6b1f"
            left = src == bar if other not in _BARS else src == "sequencer"
            x = (_CHANNEL_X if other in _BARS else pos[other][0]) + (0 if not both else -0.35 if left else 0.35)
            ya = _BARS[src] if src in _BARS else pos[src][1]
            yb = _BARS[dst] if dst in _BARS else pos[dst][1]
            sign = 1 if yb > ya else -1
            ya += sign * ((barh if src in _BARS else bh) / 2 + 0.08)
            yb -= sign * ((barh if dst in _BARS else bh) / 2 + 0.08)
            ax.add_patch(FancyArrowPatch((x, ya), (x, yb), arrowstyle="-|>", mutation_scale=18,
                                         lw=1.4, color=color, zorder=2))
            # labels hang from the bar into the band between it and the nearest row, a pair
            # staggered (the bar's own arrow's label nearer the bar)
            if other in _BARS:
                ly, va = (ya + yb) / 2 + (2.0 if left else -2.0), "center"
            elif bar == "sequencer":
                ly, va = _BARS[bar] - barh / 2 - (0.15 if left else 1.0), "top"
            else:
                ly, va = _BARS[bar] + barh / 2 + (0.15 if left else 1.0), "bottom"
            label(x + (-0.12 if left else 0.12), ly, names, 1, ha="right" if left else "left",
                  va=va, color=color)
            continue
        color = "#1f4e79"
        (xa, ya), (xb, yb) = pos[src], pos[dst]
        rad = _RAD.get((src, dst), 0.15 if both else 0.0)
        ax.add_patch(FancyArrowPatch((xa, ya), (xb, yb), connectionstyle=f"arc3,rad={rad}",
                                     patchA=patches[src], patchB=patches[dst], arrowstyle="-|>",
                                     mutation_scale=18, lw=1.4, color=color, shrinkA=4, shrinkB=4,
                                     zorder=2))
        # the label on the curve (arc3: a quadratic Bezier through this control point)
        cx, cy = (xa + xb) / 2 + rad * (yb - ya), (ya + yb) / 2 - rad * (xb - xa)
        t = _LABEL_AT.get((src, dst), 0.5)
        mx = (1 - t) ** 2 * xa + 2 * t * (1 - t) * cx + t ** 2 * xb
        my = (1 - t) ** 2 * ya + 2 * t * (1 - t) * cy + t ** 2 * yb
        label(mx, my, names, 3, ha="center", color=color)
    ax.set_title(title or "Trainer: components and the connections between them", fontsize=18)
    ax.text(x0, y0 + 0.15, "Drawn from the connections in hdl/trainer/top.py by python -m hdl.trainer.diagram. "
            "Arrows: the sequencer's (brown), the registers' (green), the datapath's (blue); "
            "labelled with the receiving port's name ([*]: one per lane or buffer).",
            fontsize=11, ha="left", va="bottom", color="#444444")
    fig.tight_layout()
    fig.savefig(path, dpi=72, bbox_inches="tight", pad_inches=0.2)
    plt.close(fig)


# ---------------------------------------------------------------------------------------

HEADER = """\
![trainer blocks](trainer_blocks.png)

{sentence}

{begin}
{end}
"""
SENTENCE = ("The picture and the Mermaid block below are drawn from the connections in "
            "`hdl/trainer/top.py` by `python -m hdl.trainer.diagram` ({config}; {note}), and "
            "`tests/hdl/trainer/test_diagram.py` fails when the block no longer matches the code.")


def _config_note(cfg_path: Path, cfg: Config) -> tuple[str, str]:
    name = f"`{cfg_path.relative_to(REPO) if cfg_path.is_relative_to(REPO) else cfg_path}`"
    if cfg.activations[-1] == "softmax":
        return name, ("a softmax network: an MSE network has the same connections, with the "
                      "drain's `logit` stream and the output's `room` idle")
    return name, ("an MSE network: a softmax network has the same connections, and uses the "
                  "drain's `logit` stream and the output's `room`")


def update_doc(text: str, cfg: Config, cfg_path: Path = DEFAULT_CONFIG) -> str:
    """docs/trainer.md's text with the Mermaid block between the markers regenerated (the
    picture, a sentence and the markers put right after the title if there are none)."""
    if BEGIN not in text:
        name, note = _config_note(Path(cfg_path).resolve(), cfg)
        head, nl, rest = text.partition("\n\n")        # the title, then the body
        sentence = textwrap.fill(SENTENCE.format(config=name, note=note), 88)
        text = head + nl + HEADER.format(sentence=sentence, begin=BEGIN, end=END) + "\n" + rest
    begin, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:begin] + "\n" + mermaid_block(cfg) + text[end:]


def doc_block(text: str) -> str:
    """The Mermaid source between the markers of docs/trainer.md."""
    inner = text[text.index(BEGIN) + len(BEGIN):text.index(END)]
    match = re.search(r"```mermaid\n(.*?)```", inner, re.S)
    if match is None:
        raise ValueError("no ```mermaid block between the markers")
    return match.group(1)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    cfg_path = Path(argv[0]) if argv else DEFAULT_CONFIG
    cfg = load_config(cfg_path)
    render_png(cfg, PNG, title=f"Trainer components and connections ({cfg_path.name})")
    DOC.write_text(update_doc(DOC.read_text(), cfg, cfg_path))
    print(f"wrote {PNG.relative_to(REPO)} and the block in {DOC.relative_to(REPO)}")


if __name__ == "__main__":
    main()
