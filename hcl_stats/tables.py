"""Study summaries and publication tables (LaTeX booktabs and Markdown).

:func:`summarize` reduces the tidy store to one row per
cell x estimator x metric x label with ``n_ok``, ``n_failed``, ``mean``, ``sd``
(``ddof=1``), ``mcse`` (``sd / sqrt(n_ok)``, the Monte Carlo standard error of
the mean) and ``median``; nothing is rounded (CSV floats are written in their
shortest round-trip form). Table functions take that summary and return strings;
this module is the only place where numbers are rounded for display.

A table is described in the study config::

    [[report.tables]]
    name = "gram_errors"               # file stem: <name>.tex and <name>.md
    metrics = ["block_gram", "overall_gram"]   # rows: every label of these metrics
    group = "n_samples"                # optional: one column group per value
    group_axis = "columns"             # or "rows": one block of rows per value
    group_values = [500, 8000]         # optional: only these groups
    stat = "mean_sd"                   # "mean_sd" (mean ± sd), "mean_mcse" or "mean"
    digits = 2                         # significant decimals shown
    where = { latent_cov = 0.0 }       # optional filter on the grid values
    labels = { support = ["structure_precision", "structure_recall"] }  # optional
    estimators = ["naive", "schur"]    # optional: columns (default: all, config order)
    caption = "..."
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "SUMMARY_COLUMNS",
    "format_value",
    "label_sort_key",
    "render_table",
    "summarize",
]

#: Statistic columns of ``summary.csv`` (after the cell, grid and key columns).
SUMMARY_COLUMNS = ("n_ok", "n_failed", "mean", "sd", "mcse", "median")

_METRIC_TITLES = {
    "block_gram": "Gram error per block",
    "block_gram_rel": "relative Gram error per block",
    "structure_gram": "Gram error per structure",
    "structure_gram_rel": "relative Gram error per structure",
    "overall_gram": "overall Gram error",
    "overall_gram_rel": "relative overall Gram error",
    "procrustes": "aligned loading error",
    "sin_theta": "sin-theta distance",
    "support": "structure recovery",
    "rank": "rank recovery",
    "wall_time": "fit time (s)",
    "converged": "converged",
    "relative_gradient": "relative gradient",
    "noise_var": "noise variance error",
}


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("summaries require pandas; install hcl_stats[study]") from exc
    return pd


def _cell_value(v: Any) -> Any:
    return json.dumps(v) if isinstance(v, list) else v


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
            r[factor] = _cell_value(by_id[r["cell_id"]].varying[factor])
    columns = ["cell_id", *study.grid, "estimator", "metric", "label", *SUMMARY_COLUMNS]
    return pd.DataFrame(rows, columns=columns)


def _median(vals: Any) -> float:
    import numpy as np

    return float(np.median(vals))


def label_sort_key(label: str) -> tuple:
    """Display order of labels: blocks in canonical structure order, then summaries.

    ``"A|ABC"`` (view A of structure ABC) sorts by view, then by structure in
    canonical order (larger blocks first); ``"ABC"`` by canonical order;
    ``"mean"`` and ``"overall"`` come last; other labels alphabetically.
    """
    def block(text: str) -> tuple:
        return (-len(text), text)

    if label in ("mean", "overall"):
        return (3, label)
    if "|" in label:
        view, _, s = label.partition("|")
        return (1, view, *block(s))
    if label.isalpha() and label.isupper():
        return (0, *block(label))
    return (2, label)


def format_value(x: float, digits: int) -> str:
    """``x`` with ``digits`` decimals (``"--"`` for NaN); the only rounding step."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "--"
    if math.isinf(x):
        return "inf"
    return f"{x:.{digits}f}"


def _cell_text(row: Mapping[str, Any], stat: str, digits: int, latex: bool) -> str:
    mean = format_value(row["mean"], digits)
    if stat == "mean":
        return mean
    other = row["sd"] if stat == "mean_sd" else row["mcse"]
    if mean == "--":
        return mean
    pm = r" $\pm$ " if latex else " ± "
    return mean + pm + format_value(other, digits)


def _filter(summary: Any, where: Mapping[str, Any] | None) -> Any:
    if not where:
        return summary
    mask = None
    for key, value in where.items():
        if key not in summary.columns:
            raise KeyError(f"report table 'where' key {key!r} is not a grid factor")
        m = summary[key].astype(str) == str(_cell_value(value))
        mask = m if mask is None else mask & m
    return summary[mask]


def render_table(
    summary: Any,
    spec: Mapping[str, Any],
    estimator_order: Sequence[str],
) -> tuple[str, str]:
    """Render one ``[[report.tables]]`` spec as ``(latex, markdown)`` strings.

    Parameters
    ----------
    summary : pandas.DataFrame
        As returned by :func:`summarize` (or read back from ``summary.csv``).
    spec : mapping
        See the module docstring.
    estimator_order : sequence of str
        Column order of the estimators.

    Returns
    -------
    (str, str)
        A LaTeX ``table`` with ``booktabs`` rules and a Markdown table; both end with
        a newline and contain no timestamps.
    """
    metrics = list(spec.get("metrics", []))
    group = spec.get("group")
    stat = spec.get("stat", "mean_sd")
    if stat not in ("mean_sd", "mean_mcse", "mean"):
        raise ValueError(f"report table stat must be 'mean_sd', 'mean_mcse' or 'mean'; got {stat!r}")
    digits = int(spec.get("digits", 2))
    data = _filter(summary, spec.get("where"))
    data = data[data["metric"].isin(metrics)]
    ests = [e for e in (spec.get("estimators") or estimator_order) if e in set(data["estimator"])]
    groups = [None]
    if group:
        groups = list(dict.fromkeys(data[group].tolist()))
        if "group_values" in spec:
            wanted = {str(_cell_value(v)) for v in spec["group_values"]}
            groups = [g for g in groups if str(g) in wanted]
    lookup = {}
    for row in data.to_dict("records"):
        key = (row["metric"], row["label"], row[group] if group else None, row["estimator"])
        if key in lookup:
            raise ValueError(
                f"report table {spec.get('name')!r} has several cells per entry; add a "
                "'where' filter or a 'group' factor"
            )
        lookup[key] = row
    row_keys = []
    keep = spec.get("labels", {})
    for metric in metrics:
        labels = sorted(set(data.loc[data["metric"] == metric, "label"]), key=label_sort_key)
        if metric in keep:
            labels = [lab for lab in keep[metric] if lab in labels]
        row_keys += [(metric, lab) for lab in labels]
    columns = [(g, e) for g in groups for e in ests]

    def entry(metric, label, g, e, latex):
        row = lookup.get((metric, label, g, e))
        return "" if row is None else _cell_text(row, stat, digits, latex)

    stat_text = {"mean_sd": "mean ± sd", "mean_mcse": "mean ± MC s.e.", "mean": "mean"}[stat]
    n_info = sorted({int(v) for v in data["n_ok"]}) if len(data) else []
    n_text = f"n_ok = {n_info[0]}" if len(n_info) == 1 else f"n_ok in {n_info}"
    caption = spec.get("caption", "")
    caption_full = f"{caption} Entries: {stat_text} over replications ({n_text}).".strip()

    if group and spec.get("group_axis", "columns") == "rows":
        return _render_grouped_rows(
            spec, group, groups, ests, row_keys, entry, caption_full
        )
    if spec.get("group_axis", "columns") not in ("columns", "rows"):
        raise ValueError(
            f"report table group_axis must be 'columns' or 'rows'; got {spec['group_axis']!r}"
        )

    # Markdown
    def md_group(g):
        return "" if g is None else f"{group}={g} "

    head = ["metric", "label"] + [f"{md_group(g)}{e}" for g, e in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * len(columns)) + "|"]
    for metric, label in row_keys:
        cells = [_METRIC_TITLES.get(metric, metric), label.replace("|", r"\|")]
        cells += [entry(metric, label, g, e, False) for g, e in columns]
        lines.append("| " + " | ".join(cells) + " |")
    markdown = "\n".join(lines) + "\n\n" + caption_full + "\n"

    # LaTeX

    out = [r"\begin{table}[t]", r"\centering", r"\small",
           r"\begin{tabular}{ll" + "r" * len(columns) + "}", r"\toprule"]
    if group:
        spans = " & ".join(
            rf"\multicolumn{{{len(ests)}}}{{c}}{{{_tex(group)} $= {_tex(g)}$}}" for g in groups
        )
        out.append(" & & " + spans + r" \\")
        rules = " ".join(
            rf"\cmidrule(lr){{{3 + i * len(ests)}-{2 + (i + 1) * len(ests)}}}"
            for i in range(len(groups))
        )
        out.append(rules)
    out.append("metric & label & " + " & ".join(_tex(e) for _, e in columns) + r" \\")
    out.append(r"\midrule")
    previous = None
    for metric, label in row_keys:
        if previous is not None and metric != previous:
            out.append(r"\addlinespace")
        name = _tex(_METRIC_TITLES.get(metric, metric)) if metric != previous else ""
        cells = [entry(metric, label, g, e, True) for g, e in columns]
        out.append(f"{name} & {_tex(label)} & " + " & ".join(cells) + r" \\")
        previous = metric
    caption_tex = _tex(caption_full).replace("±", r"$\pm$")
    out += [r"\bottomrule", r"\end{tabular}",
            rf"\caption{{{caption_tex}}}",
            rf"\label{{tab:{_tex(spec.get('name', 'table'))}}}", r"\end{table}"]
    return "\n".join(out) + "\n", markdown


def _tex(s: Any) -> str:
    return (str(s).replace("\\", r"\textbackslash{}").replace("_", r"\_")
            .replace("&", r"\&").replace("%", r"\%").replace("#", r"\#")
            .replace("|", r"$|$"))


def _render_grouped_rows(spec, group, groups, ests, row_keys, entry, caption_full):
    """Layout with one block of rows per group value and one column per estimator."""
    head = ["metric", "label", *ests]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * len(ests)) + "|"]
    for g in groups:
        lines.append("| " + f"**{group} = {g}**" + " |" * (len(head) - 1) + " |")
        for metric, label in row_keys:
            cells = [_METRIC_TITLES.get(metric, metric), label.replace("|", r"\|")]
            cells += [entry(metric, label, g, e, False) for e in ests]
            lines.append("| " + " | ".join(cells) + " |")
    markdown = "\n".join(lines) + "\n\n" + caption_full + "\n"
    out = [r"\begin{table}[t]", r"\centering", r"\small",
           r"\begin{tabular}{ll" + "r" * len(ests) + "}", r"\toprule",
           "metric & label & " + " & ".join(_tex(e) for e in ests) + r" \\"]
    for g in groups:
        out.append(r"\midrule")
        out.append(rf"\multicolumn{{{2 + len(ests)}}}{{l}}{{{_tex(group)} $= {_tex(g)}$}} \\")
        out.append(r"\midrule")
        previous = None
        for metric, label in row_keys:
            if previous is not None and metric != previous:
                out.append(r"\addlinespace")
            name = _tex(_METRIC_TITLES.get(metric, metric)) if metric != previous else ""
            cells = [entry(metric, label, g, e, True) for e in ests]
            out.append(f"{name} & {_tex(label)} & " + " & ".join(cells) + r" \\")
            previous = metric
    caption_tex = _tex(caption_full).replace("±", r"$\pm$")
    out += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{caption_tex}}}",
            rf"\label{{tab:{_tex(spec.get('name', 'table'))}}}", r"\end{table}"]
    return "\n".join(out) + "\n", markdown
