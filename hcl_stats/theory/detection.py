"""Idealised references for spectral structure selection (docs/structure_learning.md §5).

A structure learner recovers a family exactly only if it counts every spike of
every block. :func:`detection_ceiling` puts a number on how often an idealised
spectral rule could do that: it is told which subsets to test, sees each block
``S`` alone in its own ``d_S`` coordinates (no other block, ``sigma^2`` known),
and counts a spike when its sample eigenvalue of ``S - sigma^2 I`` exceeds the
``1 - alpha`` quantile of the largest pure-noise eigenvalue in ``d_S`` dimensions.
Its probability of counting every spike is the product over blocks and spikes of
:func:`spike_detection_probability`. With ``conditioning=True`` it also asks for
what a selector that conditions on the views outside each candidate needs: every
spike of the loadings on each union of views counted in that union's
coordinates. Neither number bounds every procedure: the isolated rule does not
have to separate blocks from each other, and the conditioning requirement is
that of Schur-type selectors, not of all. The Gaussian approximation of a
spike's eigenvalue is slightly optimistic near the BBP threshold (measured in
``tests/test_detection_ceiling.py``).

Sources: the eigenvalue limit and its Gaussian fluctuation above the BBP
threshold (Baik, Ben Arous & Péché 2005; Paul 2007, Theorem 3; Bai & Yao 2008);
the tridiagonal model of the white Wishart spectrum (Dumitriu & Edelman 2002).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.linalg import eigvalsh_tridiagonal
from scipy.stats import norm

from .._validation import as_generator, check_int, check_real
from ..exceptions import ValidationError

__all__ = ["detection_ceiling", "noise_top_quantile", "spike_detection_probability"]


def noise_top_quantile(p: int, n_samples: int, alpha: float, *, sims: int = 4000,
                       rng: Any = None) -> float:
    """``1 - alpha`` quantile of the largest eigenvalue of ``S - I`` under pure noise.

    ``S`` is the ``p x p`` sample covariance ``X^T X / n`` of ``n`` white Gaussian
    rows (``sigma^2 = 1``). Its eigenvalues are those of ``B B^T / n`` with ``B``
    lower bidiagonal, diagonal ``chi_{n}, chi_{n-1}, ..., chi_{n-p+1}`` and
    subdiagonal ``chi_{p-1}, ..., chi_1`` (Dumitriu & Edelman 2002), so each draw
    costs one tridiagonal eigenvalue.

    Parameters
    ----------
    p, n_samples : int
        Dimension and number of samples, ``1 <= p <= n_samples``.
    alpha : float
        Upper-tail probability, in (0, 1).
    sims : int, default=4000
        Monte Carlo draws.
    rng : int, numpy.random.Generator or None

    Returns
    -------
    float
        The quantile, in units of ``sigma^2``.

    Examples
    --------
    Above the Marchenko-Pastur edge ``(1 + sqrt(p/n))^2 - 1`` for a small ``alpha``:

    >>> from hcl_stats.theory.detection import noise_top_quantile
    >>> q = noise_top_quantile(20, 2000, 0.01, sims=500, rng=0)
    >>> bool((1 + (20 / 2000) ** 0.5) ** 2 - 1 < q < 0.3)
    True
    """
    check_int(p, "p", minimum=1)
    check_int(n_samples, "n_samples", minimum=p)
    check_real(alpha, "alpha", low=0.0, high=1.0, low_open=True, high_open=True)
    check_int(sims, "sims", minimum=10)
    rng = as_generator(rng)
    top = np.empty(sims)
    dof_diag = n_samples - np.arange(p)
    dof_sub = np.arange(p - 1, 0, -1)
    for i in range(sims):
        a = np.sqrt(rng.chisquare(dof_diag))
        b = np.sqrt(rng.chisquare(dof_sub)) if p > 1 else np.zeros(0)
        diag = a**2 + np.concatenate([[0.0], b**2])
        top[i] = eigvalsh_tridiagonal(diag, a[:-1] * b, select="i",
                                      select_range=(p - 1, p - 1))[0]
    return float(np.quantile(top / n_samples - 1.0, 1.0 - alpha))


def spike_detection_probability(spikes: ArrayLike, p: int, n_samples: int,
                                threshold: float) -> NDArray[np.float64]:
    """Probability that a spike's sample eigenvalue of ``S - I`` exceeds ``threshold``.

    A spike ``ell`` (eigenvalue of ``W^S W^S^T``, ``sigma^2 = 1``) above the BBP
    threshold ``sqrt(gamma)``, ``gamma = p / n``, has a sample eigenvalue of
    ``S - I`` close to Gaussian with mean ``ell + gamma + gamma / ell`` and
    variance ``2 (ell + 1)^2 (1 - gamma / ell^2) / n`` (Paul 2007; Bai & Yao
    2008). Below the threshold the probability is taken as 0.

    Parameters
    ----------
    spikes : array_like of shape (k,)
        ``ell >= 0``.
    p, n_samples : int
        Dimension of the block and number of samples.
    threshold : float

    Returns
    -------
    ndarray of shape (k,)

    Examples
    --------
    >>> from hcl_stats.theory.detection import spike_detection_probability
    >>> spike_detection_probability([0.05, 0.25, 2.0], 20, 2000, 0.24).round(2)
    array([0.  , 0.95, 1.  ])
    """
    check_int(p, "p", minimum=1)
    check_int(n_samples, "n_samples", minimum=1)
    ell = np.atleast_1d(np.asarray(spikes, dtype=float))
    gamma = p / n_samples
    above = ell > math.sqrt(gamma)
    safe = np.where(above, ell, 1.0)
    mean = safe + gamma + gamma / safe
    sd = np.sqrt(2.0 * (safe + 1.0) ** 2 * np.clip(1.0 - gamma / safe**2, 0.0, None)
                 / n_samples)
    prob = norm.sf((threshold - mean) / np.maximum(sd, 1e-300))
    return np.where(above, prob, 0.0)


def detection_ceiling(model: Any, n_samples: int, *, alpha: float = 0.05,
                      sims: int = 4000, rng: Any = 0, cache: dict | None = None,
                      conditioning: bool = False) -> float:
    """Probability that the idealised spectral rule counts every spike of ``model``.

    Each block ``S`` of ``model.structure`` is seen alone in its ``d_S``
    coordinates; its spikes (eigenvalues of ``W^S W^S^T / sigma^2``) are counted
    above the ``1 - alpha / (2^M - 1)`` noise quantile of :func:`noise_top_quantile`
    (a family-wise level ``alpha`` over the ``2^M - 1`` candidate subsets). The
    result is the product of :func:`spike_detection_probability` over every spike,
    treating the blocks as independent.

    Parameters
    ----------
    model : HierarchicalFactorModel
        With a scalar noise variance.
    n_samples : int
    alpha : float, default=0.05
        Family-wise false-positive level of the idealised rule.
    sims : int, default=4000
        Monte Carlo draws per noise quantile.
    rng : int or numpy.random.Generator, default=0
        Seeds the noise quantiles (one stream per block dimension ``d_S``, derived
        from one draw of ``rng``).
    cache : dict, optional
        Reused across calls to keep the quantiles of dimensions already seen.
    conditioning : bool, default=False
        Also require what a selector that conditions on the views outside a
        candidate needs (the Schur rule of
        :func:`~hcl_stats.estimators.selection.select_structure_schur`, whose
        population exactness needs the loadings on every union of views ``O`` to
        have full column rank, docs/convex.md Proposition 3): every spike of
        ``W_O W_O^T`` counted in its ``d_O`` coordinates. The result is multiplied
        by the smallest such probability over the proper unions ``O``.

    Returns
    -------
    float
        In [0, 1].

    Examples
    --------
    >>> import hcl_stats as hs
    >>> from hcl_stats.theory.detection import detection_ceiling
    >>> m = hs.HierarchicalFactorModel.random((20, 30), "AB:2 A:1", rng=0)
    >>> round(detection_ceiling(m, 2000, sims=200), 3)
    1.0
    >>> weak = hs.HierarchicalFactorModel.random((20, 30), "AB:2 A:1",
    ...                                          singular_values=(0.05, 0.1), rng=0)
    >>> detection_ceiling(weak, 2000, sims=200)
    0.0

    A view that carries almost as many latent columns as it has coordinates has a
    weak smallest spike of ``W_O W_O^T``; the conditioning requirement sees it:

    >>> crowded = hs.HierarchicalFactorModel.random((6, 30), "AB:3 A:2", rng=0)
    >>> bool(detection_ceiling(crowded, 500, sims=200, conditioning=True)
    ...      < detection_ceiling(crowded, 500, sims=200))
    True
    """
    check_int(n_samples, "n_samples", minimum=2)
    check_real(alpha, "alpha", low=0.0, high=1.0, low_open=True, high_open=True)
    noise = np.asarray(model.noise_var, dtype=float)
    if noise.size != 1 and not np.allclose(noise, noise.flat[0]):
        raise ValidationError(f"model.noise_var: got per-view values {noise.tolist()}; "
                         "detection_ceiling needs one sigma^2 for all views")
    s2 = float(noise.flat[0])
    s = model.structure
    per_candidate = alpha / (2 ** len(model.dims) - 1)
    base = int(as_generator(rng).integers(2**62))
    cache = {} if cache is None else cache
    off = np.concatenate([[0], np.cumsum(model.dims)])

    def counted(rows: NDArray, cols: NDArray) -> float:
        ell = np.linalg.svd(model.loadings[np.ix_(rows, cols)], compute_uv=False) ** 2 / s2
        key = (rows.size, n_samples, per_candidate, sims, base)
        if key not in cache:
            cache[key] = noise_top_quantile(rows.size, n_samples, per_candidate, sims=sims,
                                            rng=np.random.default_rng([rows.size, base]))
        return float(np.prod(spike_detection_probability(ell[ell > 1e-12 * max(ell.max(), 1)],
                                                         rows.size, n_samples, cache[key])))

    def view_rows(views: Any) -> NDArray:
        return np.concatenate([np.arange(off[m], off[m + 1]) for m in sorted(views)])

    prob = 1.0
    for b in s.blocks:
        prob *= counted(view_rows(b), np.arange(s.total_rank)[s.columns(b)])
    if conditioning and prob > 0.0:
        all_cols = np.arange(s.total_rank)
        n_views = len(model.dims)
        worst = min(
            counted(view_rows(o), all_cols)
            for k in range(1, n_views)
            for o in itertools.combinations(range(n_views), k)
        )
        prob *= worst
    return prob
