"""Random-matrix maths: the one home of the Marchenko-Pastur and spiked-model formulas.

Every estimator, selector and preprocessing rule that needs the noise bulk of a
sample covariance takes its numbers from here (private module; the public names
are re-exported by :mod:`hcl_stats.estimators.shrinkage`,
:mod:`hcl_stats.estimators.selection` and :mod:`hcl_stats.preprocessing`).

Conventions: ``gamma = p / n`` is the aspect ratio, ``sigma^2`` the noise
variance, and the Marchenko-Pastur law of ratio ``gamma <= 1`` and unit scale has
support ``[(1 - sqrt(gamma))^2, (1 + sqrt(gamma))^2]`` and density
``sqrt((b - x)(x - a)) / (2 pi gamma x)``. A population spike ``ell`` (an
eigenvalue of ``W W^T``) above the BBP threshold ``sigma^2 sqrt(gamma)`` appears in
the sample covariance at ``(ell + sigma^2)(1 + gamma sigma^2 / ell)`` with squared
eigenvector cosine ``(1 - gamma sigma^4 / ell^2) / (1 + gamma sigma^2 / ell)``
(Baik and Silverstein, 2006; Paul, 2007). In units of the noise, with
``l = 1 + ell / sigma^2`` the population eigenvalue, the forward map is
``l (1 + gamma / (l - 1))``.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._validation import check_int
from .exceptions import ValidationError

__all__ = [
    "NOISE_RULES",
    "RANK_FREE_NOISE_RULES",
    "debias_spikes",
    "estimate_noise_var_mp",
    "mp_edge",
    "mp_lower_mean",
    "mp_median",
    "mp_noise_var",
    "noise_edge",
    "noise_var_mp_of_spectrum",
    "spike_cosine_sq",
    "spike_eigenvalue",
    "spike_from_eigenvalue",
    "tracy_widom_scale",
]

#: Rules an estimator's ``noise_rule`` option accepts (need the ranks).
NOISE_RULES = ("scalar", "per_view")
#: Rules of :func:`hcl_stats.preprocessing.noise_variance` (need no ranks).
RANK_FREE_NOISE_RULES = ("per_view", "scalar", "bottom_half")


# ------------------------------------------------------------ the bulk
def mp_edge(noise_var: float, gamma: float) -> float:
    """Upper edge ``sigma^2 (1 + sqrt(gamma))^2`` of the Marchenko-Pastur bulk.

    Parameters
    ----------
    noise_var : float
        ``sigma^2``.
    gamma : float
        ``p / n >= 0``.

    Returns
    -------
    float

    Examples
    --------
    >>> mp_edge(2.0, 0.25)
    4.5
    """
    return noise_var * (1.0 + math.sqrt(gamma)) ** 2


def _support(ratio: float) -> tuple[float, float]:
    return (1.0 - math.sqrt(ratio)) ** 2, (1.0 + math.sqrt(ratio)) ** 2


@lru_cache(maxsize=256)
def mp_median(gamma: float) -> float:
    """Median of the Marchenko-Pastur law with ratio ``gamma = p / n`` (unit variance).

    Found by root-finding on the quadrature of the density. For ``gamma > 1`` the
    law of the ``n`` non-zero eigenvalues is used (ratio ``1 / gamma`` scaled by
    ``gamma``).

    Parameters
    ----------
    gamma : float
        ``p / n > 0``; below ``1e-10`` the law is a point mass at 1.

    Returns
    -------
    float

    Examples
    --------
    >>> round(mp_median(1e-12), 6)
    1.0
    >>> round(mp_median(1.0), 4)  # the quarter-circle of ratio 1
    0.6528
    """
    import scipy.integrate  # imported here: 0.5 s, and only this function needs it
    import scipy.optimize

    gamma = float(gamma)
    if gamma > 1.0:
        return gamma * mp_median(1.0 / gamma)
    if gamma < 1e-10:
        return 1.0
    a, b = _support(gamma)

    def density(x: float) -> float:
        if x <= 0.0:  # the integrable 1/sqrt(x) edge of ratio 1: one point, no mass
            return 0.0
        return math.sqrt(max((b - x) * (x - a), 0.0)) / (2.0 * math.pi * gamma * x)

    def cdf(x: float) -> float:
        if x <= a:  # older SciPy's quad evaluates the integrand on an empty interval
            return 0.0
        return scipy.integrate.quad(density, a, x, limit=200)[0]

    return float(scipy.optimize.brentq(lambda x: cdf(x) - 0.5, a, b, xtol=1e-12))


def mp_lower_mean(ratio: float, fraction: float) -> float:
    """Mean of the lowest ``fraction`` of the Marchenko-Pastur law (ratio ``<= 1``).

    The law of the eigenvalues of a pure-noise sample covariance with unit
    variance. The substitution ``x = a + (b - a)(1 - cos t) / 2`` removes the
    square-root singularities at both edges (including the ``1 / sqrt(x)`` one of
    ``ratio = 1``), so a trapezoid rule on a uniform ``t`` grid is accurate to
    about ``1e-6``.

    Parameters
    ----------
    ratio : float
        Aspect ratio, clipped at 1; ``<= 0`` gives the point mass at 1.
    fraction : float
        In ``(0, 1]``.

    Returns
    -------
    float
        1 for ``fraction >= 1`` (the law has mean 1).

    Examples
    --------
    >>> mp_lower_mean(0.0, 0.5)
    1.0
    >>> round(mp_lower_mean(0.25, 1.0), 6)
    1.0
    """
    ratio = min(ratio, 1.0)
    if ratio <= 0.0 or fraction >= 1.0:
        return 1.0
    lo, hi = _support(ratio)
    t = np.linspace(0.0, math.pi, 4001)
    x = lo + (hi - lo) * (1.0 - np.cos(t)) / 2.0
    # rho(x) dx with rho = sqrt((hi - x)(x - lo)) / (2 pi ratio x)
    half = (hi - lo) / 2.0
    dens = half * half * np.sin(t) ** 2 / (2.0 * math.pi * ratio * np.maximum(x, 1e-300))
    if lo == 0.0:
        dens[0] = 2.0 * half / (2.0 * math.pi * ratio)  # sin^2 t / x -> 2 / half at t = 0
    step = np.diff(t)
    mass = np.concatenate([[0.0], np.cumsum((dens[1:] + dens[:-1]) / 2 * step)])
    first = np.concatenate([[0.0], np.cumsum((x[1:] * dens[1:] + x[:-1] * dens[:-1]) / 2 * step)])
    mass, first = mass / mass[-1], first / mass[-1]
    return float(np.interp(fraction, mass, first) / fraction)


def tracy_widom_scale(p: float, n: float) -> float:
    """Standard deviation scale of the top eigenvalue of a white ``p x p`` Wishart(n) / n.

    ``(sqrt(n) + sqrt(p)) (1 / sqrt(n) + 1 / sqrt(p))^{1/3} / n`` (Johnstone, 2001),
    equal to ``(1 + sqrt(gamma)) (1 + 1 / sqrt(gamma))^{1/3} n^{-2/3}``.

    Parameters
    ----------
    p, n : float
        Dimension and degrees of freedom, both positive.

    Returns
    -------
    float

    Examples
    --------
    >>> round(tracy_widom_scale(100, 100) * 100 ** (2 / 3), 6)  # 2 * 2^{1/3}
    2.519842
    """
    return (math.sqrt(n) + math.sqrt(p)) * (1.0 / math.sqrt(n) + 1.0 / math.sqrt(p)) ** (
        1.0 / 3.0
    ) / n


def noise_edge(
    noise_var: float,
    p: int,
    n_samples: int | None,
    *,
    tw: float = 3.0,
    margin: float = 0.3,
) -> float:
    """Largest pure-noise eigenvalue of a ``p``-dimensional block of ``S - sigma^2 I``.

    ``(1 + margin) sigma^2 ((1 + sqrt(p/n))^2 - 1) + tw * sigma^2 * s_TW`` with the
    Tracy-Widom scale ``s_TW`` of :func:`tracy_widom_scale`. For
    ``n_samples=None`` (population) the edge is 0.

    Parameters
    ----------
    noise_var : float
        ``sigma^2``.
    p : int
        Dimension of the block.
    n_samples : int or None
    tw : float, default=3.0
        Margin in Tracy-Widom standard deviations.
    margin : float, default=0.3
        Relative widening of the Marchenko-Pastur bulk. Schur complements are not
        exactly white Wishart: their noise bulk was measured 5-15% wider than MP
        and leftover signal from imperfect conditioning sits just above it
        (conditioning on estimated subspaces, subtraction of estimated
        sub-blocks); 0.3 plus the signal-by-noise cross term of
        :func:`~hcl_stats.estimators.selection.select_structure_schur` was best
        on random structure families (docs/convex.md §5).

    Returns
    -------
    float

    Examples
    --------
    >>> noise_edge(1.0, 10, None)
    0.0
    >>> round(noise_edge(1.0, 25, 100, tw=0.0, margin=0.0), 6)  # (1 + 1/2)^2 - 1
    1.25
    """
    if n_samples is None or p == 0:
        return 0.0
    n = float(n_samples)
    bulk = (1.0 + math.sqrt(p / n)) ** 2 - 1.0
    return float(noise_var * ((1.0 + margin) * bulk + tw * tracy_widom_scale(p, n)))


# ------------------------------------------------------------ spikes
def spike_eigenvalue(spike: ArrayLike, noise_var: float, gamma: float) -> NDArray:
    """Limit of the sample eigenvalue of a spike ``ell`` (the forward map).

    ``(ell + sigma^2)(1 + gamma sigma^2 / ell)`` above the BBP threshold
    ``ell > sigma^2 sqrt(gamma)``, else the edge :func:`mp_edge`.

    Parameters
    ----------
    spike : array_like of shape (k,)
        Population spikes ``ell >= 0``.
    noise_var, gamma : float
        ``sigma^2 > 0`` and ``p / n >= 0``.

    Returns
    -------
    ndarray of shape (k,)

    Examples
    --------
    >>> float(spike_eigenvalue([2.0], 1.0, 0.5)[0])  # (2 + 1)(1 + 0.25)
    3.75
    """
    ell = np.asarray(spike, dtype=float)
    above = ell > noise_var * math.sqrt(gamma)
    safe = np.where(above, ell, 1.0)
    return np.where(
        above, (safe + noise_var) * (1.0 + gamma * noise_var / safe), mp_edge(noise_var, gamma)
    )


def spike_from_eigenvalue(eigenvalues: ArrayLike, noise_var: float, gamma: float) -> NDArray:
    """Invert :func:`spike_eigenvalue`: the spike ``ell`` behind a sample eigenvalue.

    With ``b = lambda - sigma^2 (1 + gamma)`` the spike is the larger root of
    ``ell^2 - b ell + gamma sigma^4 = 0``. Eigenvalues at or below the edge
    ``sigma^2 (1 + sqrt(gamma))^2`` give 0 (undetectable).

    Parameters
    ----------
    eigenvalues : array_like of shape (k,)
        Sample eigenvalues ``lambda`` of the noisy covariance.
    noise_var, gamma : float
        ``sigma^2 >= 0`` and ``p / n >= 0``.

    Returns
    -------
    ndarray of shape (k,)

    Examples
    --------
    >>> float(spike_from_eigenvalue([3.75], 1.0, 0.5)[0])
    2.0
    """
    lam = np.asarray(eigenvalues, dtype=float)
    b = lam - noise_var * (1.0 + gamma)
    with np.errstate(over="ignore", invalid="ignore"):
        disc = b * b - 4.0 * gamma * noise_var * noise_var
    ok = (b > 0) & (disc > 0)
    out = np.where(ok, (b + np.sqrt(np.where(ok, disc, 0.0))) / 2.0, 0.0)
    big = (~np.isfinite(disc) | ~np.isfinite(out)) & (b > 0)
    if np.any(big):
        # a square overflowed (b or sigma^2 beyond about 1e154): the same root
        # without squares, ell = b (1 + sqrt((1 - q)(1 + q))) / 2 with
        # q = 2 sqrt(gamma) sigma^2 / b < 1
        q = 2.0 * math.sqrt(gamma) * noise_var / b[big]
        out[big] = np.where(q < 1.0, b[big] * (1.0 + np.sqrt((1.0 - q) * (1.0 + q))) / 2.0,
                            0.0)
    return out


def spike_cosine_sq(spike: ArrayLike, noise_var: float, gamma: float) -> NDArray:
    """Limit of ``<v, u>^2`` between the sample and population eigenvectors of a spike.

    ``(1 - gamma sigma^4 / ell^2) / (1 + gamma sigma^2 / ell)`` above the BBP
    threshold ``ell > sigma^2 sqrt(gamma)``, else 0.

    Parameters
    ----------
    spike : array_like of shape (k,)
        Population spikes ``ell >= 0``.
    noise_var, gamma : float

    Returns
    -------
    ndarray of shape (k,)
        In ``[0, 1]``.

    Examples
    --------
    >>> float(spike_cosine_sq([2.0], 1.0, 0.5)[0])  # (1 - 1/8) / (1 + 1/4)
    0.7
    """
    ell = np.asarray(spike, dtype=float)
    above = (ell > 0) & (ell > noise_var * math.sqrt(gamma))
    safe = np.where(above, ell, 1.0)
    c2 = (1.0 - gamma * noise_var**2 / safe**2) / (1.0 + gamma * noise_var / safe)
    return np.clip(np.where(above, c2, 0.0), 0.0, 1.0)


def debias_spikes(
    values: NDArray[np.float64], noise_var: float, p: int, n_samples: int | None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Population spikes and eigenvector cosines behind the eigenvalues of a denoised block.

    Parameters
    ----------
    values : ndarray of shape (k,)
        Eigenvalues of the denoised block, ``lambda - sigma^2``.
    noise_var : float
    p : int
        Block dimension.
    n_samples : int or None
        None returns ``(max(values, 0), 1)``.

    Returns
    -------
    spikes : ndarray of shape (k,)
        ``ell`` (0 below the detection threshold), :func:`spike_from_eigenvalue`.
    cos2 : ndarray of shape (k,)
        :func:`spike_cosine_sq` of the spikes.

    Examples
    --------
    >>> ell, c2 = debias_spikes(np.array([2.75]), 1.0, 50, 100)
    >>> float(ell[0]), float(c2[0])
    (2.0, 0.7)
    """
    values = np.asarray(values, dtype=float)
    if n_samples is None:
        return np.clip(values, 0.0, None), np.ones_like(values)
    g, s2 = p / float(n_samples), float(noise_var)
    ell = spike_from_eigenvalue(values + s2, s2, g)
    return ell, spike_cosine_sq(ell, s2, g)


# ------------------------------------------------------------ sigma^2
def mp_noise_var(eigenvalues: ArrayLike, rank: int, n_samples: int) -> float:
    """Noise variance from the bulk, corrected for the Marchenko-Pastur biases.

    The mean of the ``p - K`` smallest sample eigenvalues underestimates
    ``sigma^2`` for two reasons: the top ``K`` eigenvalues remove the top of the
    bulk when some spikes are undetectable, and every detectable spike pulls
    noise out of the bulk into its own eigenvalue
    (``lambda - ell - sigma^2 = gamma sigma^2 (1 + sigma^2 / ell)``). The
    rule, with ``nu = n - 1`` degrees of freedom and ``gamma = p / nu``:

    1. ``k`` is the number of the top ``K`` eigenvalues above the edge
       ``sigma^2 (1 + sqrt(gamma))^2`` plus two Tracy-Widom standard deviations
       (a pure-noise top eigenvalue passes this with probability about 1%);
    2. the ``q - k`` other non-zero eigenvalues (``q = min(p, nu)``; when
       ``p > nu`` they are rescaled by ``nu / p``, the companion matrix) are a
       Marchenko-Pastur bulk of ratio ``(q - k) / (max(p, nu) - k)``, scaled by
       the trace left after the spikes took their share;
    3. the mean of the lowest ``(q - K) / (q - k)`` fraction of that bulk is
       matched to the same fraction's mean under the law.

    The three steps are iterated to a fixed point. The derivation and the
    measured bias (below 0.1% in pure noise, about 0.1-0.3% with spikes) are
    in ``docs/shrinkage.md``.

    Parameters
    ----------
    eigenvalues : array_like of shape (p,)
        All eigenvalues (any order) of a sample covariance with divisor ``n - 1``
        (``(n - 1) S ~ Wishart(n - 1, Sigma)``, the package's convention).
    rank : int
        Signal rank ``K < min(p, n - 1)``.
    n_samples : int
        Sample size ``n``.

    Returns
    -------
    float

    Raises
    ------
    ValidationError
        If ``rank >= min(p, n - 1)``: no bulk eigenvalue is left; or if the
        correction leaves the positive reals (the detected spikes would absorb
        more noise than the few bulk eigenvalues hold, at ``n`` close to ``K``).

    Examples
    --------
    >>> import numpy as np
    >>> abs(mp_noise_var(np.full(10, 2.0), 2, 10**9) - 2.0) < 1e-3  # no spread
    True
    """
    vals = np.sort(np.asarray(eigenvalues, dtype=float))[::-1]
    p = vals.size
    nu = check_int(n_samples, "n_samples", minimum=2) - 1
    rank = check_int(rank, "rank", minimum=0)
    q, long_side = min(p, nu), max(p, nu)
    if rank >= q:
        raise ValidationError(
            f"rank must be < min(p, n_samples - 1) = {q}; got {rank}. "
            "The noise variance needs at least one bulk eigenvalue."
        )
    gamma = p / nu
    # two standard deviations of the top pure-noise eigenvalue, unit noise
    threshold = mp_edge(1.0, gamma) + 2.0 * tracy_widom_scale(p, nu)
    scale_to_short = nu / long_side  # 1 when p <= nu; the companion's scale otherwise
    bottom = float(np.mean(vals[rank:q])) * scale_to_short
    s2 = bottom
    for _ in range(100):
        top = vals[:rank][vals[:rank] > s2 * threshold]
        k = top.size
        spikes = spike_from_eigenvalue(top, s2, gamma)
        absorbed = float(np.sum(top - spikes - s2)) / s2  # noise the spikes took, units s2
        bulk_scale = scale_to_short * (p - k - absorbed) / (q - k)
        ratio = (q - k) / (long_side - k)
        new = bottom / (bulk_scale * mp_lower_mean(ratio, (q - rank) / (q - k)))
        if not (math.isfinite(new) and new > 0.0):
            if not bottom > 1e-12 * float(vals[0]):  # no noise in the bulk at all
                raise ValidationError(
                    f"estimated sigma^2 must exceed 1e-12 times the largest eigenvalue "
                    f"({float(vals[0]):.3g}); got a bulk mean of {bottom:.3g}: the "
                    "covariance is (numerically) singular below the signal rank, but "
                    "the model needs positive noise. Check for constant or duplicated "
                    "columns, or noiseless data."
                )
            raise ValidationError(
                f"n_samples = {nu + 1} is too small for the Marchenko-Pastur noise "
                f"estimate at rank {rank}: the {k} detected spikes would absorb more "
                f"noise than the {q - rank} bulk eigenvalue(s) hold (the corrected "
                f"sigma^2 came out as {new:.3g}). Use more samples or a smaller "
                "rank, or give the noise variance (noise_rule=<float>, --noise)."
            )
        if abs(new - s2) <= 1e-12 * abs(new):
            return new
        s2 = new
    return s2


def estimate_noise_var_mp(
    cov: NDArray[np.float64], n_samples: int | None, *, n_iter: int = 5
) -> float:
    """Noise variance from the spectral bulk, without knowing the total rank ``K``.

    Population (``n_samples=None``): the smallest eigenvalue, exact when ``K < d``.
    Sample: start from ``median(eigenvalues) / mp_median(d/n)``, then repeat
    ``n_iter`` times: count the eigenvalues ``K_hat`` above the Marchenko-Pastur
    edge ``sigma^2 (1 + sqrt(d/n))^2`` and re-estimate ``sigma^2`` as the median of
    the remaining ``d - K_hat`` eigenvalues over the MP median (the bulk of a
    spiked covariance follows MP with ratio ``(d - K)/n``).

    Parameters
    ----------
    cov : ndarray of shape (d, d)
    n_samples : int or None

    Returns
    -------
    float

    Notes
    -----
    Consistent when ``K / d -> 0``; with ``K`` a sizeable fraction of ``d`` the
    median of the bulk is biased upwards by ``O(K/d)``.

    Examples
    --------
    >>> import numpy as np
    >>> estimate_noise_var_mp(np.diag([5.0, 2.0, 2.0, 2.0]), None)
    2.0
    """
    return noise_var_mp_of_spectrum(np.linalg.eigvalsh(cov), n_samples, n_iter=n_iter)


def noise_var_mp_of_spectrum(
    eigenvalues: NDArray[np.float64], n_samples: int | None, *, n_iter: int = 5
) -> float:
    """:func:`estimate_noise_var_mp` from the covariance's ``d`` eigenvalues.

    The sample-space path knows the spectrum of a wide covariance without forming
    it (the reduced spectrum plus zeros); this is the same rule on it.

    Parameters
    ----------
    eigenvalues : ndarray of shape (d,)
        All eigenvalues of the covariance, in any order.
    n_samples : int or None

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> noise_var_mp_of_spectrum(np.array([2.0, 5.0, 2.0, 2.0]), None)
    2.0
    """
    vals = np.sort(np.asarray(eigenvalues, dtype=float))
    d = vals.size
    if n_samples is None:
        value = float(max(vals[0], 0.0))
    else:
        n = float(n_samples)
        # with d >= n only the top n - 1 eigenvalues are non-zero; mp_median(d/n)
        # is then the median of the law of the non-zero ones
        nonzero = vals[-(int(n_samples) - 1) :] if d >= n_samples else vals
        value = float(np.median(nonzero)) / mp_median(d / n)
        for _ in range(n_iter):
            edge = mp_edge(value, d / n)
            bulk = nonzero[nonzero <= edge]
            if bulk.size < max(2, nonzero.size // 4):
                break
            k_hat = nonzero.size - bulk.size
            value = float(np.median(bulk)) / mp_median((d - k_hat) / n)
    scale = float(np.max(np.abs(vals))) if d else 1.0
    if not value > 1e-12 * scale:
        raise ValidationError(
            f"estimated sigma^2 must exceed 1e-12 times the largest eigenvalue "
            f"({scale:.3g}); got {value:.3g}: the covariance is (numerically) singular, "
            "but the model needs positive noise."
        )
    return value


def leaked_directions(
    cross: NDArray[np.float64],
    u: NDArray[np.float64],
    rest: float,
    dirs: list[NDArray[np.float64]],
    variances: NDArray[np.float64],
    spikes: NDArray[np.float64],
    *,
    noise_var: float,
    d_o: int,
    n_samples: int,
    z: float,
    share: float,
) -> NDArray[np.bool_]:
    """Leak test: which unit directions ``v`` of a Schur step still covary with ``O``.

    For ``v`` in the span of blocks inside ``S``, ``x_O`` and ``v^T x_S`` are
    independent, so the residual cross-covariance ``X = (I - U U^T) cross v``
    (``cross`` the ``(d_O, d_S)`` block ``S[O, S]``, ``U`` the conditioned
    directions of ``O``) has ``E ||X||^2 = var_v tr_rest / n`` (``var_v`` the
    variance along ``v``, ``tr_rest`` the trace of ``S[O, O]`` outside ``U``), with
    relative sd about ``sqrt(2 / d_O)``. A shared component too weak to be seen
    in ``O`` adds to it: by the BBP bound its loading on ``O`` has
    ``||w_O||^2 <= sigma^2 sqrt(d_O / n)``, so an excess ``e`` puts at least
    ``e / (sigma^2 sqrt(d_O / n))`` of ``v``'s spike in such a component. ``v`` is
    flagged when ``||X||^2`` exceeds its mean by ``z`` sds and that lower bound
    exceeds ``share`` times ``v``'s spike (``share = 0``: every significant
    direction). Used by ``schur_shrink`` (whitened, ``noise_var = 1``) and by the
    rule ``'sharp'`` of the Schur selector.

    Parameters
    ----------
    cross : ndarray of shape (d_O, d_S)
    u : ndarray of shape (d_O, k)
    rest : float
        ``tr S[O, O]`` outside ``U``; nothing is flagged if it is not positive.
    dirs : list of ndarray of shape (d_S,)
        Unit directions.
    variances, spikes : ndarray of shape (len(dirs),)
    noise_var : float
    d_o, n_samples : int
    z, share : float

    Returns
    -------
    ndarray of bool, shape (len(dirs),)

    Examples
    --------
    A direction with no covariance with ``O`` is not flagged:

    >>> import numpy as np
    >>> leaked_directions(np.zeros((4, 2)), np.zeros((4, 0)), 4.0, [np.array([1.0, 0.0])],
    ...                   np.array([2.0]), np.array([1.0]), noise_var=1.0, d_o=4,
    ...                   n_samples=100, z=4.0, share=0.5).tolist()
    [False]
    """
    out = np.zeros(len(dirs), dtype=bool)
    if rest <= 0:
        return out
    limit = 1.0 + z * math.sqrt(2.0 / d_o)
    bbp = noise_var * math.sqrt(d_o / n_samples)
    for k, v in enumerate(dirs):
        x = cross @ v
        x = x - u @ (u.T @ x)
        null = variances[k] * rest / n_samples
        stat = float(x @ x)
        out[k] = stat > limit * null and (stat - null) / bbp > share * spikes[k]
    return out
