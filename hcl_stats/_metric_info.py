"""One registry of metric and grid-factor names for tables and figures (private).

Every human-readable name of a metric (table row title, figure axis notation,
unit) and of a grid factor (axis label, table group heading) comes from here:
:mod:`hcl_stats.tables`, :mod:`hcl_stats.plotting`, :mod:`hcl_stats.theory_plots`
and the built-in metrics of :mod:`hcl_stats.study` read these entries, so one
metric has one name everywhere.

``notation`` is matplotlib mathtext (a subset of LaTeX math, valid in both).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FACTORS", "METRICS", "FactorInfo", "MetricInfo", "axis_label", "factor_info",
           "metric_info"]


@dataclass(frozen=True)
class MetricInfo:
    """Display names of one metric: table ``title``, axis ``notation`` and ``unit``."""

    title: str
    notation: str = ""
    unit: str = ""


@dataclass(frozen=True)
class FactorInfo:
    """Display names of one grid factor: axis ``label`` and math ``symbol``."""

    label: str
    symbol: str = ""


_GRAM_BLOCK = r"\|\hat W_m^S \hat W_m^{S\top} - W_m^S W_m^{S\top}\|_F"
_GRAM_S = r"\|\hat W^S \hat W^{S\top} - W^S W^{S\top}\|_F"
_GRAM = r"\|\hat W \hat W^\top - W W^\top\|_F"

#: Metrics of the studies (``study.metrics``) and of the rate fits (``rates.csv``).
METRICS: dict[str, MetricInfo] = {
    "block_gram": MetricInfo("Gram error per block", f"${_GRAM_BLOCK}$"),
    "block_gram_rel": MetricInfo("relative Gram error per block",
                                 rf"${_GRAM_BLOCK} / \|W_m^S W_m^{{S\top}}\|_F$"),
    "structure_gram": MetricInfo("Gram error per structure", f"${_GRAM_S}$"),
    "structure_gram_rel": MetricInfo("relative Gram error per structure",
                                     rf"${_GRAM_S} / \|W^S W^{{S\top}}\|_F$"),
    "block_gram_oracle_aligned": MetricInfo(
        "ORACLE-aligned Gram error per block (structure-blind fits rotated onto the truth)",
        rf"${_GRAM_BLOCK}\ (\mathrm{{oracle\ aligned}})$"),
    "structure_gram_oracle_aligned": MetricInfo(
        "ORACLE-aligned Gram error per structure (structure-blind fits rotated onto the truth)",
        rf"${_GRAM_S}\ (\mathrm{{oracle\ aligned}})$"),
    "overall_gram": MetricInfo("overall Gram error", f"${_GRAM}$"),
    "overall_gram_rel": MetricInfo("relative overall Gram error",
                                   rf"${_GRAM} / \|W W^\top\|_F$"),
    "oracle_floor": MetricInfo(
        "known-latent oracle floor (ORACLE: uses the truth)",
        r"oracle floor $\sqrt{E\|\tilde G - G\|_F^2}$ (uses the truth)"),
    "efficiency": MetricInfo(
        "efficiency (oracle floor / error)",
        r"efficiency $\mathrm{floor} / \|\hat G - G\|_F$"),
    "normalised_excess": MetricInfo(
        "normalised excess ((error - floor) / (||G|| - floor))",
        r"$(\|\hat G - G\|_F - \mathrm{floor}) / (\|G\|_F - \mathrm{floor})$"),
    "predicted_gram": MetricInfo(
        "predicted Gram error (theory; uses the truth)",
        r"predicted $E\|\hat G - G\|_F$ (uses the truth)"),
    "procrustes": MetricInfo("aligned loading error", r"$\min_{Q_S} \|\hat W^S Q_S - W^S\|_F$"),
    "sin_theta": MetricInfo("sin-theta distance", r"$\|\sin\Theta(\hat W^S, W^S)\|_2$"),
    "support": MetricInfo("structure recovery", "structure recovery score (0 to 1)"),
    "rank": MetricInfo("rank recovery", r"rank recovery ($\hat r_S$ vs $r_S$)"),
    "wall_time": MetricInfo("fit time", "fit wall time", "s"),
    "converged": MetricInfo("converged", "fraction converged"),
    "relative_gradient": MetricInfo("relative gradient", "relative gradient"),
    "noise_var": MetricInfo("noise variance error", r"$\max_m |\hat\sigma_m^2 - \sigma_m^2|$"),
    # downstream regression (hcl_stats._study_theory)
    "ds_beta_error": MetricInfo("coefficient error", r"$\|\hat\beta - \beta\|_2$"),
    "ds_group_beta_error": MetricInfo("coefficient error per structure",
                                      r"$\|\hat\beta_S - \beta_S\|_2$"),
    "ds_excess_risk": MetricInfo("excess prediction risk",
                                 r"$E[(\hat a^\top x - a_{or}^\top x)^2]$"),
    "ds_excess_risk_test": MetricInfo("excess risk on test rows", "excess risk on test rows"),
    "ds_risk_gap": MetricInfo("risk gap", r"$R(\hat a) - R(a_{or})$"),
    "ds_excess_risk_bayes": MetricInfo("excess risk over Bayes", r"$R(\hat a) - R(E[y|x])$"),
    "ds_support": MetricInfo("selected structures", "support of selected structures"),
    "ds_representation_error": MetricInfo("representation error", r"$\|\hat C W - I\|_{op}$"),
    "ds_loading_error": MetricInfo("loading Gram error", f"${_GRAM}$"),
    "ds_terms": MetricInfo("bound terms", "bound terms"),
    "gram_bound": MetricInfo("Gram error bound", rf"bound on ${_GRAM}$"),
}

#: Grid factors (figure x axes, table group headings).
FACTORS: dict[str, FactorInfo] = {
    "n_samples": FactorInfo("sample size $n$", "n"),
    "n_downstream": FactorInfo("labelled sample size $m$", "m"),
    "m_samples": FactorInfo("labelled sample size $m$", "m"),
    "latent_cov": FactorInfo(r"latent correlation $\rho$", r"\rho"),
    "noise_var": FactorInfo(r"noise variance $\sigma^2$", r"\sigma^2"),
    "noise_scale": FactorInfo("noise level $c$", "c"),
    "dims": FactorInfo(r"dimensions $(d_1, \dots, d_M)$", "d"),
    "d": FactorInfo(r"total dimension $d = \sum_m d_m$", "d"),
    "missing_fraction": FactorInfo("fraction of samples missing a view", "q"),
    "singular_values": FactorInfo("singular values", "s"),
    "structure": FactorInfo("structure", "S"),
    "cv_rule": FactorInfo("CV rule"),
}


def metric_info(name: str) -> MetricInfo:
    """Display names of metric ``name`` (the name itself, humanised, if unknown).

    >>> metric_info("overall_gram").title
    'overall Gram error'
    >>> metric_info("my_metric").title
    'my metric'
    """
    return METRICS.get(name) or MetricInfo(name.replace("_", " "))


def factor_info(name: str) -> FactorInfo:
    """Display names of grid factor ``name`` (humanised if unknown).

    >>> factor_info("n_samples").symbol
    'n'
    """
    return FACTORS.get(name) or FactorInfo(name.replace("_", " "))


def axis_label(metric: str) -> str:
    """Axis title of ``metric``: its notation (or title), then the unit in brackets.

    >>> axis_label("wall_time")
    'fit wall time (s)'
    >>> axis_label("overall_gram_rel")
    'relative overall Gram error'
    """
    info = metric_info(metric)
    # a ratio of norms is too long for an axis: the words, then
    text = info.title if (not info.notation or " / " in info.notation) else info.notation
    return f"{text} ({info.unit})" if info.unit else text
