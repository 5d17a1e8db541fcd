"""Study metrics from the theory of limits and predictions (private).

Registered metrics (truth-side quantities, computed from the true model of the
replicate and the cell's ``n``; they never enter an estimate):

* ``predicted_gram``: :func:`hcl_stats.theory.predicted_error` of the estimator
  of the row (registry names ``naive``, ``pca_shrink``, ``masked_gradient``;
  other estimators record nothing). Labels ``overall`` and, for
  ``masked_gradient``, one per structure (as ``structure_gram``), plus
  ``valid:overall`` (1 if the asymptotics apply, else 0). ``masked_gradient`` is
  predicted only for models with at most :data:`STUDY_MAX_PARAMS` free loading
  entries.
* ``oracle_floor``: :func:`hcl_stats.theory.limits` ``oracle_floor`` per (view,
  block) (labels ``A|ABC`` as ``block_gram``), per structure and ``overall``, ``spectral_limit`` (overall) and ``zero_error`` (overall);
  these are labelled as oracles (they use the truth).
"""

from __future__ import annotations

from typing import Any

from ..registry import register_metric

_PREDICTED = ("naive", "pca_shrink", "masked_gradient")

#: The masked-gradient prediction factors p x p matrices (p free loading entries);
#: above this size a study skips it (about 20 s per replicate at p = 1920).
STUDY_MAX_PARAMS = 1000


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
    from ...theory import limits

    if getattr(truth, "latent_cov", None) is not None:
        return {}
    tab = limits(truth, int(ctx.factors["n_samples"]))
    out: dict[str, float] = {}
    for _, row in tab.iterrows():
        if row["kind"] == "view_block":
            out[f"{row['view']}|{row['block']}"] = float(row["oracle_floor"])
        elif row["kind"] == "structure":
            out[str(row["block"])] = float(row["oracle_floor"])
        elif row["kind"] == "overall":
            out["overall"] = float(row["oracle_floor"])
            out["spectral_limit"] = float(row["spectral_limit"])
            out["zero_error"] = float(row["zero_error"])
    return out


register_metric(
    "predicted_gram", _predicted,
    notation=r"predicted $E\|\hat G - G\|_F$ (theory; uses the truth)",
)
register_metric(
    "oracle_floor", _limits,
    notation=r"known-latent oracle RMS error and spectral limit (oracle; uses the truth)",
)
