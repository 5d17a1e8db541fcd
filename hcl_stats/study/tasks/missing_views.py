"""Study task ``missing_views`` and the estimator ``missing_views`` (private module).

Registers, at import (:mod:`hcl_stats.study.tasks` imports this module):

- the task kind ``missing_views``: the ``recovery`` design plus the scenario key
  ``missing_fraction``; after the rows are drawn, each sample independently loses
  one uniformly chosen view with probability ``missing_fraction``
  (:func:`hcl_stats.missing.drop_views`, stream 3 of the unit, MCAR);
- nothing else: the estimator ``missing_views``
  (:class:`~hcl_stats.estimators.MissingViews`) is an ordinary estimator of
  :mod:`hcl_stats.estimators`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ...estimators.missing_views import MissingViews
from ...missing import IncompleteData, drop_views
from ..registry import Draw, Task, register_task
from . import recovery

__all__ = ["STREAM_MISSING", "MissingViews"]  # MissingViews lives in hcl_stats.estimators

#: Unit stream of the missingness pattern (study streams 0-2 are model, data, method).
STREAM_MISSING = 3




def _normalize(key: str, value: Any) -> Any:
    if key == "missing_fraction":
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1:
            return float(value)
        raise ValueError("a fraction in [0, 1)")
    return recovery.normalize(key, value)


def _generate(factors: Any, rep_rng: Any, sampler: str) -> Draw:
    draw = recovery.generate(factors, rep_rng, "data")
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
            **recovery.RECOVERY_DEFAULTS,
            "missing_fraction": 0.0,
        },
        normalize=_normalize,
        generate=_generate,
        samplers=("data",),
        analyse=_analyse,
        check=recovery.check,
    )
)
