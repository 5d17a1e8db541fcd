"""The estimator ``missing_views``: structure selection and fit on data with missing views.

:class:`MissingViews` handles the missing views by the pairwise-complete
covariance or by complete-case deletion, selects the structure by rank counting
(:func:`~hcl_stats.estimators.rank_counting.select_structure`, method
``'eigen'``) or takes the
true one, then fits a base estimator. The study task of the same name is in the
study harness.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from .._validation import check_choice, check_real
from ..exceptions import ValidationError
from ..missing import IncompleteData, fit_missing
from ._base import Estimator, Problem, RawFit
from ._registry import get
from .rank_counting import select_structure

__all__ = ["MissingViews"]


@dataclass(frozen=True, kw_only=True)
class MissingViews(Estimator):
    """Structure selection and fit on data with missing views.

    Parameters
    ----------
    handling : {'pairwise', 'complete_case'}, default='pairwise'
        ``'pairwise'``: pairwise-complete covariance (every block from the samples
        observing both views, PSD-projected); ``'complete_case'``: drop every
        sample that misses a view.
    select : bool, default=True
        Select the structure by rank counting (else use the one given).
    base : str, default='schur'
        Registry name of the estimator fitted on the selected structure.
    min_snr : float, default=0.5
        Passed to :func:`hcl_stats.workflow.select_structure`.
    selection_noise : str, default='bottom_half'
        Rank-free noise rule for the selection.
    selection_missing : {'subset', 'pairwise'}, default='subset'
        How rank counting treats incomplete data (``missing`` of
        :func:`hcl_stats.workflow.select_structure`).
    learner : str, default='rank_counting'
        ``'rank_counting'`` (:func:`hcl_stats.workflow.select_structure`, then
        ``base``), or the registry name of an estimator that learns the structure
        from a covariance (e.g. ``'schur_select'``, ``'convex_fast'``), fitted on
        the same (pairwise-complete or complete-case) covariance with its default
        hyper-parameters; ``base`` is then unused.
    noise_rule : default='scalar'
        The base estimator's noise option.

    Notes
    -----
    ``fit(views)`` on complete data is the ``missing_views`` fit with nothing
    missing. Incomplete data go through :meth:`fit_incomplete`.
    """

    name: ClassVar[str] = "missing_views"
    learns_structure: ClassVar[bool] = True
    needs_data: ClassVar[bool] = True

    handling: str = "pairwise"
    select: bool = True
    base: str = "schur"
    min_snr: float = 0.5
    selection_noise: str = "bottom_half"
    learner: str = "rank_counting"
    selection_missing: str = "subset"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.handling, "handling", ("pairwise", "complete_case"))
        check_real(self.min_snr, "min_snr", low=0.0)
        check_choice(self.selection_missing, "selection_missing", ("subset", "pairwise"))
        get(self.base)
        if self.learner != "rank_counting":
            cls = get(self.learner)
            if not cls.learns_structure or cls.needs_data:
                raise ValidationError(
                    "learner must be 'rank_counting' or a covariance-based estimator "
                    f"that learns the structure; got {self.learner!r}."
                )

    def fit_incomplete(self, data: IncompleteData, *, structure: Any = None, rng: Any = None):
        """Fit incomplete data (see the class docstring); returns a FitResult."""
        work: Any = data if self.handling == "pairwise" else data.complete_cases()
        learn = self.select or structure is None
        if learn and self.learner != "rank_counting":
            result = fit_missing(get(self.learner)(), work, rng=rng)
        else:
            if learn:
                structure = select_structure(
                    work,
                    noise_rule=self.selection_noise,
                    min_snr=self.min_snr,
                    missing=self.selection_missing,
                ).structure
            base = get(self.base)(noise_rule=self.noise_rule)
            result = fit_missing(base, work, structure=structure, rng=rng)
        extra = dict(result.diagnostics.extra)
        extra["complete_cases"] = int(np.all(data.observed, axis=1).sum())
        return replace(
            result, estimator=repr(self), diagnostics=replace(result.diagnostics, extra=extra)
        )

    def _fit(self, problem: Problem, rng: np.random.Generator) -> RawFit:
        data = problem.data
        if data is None:  # pragma: no cover - needs_data guarantees data
            raise ValidationError("MissingViews needs the data rows.")
        observed = np.ones((data.n_samples, data.n_views), dtype=bool)
        fit = self.fit_incomplete(
            IncompleteData.from_complete(data, observed), structure=problem.structure, rng=rng
        )
        d = fit.diagnostics
        return RawFit(
            np.asarray(fit.loadings), fit.noise_var, fit.structure, d.converged, d.n_iter,
            d.objective, d.relative_gradient, dict(d.extra),
        )
