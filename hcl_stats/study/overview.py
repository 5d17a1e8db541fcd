"""Plain-text overviews of a study: its plan and cost, a store's progress, one replayed unit.

The ``hcl-stats validate``, ``status`` and ``replay`` commands print these lines;
the functions return them so that they can be used (and tested) without the CLI.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import ValidationError
from .config import Cell, Study
from .runner import compute_unit, estimate_cost, probe_cost
from .store import ResultStore

__all__ = ["ReplayOutcome", "format_seconds", "replay_unit", "status_lines", "unit_memory_line",
           "validate_lines"]


def format_seconds(s: float) -> str:
    """A duration in seconds, minutes or hours, e.g. ``'2.5 min'``.

    Examples
    --------
    >>> format_seconds(5), format_seconds(150), format_seconds(9000)
    ('5.0 s', '2.5 min', '2.5 h')
    """
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def validate_lines(
    study: Study, reps: int, store_path: Path | None = None, *, probe: bool = False
) -> Iterator[str]:
    """The plan of ``study``: cells, units, estimators and their estimated cost.

    Parameters
    ----------
    study : Study
    reps : int
        Replications to plan for.
    store_path : Path, optional
        If it exists, the fits already stored and the measured cost of the rest.
    probe : bool, default=False
        Time one unit of the largest cell and extrapolate.

    Yields
    ------
    str
        The lines ``hcl-stats validate`` prints, each as soon as it is known.

    Examples
    --------
    >>> import tomllib
    >>> from pathlib import Path
    >>> from hcl_stats.study.config import parse_study
    >>> path = Path("simulations/quick.toml")
    >>> study = parse_study(tomllib.loads(path.read_text()), path)
    >>> from hcl_stats.study.overview import validate_lines
    >>> next(validate_lines(study, 2))
    'study quick (simulations/quick.toml): OK'
    """
    n_units = len(study.cells) * reps
    grid = ", ".join(study.grid) or "(none)"
    yield f"study {study.name} ({study.path}): OK"
    yield f"question: {study.question}"
    yield f"kind {study.kind}, sampler {study.sampler}, seed {study.seed}"
    yield f"cells: {len(study.cells)} (grid factors: {grid}); replications: {reps}"
    yield f"estimators: {', '.join(f'{k} ({v.name})' for k, v in study.estimators.items())}"
    yield f"metrics: {', '.join(study.metrics)}"
    yield f"units: {n_units} (cell x replicate), fits: {n_units * len(study.estimators)}"
    cost = estimate_cost(study, reps=reps)
    parts = ", ".join(f"{k} {format_seconds(v)}" for k, v in cost.items() if k != "total")
    yield f"estimated serial cost (heuristic): {format_seconds(cost['total'])} ({parts})"
    yield unit_memory_line(study)
    if store_path is not None and store_path.exists():
        yield _stored_cost_line(study, reps, store_path)
    if probe:
        measured = probe_cost(study, reps=reps)
        fits = ", ".join(
            f"{k.split(':', 1)[1]} {v:.2f} s" for k, v in measured.items() if k.startswith("unit:")
        )
        yield (f"probe: one unit of the largest cell took {format_seconds(measured['unit'])} "
               f"({fits}); extrapolated serial cost {format_seconds(measured['total'])}")


def _physical_memory() -> float | None:
    """Bytes of physical memory, or None where the platform does not say."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE")) * float(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


#: Row counts a unit draws as ``rows x d`` float64 matrices, by factor: the
#: unlabelled sample (sampler ``'data'`` only), and the downstream task's labelled
#: and test samples (drawn whatever the sampler).
_ROW_FACTORS = ("n_samples", "m_samples", "n_test")


def unit_memory_line(study: Study, cells: Sequence[Cell] | None = None) -> str:
    """The largest unit's generated data; a ValidationError if it cannot fit in memory.

    A lower bound: the ``rows x d`` float64 samples the unit draws (``n_samples``
    rows with sampler ``'data'``; the downstream task's ``m_samples`` labelled and
    ``n_test`` test rows with either sampler) plus the ``d x d`` sample covariance;
    the fits add their own work space. ``hcl-stats validate`` prints the line and
    ``hcl-stats run`` checks the cells it will run (``cells``; default all) before
    computing anything.

    Examples
    --------
    >>> from hcl_stats.study import load_study
    >>> unit_memory_line(load_study("simulations/quick.toml"))[:34]
    "largest unit's data: 0.11 MiB for "
    """
    def rows(cell: Cell) -> dict[str, float]:
        return {k: float(cell.factors[k]) for k in _ROW_FACTORS
                if cell.factors.get(k) and (k != "n_samples" or study.sampler == "data")}

    def size(cell: Cell) -> float:
        d = float(sum(cell.factors.get("dims", [0])))
        return 8.0 * d * (d + sum(rows(cell).values()))

    cells = list(study.cells if cells is None else cells)
    if not cells:
        return "largest unit's data: no cell selected"
    big = max(cells, key=size)
    need = size(big)
    keys = [*study.grid, *(k for k in ("dims", *_ROW_FACTORS) if k not in study.grid
                           and (k == "dims" or big.factors.get(k)))]
    where = ", ".join(f"{k}={big.factors[k]}" for k in keys if k in big.factors)
    drawn = " + ".join(rows(big))
    what = (f"({drawn}) x d samples and the d x d covariance" if drawn
            else "the d x d covariance (Wishart sampler: no samples)")
    have = _physical_memory()
    if have is not None and need > have:
        wishart = "n_samples" in rows(big) and "wishart" in study.task.samplers
        raise ValidationError(
            f"the cell ({where}) needs at least {need / 2**30:.3g} GiB per replicate for "
            f"{what}, more than this machine's {have / 2**30:.3g} GiB of memory; lower "
            f"{', '.join([*rows(big), 'dims'])}"
            + (", or use sampler = 'wishart' (its cost does not grow with n_samples)"
               if wishart else "") + "."
        )
    return f"largest unit's data: {need / 2**20:.3g} MiB for {what}; cell {where}"


def _stored_cost_line(study: Study, reps: int, store_path: Path) -> str:
    """Fits done and missing in the store, and the measured serial time of the missing ones."""
    with ResultStore(store_path, readonly=True) as store:
        store.check_study(study)
        done = store.done()
        mean = dict(store.query(
            "SELECT estimator, AVG(wall_time) FROM units WHERE status='ok' GROUP BY estimator"))
    ids = {c.id for c in study.cells}
    missing = {
        label: sum((c.id, r, label) not in done for c in study.cells for r in range(reps))
        for label in study.estimators
    }
    known = {k: missing[k] * mean[k] for k in missing if mean.get(k) is not None}
    n_done = sum(1 for c, r, _ in done if c in ids and r < reps)
    return (f"store {store_path}: {n_done} fits done, {sum(missing.values())} missing; "
            f"measured fit time of the missing fits: {format_seconds(sum(known.values()))} serial"
            + ("" if len(known) == len(missing) else " (some estimators not measured yet)"))


def status_lines(study: Study, store_path: Path, *, failures: int) -> Iterator[str]:
    """Progress of ``study`` in its store: fits per estimator, failures and runs.

    Parameters
    ----------
    study : Study
    store_path : Path
        An existing result store of ``study``.
    failures : int
        Most failed units to list.

    Yields
    ------
    str
        The lines ``hcl-stats status`` prints.
    """
    with ResultStore(store_path, readonly=True) as store:
        store.check_study(study)
        ids = [c.id for c in study.cells]
        marks = ",".join("?" * len(ids))
        counts = {
            (e, s): n for e, s, n in store.query(
                f"SELECT estimator, status, COUNT(*) FROM units WHERE cell_id IN ({marks}) "
                f"AND rep < ? GROUP BY estimator, status", [*ids, study.replications])
        }
        expected = len(study.cells) * study.replications
        yield (f"study {study.name}: {len(study.cells)} cells x {study.replications} "
               f"replications; store {store_path}")
        yield f"{'estimator':<20} {'ok':>7} {'failed':>7} {'missing':>8} {'expected':>9}"
        for label in study.estimators:
            ok, bad = counts.get((label, "ok"), 0), counts.get((label, "failed"), 0)
            yield f"{label:<20} {ok:>7} {bad:>7} {expected - ok - bad:>8} {expected:>9}"
        yield f"result rows: {store.count('results')}"
        fails = store.query(
            "SELECT cell_id, rep, estimator, error FROM units WHERE status='failed' "
            "ORDER BY cell_id, rep, estimator LIMIT ?", [failures])
        for c, r, e, err in fails:
            yield f"  failed: cell {c} rep {r} {e}: {err}"
        for run in store.runs():
            dirty = "+dirty" if run["git_dirty"] else ""
            yield (
                f"run {run['run_id']}: {run['started_utc']} hcl_stats {run['package_version']} "
                f"commit {(run['git_commit'] or 'unknown')[:10]}{dirty} backend {run['backend']} "
                f"jobs {run['jobs']}"
                + (f": {run['units']} units in {run['wall_time']:.1f} s"
                   if run.get("wall_time") is not None else ": no end recorded (interrupted?)"))


@dataclass(frozen=True)
class ReplayOutcome:
    """One recomputed unit: the printed lines and how many values differ from the store.

    Attributes
    ----------
    lines : tuple of str
        The lines ``hcl-stats replay`` prints.
    mismatches : int
        Stored values (timings excluded) the recomputation does not reproduce.
    """

    lines: tuple[str, ...]
    mismatches: int


def replay_unit(
    study: Study, cell: Cell, rep: int, labels: tuple[str, ...], store_path: Path
) -> ReplayOutcome:
    """Recompute one (cell, replicate) unit and compare it with the store, if it exists.

    Parameters
    ----------
    study : Study
    cell : Cell
        A cell of ``study`` (e.g. ``study.cell(cell_id)``).
    rep : int
        Replicate index (checked by the caller to be below ``study.replications``).
    labels : tuple of str
        Estimator labels to recompute.
    store_path : Path
        Result store; values are compared only if it exists.

    Returns
    -------
    ReplayOutcome
    """
    records = compute_unit(study, cell.index, rep, labels)
    stored: dict[tuple[str, str, str], float | None] = {}
    if store_path.exists():
        with ResultStore(store_path, readonly=True) as store:
            store.check_study(study)
            for est, metric, label, value in store.query(
                "SELECT estimator, metric, label, value FROM results WHERE cell_id=? AND rep=?",
                [cell.id, rep]):
                stored[(est, metric, label)] = value
    lines = [f"cell {cell.id} {json.dumps(dict(cell.varying), sort_keys=True)} rep {rep}"]
    mismatches = 0
    for rec in records:
        lines.append(f"[{rec.estimator}] {rec.status}{': ' + rec.error if rec.error else ''} "
                     f"({rec.wall_time:.3f} s)")
        for (metric, label), value in sorted(rec.values.items()):
            key = (rec.estimator, metric, label)
            note = ""
            if key in stored:
                old = stored[key]
                same = (old is None and math.isnan(value)) or old == value
                if metric == "wall_time":
                    note = " (timing)"
                elif same:
                    note = " (= stored)"
                else:
                    note = f" (stored {old!r}: MISMATCH)"
                    mismatches += 1
            lines.append(f"  {metric:<16} {label:<24} {value!r}{note}")
    return ReplayOutcome(tuple(lines), mismatches)
