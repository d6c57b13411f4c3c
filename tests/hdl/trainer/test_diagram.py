"""docs/trainer.md's block diagram is the top's wiring (hdl/trainer/diagram.py).

The Mermaid block in the doc must equal the one read from ``Trainer(cfg).elaborate`` now,
so a connection added, removed or renamed in hdl/trainer/top.py fails here until
``python -m hdl.trainer.diagram`` redraws the block and docs/trainer_blocks.png.
"""
import pytest
from amaranth.hdl import Value

from golden.config import load_config
from hdl.trainer import Trainer, diagram
from hdl.trainer.diagram import (DEFAULT_CONFIG, DOC, HOST_IN, HOST_OUT, PNG, block_edges,
                                 block_nodes, doc_block, mermaid, unconnected_ports)

REGENERATE = "run `python -m hdl.trainer.diagram` and commit docs/trainer.md and docs/trainer_blocks.png"


@pytest.fixture(scope="module")
def cfg():
    return load_config(DEFAULT_CONFIG)


@pytest.fixture(scope="module")
def edges(cfg):
    return {(s, d): ports for s, d, ports in block_edges(cfg)}


def test_doc_block_is_the_code(cfg):
    assert doc_block(DOC.read_text()) == mermaid(cfg), REGENERATE
    assert PNG.exists() and "![trainer blocks](trainer_blocks.png)" in DOC.read_text()


def test_every_submodule_is_a_connected_node(cfg, edges):
    subs = list(Trainer(cfg).elaborate(None)._named_submodules)
    assert len(subs) >= 10
    names = [n for n, _ in block_nodes(cfg)]
    assert names == [HOST_IN, *subs, HOST_OUT]
    text = mermaid(cfg)
    for name in names:
        assert f"\n    {name}[" in text or f"\n    {name}(" in text, name
        assert any(name in pair for pair in edges), f"{name} has no connection"
    # the picture's fixed layout places every node (a new component needs a place there)
    assert set(names) <= set(diagram._BOXES) | set(diagram._BARS)


def test_known_edges(edges):
    assert edges[("sequencer", "lanes")] == ["issue"]
    assert edges[("sequencer", "params")] == ["issue.addr>addr", "issue.slot>slot"]
    assert {"upd_beat>beat", "prod[*]>grad[*]", "eps_a[*]>eps[*]"} <= set(edges[("lanes", "update")])
    assert edges[("update", "params")] == ["w_wr[*]", "b_wr[*]"]
    assert edges[("backward", "deltas")] == ["delta>bwd_delta"]
    assert edges[("drain", "output")] == ["logit", "a_data"]
    # wiring.connect's interfaces: one edge from the driving side, ready going back or not
    assert edges[(HOST_IN, "loader")] == ["s_data"]
    assert edges[(HOST_IN, "registers")] == ["csr"]
    assert edges[("output", HOST_OUT)] == ["m_data"]
    assert edges[("sequencer", HOST_OUT)] == ["~idle>busy"]
    assert ("loader", HOST_IN) not in edges and ("params", "update") not in edges


def test_every_input_is_driven(cfg):
    assert unconnected_ports(cfg)["inputs"] == []


def test_a_removed_connection_shows(cfg, monkeypatch):
    """The derivation reads the code: drop the sequencer -> lanes issue assignment from the
    top and the edge goes, and the doc's block no longer matches."""
    elaborate = Trainer.elaborate

    def without_issue(self, platform):
        m = elaborate(self, platform)
        lanes, seq = (m._named_submodules[n][0] for n in ("lanes", "sequencer"))
        dst, src = Value.cast(lanes.issue), Value.cast(seq.issue)
        comb = m._statements["comb"]
        keep = [s for s in comb if not (s.lhs is dst and s.rhs is src)]
        assert len(keep) == len(comb) - 1
        comb[:] = keep
        return m

    monkeypatch.setattr(Trainer, "elaborate", without_issue)
    assert ("sequencer", "lanes") not in {(s, d) for s, d, _ in block_edges(cfg)}
    assert "lanes.issue" in unconnected_ports(cfg)["inputs"]
    assert doc_block(DOC.read_text()) != mermaid(cfg)
