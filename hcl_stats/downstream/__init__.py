"""Downstream prediction with a learned representation (paper.md §3, steps 6-10).

Labelled data follow ``y = z^T beta + eps_y`` with ``eps_y ~ N(0, sigma_y^2)``;
the representation is learned from ``n`` *unlabelled* samples by any estimator
(a :class:`~hcl_stats.results.FitResult`)::

    h_hat(x) = C_hat x,   C_hat = (W_hat^T W_hat)^{-1} W_hat^T          (K x d)

Given ``m`` labelled rows with features ``X_hat = X C_hat^T`` the
errors-in-variables (noise-corrected) normal equations are

    H = X_hat^T X_hat / m - C_hat Psi_hat C_hat^T,   b = X_hat^T y / m

(``Psi_hat = sigma_hat^2 I`` for isotropic noise), because ``h_hat(x) =
C_hat W z + C_hat eps`` carries the feature noise ``C_hat eps``. ``H`` estimates
``Cov(C_hat W z)`` and can be indefinite for small ``m``; it is projected onto
``{H : lambda_min(H) >= psd_floor * lambda_max(H)}`` by flooring its eigenvalues
(the nearest such matrix in Frobenius norm), and the number of floored
eigenvalues is recorded.

Estimators on ``(H, b)``:

* :class:`EIVRegression`: ``beta_hat = H^{-1} b`` (bias-corrected least squares);
* :class:`GroupLasso`: ``min 1/2 beta^T H beta - b^T beta + lam sum_S w_S
  ||beta_S||_2`` with one group per structure block, solved by exact block
  coordinate descent (:func:`solve_group_lasso`); ``lam`` fixed, chosen by K-fold
  cross-validation whose training folds never see held-out rows
  (:func:`cross_validate`), or set by theory (:func:`theory_lambda`).

Metrics (:func:`evaluate`): coefficient error per group and overall, excess risk
against the oracle predictor (population value, exact for Gaussian data, and on a
fresh test sample) and support precision/recall of the selected structures.

Logistic variant: :func:`sample_downstream_logistic` (``y ~ Bernoulli(sigmoid(
z^T beta + e))``, the reference code's ``generate_logistic_data``) and
:func:`solve_logistic_group_lasso` (FISTA with restart, KKT-checked; no
errors-in-variables correction, so it is for structure selection).

The package is split by concern: :mod:`._data` (simulated labelled data),
:mod:`._representation` (``h(x) = C x`` and the moment matrices),
:mod:`._group_lasso` (solvers), :mod:`._cv` (cross-validation and the theory
penalty) and :mod:`._models` (estimators and evaluation). Every public name is
importable from ``hcl_stats.downstream``.
"""

from __future__ import annotations

from ._cv import CVResult, cross_validate, kfold_indices, lambda_max, theory_lambda
from ._data import (
    DownstreamData,
    make_beta,
    sample_downstream,
    sample_downstream_logistic,
)
from ._group_lasso import objective as _objective  # noqa: F401  (kept for callers of the old module)
from ._group_lasso import solve_group_lasso, solve_logistic_group_lasso
from ._models import DownstreamFit, EIVRegression, GroupLasso, evaluate
from ._representation import Representation, moment_matrices, residual_variance

__all__ = [
    "CVResult",
    "DownstreamData",
    "DownstreamFit",
    "EIVRegression",
    "GroupLasso",
    "Representation",
    "cross_validate",
    "evaluate",
    "kfold_indices",
    "lambda_max",
    "make_beta",
    "moment_matrices",
    "residual_variance",
    "sample_downstream",
    "sample_downstream_logistic",
    "solve_logistic_group_lasso",
    "solve_group_lasso",
    "theory_lambda",
]
