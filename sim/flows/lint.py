"""``verilator --lint-only -Wall`` on the Verilog Amaranth emits, with a short waiver list.

Amaranth's width semantics are exact and its comb processes never infer latches, but its
Verilog backend spells things in ways ``-Wall`` flags. :data:`LINT_WAIVERS` lists those
patterns, each with its reason; everything else is reported. A waiver is
``(code, message regex, context regex or None, reason)``: the context is the flagged
Verilog line followed by facts about the flagged net (see :func:`_net_facts`), so a
waiver can say "only when Amaranth's own library made this net" or "only when the net is
a copy of a net something reads".
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["lint", "LINT_WAIVERS", "LintWarning"]

LINT_WAIVERS = (
    ("UNUSEDSIGNAL", r"Bits of signal are not used: '\w*_q_pp00'", None,
     "Adam's v_hat mantissa product (hdl/trainer/optimizer_cores.py): the table index takes "
     "M + 2 of its bits (docs/arithmetic.md §10.2); the bits below only carry into them"),
    ("WIDTHEXPAND", r".*", None,
     "Amaranth relies on Verilog's implicit zero/sign extension of narrower operands "
     "(e.g. `acc + $signed({1'h0, lfsr[11:0]})`, signed operands widened to the result)"),
    ("WIDTHTRUNC", r".*", None,
     "Amaranth truncates intermediate results by assigning them to narrower nets"),
    ("PROCASSINIT", r"Procedural assignment to declaration with initial value", None,
     "every register is declared `reg x = <init>;` (its reset/power-on value) and assigned "
     "in an `always @(posedge clk)` block"),
    ("CASEINCOMPLETE", r"Case values incompletely covered", r"^\s*casez\b",
     "every `always @*` block assigns each signal its default before the `casez` "
     "(Switch/FSM), so a value with no arm keeps the default: no latch"),
    ("DECLFILENAME", r"Filename '.*' does not match MODULE name: '.*\..*'", None,
     "the design and its submodules go into one file, submodules named hierarchically "
     "(`top.exp`)"),
    ("UNUSEDSIGNAL", r"Signal is not used: '", r"\bcopy-of-read-net\b",
     "named wires Amaranth keeps for Signals and port fields it merged into another net "
     "(`assign name = <net>;` or a constant, where the design reads <net> itself; or a "
     "struct port's whole value `{<field nets>}` where the design reads the fields)"),
    ("UNUSEDSIGNAL", r"Signal is not used: 'rst'$", None,
     "a component whose clocked logic is memory write ports only (hdl/trainer/params.py): "
     "Amaranth gives every module of the sync domain its reset input, which they do not use"),
    ("UNUSEDSIGNAL", r"Signal is not used: '", r"\bsrc=\S*/amaranth/(hdl/_dsl|lib/memory)\.py",
     "nets Amaranth's library makes whether used or not: an FSM's state decoders "
     "(`fsm_state == N`, one per state) and memory port field aliases"),
    ("ASCRANGE", r"Ascending bit range vector: left < right of bit range: \[-1:0\]", None,
     "Amaranth declares zero-width signals (a lane index when there is one lane, a counter "
     "of range(1)) as `[-1:0]` wires that nothing drives or reads"),
    ("UNUSEDSIGNAL", r"Signal is not driven, nor used: '", r"^\s*wire \[-1:0\]",
     "the same zero-width signals"),
    ("UNUSEDSIGNAL", r"Bits of signal are not used: '\$", None,
     "unread bits of Amaranth's internal `$n` intermediates: the low bits a rounding shift "
     "drops, the bits above a saturated or wrapped width"),
    ("CMPCONST", r"Comparison is constant due to limited range", r"hdl/arith\.py",
     "hdl.arith.round_shift with a 1-bit shift compares the 1-bit remainder with half "
     "(= 1): always false, folded away by synthesis (the generic nearest-even formula)"),
)


@dataclass
class LintWarning:
    code: str
    file: str
    line: int
    message: str

    def __str__(self):
        return f"%Warning-{self.code}: {self.file}:{self.line}: {self.message}"


_WARN_RE = re.compile(r"^%Warning-([A-Z0-9_]+): ([^:]+):(\d+):(?:\d+:)? (.*)$")
_ATTR_RE = re.compile(r"\(\*.*?\*\)")
_SRC_RE = re.compile(r'src = "([^"]*)"')
_CONST_RE = re.compile(r"\d+'[sS]?[bodhBODH][0-9a-fA-FxzXZ?_]+")
_TOKEN_RE = re.compile(r"\\\S+|[A-Za-z_][A-Za-z0-9_$]*")
_KEYWORDS = {"assign", "wire", "reg", "input", "output", "inout", "signed", "always", "begin", "end",
             "if", "else", "casez", "case", "endcase", "posedge", "negedge", "or", "module", "endmodule",
             "initial"}


def _name(token: str) -> str:
    return token[1:] if token.startswith("\\") else token


class _Module:
    """The lines of one Verilog module, indexed for "who drives / reads this net"."""

    def __init__(self, lines: list, first: int, last: int):
        self.lines, self.first, self.last = lines, first, last
        self.uses: dict = {}  # net -> line numbers (1-based) where its name appears
        for n in range(first, last + 1):
            text = _CONST_RE.sub(" ", _ATTR_RE.sub(" ", lines[n - 1]))
            for tok in _TOKEN_RE.findall(text):
                if tok not in _KEYWORDS:
                    self.uses.setdefault(_name(tok), []).append(n)

    def _assign(self, net: str):
        for n in self.uses.get(net, ()):
            m = re.match(r"\s*assign\s+(\\\S+|\w+)\s*=\s*(.*);\s*$", self.lines[n - 1])
            if m and _name(m.group(1)) == net:
                return n, m.group(2)
        return None

    def facts(self, net: str, decl_line: int) -> str:
        out = []
        srcs = []
        prev = self.lines[decl_line - 2] if decl_line >= 2 else ""
        srcs += _SRC_RE.findall(prev) if prev.strip().startswith("(*") else []
        found = self._assign(net)
        if found:
            n, rhs = found
            srcs += _SRC_RE.findall(self.lines[n - 1])
            nets = [_name(t) for t in _TOKEN_RE.findall(_CONST_RE.sub(" ", _ATTR_RE.sub(" ", rhs)))
                    if t not in _KEYWORDS]
            # a copy: the right-hand side is one net (maybe sliced, negated or zero-padded)
            # or a constant, and that net is read somewhere other than its own definition
            simple = re.fullmatch(r"\s*[~!]?\s*(\{[^{}]*\}|\\\S+\s*(\[[^\]]*\])?|\w+\s*(\[[^\]]*\])?|"
                                  r"\d+'[sS]?[bodhBODH][0-9a-fA-FxzXZ?_]+)\s*", _ATTR_RE.sub(" ", rhs))
            concat = rhs.strip().startswith("{")  # a struct's fields, side by side
            if simple and (len(set(nets)) <= 1 or concat) and all(self._read_elsewhere(x, n) for x in nets):
                out.append("copy-of-read-net")
        out += [f"src={s}" for s in srcs]
        return " ".join(out)

    def _read_elsewhere(self, net: str, skip_line: int) -> bool:
        drive = self._assign(net)
        for n in self.uses.get(net, ()):
            if n == skip_line or (drive and n == drive[0]):
                continue
            if re.match(r"\s*(wire|reg|input|output)\b", self.lines[n - 1]):
                continue
            if re.match(r"\s*" + re.escape("\\" + net if not re.fullmatch(r"\w+", net) else net)
                        + r"\s*(\[[^\]]*\])?\s*<?=", self.lines[n - 1]):
                continue  # a procedural write, not a read
            return True
        return False


def _modules(lines: list) -> list:
    mods, start = [], None
    for n, ln in enumerate(lines, 1):
        if re.match(r"\s*module\b", ln):
            start = n
        elif re.match(r"\s*endmodule\b", ln) and start is not None:
            mods.append(_Module(lines, start, n))
            start = None
    return mods


def _context(lines: list, mods: list, lineno: int, msg: str) -> str:
    src = lines[lineno - 1] if 0 < lineno <= len(lines) else ""
    m = re.search(r"used: '([^']*)'", msg)
    if not m:
        return src
    mod = next((x for x in mods if x.first <= lineno <= x.last), None)
    return src + " :: " + (mod.facts(m.group(1), lineno) if mod else "")


def lint(design, *, toplevel: str = "top", waivers=None, workdir=None, waived: list | None = None) -> list:
    """``verilator --lint-only -Wall`` on the design's Verilog; returns non-waived warnings.

    ``design``: an Amaranth component (or a zero-argument factory), or Verilog text.
    ``waivers``: (code, message regex, context regex or None, reason) tuples to ignore
    (default :data:`LINT_WAIVERS`); pass ``()`` to see everything. ``workdir``: where to
    keep the linted Verilog (default: a temporary directory). ``waived``: a list to which
    ``(waiver index, LintWarning)`` is appended for every waived warning. Raises RuntimeError when
    Verilator reports an error (not a warning).
    """
    from sim.runners.cocotb_run import _verilator_env, verilator_root, verilog_for

    waivers = LINT_WAIVERS if waivers is None else waivers
    text = design if isinstance(design, str) else verilog_for(design, toplevel)
    with tempfile.TemporaryDirectory(prefix="lint-") as tmp:
        wdir = Path(workdir) if workdir is not None else Path(tmp)
        wdir.mkdir(parents=True, exist_ok=True)
        src = wdir / f"{toplevel}.v"
        src.write_text(text)
        cmd = [str(verilator_root() / "bin" / "verilator"), "--lint-only", "-Wall", "-Wno-fatal",
               "--top-module", toplevel, str(src)]
        r = subprocess.run(cmd, env=_verilator_env(os.environ), capture_output=True, text=True, cwd=wdir)
    out = r.stdout + r.stderr
    errors = [ln for ln in out.splitlines() if ln.startswith("%Error")]
    if errors:
        raise RuntimeError("verilator --lint-only failed:\n" + "\n".join(errors[:20]))
    lines = text.splitlines()
    mods = None
    found = []
    for ln in out.splitlines():
        m = _WARN_RE.match(ln)
        if not m:
            continue
        code, lineno, msg = m.group(1), int(m.group(3)), m.group(4)
        if mods is None:
            mods = _modules(lines)
        ctx = _context(lines, mods, lineno, msg)
        warning = LintWarning(code, m.group(2), lineno, msg)
        hit = next((i for i, (c, rx, crx, _) in enumerate(waivers)
                    if code == c and re.match(rx, msg) and (crx is None or re.search(crx, ctx))), None)
        if hit is None:
            found.append(warning)
        elif waived is not None:
            waived.append((hit, warning))
    return found
