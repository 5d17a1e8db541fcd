"""The ``downstream`` study task and the theory metrics.

Registers, at import time (:mod:`hcl_stats.study.tasks` imports it, so worker
processes see it too):

* the task ``kind = "downstream"``: the recovery scenario plus labelled data
  ``y = z^T beta + eps_y``; each estimator of the study learns the representation
  from the ``n`` unlabelled rows, then every downstream method is fitted on the
  ``m`` labelled rows (common random numbers across estimators and methods);
* metrics ``ds_*`` (one label per downstream method) and ``gram_bound`` (the
  overall Gram-error bounds of :func:`hcl_stats.theory.loading_bound` for the
  unit's true model and ``n``, labels ``sharp`` and ``paper``, and the model-free
  shape ``rate = sqrt(d/n) + d/n``; the same values for every estimator).

Downstream methods (labels): ``eiv`` (:class:`~hcl_stats.downstream.EIVRegression`),
``glasso`` (:class:`~hcl_stats.downstream.GroupLasso`, ``lam='cv'`` with the
scenario's ``cv_rule``), ``glasso_theory`` (``lam='theory'``) and ``oracle_eiv``
(EIV regression on the true representation: the ``K/m`` term alone).

Scenario keys added to the recovery ones: ``m_samples`` (required),
``noise_var_y`` (0.1), ``relevant`` (``"all"`` or a list of blocks in letters,
e.g. ``["ABC", "A"]``), ``n_test`` (0: population metrics only), ``cv_folds``
(5) and ``cv_rule`` (``"min"`` or ``"one_se"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ... import downstream as ds
from ..registry import Draw, Task, default_analyse, register_metric, register_task
from . import recovery

__all__: list[str] = []

#: Extra stream indices of a unit's SeedSequence (0-2 are the harness's).
STREAM_BETA, STREAM_LABELLED, STREAM_TEST = 3, 4, 5

METHODS = ("eiv", "glasso", "glasso_theory", "oracle_eiv")

_DS_DEFAULTS = {
    "m_samples": None,
    "noise_var_y": 0.1,
    "relevant": "all",
    "n_test": 0,
    "cv_folds": 5,
    "cv_rule": "min",
}


def _normalize(key: str, value: Any) -> Any:
    if key == "m_samples":
        if isinstance(value, int) and not isinstance(value, bool) and value >= 4:
            return int(value)
        raise ValueError("an integer >= 4")
    if key == "noise_var_y":
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return float(value)
        raise ValueError("a number >= 0")
    if key == "relevant":
        if value == "all":
            return "all"
        if isinstance(value, list) and value and all(
            isinstance(v, str) and v.isalpha() for v in value
        ):
            return sorted({v.upper() for v in value}, key=lambda s: (-len(s), s))
        raise ValueError("'all' or a non-empty list of blocks in letters, e.g. ['ABC', 'A']")
    if key in ("n_test", "cv_folds"):
        low = 0 if key == "n_test" else 2
        if isinstance(value, int) and not isinstance(value, bool) and value >= low:
            return int(value)
        raise ValueError(f"an integer >= {low}")
    if key == "cv_rule":
        if value in ("min", "one_se"):
            return value
        raise ValueError("'min' or 'one_se'")
    return recovery.normalize(key, value)


def _check(factors: Mapping[str, Any]) -> None:
    from ...structure import Structure

    recovery.check(factors)
    s = Structure.coerce(factors["structure"], len(factors["dims"]))
    if factors["m_samples"] <= s.total_rank + 1:
        raise ValueError(f"m_samples > K + 1 = {s.total_rank + 1}")
    if factors["relevant"] != "all":
        for blk in factors["relevant"]:
            b = frozenset(ord(c) - ord("A") for c in blk)
            if b not in s.blocks:
                raise ValueError(f"relevant blocks of the structure {s}; {blk!r} is not one")
    if factors["m_samples"] < 2 * factors["cv_folds"]:
        raise ValueError("m_samples >= 2 * cv_folds")


def _generate(factors: Mapping[str, Any], rep_rng: Any, sampler: str) -> Draw:
    base = recovery.generate(factors, rep_rng, sampler)
    model = base.truth
    per_cell = factors["model"] == "per_cell"
    relevant = None if factors["relevant"] == "all" else list(factors["relevant"])
    beta = ds.make_beta(
        model.structure, relevant=relevant, rng=rep_rng(STREAM_BETA, per_cell=per_cell)
    )
    s2y = factors["noise_var_y"]
    labelled = ds.sample_downstream(
        model, beta, factors["m_samples"], noise_var_y=s2y, rng=rep_rng(STREAM_LABELLED)
    )
    test = None
    if factors["n_test"]:
        test = ds.sample_downstream(
            model, beta, factors["n_test"], noise_var_y=s2y, rng=rep_rng(STREAM_TEST)
        )
    extra = {
        "beta": beta,
        "labelled": labelled,
        "test": test,
        "noise_var_y": s2y,
        "cv_folds": factors["cv_folds"],
        "cv_rule": factors["cv_rule"],
    }
    return Draw(
        base.truth, base.dims, base.structure, base.n_samples,
        data=base.data, cov=base.cov, extra=extra,
    )


@dataclass(frozen=True, eq=False)
class DownstreamOutcome:
    """Representation fit plus the evaluation of every downstream method."""

    fit: Any
    results: Mapping[str, Mapping[str, float]]


def _analyse(estimator: Any, draw: Draw, spec: Any, rng: Any) -> DownstreamOutcome:
    fit = default_analyse(estimator, draw, spec, rng)
    model, ex = draw.truth, draw.extra
    rep = ds.Representation.from_fit(fit, reference=model)
    oracle = ds.Representation.from_model(model)
    lab, beta, s2y, test = ex["labelled"], ex["beta"], ex["noise_var_y"], ex["test"]
    fits = {
        "eiv": (ds.EIVRegression().fit(rep, lab), rep),
        "glasso": (
            ds.GroupLasso(lam="cv", n_folds=ex["cv_folds"], rule=ex["cv_rule"]).fit(
                rep, lab, rng=rng
            ),
            rep,
        ),
        "glasso_theory": (ds.GroupLasso(lam="theory").fit(rep, lab), rep),
        "oracle_eiv": (ds.EIVRegression().fit(oracle, lab), oracle),
    }
    results = {
        name: ds.evaluate(f, r, model, beta, noise_var_y=s2y, test=test)
        for name, (f, r) in fits.items()
    }
    return DownstreamOutcome(fit, results)


register_task(
    Task(
        name="downstream",
        defaults={**recovery.RECOVERY_DEFAULTS, "noise_var": 0.1, **_DS_DEFAULTS},
        normalize=_normalize,
        generate=_generate,
        analyse=_analyse,
        check=_check,
    )
)


# ------------------------------------------------------------------- metrics
def _per_method(key: str, methods: tuple[str, ...] = METHODS):
    def fn(outcome: Any, truth: Any, ctx: Any) -> dict[str, float]:
        if not isinstance(outcome, DownstreamOutcome):
            return {}
        return {
            m: outcome.results[m][key]
            for m in methods
            if m in outcome.results and key in outcome.results[m]
        }

    return fn


def _group_errors(outcome: Any, truth: Any, ctx: Any) -> dict[str, float]:
    if not isinstance(outcome, DownstreamOutcome):
        return {}
    out = {}
    for m, res in outcome.results.items():
        for k, v in res.items():
            if k.startswith("beta_error["):
                out[f"{m}|{k[len('beta_error[') : -1]}"] = v
    return out


def _support(outcome: Any, truth: Any, ctx: Any) -> dict[str, float]:
    if not isinstance(outcome, DownstreamOutcome):
        return {}
    out = {}
    for m in ("glasso", "glasso_theory"):
        res = outcome.results[m]
        out[f"{m}|precision"] = res["support_precision"]
        out[f"{m}|recall"] = res["support_recall"]
        out[f"{m}|exact"] = res["support_exact"]
        out[f"{m}|n_selected"] = res["n_selected"]
    return out


def _representation(outcome: Any, truth: Any, ctx: Any) -> dict[str, float]:
    if not isinstance(outcome, DownstreamOutcome):
        return {}
    return {"overall": outcome.results["eiv"]["representation_error"]}


def _loading_error(outcome: Any, truth: Any, ctx: Any) -> dict[str, float]:
    from ...metrics import overall_gram_error

    fit = outcome.fit if isinstance(outcome, DownstreamOutcome) else outcome
    return {"overall": overall_gram_error(fit, truth)}


def _gram_bound(outcome: Any, truth: Any, ctx: Any) -> dict[str, float]:
    from ...theory import loading_bound, population_quantities

    q = population_quantities(truth)
    n = ctx.factors["n_samples"]
    return {
        "sharp": float(loading_bound(q, n, form="sharp")),
        "paper": float(loading_bound(q, n, form="paper")),
        "rate": float((q.d / n) ** 0.5 + q.d / n),
    }


register_metric(
    "ds_beta_error", _per_method("beta_error"),
    notation=r"$\|\hat\beta - \beta\|_2$",
)
register_metric(
    "ds_excess_risk", _per_method("excess_risk"),
    notation=r"$E[(\hat a^\top x - a_{or}^\top x)^2]$",
)
register_metric(
    "ds_excess_risk_test", _per_method("excess_risk_test"),
    notation=r"excess risk on test rows",
)
register_metric(
    "ds_risk_gap", _per_method("risk_gap"), notation=r"$R(\hat a) - R(a_{or})$"
)
register_metric(
    "ds_excess_risk_bayes", _per_method("excess_risk_bayes"),
    notation=r"$R(\hat a) - R(E[y|x])$",
)
register_metric(
    "ds_group_beta_error", _group_errors, notation=r"$\|\hat\beta_S - \beta_S\|_2$"
)
register_metric("ds_support", _support, notation="support of selected structures")
register_metric(
    "ds_representation_error", _representation,
    notation=r"$\|\hat C W - I\|_{op}$",
)
register_metric(
    "ds_loading_error", _loading_error,
    notation=r"$\|\hat W \hat W^\top - W W^\top\|_F$",
)
def _terms(outcome: Any, truth: Any, ctx: Any) -> dict[str, float]:
    """Regressors of the downstream bounds for this unit (same for every method)."""
    if not isinstance(outcome, DownstreamOutcome):
        return {}
    from ...metrics import overall_gram_error

    k = truth.structure.total_rank
    m = ctx.factors["m_samples"]
    rep = outcome.results["eiv"]["representation_error"]
    return {
        "k_over_m": k / m,
        "k_over_dof": k / (m - k - 1),
        "sqrt_k_over_dof": (k / (m - k - 1)) ** 0.5,
        "rep": rep,
        "rep_sq": rep**2,
        "loading_sq": overall_gram_error(outcome.fit, truth) ** 2,
    }


register_metric(
    "ds_terms", _terms, notation="bound terms K/m, representation error^2"
)
register_metric(
    "gram_bound", _gram_bound,
    notation=r"bound on $\|\hat W \hat W^\top - W W^\top\|_F$",
)
