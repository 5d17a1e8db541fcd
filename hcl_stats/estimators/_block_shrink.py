"""Shrinkage of the blocks of a refined fit, with per-view weights by default.

:func:`shrink_blocks` treats each block of a stationary point of the masked loss
as the top factor of a ``d_S``-dimensional spiked covariance and applies the
optimal weights of docs/shrinkage.md §2 (§5.3). :func:`view_weighted_factor` is
its per-view refinement (§5.6):

In the spiked model of a block ``S`` (noise ``I`` after whitening, dimension
``d_S``), a sample eigenvector is ``v_k = c_k u_k + s_k xi_k`` with ``xi_k`` a unit
vector orthogonal to the signal subspace and, by the rotation invariance of the
noise, uniformly distributed there. Its noise part therefore spreads over the
views in proportion to their dimensions, ``d_m / d_S``, while the signal part
``u_k`` follows the loadings, which may sit mostly in a few views. One weight per
component (``eta_k = ell_k c_k^2``) cannot tell the two apart; one ``r x r``
matrix per view can. :func:`view_weighted_factor` gives the minimiser of the
limiting Gram loss over factors of the form ``F_m = V_m B_m``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .. import _rmt
from .._linalg import block_offsets
from ..model import noise_diagonal
from ..structure import Structure, format_block

__all__ = ["shrink_blocks", "view_weighted_factor"]


def view_weighted_factor(
    vecs: NDArray[np.float64],
    spikes: NDArray[np.float64],
    cos_sq: NDArray[np.float64],
    view_rows: list[slice],
    shares: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Factor ``F_m = V_m Q_m^+ C P_m L^{1/2}`` of a block, view by view.

    With ``V`` the block's sample eigenvectors (detected components only),
    ``Q_m = V_m^T V_m``, ``C = diag(c_k)``, ``L = diag(ell_k)`` and ``q_m`` the view's
    share of the block's dimension, the signal Gram of view ``m`` in the
    eigenbasis is estimated by ``P_m = C^{-1} (Q_m - q_m (I - C^2)) C^{-1}``, its
    eigenvalues clipped to ``[0, 1]`` (``sum_m P_m = I``, so ``0 <= P_m <= I``; near
    the detection edge ``c -> 0`` the unclipped estimate would grow like ``1/c^2``). When every view carries
    the signal in proportion to its size (``P_m = q_m I``) this is the
    per-component weight ``F = V C L^{1/2}`` of Donoho, Gavish and Johnstone.

    Parameters
    ----------
    vecs : ndarray of shape (p, k)
        Orthonormal sample eigenvectors of the block (whitened coordinates).
    spikes : ndarray of shape (k,)
        Debiased spikes ``ell_k > 0``.
    cos_sq : ndarray of shape (k,)
        Limiting squared cosines ``c_k^2 > 0``.
    view_rows : list of slice
        The rows of ``vecs`` of each view of the block.
    shares : ndarray of shape (len(view_rows),)
        ``q_m = d_m / d_S`` (the data's dimensions, also on the sample path).

    Returns
    -------
    factor : ndarray of shape (p, k)
    signal_share : ndarray of shape (len(view_rows),)
        ``tr(P_m) / k``: the estimated share of the block's signal in each view.

    Examples
    --------
    One spike ``ell = 4`` with ``c^2 = 1/2``. The second view holds 80% of the
    block's dimension, so 80% of the eigenvector's noise part (``0.8 s^2 = 0.4``)
    is expected there; its part ``0.6^2 = 0.36`` is no larger, so it is estimated
    to carry no signal and gets no loading; the first view's share
    ``(0.64 - 0.1) / 0.5 = 1.08`` is clipped to 1 (all of it). The per-component
    weight would give ``sqrt(ell c^2) v = (1.13, 0, 0.85, 0)``:

    >>> import numpy as np
    >>> from hcl_stats.estimators._block_shrink import view_weighted_factor
    >>> v = np.array([[0.8], [0.0], [0.6], [0.0]])   # views (rows 0-1), (rows 2-3)
    >>> f, share = view_weighted_factor(v, np.array([4.0]), np.array([0.5]),
    ...                                 [slice(0, 2), slice(2, 4)], np.array([0.2, 0.8]))
    >>> np.round(f.ravel(), 3).tolist(), np.round(share, 2).tolist()
    ([1.768, 0.0, 0.0, 0.0], [1.0, 0.0])
    """
    c = np.sqrt(cos_sq)
    noise_part = 1.0 - cos_sq
    root_spikes = np.sqrt(spikes)
    out = np.zeros_like(vecs)
    share = np.zeros(len(view_rows))
    k = vecs.shape[1]
    for i, (rows, q) in enumerate(zip(view_rows, shares, strict=True)):
        v_m = vecs[rows]
        q_m = v_m.T @ v_m
        p_m = (q_m - q * np.diag(noise_part)) / c[:, None] / c[None, :]
        vals, basis = np.linalg.eigh((p_m + p_m.T) / 2.0)
        p_m = (basis * np.clip(vals, 0.0, 1.0)) @ basis.T  # 0 <= P_m <= I
        p_m = _within_view_part(p_m, q_m, c)
        share[i] = float(np.trace(p_m)) / k
        out[rows] = v_m @ (np.linalg.pinv(q_m, hermitian=True) @ (c[:, None] * p_m)) * root_spikes
    return out, share


def _within_view_part(p_m: NDArray[np.float64], q_m: NDArray[np.float64],
                      c: NDArray[np.float64]) -> NDArray[np.float64]:
    """Adjust ``P_m`` so that ``Q_m^{+1/2} C P_m C Q_m^{+1/2} <= I``, as in the limit.

    In the limit ``Q_m = C P_m C + q_m S^2 >= C P_m C``, and the unclipped estimate
    ``C P_m C = Q_m - q_m S^2`` satisfies it exactly; raising its negative
    eigenvalues to zero can break it. Where it is broken, ``Q_m^+`` in the factor
    amplifies without bound (a view with ``d_m`` close to the rank and one
    component near the edge: a Gram 22.9 against ``||S|| = 6.7``). With the
    inequality and ``0 <= P_m <= I``, ``F_m^T F_m <= L^{1/2} P_m L^{1/2} <= L``
    (docs/shrinkage.md §5.6). The eigenvalues of ``A = Q_m^{+1/2} C P_m C
    Q_m^{+1/2}`` are clipped at 1, ``C P_m C`` becomes ``Q_m^{1/2} A Q_m^{1/2}``, and
    the new ``P_m``'s eigenvalues are clipped to ``[0, 1]``. With ``Q_m`` nonsingular
    this only lowers ``P_m``; with ``Q_m`` singular (``d_m < k``) it also drops the
    part outside ``Q_m``'s range and can raise ``P_m``. Returns ``p_m`` itself when
    ``A <= I`` already.
    """
    w, u = np.linalg.eigh(q_m)
    top = float(w[-1]) if w.size else 0.0
    pos = w > _RCOND * top
    if top <= 0.0 or not np.any(pos):
        return np.zeros_like(p_m)
    half_inv = u[:, pos] / np.sqrt(w[pos])
    t_m = c[:, None] * p_m * c[None, :]
    a = half_inv.T @ t_m @ half_inv
    vals, basis = np.linalg.eigh((a + a.T) / 2.0)
    if vals[-1] <= 1.0 + _LOEWNER_SLACK:
        return p_m
    half = u[:, pos] * np.sqrt(w[pos])
    t_m = half @ ((basis * np.clip(vals, 0.0, 1.0)) @ basis.T) @ half.T
    # on a singular Q_m the projection onto its range can raise P_m above I: clip
    # again, which only lowers C P_m C, so both bounds hold
    vals, basis = np.linalg.eigh(t_m / c[:, None] / c[None, :])
    return (basis * np.clip(vals, 0.0, 1.0)) @ basis.T


#: eigenvalues of ``Q_m`` at or below this share of the largest are its null space
#: (the default ``rcond`` of ``numpy.linalg.pinv``, which the factor uses)
_RCOND = 1e-15
#: round-off allowance before ``Q_m^{+1/2} C P_m C Q_m^{+1/2} <= I`` counts as broken
_LOEWNER_SLACK = 1e-12


def shrink_blocks(
    loadings: NDArray[np.float64],
    dims: tuple[int, ...],
    structure: Structure,
    noise_var: float | NDArray[np.float64],
    n_samples: int | None,
    full_dims: tuple[int, ...] | None = None,
    view_weights: bool = True,
) -> tuple[NDArray[np.float64], dict[str, dict[str, object]]]:
    """Shrink every block ``W^S`` as the top factor of a ``d_S``-dimensional PCA.

    In whitened coordinates (``Psi^{-1/2} W``) the eigenvalues ``mu_k`` of
    ``W^S W^S^T`` estimate ``lambda_k - 1`` of an effective covariance of dimension
    ``d_S = sum_{m in S} d_m``; they are replaced by the optimal weights
    ``eta(mu_k + 1)`` of :func:`~hcl_stats.estimators.shrink_eigenvalues` with ``gamma_S = d_S / n``
    (zero at or below the edge ``(1 + sqrt(gamma_S))^2``) and mapped back. With
    ``view_weights`` (the default), the detected components of a block of several
    views are then weighted view by view (:func:`view_weighted_factor`) instead.

    Parameters
    ----------
    loadings : ndarray of shape (d, K)
        Unshrunk structured loadings (e.g. a stationary point of the masked loss).
    dims : tuple of int
    structure : Structure
    noise_var : float or ndarray of shape (M,)
        Noise variance(s) used for whitening.
    n_samples : int or None
        None leaves the Grams unchanged (population level).
    full_dims : tuple of int, optional
        The data's ``(d_1, ..., d_M)`` for ``gamma = d_S / n`` when ``loadings``
        are in reduced coordinates of sizes ``dims`` (sample-space path).
    view_weights : bool, default=True
        In blocks of several views, replace the per-component weights by one
        ``r x r`` matrix per view (:func:`view_weighted_factor`,
        docs/shrinkage.md §5.6): a view whose share of the eigenvectors is mostly
        noise is shrunk more. ``False`` keeps one weight per component. Identical
        to ``False`` when ``n_samples`` is None.

    Returns
    -------
    loadings : ndarray of shape (d, K)
    info : dict
        Per block: ``gamma``, ``edge``, ``eigenvalues`` (``mu + 1``), ``weights``
        (the per-component ``eta``; with view weights the factor of a block of
        several views is :func:`view_weighted_factor`'s, not ``eta``'s) and the kept
        ``rank``; with ``view_weights``, ``view_signal_share`` (the estimated share
        of the block's signal in each of its views).

    Examples
    --------
    >>> import numpy as np, hcl_stats as hs
    >>> from hcl_stats.estimators.shrinkage import shrink_blocks
    >>> m = hs.HierarchicalFactorModel.random((4, 5), "AB:1 A:1 B:1", rng=0)
    >>> g = m.loadings @ m.loadings.T
    >>> w, _ = shrink_blocks(m.loadings, m.dims, m.structure, 1.0, None)
    >>> bool(np.allclose(w @ w.T, g))  # population: unchanged
    True
    >>> w, _ = shrink_blocks(m.loadings, m.dims, m.structure, 1.0, 50)
    >>> bool(np.linalg.norm(w @ w.T) < np.linalg.norm(g))  # n = 50: shrunk
    True
    """
    root = np.sqrt(noise_diagonal(noise_var, dims))
    off = block_offsets(dims)
    out = np.zeros_like(loadings)
    info: dict[str, dict[str, object]] = {}
    for b in structure.blocks:
        rows = np.concatenate([np.arange(off[m], off[m + 1]) for m in sorted(b)])
        cols = structure.columns(b)
        wb = loadings[rows, cols] / root[rows, None]
        u, s, _ = np.linalg.svd(wb, full_matrices=False)
        lam = s**2 + 1.0
        full = dims if full_dims is None else full_dims
        d_s = sum(full[m] for m in b)
        gamma = 0.0 if n_samples is None else d_s / n_samples
        if gamma == 0.0:
            eta = s**2
        else:  # the optimal weights ell c^2 of docs/shrinkage.md §2 (0 below the edge)
            ell = _rmt.spike_from_eigenvalue(lam, 1.0, gamma)
            cos_sq = _rmt.spike_cosine_sq(ell, 1.0, gamma)
            eta = ell * cos_sq
        factor = u * np.sqrt(eta)
        block_info: dict[str, object] = {}
        if view_weights and gamma > 0.0 and len(b) > 1 and np.any(eta > 0):
            det = eta > 0
            ends = block_offsets([dims[m] for m in sorted(b)])
            factor[:, det], share = view_weighted_factor(
                u[:, det], ell[det], cos_sq[det],
                [slice(a, z) for a, z in zip(ends[:-1], ends[1:], strict=True)],
                np.array([full[m] for m in sorted(b)], dtype=float) / d_s)
            block_info["view_signal_share"] = {format_block({m}): float(v)
                                               for m, v in zip(sorted(b), share, strict=True)}
        out[rows, cols] = factor * root[rows, None]
        info[format_block(b)] = {
            "gamma": gamma,
            "edge": _rmt.mp_edge(1.0, gamma),
            "eigenvalues": [float(v) for v in lam],
            "weights": [float(v) for v in eta],
            "rank": int(np.sum(eta > 0)),
            **block_info,
        }
    return out, info
