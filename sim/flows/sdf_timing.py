"""Static timing from the SDF that nextpnr writes, for placed (not routed) designs.

Routing the larger trainers on ECP5 takes hours on the machines we have, placement about half
an hour; nextpnr's own timing report after placement prints one Fmax and no paths. With
``--no-route --sdf FILE`` nextpnr writes every cell delay and, for each net, the delay it
predicts from the placement (the same estimate behind its "Max frequency" line after
placement; after routing, the routed delay). This module reads that file and finds the
longest register-to-register paths, so a timing fix can be aimed and checked in a placement
run instead of a routing run.

The model is nextpnr's: single clock, one corner (``max`` of each ``(min:typ:max)`` triple),
a path starts at a clock-to-output arc (``IOPATH`` from a clock pin) and ends at a
``SETUPHOLD`` check (the setup value added). On a routed design it gives nextpnr's Fmax
(tests/sim/flows/test_sdf_timing.py).
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

__all__ = ["TimingGraph", "parse_sdf", "worst_paths", "slack_histogram", "summarize_path", "signal_of", "path_groups",
           "report"]

# Clock pins of the ECP5 primitives in nextpnr's SDF (FF, block RAM, DSP, distributed RAM).
_CLOCK_PIN = re.compile(r"^(CLK\w*|WCK|CLK[AB])$")
_CARRY_PINS = ("FCI", "FCO", "CIN", "COUT")
_CONSTRUCT = re.compile(r"\((?:CELLTYPE|INSTANCE|INTERCONNECT|IOPATH|SETUPHOLD|SETUP)\b")
_TOKEN = re.compile(r"(?:\\.|[^\s()])+")
_TRIPLE = re.compile(r"\(([\d.\-]*):([\d.\-]*):([\d.\-]*)\)")


def _unescape(name: str) -> str:
    return re.sub(r"\\(.)", r"\1", name)


def _split_pin(token: str):
    """``cell/port`` with SDF escapes (``\\/`` is part of the cell name) -> (cell, port)."""
    i = len(token) - 1
    while i >= 0:
        if token[i] == "/" and (i == 0 or token[i - 1] != "\\"):
            return _unescape(token[:i]), token[i + 1:]
        i -= 1
    raise ValueError(f"not a cell/port pin: {token!r}")


def _max_delay(text: str) -> float:
    """The largest ``max`` value of the ``(min:typ:max)`` triples on a line, in ps."""
    vals = [float(t[2] or t[1] or t[0] or 0) for t in _TRIPLE.findall(text)]
    return max(vals) if vals else 0.0


@dataclass
class TimingGraph:
    """Pins are ``(cell, port)``; delays in picoseconds."""
    edges: dict = field(default_factory=lambda: defaultdict(list))  # pin -> [(pin, ps, kind)]
    launch: dict = field(default_factory=dict)  # output pin -> clock-to-output ps
    setup: dict = field(default_factory=dict)  # data pin -> setup ps
    cell_type: dict = field(default_factory=dict)


def parse_sdf(text: str) -> TimingGraph:
    """Read nextpnr's SDF (``TIMESCALE 1ps``)."""
    g = TimingGraph()
    cell = ctype = None
    # one construct per line, as nextpnr writes them (also when several share a line)
    text = _CONSTRUCT.sub(lambda mm: "\n" + mm.group(0), text)
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("(CELLTYPE"):
            ctype = s.split('"')[1]
        elif s.startswith("(INSTANCE"):
            toks = _TOKEN.findall(s)
            cell = _unescape(toks[1]) if len(toks) > 1 else ""
            g.cell_type[cell] = ctype
        elif s.startswith("(INTERCONNECT"):
            toks = _TOKEN.findall(s)
            src, dst = _split_pin(toks[1]), _split_pin(toks[2])
            g.edges[src].append((dst, _max_delay(s), "net"))
        elif s.startswith("(IOPATH"):
            toks = _TOKEN.findall(s)
            frm, to = toks[1], toks[2]
            d = _max_delay(s)
            if _CLOCK_PIN.match(frm):
                g.launch[(cell, to)] = max(d, g.launch.get((cell, to), 0.0))
            else:
                g.edges[(cell, frm)].append(((cell, to), d, "cell"))
        elif s.startswith("(SETUPHOLD") or s.startswith("(SETUP "):
            toks = _TOKEN.findall(s)
            data = toks[2] if toks[1] in ("posedge", "negedge") else toks[1]
            # nextpnr writes SETUPHOLD (data) (clk) (setup) (hold)
            triples = _TRIPLE.findall(s)
            su = float(triples[0][2] or 0) if triples else 0.0
            g.setup[(cell, data)] = max(su, g.setup.get((cell, data), 0.0))
    return g


def _arrivals(g: TimingGraph):
    """Longest arrival time at every pin reachable from a launch pin, with its predecessor."""
    indeg = defaultdict(int)
    for src, outs in g.edges.items():
        for dst, _, _ in outs:
            indeg[dst] += 1
    arr = {p: d for p, d in g.launch.items()}
    pred = {p: None for p in g.launch}
    # Kahn's order over the whole graph (sources: pins nothing drives); clock-to-output pins
    # are sources too, since the clock arcs are not edges
    ready = [p for p in set(g.edges) | set(g.launch) if indeg[p] == 0]
    seen = 0
    while ready:
        p = ready.pop()
        seen += 1
        a = arr.get(p)
        for q, d, kind in g.edges.get(p, ()):
            if a is not None and (q not in arr or a + d > arr[q]):
                arr[q], pred[q] = a + d, (p, d, kind)
            indeg[q] -= 1
            if indeg[q] == 0:
                ready.append(q)
    return arr, pred


def worst_paths(g: TimingGraph, n: int = 10):
    """The ``n`` worst endpoints: ``[(required_period_ps, endpoint, [(pin, incr_ps, kind), ...])]``,
    worst first; the path starts at its launching register's output."""
    arr, pred = _arrivals(g)
    ends = sorted(((arr[p] + su, p) for p, su in g.setup.items() if p in arr), reverse=True)
    out = []
    for total, p in ends[:n]:
        steps, q = [], p
        while q is not None and pred.get(q) is not None:
            prev, d, kind = pred[q]
            steps.append((q, d, kind))
            q = prev
        steps.append((q, g.launch.get(q, 0.0), "clk-to-q"))
        out.append((total, p, steps[::-1]))
    return out


def slack_histogram(g: TimingGraph, period_ps: float, edges_ns=(0, -1, -2, -3, -5, -8, -12)):
    """Number of endpoints whose slack at ``period_ps`` is below each bound in ``edges_ns``."""
    arr, _ = _arrivals(g)
    slacks = [(period_ps - arr[p] - su) / 1000 for p, su in g.setup.items() if p in arr]
    return {e: sum(1 for s in slacks if s < e) for e in edges_ns}, len(slacks)


def summarize_path(steps) -> list:
    """A path as readable rows ``(cell, port, incr_ns, arrival_ns)``, the hops of a carry
    chain (ECP5 ``FCI``/``FCO``, iCE40 ``CIN``/``COUT``) folded into one row."""
    rows, t, i = [], 0.0, 0
    while i < len(steps):
        (cell, port), d, kind = steps[i]
        t += d
        if port in _CARRY_PINS and kind != "clk-to-q":
            j, dd = i, d
            while j + 1 < len(steps) and steps[j + 1][0][1] in _CARRY_PINS:
                j += 1
                dd += steps[j][1]
                t += steps[j][1]
            rows.append((f"carry chain, {j - i + 1} hops", steps[j][0][1], round(dd / 1000, 3),
                         round(t / 1000, 3)))
            i = j + 1
            continue
        rows.append((cell, port, round(d / 1000, 3), round(t / 1000, 3)))
        i += 1
    return rows


# What yosys and nextpnr append to the name of the signal a cell belongs to (a flip-flop's
# bit, a LUT's place in a cone, a memory's slices), and numbers (bits, lanes, instances).
_CELL_SUFFIX = re.compile(r"_(TRELLIS_FF|LUT4|CCU2C|PFUMX|L6MUX21|MULT18X18D|DP16KD|TRELLIS_DPR16X4|TRELLIS_RAMW"
                          r"|SB_DFF\w*|SB_LUT4|SB_CARRY|SB_MAC16|SB_RAM40_4K).*")
_MEMORY_SLICE = re.compile(r"\.storage\..*|\.\d+\.\d+\$DPRAM.*|\$DPRAM.*")


def signal_of(cell: str) -> str:
    """The design signal a cell comes from, lane and bit numbers as ``#``: ``update.s_ctl_w3_TRELLIS_FF_Q_2``
    -> ``update.s_ctl_w#``; a distributed RAM's slices -> ``name[mem]``."""
    c = _CELL_SUFFIX.sub("", cell)
    c = _MEMORY_SLICE.sub("[mem]", c)
    return re.sub(r"\d+", "#", c)


def path_groups(g: TimingGraph, period_ps: float) -> list:
    """The endpoints failing ``period_ps``, grouped by (launching signal, capturing signal)
    (:func:`signal_of`), worst group first: ``[{"from", "to", "endpoints", "worst_ns",
    "through"}]``, ``through`` the signals on the group's worst path."""
    arr, pred = _arrivals(g)
    groups = {}
    for p, su in g.setup.items():
        if p not in arr or arr[p] + su <= period_ps:
            continue
        q, through = p, []
        while pred.get(q) is not None:
            q = pred[q][0]
            through.append(q[0])
        key = (signal_of(q[0]), signal_of(p[0]))
        worst = groups.get(key)
        if worst is None:
            groups[key] = [1, arr[p] + su, through]
        else:
            worst[0] += 1
            if arr[p] + su > worst[1]:
                worst[1:] = [arr[p] + su, through]
    out = []
    for (frm, to), (count, t, through) in sorted(groups.items(), key=lambda kv: -kv[1][1]):
        names = []
        for c in reversed(through):
            sig = signal_of(c)
            if sig not in names and sig not in (frm, to):
                names.append(sig)
        out.append({"from": frm, "to": to, "endpoints": count, "worst_ns": round(t / 1000, 3), "through": names})
    return out


def report(text: str, n: int = 10, period_ns: float | None = None) -> dict:
    """Fmax, the ``n`` worst paths (each summarized) and, given a clock period, the slack
    histogram and the 30 worst groups of failing endpoints, from the text of an SDF file."""
    g = parse_sdf(text)
    worst = worst_paths(g, n)
    if not worst:
        return {"fmax_mhz": None, "paths": [], "endpoints": 0}
    out = {"fmax_mhz": round(1e6 / worst[0][0], 2),
           "paths": [{"required_ns": round(total / 1000, 3), "from": steps[0][0][0], "to": end[0],
                      "logic_cells": sum(1 for s in steps if s[2] == "cell"),
                      "routing_ns": round(sum(s[1] for s in steps if s[2] == "net") / 1000, 3),
                      "steps": summarize_path(steps)} for total, end, steps in worst]}
    if period_ns:
        hist, total = slack_histogram(g, period_ns * 1000)
        out["endpoints"] = total
        out["failing_endpoints_below_ns"] = {str(k): v for k, v in hist.items()}
        out["failing_groups"] = path_groups(g, period_ns * 1000)[:30]
    return out
