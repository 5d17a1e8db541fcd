"""Closed-form spectral estimators: the structure-blind baseline and Schur complements."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.linalg
from numpy.typing import NDArray

from .._linalg import block_offsets, canonical_signs, top_eigh, top_factor
from .._validation import check_choice
from ..exceptions import NotIdentifiableError, NumericalWarning, SolverError
from ..identifiability import require_schur_step
from ..structure import Structure, format_block
from ._base import Estimator, Problem, RawFit, check_positive_noise, signal_covariance
from ._cache import SpectralCache, cached_top_eigh
from ._noise import noise_rule_name

__all__ = ["NaivePCA", "SchurComplement", "schur_loadings"]

#: Accepted ``variant`` values of :class:`SchurComplement` (``'per_view'`` is an
#: alias of ``'view_diagonal'``).
VARIANTS = ("joint", "view_diagonal", "per_view", "paper")

#: Condition numbers above this trigger a NumericalWarning (about half of the
#: float64 digits are lost).
COND_WARN = 1e8


def _gap_condition(vals: NDArray, k: int, scale: float) -> float:
    """``scale / (lambda_k - max(lambda_{k+1}, 0))``; inf when the gap is not positive.

    The sensitivity of the top-``k`` eigenspace (Davis-Kahan) and of the truncated
    inverse is governed by this ratio.
    """
    nxt = max(float(vals[k]), 0.0) if vals.size > k else 0.0
    gap = float(vals[k - 1]) - nxt
    return scale / gap if gap > 0 else np.inf


def _warn_clipped(vals: NDArray, k: int, what: str) -> None:
    """Warn when some of the top-``k`` eigenvalues used for a factor are not positive."""
    n_pos = int(np.sum(vals[:k] > 0))
    if n_pos < k:
        warnings.warn(
            f"{what}: only {n_pos} of the top {k} eigenvalues are positive "
            f"(eigenvalues {', '.join(f'{v:.3g}' for v in vals[:k])}), so "
            f"{k - n_pos} loading column(s) are set to zero; the data show no signal "
            "at this rank (ranks too large, or noise_rule's variance too large).",
            NumericalWarning,
            stacklevel=4,
        )


@dataclass(frozen=True, kw_only=True)
class NaivePCA(Estimator):
    """Structure-blind baseline: top-``K`` factor of the denoised covariance.

    ``W = U_K diag(max(lambda_k - sigma^2, 0))^{1/2}`` from the top ``K`` eigenpairs
    of the sample covariance (equivalently of ``S_W = S - sigma^2 I``). Only
    ``K = structure.total_rank`` is taken from the structure; the loadings are dense.

    Parameters
    ----------
    noise_rule : {'scalar', 'per_view'} or float, default='scalar'
        See :class:`~hcl_stats.estimators.Estimator`.

    Notes
    -----
    Deterministic; ``rng`` is ignored. The result has ``structured=False``: its
    columns are identified only up to one global ``K x K`` rotation, so block-level
    metrics first split it into blocks without the truth
    (:func:`hcl_stats.metrics.assign_blocks`) and count its loadings outside each
    block's views as error; the oracle alternative (a global Procrustes rotation
    onto the truth) is only under ``alignment='oracle'`` / the ``*_oracle_aligned``
    study metrics. ``W W^T`` itself is identified without alignment.

    Examples
    --------
    >>> import hcl_stats as hs, numpy as np
    >>> model = hs.HierarchicalFactorModel.random((4, 5), "AB:1 A:1 B:1", rng=0)
    >>> fit = hs.estimators.NaivePCA().fit_covariance(
    ...     model.covariance(), dims=(4, 5), structure=model.structure)
    >>> bool(np.allclose(fit.loadings @ fit.loadings.T, model.signal_covariance()))
    True
    """

    name: ClassVar[str] = "naive"
    structured: ClassVar[bool] = False
    samples_path: ClassVar[bool] = True

    def _fit(self, problem: Problem, rng: np.random.Generator) -> RawFit:
        cov, structure = problem.cov, problem.structure
        k, d = structure.total_rank, problem.n_features
        if problem.noise == "scalar" and d > k:
            # One top-K eigendecomposition serves both sigma^2 (from the trace and
            # the top-K eigenvalues) and the factor: S - sigma^2 I has the same
            # eigenvectors, with eigenvalues shifted by sigma^2.
            vals, vecs = cached_top_eigh(problem.cache, cov, k)
            noise = (float(np.trace(cov)) - float(np.sum(vals))) / (d - k)
            check_positive_noise(noise, cov, "sigma^2")
            w = vecs * np.sqrt(np.clip(vals - noise, 0.0, None))
            extra = {"noise_rule": noise_rule_name(problem.noise)}
            return RawFit(w, noise, structure, extra=extra)
        noise = problem.noise_variance()
        s_w = signal_covariance(cov, problem.dims, noise)
        k = structure.total_rank
        vals, vecs = cached_top_eigh(problem.cache, s_w, k)
        _warn_clipped(vals, k, "NaivePCA: signal covariance S - sigma^2 I")
        w = vecs * np.sqrt(np.clip(vals, 0.0, None))
        extra = {"noise_rule": noise_rule_name(problem.noise)}
        return RawFit(w, noise, structure, extra=extra)


def schur_loadings(
    s_w: NDArray[np.float64],
    dims: tuple[int, ...],
    structure: Structure,
    *,
    variant: str = "joint",
    strict: bool = True,
    s_sq_extra: float = 0.0,
    cache: SpectralCache | None = None,
    factor: tuple[NDArray[np.float64], float] | None = None,
) -> tuple[NDArray[np.float64], dict[str, list[float]]]:
    """Bottom-up Schur-complement loadings from a denoised covariance.

    For each block ``S`` in order of increasing ``|S|`` let ``O`` be the views
    outside ``S`` and ``k_O = sum_{T meets O} r_T``. Form

        A_S = S_W[S,S] - S_W[S,O] pinv_{k_O}(S_W[O,O]) S_W[O,S]
              - sum_{T proper subset of S} W_hat^T W_hat^T^T,

    and take its top-``r_S`` factor: jointly over all views of ``S``
    (``variant='joint'``, coherent across views) or separately on each view's
    diagonal block of that same ``A_S`` (``variant='view_diagonal'``, alias
    ``'per_view'``; this package's per-view simplification, *not* the official
    code's rule). ``variant='paper'`` is the official code's rule, a different
    recursion: see :mod:`hcl_stats.estimators._paper_schur`.

    Parameters
    ----------
    s_w : ndarray of shape (d, d)
        Denoised covariance.
    dims : tuple of int
    structure : Structure
    variant : {'joint', 'view_diagonal', 'per_view', 'paper'}
    strict : bool, default=True
        Refuse a block whose Schur step is not exact (the generic column rank of
        the loadings it conditions on is below ``k_O``; see
        :func:`hcl_stats.identifiability.schur_rank`). ``False`` only requires
        ``d_O >= k_O`` and returns an inexact start (used by MaskedGradient).
    s_sq_extra : float, default=0.0
        Added to ``||s_w||_F^2`` in the condition numbers of the warnings: the
        complement term of a reduced ``s_w`` (sample-space path).
    cache : SpectralCache, optional
        Memoises the whole recursion.
    factor : (ndarray of shape (n, d), float), optional
        ``(Z, sigma^2)`` with ``s_w = Z^T Z - sigma^2 I`` (sample-space path, one
        noise variance). Where a view subset has more coordinates than ``Z`` has
        rows, its eigenpairs are then taken in the ``n``-dimensional space of
        ``Z`` (``variant='joint'``): the same loadings up to rounding.

    Returns
    -------
    loadings : ndarray of shape (d, K)
    spectra : dict
        ``str(block) -> leading eigenvalues of A_S`` (``r_S + 1`` of them where
        available), for diagnostics and rank selection.

    Warns
    -----
    NumericalWarning
        When a step is near-unidentifiable: the rank-``k_O`` truncated inverse of
        ``S_W[O,O]`` or the top-``r_S`` eigenspace of ``A_S`` has a condition number
        ``||S_W||_F / (lambda_k - max(lambda_{k+1}, 0))`` above ``1e8``, or fewer than
        ``r_S`` eigenvalues of ``A_S`` are positive (columns are then zero). The
        message gives the condition number.

    Examples
    --------
    A population-level Schur fit reproduces the Gram ``W W^T`` of the truth:

    >>> import numpy as np, hcl_stats as hs
    >>> from hcl_stats.estimators import schur_loadings
    >>> m = hs.HierarchicalFactorModel.random((3, 4, 5), "ABC:1 AB:1 C:1", rng=0)
    >>> s_w = m.loadings @ m.loadings.T
    >>> w, spectra = schur_loadings(s_w, m.dims, m.structure)
    >>> w.shape, bool(np.allclose(w @ w.T, s_w))
    ((12, 3), True)
    >>> sorted(spectra)
    ['AB', 'ABC', 'C']
    """
    variant = check_choice(variant, "variant", VARIANTS)
    if variant == "paper":
        from ._paper_schur import paper_schur_loadings

        return paper_schur_loadings(s_w, dims, structure)
    if cache is not None:
        # the truncation ranks are the only use of `strict`: checking them first
        # raises what the recursion would raise, and equal ranks mean equal work
        k_os = tuple(
            _schur_k_o(structure, dims, b, int(sum(dims[m] for m in range(len(dims))
                                                  if m not in b)), strict)
            for b in sorted(structure.blocks, key=len) if len(b) < len(dims)
        )
        return cache.memo(
            "schur_loadings", (s_w,),
            (tuple(dims), structure, variant, k_os, s_sq_extra, factor is not None),
            lambda: schur_loadings(s_w, dims, structure, variant=variant, strict=strict,
                                   s_sq_extra=s_sq_extra, factor=factor),
        )
    off = block_offsets(dims)
    rows = [np.arange(off[m], off[m + 1]) for m in range(len(dims))]
    w = np.zeros((s_w.shape[0], structure.total_rank))
    spectra: dict[str, list[float]] = {}
    norm = (float(np.linalg.norm(s_w)) if not s_sq_extra
            else float(np.sqrt(np.linalg.norm(s_w) ** 2 + s_sq_extra)))
    scale = max(norm, np.finfo(float).tiny)
    # exactly symmetric (a no-op on a symmetric input: (x + x) / 2 == x), so that
    # every sub-block is read through its transpose without a transposing copy
    s_w = (s_w + s_w.T) / 2.0
    # every BLAS/LAPACK call of this loop is scipy's (the GEMM below as well): numpy
    # and scipy load separate OpenBLAS copies whose idle workers spin, so mixing the
    # two libraries in a loop makes their thread pools fight (_linalg.one_blas_thread)
    if variant != "joint":
        factor = None
    for b in sorted(structure.blocks, key=len):
        s_rows = np.concatenate([rows[m] for m in sorted(b)])
        s_sl = [slice(off[m], off[m + 1]) for m in sorted(b)]
        outside = [m for m in range(len(dims)) if m not in b]
        downdate = []  # columns L with A_S = S_W[S,S] - L L^T
        if outside:
            o_sl = [slice(off[m], off[m + 1]) for m in outside]
            d_o = int(sum(dims[m] for m in outside))
            k_o = _schur_k_o(structure, dims, b, d_o, strict)
            o_vals, column = _conditioning(s_w, s_sl, o_sl, k_o, d_o, factor)
            cond = _gap_condition(o_vals, k_o, scale) if k_o else 0.0
            if cond > COND_WARN:
                warnings.warn(
                    f"block {format_block(b)}: the rank-{k_o} truncated inverse "
                    f"of S_W over the views outside it has condition number "
                    f"{cond:.3g} > {COND_WARN:.0e} (eigenvalue {o_vals[k_o - 1]:.3g} "
                    f"at rank {k_o}, next {o_vals[k_o] if o_vals.size > k_o else 0.0:.3g}, "
                    f"||S_W||_F = {scale:.3g}); the loadings of those views on the "
                    "blocks they share are nearly rank-deficient, so the block is "
                    "near-unidentifiable and its estimate unreliable.",
                    NumericalWarning,
                    stacklevel=4,
                )
            downdate.append(column)
        downdate += [w[s_rows, structure.columns(t)] for t in structure.blocks if t < b]
        r = structure.rank_of(b)
        a, (vals, vecs) = _schur_top(s_w, s_sl, downdate, r, variant, factor)
        cols = structure.columns(b)
        spectra[format_block(b)] = [float(v) for v in vals]
        _warn_clipped(vals, r, f"block {format_block(b)}: Schur complement A_S")
        cond = _gap_condition(vals, r, scale)
        if np.all(vals[:r] > 0) and cond > COND_WARN:
            warnings.warn(
                f"block {format_block(b)}: the top-{r} eigenspace of its Schur complement "
                f"has condition number {cond:.3g} > {COND_WARN:.0e} (eigenvalue "
                f"{vals[r - 1]:.3g} at rank {r}, next "
                f"{vals[r] if vals.size > r else 0.0:.3g}, ||S_W||_F = {scale:.3g}); "
                "the block's singular values are tiny or its eigengap is small, so "
                "W^S is near-unidentifiable.",
                NumericalWarning,
                stacklevel=4,
            )
        if variant == "joint":
            w[s_rows, cols] = vecs[:, :r] * np.sqrt(np.clip(vals[:r], 0.0, None))
        else:
            local = 0
            for m in sorted(b):
                if r > dims[m]:
                    raise NotIdentifiableError(
                        f"rank of block {format_block(b)} must be <= d_m = {dims[m]} for "
                        f"every view m in it with variant='per_view'; got r_S = {r} "
                        f"for view {chr(ord('A') + m)} with variant={variant!r}. Use "
                        "variant='joint'."
                    )
                idx = np.arange(local, local + dims[m])
                w[rows[m], cols] = top_factor(a[np.ix_(idx, idx)], r)
                local += dims[m]
    return w, spectra


def _columns(sl: list[slice]) -> NDArray[np.intp]:
    return np.concatenate([np.arange(x.start, x.stop) for x in sl])


def _conditioning(s_w, s_sl, o_sl, k_o: int, d_o: int, factor) -> tuple[NDArray, NDArray]:
    """Top ``min(k_O + 1, d_O)`` eigenvalues of ``S_W[O,O]`` and ``S_W[S,O] B``.

    ``B B^T`` is the rank-``k_O`` pseudo-inverse of ``S_W[O,O]`` (one
    eigendecomposition serves it and the gap check). With ``factor = (Z, sigma^2)``
    and ``d_O`` above the ``n`` rows of ``Z``, the eigenpairs come from the
    ``n x n`` Gram ``Z_O Z_O^T = U diag(mu) U^T``: ``S_W[O,O]`` has eigenvalues
    ``mu - sigma^2`` on ``Z_O^T U diag(mu)^(-1/2)`` and ``-sigma^2`` elsewhere,
    and ``S_W[S,O] B = Z_S^T U diag(sqrt(mu / (mu - sigma^2)))`` on the positive
    ones.
    """
    k = min(k_o + 1, d_o)
    if factor is not None and d_o > factor[0].shape[0]:
        z, shift = factor
        z_o = z[:, _columns(o_sl)]
        mu, u = top_eigh(z_o @ z_o.T, min(k, z.shape[0]), overwrite=True)
        o_vals = np.concatenate([mu - shift, np.full(k - mu.size, -shift)])
        # k_O may exceed n: the eigenvalues beyond the n of the Gram are -sigma^2,
        # whose columns of B are zero (as on the dense route) and are left out
        m = min(k_o, mu.size)
        top = o_vals[:m]
        ratio = np.zeros_like(top)
        ratio[top > 0] = np.sqrt(mu[:m][top > 0] / top[top > 0])
        return o_vals, z[:, _columns(s_sl)].T @ (u[:, :m] * ratio)
    o_vals, o_vecs = _top_eigh_of(lambda: _sym_block(s_w, o_sl, o_sl), k)
    top = o_vals[:k_o]
    inv = np.zeros_like(top)
    inv[top > 0] = 1.0 / np.sqrt(top[top > 0])
    half = o_vecs[:, :k_o] * inv  # B B^T = rank-k_O pseudo-inverse of S_W[O,O]
    # S_W[S,O] B through scipy's BLAS, laid out as numpy's `@` would call it
    # (bit-identical to `_sym_block(...) @ half` with one thread)
    return o_vals, scipy.linalg.blas.dgemm(
        1.0, half.T, _sym_block(s_w, s_sl, o_sl), trans_b=1).T


def _schur_top(s_w, s_sl, downdate: list[NDArray], r: int, variant: str, factor):
    """``A_S = S_W[S,S] - L L^T`` and its top ``min(r + 1, d_S)`` eigenpairs.

    ``A_S`` is returned as its lower triangle for ``variant='view_diagonal'``,
    which needs it, and as None otherwise. With ``factor = (Z, sigma^2)`` and
    ``n + c < d_S`` (``c`` columns in ``L``), ``A_S + sigma^2 I = G^T J G`` with
    ``G = [Z_S; L^T]`` and ``J = diag(I_n, -I_c)``; the thin QR ``G^T = Q R``
    gives its non-zero eigenpairs from the ``(n + c)``-square ``R J R^T``. When
    one of the wanted eigenvalues of ``R J R^T`` is negative, the complement's
    eigenvalue ``-sigma^2`` interleaves, and the dense route is taken instead.
    """
    d_s = sum(x.stop - x.start for x in s_sl)
    k = min(r + 1, d_s)
    parts = [x for x in downdate if x.shape[1]]
    c = sum(x.shape[1] for x in parts)
    if factor is not None and factor[0].shape[0] + c < d_s:
        z, shift = factor
        n = z.shape[0]
        g_t = np.concatenate([z[:, _columns(s_sl)].T, *parts], axis=1)
        q, rr = scipy.linalg.qr(g_t, mode="economic", check_finite=False)
        signs = np.concatenate([np.ones(n), -np.ones(c)])
        core = (rr * signs) @ rr.T
        mu, y = top_eigh((core + core.T) / 2.0, min(k, n + c), overwrite=True)
        if mu.size == k and mu[-1] >= 0.0:
            return None, (mu - shift, canonical_signs(q @ y))
    if variant != "joint":
        a = _downdate_lower(_sym_block(s_w, s_sl, s_sl), downdate)
        return a, top_eigh(a, k)
    return None, _top_eigh_of(
        lambda: _downdate_lower(_sym_block(s_w, s_sl, s_sl), downdate), k)


def _top_eigh_of(build, k: int) -> tuple[NDArray, NDArray]:
    """``top_eigh`` of the fresh matrix ``build()``, letting LAPACK overwrite it.

    LAPACK's subset driver can return fewer than ``k`` eigenpairs when the
    ``k``-th eigenvalue sits in a cluster of equal ones (a rank-deficient block:
    the repeated ``-sigma^2``); ``top_eigh`` then needs the matrix, which the
    overwrite destroyed, so it is built again and decomposed without overwrite.
    """
    try:
        return top_eigh(build(), k, overwrite=True)
    except SolverError:
        return top_eigh(build(), k)


def _sym_block(s_w: NDArray, rows: list[slice], cols: list[slice]) -> NDArray:
    """Fortran-ordered copy of ``s_w[rows][:, cols]`` for an exactly symmetric ``s_w``.

    Gathered as the C-ordered ``s_w[cols][:, rows]`` and transposed, which is the
    same matrix by symmetry: no transposing copy (LAPACK and BLAS read it in place).
    """
    return np.concatenate([np.concatenate([s_w[c, r] for r in rows], axis=1)
                           for c in cols], axis=0).T


def _downdate_lower(a: NDArray, parts: list[NDArray]) -> NDArray:
    """``a - L L^T`` on the lower triangle of the Fortran-ordered ``a`` (BLAS ``syrk``).

    ``L`` is the column-wise concatenation of ``parts`` (each ``(p, k_i)``). ``a``
    is overwritten; its strict upper triangle is left as it was.
    """
    parts = [x for x in parts if x.shape[1]]
    if not parts:
        return a
    low = np.asfortranarray(np.concatenate(parts, axis=1))
    return scipy.linalg.blas.dsyrk(-1.0, low, beta=1.0, c=a, lower=1, overwrite_c=1)


def _schur_k_o(structure: Structure, dims, b, d_o: int, strict: bool) -> int:
    if strict:
        return require_schur_step(structure, dims, b)
    k_o = sum(r for t, r in zip(structure.blocks, structure.ranks, strict=True)
              if not t <= b)
    if k_o > d_o:
        raise NotIdentifiableError(
            f"block {format_block(b)}: the views outside it have d_O = {d_o} < k_O = "
            f"{k_o} (total rank of the blocks they load on), so the Schur complement "
            "cannot isolate the block. The model may still be identifiable (see "
            "hcl_stats.check_identifiable, or 'hcl-stats check-identifiable'); the "
            "'masked_multistart' estimator (--estimator masked_multistart) does not "
            "need the Schur route."
        )
    return k_o



@dataclass(frozen=True, kw_only=True)
class SchurComplement(Estimator):
    """Closed-form hierarchical Schur-complement estimator (paper.md §3, step 3).

    Works bottom-up from the specific blocks to the global block. For block ``S``
    the covariance of the views in ``S`` is conditioned on the views outside ``S``
    (a Schur complement with a rank-``k_O`` truncated pseudo-inverse), the Grams of
    the already-estimated proper sub-blocks are subtracted, and the top-``r_S``
    factor of what remains estimates ``W^S``.

    Parameters
    ----------
    variant : {'joint', 'view_diagonal', 'per_view', 'paper'}, default='joint'
        ``'joint'`` factors the whole ``(S, S)`` Schur complement at once, so the
        views of ``S`` share one rotation and the cross-view blocks
        ``W_m^S W_{m'}^S^T`` are estimated. ``'view_diagonal'`` (alias
        ``'per_view'``) computes the same Schur complement and factors each view's
        diagonal block of it separately, which leaves the rotations of the views
        in ``S`` incoherent (so the sample path and the covariance path agree on
        each view's ``W_m^S W_m^S^T`` but may give the cross-view blocks opposite
        signs: each path fixes the signs in its own coordinates); it is this
        package's simplification, not the official code's rule (the two agree on
        the specific blocks only). ``'paper'``
        reproduces the
        published initialiser (``HCL_SVD`` of the authors' public code) to
        round-off: level-wise deflation (the pairwise step conditions on the
        outside view with that view's specific part removed, at rank ``3r`` on
        the paper's design, not on the raw block at ``4r``), per-view factors, and
        eigenpairs of largest magnitude (``svds(which='LM')``), so a large
        negative eigenvalue of a noisy Schur complement is kept; at most three
        views (see :mod:`hcl_stats.estimators._paper_schur`).
    noise_rule : {'scalar', 'per_view'} or float, default='scalar'
        See :class:`~hcl_stats.estimators.Estimator`.

    Notes
    -----
    Deterministic; ``rng`` is ignored. Identification: each ``W^S`` up to a right
    ``r_S x r_S`` rotation (shared across the views of ``S`` for ``'joint'``).
    At the population level the joint variant is exact whenever the sufficient
    conditions of :func:`hcl_stats.check_identifiable` hold
    (docs/identifiability.md, Theorem 2).

    References
    ----------
    Li, Yu and Zhou (2026), "Hierarchical Contrastive Learning for Multimodal
    Data", arXiv:2604.05462 (algorithm as reconstructed in paper.md §3 and §8).

    Examples
    --------
    >>> import hcl_stats as hs
    >>> model = hs.HierarchicalFactorModel.random((4, 5, 6), "all:1", rng=1)
    >>> fit = hs.estimators.SchurComplement().fit_covariance(
    ...     model.covariance(), dims=model.dims, structure=model.structure)
    >>> max(hs.metrics.structure_gram_errors(fit, model, relative=True).values()) < 1e-8
    True
    """

    name: ClassVar[str] = "schur"
    balances_views: ClassVar[bool] = True
    samples_path: ClassVar[bool] = True
    variant: str = "joint"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.variant, "variant", VARIANTS)

    def _fit(self, problem: Problem, rng: np.random.Generator) -> RawFit:
        noise = problem.noise_variance()
        s_w = signal_covariance(problem.cov, problem.dims, noise)
        factor = (None if problem.reduction is None
                  else problem.reduction.factor_of(problem.cov, noise))
        w, spectra = schur_loadings(s_w, problem.dims, problem.structure,
                                    variant=self.variant,
                                    s_sq_extra=problem.complement_fro2(noise),
                                    cache=problem.cache, factor=factor)
        return RawFit(
            w,
            noise,
            problem.structure,
            extra={
                "noise_rule": noise_rule_name(problem.noise),
                "variant": self.variant,
                "schur_spectra": spectra,
            },
        )

