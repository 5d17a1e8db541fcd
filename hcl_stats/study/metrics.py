"""The built-in study metrics: adapters from :mod:`hcl_stats.metrics` to labelled values.

Each adapter is ``fn(fit, truth, context) -> dict[label, float]`` and is
registered under its study name when this module is imported (by
:mod:`hcl_stats.study`). Their display names (table titles, axis notation,
units) are those of :mod:`hcl_stats._metric_info`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import estimators
from .. import metrics as core
from .._labels import view_block_label
from ..structure import format_block
from .registry import register_metric

__all__ = [
    "block_gram",
    "converged",
    "noise_error",
    "overall",
    "procrustes",
    "rank",
    "relative_gradient",
    "sin_theta",
    "structure_gram",
    "support",
    "wall_time",
]


def block_gram(relative: bool, alignment: str = "data") -> Callable:
    """``block_gram``: the Gram error of every block ``W_m^S`` and their mean.

    ``mean`` is the total error over the (view, block) pairs with ``m`` in ``S``:
    a structure-blind fit's off-block loadings (keys with ``m`` not in ``S``) add
    to the total without adding to the count. ``alignment='oracle'`` is the
    ``block_gram_oracle_aligned`` metric.

    Examples
    --------
    >>> import hcl_stats as hs
    >>> from hcl_stats.study.metrics import block_gram
    >>> m = hs.HierarchicalFactorModel.random((3, 4), "AB:2 A:1", rng=0)
    >>> {k: round(v, 6) for k, v in block_gram(relative=False)(m, m, None).items()}
    {'A|AB': 0.0, 'B|AB': 0.0, 'A|A': 0.0, 'mean': 0.0}
    """
    def fn(fit, truth, ctx):
        errs = core.block_gram_errors(fit, truth, relative=relative, alignment=alignment)
        out = {view_block_label(m, b): v for (m, b), v in errs.items()}
        out["mean"] = float(sum(errs.values()) / sum(1 for m, b in errs if m in b))
        return out

    return fn


def structure_gram(relative: bool, alignment: str = "data") -> Callable:
    """``structure_gram``: the Gram error of every structure ``W^S``.

    Examples
    --------
    >>> import hcl_stats as hs
    >>> m = hs.HierarchicalFactorModel.random((3, 4), "AB:1 A:1", rng=0)
    >>> fit = hs.estimators.SchurComplement().fit_covariance(
    ...     m.covariance(), dims=m.dims, structure=m.structure)
    >>> from hcl_stats.study.metrics import structure_gram
    >>> {k: round(v, 6) for k, v in structure_gram(relative=True)(fit, m, None).items()}
    {'AB': 0.0, 'A': 0.0}
    """
    def fn(fit, truth, ctx):
        errs = core.structure_gram_errors(fit, truth, relative=relative,
                                          alignment=alignment)
        return {format_block(b): v for b, v in errs.items()}

    return fn


def overall(relative: bool) -> Callable:
    """``overall_gram``: the Gram error of the whole loading matrix.

    Examples
    --------
    >>> import hcl_stats as hs
    >>> m = hs.HierarchicalFactorModel.random((3, 4), "AB:1 A:1", rng=0)
    >>> fit = hs.estimators.SchurComplement().fit_covariance(
    ...     m.covariance(), dims=m.dims, structure=m.structure)
    >>> from hcl_stats.study.metrics import overall
    >>> {k: round(v, 6) for k, v in overall(relative=True)(fit, m, None).items()}
    {'overall': 0.0}
    """
    def fn(fit, truth, ctx):
        return {"overall": core.overall_gram_error(fit, truth, relative=relative)}

    return fn


def procrustes(fit, truth, ctx):
    """``procrustes``: the aligned loading error of every structure.

    Examples
    --------
    >>> import hcl_stats as hs
    >>> m = hs.HierarchicalFactorModel.random((3, 4), "AB:1 A:1", rng=0)
    >>> fit = hs.estimators.SchurComplement().fit_covariance(
    ...     m.covariance(), dims=m.dims, structure=m.structure)
    >>> from hcl_stats.study.metrics import procrustes
    >>> {k: round(v, 6) for k, v in procrustes(fit, m, None).items()}
    {'AB': 0.0, 'A': 0.0}
    """
    return {format_block(b): v for b, v in core.procrustes_errors(fit, truth).items()}


def sin_theta(fit, truth, ctx):
    """``sin_theta``: the subspace distance of every structure.

    Examples
    --------
    >>> import hcl_stats as hs
    >>> m = hs.HierarchicalFactorModel.random((3, 4), "AB:1 A:1", rng=0)
    >>> fit = hs.estimators.SchurComplement().fit_covariance(
    ...     m.covariance(), dims=m.dims, structure=m.structure)
    >>> from hcl_stats.study.metrics import sin_theta
    >>> {k: round(v, 6) for k, v in sin_theta(fit, m, None).items()}
    {'AB': 0.0, 'A': 0.0}
    """
    return {format_block(b): v for b, v in core.sin_theta(fit, truth).items()}


def support(fit, truth, ctx):
    """``support``: structure recovery scores of a learner ({} for the others).

    Examples
    --------
    A population-level structure learner finds every block:

    >>> import hcl_stats as hs
    >>> from hcl_stats.study.registry import Draw, EstimatorSpec, MetricContext
    >>> m = hs.HierarchicalFactorModel.random((4, 5), "AB:1 A:1 B:1", rng=0)
    >>> spec = EstimatorSpec("select", "schur_select", {})  # learns the structure
    >>> fit = spec.build().fit_covariance(m.covariance(), dims=m.dims, n_samples=None)
    >>> draw = Draw(m, m.dims, m.structure, 10**6, cov=m.covariance())
    >>> ctx = MetricContext("select", spec, draw, {}, wall_time=0.25)
    >>> from hcl_stats.study.metrics import support
    >>> support(fit, m, ctx)["exact"]
    1.0
    """
    if not estimators.get(ctx.spec.name).learns_structure:
        return {}  # the true structure was given: nothing was recovered
    return core.support_scores(fit, truth)


def rank(fit, truth, ctx):
    """``rank``: rank recovery scores of a learner ({} for the others).

    Examples
    --------
    >>> import hcl_stats as hs
    >>> from hcl_stats.study.registry import Draw, EstimatorSpec, MetricContext
    >>> m = hs.HierarchicalFactorModel.random((4, 5), "AB:1 A:1 B:1", rng=0)
    >>> spec = EstimatorSpec("select", "schur_select", {})  # learns the structure
    >>> fit = spec.build().fit_covariance(m.covariance(), dims=m.dims, n_samples=None)
    >>> draw = Draw(m, m.dims, m.structure, 10**6, cov=m.covariance())
    >>> ctx = MetricContext("select", spec, draw, {}, wall_time=0.25)
    >>> from hcl_stats.study.metrics import rank
    >>> rank(fit, m, ctx)
    {'rank_accuracy': 1.0, 'rank_abs_error': 0.0, 'total_rank_error': 0.0, 'exact': 1.0}
    """
    if not estimators.get(ctx.spec.name).learns_structure:
        return {}
    return core.rank_recovery(fit, truth)


def wall_time(fit, truth, ctx):
    """``wall_time``: seconds of the fit.

    Examples
    --------
    >>> import hcl_stats as hs
    >>> from hcl_stats.study.registry import Draw, EstimatorSpec, MetricContext
    >>> m = hs.HierarchicalFactorModel.random((4, 5), "AB:1 A:1 B:1", rng=0)
    >>> spec = EstimatorSpec("select", "schur_select", {})  # learns the structure
    >>> fit = spec.build().fit_covariance(m.covariance(), dims=m.dims, n_samples=None)
    >>> draw = Draw(m, m.dims, m.structure, 10**6, cov=m.covariance())
    >>> ctx = MetricContext("select", spec, draw, {}, wall_time=0.25)
    >>> from hcl_stats.study.metrics import wall_time
    >>> wall_time(fit, m, ctx)
    {'fit': 0.25}
    """
    return {"fit": float(ctx.wall_time)}


def converged(fit, truth, ctx):
    """``converged``: 1 if the fit reports convergence, 0 if not ({} if silent).

    Examples
    --------
    A closed-form fit reports nothing; an iterative one reports convergence:

    >>> import hcl_stats as hs
    >>> from hcl_stats.study.metrics import converged
    >>> m = hs.HierarchicalFactorModel.random((3, 4), "AB:1 A:1", rng=0)
    >>> args = dict(dims=m.dims, structure=m.structure)
    >>> converged(hs.estimators.SchurComplement().fit_covariance(m.covariance(), **args),
    ...           m, None)
    {}
    >>> converged(hs.estimators.MaskedGradient().fit_covariance(m.covariance(), **args),
    ...           m, None)
    {'fit': 1.0}
    """
    c = fit.diagnostics.converged
    return {} if c is None else {"fit": float(bool(c))}


def relative_gradient(fit, truth, ctx):
    """``relative_gradient``: the fit's reported relative gradient.

    Examples
    --------
    >>> import hcl_stats as hs
    >>> from hcl_stats.study.metrics import relative_gradient
    >>> m = hs.HierarchicalFactorModel.random((3, 4), "AB:1 A:1", rng=0)
    >>> fit = hs.estimators.MaskedGradient().fit_covariance(
    ...     m.covariance(), dims=m.dims, structure=m.structure)
    >>> bool(relative_gradient(fit, m, None)["fit"] < 1e-6)
    True
    """
    g = fit.diagnostics.relative_gradient
    return {} if g is None else {"fit": float(g)}


def noise_error(fit, truth, ctx):
    """``noise_var``: the largest error of the per-view noise variances.

    Examples
    --------
    >>> import hcl_stats as hs
    >>> from hcl_stats.study.metrics import noise_error
    >>> m = hs.HierarchicalFactorModel.random((3, 4), "AB:1 A:1", noise_var=0.5, rng=0)
    >>> noisier = hs.HierarchicalFactorModel(m.dims, m.structure, m.loadings, 0.75)
    >>> noise_error(noisier, m, None)
    {'max': 0.25}
    """
    est = np.broadcast_to(np.asarray(fit.noise_var, float), (len(fit.dims),))
    tru = np.broadcast_to(np.asarray(truth.noise_var, float), (len(fit.dims),))
    return {"max": float(np.max(np.abs(est - tru)))}


for _name, _fn in (
    ("block_gram", block_gram(False)),
    ("block_gram_rel", block_gram(True)),
    ("structure_gram", structure_gram(False)),
    ("structure_gram_rel", structure_gram(True)),
    ("block_gram_oracle_aligned", block_gram(False, "oracle")),
    ("structure_gram_oracle_aligned", structure_gram(False, "oracle")),
    ("overall_gram", overall(False)),
    ("overall_gram_rel", overall(True)),
    ("procrustes", procrustes),
    ("sin_theta", sin_theta),
    ("support", support),
    ("rank", rank),
    ("wall_time", wall_time),
    ("converged", converged),
    ("relative_gradient", relative_gradient),
    ("noise_var", noise_error),
):
    register_metric(_name, _fn)  # notation and unit: hcl_stats._metric_info
