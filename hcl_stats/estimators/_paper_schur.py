"""The published initialiser of Li, Yu and Zhou (2026), reproduced (private).

:func:`paper_schur_loadings` is ``SchurComplement(variant="paper")``. It follows
the rule of the authors' public simulation code (``HCL_SVD`` in
``Simulation/HCL.py`` of github.com/yujunhan111/HCL_public, read, not copied),
which differs from the package's joint rule in three ways:

* **Level-wise deflation.** Blocks are processed by level ``|S| = 1, 2, ...``.
  A block of level ``l`` works on ``C_l = S_W - sum_{|T| < l} W_hat^T W_hat^T^T``,
  the denoised covariance with every lower-level block already removed, so its
  pairwise step conditions on the outside view *with that view's specific part
  removed*, at rank ``k = sum_{T meets O, |T| >= l} r_T`` (``3r`` on the paper's
  design), where the joint rule conditions on the raw ``S_W[O, O]`` at rank
  ``sum_{T meets O} r_T`` (``4r``) and subtracts the sub-blocks afterwards.
* **Per view.** Each view ``m`` of ``S`` gets its own factor of
  ``A_m = C_l[m, m] - C_l[m, O] pinv_k(C_l[O, O]) C_l[O, m]``, so the rotations of
  the views of ``S`` are not coherent (cross-view Grams are not estimated).
* **Largest magnitude.** Both the truncated pseudo-inverse and the factor take
  the eigenpairs of largest ``|lambda|`` (``svds(which='LM')`` of a symmetric
  matrix), so a large *negative* eigenvalue of a noisy ``A_m`` is kept, with
  loading ``u sqrt(|lambda|)``; the joint rule takes the largest ``lambda`` and
  clips negative ones to zero.

The official code handles three views with all seven blocks of one rank ``r``;
here any structure on at most three views is accepted (for ``M <= 3`` the
level-wise rule uses only view-diagonal blocks of the deflated lower levels,
whose cross-view Grams are never read).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ..exceptions import NotIdentifiableError, ValidationError
from ..structure import Structure, format_block

__all__ = ["paper_schur_loadings"]


def _by_magnitude(a: NDArray, k: int) -> tuple[NDArray, NDArray]:
    """Eigenpairs of the symmetric ``a`` with the ``k`` largest ``|lambda|``."""
    vals, vecs = np.linalg.eigh((a + a.T) / 2.0)
    idx = np.argsort(-np.abs(vals), kind="stable")[:k]
    return vals[idx], vecs[:, idx]



def paper_schur_loadings(
    s_w: NDArray[np.float64], dims: tuple[int, ...], structure: Structure
) -> tuple[NDArray[np.float64], dict[str, list[float]]]:
    """Loadings of the published (official-code) initialiser.

    Parameters
    ----------
    s_w : ndarray of shape (d, d)
        Denoised covariance ``S - sigma_hat^2 I``.
    dims : tuple of int
        At most three views.
    structure : Structure

    Returns
    -------
    loadings : ndarray of shape (d, K)
        Block-supported, columns in the structure's canonical order.
    spectra : dict
        ``"<view>|<block>" -> |lambda|`` of the kept eigenpairs of ``A_m``
        (descending), for diagnostics.

    Raises
    ------
    ValidationError
        If there are more than three views.
    NotIdentifiableError
        If a conditioning rank exceeds the outside views' dimension or a block's
        rank exceeds a view's dimension.
    """
    if len(dims) > 3:
        raise ValidationError(
            f"variant='paper' reproduces the official code, which is written for at "
            f"most three views; got M = {len(dims)}. Use variant='joint'."
        )
    off = np.concatenate([[0], np.cumsum(dims)])
    rows = [np.arange(off[m], off[m + 1]) for m in range(len(dims))]
    w = np.zeros((s_w.shape[0], structure.total_rank))
    cur = (np.asarray(s_w, dtype=float) + np.asarray(s_w, dtype=float).T) / 2.0
    spectra: dict[str, list[float]] = {}
    for level in sorted({len(b) for b in structure.blocks}):
        blocks = [b for b in structure.blocks if len(b) == level]
        for b in blocks:
            r = structure.rank_of(b)
            cols = structure.columns(b)
            outside = [m for m in range(len(dims)) if m not in b]
            proj = None
            if outside:
                o_rows = np.concatenate([rows[m] for m in outside])
                o_set = frozenset(outside)
                k = sum(rt for t, rt in zip(structure.blocks, structure.ranks, strict=True)
                        if len(t) >= level and t & o_set)
                if k > o_rows.size:
                    raise NotIdentifiableError(
                        f"block {format_block(b)}: variant='paper' conditions on the views "
                        f"outside it at rank k = {k} > d_O = {o_rows.size}."
                    )
                vals, vecs = _by_magnitude(cur[np.ix_(o_rows, o_rows)], k)
                inv = np.zeros_like(vals)
                nz = vals != 0
                inv[nz] = 1.0 / vals[nz]
                proj = (o_rows, vecs, inv)
            for m in sorted(b):
                if r > dims[m]:
                    raise NotIdentifiableError(
                        f"rank of block {format_block(b)} must be <= d_m = {dims[m]} for "
                        f"variant='paper'; got r_S = {r} for view {chr(ord('A') + m)}."
                    )
                a = cur[np.ix_(rows[m], rows[m])]
                if proj is not None:
                    o_rows, vecs, inv = proj
                    c = cur[np.ix_(rows[m], o_rows)] @ vecs
                    a = a - (c * inv) @ c.T
                vals_a, vecs_a = _by_magnitude(a, r)
                w[rows[m], cols] = vecs_a * np.sqrt(np.abs(vals_a))
                spectra[f"{chr(ord('A') + m)}|{format_block(b)}"] = [
                    float(v) for v in np.abs(vals_a)
                ]
        for b in blocks:  # deflate the whole level before the next one
            wb = w[:, structure.columns(b)]
            cur = cur - wb @ wb.T
    return w, spectra
