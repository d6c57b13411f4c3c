"""Runs a space on a Dask cluster: one task per (point, stage), a point's stages chained.

Each stage of a point is submitted as a task whose argument is the previous stage's future,
so Dask runs them in order on whichever workers are free and keeps the chain's lineage: a
worker that dies takes its results with it and the scheduler computes them again from the
chain. Results are handled as they finish (``distributed.as_completed``): recorded in the
:class:`~.store.ResultStore` and passed to ``on_event``.

Failures are visible, never silent:

- a task that raises is reported and submitted once more (the stage and the rest of its
  chain, under new keys). Retrying here rather than with ``submit(retries=1)``, which Dask
  would do without telling the client, is what lets the run say which stage failed, why,
  and that it is being retried. A second failure is recorded as the stage's ``failed``
  result and reported; a rerun with the same output directory tries it again;
- a worker that leaves the cluster is reported with the tasks it was running; the scheduler
  gives them to the other workers (up to its ``allowed-failures``, then ``KilledWorker``,
  which is a failure as above);
- a deterministic refusal (the config, the dataset or the hardware limits) is not a failure:
  the stage returns ``invalid`` (stages.py) and nothing is retried.
"""
from __future__ import annotations

import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field

from .space import Point, Space
from .stages import STAGES, run_stage
from .store import ResultStore

__all__ = ["Event", "RunSummary", "run_space", "dask_client", "ClusterError"]


class ClusterError(RuntimeError):
    """The Dask cluster cannot be started or reached (a user error: one line, exit code 2)."""


@dataclass
class Event:
    """Something the user hears about: ``result`` (a stage finished; ``result`` holds it),
    ``resumed`` (a point's stages were all in the store already), ``invalid`` (the config
    refused the point), ``retry`` and ``failed`` (a task raised; ``message`` says what),
    ``lost`` (a worker left; ``message`` names it and its tasks), ``no_workers``."""
    kind: str
    point: Point | None = None
    stage: str | None = None
    result: dict | None = None
    message: str = ""


@dataclass
class RunSummary:
    points: int = 0
    invalid: int = 0
    resumed: int = 0
    tasks_submitted: int = 0
    retried: list = field(default_factory=list)   # (point key, stage, message)
    failed: list = field(default_factory=list)    # (point key, stage, message)
    lost_workers: list = field(default_factory=list)


@contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None, connect_timeout_s: float = 15):
    """A ``distributed.Client``: on an existing scheduler at ``scheduler`` (``tcp://HOST:PORT``,
    given up after ``connect_timeout_s``), else on an embedded LocalCluster of ``workers``
    processes (one thread each: a golden training is one busy Python thread). Its scheduler's
    HTTP server (the dashboard, if bokeh is installed) takes a free port: the default 8787
    would make a second explore on the machine fail to start."""
    import logging

    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout=f"{connect_timeout_s}s")
        except (OSError, TimeoutError, ValueError) as e:
            raise ClusterError(f"cannot reach the Dask scheduler at {scheduler!r}: {e}") from None
        try:
            yield client
        finally:
            client.close()
        return
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0",
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client


class _Chains:
    """The current future of each (point, stage), and the stages already retried."""

    def __init__(self):
        self.meta = {}        # future key -> (point, stage)
        self.current = {}     # (point key, stage) -> future
        self.retried = set()  # (point key, stage)
        self.resubmits = 0    # makes the keys of resubmitted chains unique

    def upstream(self, point: Point, stage: str, stages: tuple):
        i = stages.index(stage)
        return self.current.get((point.key, stages[i - 1])) if i else None


def run_space(client, space: Space, stages: tuple, options: dict, store: ResultStore, on_event=None,
              poll_s: float = 0.2) -> RunSummary:
    """Run every point of ``space`` through ``stages`` (golden first) on ``client``.

    ``options`` holds the stages' settings (stages.py: ``target``, ``out_dir``, ``simulator``,
    ``samples``, ``build_root``). Points whose stages are all in ``store`` are skipped.
    Returns when every task has finished or failed twice."""
    from distributed import Future, as_completed

    emit = on_event or (lambda e: None)
    stages = tuple(s for s in STAGES if s in stages)
    summary = RunSummary(points=len(space))
    chains = _Chains()
    ac = as_completed()
    # task keys unique to this run: a key the cluster still holds from an earlier run (its
    # futures are released asynchronously) would hand back that run's result
    run_id = uuid.uuid4().hex[:8]

    def submit_chain(point: Point, start: int, prev, retry: bool):
        if retry:  # a key Dask still holds (the erred future) would return that future
            chains.resubmits += 1
        for stage in stages[start:]:
            key = f"{stage}-{point.key}-{run_id}" + (f"-retry{chains.resubmits}" if retry else "")
            opts = dict(options, point=point.key)
            fut = client.submit(run_stage, stage, point.config, prev, opts, key=key, pure=False)
            chains.meta[fut.key] = (point, stage)
            chains.current[(point.key, stage)] = fut
            ac.add(fut)
            summary.tasks_submitted += 1
            prev = fut

    for point in space.points:
        if not point.valid:
            summary.invalid += 1
            emit(Event("invalid", point, message=point.error))
            continue
        done = store.done(point.key)
        missing = [i for i, s in enumerate(stages) if s not in done]
        if not missing:
            summary.resumed += 1
            emit(Event("resumed", point))
            continue
        start = missing[0]  # stages before it are done; those after it run again
        submit_chain(point, start, done[stages[start - 1]] if start else None, retry=False)

    watch = _WorkerWatch(client)
    while not ac.is_empty():
        batch = ac.next_batch(block=False)
        if not batch:
            for ev in watch.poll():
                if ev.kind == "lost":
                    summary.lost_workers.append(ev.message)
                emit(ev)
            time.sleep(poll_s)
            continue
        for fut in batch:
            point, stage = chains.meta[fut.key]
            if chains.current.get((point.key, stage)) is not fut:
                continue  # superseded by a retry
            if fut.status == "finished":
                result = fut.result()
                store.record(point, stage, result)
                emit(Event("result", point, stage, result))
                continue
            up = chains.upstream(point, stage, stages)
            if isinstance(up, Future) and up.status != "finished":
                continue  # the stage before failed: its own handling resubmits or reports the chain
            message = _describe(fut)
            if (point.key, stage) not in chains.retried:
                chains.retried.add((point.key, stage))
                summary.retried.append((point.key, stage, message))
                emit(Event("retry", point, stage, message=message))
                prev = up if up is not None else _stored_prev(store, point, stage, stages)
                submit_chain(point, stages.index(stage), prev, retry=True)
            else:
                summary.failed.append((point.key, stage, message))
                result = {"stage": stage, "status": "failed", "message": message}
                store.record(point, stage, result)
                emit(Event("failed", point, stage, result, message))
    return summary


def _stored_prev(store: ResultStore, point: Point, stage: str, stages: tuple):
    i = stages.index(stage)
    return store.done(point.key).get(stages[i - 1]) if i else None


def _describe(fut) -> str:
    """One line: the exception a task raised (KilledWorker: its worker died too often)."""
    try:
        exc = fut.exception()
    except Exception as e:  # cancelled futures raise on exception()
        return f"{type(e).__name__}: {e}"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _WorkerWatch:
    """Notices workers leaving (and the tasks they were running) by polling the scheduler."""

    def __init__(self, client, every_s: float = 0.5):
        self.client, self.every_s = client, every_s
        self.workers = self._workers() or {}
        self.processing = {}
        self.next = time.monotonic()
        self.empty_reported = False

    def _workers(self) -> dict | None:
        """address -> name of the scheduler's workers now; None when the scheduler did not answer.

        Asked of the scheduler directly: ``client.scheduler_info()`` returns a cached identity
        that the client's own periodic refresh (which asks for no workers) may have emptied
        between the fetch and the read, and an empty list must never look like lost workers."""
        try:
            ident = self.client.sync(self.client.scheduler.identity, n_workers=-1)
            return {a: w.get("name", a) for a, w in ident["workers"].items()}
        except (OSError, TimeoutError, KeyError):
            return None

    def poll(self) -> list:
        if time.monotonic() < self.next:
            return []
        self.next = time.monotonic() + self.every_s
        now = self._workers()
        if now is None:
            return []
        events = []
        for addr in set(self.workers) - set(now):
            keys = sorted(self.processing.get(addr, ()))
            running = f"; it was running {', '.join(map(str, keys))}" if keys else ""
            events.append(Event("lost", message=f"worker {self.workers[addr]} ({addr}) left the cluster{running}; "
                                                f"the scheduler gives its tasks and lost results to the other workers"))
        if not now and not self.empty_reported:
            events.append(Event("no_workers", message="no workers in the cluster: waiting for one to join"))
        self.empty_reported = not now
        self.workers = now
        try:
            self.processing = {a: list(k) for a, k in self.client.processing().items()}
        except (OSError, TimeoutError):
            pass
        return events
