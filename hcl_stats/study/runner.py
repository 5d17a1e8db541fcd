"""Execution of Monte Carlo studies: plan, schedule units, write the store.

The unit of work is one (cell, replicate) with the estimators still missing for it,
computed by :func:`~hcl_stats.study.compute.compute_unit` (re-exported here), a
pure function of ``(study, cell, rep, labels)`` that records every failure instead
of raising it. This module plans the units and runs them on a backend.

Backends (:func:`run_study`)
----------------------------
``serial``
    In this process (``--jobs 1``).
``process`` (default)
    A ``concurrent.futures.ProcessPoolExecutor`` with ``jobs`` spawned workers.
``dask``
    ``dask.distributed``: an existing scheduler (``--scheduler tcp://host:port``)
    or a ``LocalCluster`` (``--dask-local N``). Workers compute; results travel
    back to the client.

In every backend only the calling process writes to the store, one transaction
per (cell, replicate), in completion order; since seeds depend only on
``(cell, rep, stream)`` the stored values are identical for any backend, number of
jobs and order. Each unit runs under ``threadpoolctl.threadpool_limits(blas_threads)``
(default 1 thread per worker) so that N workers do not oversubscribe the cores
and BLAS reductions do not depend on the thread count.

Progress: a tqdm bar on stderr (done/total, rate, ETA, failures); off with
``quiet=True`` or when stderr is not a terminal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from ..exceptions import ValidationError
from .compute import UnitTimeout, compute_unit
from .config import MAX_REPLICATIONS, Study
from .store import ResultStore, UnitRecord, provenance

__all__ = [
    "Backend",
    "UnitTimeout",
    "RunReport",
    "WorkItem",
    "compute_unit",
    "estimate_cost",
    "parse_where",
    "plan",
    "run_study",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkItem:
    """One (cell, replicate) and the estimator labels still to compute."""

    cell_index: int
    rep: int
    labels: tuple[str, ...]


@dataclass(frozen=True)
class RunReport:
    """What a call of :func:`run_study` did."""

    planned_units: int
    skipped_units: int
    written_units: int
    failed_units: int
    wall_time: float
    backend: str
    jobs: int


# ------------------------------------------------------------------ planning
def parse_where(study: Study, clauses: Sequence[str]) -> list[Callable[[Any], bool]]:
    """Cell filters from ``key=value`` clauses (``--where``).

    ``key`` is a scenario key of the study's task or ``cell`` (an id prefix);
    ``value`` is parsed as a TOML value (``dims=[20,30,40]``, ``n_samples=500``)
    or taken as a string, then normalised like the config.

    Examples
    --------
    >>> import tomllib
    >>> from pathlib import Path
    >>> from hcl_stats.study.config import parse_study
    >>> path = Path("simulations/quick.toml")
    >>> study = parse_study(tomllib.loads(path.read_text()), path)
    >>> from hcl_stats.study.runner import parse_where
    >>> keep = parse_where(study, ["n_samples=500"])
    >>> [c.factors["n_samples"] for c in study.cells if all(f(c) for f in keep)]
    [500]
    """
    import tomllib

    preds = []
    for clause in clauses:
        key, sep, text = clause.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValidationError(f"--where must be KEY=VALUE; got {clause!r}.")
        if key == "cell":
            prefix = text.strip()
            preds.append(lambda c, p=prefix: c.id.startswith(p))
            continue
        if key not in study.task.defaults:
            raise ValidationError(
                f"--where key must be 'cell' or a scenario key "
                f"({', '.join(study.task.defaults)}); got {key!r}."
            )
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        try:
            value = study.task.normalize(key, value)
        except ValueError as exc:
            raise ValidationError(f"--where {key} must be {exc}; got {text!r}.") from None
        preds.append(lambda c, k=key, v=value: c.factors[k] == v)
    return preds


def plan(
    study: Study,
    done: Iterable[tuple[str, int, str]] = (),
    *,
    reps: int | None = None,
    where: Sequence[str] = (),
    estimators: Sequence[str] | None = None,
) -> tuple[list[WorkItem], int]:
    """Work items still to compute, and the number of units already done.

    Parameters
    ----------
    study : Study
    done : iterable of (cell_id, rep, label)
        Units already in the store.
    reps : int, optional
        Number of replicates ``0..reps-1`` (default ``study.replications``).
    where : sequence of str
        ``key=value`` cell filters (see :func:`parse_where`).
    estimators : sequence of str, optional
        Estimator labels to run (default all).

    Examples
    --------
    >>> import tomllib
    >>> from pathlib import Path
    >>> from hcl_stats.study.config import parse_study
    >>> path = Path("simulations/quick.toml")
    >>> study = parse_study(tomllib.loads(path.read_text()), path)
    >>> from hcl_stats.study.runner import plan
    >>> items, n_done = plan(study, reps=2)
    >>> len(items) == 2 * len(study.cells), n_done
    (True, 0)
    >>> items, n_done = plan(study, [(study.cells[0].id, 0, "naive")], reps=2)
    >>> n_done, "naive" in items[0].labels
    (1, False)
    """
    labels = tuple(study.estimators)
    if estimators:
        unknown = [e for e in estimators if e not in study.estimators]
        if unknown:
            raise ValidationError(
                f"--estimator must be one of {', '.join(labels)}; got {unknown[0]!r}."
            )
        labels = tuple(e for e in labels if e in estimators)
    n_reps = study.replications if reps is None else int(reps)
    if not 1 <= n_reps <= MAX_REPLICATIONS:
        raise ValidationError(f"reps must be an integer in 1..{MAX_REPLICATIONS}; got {n_reps}.")
    preds = parse_where(study, where)
    cells = [c for c in study.cells if all(p(c) for p in preds)]
    if where and not cells:
        raise ValidationError(
            f"--where {' '.join(where)} must match at least one of the study's "
            f"{len(study.cells)} cells; got none. Cell ids: "
            f"{', '.join(c.id for c in study.cells[:5])}{' ...' if len(study.cells) > 5 else ''}."
        )
    done = set(done)
    items, skipped = [], 0
    for cell in cells:
        for rep in range(n_reps):
            todo = tuple(lab for lab in labels if (cell.id, rep, lab) not in done)
            skipped += len(labels) - len(todo)
            if todo:
                items.append(WorkItem(cell.index, rep, todo))
    return items, skipped


def _seed_key(study: Study, cell_index: int, rep: int) -> str:
    return json.dumps([study.seed, *study.cells[cell_index].key, rep])


# ------------------------------------------------------------------ backends
def _serial(study: Study, items: list[WorkItem], blas_threads: int | None, timeout=None):
    for item in items:
        yield item, compute_unit(
            study, item.cell_index, item.rep, item.labels, blas_threads, timeout
        )


def _watch_parent(parent: int) -> None:
    """Worker initializer: exit when the client dies (e.g. SIGKILL), never orphan."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="hcl-parent-watch").start()


#: Failure text of a unit whose worker process died (killed by the OS, e.g. out of
#: memory, or a crash in C code) while it ran alone in its worker.
WORKER_DIED = (
    "WorkerDied: the worker process running this fit died (killed by the operating "
    "system, e.g. out of memory, or crashed in compiled code); it is recorded as "
    "failed and not retried (use --retry-failed after fixing the cause)"
)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while worker processes start (main thread, POSIX only).

    A spawned child inherits an ignored SIGINT, so a Ctrl-C in the terminal does
    not raise KeyboardInterrupt inside every worker (and print its traceback); the
    client alone handles it and stops the workers.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _pool_round(study, items, jobs, blas_threads, timeout, crashed):
    """Run ``items`` in one process pool; yield results, collect crashed items."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    ctx = multiprocessing.get_context("spawn")
    with _sigint_ignored():
        pool = ProcessPoolExecutor(
            max_workers=min(jobs, len(items)), mp_context=ctx, initializer=_watch_parent,
            initargs=(os.getpid(),),
        )
        futures = {
            pool.submit(
                compute_unit, study, it.cell_index, it.rep, it.labels, blas_threads,
                timeout,
            ): it
            for it in items
        }
    clean = False
    try:
        for fut in as_completed(futures):
            try:
                result = fut.result()
            except BrokenProcessPool:
                crashed.append(futures[fut])
                continue
            yield futures[fut], result
        clean = True
    finally:
        if clean:
            pool.shutdown(wait=True)
        else:  # interrupted: do not wait for running units, stop the workers now
            procs = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in procs:
                with contextlib.suppress(Exception):
                    proc.terminate()


def _process(
    study: Study, items: list[WorkItem], jobs: int, blas_threads: int | None, timeout=None
):
    """Process-pool backend that survives a worker killed by the OS.

    When a worker dies, the pool breaks and every unit not finished yet is lost
    for this round. Those units are split into one item per estimator and run
    again; an item that also breaks its pool is then run alone in a fresh worker,
    and if that worker dies too the fit is recorded as failed (:data:`WORKER_DIED`).
    The estimators of a unit that finished are therefore always stored, and a
    fit that kills its process is tried at most three times.
    """
    crashed: list[WorkItem] = []
    if items:
        yield from _pool_round(study, items, jobs, blas_threads, timeout, crashed)
    # round 2: split the units of the broken pool into single estimators
    singles = [WorkItem(it.cell_index, it.rep, (lab,)) for it in crashed for lab in it.labels]
    crashed = []
    if singles:
        logger.warning("a worker process died; rerunning %d fit(s) one estimator each",
                       len(singles))
        yield from _pool_round(study, singles, jobs, blas_threads, timeout, crashed)
    # round 3: each remaining fit alone, so that a death is its own
    for it in crashed:
        again: list[WorkItem] = []
        yield from _pool_round(study, [it], 1, blas_threads, timeout, again)
        if again:
            yield it, [UnitRecord(lab, "failed", WORKER_DIED, 0.0, {}) for lab in it.labels]


#: Seconds to wait for a Dask scheduler (``--scheduler``) to answer.
SCHEDULER_TIMEOUT = 10.0


class SchedulerError(ValidationError):
    """The ``--scheduler`` address does not answer as a Dask scheduler."""


# ``dashboard_address=None`` does not free port 8787: the scheduler still starts
# its HTTP server there, and when the port is taken distributed warns and moves
# (a failure under ``filterwarnings=error``, noise for users). An ephemeral
# loopback port with the dashboard switched off never collides.
_NO_DASHBOARD = {
    "dashboard_address": "127.0.0.1:0",
    "scheduler_kwargs": {"dashboard": False},
}


def _dask(
    study: Study,
    items: list[WorkItem],
    blas_threads: int | None,
    *,
    scheduler: str | None,
    local_workers: int | None,
    processes: bool,
    timeout: float | None = None,
):
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise ImportError(
            "the Dask backend requires dask.distributed; install hcl_stats[distributed]"
        ) from exc
    cluster = None
    if scheduler:
        import dask

        # distributed bounds the TCP connect but not the handshake read that
        # follows it, so a server that accepts and stays silent hangs ``Client``;
        # the probe completes one handshake under our own deadline first. Do not
        # set ``distributed.comm.timeouts.tcp`` below 11 s: distributed asserts
        # that bound on every TCP stream and would refuse real schedulers.
        try:
            from ._scheduler import probe_scheduler

            probe_scheduler(scheduler, SCHEDULER_TIMEOUT)
            with dask.config.set({"distributed.comm.timeouts.connect": f"{SCHEDULER_TIMEOUT:g}s"}):
                client = Client(scheduler, timeout=SCHEDULER_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - a non-Dask server fails in many ways
            # (time-out, refused, or garbage read as a frame length: a MemoryError)
            raise SchedulerError(
                f"--scheduler must be the address of a running Dask scheduler that "
                f"answers within {SCHEDULER_TIMEOUT:g} s; got {scheduler!r} "
                f"({type(exc).__name__}: {exc})."
            ) from exc
    else:
        cluster = LocalCluster(
            n_workers=local_workers or 1,
            threads_per_worker=1,
            processes=processes,
            silence_logs=logging.WARNING,
            **_NO_DASHBOARD,
        )
        client = Client(cluster)
    try:
        futures = []
        index = {}
        for it in items:
            fut = client.submit(
                compute_unit, study, it.cell_index, it.rep, it.labels, blas_threads, timeout,
                pure=False,
            )
            futures.append(fut)
            index[fut.key] = it
        for fut in as_completed(futures):
            yield index[fut.key], fut.result()
            fut.release()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


@dataclass(frozen=True)
class Backend:
    """Where the units of a study are computed.

    Parameters
    ----------
    kind : {'serial', 'process', 'dask'}, default='process'
        ``'process'`` with ``jobs=1`` runs serially.
    jobs : int, optional
        Worker processes (default: ``os.cpu_count()``).
    scheduler : str, optional
        Address of a running Dask scheduler (``kind='dask'``).
    dask_local : int, optional
        Number of workers of a LocalCluster (``kind='dask'``, no scheduler).
    dask_processes : bool, default=True
        LocalCluster workers are processes (False: threads, for tests).
    blas_threads : int or None, default=1
        BLAS threads per worker (None: leave unpinned).

    Examples
    --------
    >>> Backend("process", jobs=1).resolved().kind
    'serial'
    """

    kind: str = "process"
    jobs: int | None = None
    scheduler: str | None = None
    dask_local: int | None = None
    dask_processes: bool = True
    blas_threads: int | None = 1

    def resolved(self) -> Backend:
        """The backend checked, with ``jobs`` filled in and ``process`` x 1 made serial.

        Raises
        ------
        ValidationError
            On an unknown kind, ``jobs < 1`` or ``dask_local < 1``.
        """
        if self.kind not in ("serial", "process", "dask"):
            raise ValidationError(
                f"backend must be 'serial', 'process' or 'dask'; got {self.kind!r}."
            )
        jobs = int(self.jobs or os.cpu_count() or 1)
        if jobs < 1:
            raise ValidationError(f"jobs must be >= 1; got {jobs}.")
        local = self.dask_local
        if local is not None and not (isinstance(local, int) and local >= 1):
            raise ValidationError(
                f"dask_local (--dask-local) must be an integer >= 1; got {local!r}."
            )
        kind = "serial" if self.kind == "process" and jobs == 1 else self.kind
        return replace(self, kind=kind, jobs=jobs)

    @property
    def workers(self) -> int:
        """Workers recorded for the run: ``jobs``, or the LocalCluster size for Dask."""
        return int(self.jobs or 0) if self.kind != "dask" else (self.dask_local or 0)

    def stream(self, study: Study, items: list[WorkItem], timeout: float | None):
        """Yield ``(item, records)`` as the units complete (a resolved backend)."""
        if self.kind == "serial":
            return _serial(study, items, self.blas_threads, timeout)
        if self.kind == "process":
            return _process(study, items, self.jobs, self.blas_threads, timeout)
        return _dask(study, items, self.blas_threads, scheduler=self.scheduler,
                     local_workers=self.dask_local, processes=self.dask_processes,
                     timeout=timeout)


def _backend(backend: str | Backend, loose: dict[str, Any]) -> Backend:
    """A Backend from ``run_study``'s ``backend`` and its older loose keywords."""
    defaults = {f.name: f.default for f in fields(Backend)}
    given = {k: v for k, v in loose.items() if v != defaults[k]}
    if isinstance(backend, Backend):
        if given:
            raise ValidationError(
                f"give the backend's options in the Backend value, not as keywords; got "
                f"{', '.join(sorted(given))} next to {backend!r}."
            )
        return backend.resolved()
    return Backend(kind=backend, **loose).resolved()


def run_study(
    study: Study,
    store: ResultStore,
    *,
    backend: str | Backend = "process",
    jobs: int | None = None,
    reps: int | None = None,
    where: Sequence[str] = (),
    estimators: Sequence[str] | None = None,
    retry_failed: bool = False,
    scheduler: str | None = None,
    dask_local: int | None = None,
    dask_processes: bool = True,
    blas_threads: int | None = 1,
    quiet: bool = False,
    argv: Sequence[str] = (),
    timeout: float | None = None,
) -> RunReport:
    """Compute every missing unit of ``study`` and write it to ``store``.

    Parameters
    ----------
    study : Study
    store : ResultStore
    backend : Backend or {'serial', 'process', 'dask'}, default='process'
        Where the units run (:class:`Backend`). A string names the kind; the
        keywords ``jobs``, ``scheduler``, ``dask_local``, ``dask_processes`` and
        ``blas_threads`` then fill in the rest (the older call style; with a
        Backend value they must be left at their defaults).
    jobs, scheduler, dask_local, dask_processes, blas_threads
        See :class:`Backend`.
    reps, where, estimators
        See :func:`plan`.
    retry_failed : bool, default=False
        Recompute units recorded as failed (they are skipped otherwise).
    quiet : bool, default=False
        No progress bar.
    argv : sequence of str
        Recorded in the ``runs`` table.
    timeout : float, optional
        Per-replicate timeout in seconds for the data generation and for each
        fit; a fit that runs longer is recorded as failed and the study goes on
        (POSIX, serial and process backends; see :func:`compute_unit`).

    Returns
    -------
    RunReport
    """
    back = _backend(backend, {
        "jobs": jobs, "scheduler": scheduler, "dask_local": dask_local,
        "dask_processes": dask_processes, "blas_threads": blas_threads,
    })
    if timeout is not None and not timeout > 0:
        raise ValidationError(f"timeout must be > 0 seconds; got {timeout!r}.")
    store.prepare(study)
    done = store.done(include_failed=not retry_failed)
    items, skipped = plan(study, done, reps=reps, where=where, estimators=estimators)
    prov = provenance()
    run_id = store.start_run(study.digest, prov, backend=back.kind, jobs=back.workers, argv=argv)
    start = time.perf_counter()
    stream = back.stream(study, items, timeout)
    written, failed = _store_stream(study, store, stream, len(items), quiet,
                                    run_id=run_id, prov=prov)
    store.finish_run(run_id, wall_time=time.perf_counter() - start, units=written,
                     failed=failed)
    return RunReport(
        planned_units=len(items),
        skipped_units=skipped,
        written_units=written,
        failed_units=failed,
        wall_time=time.perf_counter() - start,
        backend=back.kind,
        jobs=back.workers,
    )


def _store_stream(study, store, stream, total, quiet, *, run_id, prov) -> tuple[int, int]:
    """Write each completed unit in its own transaction; return (written, failed fits)."""
    written = failed = 0
    bar = _progress(total, quiet, study.name)
    try:
        for item, records in stream:
            cell_id = study.cells[item.cell_index].id
            kwargs = {"seed_key": _seed_key(study, item.cell_index, item.rep),
                      "run_id": run_id, "config_digest": study.digest, "prov": prov}
            try:
                store.write_unit(cell_id, item.rep, records, **kwargs)
            except sqlite3.IntegrityError:
                # Another `run` on the same store wrote some of these units after we
                # planned them. Its values are identical (seeds depend only on the
                # cell and replicate), so keep its rows and write only the rest.
                have = store.done(include_failed=False)
                records = [r for r in records if (cell_id, item.rep, r.estimator) not in have]
                if records:
                    store.write_unit(cell_id, item.rep, records, **kwargs)
                else:
                    continue
            written += 1
            failed += sum(r.status == "failed" for r in records)
            if bar is not None:
                bar.update(1)
                if failed:
                    bar.set_postfix(failed=failed, refresh=False)
    finally:
        if bar is not None:
            bar.close()
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    return written, failed


def _progress(total: int, quiet: bool, name: str) -> Any:
    if quiet or total == 0 or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - optional dependency
        return None
    import shutil

    size = shutil.get_terminal_size((100, 20))  # falls back if the tty reports 0 x 0
    return tqdm(total=total, desc=name, unit="unit", file=sys.stderr,
                ncols=min(size.columns, 120), nrows=max(size.lines, 2))


# ------------------------------------------------------------------ cost
#: Rough seconds per d^3 (estimators, Wishart draw) and per n d^2 (data draw)
#: on a 2-core 2026 laptop, from fits at d=(100, 500, 800), K=21.
_COST = {
    "naive": 1.5e-10, "schur": 5.5e-10, "masked_gradient": 3.0e-9, "ajive": 6.0e-10,
    "_default": 3.0e-9,
}
_COST_DATA = 2.5e-11
_COST_WISHART = 1.0e-10


def estimate_cost(study: Study, *, reps: int | None = None) -> dict[str, float]:
    """A rough serial cost (seconds) of the whole study, per part.

    Uses flop-count heuristics (estimators ~ ``d^3``, data ~ ``n d^2``); measure
    one unit with ``hcl-stats validate --probe`` for a better figure.

    Examples
    --------
    >>> import tomllib
    >>> from pathlib import Path
    >>> from hcl_stats.study.config import parse_study
    >>> path = Path("simulations/quick.toml")
    >>> study = parse_study(tomllib.loads(path.read_text()), path)
    >>> from hcl_stats.study.runner import estimate_cost
    >>> cost = estimate_cost(study, reps=2)
    >>> round(cost["total"], 9) == round(sum(v for k, v in cost.items() if k != "total"), 9)
    True
    """
    n_reps = study.replications if reps is None else reps
    total: dict[str, float] = {"generate": 0.0}
    for cell in study.cells:
        f = cell.factors
        d = float(sum(f.get("dims", [0])))
        n = float(f.get("n_samples", 0))
        gen = _COST_WISHART * d**3 if study.sampler == "wishart" else _COST_DATA * n * d * d
        total["generate"] += n_reps * gen
        for label, spec in study.estimators.items():
            c = _COST.get(spec.name, _COST["_default"])
            total[label] = total.get(label, 0.0) + n_reps * c * d**3
    total["total"] = math.fsum(total.values())
    return total


def probe_cost(study: Study, *, reps: int | None = None) -> Mapping[str, float]:
    """Time one unit of the largest cell (serially) and extrapolate to the study.

    Returns the measured seconds of that unit per estimator and the extrapolated
    serial total, scaling with ``d^3`` across cells.
    """
    n_reps = study.replications if reps is None else reps
    sizes = [sum(c.factors.get("dims", [1])) for c in study.cells]
    big = max(range(len(sizes)), key=lambda i: (sizes[i], study.cells[i].factors.get("n_samples", 0)))
    start = time.perf_counter()
    records = compute_unit(study, big, 0, tuple(study.estimators))
    unit = time.perf_counter() - start
    scale = sum((s / sizes[big]) ** 3 for s in sizes)
    out = {f"unit:{r.estimator}": r.wall_time for r in records}
    out["unit"] = unit
    out["total"] = unit * scale * n_reps
    return out
