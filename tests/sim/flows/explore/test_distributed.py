"""explore on a real Dask cluster: a ``dask scheduler`` and two ``dask worker`` processes on
localhost (the ``distributed`` package's own command-line entry points, random free ports).

- the same 4-point space gives the same accuracies through ``--scheduler`` as on the
  embedded LocalCluster (``--workers 2``);
- a worker killed mid-run (its whole process group: nanny and worker) does not lose a
  point: every point completes, and the run reports the worker that left.
"""
from __future__ import annotations

import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]

# xor at 600 epochs: over a second of golden training per point, so a 6-point run on two
# workers lasts long enough to kill one of them while points are still running
SPACE_4 = '"training.learning_rate" = [2.0, 1.0]\n"hardware.lanes" = [2, 4]\n'
SPACE_6 = '"training.learning_rate" = [2.0, 1.5, 1.0]\n"training.init_seed" = [1, 2]\n'


def _dask_cli() -> str:
    """The ``dask`` console script of this Python (a dependency of the project: never skip)."""
    found = shutil.which("dask", path=os.path.dirname(sys.executable)) or shutil.which("dask")
    assert found, "the 'dask' command is missing: pip install -e . installs dask[distributed]"
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    # the workers import sim.flows.explore.stages, so they need the repository on their path
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                PYTHONWARNINGS="ignore")


class Cluster:
    """A scheduler and workers as subprocesses, each in its own process group."""

    def __init__(self, tmp: Path):
        self.tmp, self.procs, self.workers = tmp, [], []
        self.address = f"tcp://127.0.0.1:{_free_port()}"

    def _spawn(self, name, argv):
        log = open(self.tmp / f"{name}.log", "w")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=_env(), cwd=ROOT,
                             start_new_session=True)
        self.procs.append(p)
        return p

    def start(self, n_workers: int = 2):
        port = self.address.rsplit(":", 1)[1]
        # (the HTTP servers on free ports: two clusters on one machine never collide at 8787)
        self._spawn("scheduler", [_dask_cli(), "scheduler", "--host", "127.0.0.1", "--port", port,
                                  "--dashboard-address", "127.0.0.1:0"])
        for i in range(n_workers):
            self.workers.append(self._spawn(f"worker{i}", [
                _dask_cli(), "worker", self.address, "--nthreads", "1", "--name", f"w{i}",
                "--dashboard-address", "127.0.0.1:0", "--host", "127.0.0.1"]))
        self._wait_for_workers(n_workers)
        return self

    def _wait_for_workers(self, n, timeout=60):
        from distributed import Client
        deadline = time.monotonic() + timeout
        while True:
            try:
                with Client(self.address, timeout="5s") as c:
                    c.wait_for_workers(n, timeout=max(1, deadline - time.monotonic()))
                    return
            except (OSError, TimeoutError):
                if time.monotonic() > deadline:
                    logs = "\n".join((self.tmp / f).read_text()[-2000:] for f in os.listdir(self.tmp)
                                     if f.endswith(".log"))
                    raise AssertionError(f"the Dask cluster did not start:\n{logs}")
                time.sleep(0.5)

    def kill_worker(self, i):
        os.killpg(self.workers[i].pid, signal.SIGKILL)  # nanny and worker: no restart

    def stop(self):
        for p in reversed(self.procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    try:
        yield c.start(2)
    finally:
        c.stop()


def _explore(tmp_path, space_text, out, *extra, epochs="100", background=False):
    space = tmp_path / "space.toml"
    space.write_text(space_text)
    argv = [sys.executable, "-m", "sim.cli", "explore", "--config", "examples/xor.toml", "--space", str(space),
            "--epochs", epochs, "--out", str(out), *extra]
    if background:
        log = open(tmp_path / "explore.log", "w")
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=_env(), cwd=ROOT)
    return subprocess.run(argv, capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=300)


def _rows(out: Path) -> dict:
    with (out / "results.csv").open() as f:
        return {r["point"]: r for r in csv.DictReader(f)}


def test_scheduler_run_equals_the_local_run(cluster, tmp_path):
    # golden only: the accuracies are the question (the workers need not import Amaranth)
    remote = _explore(tmp_path, SPACE_4, tmp_path / "remote", "--scheduler", cluster.address, "--stages", "golden")
    assert remote.returncode == 0, remote.stdout + remote.stderr
    assert f"the Dask cluster at {cluster.address}" in remote.stdout
    local = _explore(tmp_path, SPACE_4, tmp_path / "local", "--workers", "2", "--stages", "golden")
    assert local.returncode == 0, local.stdout + local.stderr
    r, l = _rows(tmp_path / "remote"), _rows(tmp_path / "local")
    assert len(r) == 4 and set(r) == set(l)
    for key in r:
        assert r[key]["status"] == "ok", r[key]
        for field in ("float_test_accuracy", "fixed_test_accuracy", "float_loss", "fixed_loss"):
            assert r[key][field] != "" and r[key][field] == l[key][field], (key, field)


def test_a_worker_killed_mid_run_loses_no_point(cluster, tmp_path):
    out = tmp_path / "out"
    run = _explore(tmp_path, SPACE_6, out, "--scheduler", cluster.address, epochs="600", background=True)
    jsonl = out / "results.jsonl"
    deadline = time.monotonic() + 120
    # kill a worker once the first result is in: the other points are running or queued
    while not (jsonl.exists() and jsonl.read_text().count("\n") >= 1):
        assert run.poll() is None, (tmp_path / "explore.log").read_text()
        assert time.monotonic() < deadline, "no result within 120 s"
        time.sleep(0.1)
    done_at_kill = jsonl.read_text().count("\n")
    cluster.kill_worker(1)
    assert run.wait(timeout=240) == 0, (tmp_path / "explore.log").read_text()
    log = (tmp_path / "explore.log").read_text()
    assert done_at_kill < 12, "the run was over before the kill: make the points slower"
    assert "worker w1" in log and "left the cluster" in log, log
    rows = _rows(out)
    assert len(rows) == 6 and all(r["status"] == "ok" for r in rows.values()), rows
    assert all(r["fixed_test_accuracy"] != "" and r["cycles_per_sample"] != "" for r in rows.values())
