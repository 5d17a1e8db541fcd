"""Compute one unit of a Monte Carlo study: generate, fit, score.

The unit of work is one (cell, replicate). :func:`compute_unit` draws the truth
and the data once (common random numbers), fits each estimator, evaluates every
metric and returns :class:`~hcl_stats.study.store.UnitRecord` s. It is a pure
function of ``(study, cell, rep, labels)``; it catches every exception of the
generation, the fit or a metric and records it as a failed unit (the only place
in the package that catches broadly), so one failure never stops a study. The
backends that schedule units live in :mod:`hcl_stats.study.runner`.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from .config import Study
from .registry import STREAM_METHOD, MetricContext, get_metric, unit_rng
from .store import UnitRecord

__all__ = ["UnitTimeout", "compute_unit"]

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _limit_threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional dependency
        logger.info("threadpoolctl not installed; BLAS threads are not pinned")
        yield
        return
    with threadpool_limits(limits=n):
        yield


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class UnitTimeout(Exception):
    """A fit or a data generation ran past the per-replicate timeout."""


@contextlib.contextmanager
def _deadline(seconds: float | None, what: str) -> Iterator[dict]:
    """Raise :class:`UnitTimeout` in the body after ``seconds`` (SIGALRM).

    Only in the main thread of a process on POSIX (serial and process backends);
    elsewhere (Dask thread workers, Windows) the body runs without a deadline. A
    hang inside one long C call (e.g. LAPACK) is interrupted when the call returns.
    The body must set ``state["armed"] = False`` as its last statement, so that an
    alarm landing after the body never raises outside it.
    """
    import signal
    import threading

    state = {"armed": True}
    if (
        not seconds
        or not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield state
        return

    def expire(signum, frame):
        if state["armed"]:
            state["armed"] = False
            raise UnitTimeout(f"{what} exceeded the per-replicate timeout of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))
    try:
        yield state
    finally:
        state["armed"] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _not_converged(fit: Any) -> str | None:
    """Failure text for a fit whose solver did not converge (counted as failed)."""
    diag = getattr(fit, "diagnostics", None)
    if diag is None or getattr(diag, "converged", None) is not False:
        return None
    detail = "; ".join(w for w in getattr(diag, "warnings", ()) if "Convergence" in w)
    grad = getattr(diag, "relative_gradient", None)
    extra = f", relative gradient {grad:.3g}" if isinstance(grad, float) else ""
    return (
        f"NotConverged: solver stopped after {getattr(diag, 'n_iter', '?')} iterations"
        f"{extra}" + (f" ({detail})" if detail else "")
    )


def compute_unit(
    study: Study,
    cell_index: int,
    rep: int,
    labels: Sequence[str],
    blas_threads: int | None = 1,
    timeout: float | None = None,
    share_spectra: bool = True,
) -> list[UnitRecord]:
    """Generate one (cell, replicate), fit the estimators ``labels`` and score them.

    Returns one :class:`UnitRecord` per label. Exceptions are recorded as failed
    records, never raised. Warnings raised during a fit are kept in the record's
    ``error`` text of an 'ok' unit (``"warning: ..."``). A fit whose diagnostics
    say ``converged=False`` is recorded as failed (``"NotConverged: ..."``, no
    metric values): a study counts it as a failure, not a number. With
    ``timeout`` (seconds), the data generation and each fit (with its metrics)
    that run longer are interrupted and recorded as failed
    (``"UnitTimeout: ..."``); see :func:`_deadline` for where this applies.

    With ``share_spectra`` (default) the estimators of the unit share one
    :class:`~hcl_stats.estimators.SpectralCache`: the validation of the sample
    covariance, its top-``K`` eigendecomposition and the Schur recursion (the
    closed-form fit and the refinement's start) are computed once. The stored
    values are bit-identical either way; an estimator's ``wall_time`` then
    excludes the shared work an earlier estimator of the unit already paid for.

    Examples
    --------
    A unit is a pure function of (cell, replicate): replaying it gives the same metrics.

    >>> import tomllib
    >>> from pathlib import Path
    >>> from hcl_stats.study.config import parse_study
    >>> path = Path("simulations/quick.toml")
    >>> study = parse_study(tomllib.loads(path.read_text()), path)
    >>> from hcl_stats.study.compute import compute_unit
    >>> [rec] = compute_unit(study, 0, 0, ["naive"])
    >>> rec.estimator, rec.status
    ('naive', 'ok')
    >>> [again] = compute_unit(study, 0, 0, ["naive"])
    >>> same = [rec.values[k] == again.values[k] for k in rec.values if k[0] != "wall_time"]
    >>> all(same)
    True
    """
    from ..estimators import SpectralCache

    cell = study.cells[cell_index]
    cache = SpectralCache() if share_spectra else None
    with _limit_threads(blas_threads), warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        try:
            with _deadline(timeout, "data generation") as state:
                draw = study.generate(cell, rep)
                state["armed"] = False
        except Exception as exc:  # noqa: BLE001 - recorded, not fatal
            msg = f"data generation failed: {_error_text(exc)}"
            return [UnitRecord(lab, "failed", msg, 0.0, {}) for lab in labels]
        records = []
        for label in labels:
            spec = study.estimators[label]
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                start = time.perf_counter()
                name = None
                try:
                    with _deadline(timeout, f"fit of {label!r}") as state:
                        estimator = spec.build()
                        if cache is not None and hasattr(estimator, "with_cache"):
                            estimator = estimator.with_cache(cache)
                        fit = study.task.analyse(
                            estimator, draw, spec,
                            unit_rng(study.seed, cell.key, rep, STREAM_METHOD),
                        )
                        wall = time.perf_counter() - start
                        failure = _not_converged(fit)
                        ctx = MetricContext(label, spec, draw, cell.factors, wall)
                        values: dict[tuple[str, str], float] = {}
                        if failure is None:
                            for name in study.metrics:
                                for lab, v in get_metric(name).fn(fit, draw.truth, ctx).items():
                                    values[(name, str(lab))] = float(v)
                        state["armed"] = False
                except Exception as exc:  # noqa: BLE001 - recorded, not fatal
                    wall = time.perf_counter() - start
                    msg = _error_text(exc)
                    if name is not None:
                        msg = f"metric {name!r} failed: {msg}"
                    records.append(UnitRecord(label, "failed", msg, wall, {}))
                    continue
                if failure is not None:
                    records.append(UnitRecord(label, "failed", failure, wall, {}))
                    continue
            note = None
            if caught:
                texts = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
                note = "warning: " + " | ".join(texts)
            records.append(UnitRecord(label, "ok", note, wall, values))
    return records
