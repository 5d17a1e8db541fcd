"""Noise variance of the model and the signal covariance ``S - sigma^2 I``.

The bottom-eigenvalue rules (scalar and per view) of
:func:`estimate_noise_var`, also on the reduced covariance of the sample-space
path (:mod:`hcl_stats.estimators._samples`), and :func:`signal_covariance`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._linalg import block_offsets
from .._rmt import NOISE_RULES
from .._validation import check_choice, short_repr
from ..exceptions import NotIdentifiableError, ValidationError
from ..model import check_noise_var, noise_diagonal
from ..structure import Structure
from ._cache import SpectralCache, cached_top_eigh


def check_noise_option(value: Any) -> Any:
    """An estimator's ``noise_rule`` checked: a rule name, or known positive value(s)."""
    if isinstance(value, str):
        return check_choice(value, "noise_rule", NOISE_RULES)
    if np.ndim(value) == 0:
        return check_noise_var(value, 1, name="noise_rule")
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise ValidationError(
            "noise_rule must be 'scalar', 'per_view', a positive float or a 1-D "
            f"sequence of positive floats; got {short_repr(value)}."
        )
    return tuple(float(v) for v in check_noise_var(arr, arr.shape[0], name="noise_rule"))


def noise_rule_name(noise: Any) -> str:
    """The noise rule for the diagnostics: the rule's name, or ``'known'`` for values."""
    return noise if isinstance(noise, str) else "known"


def estimate_noise_var(
    cov: ArrayLike,
    dims: Sequence[int],
    structure: Structure,
    *,
    rule: str = "scalar",
    cache: SpectralCache | None = None,
) -> float | NDArray[np.float64]:
    """Estimate the noise variance from the bottom of the covariance spectrum.

    Parameters
    ----------
    cov : array_like of shape (d, d)
        Sample or population covariance.
    dims : sequence of int
        ``(d_1, ..., d_M)``.
    structure : Structure
        Gives the total rank ``K`` and the per-view ranks ``k_m``.
    rule : {'scalar', 'per_view'}, default='scalar'
        ``'scalar'``: ``sigma^2`` = mean of the ``d - K`` smallest eigenvalues of
        ``cov``, computed as ``(tr(cov) - sum of the top K eigenvalues) / (d - K)``.
        ``'per_view'``: ``sigma_m^2`` = mean of the ``d_m - k_m`` smallest
        eigenvalues of the diagonal block ``cov[m, m]``, where
        ``k_m = sum_{S contains m} r_S``.
    cache : SpectralCache, optional
        Shares the top-``K`` eigendecomposition of ``cov`` with other fits of the
        same matrix (e.g. :class:`~hcl_stats.estimators.NaivePCA`); the value is
        bit-identical with or without it.

    Returns
    -------
    float or ndarray of shape (M,)

    Raises
    ------
    NotIdentifiableError
        If ``d <= K`` (scalar) or ``d_m <= k_m`` for some view (per view).
    ValidationError
        If the estimate is not positive (the covariance is singular).

    Notes
    -----
    Exact at the population level: ``Sigma = W W^T + sigma^2 I`` has at least
    ``d - K`` eigenvalues equal to ``sigma^2`` (docs/identifiability.md, P1). At
    finite ``n`` the mean of the bottom eigenvalues is biased downwards by
    ``O(sigma^2 sqrt(d/n))`` (Marchenko-Pastur).

    Examples
    --------
    Both rules return ``sigma^2`` from the population covariance:

    >>> import hcl_stats as hs
    >>> from hcl_stats.estimators import estimate_noise_var
    >>> m = hs.HierarchicalFactorModel.random((3, 4, 5), "ABC:1 AB:1 C:1",
    ...                                      noise_var=0.5, rng=0)
    >>> round(estimate_noise_var(m.covariance(), m.dims, m.structure), 6)
    0.5
    >>> estimate_noise_var(m.covariance(), m.dims, m.structure,
    ...                    rule="per_view").round(6).tolist()
    [0.5, 0.5, 0.5]
    """
    cov = np.asarray(cov, dtype=float)
    dims = tuple(dims)
    rule = check_choice(rule, "rule", NOISE_RULES)
    return estimate_noise_var_reduced(cov, dims, structure, rule, dims, cache=cache)


def estimate_noise_var_reduced(cov, dims, structure, rule, full_dims, cache=None):
    """:func:`estimate_noise_var` of a possibly reduced covariance.

    ``cov`` has view sizes ``dims``; ``full_dims`` are the data's. The spectrum of
    the full covariance is that of ``cov`` plus zeros (module ``_samples``), so
    the traces and top eigenvalues are read from ``cov`` and only the counts
    ``d - K`` and ``d_m - k_m`` use ``full_dims``.
    """
    if rule == "scalar":
        d, k = sum(full_dims), structure.total_rank
        if d <= k:
            raise NotIdentifiableError(
                f"d = {d} must exceed the total rank K = {k} to estimate sigma^2 "
                "from the bottom eigenvalues; reduce the ranks or pass a known "
                "noise variance as noise_rule."
            )
        if cov.shape[0] <= 64:
            top = np.linalg.eigvalsh(cov)[::-1][:k]
        elif cache is not None:
            # LAPACK dsyevr computes a proper subset of eigenvalues by bisection
            # whether or not vectors are wanted: these values are bit-identical to
            # top_eigenvalues' (tests/test_spectral_cache.py checks it); reversed to
            # top_eigenvalues' ascending order, so that the sum rounds identically
            top = cached_top_eigh(cache, cov, k)[0][::-1]
        else:
            top = top_eigenvalues(cov, k)
        value = (float(np.trace(cov)) - float(np.sum(top))) / (d - k)
        check_positive_noise(value, cov, "sigma^2")
        return value
    out = np.empty(len(dims))
    off = block_offsets(dims)
    for m, dm in enumerate(full_dims):
        km = structure.view_rank(m)
        if dm <= km:
            raise NotIdentifiableError(
                f"view {structure.names[m]} has d_{m + 1} = {dm} <= k_{m + 1} = {km} "
                "(total rank of its blocks), so its noise variance cannot be read "
                "from the bottom eigenvalues; use noise_rule='scalar' or a known value."
            )
        sub = cov[off[m] : off[m + 1], off[m] : off[m + 1]]
        top = top_eigenvalues(sub, km) if km else np.zeros(0)
        out[m] = (float(np.trace(sub)) - float(np.sum(top))) / (dm - km)
        check_positive_noise(out[m], sub, f"sigma_{m + 1}^2")
    return out


def top_eigenvalues(a: NDArray, k: int) -> NDArray:
    import scipy.linalg

    p = a.shape[0]
    if k == 0:
        return np.zeros(0)
    return scipy.linalg.eigh(a, eigvals_only=True, subset_by_index=[p - k, p - 1])


def check_positive_noise(value: float, cov: NDArray, what: str) -> None:
    """Refuse a noise variance that is not positive relative to the covariance scale."""
    scale = float(np.max(np.abs(np.diag(cov))))
    if not value > 1e-12 * scale:
        raise ValidationError(
            f"estimated {what} must exceed 1e-12 times the largest variance "
            f"({scale:.3g}); got {value:.3g}: the covariance is (numerically) singular "
            "below the signal rank, but the model needs positive noise. Check for "
            "constant or duplicated columns, or columns on wildly different scales "
            "(standardise them, or use noise_rule='per_view')."
        )


def signal_covariance(cov: NDArray, dims: Sequence[int], noise_var: Any) -> NDArray:
    """Denoised covariance ``S_W = cov - Psi``, shape ``(d, d)``.

    Examples
    --------
    >>> import numpy as np, hcl_stats as hs
    >>> from hcl_stats.estimators import signal_covariance
    >>> m = hs.HierarchicalFactorModel.random((3, 4), "AB:1 A:1", noise_var=0.5, rng=0)
    >>> s_w = signal_covariance(m.covariance(), m.dims, 0.5)
    >>> bool(np.allclose(s_w, m.loadings @ m.loadings.T))
    True
    """
    s_w = np.array(cov, dtype=float, copy=True)
    s_w[np.diag_indices_from(s_w)] -= noise_diagonal(noise_var, dims)
    return s_w
