"""The runner on an in-process Dask cluster (threads: a test can replace a stage function):
results as they finish, a failure retried once and reported, a second failure recorded
and never dropped, a deterministic refusal reported as invalid without a retry, reruns
that skip what is done."""
from __future__ import annotations

import json
import threading

import pytest

from golden.config import load_config
from sim.flows.explore import stages as stages_mod
from sim.flows.explore.flow import run_explore
from sim.flows.explore.runner import run_space
from sim.flows.explore.space import parse_space
from sim.flows.explore.store import ResultStore


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address="127.0.0.1:0") as cluster, \
            Client(cluster) as c:
        yield c


def _space(text, epochs=20):
    return parse_space(text, load_config("examples/xor.toml").with_(epochs=epochs))


def _events(client, space, out, stages=("golden", "cycles")):
    seen = []
    summary = run_space(client, space, stages, {"out_dir": str(out)}, ResultStore(out), on_event=seen.append)
    return summary, seen


def test_results_arrive_for_every_point_and_stage(client, tmp_path):
    space = _space('"hardware.lanes" = [1, 2, 3]')
    summary, seen = _events(client, space, tmp_path)
    got = {(e.point.index, e.stage) for e in seen if e.kind == "result"}
    assert got == {(i, s) for i in range(3) for s in ("golden", "cycles")}
    assert summary.tasks_submitted == 6 and not summary.retried and not summary.failed
    lines = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and {x["result"]["status"] for x in lines} == {"ok"}


def test_a_failure_is_reported_and_retried_once(client, tmp_path, monkeypatch):
    calls = {}
    lock = threading.Lock()
    real = stages_mod.STAGE_FUNCTIONS["cycles"]

    def flaky(cfg, options):  # fails the first time for each point
        with lock:
            calls[options["point"]] = calls.get(options["point"], 0) + 1
            first = calls[options["point"]] == 1
        if first:
            raise RuntimeError("disk full (simulated)")
        return real(cfg, options)

    monkeypatch.setitem(stages_mod.STAGE_FUNCTIONS, "cycles", flaky)
    space = _space('"hardware.lanes" = [1, 2]')
    summary, seen = _events(client, space, tmp_path)
    retries = [e for e in seen if e.kind == "retry"]
    assert len(retries) == 2 and all("disk full" in e.message and e.stage == "cycles" for e in retries)
    assert set(calls.values()) == {2}
    assert not summary.failed
    results = ResultStore(tmp_path).results
    assert all(results[p.key]["cycles"]["status"] == "ok" for p in space.points)


def test_a_second_failure_is_recorded_and_the_rest_of_the_chain_not_run(client, tmp_path, monkeypatch):
    def broken(cfg, options):
        raise RuntimeError("tool crashed (simulated)")

    monkeypatch.setitem(stages_mod.STAGE_FUNCTIONS, "golden", broken)
    space = _space('"hardware.lanes" = [1, 2]')
    report = run_explore(client, space, ("golden", "cycles"), tmp_path)
    assert [f["stage"] for f in report["failed"]] == ["golden", "golden"]
    assert len(report["retried"]) == 2 and "tool crashed" in report["failed"][0]["error"]
    assert report["status_counts"] == {"failed": 2}
    rows = report["rows"]
    assert all(r.get("cycles_per_sample") is None for r in rows)  # the chain stopped at golden
    assert all("golden: RuntimeError: tool crashed" in r["message"] for r in rows)
    # a rerun tries the failed stages again (they are not "done")
    monkeypatch.undo()
    report = run_explore(client, space, ("golden", "cycles"), tmp_path)
    assert report["status_counts"] == {"ok": 2} and report["tasks_submitted"] == 4


def test_a_refusal_is_invalid_not_retried(client, tmp_path):
    # the xor network has 2 inputs, iris 4 features: load_dataset refuses (DatasetError), and
    # 5000 units exceed the hardware's limit (HardwareLimitError): both deterministic answers
    space = _space('"data.dataset" = ["xor", "iris"]\n"network.layers" = [[2, 4, 1], [2, 5000, 1]]')
    summary, seen = _events(client, space, tmp_path)
    assert not summary.retried and not summary.failed
    res = ResultStore(tmp_path).results
    by_values = {(p.values["data.dataset"], p.values["network.layers"][1]): res[p.key] for p in space.points}
    assert by_values[("xor", 4)]["cycles"]["status"] == "ok"
    assert by_values[("iris", 4)]["golden"]["status"] == "invalid"
    assert "4 features but network.layers[0] = 2" in by_values[("iris", 4)]["golden"]["message"]
    assert by_values[("iris", 4)]["cycles"]["status"] == "skipped"
    assert by_values[("xor", 5000)]["golden"]["status"] == "ok"
    assert by_values[("xor", 5000)]["cycles"]["status"] == "invalid"
    assert "exceeds the limit" in by_values[("xor", 5000)]["cycles"]["message"]


def test_a_rerun_skips_points_done_and_runs_new_ones(client, tmp_path):
    run_explore(client, _space('"hardware.lanes" = [1, 2]'), ("golden", "cycles"), tmp_path)
    again = run_explore(client, _space('"hardware.lanes" = [1, 2]'), ("golden", "cycles"), tmp_path)
    assert again["tasks_submitted"] == 0 and again["points_resumed"] == 2
    # a new value: only its point runs
    more = run_explore(client, _space('"hardware.lanes" = [1, 2, 3]'), ("golden", "cycles"), tmp_path)
    assert more["tasks_submitted"] == 2 and more["points_resumed"] == 2
    assert more["status_counts"] == {"ok": 3}
    # a point is its full config: another epoch count is another point, even with the same values
    other = run_explore(client, _space('"hardware.lanes" = [1, 2]', epochs=21), ("golden", "cycles"), tmp_path)
    assert other["tasks_submitted"] == 4 and other["points_resumed"] == 0


def test_a_rerun_with_another_stage_runs_only_that_stage(client, tmp_path):
    space = _space('"hardware.lanes" = [1, 2]')
    first = run_explore(client, space, ("golden",), tmp_path)
    assert first["tasks_submitted"] == 2 and all(r.get("cycles_per_sample") is None for r in first["rows"])
    second = run_explore(client, space, ("golden", "cycles"), tmp_path)
    assert second["tasks_submitted"] == 2  # the cycles of each point, after its stored golden result
    assert [r["cycles_per_sample"] > 0 for r in second["rows"]] == [True, True]
    assert [r["fixed_test_accuracy"] for r in second["rows"]] == [r["fixed_test_accuracy"] for r in first["rows"]]


class _FakeClient:
    """Answers the watch's two questions from a script: the scheduler's workers (or an
    error) and what each worker is running."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.scheduler = self

    def identity(self, n_workers):
        return None

    def sync(self, fn, **kwargs):
        a = self.answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return {"workers": {addr: {"name": name} for addr, name in a.items()}}

    def processing(self):
        return {"tcp://a": ["golden-1"], "tcp://b": ["golden-2", "cycles-2"]}


def test_the_worker_watch_reports_a_worker_that_left_and_nothing_else():
    from sim.flows.explore.runner import _WorkerWatch
    both = {"tcp://a": "w0", "tcp://b": "w1"}
    # the scheduler does not answer once: that is no news, not two lost workers
    watch = _WorkerWatch(_FakeClient([both, both, OSError("timeout"), both, {"tcp://a": "w0"}, {}]), every_s=0)
    assert watch.poll() == [] and watch.poll() == [] and watch.poll() == []
    (lost,) = watch.poll()
    assert lost.kind == "lost" and "worker w1 (tcp://b) left" in lost.message
    assert "it was running cycles-2, golden-2" in lost.message  # sorted
    kinds = [e.kind for e in watch.poll()]
    assert kinds == ["lost", "no_workers"]
