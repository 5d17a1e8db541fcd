"""The structures the package can fit, and how a learned structure is made one.

:func:`fittable_violation` names the first condition of the Schur refit that a
structure breaks (generic conditions of :func:`hcl_stats.check_identifiable`, a
noise direction per view, and, on sample data, the signal directions each Schur
step conditions on). :func:`make_fittable` lowers the weakest ranks until none
fails; every structure learner applies it (:func:`fittable_or_raise`), so a
learner never returns a structure its refit cannot fit (docs/structure_learning.md).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._linalg import block_offsets
from .._rmt import noise_edge
from .._validation import check_choice
from ..exceptions import NoStructureError
from ..structure import Structure, block_key, format_block
from ._base import Problem, signal_covariance

__all__ = ["COND_LIMIT", "fittable_or_raise", "fittable_violation", "make_fittable"]

_log = logging.getLogger(__name__)

#: Condition-number limit of the Schur refit's truncated inverses (its warning
#: threshold, :data:`hcl_stats.estimators.spectral.COND_WARN`).
COND_LIMIT = 1e8


def fittable_violation(
    structure: Structure,
    dims: tuple[int, ...],
    *,
    noise: str = "scalar",
    n_samples: int | None = None,
    signal: Any = None,
    reduction: Any = None,
) -> tuple[str, tuple[frozenset[int], ...]] | None:
    """The first condition of the Schur refit that ``structure`` breaks, or None.

    The conditions are those under which :func:`hcl_stats.check_identifiable`
    lists the Schur-route estimators (``schur``, ``masked_gradient``,
    ``masked_shrink``) as exact, i.e. the space of structures every refit of the
    package can fit:

    * ``block_rank``: ``r_S <= d_S``;
    * ``noise_rank_gap``: ``d > K`` (scalar noise) or ``d_m > k_m`` for every view
      (per-view noise);
    * ``n >= K + 2`` when ``n_samples`` is given;
    * ``schur_matching``: for every block ``S``, the views outside it have
      generic full column rank ``k_O`` on the blocks meeting them
      (:func:`hcl_stats.identifiability.schur_rank`);
    * with ``signal`` and ``n_samples`` (sample data): for
      every block ``S``, ``S_W[O,O]`` has at least ``k_O`` eigenvalues above
      its Marchenko-Pastur edge plus one Tracy-Widom unit (the count the Schur
      selector conditions on). The generic conditions say the Schur step can
      isolate ``S``; this one says the sample shows the ``k_O`` directions that
      its truncated inverse needs (else that inverse meets eigenvalues at or
      below zero), with a gap ``lambda_{k_O} - max(lambda_{k_O + 1}, 0)`` above
      ``||S_W||_F / 1e8`` (the refit's condition-number limit).

    Parameters
    ----------
    structure : Structure
    dims : tuple of int
        ``(d_1, ..., d_M)``.
    noise : {'scalar', 'per_view'}, default='scalar'
    n_samples : int, optional
    signal : callable, optional
        ``signal(structure) -> (S_W, sigma^2)``: the signal covariance
        ``S - sigma^2 I`` with the noise the refit estimates for ``structure``,
        and the ``sigma^2`` of the edges.
    reduction : Reduction, optional
        Set when ``signal`` returns the reduced ``S~ - Psi~`` of the sample-space
        path (view blocks of sizes ``reduction.dims``); ``dims`` stay the data's.
        Its view-submatrices have the reduced eigenvalues plus ``-sigma_m^2``
        (module :mod:`hcl_stats.estimators._samples`), so the count above the
        edge and the gap are the full matrix's; the edges use ``dims``.

    Returns
    -------
    (reason, blocks) or None
        ``reason`` in words; ``blocks``: the blocks whose ranks cause the failure
        (lowering one of them is a step towards a fittable structure).

    Examples
    --------
    >>> import hcl_stats as hs
    >>> from hcl_stats.estimators.fittable import fittable_violation
    >>> fittable_violation(hs.Structure.parse("AB:1 A:1 B:1"), (3, 3)) is None
    True
    >>> reason, blocks = fittable_violation(hs.Structure.parse("AB:1 A:1 B:3"), (3, 3))
    >>> sorted(hs.structure.format_block(b) for b in blocks)
    ['AB', 'B']
    """
    from .._jacobian import schur_rank

    dims = tuple(int(d) for d in dims)
    blocks, k = structure.blocks, structure.total_rank
    for b, r in zip(blocks, structure.ranks, strict=True):
        d_s = sum(dims[m] for m in b)
        if r > d_s:
            return f"block {format_block(b)} has r_S = {r} > d_S = {d_s}", (b,)
    if noise == "per_view":
        for m, d_m in enumerate(dims):
            if d_m <= structure.view_rank(m):
                return (f"view {chr(ord('A') + m)} has d_m = {d_m} <= k_m = "
                        f"{structure.view_rank(m)}", tuple(b for b in blocks if m in b))
    elif sum(dims) <= k:
        return f"d = {sum(dims)} <= K = {k}", blocks
    if n_samples is not None and n_samples < k + 2:
        return f"n = {n_samples} < K + 2 = {k + 2}", blocks
    for b in blocks:
        rank, k_o = schur_rank(structure, dims, b)
        if rank < k_o:
            return (f"block {format_block(b)}: the views outside it have generic rank "
                    f"{rank} < k_O = {k_o} on the blocks meeting them",
                    _hall_blocks(structure, dims, b))
    if signal is not None and n_samples is not None:
        return _sample_violation(structure, dims, signal, n_samples, reduction)
    return None


def _sample_violation(structure: Structure, dims, signal, n_samples: int, reduction=None):
    """The sample condition of :func:`fittable_violation` (``k_O`` visible in ``S_W``)."""
    s_w, noise = signal(structure)
    s_w, noise_var = np.asarray(s_w, dtype=float), float(np.mean(noise))
    fro2 = float(np.linalg.norm(s_w)) ** 2
    if reduction is not None:  # ||S_W||_F^2 of the complement, sum_m sigma_m^4 (d_m - r_m)
        per_view = np.broadcast_to(np.asarray(noise, dtype=float), (len(dims),))
        fro2 += reduction.complement_fro2(per_view)
    off = block_offsets(dims if reduction is None else reduction.dims)
    scale = max(float(np.sqrt(fro2)), np.finfo(float).tiny)
    spectra: dict[tuple[int, ...], tuple[NDArray, float]] = {}
    for b in structure.blocks:
        outside = tuple(m for m in range(len(dims)) if m not in b)
        meets = tuple(t for t in structure.blocks if not t.isdisjoint(outside))
        if not meets:
            continue
        k_o = sum(structure.rank_of(t) for t in meets)
        if outside not in spectra:
            rows = np.concatenate([np.arange(off[m], off[m + 1]) for m in outside])
            vals = np.linalg.eigvalsh(s_w[np.ix_(rows, rows)])[::-1]
            d_o = sum(dims[m] for m in outside)  # the data's (rows.size when not reduced)
            spectra[outside] = (vals, noise_edge(noise_var, d_o, n_samples,
                                                 tw=1.0, margin=0.0))
        vals, edge = spectra[outside]
        have = int(np.sum(vals > edge))
        if have < k_o:
            return (f"block {format_block(b)}: S_W over the views outside it has {have} "
                    f"eigenvalues above the noise edge, fewer than k_O = {k_o}", meets)
        gap = vals[k_o - 1] - max(float(vals[k_o]) if vals.size > k_o else 0.0, 0.0)
        if gap * COND_LIMIT < scale:
            return (f"block {format_block(b)}: the rank-{k_o} truncated inverse of S_W "
                    f"over the views outside it would have condition number "
                    f"{scale / max(gap, 1e-300):.3g} > {COND_LIMIT:.0e}", meets)
    return None


def _hall_blocks(structure: Structure, dims, b) -> tuple[frozenset[int], ...]:
    """Blocks confined (outside ``b``) to views with fewer rows than their ranks."""
    import itertools

    outside = [m for m in range(len(dims)) if m not in b]
    meets = [t for t in structure.blocks if not t.isdisjoint(outside)]
    for size in range(1, len(outside) + 1):
        for views in itertools.combinations(outside, size):
            ts = [t for t in meets if (t - b) <= set(views)]
            if sum(structure.rank_of(t) for t in ts) > sum(dims[m] for m in views):
                return tuple(ts)
    return tuple(meets)  # pragma: no cover - Hall's theorem gives a witness


def _margins(scores: dict | None) -> dict[str, list[float]]:
    """Per block (letters): ``eigenvalue_i / edge`` of the Schur selector's scores."""
    if not scores:
        return {}
    if "schur" in scores and isinstance(scores["schur"], dict):
        scores = scores["schur"]
    out = {}
    for key, v in scores.items():
        if isinstance(v, dict) and "eigenvalues" in v and v.get("edge", 0) > 0:
            out[key] = [float(x) / float(v["edge"]) for x in v["eigenvalues"]]
    return out


def make_fittable(
    structure: Structure | None,
    dims: tuple[int, ...],
    *,
    noise: str = "per_view",
    n_samples: int | None = None,
    scores: dict | None = None,
    signal: Any = None,
    reduction: Any = None,
) -> tuple[Structure | None, tuple[str, ...]]:
    """Lower ranks of ``structure`` until the refit can fit it (:func:`fittable_violation`).

    While a condition fails, the rank of one block among those that cause the
    failure is lowered by one (a block of rank 1 is dropped). The block chosen is
    the one whose last counted direction has the smallest ratio
    ``eigenvalue / edge`` in the Schur selector's ``scores`` (if given), else the
    block of largest rank, the block of fewest views first among ties (specific
    ranks are the ones real-data residuals inflate). Each step lowers ``K``, so
    the loop ends; the empty structure is returned as None.

    Parameters
    ----------
    structure : Structure or None
    dims : tuple of int
    noise : {'scalar', 'per_view'}, default='per_view'
        The noise-gap condition. Learners use ``'per_view'`` whatever their noise
        model: every view keeps a noise direction, ``d_m > k_m`` (as rank
        counting's :func:`~hcl_stats.estimators.rank_counting.trim_ranks` does).
        With ``k_m = d_m`` every direction of view ``m`` is signal, and the
        Schur refit's truncated inverse over that view meets eigenvalues of
        ``S_m - sigma^2 I`` at or below zero on sample data (breast cancer,
        standardised: condition number ``inf`` for block ``BC``); the generic
        conditions hold there, the sample ones do not.
    n_samples : int, optional
    scores : dict, optional
        ``selection_scores`` of a learner (per block letters: ``eigenvalues``,
        ``edge``).
    signal : callable, optional
        ``signal(structure) -> (S - sigma^2 I, sigma^2)`` on sample data: adds the
        sample condition of :func:`fittable_violation` (needs ``n_samples``).
    reduction : Reduction, optional
        ``signal`` is reduced (sample-space path); see :func:`fittable_violation`.

    Returns
    -------
    structure : Structure or None
        A fittable structure (None if no block survives).
    changes : tuple of str
        One entry per lowered rank, ``'C:9->8 (reason)'``.

    Examples
    --------
    >>> import hcl_stats as hs
    >>> from hcl_stats.estimators.fittable import make_fittable
    >>> s, changes = make_fittable(hs.Structure.parse("ABC:3 AB:2 C:9"), (10, 10, 10))
    >>> str(s)  # C keeps a noise direction: k_C = 3 + 6 < d_C = 10
    'ABC:3 AB:2 C:6'
    >>> changes[0]
    'C:9->8 (view C has d_m = 10 <= k_m = 12)'
    >>> str(make_fittable(hs.Structure.parse("ABC:3 AB:2 C:9"), (10, 10, 10),
    ...                   noise="scalar")[0])  # generic conditions only
    'ABC:3 AB:2 C:7'
    """
    noise = check_choice(noise, "noise", ("scalar", "per_view"))
    margins = _margins(scores)
    changes: list[str] = []
    s = structure
    while s is not None:
        bad = fittable_violation(s, dims, noise=noise, n_samples=n_samples, signal=signal,
                                 reduction=reduction)
        if bad is None:
            break
        reason, cands = bad

        def key(b, _s=s):
            r, name = _s.rank_of(b), format_block(b)
            ratios = margins.get(name)
            # no score: unknown strength; beyond the scored directions: below the edge
            weak = np.inf if ratios is None else ratios[r - 1] if len(ratios) >= r else 0.0
            return (weak, -r, len(b), block_key(b))

        victim = min(cands, key=key)
        r = s.rank_of(victim)
        changes.append(f"{format_block(victim)}:{r}->{r - 1} ({reason})")
        keep = [(b, q if b != victim else q - 1) for b, q in zip(s.blocks, s.ranks, strict=True)]
        keep = [(b, q) for b, q in keep if q > 0]
        s = (Structure(s.n_views, [b for b, _ in keep], [q for _, q in keep], s.view_names)
             if keep else None)
    return s, tuple(changes)


def fittable_or_raise(
    est: Any, problem: Problem, selected: Structure, scores: dict | None
) -> tuple[Structure, tuple[str, ...]]:
    """:func:`make_fittable` on a learner's selection; raise if nothing is left.

    Returns the fittable structure and the changes; raises
    :class:`~hcl_stats.exceptions.NoStructureError` if no block survives.

    Examples
    --------
    >>> import hcl_stats as hs
    >>> m = hs.HierarchicalFactorModel.random((8, 12, 15), "ABC:2 AB:1 C:1",
    ...                                       singular_values=(2, 3), rng=0)
    >>> fit = hs.estimators.SchurSelect().fit(m.sample(2000, rng=1))
    >>> fit.diagnostics.extra["fittable_changes"]
    []
    """
    def signal(structure: Structure):
        noise = problem.noise_variance(structure)
        return signal_covariance(problem.cov, problem.dims, noise), noise

    fitted, changes = make_fittable(selected, problem.full_dims,
                                    n_samples=problem.n_samples, scores=scores,
                                    signal=signal, reduction=problem.reduction)
    if fitted is None:
        raise NoStructureError(
            f"the data support no shared structure that {type(est).__name__} can fit: "
            f"it selected {selected}, and lowering ranks until the Schur refit can fit "
            f"it left no block ({'; '.join(changes)})."
        )
    if changes:
        _log.info("%s: selected %s, lowered to %s so that the refit can fit it: %s",
                  type(est).__name__, selected, fitted, "; ".join(changes))
    return fitted, changes
