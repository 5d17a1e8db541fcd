"""Structure and rank selection: noise level, spectral edges, Schur-spectrum selector.

Every learner in :mod:`hcl_stats.estimators` that must decide which blocks exist
and with what rank compares eigenvalues of a denoised matrix with the edge of the
noise spectrum predicted by random-matrix theory:

* the noise variance is read off the bulk of the sample spectrum without knowing
  ``K`` (median of the bulk matched to the Marchenko-Pastur median);
* a ``p``-dimensional block of ``S_W = S - sigma^2 I`` built from ``n`` samples has
  pure-noise eigenvalues below ``sigma^2 ((1 + sqrt(p/n))^2 - 1)``, plus a
  Tracy-Widom margin; an eigenvalue above that edge is signal.

:class:`SchurSelect` applies this rule to the Schur complements of the
closed-form estimator (:func:`~hcl_stats.estimators.schur_loadings`), bottom-up
over every candidate subset, then refits on the selected structure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from .._linalg import block_offsets, top_eigh
from .._rmt import (
    debias_spikes,
    estimate_noise_var_mp,
    mp_median,
    noise_edge,
    noise_var_mp_of_spectrum,
)
from .._validation import check_choice, check_real
from ..exceptions import NoStructureError
from ..structure import Structure, format_block
from ._base import Estimator, Problem, RawFit, signal_covariance
from ._refit import finish_selection, refit_on  # noqa: F401  (refit_on: old home)

__all__ = [
    "REFITS",
    "SchurSelect",
    "estimate_noise_var_mp",
    "mp_median",
    "noise_edge",
    "select_structure_schur",
]

#: Estimators a learner may refit with on its selected structure.
REFITS = ("schur", "masked_gradient", "none")


def _candidates(n_views: int, structure: Structure | None) -> tuple[frozenset[int], ...]:
    from ._convex_core import candidate_blocks

    if structure is None:
        return candidate_blocks(n_views)
    return tuple(structure.blocks)


def _condition(s_w, s_rows, o_rows, noise_var, n_samples, cond_edge, d_s, d_o, psi=None):
    """Schur-condition ``S_W[S,S]`` on the signal subspace of ``S_W[O,O]``.

    Returns the conditioned matrix, ``k_O``, the variance of its leftover and the
    summed S-parts of the conditioned spikes (see :func:`select_structure_schur`).
    ``d_s`` and ``d_o`` are the data's sizes of ``S`` and ``O`` (larger than the
    row counts on the sample path). ``psi``: ``(tr Psi_S, diag Psi`` on the rows of
    ``s_w``), the noise subtracted per view, when it is not ``noise_var``
    everywhere.
    """
    a = s_w[np.ix_(s_rows, s_rows)]
    oo = s_w[np.ix_(o_rows, o_rows)]
    k_o = int(np.sum(np.linalg.eigvalsh(oo) > cond_edge))
    if not k_o:
        return a, 0, 0.0, 0.0
    o_top, o_vecs = top_eigh(oo, k_o)
    ell, c2 = debias_spikes(o_top, noise_var, d_o, n_samples)
    good = ell > 0
    ell, c2 = ell[good], c2[good]
    c = s_w[np.ix_(s_rows, o_rows)] @ (o_vecs[:, good] / np.sqrt(ell * c2))
    a = a - c @ c.T
    if n_samples is None:
        return a, k_o, 0.0, 0.0
    # S-part of each conditioned spike, less its noise part: given the data of O,
    # the noise of S_W[S,O] u is E_S^T X_O u / n, of covariance Psi_S mu / n with
    # mu = u^T S[O,O] u = u^T S_W[O,O] u + u^T Psi_O u, so its squared norm over
    # l c^2 has mean tr(Psi_S) mu / (n l c^2): d_S sigma^2 mu / (n l c^2) for one sigma^2
    if psi is None:
        noise_part = d_s * noise_var * (o_top[good] + noise_var)
    else:
        tr_s, psi_rows = psi
        u = o_vecs[:, good]
        noise_part = tr_s * (o_top[good] + psi_rows[o_rows] @ (u * u))
    s_part = np.clip(np.sum(c * c, axis=0) - noise_part / (n_samples * ell * c2), 0.0, None)
    var = float(np.sum(s_part**2 * (noise_var / ell + noise_var**2 / ell**2)) / n_samples)
    return a, k_o, var, float(np.sum(s_part))


def _with_complement(vals: NDArray, complement: list[tuple[float, int]], keep: int
                     ) -> NDArray:
    """The ``keep`` largest of ``vals`` and ``count`` copies of each complement value.

    ``vals`` are the leading eigenvalues of a reduced principal submatrix (all of
    them when fewer than ``keep``); the result is the leading eigenvalues of the
    full one, descending.

    Examples
    --------
    >>> _with_complement(np.array([5.0, -3.0]), [(-1.0, 4)], 3).tolist()
    [5.0, -1.0, -1.0]
    """
    extra = [np.full(min(count, keep), value) for value, count in complement if count]
    return np.sort(np.concatenate([vals, *extra]))[::-1][:keep]


def _project_out(a, s_rows, found, b):
    """Project the directions of the selected proper sub-blocks of ``b`` out of ``a``."""
    cols = []
    for t, (t_rows, vecs) in found.items():
        if t < b:
            e = np.zeros((s_rows.size, vecs.shape[1]))
            e[np.searchsorted(s_rows, t_rows)] = vecs
            cols.append(e)
    if not cols:
        return a, 0
    q, _ = np.linalg.qr(np.hstack(cols))
    a = a - q @ (q.T @ a)
    a = a - (a @ q) @ q.T
    return a, q.shape[1]


def select_structure_schur(
    s_w: NDArray[np.float64],
    dims: tuple[int, ...],
    noise_var: float,
    n_samples: int | None,
    *,
    candidates: tuple[frozenset[int], ...] | None = None,
    tw: float = 3.0,
    margin: float = 0.3,
    cross: float = 1.0,
    leftover: float = 2.0,
    condition_tw: float = 1.0,
    rel_tol: float = 1e-6,
    full_dims: tuple[int, ...] | None = None,
    complement_var: Any = None,
) -> tuple[Structure | None, dict[str, Any]]:
    """Select blocks and ranks from the spectra of Schur complements.

    For each candidate ``S`` in order of increasing ``|S|``, with ``O`` the views
    outside ``S``:

    1. *Conditioning.* ``k_O`` (the signal rank of ``S_W[O,O]``) is the number of
       its eigenvalues above the plain Marchenko-Pastur edge plus ``condition_tw``
       Tracy-Widom units (no ``margin``: an under-counted ``k_O`` leaves a block
       meeting ``O`` in ``A_S``, an over-counted one costs nothing, since
       directions below the BBP threshold get a zero spike and are skipped);
       ``A_S = S_W[S,S] - S_W[S,O] pinv_{k_O}(S_W[O,O]) S_W[O,S]`` with the
       debiased pseudo-inverse.
    2. *Sub-blocks.* The eigenvectors of every selected proper sub-block ``T`` of
       ``S`` are projected out of ``A_S`` (``q`` directions in all). Projection
       leaves a second-order residue ``l_T sin^2(theta)``; subtracting an
       estimated gram ``G_T`` left a first-order one ``+-l_T sin(theta)``, which
       counted spurious ranks at high signal-to-noise ratio.
    3. *Count.* ``r_S`` = the number of eigenvalues of the projected ``A_S``
       above ``noise_edge(d_S - q) + cross * sigma sqrt(L_sub d_S / n)
       + leftover * sd``. ``L_sub`` sums the spikes of the sub-blocks and the
       S-parts of the conditioned spikes (the signal-by-noise cross term of
       ``S - Sigma`` along the spikes that meet ``S``, a Frobenius bound;
       spikes of views outside ``S`` do not enter; the S-part of a spike with
       sample direction ``u`` on ``O`` is ``||c||^2 = ||S_W[S,O] u||^2 / (l c^2)``
       less its noise ``tr(Psi_S) mu / (n l c^2)``, ``mu = u^T S[O,O] u``);
       ``sd`` is the standard deviation of the conditioning leftover:
       the estimated pseudo-inverse along a conditioned spike ``l`` (on ``O``)
       has relative error ``~ sqrt((sigma^2 / l + sigma^4 / l^2) / n)``, so a
       block with S-part ``s`` leaves ``+- s`` times that along its S-part;
       ``sd^2`` sums ``s^2 (sigma^2 / l + sigma^4 / l^2) / n`` over the
       conditioned spikes. Earlier versions added ``sigma sqrt(L d_S / n)``
       with ``L`` summing *every* conditioned spike, including blocks that do
       not meet ``S``: that inflated the edge of specific blocks ~4x (a rank-2
       block of ``C`` at 3-20x its restricted edge counted as rank 1).

    At the population level the edges are ``rel_tol * ||S_W||``, and the rule is
    exact whenever, for every candidate ``S``, the loadings on ``O`` of the blocks
    meeting ``O`` have full column rank (docs/convex.md, Proposition 3), and the
    loadings of the blocks inside ``S`` have full column rank jointly.

    On the sample-space path (``full_dims`` given) ``s_w`` is the reduced
    ``S~ - Psi~`` of :mod:`hcl_stats.estimators._samples`, with view blocks of
    sizes ``dims = (r_1, ..., r_M)``. The principal view-submatrices of the full
    ``S_W`` then have the reduced eigenpairs (mapped by the row-space bases) and
    the eigenvalue ``-sigma_m^2`` on the ``d_m - r_m`` directions of view ``m``
    outside its row space, and the cross blocks are the reduced ones mapped by
    the bases. Every step above is therefore the full one: the same ``k_O``,
    edges and ranks, with the sizes ``d_S``, ``d_O`` of ``full_dims`` in every
    rule, and the complement's eigenvalues merged into the reported ones.

    Parameters
    ----------
    s_w : ndarray of shape (d, d)
        Denoised covariance ``S - sigma^2 I`` (reduced on the sample path).
    dims : tuple of int
        View sizes of ``s_w``.
    noise_var : float
        ``sigma^2`` of the edges.
    n_samples : int or None
        None: population level.
    candidates : tuple of frozenset, optional
        Blocks to score (default: every non-empty subset of views).
    tw, margin, cross, leftover, condition_tw, rel_tol : float
        The rule's constants (see above and :func:`noise_edge`).
    full_dims : tuple of int, optional
        The data's ``(d_1, ..., d_M)`` when ``s_w`` is reduced.
    complement_var : float or array_like of shape (M,), optional
        The noise variance ``psi_m`` subtracted from each view to form ``s_w``;
        default ``noise_var``. It gives the noise of the conditioned S-parts
        (``tr(Psi_S) mu``, see step 3) and, on the sample path, the complement's
        eigenvalues ``-psi_m``.

    Returns
    -------
    structure : Structure or None
        None if no block is selected.
    scores : dict
        Per candidate (letters): ``eigenvalues`` (leading eigenvalues of the
        projected ``A_S``), ``edge``, ``rank``, ``k_outside``, ``spike`` (the
        debiased leading spike, 0 if none), ``restricted_edge``
        (``sigma^2 sqrt((d_S - q) / n)``, the BBP detection edge of a spike in
        ``d_S - q`` dimensions; 0 at the population level).

    Examples
    --------
    From the population ``S_W = W W^T`` the true blocks and ranks are selected:

    >>> import hcl_stats as hs
    >>> from hcl_stats.estimators.selection import select_structure_schur
    >>> m = hs.HierarchicalFactorModel.random((4, 5), "AB:1 A:1 B:1", rng=0)
    >>> structure, *_ = select_structure_schur(m.loadings @ m.loadings.T, m.dims, 1.0,
    ...                                        None)
    >>> structure == m.structure
    True
    """
    n_views = len(dims)
    if candidates is None:
        candidates = _candidates(n_views, None)
    sizes = tuple(int(x) for x in (dims if full_dims is None else full_dims))
    comp_var = np.broadcast_to(np.asarray(
        noise_var if complement_var is None else complement_var, dtype=float), (n_views,))
    # one sigma^2 (to rounding: a mean of equal values can be an ulp off them): the
    # S-parts' noise is d_S sigma^2 mu, else tr(Psi_S) mu (see _condition)
    equal_noise = bool(np.all(np.abs(comp_var - noise_var) <= 1e-12 * abs(noise_var)))
    off = block_offsets(dims)
    rows = [np.arange(off[m], off[m + 1]) for m in range(n_views)]
    psi_rows = None if equal_noise else np.repeat(comp_var, dims)  # Psi on s_w's rows
    pop_tol = 0.0
    if n_samples is None:  # edges relative to ||S_W||_2 (no eigvalsh of S_W otherwise)
        scale = float(np.max(np.abs(np.linalg.eigvalsh(s_w)))) if s_w.size else 1.0
        if full_dims is not None:  # the complement's eigenvalues -sigma_m^2
            scale = max([scale, *(float(comp_var[m]) for m in range(n_views)
                                  if sizes[m] > dims[m])])
        pop_tol = rel_tol * max(scale, 1e-300)

    def edge(p: int, tw_: float = tw, margin_: float = margin) -> float:
        if n_samples is None:
            return pop_tol
        return noise_edge(noise_var, p, n_samples, tw=tw_, margin=margin_)

    found: dict[frozenset[int], tuple[NDArray, NDArray]] = {}
    scores: dict[str, Any] = {}
    sub_spike: dict[frozenset[int], float] = {}
    for b in sorted(candidates, key=lambda s: (len(s), sorted(s))):
        s_rows = np.concatenate([rows[m] for m in sorted(b)])
        outside = [m for m in range(n_views) if m not in b]
        d_s = sum(sizes[m] for m in b)
        a, k_o, var, l_meet = s_w[np.ix_(s_rows, s_rows)], 0, 0.0, 0.0
        if outside:
            o_rows = np.concatenate([rows[m] for m in outside])
            d_o = sum(sizes[m] for m in outside)
            psi = None if equal_noise else (
                float(sum(sizes[m] * comp_var[m] for m in b)), psi_rows)
            a, k_o, var, l_meet = _condition(
                s_w, s_rows, o_rows, noise_var, n_samples, edge(d_o, condition_tw, 0.0),
                d_s, d_o, psi,
            )
        a, q = _project_out(a, s_rows, found, b)
        a = (a + a.T) / 2.0
        p_eff = d_s - q
        thr = edge(p_eff)
        if n_samples is not None:
            l_sub = l_meet + sum(sub_spike[t] for t in found if t < b)
            thr += cross * np.sqrt(noise_var * l_sub * d_s / n_samples)
            thr += leftover * np.sqrt(var)
        n_top = min(a.shape[0], 12)
        vals, vecs = top_eigh(a, n_top)
        r = int(np.sum(vals > thr))
        if r == n_top and n_top < a.shape[0]:
            r = int(np.sum(np.linalg.eigvalsh(a) > thr))
            vals, vecs = top_eigh(a, min(r + 1, a.shape[0]))
        if full_dims is not None:  # the complement's -sigma_m^2 (below every edge)
            n_full = min(d_s, 12)  # as many values as the covariance path computes
            if r >= n_full and n_full < d_s:  # its recount with every eigenvalue
                n_full = min(r + 1, d_s)
            vals = _with_complement(
                vals, [(-comp_var[m], sizes[m] - dims[m]) for m in b], n_full)
        ell, _ = debias_spikes(vals[: max(r, 1)], noise_var, p_eff, n_samples)
        scores[format_block(b)] = {
            "eigenvalues": [float(v) for v in vals[: max(r + 2, 3)]],
            "edge": float(thr),
            "rank": r,
            "k_outside": k_o,
            "spike": float(ell[r - 1] if r else ell[0]),
            "restricted_edge": 0.0
            if n_samples is None
            else float(noise_var * np.sqrt(p_eff / n_samples)),
        }
        if r:
            found[b] = (s_rows, vecs[:, :r])
            sub_spike[b] = float(np.sum(np.clip(ell[:r], 0.0, None)))
    if not found:
        return None, scores
    blocks = tuple(found)
    ranks = tuple(found[b][1].shape[1] for b in blocks)
    return Structure(n_views, blocks, ranks), scores


def learner_noise(problem: Problem) -> float | NDArray:
    """Noise variance for a structure learner (``K`` unknown).

    The Marchenko-Pastur bulk rule of :func:`estimate_noise_var_mp`, on the full
    spectrum (:meth:`Problem.spectrum`: on the sample path, the reduced one plus
    zeros, so that it is the covariance path's value).
    """
    noise, n_samples = problem.noise, problem.n_samples
    if isinstance(noise, str):
        if noise == "per_view":
            return np.array(
                [noise_var_mp_of_spectrum(problem.spectrum(m), n_samples)
                 for m in range(len(problem.dims))]
            )
        return noise_var_mp_of_spectrum(problem.spectrum(), n_samples)
    if isinstance(noise, tuple):
        return np.asarray(noise, dtype=float)
    return float(noise)


def mp_noise(cov: NDArray, dims: tuple[int, ...], n_samples: int, *, per_view: bool = False,
             full_dims: tuple[int, ...] | None = None) -> NDArray:
    """Marchenko-Pastur bulk noise without ``K``, per view or one value repeated, ``(M,)``.

    :func:`noise_var_mp_of_spectrum` of the whole ``cov`` (or of each diagonal
    block). ``full_dims`` marks ``cov`` as the reduced covariance of the sample
    path: each spectrum is then the reduced one plus zeros.

    Examples
    --------
    >>> import numpy as np
    >>> mp_noise(np.diag([5.0, 2.0, 2.0, 2.0]), (2, 2), None, per_view=True).tolist()
    [2.0, 2.0]
    """
    from ._samples import full_spectrum

    sizes = dims if full_dims is None else full_dims
    if not per_view:
        vals = full_spectrum(np.linalg.eigvalsh(cov), sum(sizes))
        return np.full(len(dims), noise_var_mp_of_spectrum(vals, n_samples))
    off = block_offsets(dims)
    return np.array([
        noise_var_mp_of_spectrum(full_spectrum(
            np.linalg.eigvalsh(cov[off[m]:off[m + 1], off[m]:off[m + 1]]), sizes[m]),
            n_samples)
        for m in range(len(dims))
    ])


def schur_scores(
    cov: NDArray, dims: tuple[int, ...], n_samples: int, *, per_view: bool = False,
    candidates: tuple[frozenset[int], ...] | None = None,
    full_dims: tuple[int, ...] | None = None,
) -> tuple[dict[str, Any], float]:
    """Scores of :func:`select_structure_schur` on a covariance, with its ``sigma^2``.

    The noise is :func:`mp_noise` (no ``K`` needed), subtracted per view or as
    one value; the edges use its mean. ``full_dims``: ``cov`` is reduced (sample
    path). Used to explain a structure (the evidence table, the fallback scores
    of :func:`~hcl_stats.estimators.learn.learn_structure`).

    Returns
    -------
    scores : dict
        As :func:`select_structure_schur` returns them.
    sigma2 : float
    """
    noise = mp_noise(cov, dims, n_samples, per_view=per_view, full_dims=full_dims)
    used = noise if per_view else float(noise[0])
    s_w = signal_covariance(cov, dims, used)
    sigma2 = float(np.mean(noise))
    _, scores = select_structure_schur(s_w, dims, sigma2, n_samples, candidates=candidates,
                                       full_dims=full_dims, complement_var=used)
    return scores, sigma2


def reduced_sizes(problem: Problem, noise: Any) -> dict[str, Any]:
    """Noise and size arguments of :func:`select_structure_schur` for ``problem``.

    ``complement_var`` (the noise per view) always, and ``full_dims`` on the
    sample path.
    """
    full_dims = None if problem.reduction is None else problem.full_dims
    return {"full_dims": full_dims, "complement_var": noise}


def _no_block_error(name: str, scores: dict) -> NoStructureError:
    best = {k: v["eigenvalues"][:1] for k, v in scores.items()} if scores else {}
    return NoStructureError(
        f"the data support no shared structure: {name} selected no block (some "
        f"candidate's leading eigenvalue must exceed its noise edge); got leading "
        f"eigenvalues {best}. The signal is below the detection threshold (more "
        "samples or a smaller tw)."
    )


@dataclass(frozen=True, kw_only=True)
class SchurSelect(Estimator):
    """Fast structure/rank selector: Schur-complement spectra vs the noise edge.

    Selects the blocks and ranks with :func:`select_structure_schur` over every
    non-empty subset of views (or over the blocks of a given ``structure``, whose
    ranks are then ignored), then refits the loadings on the selected structure.

    Parameters
    ----------
    tw : float, default=3.0
        Margin above the Marchenko-Pastur edge, in Tracy-Widom units.
    margin : float, default=0.3
        Relative widening of the MP bulk; see :func:`noise_edge`.
    refit : {'schur', 'masked_gradient', 'none'}, default='schur'
        Estimator used on the selected structure; ``'none'`` keeps the selector's
        own factors (the joint Schur loadings).
    noise_rule : {'scalar', 'per_view'} or float, default='scalar'
        For selection ``'scalar'`` uses :func:`estimate_noise_var_mp` (``K`` is
        unknown); the refit then re-estimates it with the selected ``K``.

    Notes
    -----
    Deterministic; ``rng`` is ignored. ``diagnostics.extra`` holds
    ``selection_scores`` (per candidate: leading eigenvalues, edge, rank),
    ``selection_noise_var`` and ``refit``. Exact at the population level under the
    conditions of docs/convex.md, Proposition 3.

    Examples
    --------
    >>> import hcl_stats as hs
    >>> model = hs.HierarchicalFactorModel.random((4, 5, 6), "ABC:1 AB:1 C:2", rng=0)
    >>> fit = hs.estimators.SchurSelect().fit_covariance(model.covariance(), dims=model.dims)
    >>> str(fit.structure)
    'ABC:1 AB:1 C:2'
    """

    name: ClassVar[str] = "schur_select"
    learns_structure: ClassVar[bool] = True
    samples_path: ClassVar[bool] = True

    tw: float = 3.0
    margin: float = 0.3
    refit: str = "schur"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_real(self.tw, "tw", low=0.0)
        check_real(self.margin, "margin", low=0.0)
        check_choice(self.refit, "refit", REFITS)

    def _fit(self, problem: Problem, rng: np.random.Generator) -> RawFit:
        cov, dims, structure, n_samples = (
            problem.cov, problem.dims, problem.structure, problem.n_samples
        )
        noise = learner_noise(problem)
        s_w = signal_covariance(cov, dims, noise)
        sel_noise = float(np.mean(noise))
        selected, scores = select_structure_schur(
            s_w,
            dims,
            sel_noise,
            n_samples,
            candidates=_candidates(len(dims), structure),
            tw=self.tw,
            margin=self.margin,
            **reduced_sizes(problem, noise),
        )
        if selected is None:
            raise _no_block_error(type(self).__name__, scores)
        if structure is not None and structure.view_names is not None:
            selected = selected.with_names(structure.view_names)
        return finish_selection(self, problem, selected, scores, noise, rng)
