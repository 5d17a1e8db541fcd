"""Summaries of a study's results: one row per cell x estimator x metric x label.

:func:`summarize` reduces the tidy store to ``n_ok``, ``n_failed``, ``mean``,
``sd`` (``ddof=1``), ``mcse`` (``sd / sqrt(n_ok)``, the Monte Carlo standard
error of the mean) and ``median``; nothing is rounded here (``hcl-stats
summarize`` rounds to 6 significant digits when it writes ``summary.csv``,
:func:`hcl_stats.study.report.write_summary`).
"""

from __future__ import annotations

import math
from typing import Any

from .._labels import cell_value, label_sort_key

__all__ = ["SUMMARY_COLUMNS", "summarize"]

#: Statistic columns of ``summary.csv`` (after the cell, grid and key columns).
SUMMARY_COLUMNS = ("n_ok", "n_failed", "mean", "sd", "mcse", "median")


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("summaries require pandas; install hcl_stats[study]") from exc
    return pd


def summarize(study: Any, store: Any) -> Any:
    """Summary DataFrame of the cells of ``study`` found in ``store``.

    Parameters
    ----------
    study : Study
    store : ResultStore

    Returns
    -------
    pandas.DataFrame
        Columns ``cell_id``, the grid factors, ``estimator``, ``metric``, ``label``
        and :data:`SUMMARY_COLUMNS`; rows in grid order, then estimator order of
        the config, then metric order, then :func:`label_sort_key`.
    """
    pd = _pandas()
    results, units, _ = store.frames()
    cell_order = {c.id: c.index for c in study.cells}
    est_order = {e: i for i, e in enumerate(study.estimators)}
    met_order = {m: i for i, m in enumerate(study.metrics)}
    n_reps = study.replications  # rows of replicates beyond the config are not averaged
    results = results[results["cell_id"].isin(cell_order) & results["estimator"].isin(est_order)
                      & (results["rep"] < n_reps)]
    units = units[units["cell_id"].isin(cell_order) & units["estimator"].isin(est_order)
                  & (units["rep"] < n_reps)]
    failed = (
        units[units["status"] == "failed"].groupby(["cell_id", "estimator"]).size().to_dict()
    )
    rows = []
    for (cell_id, est, metric, label), grp in results.groupby(
        ["cell_id", "estimator", "metric", "label"], sort=True
    ):
        if metric not in met_order:
            continue
        vals = grp["value"].dropna().to_numpy(dtype=float)
        n = int(vals.size)
        mean = float(vals.mean()) if n else math.nan
        sd = float(vals.std(ddof=1)) if n > 1 else math.nan
        rows.append(
            {
                "cell_id": cell_id,
                "estimator": est,
                "metric": metric,
                "label": label,
                "n_ok": n,
                "n_failed": int(failed.get((cell_id, est), 0)),
                "mean": mean,
                "sd": sd,
                "mcse": sd / math.sqrt(n) if n > 1 else math.nan,
                "median": float(_median(vals)) if n else math.nan,
            }
        )
    # units that failed for every replicate still appear (with n_ok = 0)
    have = {(r["cell_id"], r["estimator"]) for r in rows}
    for (cell_id, est), k in failed.items():
        if (cell_id, est) not in have:
            rows.append({"cell_id": cell_id, "estimator": est, "metric": "", "label": "",
                         "n_ok": 0, "n_failed": int(k), "mean": math.nan, "sd": math.nan,
                         "mcse": math.nan, "median": math.nan})
    rows.sort(
        key=lambda r: (
            cell_order[r["cell_id"]],
            est_order[r["estimator"]],
            met_order.get(r["metric"], -1),
            label_sort_key(r["label"]),
        )
    )
    by_id = {c.id: c for c in study.cells}
    for r in rows:
        for factor in study.grid:
            r[factor] = cell_value(by_id[r["cell_id"]].varying[factor])
    columns = ["cell_id", *study.grid, "estimator", "metric", "label", *SUMMARY_COLUMNS]
    return pd.DataFrame(rows, columns=columns)


def _median(vals: Any) -> float:
    import numpy as np

    return float(np.median(vals))


