"""Population quantities and explicit error bounds (numpy only).

Every bound is a pure function of :func:`population_quantities` and of ``n`` or
``m``, with every constant written down (derivations in ``docs/theory.md``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._linalg import block_offsets
from .._validation import check_int, check_real, check_real_array, short_repr
from ..exceptions import ValidationError

__all__ = ["PopulationQuantities", "beta_error_bound", "block_loading_bound", "covariance_concentration", "excess_risk_bound", "group_lasso_bound", "loading_bound", "population_quantities", "subspace_bound", "tail_t"]


@dataclass(frozen=True)
class PopulationQuantities:
    """Population quantities of a hierarchical factor model that enter the bounds.

    Parameters
    ----------
    dims : tuple of int
        ``(d_1, ..., d_M)``.
    d : int
        ``sum(dims)``.
    total_rank : int
        ``K = sum_S r_S``.
    n_structures : int
        ``|S|``, the number of blocks.
    max_rank : int
        ``r_max = max_S r_S``.
    cov_norm : float
        ``||Sigma||_op``.
    noise_var : float
        Largest noise variance ``max_m sigma_m^2`` (``sigma^2`` if isotropic).
    loading_norm : float
        ``||W||_op = s_max(W)``.
    signal_min : float
        ``s_min(W)``, the smallest singular value of the ``d x K`` loading matrix
        (with ``Cov(z) = I``; with a general ``Cov(z) = Phi`` it is
        ``s_min(W Phi^{1/2})``).
    condition_number : float
        ``kappa = s_max(W) / s_min(W)``.
    eigengap : float
        ``lambda_K(Sigma) - lambda_{K+1}(Sigma)``; equals ``s_min(W)^2`` when the
        noise is isotropic.
    effective_rank : float
        ``tr(Sigma) / ||Sigma||_op`` (Koltchinskii-Lounici), ``<= d``.
    block_singular_values : dict
        ``S -> (s_min(W^S), s_max(W^S))`` for the ``d x r_S`` column block.
    view_block_singular_values : dict
        ``(m, S) -> (s_min(W_m^S), s_max(W_m^S))`` for each view ``m`` in ``S``.
    block_ranks : dict
        ``S -> r_S``.
    """

    dims: tuple[int, ...]
    d: int
    total_rank: int
    n_structures: int
    max_rank: int
    cov_norm: float
    noise_var: float
    loading_norm: float
    signal_min: float
    condition_number: float
    eigengap: float
    effective_rank: float
    block_singular_values: Mapping[frozenset[int], tuple[float, float]] = field(
        default_factory=dict
    )
    view_block_singular_values: Mapping[tuple[int, frozenset[int]], tuple[float, float]] = (
        field(default_factory=dict)
    )
    block_ranks: Mapping[frozenset[int], int] = field(default_factory=dict)

    def block_condition_number(self, block: frozenset[int]) -> float:
        """``kappa_S = s_max(W^S) / s_min(W^S)`` (inf if the block is rank deficient)."""
        lo, hi = self.block_singular_values[frozenset(block)]
        return math.inf if lo <= 0 else hi / lo

    def to_record(self) -> dict[str, float]:
        """Scalar quantities as a flat dict (for result stores and reports)."""
        return {
            "d": self.d,
            "K": self.total_rank,
            "n_structures": self.n_structures,
            "r_max": self.max_rank,
            "cov_norm": self.cov_norm,
            "noise_var": self.noise_var,
            "loading_norm": self.loading_norm,
            "signal_min": self.signal_min,
            "condition_number": self.condition_number,
            "eigengap": self.eigengap,
            "effective_rank": self.effective_rank,
        }


_MODEL_ATTRS = ("dims", "structure", "loadings", "covariance", "noise_diagonal")


def _check_model(model: Any, name: str = "model") -> None:
    """Raise :class:`ValidationError` unless ``model`` looks like a factor model."""
    from ..structure import Structure

    missing = [a for a in _MODEL_ATTRS if not hasattr(model, a)]
    if missing or not isinstance(model.structure, Structure):
        why = (
            f"it has no {', '.join(missing)}" if missing
            else "its structure is not a Structure"
        )
        raise ValidationError(
            f"{name} must be a HierarchicalFactorModel or a FitResult (anything with "
            f"{', '.join(_MODEL_ATTRS)}); got {short_repr(model)}, {why}."
        )
    d, k = int(sum(model.dims)), int(model.structure.total_rank)
    shape = np.shape(model.loadings)
    if shape != (d, k):
        raise ValidationError(
            f"{name}.loadings must have shape (d, K) = ({d}, {k}); got {shape}."
        )


def _check_quantities(q: Any, name: str = "q") -> None:
    """Raise :class:`ValidationError` unless ``q`` is a :class:`PopulationQuantities`."""
    if not isinstance(q, PopulationQuantities):
        fix = (
            " Pass population_quantities(model) instead of the model."
            if all(hasattr(q, a) for a in _MODEL_ATTRS) else ""
        )
        raise ValidationError(
            f"{name} must be a PopulationQuantities (from population_quantities(model)); "
            f"got {short_repr(q)}.{fix}"
        )


def _block_key(block: Any, q: PopulationQuantities) -> frozenset[int]:
    """``block`` (view letters such as ``"AB"`` or view indices) as a key of ``q``."""
    from ..structure import format_block

    available = ", ".join(format_block(b) for b in q.block_singular_values)
    key: frozenset[int] | None = None
    if isinstance(block, str):
        letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        if block and all(ch in letters for ch in block):
            key = frozenset(letters.index(ch) for ch in block)
    elif isinstance(block, Iterable):
        members = list(block)
        if all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in members
        ):
            key = frozenset(int(v) for v in members)
    if key is None or key not in q.block_singular_values:
        raise ValidationError(
            f"block must be one of the model's blocks ({available}), as view letters "
            f"such as 'AB' or a set of view indices such as {{0, 1}}; got {short_repr(block)}."
        )
    return key


def population_quantities(model: Any) -> PopulationQuantities:
    """Compute the population quantities that enter every bound.

    Parameters
    ----------
    model : HierarchicalFactorModel
        Anything with ``dims``, ``structure``, ``loadings`` (``d x K``),
        ``covariance()`` and ``noise_diagonal()``; ``latent_cov`` is honoured if
        present.

    Returns
    -------
    PopulationQuantities

    Notes
    -----
    Uses a dense ``d x d`` eigendecomposition, ``O(d^3)``; fine for ``d`` in the
    thousands.

    Examples
    --------
    >>> import numpy as np, hcl_stats as hs
    >>> w = np.array([[2.0], [0.0]])
    >>> s = hs.Structure.parse("AB:1")
    >>> model = hs.HierarchicalFactorModel((1, 1), s, w, noise_var=1.0)
    >>> q = hs.theory.population_quantities(model)
    >>> q.cov_norm, q.eigengap, q.condition_number
    (5.0, 4.0, 1.0)
    """
    _check_model(model)
    dims = tuple(int(v) for v in model.dims)
    structure = model.structure
    w = np.asarray(model.loadings, dtype=float)
    phi = getattr(model, "latent_cov", None)
    if phi is not None:
        vals, vecs = np.linalg.eigh(np.asarray(phi, dtype=float))
        w_eff = w @ (vecs * np.sqrt(np.clip(vals, 0.0, None)))
    else:
        w_eff = w
    cov = np.asarray(model.covariance(), dtype=float)
    ev = np.sort(np.linalg.eigvalsh((cov + cov.T) / 2.0))[::-1]
    k = int(structure.total_rank)
    s = np.linalg.svd(w_eff, compute_uv=False)
    s_max = float(s[0]) if s.size else 0.0
    s_min = float(s[-1]) if s.size else 0.0
    gap = float(ev[k - 1] - ev[k]) if k < ev.size else float(ev[k - 1])
    offsets = block_offsets(dims)
    blocks: dict[frozenset[int], tuple[float, float]] = {}
    views: dict[tuple[int, frozenset[int]], tuple[float, float]] = {}
    for b in structure.blocks:
        cols = structure.columns(b)
        sv = np.linalg.svd(w[:, cols], compute_uv=False)
        blocks[b] = (float(sv[-1]), float(sv[0]))
        for m in sorted(b):
            sv = np.linalg.svd(w[offsets[m] : offsets[m + 1], cols], compute_uv=False)
            views[(m, b)] = (float(sv[-1]), float(sv[0]))
    return PopulationQuantities(
        dims=dims,
        d=int(sum(dims)),
        total_rank=k,
        n_structures=len(structure.blocks),
        max_rank=int(max(structure.ranks)),
        cov_norm=float(ev[0]),
        noise_var=float(np.max(model.noise_diagonal())),
        loading_norm=s_max,
        signal_min=s_min,
        condition_number=math.inf if s_min <= 0 else s_max / s_min,
        eigengap=gap,
        effective_rank=float(np.trace(cov) / ev[0]),
        block_singular_values=blocks,
        view_block_singular_values=views,
        block_ranks=dict(zip(structure.blocks, structure.ranks, strict=True)),
    )


def tail_t(confidence: float | None) -> float:
    """Deviation ``t`` with ``2 exp(-t^2 / 2) = 1 - confidence`` (0 if None).

    Parameters
    ----------
    confidence : float in (0, 1) or None
        Probability with which the Gaussian concentration bounds hold. None gives
        ``t = 0``, the *typical* scale (``E s_max(G) <= sqrt(N) + sqrt(d)``).

    Returns
    -------
    float

    Examples
    --------
    >>> round(tail_t(0.95), 4)
    2.7162
    """
    if confidence is None:
        return 0.0
    c = check_real(confidence, "confidence", low=0.0, low_open=True, high=1.0)
    if c >= 1.0:
        raise ValidationError(f"confidence must be < 1; got {c!r}.")
    return math.sqrt(2.0 * math.log(2.0 / (1.0 - c)))


def _n_eff(n: ArrayLike, centred: bool) -> NDArray[np.float64]:
    n = check_real_array(n, "n", low=2)
    return n - 1.0 if centred else n


def covariance_concentration(
    cov_norm: float,
    d: int,
    n: ArrayLike,
    *,
    confidence: float | None = None,
    centred: bool = True,
) -> NDArray[np.float64] | float:
    """Operator-norm deviation of the Gaussian sample covariance.

    ``||Sigma_hat - Sigma||_op <= ||Sigma|| (2 delta + delta^2)`` with
    ``delta = (sqrt(d) + t) / sqrt(N)``, i.e. the familiar
    ``||Sigma|| (sqrt(d/n) + d/n)`` with the constants 2 and 1 written down.

    Parameters
    ----------
    cov_norm : float
        ``||Sigma||_op``.
    d : int
        Dimension.
    n : int or array_like of int
        Sample size(s).
    confidence : float in (0, 1), optional
        Probability of the event; ``t = tail_t(confidence)``. None: ``t = 0``
        (typical scale, see :func:`tail_t`).
    centred : bool, default=True
        The estimator is the mean-centred ``ddof=1`` covariance, which is an
        average of ``N = n - 1`` independent rank-one Gaussian terms; False uses
        ``N = n`` (known zero mean, divisor ``n``).

    Returns
    -------
    float or ndarray
        Same shape as ``n``.

    Notes
    -----
    Assumptions: rows i.i.d. ``N(0, Sigma)``. Then ``Sigma_hat = Sigma^{1/2} (G^T G
    / N) Sigma^{1/2}`` with ``G`` an ``N x d`` standard Gaussian matrix and, by the
    Davidson-Szarek / Gordon bound with Gaussian concentration (Vershynin 2018,
    Thm 4.6.1 and 7.3.3), ``sqrt(N) - sqrt(d) - t <= s_min(G) <= s_max(G) <=
    sqrt(N) + sqrt(d) + t`` with probability ``>= 1 - 2 exp(-t^2/2)``. So
    ``||G^T G / N - I|| <= 2 delta + delta^2``. The bound is tight as
    ``d/n -> gamma`` when ``Sigma = I`` (Bai-Yin: ``2 sqrt(gamma) + gamma``).

    Examples
    --------
    >>> float(covariance_concentration(2.0, 25, 101))
    2.5
    """
    cov_norm = check_real(cov_norm, "cov_norm", low=0.0)
    d = check_int(d, "d", minimum=1)
    big_n = _n_eff(n, centred)
    delta = (math.sqrt(d) + tail_t(confidence)) / np.sqrt(big_n)
    out = cov_norm * (2.0 * delta + delta**2)
    return float(out) if np.ndim(out) == 0 else out


def subspace_bound(
    q: PopulationQuantities,
    n: ArrayLike,
    *,
    confidence: float | None = None,
    norm: str = "fro",
) -> NDArray[np.float64] | float:
    """Davis-Kahan bound on ``sin Theta`` between the top-``K`` eigenspaces.

    ``||sin Theta(U_hat, U)||_F <= 2 min(sqrt(K) ||E||, ...) / gap`` with
    ``||E||`` from :func:`covariance_concentration`; capped at ``sqrt(K)``
    (``'fro'``) or 1 (``'op'``).

    Parameters
    ----------
    q : PopulationQuantities
    n : int or array_like
        Unlabelled sample size(s).
    confidence : float, optional
        As in :func:`covariance_concentration`.
    norm : {'fro', 'op'}, default='fro'

    Returns
    -------
    float or ndarray

    Notes
    -----
    Yu, Wang and Samworth (2015), Theorem 2: ``||sin Theta||_F <= 2 sqrt(K) ||E||_op
    / (lambda_K - lambda_{K+1})``; the ``'op'`` form ``2 ||E|| / gap`` follows from
    the classical Davis-Kahan theorem and Weyl's inequality (docs/theory.md §2).
    Applies to the column space of the structure-blind top-``K`` estimator
    (:class:`~hcl_stats.estimators.NaivePCA`).

    Examples
    --------
    The bound is capped at ``sqrt(K)`` for small ``n`` and decays like ``n^{-1/2}``:

    >>> import hcl_stats as hs
    >>> from hcl_stats.theory.bounds import subspace_bound
    >>> m = hs.HierarchicalFactorModel.random((3, 4, 5), "ABC:1 AB:1 C:1", rng=0)
    >>> b = subspace_bound(hs.theory.population_quantities(m), [1e2, 1e6, 4e6])
    >>> round(float(b[0]), 6), round(float(b[1] / b[2]), 2)  # sqrt(3); sqrt(4)
    (1.732051, 2.0)
    """
    _check_quantities(q)
    if norm not in ("fro", "op"):
        raise ValidationError(f"norm must be 'fro' or 'op'; got {norm!r}.")
    e = np.asarray(covariance_concentration(q.cov_norm, q.d, n, confidence=confidence))
    k = q.total_rank
    factor = math.sqrt(k) if norm == "fro" else 1.0
    out = np.minimum(2.0 * factor * e / q.eigengap, factor)
    return float(out) if np.ndim(out) == 0 else out


def loading_bound(
    q: PopulationQuantities,
    n: ArrayLike,
    *,
    form: str = "sharp",
    constant: float = 1.0,
    confidence: float | None = None,
) -> NDArray[np.float64] | float:
    """Bound on the overall Gram error ``||W_hat W_hat^T - W W^T||_F``.

    Parameters
    ----------
    q : PopulationQuantities
    n : int or array_like
        Unlabelled sample size(s).
    form : {'sharp', 'paper'}, default='sharp'
        ``'sharp'``: ``constant * sqrt(2K) (2 + 4 kappa^2) * eps(n)`` with
        ``eps(n)`` from :func:`covariance_concentration` (proven with
        ``constant = 1`` for the denoised rank-``K`` truncation, see Notes).
        ``'paper'``: the reconstructed T3 of paper.md §4.2,
        ``constant * kappa * sqrt(K) * ||Sigma|| (sqrt(d/n) + d/n) / gap``; the
        paper's constant is unknown, so it is unit by default and meant to be
        fitted. Note that this form is dimensionless (a ``sin Theta``-type
        quantity): comparing it with a Gram error puts a factor of ``||W||^2`` into
        the fitted constant.
    constant : float, default=1.0
        Multiplicative constant.
    confidence : float, optional
        ``'sharp'`` only; see :func:`covariance_concentration`.

    Returns
    -------
    float or ndarray

    Notes
    -----
    ``'sharp'`` (docs/theory.md §3). Let ``E = Sigma_hat - Sigma``, ``L = W W^T``
    with isotropic noise ``sigma^2``, ``P_hat`` the top-``K`` eigenprojector of
    ``Sigma_hat``, ``sigma_hat^2`` the mean of its bottom ``d - K`` eigenvalues and
    ``L_hat = P_hat (Sigma_hat - sigma_hat^2 I) P_hat`` (:class:`NaivePCA`; its
    clipping of negative eigenvalues is a projection onto the PSD cone, which can
    only decrease the Frobenius distance to ``L``). Then
    ``L_hat - L = (P_hat L P_hat - P L P) + (sigma^2 - sigma_hat^2) P_hat +
    P_hat E P_hat``, with ``||P_hat - P|| <= 2 ||E|| / gap`` (Davis-Kahan),
    ``|sigma_hat^2 - sigma^2| <= ||E||`` (Weyl) and ``gap = s_min(W)^2``, so
    ``||L_hat - L||_op <= (2 + 4 kappa^2) ||E||``; ``L_hat - L`` has rank
    ``<= 2K``, giving the ``sqrt(2K)``. Structured estimators target the same
    ``W W^T`` but through Schur complements; for them the bound holds only up to
    an unknown constant (fit it).

    Examples
    --------
    >>> import numpy as np, hcl_stats as hs
    >>> s = hs.Structure.parse("AB:1")
    >>> model = hs.HierarchicalFactorModel((1, 1), s, [[2.0], [0.0]], noise_var=1.0)
    >>> q = hs.theory.population_quantities(model)
    >>> round(float(loading_bound(q, 9, form="paper")), 6)  # 1*1*5*(sqrt(2/9)+2/9)/4
    0.867033
    """
    if form not in ("sharp", "paper"):
        raise ValidationError(f"form must be 'sharp' or 'paper'; got {form!r}.")
    _check_quantities(q)
    constant = check_real(constant, "constant", low=0.0)
    k = q.total_rank
    if form == "sharp":
        e = np.asarray(
            covariance_concentration(q.cov_norm, q.d, n, confidence=confidence)
        )
        out = constant * math.sqrt(2.0 * k) * (2.0 + 4.0 * q.condition_number**2) * e
    else:
        nn = _n_eff(n, centred=False)
        rate = np.sqrt(q.d / nn) + q.d / nn
        out = constant * q.condition_number * math.sqrt(k) * q.cov_norm * rate / q.eigengap
    return float(out) if np.ndim(out) == 0 else out


def block_loading_bound(
    q: PopulationQuantities,
    n: ArrayLike,
    block: Sequence[int] | frozenset[int],
    *,
    constant: float = 1.0,
) -> NDArray[np.float64] | float:
    """Reconstructed per-block recovery bound (paper.md §4.2, T3, per block).

    ``constant * kappa_S * sqrt(r_S) * ||Sigma|| (sqrt(d/n) + d/n) / s_min(W^S)^2``.

    Parameters
    ----------
    q : PopulationQuantities
    n : int or array_like
    block : iterable of int
        The block ``S``.
    constant : float, default=1.0
        Unknown in the paper; unit by default, to be fitted.

    Returns
    -------
    float or ndarray

    Notes
    -----
    Assumptions A1-A5 of paper.md §4.2. The per-block form replaces ``K`` by
    ``r_S``, ``kappa`` by the block condition number and the gap by
    ``s_min(W^S)^2``; it keeps the full ``d`` (the paper's choice between
    ``sqrt(d/n)`` and ``sqrt(d_m/n)`` is unknown). No proof with an explicit
    constant is given here: the Schur-complement propagation adds factors that
    depend on the conditioning of the outside views (docs/theory.md §4).

    Examples
    --------
    >>> import hcl_stats as hs
    >>> from hcl_stats.theory.bounds import block_loading_bound
    >>> m = hs.HierarchicalFactorModel.random((3, 4, 5), "ABC:1 AB:1 C:1", rng=0)
    >>> q = hs.theory.population_quantities(m)
    >>> b = block_loading_bound(q, [1e4, 1e6], {0, 1})
    >>> bool(b[1] < b[0]), bool(block_loading_bound(q, 1e4, {0, 1}, constant=2.0)
    ...                         == 2 * b[0])
    (True, True)
    """
    _check_quantities(q)
    b = _block_key(block, q)
    constant = check_real(constant, "constant", low=0.0)
    lo, _ = q.block_singular_values[b]
    r = q.block_ranks[b]
    nn = _n_eff(n, centred=False)
    rate = np.sqrt(q.d / nn) + q.d / nn
    out = constant * q.block_condition_number(b) * math.sqrt(r) * q.cov_norm * rate / lo**2
    return float(out) if np.ndim(out) == 0 else out


def beta_error_bound(
    m: ArrayLike,
    total_rank: int,
    *,
    residual_var: float,
    beta_norm: float = 0.0,
    representation_error: ArrayLike = 0.0,
    constant: float = 1.0,
    feature_noise: ArrayLike | None = None,
    beta: ArrayLike | None = None,
) -> NDArray[np.float64] | float:
    """Downstream coefficient error: ``sqrt(K/m)`` term plus representation term.

    ``sqrt(A / (m - K - 1)) + constant * ||beta|| * rep_error`` with
    ``A = s^2 K`` for noise-free features and, with feature noise
    ``Phi = C Psi C^T``, ``A = s^2 (K + tr Phi) + ||Phi beta||^2``.

    Parameters
    ----------
    m : int or array_like
        Labelled sample size(s), ``m > K + 1``.
    total_rank : int
        ``K``.
    residual_var : float
        Variance of ``y - h(x)^T beta`` (``sigma_y^2`` plus the feature noise
        ``beta^T C Psi C^T beta``, see :func:`hcl_stats.downstream.residual_variance`).
    beta_norm : float, default=0
        ``||beta||_2``.
    representation_error : float or array_like, default=0
        A representation (loading) error, e.g. ``||C_hat W - I||_op`` after
        alignment or a loading bound; zero gives the oracle term alone.
    constant : float, default=1.0
        Constant of the representation term; unknown in the paper (fit it).
    feature_noise : array_like of shape (K, K), optional
        ``Phi = C Psi C^T``, the covariance of the noise in the features ``h(x)``
        (:meth:`hcl_stats.downstream.Representation.feature_noise`). None means
        noise-free features (``Phi = 0``).
    beta : array_like of shape (K,), optional
        The true coefficients; required with ``feature_noise`` (for ``||Phi beta||``).

    Returns
    -------
    float or ndarray

    Notes
    -----
    Without feature noise the first term is exact: OLS on ``z ~ N(0, I_K)`` has
    ``E ||beta_hat - beta||^2 = s^2 tr E[(Z^T Z)^{-1}] = s^2 K / (m - K - 1)``
    (inverse-Wishart mean). With noisy features ``h = z + xi``, ``xi ~ N(0, Phi)``,
    the errors-in-variables estimator ``H^{-1} b`` has influence function
    ``u = h (eps_y - xi^T beta) + Phi beta`` with
    ``Cov(u) = s^2 (I + Phi) + Phi beta beta^T Phi``, so
    ``m E ||beta_hat - beta||^2 -> s^2 (K + tr Phi) + ||Phi beta||^2``
    (docs/theory.md §5); the ``m - K - 1`` denominator is then a finite-``m``
    approximation, not exact. The second term is first-order perturbation of
    ``H^{-1} b`` in the representation.

    Examples
    --------
    >>> round(float(beta_error_bound(111, 10, residual_var=1.0)), 6)  # sqrt(10/100)
    0.316228
    """
    k = check_int(total_rank, "total_rank", minimum=1)
    s2 = check_real(residual_var, "residual_var", low=0.0)
    constant = check_real(constant, "constant", low=0.0)
    beta_norm = check_real(beta_norm, "beta_norm", low=0.0)
    mm = check_real_array(m, "m")
    if np.any(mm <= k + 1):
        raise ValidationError(f"m must be > K + 1 = {k + 1}; got {np.min(mm)!r}.")
    a_const, _ = _eiv_constants(k, s2, feature_noise, beta)
    rep = check_real_array(representation_error, "representation_error", low=0.0)
    out = np.sqrt(a_const / (mm - k - 1.0)) + constant * beta_norm * rep
    return float(out) if np.ndim(out) == 0 else out


def _eiv_constants(
    k: int, s2: float, feature_noise: ArrayLike | None, beta: ArrayLike | None
) -> tuple[float, float]:
    """Asymptotic constants ``(m E||beta_hat - beta||^2, m E excess)`` of the EIV fit.

    ``(s^2 K, s^2 K)`` without feature noise; with ``Phi``:
    ``(s^2 (K + tr Phi) + ||Phi beta||^2, s^2 tr((I + Phi)^2) + beta^T Phi (I + Phi) Phi beta)``.
    """
    if feature_noise is None:
        if beta is not None:
            raise ValidationError("beta is only used with feature_noise; got beta alone.")
        return s2 * k, s2 * k
    phi = np.asarray(feature_noise, dtype=float)
    if phi.shape != (k, k) or not np.all(np.isfinite(phi)):
        raise ValidationError(
            f"feature_noise must be a finite (K, K) = ({k}, {k}) matrix; got shape "
            f"{phi.shape}."
        )
    if beta is None:
        raise ValidationError("beta must be given with feature_noise (for ||Phi beta||).")
    b = np.asarray(beta, dtype=float)
    if b.shape != (k,):
        raise ValidationError(f"beta must have shape (K,) = ({k},); got {b.shape}.")
    pb = phi @ b
    ip = np.eye(k) + phi
    return (
        s2 * (k + float(np.trace(phi))) + float(pb @ pb),
        s2 * float(np.trace(ip @ ip)) + float(pb @ ip @ pb),
    )


def excess_risk_bound(
    m: ArrayLike,
    total_rank: int,
    *,
    residual_var: float,
    beta_norm: float = 0.0,
    representation_error: ArrayLike = 0.0,
    constant: float = 1.0,
    feature_noise: ArrayLike | None = None,
    beta: ArrayLike | None = None,
) -> NDArray[np.float64] | float:
    """Downstream excess risk: ``K/m`` term plus squared representation term.

    ``B / (m - K - 1) + (constant * ||beta|| * rep_error)^2`` with ``B = s^2 K``
    for noise-free features and, with ``Phi = C Psi C^T``,
    ``B = s^2 tr((I + Phi)^2) + beta^T Phi (I + Phi) Phi beta``.

    Parameters
    ----------
    m, total_rank, residual_var, beta_norm, representation_error, constant
        As in :func:`beta_error_bound`.
    feature_noise, beta : optional
        As in :func:`beta_error_bound`.

    Returns
    -------
    float or ndarray

    Notes
    -----
    With the true representation the excess risk over the oracle predictor is
    ``(beta_hat - beta)^T Cov(h) (beta_hat - beta)`` with ``Cov(h) = I + Phi``, so
    ``m E[excess] -> tr((I + Phi) Cov(u))`` for the influence function ``u`` of
    :func:`beta_error_bound`. Exact (with ``m - K - 1``) only for ``Phi = 0``;
    with feature noise an asymptotic constant (docs/theory.md §5).

    Examples
    --------
    >>> round(float(excess_risk_bound(111, 10, residual_var=1.0)), 6)
    0.1
    """
    k = check_int(total_rank, "total_rank", minimum=1)
    s2 = check_real(residual_var, "residual_var", low=0.0)
    constant = check_real(constant, "constant", low=0.0)
    beta_norm = check_real(beta_norm, "beta_norm", low=0.0)
    mm = check_real_array(m, "m")
    if np.any(mm <= k + 1):
        raise ValidationError(f"m must be > K + 1 = {k + 1}; got {np.min(mm)!r}.")
    rep = constant * beta_norm * check_real_array(
        representation_error, "representation_error", low=0.0)
    _, b_const = _eiv_constants(k, s2, feature_noise, beta)
    out = b_const / (mm - k - 1.0) + rep**2
    return float(out) if np.ndim(out) == 0 else out


def group_lasso_bound(
    m: ArrayLike,
    *,
    n_relevant: int,
    max_rank: int,
    n_structures: int,
    residual_var: float = 1.0,
    form: str = "paper",
    constant: float = 1.0,
) -> NDArray[np.float64] | float:
    """Group-lasso estimation term for ``s`` relevant structures.

    Parameters
    ----------
    m : int or array_like
        Labelled sample size(s).
    n_relevant : int
        ``s``, the number of structures with ``beta_S != 0``.
    max_rank : int
        ``r = max_S r_S``.
    n_structures : int
        ``|S|``, the number of groups.
    residual_var : float, default=1.0
        Noise variance of the regression.
    form : {'paper', 'lounici'}, default='paper'
        ``'paper'``: ``constant * sigma * sqrt(s r log|S| / m)`` (paper.md §4.2 T4,
        reconstructed). ``'lounici'``: ``constant * sigma * sqrt(s (r + log|S|) /
        m)``, the sharper group-lasso rate (Lounici et al. 2011, Thm 3.1, under a
        group restricted-eigenvalue condition).
    constant : float, default=1.0
        Unknown; unit by default, to be fitted.

    Returns
    -------
    float or ndarray

    Notes
    -----
    ``log|S|`` is floored at ``log 2`` so that a single group gives a finite,
    non-zero term.

    Examples
    --------
    >>> round(float(group_lasso_bound(100, n_relevant=2, max_rank=3,
    ...                               n_structures=7)), 6)
    0.341694
    """
    s = check_int(n_relevant, "n_relevant", minimum=0)
    r = check_int(max_rank, "max_rank", minimum=1)
    g = check_int(n_structures, "n_structures", minimum=1)
    if s > g:
        raise ValidationError(
            f"n_relevant must be <= n_structures = {g} (the relevant structures are "
            f"among them); got {s}."
        )
    s2 = check_real(residual_var, "residual_var", low=0.0)
    if form not in ("paper", "lounici"):
        raise ValidationError(f"form must be 'paper' or 'lounici'; got {form!r}.")
    log_g = math.log(max(g, 2))
    mm = check_real_array(m, "m", low=0.0, low_open=True)
    num = s * r * log_g if form == "paper" else s * (r + log_g)
    out = constant * math.sqrt(s2) * np.sqrt(num / mm)
    return float(out) if np.ndim(out) == 0 else out
