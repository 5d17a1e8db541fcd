"""Study task ``missing_views`` and the estimator ``missing_views`` (private module).

Registers, at import (``hcl_stats.study`` imports this module at its end):

- the task kind ``missing_views``: the ``recovery`` design plus the scenario key
  ``missing_fraction``; after the rows are drawn, each sample independently loses
  one uniformly chosen view with probability ``missing_fraction``
  (:func:`hcl_stats.missing.drop_views`, stream 3 of the unit, MCAR);
- the estimator ``missing_views`` (:class:`MissingViews`): handles the missing
  views by the pairwise-complete covariance or by complete-case deletion, selects
  the structure by rank counting (:func:`hcl_stats.workflow.select_structure`,
  method ``'eigen'``) or takes the true one, then fits a base estimator.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from .estimators.missing_views import MissingViews
from .missing import IncompleteData, drop_views
from .study import (
    RECOVERY_DEFAULTS,
    Draw,
    Task,
    _recovery_check,
    _recovery_generate,
    _recovery_normalize,
    register_task,
)

__all__ = ["STREAM_MISSING", "MissingViews"]  # MissingViews lives in hcl_stats.estimators

#: Unit stream of the missingness pattern (study streams 0-2 are model, data, method).
STREAM_MISSING = 3




def _normalize(key: str, value: Any) -> Any:
    if key == "missing_fraction":
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1:
            return float(value)
        raise ValueError("a fraction in [0, 1)")
    return _recovery_normalize(key, value)


def _generate(factors: Any, rep_rng: Any, sampler: str) -> Draw:
    draw = _recovery_generate(factors, rep_rng, "data")
    incomplete = drop_views(
        draw.data, factors["missing_fraction"], rng=rep_rng(STREAM_MISSING)
    )
    return replace(draw, extra={"observed": np.asarray(incomplete.observed)})


def _analyse(estimator: Any, draw: Draw, spec: Any, rng: Any) -> Any:
    data = IncompleteData.from_complete(draw.data, draw.extra["observed"])
    if isinstance(estimator, MissingViews):
        given = None if estimator.select else draw.structure
        return estimator.fit_incomplete(data, structure=given, rng=rng)
    # any other estimator: complete cases with the true structure
    return estimator.fit(data.complete_cases(), structure=draw.structure, rng=rng)


register_task(
    Task(
        name="missing_views",
        defaults={
            **RECOVERY_DEFAULTS,
            "missing_fraction": 0.0,
        },
        normalize=_normalize,
        generate=_generate,
        samplers=("data",),
        analyse=_analyse,
        check=_recovery_check,
    )
)
