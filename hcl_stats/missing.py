"""Missing views: samples observed in only some views.

A sample either observes a whole view or misses it (a row of NaN in that view). The
covariance is estimated blockwise from the samples that observe *both* views of a
block (pairwise-complete covariance), with its own ``n_{m m'}`` per block, and
then projected onto the PSD cone so that the estimators can use it:

1. :class:`IncompleteData` holds the views and the ``(n, M)`` observed mask;
2. :func:`pairwise_covariance` returns a :class:`PairwiseCovariance` (the
   ``(d, d)`` covariance, the ``(M, M)`` sample counts, the PSD projection applied);
3. :func:`fit_missing` fits any covariance-based estimator on it, and
   :func:`hcl_stats.workflow.select_structure` accepts it for structure selection.

Under missingness completely at random (MCAR) each block is an unbiased estimate
of ``Sigma[m, m']`` with variance ``O(1 / n_{m m'})``. The blocks come from
different samples, so the assembled matrix can be indefinite; it is replaced by its
nearest PSD matrix in Frobenius norm (negative eigenvalues set to 0), and the size
of that correction is recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._linalg import block_offsets
from ._validation import (
    as_generator,
    check_float_array,
    check_int,
    check_real,
    keyword_alias,
    short_repr,
)
from .exceptions import ValidationError
from .model import MultimodalData, ViewsShape

__all__ = [
    "IncompleteData",
    "PairwiseCovariance",
    "drop_views",
    "fit_missing",
    "pairwise_covariance",
    "project_psd",
]


@dataclass(frozen=True, eq=False, init=False)
class IncompleteData(ViewsShape):
    """Multi-view data in which some samples miss some views.

    Parameters
    ----------
    views : sequence of array_like of shape (n_samples, d_m)
        One array per view with the same number of rows. A missing view of a sample
        is a row of NaN; a row must be all-NaN or all-finite.
    observed : array_like of bool of shape (n_samples, M), optional
        Observed mask. If given, rows marked unobserved are ignored (stored as NaN)
        and rows marked observed must be finite.
    view_names : sequence of str, optional
        Display names of the views.
    modality_names : sequence of str, optional
        Deprecated spelling of ``view_names``.

    Raises
    ------
    ValidationError
        On a partly-NaN row, a view observed by fewer than 2 samples, or a pair of
        views observed together by fewer than 2 samples.

    Examples
    --------
    >>> import numpy as np
    >>> from hcl_stats.missing import IncompleteData
    >>> a = np.array([[1.0], [2.0], [np.nan], [4.0]])
    >>> b = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [3.0, 1.0]])
    >>> data = IncompleteData([a, b])
    >>> data.pair_counts().tolist()
    [[3, 3], [3, 4]]
    """

    Xs: tuple[NDArray[np.float64], ...]
    observed: NDArray[np.bool_]
    view_names: tuple[str, ...] | None

    def __init__(
        self,
        views: Sequence[ArrayLike],
        *,
        observed: ArrayLike | None = None,
        view_names: Sequence[str] | None = None,
        modality_names: Sequence[str] | None = None,
    ) -> None:
        view_names = keyword_alias(view_names, "view_names", modality_names, "modality_names")
        if isinstance(views, np.ndarray) or not isinstance(views, Sequence) or not views:
            raise ValidationError(
                "views must be a non-empty list of 2-D arrays, one per view; got "
                f"{type(views).__name__}."
            )
        arrays = []
        for i, v in enumerate(views):
            a = np.array(v, dtype=np.float64, copy=True)
            if a.ndim != 2 or a.shape[1] == 0:
                raise ValidationError(
                    f"views[{i}] must be a 2-D array with at least one column; got "
                    f"shape {a.shape}."
                )
            arrays.append(a)
        n = arrays[0].shape[0]
        for i, a in enumerate(arrays):
            if a.shape[0] != n:
                raise ValidationError(
                    f"views[{i}] has {a.shape[0]} rows but views[0] has {n}; all views "
                    "must have the same number of samples."
                )
        if observed is None:
            mask = np.empty((n, len(arrays)), dtype=bool)
            for i, a in enumerate(arrays):
                fin = np.isfinite(a)
                partial = fin.any(axis=1) & ~fin.all(axis=1)
                if np.any(partial):
                    r = int(np.argmax(partial))
                    raise ValidationError(
                        f"views[{i}] row {r} must be all-NaN (view missing) or all "
                        "finite; got a partly missing row. Impute features or pass "
                        "an observed mask."
                    )
                mask[:, i] = fin.all(axis=1)
        else:
            mask = np.asarray(observed)
            if mask.shape != (n, len(arrays)) or mask.dtype != bool:
                raise ValidationError(
                    f"observed must be a boolean array of shape ({n}, {len(arrays)}); "
                    f"got dtype {mask.dtype} and shape {mask.shape}."
                )
            mask = mask.copy()
            for i, a in enumerate(arrays):
                rows = a[mask[:, i]]
                if not np.all(np.isfinite(rows)):
                    raise ValidationError(
                        f"views[{i}] must be finite in the observed rows; got a "
                        "non-finite value."
                    )
                a[~mask[:, i]] = np.nan
        counts = mask.T.astype(int) @ mask.astype(int)
        if np.min(counts) < 2:
            i, j = (int(x) for x in np.argwhere(counts < 2)[0])
            raise ValidationError(
                f"views {i} and {j} must be observed together by at least 2 samples "
                f"to estimate their covariance block; got {counts[i, j]}."
            )
        for a in arrays:
            a.setflags(write=False)
        mask.setflags(write=False)
        if view_names is not None:
            view_names = tuple(str(x) for x in view_names)
            if len(view_names) != len(arrays):
                raise ValidationError(
                    f"view_names must have {len(arrays)} entries; got "
                    f"{len(view_names)}."
                )
        object.__setattr__(self, "Xs", tuple(arrays))
        object.__setattr__(self, "observed", mask)
        object.__setattr__(self, "view_names", view_names)

    @classmethod
    def from_complete(cls, data: MultimodalData, observed: ArrayLike) -> IncompleteData:
        """Mask the rows of complete data (for simulations of missingness)."""
        return cls(list(data.Xs), observed=observed, view_names=data.view_names)

    def pair_counts(self) -> NDArray[np.int64]:
        """``(M, M)`` matrix of ``n_{m m'}``, the samples observing both views."""
        obs = self.observed.astype(np.int64)
        return obs.T @ obs

    def complete_cases(self) -> MultimodalData:
        """The samples that observe every view, as complete data."""
        rows = np.all(self.observed, axis=1)
        if int(rows.sum()) < 2:
            raise ValidationError(
                f"complete cases must number at least 2; got {int(rows.sum())}."
            )
        return MultimodalData([x[rows] for x in self.Xs], self.view_names)

    def take(self, rows: ArrayLike) -> IncompleteData:
        """The samples ``rows`` (indices, repeats allowed, e.g. for the bootstrap)."""
        idx = np.asarray(rows, dtype=np.intp)
        return IncompleteData(
            [x[idx] for x in self.Xs],
            observed=np.asarray(self.observed)[idx],
            view_names=self.view_names,
        )

    def sample_cov(self, ddof: int = 1) -> NDArray[np.float64]:
        """Pairwise-complete covariance after PSD projection (see :func:`pairwise_covariance`)."""
        return pairwise_covariance(self, ddof=ddof).cov


@dataclass(frozen=True, eq=False)
class PairwiseCovariance:
    """Blockwise covariance of incomplete multi-view data.

    Parameters
    ----------
    cov : ndarray of shape (d, d)
        The PSD-projected pairwise-complete covariance.
    n_per_block : ndarray of int of shape (M, M)
        ``n_{m m'}``: samples behind block ``(m, m')``.
    raw_min_eigenvalue : float
        Smallest eigenvalue before the projection (negative if it was indefinite);
        NaN for complete data, whose sample covariance is PSD and not projected.
    projection_norm : float
        ``||cov - raw||_F``, the size of the PSD correction.
    dims : tuple of int
    raw : ndarray of shape (d, d)
        The assembled blockwise estimate before the projection.
    """

    cov: NDArray[np.float64]
    n_per_block: NDArray[np.int64]
    raw_min_eigenvalue: float
    projection_norm: float
    dims: tuple[int, ...]
    raw: NDArray[np.float64]

    @property
    def n_effective(self) -> int:
        """Smallest ``n_{m m'}``: the conservative sample size of the whole matrix."""
        return int(np.min(self.n_per_block))


def project_psd(a: NDArray) -> tuple[NDArray[np.float64], float, float]:
    """Nearest PSD matrix in Frobenius norm: clip negative eigenvalues to 0.

    Returns
    -------
    psd : ndarray of shape (p, p)
    min_eigenvalue : float
        Smallest eigenvalue of ``(a + a^T) / 2`` before clipping.
    correction : float
        ``||psd - a||_F``.

    Examples
    --------
    >>> import numpy as np
    >>> from hcl_stats.missing import project_psd
    >>> psd, lam_min, corr = project_psd(np.array([[1.0, 2.0], [2.0, 1.0]]))
    >>> psd.round(6).tolist(), round(lam_min, 6), round(corr, 6)  # -1 clipped to 0
    ([[1.5, 1.5], [1.5, 1.5]], -1.0, 1.0)
    """
    a = check_float_array(a, "a", ndim=2)
    if a.shape[0] != a.shape[1]:
        raise ValidationError(f"a must be a square matrix; got shape {a.shape}.")
    sym = (a + a.T) / 2.0
    vals, vecs = np.linalg.eigh(sym)
    lam_min = float(vals[0])
    if lam_min >= 0:
        return sym, lam_min, float(np.linalg.norm(sym - a))
    clipped = np.clip(vals, 0.0, None)
    psd = (vecs * clipped) @ vecs.T
    psd = (psd + psd.T) / 2.0
    return psd, lam_min, float(np.linalg.norm(psd - a))


def _check_data(data: Any, name: str, kinds: tuple[type, ...]) -> None:
    """Raise unless ``data`` is one of ``kinds`` (a list of arrays is not)."""
    if not isinstance(data, kinds):
        allowed = " or ".join(k.__name__ for k in kinds)
        raise ValidationError(
            f"{name} must be {allowed}; got {short_repr(data)}. Wrap a list of "
            "arrays with MultimodalData(views) (or IncompleteData(views) with NaN rows)."
        )


def pairwise_covariance(data: IncompleteData | MultimodalData, *, ddof: int = 1) -> PairwiseCovariance:
    """Pairwise-complete covariance with the number of samples behind each block.

    Block ``(m, m')`` is the ordinary sample covariance (divisor ``n_{m m'} - ddof``,
    each column centred by its mean over the same samples) of the samples observing
    both views. For complete data this is exactly ``data.sample_cov(ddof)``.

    Parameters
    ----------
    data : IncompleteData or MultimodalData
    ddof : int, default=1

    Returns
    -------
    PairwiseCovariance

    Examples
    --------
    >>> import numpy as np
    >>> from hcl_stats import MultimodalData
    >>> from hcl_stats.missing import pairwise_covariance
    >>> data = MultimodalData([np.array([[0.0], [1.0], [2.0]]), np.array([[1.0], [0.0], [2.0]])])
    >>> bool(np.allclose(pairwise_covariance(data).cov, data.sample_cov()))
    True
    """
    ddof = check_int(ddof, "ddof", minimum=0)
    if isinstance(data, MultimodalData):
        mask = np.ones((data.n_samples, data.n_views), dtype=bool)
        views = data.Xs
    else:
        _check_data(data, "data", (IncompleteData, MultimodalData))
        mask = np.asarray(data.observed)
        views = data.Xs
    dims = tuple(int(x.shape[1]) for x in views)
    off = block_offsets(dims)
    d = int(off[-1])
    raw = np.zeros((d, d))
    counts = mask.T.astype(np.int64) @ mask.astype(np.int64)
    if np.min(counts) - ddof < 1:
        raise ValidationError(
            f"every pair of views must be observed together by more than ddof = {ddof} "
            f"samples; got min n_(m m') = {int(np.min(counts))}."
        )
    for m in range(len(views)):
        for k in range(m, len(views)):
            rows = mask[:, m] & mask[:, k]
            xm = views[m][rows]
            xk = views[k][rows]
            xm = xm - xm.mean(axis=0)
            xk = xk - xk.mean(axis=0)
            block = xm.T @ xk / (int(rows.sum()) - ddof)
            raw[off[m] : off[m + 1], off[k] : off[k + 1]] = block
            raw[off[k] : off[k + 1], off[m] : off[m + 1]] = block.T
    if bool(np.all(mask)):  # complete data: an ordinary sample covariance, PSD
        sym = (raw + raw.T) / 2.0
        return PairwiseCovariance(sym, counts, float("nan"), 0.0, dims, sym)
    psd, lam_min, corr = project_psd(raw)
    return PairwiseCovariance(psd, counts, lam_min, corr, dims, raw)


def drop_views(
    data: MultimodalData, fraction: float, *, rng: Any = None
) -> IncompleteData:
    """Make samples miss one view at random (MCAR), for simulations.

    Each sample independently, with probability ``fraction``, loses one view chosen
    uniformly at random; so every sample keeps at least ``M - 1`` views and about
    ``fraction * n`` samples are incomplete.

    Parameters
    ----------
    data : MultimodalData
    fraction : float in [0, 1]
    rng : None, int, SeedSequence or Generator

    Returns
    -------
    IncompleteData

    Examples
    --------
    >>> import hcl_stats as hs
    >>> from hcl_stats.missing import drop_views
    >>> m = hs.HierarchicalFactorModel.random((3, 4), "AB:1 A:1", rng=0)
    >>> inc = drop_views(m.sample(200, rng=0), 0.5, rng=0)
    >>> inc.observed.shape, int(inc.observed.sum(axis=1).min())  # >= M - 1 views
    ((200, 2), 1)
    >>> bool(drop_views(m.sample(10, rng=0), 0.0, rng=0).observed.all())
    True
    """
    fraction = check_real(fraction, "fraction", low=0.0, high=1.0)
    _check_data(data, "data", (MultimodalData,))
    gen = as_generator(rng)
    n, m = data.n_samples, data.n_views
    hit = gen.random(n) < fraction
    which = gen.integers(0, m, size=n)
    observed = np.ones((n, m), dtype=bool)
    observed[np.flatnonzero(hit), which[hit]] = False
    return IncompleteData.from_complete(data, observed)


def fit_missing(
    estimator: Any,
    data: IncompleteData | MultimodalData,
    *,
    structure: Any = None,
    rng: Any = None,
):
    """Fit a covariance-based estimator to incomplete data.

    The estimator sees the PSD-projected pairwise-complete covariance through
    ``fit_covariance`` with ``n_samples`` = the smallest ``n_{m m'}`` (conservative).
    The per-block counts and the size of the PSD correction are recorded in
    ``result.diagnostics.extra`` (keys ``n_per_block``, ``psd_correction``,
    ``raw_min_eigenvalue``, ``covariance``).

    Parameters
    ----------
    estimator : Estimator
        Any estimator that works from a covariance (``needs_data`` False).
    data : IncompleteData or MultimodalData
    structure : Structure or str, optional
        Required unless the estimator learns the structure.
    rng : None, int, SeedSequence or Generator

    Returns
    -------
    FitResult

    Examples
    --------
    >>> import hcl_stats as hs
    >>> from hcl_stats.missing import drop_views, fit_missing
    >>> model = hs.HierarchicalFactorModel.random((5, 6, 7), "ABC:1 A:1", rng=0)
    >>> data = drop_views(model.sample(400, rng=1), 0.3, rng=2)
    >>> fit = fit_missing(hs.estimators.SchurComplement(), data, structure="ABC:1 A:1")
    >>> fit.diagnostics.extra["n_per_block"][0][0] < 400
    True
    """
    if not callable(getattr(estimator, "fit_covariance", None)):
        raise ValidationError(
            "estimator must be an Estimator instance (with fit_covariance), e.g. "
            f"hcl_stats.estimators.get('schur')(); got {short_repr(estimator)}."
        )
    pc = pairwise_covariance(data)
    result = estimator.fit_covariance(
        pc.cov, dims=pc.dims, n_samples=pc.n_effective, structure=structure, rng=rng
    )
    extra = dict(result.diagnostics.extra)
    extra.update(
        covariance="pairwise-complete",
        n_per_block=pc.n_per_block.tolist(),
        psd_correction=pc.projection_norm,
        raw_min_eigenvalue=pc.raw_min_eigenvalue,
    )
    names = data.view_names
    struct = result.structure
    if names is not None and struct.view_names is None:
        struct = struct.with_names(names)
    return replace(
        result, structure=struct, diagnostics=replace(result.diagnostics, extra=extra)
    )
