"""Rotation-invariant error metrics and structure-recovery scores (pure functions).

Loadings are identified only up to ``W^S -> W^S Q_S`` with one orthogonal ``Q_S``
per block, shared by the views of ``S``. Every metric here is invariant to that
ambiguity in both arguments:

* Gram errors compare ``W_m^S W_m^S^T`` (per view), ``W^S W^S^T`` (per block, with
  the cross-view blocks) or ``W W^T`` (overall);
* :func:`procrustes_errors` minimises over ``Q_S`` explicitly;
* :func:`sin_theta` compares column spaces.

Arguments ``estimate`` and ``truth`` are :class:`~hcl_stats.results.FitResult` or
:class:`~hcl_stats.model.HierarchicalFactorModel` (anything with ``loadings``,
``structure`` and ``dims``). Blocks present in only one argument are compared with
an all-zero block in the other.

Structure-blind estimates
-------------------------
A structure-blind estimate (``structured=False``, e.g.
:class:`~hcl_stats.estimators.NaivePCA`) has no identified blocks. By default
(``alignment='data'``) the block-level metrics split it into blocks without the
truth, by :func:`assign_blocks`: the Schur-complement recursion is run on the
fit's own rank-``K`` signal covariance ``W_hat W_hat^T`` with the fit's own
(user-given) structure, and ``W_hat`` is rotated by one ``K x K`` Procrustes
rotation onto the result. The assigned block ``W_hat^S`` keeps its rows on the
views outside ``S``; the truth is zero there, so those loadings count as error
(:func:`block_gram_errors` reports them under extra keys ``(m, S)`` with ``m``
not in ``S``; the structure, Procrustes and sin-theta errors use all ``d`` rows).
``alignment='oracle'`` instead rotates the fit onto the truth with one global
Procrustes rotation and drops the rows outside each block: an oracle step that
favours the structure-blind baseline, reported only under names ending in
``_oracle_aligned``. For structured estimates both alignments coincide.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._linalg import block_offsets, procrustes
from ._validation import short_repr
from .exceptions import ValidationError
from .structure import Structure

__all__ = [
    "assign_blocks",
    "block_gram_errors",
    "overall_gram_error",
    "procrustes_errors",
    "rank_recovery",
    "sin_theta",
    "structure_gram_errors",
    "support_scores",
]

BlockKey = tuple[int, frozenset[int]]


ALIGNMENTS = ("data", "oracle")


def _check_alignment(alignment: str) -> str:
    if alignment not in ALIGNMENTS:
        raise ValidationError(
            f"alignment must be one of {ALIGNMENTS}; got {alignment!r}."
        )
    return alignment


def assign_blocks(estimate: Any, structure: Structure | str | None = None) -> NDArray:
    """Split a structure-blind fit into blocks without using the truth.

    Runs the joint Schur-complement recursion
    (:func:`hcl_stats.estimators.schur_loadings`, non-strict) on the fit's own
    rank-``K`` signal covariance ``W_hat W_hat^T`` (its fitted covariance minus its
    own ``sigma_hat^2``) with the given structure, giving block-supported loadings
    ``V``, and returns ``W_hat Q`` with ``Q = argmin_Q ||W_hat Q - V||_F`` over
    orthogonal ``K x K`` matrices. Column block ``S`` of the result is the fit's
    share of block ``S``; unlike ``V`` it keeps its rows outside ``S``'s views,
    which the metrics count as error.

    Parameters
    ----------
    estimate : FitResult or HierarchicalFactorModel
        Anything with ``loadings`` of shape ``(d, K_hat)``, ``structure`` and
        ``dims``.
    structure : Structure or str, optional
        The user-given structure; default ``estimate.structure`` (the structure
        the estimator was given; an input, not the truth).

    Returns
    -------
    ndarray of shape (d, K)
        ``K = structure.total_rank``; columns in the structure's canonical block
        order (zero-padded when ``K_hat < K``).

    Raises
    ------
    NotIdentifiableError
        If the views outside some block have fewer coordinates than the total rank
        of the blocks they load on (the recursion cannot isolate the block).

    Notes
    -----
    Depends on ``W_hat`` only through ``W_hat W_hat^T`` (hence invariant to any
    ``K x K`` rotation of the fit) and reads no truth. At the population level a
    structure-blind fit ``W Q_0`` of an identifiable model is mapped back to
    ``W`` up to one rotation per block, so every block error is zero.

    Examples
    --------
    >>> import hcl_stats as hs, numpy as np
    >>> model = hs.HierarchicalFactorModel.random((4, 5, 6), "all:1", rng=0)
    >>> fit = hs.estimators.NaivePCA().fit_covariance(
    ...     model.covariance(), dims=model.dims, structure=model.structure)
    >>> w = hs.metrics.assign_blocks(fit)
    >>> bool(np.all(np.abs(w[~model.structure.mask(model.dims)]) < 1e-8))
    True
    """
    import warnings

    from .estimators.spectral import schur_loadings

    _check_fitlike(estimate, "estimate")
    dims = tuple(int(d) for d in estimate.dims)
    structure = Structure.coerce(
        estimate.structure if structure is None else structure, len(dims)
    )
    w = np.asarray(estimate.loadings, dtype=float)
    k = structure.total_rank
    with warnings.catch_warnings():
        # a scoring step, not a fit: its clipped-eigenvalue/conditioning warnings
        # say nothing about the estimator
        warnings.simplefilter("ignore")
        v, _ = schur_loadings(w @ w.T, dims, structure, strict=False)
    kk = max(w.shape[1], k)
    wp = _pad(w, kk)
    out = wp @ procrustes(wp, _pad(v, kk))
    return out[:, :k]


class _Blocks:
    """Loadings split into blocks ``S -> W^S`` (all ``d`` rows)."""

    def __init__(
        self, obj: Any, reference: Any | None = None, alignment: str = "data"
    ) -> None:
        self.dims = tuple(int(d) for d in obj.dims)
        self.structure: Structure = obj.structure
        w = np.asarray(obj.loadings, dtype=float)
        self.dense = not getattr(obj, "structured", True)
        if self.dense and alignment == "data":
            w = assign_blocks(obj)
        elif self.dense:
            if reference is None:
                raise ValidationError("a structure-blind estimate needs a reference.")
            ref = np.asarray(reference.loadings, dtype=float)
            k = max(w.shape[1], ref.shape[1])
            w = _pad(w, k)
            w = w @ procrustes(w, _pad(ref, k))
            w = w[:, : ref.shape[1]] if w.shape[1] >= ref.shape[1] else _pad(w, ref.shape[1])
            self.structure = reference.structure
            # the oracle version drops the rows outside each block's views
            w = np.where(self.structure.mask(self.dims), w, 0.0)
            self.dense = False
        self.w = w
        self.offsets = block_offsets(self.dims)

    def get(self, block: frozenset[int], rank_hint: int) -> NDArray:
        """``W^S`` with all ``d`` rows (zero outside ``S`` unless dense); zeros if absent."""
        if block in self.structure.blocks:
            return self.w[:, self.structure.columns(block)]
        return np.zeros((self.w.shape[0], rank_hint))

    def rows(self, block: frozenset[int]) -> NDArray[np.intp]:
        return np.concatenate(
            [np.arange(self.offsets[m], self.offsets[m + 1]) for m in sorted(block)]
        )

    def view(self, m: int) -> slice:
        return slice(int(self.offsets[m]), int(self.offsets[m + 1]))


def _pad(w: NDArray, k: int) -> NDArray:
    if w.shape[1] >= k:
        return w
    return np.hstack([w, np.zeros((w.shape[0], k - w.shape[1]))])


def _check_fitlike(obj: Any, name: str) -> None:
    if not all(hasattr(obj, a) for a in ("loadings", "structure", "dims")):
        raise ValidationError(
            f"{name} must be a FitResult or HierarchicalFactorModel (an object with "
            f"loadings, structure and dims); got {short_repr(obj)}."
        )


def _pair(
    estimate: Any, truth: Any, alignment: str = "data"
) -> tuple[_Blocks, _Blocks, list[frozenset[int]]]:
    _check_fitlike(estimate, "estimate")
    _check_fitlike(truth, "truth")
    _check_alignment(alignment)
    t = _Blocks(truth)
    e = _Blocks(estimate, reference=truth, alignment=alignment)
    if e.dims != t.dims:
        raise ValidationError(
            f"estimate.dims must equal truth.dims; got {e.dims} and {t.dims}."
        )
    union = list(t.structure.blocks) + [
        b for b in e.structure.blocks if b not in t.structure.blocks
    ]
    return e, t, union


def _rel(num: float, den: float, relative: bool) -> float:
    if not relative:
        return num
    if den > 0:
        return num / den
    return 0.0 if num == 0 else float("inf")


def block_gram_errors(
    estimate: Any, truth: Any, *, relative: bool = False, alignment: str = "data"
) -> dict[BlockKey, float]:
    """Frobenius error of every identified loading block.

    For each block ``S`` and view ``m`` in ``S``:
    ``||W_m^S W_m^S^T - W_hat_m^S W_hat_m^S^T||_F``.

    Parameters
    ----------
    estimate, truth : FitResult or HierarchicalFactorModel
    relative : bool, default=False
        Divide by ``||W_m^S W_m^S^T||_F`` of the truth (``inf`` for a block absent
        from the truth but non-zero in the estimate).
    alignment : {'data', 'oracle'}, default='data'
        How a structure-blind estimate is split into blocks (module docstring):
        ``'data'`` by :func:`assign_blocks` (no truth), ``'oracle'`` by a global
        Procrustes rotation onto the truth. Ignored for structured estimates.

    Returns
    -------
    dict[(int, frozenset[int]), float]
        Keyed by ``(m, S)``; truth's blocks first, in canonical order. A
        structure-blind estimate (``alignment='data'``) also gets every key ``(m, S)``
        with ``m`` not in ``S``, after those with ``m`` in ``S``: there the truth is zero and the error is ``||W_hat_m^S W_hat_m^S^T||_F``
        (``inf`` if ``relative``).

    Notes
    -----
    Invariant to ``W^S -> W^S Q_S`` in either argument, and to any ``K x K``
    rotation of a structure-blind estimate.

    Examples
    --------
    >>> import hcl_stats as hs
    >>> m = hs.HierarchicalFactorModel.random((3, 4), "AB:1 A:1", rng=0)
    >>> max(hs.metrics.block_gram_errors(m, m).values())
    0.0
    """
    e, t, union = _pair(estimate, truth, alignment)
    out: dict[BlockKey, float] = {}
    leaks: dict[BlockKey, float] = {}
    for b in union:
        r = t.structure.rank_of(b) if b in t.structure.blocks else 1
        we, wt = e.get(b, r), t.get(b, r)
        for m in range(len(t.dims)):
            if m not in b and not e.dense:
                continue
            ge = we[e.view(m)] @ we[e.view(m)].T
            gt = wt[t.view(m)] @ wt[t.view(m)].T
            err = _rel(float(np.linalg.norm(ge - gt)), float(np.linalg.norm(gt)), relative)
            (out if m in b else leaks)[(m, b)] = err
    out.update(leaks)
    return out


def structure_gram_errors(
    estimate: Any, truth: Any, *, relative: bool = False, alignment: str = "data"
) -> dict[frozenset[int], float]:
    """Frobenius error of each block's full Gram ``W^S W^S^T`` (cross-view included).

    ``||W^S W^S^T - W_hat^S W_hat^S^T||_F`` over the ``d_S x d_S`` rows and columns
    of the views in ``S``; unlike :func:`block_gram_errors` this sees whether the
    views of ``S`` share one rotation.

    Parameters
    ----------
    estimate, truth : FitResult or HierarchicalFactorModel
    relative : bool, default=False
        Divide by ``||W^S W^S^T||_F`` of the truth.
    alignment : {'data', 'oracle'}, default='data'
        See :func:`block_gram_errors`.

    Returns
    -------
    dict[frozenset[int], float]

    Notes
    -----
    Invariant to ``W^S -> W^S Q_S`` in either argument. Computed over all ``d``
    rows, so a structure-blind estimate's loadings outside ``S``'s views count as
    error (for block-supported arguments this equals the ``d_S x d_S`` norm).

    Examples
    --------
    >>> import hcl_stats as hs
    >>> m = hs.HierarchicalFactorModel.random((3, 4), "AB:1 A:1", rng=0)
    >>> errs = hs.metrics.structure_gram_errors(m, m)
    >>> sorted(hs.structure.format_block(b) for b in errs), [round(v, 6) for v in errs.values()]
    (['A', 'AB'], [0.0, 0.0])
    """
    e, t, union = _pair(estimate, truth, alignment)
    out = {}
    for b in union:
        r = t.structure.rank_of(b) if b in t.structure.blocks else 1
        rows = slice(None) if e.dense else t.rows(b)
        we, wt = e.get(b, r)[rows], t.get(b, r)[rows]
        gt = wt @ wt.T
        out[b] = _rel(float(np.linalg.norm(we @ we.T - gt)), float(np.linalg.norm(gt)), relative)
    return out


def _gram_distance(a: NDArray, b: NDArray) -> float:
    """``||a a^T - b b^T||_F`` without forming a ``d x d`` matrix.

    With ``[a, b] = Q [R_a, R_b]``: ``||a a^T - b b^T||_F = ||R_a R_a^T - R_b R_b^T||_F``
    (accurate to round-off, ``O(d k^2)``).
    """
    _, r = np.linalg.qr(np.hstack([a, b]))
    ra, rb = r[:, : a.shape[1]], r[:, a.shape[1] :]
    return float(np.linalg.norm(ra @ ra.T - rb @ rb.T))


def overall_gram_error(estimate: Any, truth: Any, *, relative: bool = False) -> float:
    """``||W W^T - W_hat W_hat^T||_F`` over all ``d`` coordinates.

    Invariant to any ``K x K`` rotation of either argument, so it cannot tell a
    structured estimator from a structure-blind one at the population level.

    Parameters
    ----------
    estimate, truth : FitResult or HierarchicalFactorModel
    relative : bool, default=False
        Divide by ``||W W^T||_F``.

    Returns
    -------
    float

    Examples
    --------
    A structure-blind population fit reproduces ``W W^T`` as well as the truth:

    >>> import hcl_stats as hs
    >>> m = hs.HierarchicalFactorModel.random((3, 4), "AB:1 A:1", rng=0)
    >>> fit = hs.estimators.NaivePCA().fit_covariance(
    ...     m.covariance(), dims=m.dims, structure=m.structure)
    >>> round(hs.metrics.overall_gram_error(fit, m, relative=True), 6)
    0.0
    """
    _check_fitlike(estimate, "estimate")
    _check_fitlike(truth, "truth")
    we = np.asarray(estimate.loadings, dtype=float)
    wt = np.asarray(truth.loadings, dtype=float)
    if we.shape[0] != wt.shape[0]:
        raise ValidationError(
            f"estimate and truth must have the same d; got {we.shape[0]} and "
            f"{wt.shape[0]}."
        )
    return _rel(_gram_distance(we, wt), _gram_distance(wt, wt[:, :0]), relative)


def procrustes_errors(
    estimate: Any, truth: Any, *, relative: bool = False, alignment: str = "data"
) -> dict[frozenset[int], float]:
    """Aligned loading error ``min_{Q_S orthogonal} ||W_hat^S Q_S - W^S||_F`` per block.

    Parameters
    ----------
    estimate, truth : FitResult or HierarchicalFactorModel
    relative : bool, default=False
        Divide by ``||W^S||_F``.
    alignment : {'data', 'oracle'}, default='data'
        See :func:`block_gram_errors`.

    Returns
    -------
    dict[frozenset[int], float]

    Notes
    -----
    The minimum over ``Q_S`` is the distance between the two identified
    equivalence classes (it chooses no block assignment); blocks of unequal rank
    are zero-padded to the larger rank.

    Examples
    --------
    A block rotation ``W^S Q_S`` is invisible to the aligned error:

    >>> import numpy as np, hcl_stats as hs
    >>> m = hs.HierarchicalFactorModel.random((3, 4), "AB:2", rng=0)
    >>> q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((2, 2)))
    >>> rotated = hs.HierarchicalFactorModel(m.dims, m.structure, m.loadings @ q,
    ...                                      m.noise_var)
    >>> [round(v, 6) for v in hs.metrics.procrustes_errors(rotated, m).values()]
    [0.0]
    """
    e, t, union = _pair(estimate, truth, alignment)
    out = {}
    for b in union:
        r = t.structure.rank_of(b) if b in t.structure.blocks else 1
        we, wt = e.get(b, r), t.get(b, r)
        k = max(we.shape[1], wt.shape[1])
        we, wt = _pad(we, k), _pad(wt, k)
        diff = we @ procrustes(we, wt) - wt
        out[b] = _rel(float(np.linalg.norm(diff)), float(np.linalg.norm(wt)), relative)
    return out


def sin_theta(
    estimate: Any, truth: Any, *, norm: str = "op", alignment: str = "data"
) -> dict[frozenset[int], float]:
    """Sine of the principal angles between ``col(W^S)`` and ``col(W_hat^S)``.

    Computed as ``||(I - P_hat) U||`` with ``U`` an orthonormal basis of the true
    column space and ``P_hat`` the projector onto the estimated one (equal to the
    symmetric ``sin Theta`` distance when the ranks agree).

    Parameters
    ----------
    estimate, truth : FitResult or HierarchicalFactorModel
    norm : {'op', 'fro'}, default='op'
        Largest sine (operator norm) or root sum of squared sines (Frobenius).
    alignment : {'data', 'oracle'}, default='data'
        See :func:`block_gram_errors`.

    Returns
    -------
    dict[frozenset[int], float]
        In ``[0, 1]`` for ``'op'``; 1.0 for a block missing from the estimate.

    Examples
    --------
    >>> import hcl_stats as hs
    >>> m = hs.HierarchicalFactorModel.random((3, 4), "AB:1 A:1", rng=0)
    >>> other = hs.HierarchicalFactorModel.random((3, 4), "AB:1 A:1", rng=1)
    >>> [round(v, 6) for v in hs.metrics.sin_theta(m, m).values()]  # same subspace
    [0.0, 0.0]
    >>> all(0 < v <= 1 for v in hs.metrics.sin_theta(other, m).values())
    True
    """
    if norm not in ("op", "fro"):
        raise ValidationError(f"norm must be 'op' or 'fro'; got {norm!r}.")
    e, t, union = _pair(estimate, truth, alignment)
    out = {}
    for b in union:
        r = t.structure.rank_of(b) if b in t.structure.blocks else 1
        ut = _basis(t.get(b, r))
        ue = _basis(e.get(b, r))
        if ut.shape[1] == 0:
            out[b] = 0.0 if ue.shape[1] == 0 else 1.0
            continue
        resid = ut - ue @ (ue.T @ ut)
        if norm == "op":
            out[b] = float(min(np.linalg.norm(resid, 2), 1.0))
        else:
            out[b] = float(np.linalg.norm(resid))
    return out


def _basis(w: NDArray) -> NDArray:
    if w.size == 0:
        return w
    u, s, _ = np.linalg.svd(w, full_matrices=False)
    keep = s > max(w.shape) * np.finfo(float).eps * (s[0] if s.size else 0.0)
    return u[:, keep]


def _structure_of(obj: Any, name: str = "structure") -> Structure:
    out = obj if isinstance(obj, Structure) else getattr(obj, "structure", None)
    if not isinstance(out, Structure):
        raise ValidationError(
            f"{name} must be a Structure, FitResult or HierarchicalFactorModel; got "
            f"{short_repr(obj)}."
        )
    return out


def _prf(est: set, true: set) -> tuple[float, float, float]:
    tp = len(est & true)
    precision = tp / len(est) if est else (1.0 if not true else 0.0)
    recall = tp / len(true) if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f1


def support_scores(estimated: Any, truth: Any) -> dict[str, float]:
    """Precision, recall and F1 of the estimated sharing pattern.

    Scored twice: over structures (the set of blocks ``S``) and over
    ``(view, block)`` pairs ``(m, S)`` with ``m`` in ``S`` (so a missed global block
    costs more than a missed specific one).

    Parameters
    ----------
    estimated, truth : Structure, FitResult or HierarchicalFactorModel

    Returns
    -------
    dict[str, float]
        Keys ``structure_precision``, ``structure_recall``, ``structure_f1``,
        ``block_precision``, ``block_recall``, ``block_f1`` and ``exact``
        (1.0 if the block sets are equal).

    Examples
    --------
    >>> from hcl_stats import Structure
    >>> from hcl_stats.metrics import support_scores
    >>> s = support_scores(Structure.parse("AB:1 A:1"), Structure.parse("AB:1 B:1"))
    >>> s["structure_precision"], s["structure_recall"]
    (0.5, 0.5)
    """
    se, st = _structure_of(estimated, "estimated"), _structure_of(truth, "truth")
    if se.n_views != st.n_views:
        raise ValidationError(
            f"structures must have the same number of views; got {se.n_views} "
            f"and {st.n_views}."
        )
    be, bt = set(se.blocks), set(st.blocks)
    pe = {(m, b) for b in be for m in b}
    pt = {(m, b) for b in bt for m in b}
    sp, sr, sf = _prf(be, bt)
    bp, br, bf = _prf(pe, pt)
    return {
        "structure_precision": sp, "structure_recall": sr, "structure_f1": sf,
        "block_precision": bp, "block_recall": br, "block_f1": bf,
        "exact": float(be == bt),
    }


def rank_recovery(estimated: Any, truth: Any) -> dict[str, float]:
    """How well the ranks ``r_S`` were recovered.

    Parameters
    ----------
    estimated, truth : Structure, FitResult or HierarchicalFactorModel

    Returns
    -------
    dict[str, float]
        ``rank_accuracy``: fraction of true blocks whose estimated rank is exact
        (a missing block counts as rank 0); ``rank_abs_error``: sum over the union
        of blocks of ``|r_hat_S - r_S|``; ``total_rank_error``: ``K_hat - K``;
        ``exact``: 1.0 if blocks and ranks all agree.

    Examples
    --------
    >>> import hcl_stats as hs
    >>> from hcl_stats.metrics import rank_recovery
    >>> truth = hs.Structure.parse("AB:1 A:1")
    >>> rank_recovery(truth, truth)["exact"]
    1.0
    >>> rank_recovery(hs.Structure.parse("AB:1 A:2"), truth)
    {'rank_accuracy': 0.5, 'rank_abs_error': 1.0, 'total_rank_error': 1.0, 'exact': 0.0}
    """
    se, st = _structure_of(estimated, "estimated"), _structure_of(truth, "truth")
    if se.n_views != st.n_views:
        raise ValidationError(
            f"structures must have the same number of views; got {se.n_views} "
            f"and {st.n_views}."
        )
    re = dict(zip(se.blocks, se.ranks, strict=True))
    rt = dict(zip(st.blocks, st.ranks, strict=True))
    union = set(re) | set(rt)
    hits = sum(1 for b, r in rt.items() if re.get(b, 0) == r)
    return {
        "rank_accuracy": hits / len(rt),
        "rank_abs_error": float(sum(abs(re.get(b, 0) - rt.get(b, 0)) for b in union)),
        "total_rank_error": float(se.total_rank - st.total_rank),
        "exact": float(re == rt),
    }
