"""Publication figures from a study summary (matplotlib, imported lazily).

Functions return a :class:`matplotlib.figure.Figure` built without pyplot (no
global state, no ``show``); :func:`save_figure` writes PDF and PNG with fixed
metadata (no creation date, no software version), so reruns are byte-identical.

A figure is described in the study config::

    [[report.figures]]
    name = "error_vs_n"             # file stem: <name>.pdf and <name>.png
    x = "n_samples"                 # a grid factor (numeric)
    metric = "block_gram"
    labels = ["mean", "A|ABC"]      # one panel per label (default: ["mean"] or ["overall"])
    errorbar = "mcse"               # "mcse" (Monte Carlo s.e. of the mean) or "sd"
    logx = true
    logy = true
    reference_slope = -0.5          # optional dashed guide line  ∝ x^slope
    ylim = [0, 1.05]                # optional y range
    estimators = ["naive", "schur"] # optional: lines to draw (default: all)
    where = { latent_cov = 0.0 }    # optional filter on the other grid factors

Each estimator label has one fixed colour and marker from the Okabe-Ito
colour-blind-safe palette (:func:`estimator_style`): the well-known labels
(``naive``, ``schur``, ``schur_per_view``, ``masked_gradient``) always get the same
style in every study, shrinkage variants (``pca_shrink``, ``schur_shrink``,
``masked_shrink``) are dashed with hollow markers in their base estimator's colour,
and other labels take the remaining colours in config order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["AXIS_LABELS", "estimator_style", "line_figure", "save_figure"]

#: Okabe & Ito (2008) palette, colour-blind safe.
OKABE_ITO = (
    "#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
)
_FIXED = {
    "naive": ("#000000", "o", "naive PCA"),
    "schur": ("#0072B2", "s", "Schur (joint)"),
    "schur_joint": ("#0072B2", "s", "Schur (joint)"),
    "schur_per_view": ("#E69F00", "^", "Schur (per view)"),
    "masked_gradient": ("#D55E00", "D", "masked gradient"),
    "ajive": ("#009E73", "v", "AJIVE"),
    "zero": ("#999999", "x", "zero baseline"),
}
#: Shrinkage variants share the colour of their base estimator, drawn dashed.
_DASHED = {
    "pca_shrink": ("#000000", "o", "naive PCA + shrinkage"),
    "schur_shrink": ("#0072B2", "s", "Schur + shrinkage"),
    "masked_shrink": ("#D55E00", "D", "masked gradient + shrinkage"),
}
_MARKERS = ("v", "P", "X", "*", "h", "<", ">")

#: Axis labels (notation and unit) of the grid factors.
AXIS_LABELS = {
    "n_samples": "sample size $n$ (rows)",
    "latent_cov": r"latent correlation $\rho$",
    "noise_var": r"noise variance $\sigma^2$",
    "dims": r"dimensions $(d_1, \dots, d_M)$",
}

_STYLE = {
    "font.size": 8,
    "axes.labelsize": 8,
    "axes.titlesize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "lines.linewidth": 1.2,
    "lines.markersize": 4,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "pdf.fonttype": 42,
    "svg.hashsalt": "hcl_stats",
    "savefig.dpi": 200,
}


def _mpl() -> Any:
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("figures require matplotlib; install hcl_stats[plots]") from exc
    return matplotlib


def estimator_style(label: str, order: Sequence[str]) -> tuple[str, str, str]:
    """``(colour, marker, display name)`` of an estimator label."""
    if label in _FIXED:
        return _FIXED[label]
    if label in _DASHED:
        return _DASHED[label]
    used = {c for c, _, _ in _FIXED.values()}
    free = [c for c in OKABE_ITO if c not in used]
    others = [lab for lab in order if lab not in _FIXED and lab not in _DASHED]
    i = others.index(label) if label in others else 0
    return free[i % len(free)], _MARKERS[i % len(_MARKERS)], label.replace("_", " ")


def _numeric(values: Sequence[Any]) -> list[float]:
    return [float(v) for v in values]


def line_figure(
    summary: Any,
    spec: Mapping[str, Any],
    estimator_order: Sequence[str],
    *,
    notation: str = "",
    unit: str = "",
) -> Any:
    """Metric vs a grid factor, one line per estimator, one panel per label.

    Parameters
    ----------
    summary : pandas.DataFrame
        Rows of ``summary.csv``.
    spec : mapping
        A ``[[report.figures]]`` entry (see the module docstring).
    estimator_order : sequence of str
        Legend order.
    notation, unit : str
        The metric's notation and unit (y-axis label).

    Returns
    -------
    matplotlib.figure.Figure
    """
    mpl = _mpl()
    from matplotlib.figure import Figure

    x = spec["x"]
    metric = spec["metric"]
    labels = list(spec.get("labels", []))
    errorbar = spec.get("errorbar", "mcse")
    if errorbar not in ("mcse", "sd"):
        raise ValueError(f"figure errorbar must be 'mcse' or 'sd'; got {errorbar!r}")
    data = summary[summary["metric"] == metric]
    for key, value in (spec.get("where") or {}).items():
        data = data[data[key].astype(str) == str(value)]
    if data.empty:
        raise ValueError(
            f"figure {spec.get('name')!r}: the summary has no rows for metric {metric!r}"
            + (f" where {dict(spec['where'])}" if spec.get("where") else "")
        )
    if not labels:
        present = set(data["label"])
        labels = ["mean"] if "mean" in present else (["overall"] if "overall" in present else sorted(present)[:1])
    ests = [e for e in (spec.get("estimators") or estimator_order) if e in set(data["estimator"])]
    ncols = min(len(labels), 3)
    nrows = math.ceil(len(labels) / ncols)
    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=(3.4 if ncols == 1 else 2.4 * ncols, 2.5 * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False)
        unit_text = f" ({unit})" if unit else ""
        ylab = (notation or metric) + unit_text
        for k, label in enumerate(labels):
            ax = axes[k // ncols][k % ncols]
            sub = data[data["label"] == label]
            first_points = []
            for est in ests:
                rows = sub[sub["estimator"] == est].sort_values(x, key=lambda s: s.astype(float))
                if rows.empty:
                    continue
                colour, marker, name = estimator_style(est, estimator_order)
                style = "--" if est in _DASHED else "-"
                xs = _numeric(rows[x])
                ys = rows["mean"].astype(float).to_numpy()
                err = rows[errorbar].astype(float).fillna(0.0).to_numpy()
                ax.errorbar(xs, ys, yerr=err, color=colour, marker=marker, label=name,
                            capsize=2, elinewidth=0.8, linestyle=style,
                            markerfacecolor="white" if style == "--" else colour)
                first_points.append((xs[0], ys[0], xs[-1]))
            slope = spec.get("reference_slope")
            if slope is not None and first_points:
                x0 = min(p[0] for p in first_points)
                x1 = max(p[2] for p in first_points)
                y0 = max(p[1] for p in first_points) * 1.15
                ax.plot([x0, x1], [y0, y0 * (x1 / x0) ** float(slope)], color="0.5",
                        linestyle="--", linewidth=0.9,
                        label=rf"$\propto {x.split('_')[0][0] if x == 'n_samples' else 'x'}^{{{float(slope):g}}}$")
            if spec.get("logx"):
                ax.set_xscale("log")
                from matplotlib.ticker import FixedLocator, NullFormatter

                ticks = sorted({float(v) for v in sub[x]})
                ax.xaxis.set_major_locator(FixedLocator(ticks))
                ax.set_xticklabels([f"{t:g}" for t in ticks])
                ax.xaxis.set_minor_formatter(NullFormatter())
            if spec.get("logy"):
                from matplotlib.ticker import FuncFormatter

                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
                ax.yaxis.set_minor_formatter(FuncFormatter(_minor_label))
            if spec.get("ylim"):
                ax.set_ylim(*spec["ylim"])
            ax.set_xlabel(AXIS_LABELS.get(x, x))
            ax.set_ylabel(ylab)
            title = spec.get("titles", {}).get(label, label) if isinstance(spec.get("titles"), dict) else label
            if len(labels) > 1 or label not in ("overall", "fit"):
                ax.set_title(_label_title(title))
            if k == 0:
                handles, names = ax.get_legend_handles_labels()
        for k in range(len(labels), nrows * ncols):
            axes[k // ncols][k % ncols].set_visible(False)
        bar = "Monte Carlo s.e. of the mean" if errorbar == "mcse" else "1 sd across replications"
        fig.legend(handles, names, loc="outside lower center", frameon=False,
                   ncols=min(len(names), 2 if ncols == 1 else 5),
                   title=f"error bars: {bar}", title_fontsize=6)
    return fig


def _minor_label(value: float, _pos: int) -> str:
    """Label minor log ticks at 2 and 5 times a power of ten only."""
    if value <= 0:
        return ""
    lead = round(value / 10 ** math.floor(math.log10(value)), 6)
    return f"{value:g}" if lead in (2.0, 5.0) else ""


def _label_title(label: str) -> str:
    if "|" in label:
        view, _, s = label.partition("|")
        return f"view {view}, structure {s}"
    if label.isalpha() and label.isupper():
        return f"structure {label}"
    if label == "mean":
        return "mean over the blocks (m, S)"
    return label.replace("_", " ")


def save_figure(fig: Any, stem: Path) -> list[Path]:
    """Write ``<stem>.pdf`` (vector) and ``<stem>.png`` with fixed metadata.

    Returns the written paths.
    """
    mpl = _mpl()
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    with mpl.rc_context(_STYLE):
        pdf = stem.with_suffix(".pdf")
        fig.savefig(pdf, format="pdf", metadata={"CreationDate": None, "ModDate": None,
                                                 "Producer": None, "Creator": None})
        png = stem.with_suffix(".png")
        fig.savefig(png, format="png", metadata={"Software": None})
        out += [pdf, png]
    return out
