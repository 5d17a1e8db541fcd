"""Random models for any design, and a finite-difference Jacobian rank."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import as_generator, check_dims, check_real
from ..model import HierarchicalFactorModel
from ..structure import Structure

__all__ = ["finite_difference_rank", "random_model"]


def random_model(
    structure: Structure | str,
    dims: Sequence[int],
    *,
    noise_var: float | Sequence[float] = 1.0,
    condition: float | None = None,
    rng: Any = None,
) -> HierarchicalFactorModel:
    """A generic model for any design: i.i.d. Gaussian free loadings.

    Unlike :meth:`HierarchicalFactorModel.random` this accepts every design,
    including ``d_m < r_S`` (a view with fewer rows than a block's rank), so it
    reaches the edge of the rank budget.

    Parameters
    ----------
    structure : Structure or str
    dims : sequence of int
    noise_var : float or sequence of float, default=1.0
    condition : float, optional
        If given (``>= 1``), the first block with ``r_S >= 2`` (else the first
        block, against the next) gets singular values spread geometrically from
        1 to ``1 / condition``: ``cond(W^S) = condition``. Large values give
        near-unidentifiable models with a known conditioning.
    rng : None, int, SeedSequence or Generator

    Returns
    -------
    HierarchicalFactorModel

    Examples
    --------
    >>> m = random_model("AB:3 A:1", (2, 4), rng=0)
    >>> m.loadings.shape
    (6, 4)
    >>> import numpy as np
    >>> m = random_model("AB:2 A:1", (3, 3), condition=1e4, rng=0)
    >>> w = m.loadings[:, :2]
    >>> bool(np.isclose(np.linalg.cond(w), 1e4))
    True
    """
    dims = check_dims(dims)
    structure = Structure.coerce(structure, len(dims))
    gen = as_generator(rng)
    mask = structure.mask(dims)
    w = np.where(mask, gen.standard_normal(mask.shape), 0.0)
    w /= np.sqrt(np.maximum(mask.sum(axis=1, keepdims=True), 1))
    if condition is not None:
        condition = check_real(condition, "condition", low=1.0)
        blocks = [b for b in structure.blocks if structure.rank_of(b) >= 2] or list(
            structure.blocks)
        b = blocks[0]
        cols = structure.columns(b)
        rows = mask[:, cols.start]
        sub = w[rows][:, cols]
        u, _, vt = np.linalg.svd(sub, full_matrices=False)
        sv = np.geomspace(1.0, 1.0 / condition, u.shape[1])
        w[np.ix_(rows, np.arange(cols.start, cols.stop))] = (u * sv) @ vt
    return HierarchicalFactorModel(dims, structure, w, noise_var)


def finite_difference_rank(
    model: HierarchicalFactorModel,
    *,
    noise: str = "scalar",
    step: float = 1e-6,
    rtol: float = 1e-6,
) -> int:
    """Numerical rank of the Jacobian of ``(W, noise) -> vech(Sigma)`` at ``model``.

    Central differences of :meth:`HierarchicalFactorModel.covariance` on every
    free loading and noise parameter, then the number of singular values above
    ``rtol`` times the largest. Independent of :mod:`hcl_stats.identifiability`
    (no analytic Jacobian), so it serves as a second method in tests.

    Parameters
    ----------
    model : HierarchicalFactorModel
    noise : {'scalar', 'per_view', 'known'}, default='scalar'
    step : float, default=1e-6
    rtol : float, default=1e-6

    Returns
    -------
    int

    Examples
    --------
    >>> m = random_model("AB:1 A:1", (3, 3), rng=0)
    >>> finite_difference_rank(m)
    10
    """
    dims, s = model.dims, model.structure
    w = np.asarray(model.loadings, dtype=float)
    nv0 = np.full(len(dims), float(np.mean(model.noise_var)))
    iu = np.triu_indices(sum(dims))

    def sigma(wv, nv):
        return HierarchicalFactorModel(dims, s, wv, nv).covariance()[iu]

    cols = []
    for i, c in np.argwhere(s.mask(dims)):
        wp, wm = w.copy(), w.copy()
        wp[i, c] += step
        wm[i, c] -= step
        cols.append((sigma(wp, nv0) - sigma(wm, nv0)) / (2 * step))
    if noise == "scalar":
        cols.append((sigma(w, nv0 + step) - sigma(w, nv0 - step)) / (2 * step))
    elif noise == "per_view":
        for m in range(len(dims)):
            e = np.zeros(len(dims))
            e[m] = step
            cols.append((sigma(w, nv0 + e) - sigma(w, nv0 - e)) / (2 * step))
    sv = np.linalg.svd(np.array(cols).T, compute_uv=False)
    return int(np.sum(sv > rtol * sv[0]))
