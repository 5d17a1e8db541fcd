"""Testing kit for identifiability conditions and estimators (public).

For people who write their own identifiability conditions or estimators, the way
``sklearn.utils.estimator_checks`` and ``hypothesis.extra.numpy`` serve theirs:

* :func:`random_model`: Gaussian loadings for any design, including ``d_m < r_S``
  and designs without the Schur route, optionally with a controlled condition
  number;
* :func:`assert_population_recovery`: fit the exact covariance, compare every
  block Gram;
* :func:`check_estimator`: the common checks for an estimator built on
  :class:`hcl_stats.estimators.Estimator`;
* :func:`finite_difference_rank`: an independent, purely numerical Jacobian rank
  (to test a condition against);
* :mod:`hcl_stats.testing.strategies`: hypothesis strategies for structures,
  designs at and near the rank budget, and models (needs the ``test`` extra).

The tutorial "write a property test for your own condition" is in
docs/identifiability.md.
"""

from __future__ import annotations

from ._checks import CheckResult, assert_population_recovery, check_estimator
from ._models import finite_difference_rank, random_model

__all__ = [
    "CheckResult",
    "assert_population_recovery",
    "check_estimator",
    "finite_difference_rank",
    "random_model",
]


def __getattr__(name: str):
    if name == "strategies":
        import importlib

        return importlib.import_module(".strategies", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
