"""Sufficient-statistic sampling: draw the sample covariance without the data.

For ``n`` i.i.d. rows ``x_i ~ N(0, Sigma)`` the unbiased sample covariance
``S = sum_i (x_i - xbar)(x_i - xbar)^T / (n - 1)`` satisfies
``(n - 1) S ~ Wishart(n - 1, Sigma)``. Every covariance-based estimator needs only
``S``, so a Monte Carlo study can draw ``S`` directly at a cost that does not
depend on ``n`` (Bartlett decomposition), instead of drawing ``n x d`` data and
forming ``X^T X``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg
from numpy.typing import NDArray

from ._validation import as_generator, check_covariance, check_int, short_repr
from .exceptions import ValidationError

__all__ = ["wishart_sample_cov"]


def wishart_sample_cov(model: Any, n_samples: int, rng: Any = None) -> NDArray[np.float64]:
    """Exact draw of the unbiased sample covariance of ``n`` Gaussian rows.

    Returns a matrix with the distribution of ``S = X_c^T X_c / (n - 1)``, where
    ``X`` has ``n`` i.i.d. rows ``N(0, Sigma)`` and ``X_c`` is ``X`` with its column
    means removed, i.e. ``(n - 1) S ~ Wishart(n - 1, Sigma)``. The data are never
    formed: the cost is ``O(d^3)`` (``O(d^2 n)`` when ``n - 1 < d``), independent of
    ``n`` otherwise.

    Parameters
    ----------
    model : HierarchicalFactorModel or array_like of shape (d, d)
        Either a model, whose ``Sigma = W Cov(z) W^T + Psi`` is used through its
        low-rank-plus-diagonal form (no ``d x d`` factorisation), or an explicit
        symmetric positive semi-definite covariance ``Sigma``.
    n_samples : int
        Number of rows ``n >= 2`` the sample covariance would be computed from.
    rng : None, int, SeedSequence or Generator
        Source of randomness, normalised with ``np.random.default_rng``.

    Returns
    -------
    ndarray of shape (d, d)
        Symmetric draw of ``S``; of rank ``min(n - 1, d)`` (singular when
        ``n - 1 < d``, exactly as the sample covariance of ``n`` rows is).

    Raises
    ------
    ValidationError
        If ``n_samples < 2`` or ``model`` is neither a model nor a valid
        covariance.

    Notes
    -----
    With ``nu = n - 1`` and ``Sigma = F F^T``, ``S = F A F^T / nu`` with
    ``A ~ Wishart(nu, I_d)``. ``A`` comes from the Bartlett decomposition in
    reversed index order (the identity is permutation invariant):
    ``A = U U^T`` with ``U`` upper triangular, ``U_ii ~ chi(nu - d + i)``
    (``i = 1..d``) and independent standard normal entries above the diagonal,
    multiplied out by LAPACK ``dlauum`` (``d^3 / 3`` flops). When ``nu < d`` the
    singular Wishart is drawn from a ``d x nu`` lower-trapezoidal ``T``
    (``T_jj ~ chi(nu - j + 1)``, normals below the diagonal), the triangular factor
    of the LQ decomposition of a ``d x nu`` Gaussian matrix, and ``A = T T^T``.

    For a model, ``Psi^{-1/2} W = Q R`` (thin QR) and
    ``F = Psi^{1/2} (I + Q B Q^T)`` with ``B = (I_K + R R^T)^{1/2} - I_K``, so that
    ``F F^T = Sigma`` and ``F A F^T`` costs ``O(d^2 K)`` after ``A``.

    The random draws are made in a fixed order (the ``chi^2`` variables, then the
    normals row by row), so a seed gives the same matrix on every platform up to
    floating-point round-off of the BLAS.

    Examples
    --------
    >>> import numpy as np
    >>> import hcl_stats as hs
    >>> from hcl_stats.sampling import wishart_sample_cov
    >>> model = hs.HierarchicalFactorModel.random((3, 4), "AB:1 A:1", rng=0)
    >>> s = wishart_sample_cov(model, 50, rng=1)
    >>> s.shape, bool(np.allclose(s, s.T))
    ((7, 7), True)
    >>> int(np.linalg.matrix_rank(wishart_sample_cov(model, 4, rng=1)))  # n - 1 = 3
    3
    """
    n = check_int(n_samples, "n_samples", minimum=2)
    gen = as_generator(rng)
    nu = n - 1
    factor = _factor(model)
    d = factor.dim
    if nu >= d:
        u = _bartlett_upper(d, nu, gen)
        a = scipy.linalg.lapack.dlauum(u, lower=0, overwrite_c=1)[0]
        a = np.triu(a)
        a += np.triu(a, 1).T
        s = factor.sandwich(a)
    else:
        h = factor.times(_bartlett_trapezoid(d, nu, gen))
        s = h @ h.T
    s /= nu
    s += s.T
    s *= 0.5
    return s


def _bartlett_upper(d: int, nu: int, gen: np.random.Generator) -> NDArray:
    """Upper-triangular Bartlett factor ``U`` with ``U U^T ~ Wishart(nu, I_d)``."""
    u = np.zeros((d, d))
    diag = np.sqrt(gen.chisquare(nu - d + np.arange(1, d + 1)))
    normals = gen.standard_normal(d * (d - 1) // 2)
    start = 0
    for i in range(d - 1):  # row i of the strict upper triangle
        stop = start + d - 1 - i
        u[i, i + 1 :] = normals[start:stop]
        start = stop
    u.flat[:: d + 1] = diag
    return u


def _bartlett_trapezoid(d: int, nu: int, gen: np.random.Generator) -> NDArray:
    """Lower-trapezoidal ``T`` (d x nu), ``T T^T ~ Wishart(nu, I_d)`` for ``nu < d``."""
    t = np.zeros((d, nu))
    diag = np.sqrt(gen.chisquare(nu - np.arange(nu)))
    normals = gen.standard_normal(nu * (nu - 1) // 2 + (d - nu) * nu)
    start = 0
    for i in range(1, d):  # row i of the strict lower trapezoid
        width = min(i, nu)
        u_row = normals[start : start + width]
        t[i, :width] = u_row
        start += width
    t[np.arange(nu), np.arange(nu)] = diag
    return t


class _DenseFactor:
    """``Sigma = L L^T`` from a Cholesky (or eigen-) factor of an explicit matrix."""

    def __init__(self, cov: NDArray) -> None:
        self.dim = cov.shape[0]
        try:
            self.l = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:  # PSD but singular: symmetric square root
            vals, vecs = np.linalg.eigh(cov)
            self.l = vecs * np.sqrt(np.clip(vals, 0.0, None))

    def times(self, t: NDArray) -> NDArray:
        return self.l @ t

    def sandwich(self, a: NDArray) -> NDArray:
        return self.l @ a @ self.l.T


class _LowRankFactor:
    """``F = Psi^{1/2} (I + C Q^T)`` with ``F F^T = W W^T + Psi`` (see Notes above)."""

    def __init__(self, w: NDArray, psi: NDArray) -> None:
        self.dim = w.shape[0]
        self.root = np.sqrt(psi)
        q, r = np.linalg.qr(w / self.root[:, None])
        m = np.eye(r.shape[0]) + r @ r.T
        vals, vecs = np.linalg.eigh(m)
        vals = np.clip(vals, 1.0, None)
        # sqrt(v) - 1 written without cancellation for v close to 1
        b = (vecs * ((vals - 1.0) / (np.sqrt(vals) + 1.0))) @ vecs.T
        self.q = q
        self.c = q @ b

    def times(self, t: NDArray) -> NDArray:
        h = t + self.c @ (self.q.T @ t)
        return h * self.root[:, None]

    def sandwich(self, a: NDArray) -> NDArray:
        # F A F^T = D (A + C E^T + E C^T) D with P = A Q, E = P + C (Q^T P) / 2.
        p = a @ self.q
        e = p + 0.5 * (self.c @ (self.q.T @ p))
        left = np.hstack([self.c, e])
        right = np.hstack([e, self.c])
        x = a
        x += left @ right.T
        x *= self.root[:, None]
        x *= self.root[None, :]
        return x


def _factor(model: Any) -> _DenseFactor | _LowRankFactor:
    loadings = getattr(model, "loadings", None)
    if loadings is not None and hasattr(model, "noise_diagonal"):
        w = np.asarray(loadings, dtype=float)
        latent = getattr(model, "latent_cov", None)
        if latent is not None:
            vals, vecs = np.linalg.eigh(np.asarray(latent, dtype=float))
            w = w @ (vecs * np.sqrt(np.clip(vals, 0.0, None)))
        psi = np.asarray(model.noise_diagonal(), dtype=float)
        if w.shape[1] == 0:
            return _DenseFactor(np.diag(psi))
        return _LowRankFactor(w, psi)
    if isinstance(model, (str, bytes, dict)) or model is None:
        raise ValidationError(
            "model must be a HierarchicalFactorModel or a (d, d) covariance; got "
            f"{short_repr(model)}."
        )
    return _DenseFactor(check_covariance(model, "model"))
