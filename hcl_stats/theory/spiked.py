"""Spiked-covariance prediction of the overall error of spectral estimators (private).

Shared by :mod:`hcl_stats.theory.limits` and :mod:`hcl_stats.theory.predict`
(docs/theory.md §9).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from .._rmt import (
    mp_edge,
    spike_cosine_sq,
    spike_eigenvalue,
    spike_from_eigenvalue,
    tracy_widom_scale,
)
from ..exceptions import ValidationError

__all__ = ["spiked_overall_risk"]


# ------------------------------------------------------------------ spectral
def _shrink_weight(lam: NDArray, s2: float, gamma: float) -> NDArray:
    """``eta(lambda)`` of PCAShrink: debias, then multiply by the cosine squared."""
    ell = spike_from_eigenvalue(np.atleast_1d(lam), s2, gamma)
    return ell * spike_cosine_sq(ell, s2, gamma)


def spiked_overall_risk(
    spikes: NDArray, noise_var: float, n_samples: int, d: int, estimator: str
) -> dict[str, float]:
    """Predicted ``E ||G_hat - G||_F^2`` of a spectral estimator of ``W W^T``.

    Parameters
    ----------
    spikes : ndarray of shape (K,)
        Eigenvalues ``ell`` of ``W W^T``.
    noise_var : float
        ``sigma^2`` (isotropic).
    n_samples, d : int
        ``n`` and ``D``; the sample covariance has ``nu = n - 1`` degrees of freedom.
    estimator : {'naive', 'pca_shrink', 'oracle_shrink'}
        ``oracle_shrink`` applies the optimal weights ``ell c^2`` of the true
        spikes to the sample eigenvectors (the spectral limit's estimator).

    Returns
    -------
    dict
        ``bias`` (the deterministic proportional-limit part), ``fluctuation`` (the
        ``K x K`` block's first-order variance), ``total`` and ``margin`` (the
        smallest distance of a detectable spike's eigenvalue limit from the bulk
        edge, in units of its standard deviation; ``inf`` if none is near).

    Examples
    --------
    The risk vanishes as ``n`` grows, and the oracle shrinkage improves on the naive
    estimator:

    >>> import numpy as np
    >>> from hcl_stats.theory.spiked import spiked_overall_risk
    >>> spikes = np.array([4.0, 2.0])
    >>> bool(spiked_overall_risk(spikes, 1.0, 10**8, 50, "naive")["total"] < 1e-4)
    True
    >>> naive = spiked_overall_risk(spikes, 1.0, 1000, 50, "naive")["total"]
    >>> oracle = spiked_overall_risk(spikes, 1.0, 1000, 50, "oracle_shrink")["total"]
    >>> bool(oracle < naive)
    True
    """
    ell = np.sort(np.asarray(spikes, dtype=float))[::-1]
    s2 = float(noise_var)
    nu = n_samples - 1
    k = ell.size
    # the K spike directions are not noise directions: the bulk has D - K of them,
    # which is the finite-K version of gamma (the estimator's own rule uses D / n)
    gamma = (d - k) / nu
    gamma_est = d / n_samples
    t = ell / s2
    det = t > math.sqrt(gamma)
    edge = mp_edge(s2, gamma)
    lam = spike_eigenvalue(ell, s2, gamma)
    c2 = spike_cosine_sq(ell, s2, gamma)
    if estimator == "naive":
        s2_hat = (ell.sum() + d * s2 - lam.sum()) / (d - k)
        eta = np.clip(lam - s2_hat, 0.0, None)

        def f(x: NDArray) -> NDArray:
            return np.asarray(x) - s2_hat
    elif estimator == "pca_shrink":
        eta = _shrink_weight(lam, s2, gamma_est)

        def f(x: NDArray) -> NDArray:
            return _shrink_weight(x, s2, gamma_est)
    elif estimator == "oracle_shrink":
        eta = ell * c2

        def f(x: NDArray) -> NDArray:
            return _shrink_weight(x, s2, gamma)
    else:  # pragma: no cover - checked by the caller
        raise ValidationError(f"unknown spectral estimator {estimator!r}")
    bias = float(np.sum((eta - ell * c2) ** 2 + ell**2 * (1 - c2**2)))
    # first-order fluctuation of the detectable K x K block (Daleckii-Krein):
    # off-diagonal entries u_i^T (S - Sigma) u_j have variance
    # (ell_i + s2)(ell_j + s2) / nu and pass through the divided difference of f;
    # the eigenvalues have variance 2 (ell + s2)^2 (1 - gamma / t^2) / nu (Paul 2007).
    li = lam[det]
    var_off = np.outer(ell[det] + s2, ell[det] + s2) / nu
    h = 1e-6 * np.maximum(li, 1.0)
    deriv = (f(li + h) - f(li - h)) / (2 * h)
    diff = li[:, None] - li[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = (f(li)[:, None] - f(li)[None, :]) / diff
    close = np.abs(diff) < 1e-9 * np.maximum(np.abs(li[:, None]), 1.0)
    dd = np.where(close, 0.5 * (deriv[:, None] + deriv[None, :]), dd)
    np.fill_diagonal(dd, deriv)
    var = var_off.copy()
    np.fill_diagonal(var, 2 * (ell[det] + s2) ** 2 * (1 - gamma / t[det] ** 2) / nu)
    fluct = float(np.sum(dd**2 * var))
    sd = np.sqrt(np.diag(var)) if li.size else np.zeros(0)
    # Tracy-Widom scale of the bulk edge (Johnstone 2001)
    tw = s2 * tracy_widom_scale(d - k, nu)
    margin = float(np.min((li - edge) / (sd + tw))) if li.size else float("inf")
    return {"bias": bias, "fluctuation": fluct, "total": bias + fluct, "margin": margin,
            "n_undetectable": int(np.sum(~det))}


