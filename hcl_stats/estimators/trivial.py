"""Trivial reference estimators, to show whether an estimator is informative."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ._base import Estimator, Problem, RawFit

__all__ = ["ZeroEstimator"]


@dataclass(frozen=True, kw_only=True)
class ZeroEstimator(Estimator):
    """The zero estimator ``W = 0``: the baseline every estimator must beat.

    Returns all-zero loadings in the given structure, so every Gram error equals the
    norm of the truth (``||W W^T||_F`` overall, ``||W^S W^S^T||_F`` per block). An
    estimator whose error is above this line is worse than predicting no signal at
    all, which happens to unshrunk spectral estimators when spikes sit near the
    detectability edge (docs/shrinkage.md).

    Parameters
    ----------
    noise_rule : {'scalar', 'per_view'} or float, default='scalar'
        Only used to report a noise variance (``sigma^2`` is then the mean of the
        bottom ``d - K`` eigenvalues); the loadings are always zero.

    Notes
    -----
    Deterministic; ``rng`` is ignored. Identification: trivially exact (``0`` has
    no rotation ambiguity).

    References
    ----------
    Issue 10 of this project: baseline lines in every study and report.

    Examples
    --------
    >>> import hcl_stats as hs
    >>> model = hs.HierarchicalFactorModel.random((4, 5), "AB:1 A:1", rng=0)
    >>> fit = hs.estimators.ZeroEstimator().fit_covariance(
    ...     model.covariance(), dims=(4, 5), structure=model.structure)
    >>> float(abs(fit.loadings).max())
    0.0
    """

    name: ClassVar[str] = "zero"
    samples_path: ClassVar[bool] = True

    def _fit(self, problem: Problem, rng: np.random.Generator) -> RawFit:
        noise = problem.noise_variance()
        w = np.zeros((problem.d, problem.structure.total_rank))
        return RawFit(w, noise, problem.structure, extra={"baseline": "zero"})
