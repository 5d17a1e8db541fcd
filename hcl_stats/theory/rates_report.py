"""Rates reports: fitted empirical rates of a study against theory (``hcl-stats rates``).

Reads the replicate-level results of a study's store (``hcl-stats export``
data) and, for every ``[[report.rates]]`` entry of the study config, fits the
log-log slope of a metric on a sample size with :func:`hcl_stats.theory.fit_rate`
per estimator, label and grouping factor. Writes to ``reports/<study>/``:

* ``rates.md``: one Markdown table per entry (slope, 95% CI, test against the
  theoretical exponent, empirical/bound ratio range and fitted constant);
* ``rates.csv``: the same numbers, to 6 significant digits;
* ``<name>.pdf`` / ``<name>.png``: :func:`hcl_stats.theory.plots.plot_rate`
  figures, one panel per group of ``by``;
* for every ``[[report.terms]]`` entry, the fitted constants of an additive bound
  (:func:`hcl_stats.theory.fit_terms`), e.g. ``terms = ["k_over_m", "rep_sq"]``
  with ``group = "m_samples"``.

Entry format::

    [[report.rates]]
    name = "rate_overall_vs_n"    # figure stem and table title
    metric = "overall_gram"
    label = "overall"              # or labels = ["eiv", "glasso"]
    x = "n_samples"                # a grid factor, or "d" (sum of dims)
    by = ["dims"]                  # optional grouping factors
    expected = -0.5                # theoretical exponent
    bound = "gram_bound:sharp"     # optional "<metric>:<label>" holding the bound
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .._metric_info import axis_label, factor_info, metric_info
from ..exceptions import StudyConfigError, ValidationError
from ..tables import round_significant
from .plots import plot_rate
from .rates import fit_rate, fit_terms

__all__ = [
    "bound_name",
    "panel_part",
    "prepare_rows",
    "rate_entries",
    "rate_figure",
    "rate_markdown",
    "rate_table",
    "term_table",
    "terms_markdown",
    "write_rates_report",
]


def prepare_rows(tidy: Any, spec: dict[str, Any]) -> Any:
    """Replicate-level rows of one entry, with ``d`` and the bound as columns."""
    import pandas as pd

    metric = spec["metric"]
    labels = spec.get("labels") or [spec.get("label", "overall")]
    ok = tidy[tidy["status"] == "ok"]
    rows = ok[(ok["metric"] == metric) & (ok["label"].isin(labels))].copy()
    if rows.empty:
        raise ValidationError(
            f"report.rates {spec.get('name')!r}: metric {metric!r} with labels "
            f"{labels!r} has no results in the store."
        )
    if "dims" in rows.columns:
        rows["d"] = [sum(json.loads(v)) if isinstance(v, str) else sum(v) for v in rows["dims"]]
    bound = spec.get("bound")
    if bound:
        bmetric, _, blabel = str(bound).partition(":")
        b = ok[(ok["metric"] == bmetric) & (ok["label"] == blabel)]
        if b.empty:
            raise ValidationError(
                f"report.rates {spec.get('name')!r}: bound {bound!r} has no results; "
                "add its metric to study.metrics."
            )
        b = b[["cell_id", "rep", "estimator", "value"]].rename(columns={"value": "bound"})
        rows = rows.merge(b, on=["cell_id", "rep", "estimator"], how="left")
    rows = rows.drop(columns=["error"], errors="ignore").rename(columns={"value": "error"})
    return pd.DataFrame(rows)


def rate_table(tidy: Any, spec: dict[str, Any], estimator_order: list[str]) -> Any:
    """Fit every (estimator, label, by-group) of one ``[[report.rates]]`` entry.

    Parameters
    ----------
    tidy : pandas.DataFrame
        ``ResultStore.tidy()`` rows.
    spec : dict
        The entry.
    estimator_order : list of str

    Returns
    -------
    pandas.DataFrame
        One row per group: ``estimator``, ``label``, the ``by`` columns and the
        :meth:`~hcl_stats.theory.RateFit.to_record` fields.
    """
    import pandas as pd

    rows = prepare_rows(tidy, spec)
    x = spec.get("x", "n_samples")
    by = list(spec.get("by", []))
    keys = ["estimator", "label", *by]
    out = []
    for key, sub in rows.groupby(keys, sort=False):
        fit = fit_rate(sub, x, "error", expected=spec.get("expected", -0.5),
                       bound="bound" if "bound" in sub.columns else None)
        out.append({**dict(zip(keys, key, strict=True)), **fit.to_record()})
    df = pd.DataFrame(out)
    order = {e: i for i, e in enumerate(estimator_order)}
    df["_o"] = df["estimator"].map(order)
    df = df.sort_values(["_o", "label", *by], kind="stable").drop(columns="_o")
    return df.reset_index(drop=True)


def rate_markdown(df: Any, spec: dict[str, Any]) -> str:
    """The Markdown table of one rates entry (slope, CI, test, bound ratios)."""
    by = list(spec.get("by", []))
    exp = spec.get("expected", -0.5)
    has_bound = bool(spec.get("bound"))
    head = ["estimator", "label", *by, "slope", "95% CI", f"p (slope = {exp:g})",
            f"{exp:g} in CI"]
    if has_bound:
        head += ["error/bound on the grid", "fitted constant",
                 "slope of log(error/bound) [95% CI]", "max replicate error/bound"]
    lines = [f"### {spec.get('name')}: log {spec['metric']} on log {spec.get('x', 'n_samples')}",
             ""]
    if has_bound:
        lines += [f"Bound: `{spec['bound']}`, evaluated per replicate on its own true model. "
                  "The fitted constant scales it onto the data in log space; a slope of "
                  "log(error/bound) of 0 means the bound has the empirical rate.", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in df.iterrows():
        cells = [str(r["estimator"]), str(r["label"]), *(str(r[b]) for b in by),
                 f"{r['slope']:.3f}", f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]",
                 f"{r['p_value']:.2g}", "yes" if r["consistent"] else "no"]
        if has_bound:
            cells += [f"{r['ratio_min']:.3g}-{r['ratio_max']:.3g}", f"{r['fitted_constant']:.3g}",
                      f"{r['ratio_slope']:.3f} [{r['ratio_slope_ci_low']:.3f}, "
                      f"{r['ratio_slope_ci_high']:.3f}]", f"{r['max_replicate_ratio']:.3g}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def rate_figure(tidy: Any, spec: dict[str, Any], estimator_order: list[str]) -> Any:
    """One panel per ``by`` group (per label if several), lines per estimator."""
    from matplotlib.figure import Figure

    from ..plotting import estimator_style

    rows = prepare_rows(tidy, spec)
    x = spec.get("x", "n_samples")
    by = list(spec.get("by", []))
    labels = spec.get("labels") or [spec.get("label", "overall")]
    panel_keys = ["label", *by]
    panels = list(rows.groupby(panel_keys, sort=True))
    # full text width per panel (the legend and slopes sit right of the axes);
    # two panels per row when there are more than three
    ncols = 1 if len(panels) <= 3 else 2
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(6.5 * ncols, 2.4 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    bound = "bound" if "bound" in rows.columns else None
    order = {e: i for i, e in enumerate(estimator_order)}
    legend = bound_name(spec.get("bound"))

    def style(est: str) -> Any:
        return estimator_style(est, estimator_order)

    for k in range(len(panels), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    for k, (key, sub) in enumerate(panels):
        ax = axes[k // ncols][k % ncols]
        sub = sub.assign(_o=sub["estimator"].map(order)).sort_values("_o", kind="stable")
        plot_rate(sub, x, "error", by="estimator", expected=spec.get("expected", -0.5),
                  bound=bound, bound_label=legend, ax=ax,
                  xlabel=factor_info(x).label, ylabel=axis_label(spec["metric"]), style=style)
        key = key if isinstance(key, tuple) else (key,)
        parts = [panel_part(c, v) for c, v in zip(panel_keys, key, strict=True)
                 if c != "label" or len(labels) > 1]
        ax.set_title(", ".join(parts) or metric_info(spec["metric"]).title, fontsize=8)
    return fig


def bound_name(bound: Any) -> str:
    """Legend name of a ``"<metric>:<label>"`` bound, e.g. ``"rate bound"``.

    Examples
    --------
    >>> from hcl_stats.theory.rates_report import bound_name
    >>> bound_name("gram_bound:overall")
    'bound (overall)'
    """
    if not bound:
        return "bound"
    label = str(bound).rpartition(":")[2]
    return {"rate": "rate bound", "sharp": "sharp bound", "paper": "bound of the paper"}.get(
        label, f"bound ({label})")


def panel_part(column: str, value: Any) -> str:
    """Panel title part of one grouping column (math symbol of a grid factor).

    Examples
    --------
    >>> from hcl_stats.theory.rates_report import panel_part
    >>> panel_part("n_samples", 500), panel_part("dims", [20, 40])
    ('$n = 500$', '$d = (20, 40)$')
    """
    if column == "label":
        return str(value).replace("_", " ")
    info = factor_info(column)
    text = str(value)
    if text.startswith("[") and text.endswith("]"):
        text = f"({text[1:-1]})"
    return f"${info.symbol} = {text}$" if info.symbol else f"{info.label} = {text}"


def term_table(tidy: Any, spec: dict[str, Any], estimator_order: list[str]) -> Any:
    """Fit the constants of an additive bound for one ``[[report.terms]]`` entry.

    The term columns come from the labels of the metric ``spec['terms_metric']``
    (default ``ds_terms``), matched to the error rows by (cell, rep, estimator).
    """
    import pandas as pd

    rows = prepare_rows(tidy, spec)
    ok = tidy[tidy["status"] == "ok"]
    tmetric = spec.get("terms_metric", "ds_terms")
    terms = list(spec["terms"])
    for t in terms:
        col = ok[(ok["metric"] == tmetric) & (ok["label"] == t)]
        if col.empty:
            raise ValidationError(
                f"report.terms {spec.get('name')!r}: term {t!r} of metric {tmetric!r} has "
                "no results; add the metric to study.metrics."
            )
        col = col[["cell_id", "rep", "estimator", "value"]].rename(columns={"value": f"term:{t}"})
        rows = rows.merge(col, on=["cell_id", "rep", "estimator"], how="left")
    out = []
    for (est, lab), sub in rows.groupby(["estimator", "label"], sort=False):
        sub = sub.rename(columns={f"term:{t}": t for t in terms} | {"rep": "replicate"})
        fit = fit_terms(sub, "error", terms, group=spec.get("group"))
        out.append({"estimator": est, "label": lab, **fit.to_record()})
    df = pd.DataFrame(out)
    order = {e: i for i, e in enumerate(estimator_order)}
    df["_o"] = df["estimator"].map(order)
    return df.sort_values(["_o", "label"], kind="stable").drop(columns="_o").reset_index(drop=True)


def terms_markdown(df: Any, spec: dict[str, Any]) -> str:
    """The Markdown table of one terms entry (fitted constants, weighted R^2)."""
    terms = list(spec["terms"])
    head = ["estimator", "label", *(f"c[{t}] [95% CI]" for t in terms), "weighted R^2"]
    lines = [f"### {spec.get('name')}: {spec['metric']} ~ " + " + ".join(
        f"c[{t}] * {t}" for t in terms), "",
        "Replicate-level weighted least squares without intercept (weights 1/mean^2 "
        f"per `{spec.get('group')}` value), robust HC3 CIs.", "",
        "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in df.iterrows():
        cells = [str(r["estimator"]), str(r["label"])]
        cells += [f"{r[f'c[{t}]']:.3g} [{r[f'c[{t}]_low']:.3g}, {r[f'c[{t}]_high']:.3g}]"
                  for t in terms]
        cells.append(f"{r['r2']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def rate_entries(study: Any) -> tuple[list[dict], list[dict]]:
    """The ``[[report.rates]]`` and ``[[report.terms]]`` entries of a study.

    Raises
    ------
    StudyConfigError
        If there are none.
    """
    specs = list(study.report.get("rates", []))
    term_specs = list(study.report.get("terms", []))
    if not specs and not term_specs:
        raise StudyConfigError(
            f"{study.path}: report.rates or report.terms must list at least one "
            "entry; got none."
        )
    return specs, term_specs


def _rounded(table: Any) -> Any:
    """``table`` with every float cell at 6 significant digits, whatever its column dtype.

    A column concatenated from tables that lack it is ``object`` dtype; its floats
    are rounded too, so the CSV does not depend on how the columns were assembled.
    """
    out = table.copy()
    for col in out.columns:
        if out[col].dtype.kind in "fO":
            out[col] = [
                round_significant(v) if isinstance(v, float) else v for v in out[col]
            ]
    return out


def write_rates_report(study: Any, tidy: Any, out_dir: Path) -> list[Path]:
    """Write ``rates.md``, ``rates.csv`` and the rate figures of a study.

    Parameters
    ----------
    study : Study
        Its ``[[report.rates]]`` and ``[[report.terms]]`` entries are fitted.
    tidy : pandas.DataFrame
        Replicate-level results (``ResultStore.tidy()``).
    out_dir : Path
        Created if needed.

    Returns
    -------
    list of Path
        ``rates.md``, ``rates.csv`` and the figures, in that order.
    """
    specs, term_specs = rate_entries(study)
    import pandas as pd

    from ..plotting import save_figure

    out_dir.mkdir(parents=True, exist_ok=True)
    from .rates_data import (
        REPLICATES,
        predicted_figure,
        predicted_markdown,
        predicted_table,
    )

    tidy = tidy[tidy["estimator"].isin(list(study.estimators))]
    order = list(study.estimators)
    md = [f"# Empirical rates: {study.name}", "",
          f"Question: {' '.join(study.question.split())}", "",
          "Robust (HC3) OLS of log(error) on log(x) over replicate-level results; "
          "95% CIs from the t distribution. `p` tests the slope against the "
          "theoretical exponent. Generated by `hcl-stats rates` from the committed "
          f"replicate-level results `{REPLICATES}` (exported from the study store "
          "when it exists); do not edit.", ""]
    tables = []
    written = []
    for spec in specs:
        df = rate_table(tidy, spec, order)
        df.insert(0, "entry", spec.get("name"))
        tables.append(df)
        md.append(rate_markdown(df, spec))
        fig = rate_figure(tidy, spec, order)
        written += save_figure(fig, out_dir / str(spec.get("name")))
    for spec in term_specs:
        df = term_table(tidy, spec, order)
        df.insert(0, "entry", spec.get("name"))
        tables.append(df)
        md.append(terms_markdown(df, spec))
    # values rounded to 8 significant digits: the digest identifies the results, not
    # the floating-point noise of one machine (~1e-12 relative between runs)
    cols = ["cell_id", "rep", "estimator", "metric", "label", "value"]
    hashed = tidy.sort_values(cols[:5])[cols].copy()
    hashed["value"] = hashed["value"].astype(float).map(lambda v: f"{v:.8g}")
    digest = hashlib.sha256(hashed.to_csv(index=False).encode()).hexdigest()
    pred = predicted_table(tidy, order)
    if not pred.empty:
        md.append(predicted_markdown(pred))
        written += save_figure(predicted_figure(pred, order),
                               out_dir / "rate_predicted_vs_measured")
        pcsv = out_dir / "predicted_vs_measured.csv"
        ptab = pred.copy()
        ptab = _rounded(ptab)
        ptab.to_csv(pcsv, index=False, lineterminator="\n")
        written.append(pcsv)
    md.append("Results digest (sha256 of the sorted replicate-level values, 8 significant "
              f"digits): `{digest}`\n")
    (out_dir / "rates.md").write_text("\n".join(md))
    # all-NA columns (e.g. the ratio columns of an entry without a bound) are left
    # out of the concatenation and added back, so their dtype never decides another's
    columns = list(dict.fromkeys(c for t in tables for c in t.columns))
    table = pd.concat(
        [t.dropna(axis=1, how="all") for t in tables], ignore_index=True
    ).reindex(columns=columns)
    table = _rounded(table)
    table.to_csv(out_dir / "rates.csv", index=False, lineterminator="\n")
    return [out_dir / "rates.md", out_dir / "rates.csv", *written]
