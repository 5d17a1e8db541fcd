"""Rank counting: which views share latent blocks, and with what rank.

:func:`select_structure` (re-exported by :mod:`hcl_stats.workflow`) has two
counting methods, :func:`count_eigen` (``'eigen'``, exact under the model) and
:func:`count_shared` (``'correlation'``, a heuristic for real data), and a final
:func:`trim_ranks` that leaves every view room for noise.

Rank counting (the selection rule)
----------------------------------
For a set ``U`` of views let ``k(U) = sum_{S meets U} r_S`` be the number of latent
dimensions that load on ``U``. Under the model, the noise-whitened covariance
``Psi_U^{-1/2} Sigma_UU Psi_U^{-1/2} = I + (whitened W_U)(whitened W_U)^T`` has
exactly ``k(U)`` eigenvalues above 1 when the loadings of the blocks meeting ``U``
have full column rank jointly (the condition under which the blocks are
identified; see docs/identifiability.md). The blocks contained in ``T`` are those
that do not meet the complement ``O = [M] - T``, so

    c(T) = sum_{S subset of T} r_S = k([M]) - k(O),

and the ranks follow by Moebius inversion on the subset lattice, computed
bottom-up as ``r_T = max(0, c(T) - sum_{S proper subset of T} r_S)``. At the
population level with the true noise this is exact. With data, ``k(U)`` counts the
eigenvalues of the whitened sample covariance above
``max((1 + sqrt(d_U / n_U))^2, 1 + min_snr)``: the Marchenko-Pastur edge of pure
noise (a spike of strength ``l`` is separated from it only when
``l > sqrt(d_U / n_U)``), optionally raised by a minimum signal-to-noise ratio
``min_snr`` per direction. ``n_U`` is the smallest number of samples behind any
block of ``Sigma_UU`` (pairwise-complete covariance for missing views). The
noise variances come from a rank-free rule (:func:`hcl_stats.preprocessing.noise_variance`).
This is ``method='eigen'``, the rule for data that follow the model.

Real data rarely have isotropic residuals: every high-variance direction of a
view passes the noise edge. ``method='correlation'`` therefore counts, for each
set ``T`` of views, the directions shared by all of them (canonical-correlation
style, on each view's leading principal components) and inverts top-down; see
:func:`select_structure`. It is a heuristic, not exact under the model.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._linalg import block_offsets
from .._rmt import mp_edge
from .._validation import (
    check_choice,
    check_covariance,
    check_dims,
    check_int,
    check_real,
    keyword_alias,
    short_repr,
)
from ..exceptions import NoStructureError, ValidationError
from ..missing import IncompleteData, pairwise_covariance
from ..model import MultimodalData
from ..preprocessing import noise_variance
from ..structure import Structure, format_block

__all__ = [
    "StructureSelection",
    "count_eigen",
    "count_shared",
    "select_structure",
    "shared_counts",
    "trim_ranks",
]


def _as_data(data: Any) -> MultimodalData | IncompleteData:
    if isinstance(data, MultimodalData | IncompleteData):
        return data
    if hasattr(data, "data") and hasattr(data, "view_names"):  # MultiViewDataset
        return data.data
    return MultimodalData(data)


@dataclass(frozen=True, eq=False)
class StructureSelection:
    """Outcome of :func:`select_structure`.

    Parameters
    ----------
    structure : Structure
        The selected blocks and ranks.
    subset_ranks : dict[str, int]
        ``k(U)`` for every non-empty set ``U`` of views (keys in letter form).
    contained : dict[str, int]
        ``c(T) = k(all) - k(complement of T)`` for every non-empty ``T``.
    noise_var : ndarray of shape (M,)
        The noise variances used for whitening.
    trimmed : tuple of str
        Blocks whose rank was reduced so that every view keeps ``k_m < d_m``.
    """

    structure: Structure
    subset_ranks: dict[str, int]
    contained: dict[str, int]
    noise_var: NDArray[np.float64]
    trimmed: tuple[str, ...] = ()


def _cov_and_counts(data: Any, cov: Any, dims: Any, n_per_block: Any):
    if cov is None:
        for name, value in (("dims", dims), ("n_per_block", n_per_block)):
            if value is not None:
                raise ValidationError(
                    f"{name} must be None when data are given (it is taken from the "
                    f"data; pass it only with cov); got {short_repr(value)}."
                )
        pc = pairwise_covariance(_as_data(data))
        return pc.cov, pc.dims, pc.n_per_block
    if dims is None:
        raise ValidationError("dims must be given with cov; got None.")
    dims = check_dims(dims)
    cov = check_covariance(cov, "cov", dim=sum(dims))
    if n_per_block is None:
        raise ValidationError("n_per_block must be given with cov; got None.")
    if np.ndim(n_per_block) == 0:
        n = check_int(n_per_block, "n_per_block", minimum=2)
        counts = np.full((len(dims), len(dims)), n, dtype=np.int64)
    else:
        counts = np.asarray(n_per_block)
        shape = (len(dims), len(dims))
        if counts.dtype.kind not in "iu" or counts.shape != shape or np.any(counts < 2):
            raise ValidationError(
                f"n_per_block must be an integer >= 2 or an integer array of shape "
                f"{shape} with entries >= 2; got {short_repr(n_per_block)}."
            )
        counts = counts.astype(np.int64)
    return cov, dims, counts


def select_structure(
    data: Any = None,
    *,
    cov: Any = None,
    dims: Sequence[int] | None = None,
    n_per_block: Any = None,
    noise_rule: Any = None,
    min_snr: float = 0.0,
    max_rank: int | None = None,
    view_names: Sequence[str] | None = None,
    method: str = "eigen",
    view_rank: int = 10,
    variance_fraction: float = 0.9,
    min_corr: float = 0.5,
    missing: str = "subset",
    n_factor: float = 1.0,
    noise_var: Any = None,
    modality_names: Sequence[str] | None = None,
) -> StructureSelection:
    """Select the sharing structure and ranks by rank counting (module docstring).

    Parameters
    ----------
    data : MultimodalData, IncompleteData, MultiViewDataset or list of arrays, optional
        The (preprocessed) views; or pass ``cov``, ``dims`` and ``n_per_block``.
    cov : array_like of shape (d, d), optional
        Covariance to use instead of ``data``.
    dims : sequence of int, optional
        With ``cov``.
    n_per_block : int or array_like of shape (M, M), optional
        With ``cov``: the samples behind each block (one int for complete data).
    noise_rule : str or array_like of shape (M,), default='bottom_half'
        A rule of :func:`hcl_stats.preprocessing.noise_variance` or known values.
    min_snr : float, default=0.0
        Minimum whitened signal-to-noise ratio of a counted direction.
    max_rank : int, optional
        Cap on each block's rank.
    view_names : sequence of str, optional
        Display names of the views of the selected structure.
    method : {'eigen', 'correlation'}, default='eigen'
        How ``k(U)`` is measured. ``'eigen'``: eigenvalues of the noise-whitened
        covariance above the threshold (exact under the model; ``noise_rule``,
        ``min_snr`` apply). ``'correlation'``: for real data whose residuals are not
        isotropic noise. Each view is reduced to its top ``q_m`` principal
        components (``q_m`` = fewest explaining ``variance_fraction`` of its
        variance, at most ``view_rank``), whitened; ``R`` is the correlation
        matrix of all these components (identity diagonal blocks). A direction
        shared by the views of ``T`` with average pairwise correlation ``rho``
        gives ``R_TT`` an eigenvalue ``1 + (|T| - 1) rho``, so
        ``s(T) = #{eigenvalues of R_TT above 1 + (|T| - 1) min_corr}`` counts the
        directions shared by *all* views of ``T``, ``s(T) = sum_{S superset of T}
        r_S`` (``s({m}) = q_m``), and the ranks follow top-down:
        ``r_T = max(0, s(T) - sum_{S proper superset of T} r_S)``. With
        ``|T| >= 3`` a direction shared by only ``|T| - 1`` views of ``T`` with
        correlation near 1 can pass the threshold, so partial blocks of many
        views are the least reliable part; check them with
        :func:`~hcl_stats.workflow.bootstrap_stability`. ``min_corr`` is raised to the null edge
        ``2 sqrt(c (1 - c))``, ``c = max_{m in T} q_m / n_T``, of the largest
        canonical correlation between two independent sets of ``q`` components
        (Wachter's law), so that small samples do not report chance
        correlations as sharing.
    view_rank : int, default=10
        ``'correlation'`` only: the cap on ``q_m``.
    variance_fraction : float in (0, 1], default=0.9
        ``'correlation'`` only.
    min_corr : float in (0, 1), default=0.5
        ``'correlation'`` only: canonical correlation above which a direction is
        shared.
    missing : {'subset', 'pairwise'}, default='subset'
        ``'eigen'`` with ``IncompleteData`` only: ``k(U)`` from the sample
        covariance of the samples that observe *every* view of ``U`` (a consistent
        PSD matrix whose noise edge is exactly Marchenko-Pastur with their count),
        or from the pairwise-complete covariance. The pairwise blocks come from
        different samples; their errors scale with the signal, not the noise, and
        with strong signals the union of all views then shows spurious directions
        at the noise edge (docs/real_data.md). Sets ``U`` observed together by
        fewer than 3 samples fall back to the pairwise blocks.
    n_factor : float in (0, 1], default=1.0
        Multiplies every sample count in the noise edges (and the rank-free noise
        rule); bootstrap resamples use 0.5 (see :func:`~hcl_stats.workflow.bootstrap_stability`).
    noise_var, modality_names : optional
        Deprecated spellings of ``noise_rule`` and ``view_names`` (still accepted,
        with a DeprecationWarning).

    Returns
    -------
    StructureSelection

    Raises
    ------
    NoStructureError
        If no eigenvalue exceeds the threshold (no shared or specific signal); a
        :class:`~hcl_stats.exceptions.ValidationError`.

    Examples
    --------
    >>> import hcl_stats as hs
    >>> from hcl_stats.workflow import select_structure
    >>> model = hs.HierarchicalFactorModel.random((6, 7, 8), "ABC:2 AB:1 C:1", rng=0)
    >>> sel = select_structure(cov=model.covariance(), dims=model.dims,
    ...                        n_per_block=10**12, noise_rule=[1.0, 1.0, 1.0])
    >>> str(sel.structure)
    'ABC:2 AB:1 C:1'
    """
    noise_rule = keyword_alias(noise_rule, "noise_rule", noise_var, "noise_var")
    noise_rule = "bottom_half" if noise_rule is None else noise_rule
    view_names = keyword_alias(view_names, "view_names", modality_names, "modality_names")
    subset_data = None
    if data is not None and cov is None:
        missing = check_choice(missing, "missing", ("subset", "pairwise"))
        if missing == "subset" and isinstance(_as_data(data), IncompleteData):
            subset_data = _as_data(data)
    n_factor = check_real(n_factor, "n_factor", low=0.0, high=1.0, low_open=True)
    check_int(view_rank, "view_rank", minimum=1)
    check_real(variance_fraction, "variance_fraction", low=0.0, low_open=True, high=1.0)
    check_real(min_corr, "min_corr", low=0.0, low_open=True, high=1.0, high_open=True)
    cov, dims, counts = _cov_and_counts(data, cov, dims, n_per_block)
    counts = np.maximum((np.asarray(counts) * n_factor).astype(np.int64), 2)
    n_views = len(dims)
    if n_views > 12:
        raise ValidationError(
            f"select_structure enumerates all 2^M - 1 view subsets; M must be <= 12; "
            f"got {n_views}."
        )
    min_snr = check_real(min_snr, "min_snr", low=0.0)
    if max_rank is not None:
        max_rank = check_int(max_rank, "max_rank", minimum=1)
    psi = _noise_levels(cov, dims, noise_rule, counts)
    method = check_choice(method, "method", ("eigen", "correlation"))
    off = block_offsets(dims)
    subsets = [
        frozenset(c)
        for size in range(1, n_views + 1)
        for c in itertools.combinations(range(n_views), size)
    ]
    if method == "correlation":
        k_of, ranks, contained = count_shared(
            cov, off, subsets, counts,
            view_rank=view_rank, variance_fraction=variance_fraction, min_corr=min_corr,
        )
    else:
        k_of, ranks, contained = count_eigen(
            cov, dims, subsets, counts, psi,
            min_snr=min_snr, subset_data=subset_data, n_factor=n_factor,
        )
    if max_rank is not None:
        ranks = {t: min(r, max_rank) for t, r in ranks.items()}
    ranks, trimmed = trim_ranks({t: ranks[t] for t in subsets}, dims)
    kept = [(s, r) for s, r in ranks.items() if r > 0]
    if not kept:
        raise NoStructureError(
            "the data support no shared structure: no eigenvalue of the whitened "
            "covariance exceeds the threshold; found no signal to share (lower "
            "min_snr or check the noise variances)."
        )
    structure = Structure(
        n_views,
        [s for s, _ in kept],
        [r for _, r in kept],
        view_names=tuple(view_names) if view_names is not None else None,
    )
    from .fittable import make_fittable

    fitted, changes = make_fittable(structure, dims, n_samples=int(np.min(counts)))
    if fitted is None:  # pragma: no cover - trim_ranks leaves k_m < d_m
        raise NoStructureError(
            f"the data support no shared structure that the Schur refit can fit: "
            f"rank counting selected {structure}; {'; '.join(changes)}."
        )
    structure = fitted
    trimmed = (*trimmed, *changes)
    return StructureSelection(
        structure=structure,
        subset_ranks={format_block(u): k_of[u] for u in subsets},
        contained={format_block(t): c for t, c in contained.items()},
        noise_var=psi,
        trimmed=tuple(trimmed),
    )


def _noise_levels(cov, dims, noise_rule, counts) -> NDArray[np.float64]:
    """The per-view noise variances: a rank-free rule's values, or the given ones."""
    if isinstance(noise_rule, str):
        return noise_variance(cov, dims, rule=noise_rule, n_samples=np.diag(counts))
    psi = np.broadcast_to(np.asarray(noise_rule, dtype=float), (len(dims),)).copy()
    if np.any(psi <= 0):
        raise ValidationError(f"noise_rule values must be positive; got {psi.tolist()}.")
    return psi


Counts = tuple[dict[frozenset[int], int], dict[frozenset[int], int], dict[frozenset[int], int]]


def count_eigen(
    cov: NDArray, dims, subsets, counts, psi, *, min_snr: float, subset_data=None,
    n_factor: float = 1.0,
) -> Counts:
    """Rank counting by eigenvalues (``method='eigen'`` of :func:`select_structure`).

    ``k(U)`` is the number of eigenvalues of the noise-whitened covariance of the
    views ``U`` above ``max((1 + sqrt(gamma_U))^2, 1 + min_snr)``; the blocks
    contained in ``T`` number ``c(T) = k(all) - k(complement of T)`` and the ranks
    follow bottom-up, ``r_T = max(0, c(T) - sum_{S < T} r_S)``.

    Parameters
    ----------
    cov : ndarray of shape (d, d)
    dims : tuple of int
    subsets : list of frozenset
        Every non-empty set of views, by increasing size.
    counts : ndarray of shape (M, M)
        Samples behind each block of ``cov``.
    psi : ndarray of shape (M,)
        Noise variances.
    min_snr : float
    subset_data : IncompleteData, optional
        For ``missing='subset'``: the rows observing all of ``U``.
    n_factor : float, default=1.0

    Returns
    -------
    k_of, ranks, contained : dict
        ``k(U)`` (with ``k(empty) = 0``), ``r_T`` and ``c(T)`` per set of views.

    Examples
    --------
    >>> import numpy as np
    >>> cov = np.eye(4) + np.outer([1, 1, 1, 1], [1, 1, 1, 1])  # one direction shared by A and B
    >>> subsets = [frozenset({0}), frozenset({1}), frozenset({0, 1})]
    >>> k, r, c = count_eigen(cov, (2, 2), subsets, np.full((2, 2), 10**9), np.ones(2),
    ...                       min_snr=0.0)
    >>> r[frozenset({0, 1})], r[frozenset({0})]
    (1, 0)
    """
    n_views = len(dims)
    off = block_offsets(dims)
    k_of: dict[frozenset[int], int] = {frozenset(): 0}
    ranks: dict[frozenset[int], int] = {}
    scale = 1.0 / np.sqrt(np.repeat(psi, dims))
    white = cov * np.outer(scale, scale)
    for u in subsets:
        rows = np.concatenate([np.arange(off[m], off[m + 1]) for m in sorted(u)])
        n_u = int(min(counts[i, j] for i in u for j in u))
        block = white[np.ix_(rows, rows)]
        if subset_data is not None:
            seen = np.all(subset_data.observed[:, sorted(u)], axis=1)
            if int(seen.sum()) >= 3:
                x = np.hstack([subset_data.Xs[m][seen] for m in sorted(u)]) * scale[rows]
                x = x - x.mean(axis=0)
                block = x.T @ x / (x.shape[0] - 1)
                n_u = max(int(seen.sum() * n_factor), 2)
        gamma = rows.size / max(n_u - 1, 1)
        thr = max(mp_edge(1.0, gamma), 1.0 + min_snr)
        vals = np.linalg.eigvalsh(block)
        k_of[u] = int(np.sum(vals > thr))
    full = frozenset(range(n_views))
    contained = {t: k_of[full] - k_of[full - t] for t in subsets}
    for t in subsets:  # increasing size
        below = sum(r for s, r in ranks.items() if s < t)
        ranks[t] = max(0, contained[t] - below)
    return k_of, ranks, contained


def count_shared(
    cov: NDArray, off, subsets, counts, *, view_rank: int, variance_fraction: float,
    min_corr: float,
) -> Counts:
    """Rank counting by shared directions (``method='correlation'``).

    ``s(T)``, the directions shared by all views of ``T`` (:func:`shared_counts`),
    is inverted top-down: ``r_T = max(0, s(T) - sum_{S > T} r_S)``.

    Parameters
    ----------
    cov : ndarray of shape (d, d)
    off : ndarray of shape (M + 1,)
        Block offsets.
    subsets : list of frozenset
        Every non-empty set of views, by increasing size.
    counts : ndarray of shape (M, M)
    view_rank, variance_fraction, min_corr
        See :func:`select_structure`.

    Returns
    -------
    k_of, ranks, contained : dict
        ``s(T)`` (with the empty set at 0), ``r_T``, and an empty ``contained``.

    Examples
    --------
    >>> import numpy as np
    >>> cov = np.eye(4) + 4 * np.outer([1, 0, 1, 0], [1, 0, 1, 0])
    >>> subsets = [frozenset({0}), frozenset({1}), frozenset({0, 1})]
    >>> k, r, _ = count_shared(cov, np.array([0, 2, 4]), subsets, np.full((2, 2), 10**6),
    ...                        view_rank=1, variance_fraction=0.5, min_corr=0.5)
    >>> r[frozenset({0, 1})]
    1
    """
    shared = shared_counts(cov, off, subsets, view_rank, variance_fraction, min_corr, counts)
    k_of: dict[frozenset[int], int] = {frozenset(): 0, **shared}
    ranks: dict[frozenset[int], int] = {}
    for t in reversed(subsets):  # decreasing size: s(T) = sum_{S >= T} r_S
        above = sum(r for s, r in ranks.items() if s > t)
        ranks[t] = max(0, shared[t] - above)
    return k_of, ranks, {}


def trim_ranks(
    ranks: dict[frozenset[int], int], dims
) -> tuple[dict[frozenset[int], int], list[str]]:
    """Lower block ranks until every view keeps ``k_m < d_m`` (room for noise).

    The block with the largest rank (the smallest block among ties) meeting an
    over-full view loses one rank at a time.

    Parameters
    ----------
    ranks : dict
        ``r_T`` per set of views (not modified).
    dims : tuple of int

    Returns
    -------
    ranks : dict
    trimmed : list of str
        The blocks (letters) that lost a rank, once per rank lost.

    Examples
    --------
    >>> r, t = trim_ranks({frozenset({0}): 2, frozenset({0, 1}): 1}, (2, 5))
    >>> r[frozenset({0})], r[frozenset({0, 1})], t
    (0, 1, ['A', 'A'])
    """
    ranks = dict(ranks)
    trimmed = []
    for m in range(len(dims)):
        while sum(r for s, r in ranks.items() if m in s) >= dims[m]:
            mine = [s for s in ranks if m in s and ranks[s] > 0]
            worst = max(mine, key=lambda s: (ranks[s], -len(s)))
            ranks[worst] -= 1
            trimmed.append(format_block(worst))
    return ranks, trimmed


def shared_counts(cov, off, subsets, view_rank, variance_fraction, min_corr, counts):
    """``s(T)``, the directions shared by all views of ``T`` (``method='correlation'``).

    Each view is reduced to its leading whitened principal components; ``s(T)``
    counts the eigenvalues of their correlation matrix on ``T`` above
    ``1 + (|T| - 1) rho`` (:func:`select_structure`).

    Returns
    -------
    dict
        ``s(T)`` per set of views.
    """
    view_rank = check_int(view_rank, "view_rank", minimum=1)
    variance_fraction = check_real(
        variance_fraction, "variance_fraction", low=0.0, high=1.0, low_open=True
    )
    min_corr = check_real(min_corr, "min_corr", low=0.0, high=1.0, low_open=True)
    bases = []
    for m in range(len(off) - 1):
        block = cov[off[m] : off[m + 1], off[m] : off[m + 1]]
        vals, vecs = np.linalg.eigh(block)
        vals, vecs = vals[::-1], vecs[:, ::-1]
        pos = vals > 1e-12 * max(float(vals[0]), np.finfo(float).tiny)
        share = np.cumsum(vals[pos]) / float(np.sum(vals[pos]))
        q = min(view_rank, int(np.searchsorted(share, variance_fraction - 1e-12)) + 1)
        q = min(q, int(pos.sum()))
        bases.append(vecs[:, :q] / np.sqrt(vals[:q]))
    sizes = [b.shape[1] for b in bases]
    big = np.zeros((off[-1], sum(sizes)))
    col = block_offsets(sizes)
    for m, b in enumerate(bases):
        big[off[m] : off[m + 1], col[m] : col[m + 1]] = b
    corr = big.T @ cov @ big
    out = {}
    for u in subsets:
        if len(u) == 1:
            out[u] = sizes[next(iter(u))]
            continue
        idx = np.concatenate([np.arange(col[m], col[m + 1]) for m in sorted(u)])
        vals = np.linalg.eigvalsh(corr[np.ix_(idx, idx)])
        n_u = int(min(counts[i, j] for i in u for j in u))
        c = min(max(sizes[m] for m in u) / max(n_u, 1), 0.5)
        rho = max(min_corr, 2.0 * np.sqrt(c * (1.0 - c)))
        out[u] = int(np.sum(vals > 1.0 + (len(u) - 1) * rho))
    return out


