"""K-fold cross-validation of the group-lasso penalty, and its theory value (private)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._validation import as_generator, check_float_array, check_int, check_real
from ..exceptions import ValidationError
from ._group_lasso import solve_group_lasso
from ._representation import moment_matrices

__all__ = ["CVResult", "cross_validate", "fit_path", "kfold_indices", "lambda_max", "theory_lambda"]


def kfold_indices(
    n_samples: int, n_folds: int, *, rng: Any = None
) -> list[tuple[NDArray[np.intp], NDArray[np.intp]]]:
    """Random K-fold split: ``[(train, test), ...]`` with disjoint test folds.

    Parameters
    ----------
    n_samples : int
    n_folds : int
        ``2 <= n_folds <= n_samples``.
    rng : None, int, SeedSequence or Generator

    Returns
    -------
    list of (ndarray, ndarray)
        Sorted train and test indices; each row is in exactly one test fold.

    Examples
    --------
    >>> folds = kfold_indices(5, 2, rng=0)
    >>> sorted(int(i) for _, test in folds for i in test)
    [0, 1, 2, 3, 4]
    """
    n = check_int(n_samples, "n_samples", minimum=2)
    k = check_int(n_folds, "n_folds", minimum=2)
    if k > n:
        raise ValidationError(f"n_folds must be <= n_samples = {n}; got {k}.")
    perm = as_generator(rng).permutation(n)
    out = []
    for test in np.array_split(perm, k):
        mask = np.ones(n, dtype=bool)
        mask[test] = False
        out.append((np.flatnonzero(mask), np.sort(test)))
    return out


@dataclass(frozen=True, eq=False)
class CVResult:
    """Cross-validation of the group-lasso penalty.

    Parameters
    ----------
    fractions : ndarray of shape (L,)
        Penalties as fractions of ``lambda_max`` (computed on each training fold
        from that fold's own data), decreasing; the last may be 0 (no penalty).
    mean_error, se_error : ndarray of shape (L,)
        Mean and standard error over folds of the held-out squared error.
    fold_errors : ndarray of shape (n_folds, L)
    fold_coefs : ndarray of shape (n_folds, L, K)
        Coefficient path of every training fold.
    folds : list of (train, test) index arrays
    best_index : int
    rule : str
        ``'min'`` or ``'one_se'``.
    """

    fractions: NDArray[np.float64]
    mean_error: NDArray[np.float64]
    se_error: NDArray[np.float64]
    fold_errors: NDArray[np.float64]
    fold_coefs: NDArray[np.float64]
    folds: list[tuple[NDArray[np.intp], NDArray[np.intp]]]
    best_index: int
    rule: str

    @property
    def best_fraction(self) -> float:
        """Selected fraction of ``lambda_max``."""
        return float(self.fractions[self.best_index])


def lambda_max(b: NDArray, groups: Sequence[NDArray], weights: NDArray) -> float:
    """Smallest ``lam`` with ``beta_hat = 0``: ``max_g ||b_g|| / w_g``.

    Examples
    --------
    At ``lam = lambda_max`` the group lasso keeps every group at zero:

    >>> import numpy as np
    >>> from hcl_stats.downstream import lambda_max, solve_group_lasso
    >>> b, groups, w = np.array([3.0, 4.0, 1.0]), [[0, 1], [2]], np.array([1.0, 1.0])
    >>> lam = lambda_max(b, [np.array(g) for g in groups], w)
    >>> lam  # ||(3, 4)|| / 1
    5.0
    >>> coef, _ = solve_group_lasso(np.eye(3), b, groups, lam, weights=w)
    >>> coef.tolist()
    [0.0, 0.0, 0.0]
    """
    if len(groups) == 0 or len(groups) != len(weights):
        raise ValidationError(
            f"groups must be a non-empty list with one entry per weight ({len(weights)}); "
            f"got {len(groups)} groups."
        )
    return float(
        max(np.linalg.norm(b[g]) / wg for g, wg in zip(groups, weights, strict=True))
    )


def fit_path(features, y, feature_noise, groups, weights, fractions, psd_floor):
    """Coefficient path on the rows given (and only those)."""
    h, b, _ = moment_matrices(features, y, feature_noise, psd_floor=psd_floor)
    lmax = lambda_max(b, groups, weights)
    coefs = np.zeros((len(fractions), b.shape[0]))
    init = None
    for j, frac in enumerate(fractions):
        coef, _ = solve_group_lasso(
            h, b, groups, frac * lmax, weights=weights, init=init, tol=1e-9
        )
        coefs[j] = coef
        init = coef
    return coefs


def cross_validate(
    features: ArrayLike,
    y: ArrayLike,
    feature_noise: ArrayLike,
    groups: Sequence[ArrayLike],
    *,
    weights: ArrayLike | None = None,
    fractions: ArrayLike | None = None,
    n_folds: int = 5,
    rule: str = "min",
    psd_floor: float = 1e-3,
    rng: Any = None,
) -> CVResult:
    """K-fold cross-validation of the penalty, without leakage.

    For every fold the moment matrices, ``lambda_max`` and the whole coefficient
    path are computed from the training rows only (``features[train]``,
    ``y[train]``); held-out rows are touched only to compute the validation error
    ``mean (y_test - features_test beta)^2``.

    Parameters
    ----------
    features : array_like of shape (m, K)
    y : array_like of shape (m,)
    feature_noise : array_like of shape (K, K)
    groups : sequence of index arrays
    weights : array_like, optional
        Group weights (default ``sqrt(|g|)``).
    fractions : array_like, optional
        Decreasing fractions of ``lambda_max``; default 12 values from 1 to 1e-3
        (log spaced) followed by 0.
    n_folds : int, default=5
    rule : {'min', 'one_se'}, default='min'
        Smallest mean error, or the largest penalty within one standard error of
        it (sparser).
    psd_floor : float, default=1e-3
    rng : None, int, SeedSequence or Generator
        Shuffles the rows into folds.

    Returns
    -------
    CVResult

    Examples
    --------
    >>> import numpy as np, hcl_stats as hs
    >>> from hcl_stats import downstream as ds
    >>> m = hs.HierarchicalFactorModel.random((4, 5), "AB:1 A:1 B:1", noise_var=0.1,
    ...                                      rng=0)
    >>> beta = np.array([1.0, 0.0, 0.5])
    >>> data = ds.sample_downstream(m, beta, 2000, noise_var_y=0.1, rng=0)
    >>> rep = ds.Representation.from_model(m)  # the true C = (W^T W)^{-1} W^T
    >>> feats = rep.transform(data.x)
    >>> noise = rep.coef @ np.diag(rep.noise_diagonal) @ rep.coef.T
    >>> cv = ds.cross_validate(feats, data.y, noise, rep.groups(), rng=0)
    >>> cv.fractions[[0, -1]].tolist()  # from lambda_max down to 0
    [1.0, 0.0]
    >>> bool(cv.mean_error[cv.best_index] <= cv.mean_error.min())
    True
    """
    x = check_float_array(features, "features", ndim=2)
    y = check_float_array(y, "y", ndim=1)
    fn = check_float_array(feature_noise, "feature_noise", ndim=2)
    if y.shape[0] != x.shape[0]:
        raise ValidationError(
            f"y must have one entry per row of features ({x.shape[0]}); got {y.shape[0]}."
        )
    if fn.shape != (x.shape[1], x.shape[1]):
        raise ValidationError(
            f"feature_noise must have shape ({x.shape[1]}, {x.shape[1]}) (features has "
            f"{x.shape[1]} columns); got {fn.shape}."
        )
    if rule not in ("min", "one_se"):
        raise ValidationError(f"rule must be 'min' or 'one_se'; got {rule!r}.")
    groups = [np.asarray(g, dtype=np.intp) for g in groups]
    w = (
        np.array([math.sqrt(g.size) for g in groups])
        if weights is None
        else np.asarray(weights, dtype=float)
    )
    fr = (
        np.concatenate([np.geomspace(1.0, 1e-3, 12), [0.0]])
        if fractions is None
        else check_float_array(fractions, "fractions", ndim=1)
    )
    folds = kfold_indices(x.shape[0], n_folds, rng=rng)
    errors = np.empty((len(folds), fr.size))
    coefs = np.empty((len(folds), fr.size, x.shape[1]))
    for i, (train, test) in enumerate(folds):
        path = fit_path(x[train], y[train], fn, groups, w, fr, psd_floor)
        coefs[i] = path
        resid = y[test][:, None] - x[test] @ path.T
        errors[i] = np.mean(resid**2, axis=0)
    mean = errors.mean(axis=0)
    se = errors.std(axis=0, ddof=1) / math.sqrt(len(folds))
    best = int(np.argmin(mean))
    if rule == "one_se":
        ok = np.flatnonzero(mean <= mean[best] + se[best])
        best = int(ok.min())  # fractions decrease, so the first is the largest lam
    return CVResult(fr, mean, se, errors, coefs, folds, best, rule)


def theory_lambda(
    residual_sd: float, m: int, n_structures: int, min_rank: int, *, constant: float = 1.0
) -> float:
    """Theory-driven penalty ``c sigma (1 + sqrt(2 log|S| / r_min)) / sqrt(m)``.

    With weights ``w_S = sqrt(r_S)`` this gives ``lam w_S >= c sigma (sqrt(r_S) +
    sqrt(2 log|S|)) / sqrt(m)``: each group's noise gradient ``||X_S^T eps / m||``
    exceeds it with probability at most ``1/|S|`` when ``||H_SS|| <= 1`` (Gaussian
    concentration of the norm), so the union bound alone gives no
    high-probability statement; the chi-square tails are much smaller in practice
    (docs/theory.md §5; Lounici et al. 2011). ``constant`` > 1 adds a margin.

    Examples
    --------
    >>> round(theory_lambda(1.0, 100, 1, 1), 6)  # log 1 = 0
    0.1
    """
    s = check_real(residual_sd, "residual_sd", low=0.0)
    m = check_int(m, "m", minimum=1)
    g = check_int(n_structures, "n_structures", minimum=1)
    r = check_int(min_rank, "min_rank", minimum=1)
    return constant * s * (1.0 + math.sqrt(2.0 * math.log(g) / r)) / math.sqrt(m)
