"""Study metrics of the theory: predicted errors, limits and efficiencies.

* ``predicted_gram``: :func:`hcl_stats.theory.predicted_error` of the estimator
  of the row (registry names ``naive``, ``pca_shrink``, ``masked_gradient``;
  other estimators record nothing). Labels ``overall`` and, for
  ``masked_gradient``, one per structure (as ``structure_gram``), plus
  ``valid:overall`` (1 if the asymptotics apply, else 0). ``masked_gradient`` is
  predicted only for models with at most :data:`STUDY_MAX_PARAMS` free loading
  entries.
* ``oracle_floor``: :func:`hcl_stats.theory.limits` ``oracle_floor`` per (view,
  block) (labels ``A|ABC`` as ``block_gram``), their ``mean`` over the (view,
  block) pairs (the reference of ``block_gram``'s ``mean``), per structure and
  ``overall``, ``spectral_limit`` (overall) and ``zero_error`` (overall); these
  are labelled as oracles (they use the truth).
* ``efficiency``: ``oracle_floor / error`` per structure and ``overall``, with
  the data-only errors of ``structure_gram`` and ``overall_gram``
  (:func:`hcl_stats.metrics.structure_gram_errors`,
  :func:`~hcl_stats.metrics.overall_gram_error`).
* ``normalised_excess``: ``(error - oracle_floor) / (zero_error - oracle_floor)``
  per structure and ``overall``: 0 at the floor, 1 for the zero estimator.
  Recorded only for a row whose floor is at most :data:`EXCESS_MAX_FLOOR_RATIO`
  ``= 2/3`` of its ``zero_error``: above it the known-latent oracle recovers less
  than a third of ``||G||_F`` (at or above 1 it is worse than estimating zero,
  docs/theory.md §8), the denominator is small against the errors, and the mean
  over replicates is dominated by a few models (values of 100-300 on the weak
  blocks of the paper design at ``n = 5000`` without this rule).

Both ratios are computed per replicate (the floor of that replicate's model) and
summarised like every metric (mean, sd, Monte Carlo s.e.); the mean of a ratio is
not the ratio of the means. :func:`limits` runs once per (cell, replicate)
model and ``n``, not once per estimator (:func:`cached_limits`).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import numpy as np

from ... import metrics as core
from ...structure import format_block
from ..registry import register_metric

__all__ = ["EXCESS_MAX_FLOOR_RATIO", "STUDY_MAX_PARAMS", "cached_limits", "efficiency_values"]

_PREDICTED = ("naive", "pca_shrink", "masked_gradient")

#: ``normalised_excess`` is recorded only where ``oracle_floor <= ratio * zero_error``.
EXCESS_MAX_FLOOR_RATIO = 2.0 / 3.0

#: The masked-gradient prediction factors p x p matrices (p free loading entries);
#: above this size a study skips it (about 20 s per replicate at p = 1920).
STUDY_MAX_PARAMS = 1000

#: limits() tables of the most recent models of this process (a unit's estimators
#: share one model; a per-cell model is shared by every replicate).
_LIMITS_CACHE: OrderedDict[str, dict[str, dict[str, float]]] = OrderedDict()
_CACHE_SIZE = 16


def _model_key(model: Any, n: int) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(model.loadings, dtype=float).tobytes())
    h.update(np.ascontiguousarray(np.atleast_1d(model.noise_var), dtype=float).tobytes())
    h.update(repr((tuple(model.dims), str(model.structure), int(n))).encode())
    return h.hexdigest()


def cached_limits(model: Any, n: int) -> dict[str, dict[str, float]]:
    """``limits(model, n)`` as ``{row label: {column: value}}``, computed once per model.

    Row labels: ``A|ABC`` for a (view, block) row, ``ABC`` for a structure,
    ``overall``. Keyed on the model's loadings, noise, dims, structure and ``n``
    (a SHA-256 digest), so equal models share an entry whatever object holds them.

    Examples
    --------
    >>> import hcl_stats as hs
    >>> model = hs.HierarchicalFactorModel.random((20, 30), "AB:1 A:1 B:1", rng=0)
    >>> tab = cached_limits(model, 2000)
    >>> sorted(tab)
    ['A', 'AB', 'A|A', 'A|AB', 'B', 'B|AB', 'B|B', 'overall']
    >>> cached_limits(model, 2000) is tab
    True
    """
    from ...theory import limits

    key = _model_key(model, n)
    if key in _LIMITS_CACHE:
        _LIMITS_CACHE.move_to_end(key)
        return _LIMITS_CACHE[key]
    tab = limits(model, int(n))
    out: dict[str, dict[str, float]] = {}
    for row in tab.to_dict("records"):
        label = f"{row['view']}|{row['block']}" if row["kind"] == "view_block" else row["block"]
        out[str(label)] = {k: float(row[k]) for k in
                           ("oracle_floor", "zero_error", "spectral_limit", "oracle_crb")}
    _LIMITS_CACHE[key] = out
    while len(_LIMITS_CACHE) > _CACHE_SIZE:
        _LIMITS_CACHE.popitem(last=False)
    return out


def _applies(truth: Any) -> bool:
    from ...model import HierarchicalFactorModel

    return isinstance(truth, HierarchicalFactorModel) and truth.latent_cov is None


def _predicted(fit: Any, truth: Any, ctx: Any) -> dict[str, float]:
    from ...theory import predicted_error

    name = getattr(ctx.spec, "name", None)
    if name not in _PREDICTED or getattr(truth, "latent_cov", None) is not None:
        return {}
    if name == "masked_gradient" and int(truth.structure.mask(truth.dims).sum()) > STUDY_MAX_PARAMS:
        return {}
    tab = predicted_error(truth, int(ctx.factors["n_samples"]), name)
    out: dict[str, float] = {}
    for _, row in tab.iterrows():
        if row["kind"] == "overall":
            out["overall"] = float(row["predicted_error"])
            out["valid:overall"] = float(bool(row["valid"]))
        elif row["kind"] == "structure" and row["predicted_error"] == row["predicted_error"]:
            out[str(row["block"])] = float(row["predicted_error"])
    return out


def _limits(fit: Any, truth: Any, ctx: Any) -> dict[str, float]:
    if not _applies(truth):
        return {}
    tab = cached_limits(truth, int(ctx.factors["n_samples"]))
    out = {label: row["oracle_floor"] for label, row in tab.items()}
    pairs = [v for label, v in out.items() if "|" in label]
    out["mean"] = float(sum(pairs) / len(pairs))
    out["spectral_limit"] = tab["overall"]["spectral_limit"]
    out["zero_error"] = tab["overall"]["zero_error"]
    return out


def efficiency_values(
    errors: dict[str, float], table: dict[str, dict[str, float]]
) -> tuple[dict[str, float], dict[str, float]]:
    """``(efficiency, normalised_excess)`` of measured ``errors`` against a limits table.

    Parameters
    ----------
    errors : dict
        Measured Gram errors by row label (``ABC``, ..., ``overall``).
    table : dict
        :func:`cached_limits` of the true model.

    Returns
    -------
    (dict, dict)
        ``floor / error`` for every label of ``errors`` with a floor and an
        error above round-off (``1e-12 * zero_error``);
        ``(error - floor) / (zero_error - floor)`` for those whose floor is at
        most :data:`EXCESS_MAX_FLOOR_RATIO` times ``zero_error``.

    Examples
    --------
    >>> tab = {"AB": {"oracle_floor": 1.0, "zero_error": 3.0}}
    >>> efficiency_values({"AB": 2.0}, tab)
    ({'AB': 0.5}, {'AB': 0.5})
    >>> efficiency_values({"AB": 3.0}, tab)[1]  # the zero estimator
    {'AB': 1.0}
    >>> efficiency_values({"AB": 3.0}, {"AB": {"oracle_floor": 2.5, "zero_error": 3.0}})
    ({'AB': 0.8333333333333334}, {})
    """
    eff: dict[str, float] = {}
    excess: dict[str, float] = {}
    for label, err in errors.items():
        row = table.get(label)
        if row is None:
            continue
        floor, zero = row["oracle_floor"], row["zero_error"]
        if err > 1e-12 * zero:  # an exact fit (error at round-off) has no ratio
            eff[label] = floor / err
        if floor <= EXCESS_MAX_FLOOR_RATIO * zero:
            excess[label] = (err - floor) / (zero - floor)
    return eff, excess


#: The last (fit, truth, errors): ``efficiency`` and ``normalised_excess`` of one fit
#: share the data-only errors (the references keep the objects, so identity is safe).
_LAST_ERRORS: list[Any] = [None, None, None]


def _errors(fit: Any, truth: Any) -> dict[str, float]:
    if _LAST_ERRORS[0] is fit and _LAST_ERRORS[1] is truth:
        return _LAST_ERRORS[2]
    errs = {format_block(b): v for b, v in core.structure_gram_errors(fit, truth).items()}
    errs["overall"] = core.overall_gram_error(fit, truth)
    _LAST_ERRORS[:] = [fit, truth, errs]
    return errs


def _ratio(which: int):
    def fn(fit: Any, truth: Any, ctx: Any) -> dict[str, float]:
        if not _applies(truth):
            return {}
        table = cached_limits(truth, int(ctx.factors["n_samples"]))
        return efficiency_values(_errors(fit, truth), table)[which]

    return fn


# display names: hcl_stats._metric_info
register_metric("predicted_gram", _predicted)
register_metric("oracle_floor", _limits)
register_metric("efficiency", _ratio(0))
register_metric("normalised_excess", _ratio(1))
