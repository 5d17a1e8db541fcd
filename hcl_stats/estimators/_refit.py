"""Refitting on a selected structure, shared by the structure learners.

A private module with public names: :func:`refit_on` and
:func:`finish_selection` serve :class:`~hcl_stats.estimators.selection.SchurSelect`
and the convex learners of :mod:`~hcl_stats.estimators.convex`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..structure import Structure
from ._base import Problem, RawFit, signal_covariance
from ._registry import get


def refit_on(
    refit: str, problem: Problem, structure: Structure, *, rng: np.random.Generator
) -> RawFit:
    """Refit the loadings with a registered estimator on a selected structure.

    The refit uses ``problem``'s noise option, covariance, ``n`` and data, with
    ``structure`` and no starting point.
    """
    est = get(refit)(noise_rule=problem.noise)
    return est._fit(
        problem.with_(structure=structure, noise=est.noise_rule, init=None), rng
    )


def finish_selection(
    est: Any,
    problem: Problem,
    selected: Structure,
    scores: dict[str, Any],
    noise: Any,
    rng: np.random.Generator,
    extra: dict[str, Any] | None = None,
) -> RawFit:
    """The fit of a structure learner on the structure it selected.

    ``selected`` is first made fittable
    (:func:`~hcl_stats.estimators.fittable.fittable_or_raise`); the learner's own
    selection and the lowered ranks are kept as ``selected_structure`` and
    ``fittable_changes``.

    ``est.refit == 'none'`` keeps the joint Schur loadings on ``selected``;
    otherwise the registered estimator ``est.refit`` is refitted with
    :func:`refit_on`, and its diagnostics are kept under ``refit_<key>``.
    ``extra`` is merged into the diagnostics after the selection scores.
    """
    from .fittable import fittable_or_raise
    from .spectral import schur_loadings

    original = selected
    selected, changes = fittable_or_raise(est, problem, selected, scores)
    info = {
        "selected_structure": str(original),
        "fittable_changes": list(changes),
        "selection_scores": scores,
        "selection_noise_var": noise if np.ndim(noise) == 0 else list(map(float, noise)),
        "refit": est.refit,
    }
    if extra:
        info.update(extra)
    if est.refit == "none":
        s_w = signal_covariance(problem.cov, problem.dims, noise)
        w, _ = schur_loadings(s_w, problem.dims, selected)
        return RawFit(w, noise, selected, extra=info)
    raw = refit_on(est.refit, problem, selected, rng=rng)
    info.update({f"refit_{k}": v for k, v in raw.extra.items()})
    return dataclasses.replace(raw, structure=selected, extra=info)
