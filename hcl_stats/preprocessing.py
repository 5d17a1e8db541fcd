"""Per-view centring and scaling, and the choice of per-view noise variance.

Real views differ wildly in dimension and units (mfeat: 6 to 240 columns, values
from 1e-4 to 2e4). The factor model's loss ``||W W^T - S_W||_F^2`` weighs entries
of the covariance by their size, so without scaling the largest-variance view
dominates every block. :class:`Preprocessor` fixes one documented convention:

``center=True``
    subtract each column's mean (computed over the samples that observe the view).
``scale``
    ``'view'`` (default): divide each view by ``sqrt(tr(Cov(x_m)))``, so that every
    view has total variance 1 whatever its dimension; relative column scales inside
    a view are kept (they carry information, e.g. pixel intensities).
    ``'feature'``: standardise every column to unit variance, then divide view ``m``
    by ``sqrt(d_m)`` (again total variance 1 per view); use when the columns of a
    view are in unrelated units (breast cancer: radius vs area).
    ``'none'``: no scaling.

After ``'view'`` or ``'feature'`` scaling each view has total variance one, so the
noise variance of view ``m`` is at most ``1 / d_m``: views of different dimension
have different noise levels per coordinate, which is why the per-view noise rule
(``noise_rule='per_view'``) is the default for real data; :func:`noise_variance`
offers the rules.

Constant columns (zero variance) are kept but not scaled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._linalg import block_offsets
from ._rmt import RANK_FREE_NOISE_RULES, mp_lower_mean, mp_median
from ._validation import (
    check_choice,
    check_dims,
    check_float_array,
    check_real,
    short_repr,
)
from .exceptions import ValidationError
from .model import MultimodalData

__all__ = [
    "NOISE_RULES",
    "SCALE_RATIO",
    "SCALINGS",
    "Preprocessor",
    "check_scales",
    "noise_variance",
    "preprocess",
]

SCALINGS = ("view", "feature", "none")
#: Rows per block of :func:`_column_sd`: about this many bytes of deviations.
_SD_BLOCK_BYTES = 2 * 2**20
NOISE_RULES = RANK_FREE_NOISE_RULES


def _views_and_mask(data: Any) -> tuple[tuple[NDArray, ...], NDArray | None]:
    """Views (possibly with NaN rows) and the (n, M) observed mask or None."""
    if isinstance(data, MultimodalData):
        return data.Xs, None
    if hasattr(data, "observed") and hasattr(data, "Xs"):
        return data.Xs, np.asarray(data.observed)
    return MultimodalData(data).Xs, None


def _column_sd(x: NDArray) -> NDArray:
    """Column standard deviations (divisor ``n``) of a finite ``(n, p)`` array.

    ``numpy.std(x, axis=0)`` computed over blocks of rows: one pass for the mean,
    one for the squared deviations, with no ``n x p`` temporary (each block's
    deviations stay in cache). Equal to ``numpy.std`` up to round-off.
    """
    n, p = x.shape
    mean = np.add.reduce(x, axis=0) / n
    acc = np.zeros(p)
    step = max(1, _SD_BLOCK_BYTES // (8 * max(p, 1)))
    # entries beyond about 1e154 overflow to an infinite sd, which the callers'
    # magnitude checks refuse with their own message: no numpy warning first
    with np.errstate(over="ignore"):
        for start in range(0, n, step):
            dev = x[start : start + step] - mean
            np.multiply(dev, dev, out=dev)
            acc += np.add.reduce(dev, axis=0)
    return np.sqrt(acc / n)


def _rebuild(data: Any, views: list[NDArray]) -> Any:
    if isinstance(data, MultimodalData):
        return MultimodalData(views, data.view_names)
    if hasattr(data, "observed") and hasattr(data, "Xs"):
        return type(data)(views, observed=data.observed, view_names=data.view_names)
    return MultimodalData(views)


@dataclass(frozen=True, eq=False)
class Preprocessor:
    """Fitted per-view centring and scaling; apply it with :meth:`transform`.

    Parameters
    ----------
    means : tuple of ndarray of shape (d_m,)
        Column means subtracted from each view (zeros when ``center=False``).
    scales : tuple of ndarray of shape (d_m,)
        Each view's columns are divided by these.
    center : bool
    scale : {'view', 'feature', 'none'}

    Examples
    --------
    >>> import numpy as np
    >>> from hcl_stats.preprocessing import Preprocessor
    >>> x = [np.array([[1.0, 2.0], [3.0, 6.0]]), np.array([[0.0], [10.0]])]
    >>> pre = Preprocessor.fit(x, scale="view")
    >>> out = pre.transform(x)
    >>> [round(float(np.sum(v.var(axis=0, ddof=1))), 12) for v in out.Xs]
    [1.0, 1.0]
    """

    means: tuple[NDArray[np.float64], ...]
    scales: tuple[NDArray[np.float64], ...]
    center: bool = True
    scale: str = "view"

    @classmethod
    def fit(cls, data: Any, *, center: bool = True, scale: str = "view") -> Preprocessor:
        """Compute means and scales from ``data``.

        Parameters
        ----------
        data : MultimodalData, IncompleteData or list of array_like of shape (n, d_m)
            Rows of a view that are missing (``IncompleteData``) are ignored.
        center : bool, default=True
        scale : {'view', 'feature', 'none'}, default='view'
            See the module docstring.

        Returns
        -------
        Preprocessor
        """
        scale = check_choice(scale, "scale", SCALINGS)
        if not isinstance(center, bool | np.bool_):
            raise ValidationError(f"center must be True or False; got {short_repr(center)}.")
        views, mask = _views_and_mask(data)
        means, scales = [], []
        for m, x in enumerate(views):
            rows = x if mask is None else x[mask[:, m]]
            if rows.shape[0] < 2:
                raise ValidationError(
                    f"view {m} must be observed in at least 2 samples to be scaled; got "
                    f"{rows.shape[0]}."
                )
            mu = rows.mean(axis=0) if center else np.zeros(x.shape[1])
            var = rows.var(axis=0, ddof=1)
            if scale == "none":
                s = np.ones(x.shape[1])
            elif scale == "view":
                total = float(np.sum(var))
                s = np.full(x.shape[1], np.sqrt(total) if total > 0 else 1.0)
            else:
                sd = np.sqrt(var)
                sd[sd == 0] = 1.0
                s = sd * np.sqrt(x.shape[1])
            means.append(mu)
            scales.append(s)
        return cls(tuple(means), tuple(scales), bool(center), scale)

    def transform(self, data: Any) -> Any:
        """Return centred and scaled copies of the views (same container type).

        Parameters
        ----------
        data : MultimodalData, IncompleteData or list of array_like of shape (n, d_m)
            Must have the dims the preprocessor was fitted on.

        Returns
        -------
        MultimodalData or IncompleteData
        """
        views, _ = _views_and_mask(data)
        dims = tuple(x.shape[1] for x in views)
        want = tuple(mu.shape[0] for mu in self.means)
        if dims != want:
            raise ValidationError(
                f"data dims must be {want} (those the preprocessor was fitted on); got "
                f"{dims}."
            )
        out = [(x - mu) / s for x, mu, s in zip(views, self.means, self.scales, strict=True)]
        return _rebuild(data, out)

    def transform_stacked(self, x: NDArray) -> NDArray[np.float64]:
        """Apply to a stacked ``(n, d)`` array (views side by side)."""
        mu = np.concatenate(self.means)
        s = np.concatenate(self.scales)
        return (np.asarray(x, dtype=float) - mu) / s


def preprocess(data: Any, *, center: bool = True, scale: str = "view") -> tuple[Any, Preprocessor]:
    """Fit a :class:`Preprocessor` to ``data`` and apply it.

    Returns
    -------
    data : MultimodalData or IncompleteData
        The transformed views.
    preprocessor : Preprocessor
        To apply the same transformation to new samples.

    Examples
    --------
    With ``scale='view'`` each view is centred and its sample covariance has trace ``1``:

    >>> import numpy as np, hcl_stats as hs
    >>> from hcl_stats.preprocessing import preprocess
    >>> m = hs.HierarchicalFactorModel.random((3, 4), "AB:1 A:1", rng=0)
    >>> data, pre = preprocess(m.sample(200, rng=0))
    >>> [bool(np.allclose(x.mean(axis=0), 0)) for x in data.Xs]
    [True, True]
    >>> [round(float(np.var(x, axis=0, ddof=1).sum()), 6) for x in data.Xs]
    [1.0, 1.0]
    """
    pre = Preprocessor.fit(data, center=center, scale=scale)
    return pre.transform(data), pre


def noise_variance(
    cov: NDArray,
    dims: Sequence[int],
    *,
    rule: str = "bottom_half",
    n_samples: Any = None,
) -> NDArray[np.float64]:
    """A per-view noise variance ``sigma_m^2`` that needs no ranks.

    Parameters
    ----------
    cov : ndarray of shape (d, d)
        Covariance of the (preprocessed) stacked views.
    dims : sequence of int
    rule : {'bottom_half', 'per_view', 'scalar'}, default='bottom_half'
        ``'bottom_half'``: mean of the smallest ``ceil(d_m / 2)`` eigenvalues of the
        view's diagonal block, a noise floor that assumes the signal rank of each
        view is below ``d_m / 2``. ``'per_view'``: the median eigenvalue of the
        block. ``'scalar'``: the ``'bottom_half'`` rule applied to the whole
        covariance, repeated for every view.
    n_samples : int or array_like of shape (M,), optional
        Samples behind each view's block. If given, the bottom-half mean (median)
        is divided by its expectation under the Marchenko-Pastur law with ratio
        ``gamma = d_m / n_m`` (pure noise of variance 1), which removes the
        downward bias of the small sample eigenvalues (about
        ``1 - 0.85 sqrt(gamma)`` for the bottom half).

    Returns
    -------
    ndarray of shape (M,)
        Positive variances (at least ``1e-12`` times the largest diagonal entry).

    Notes
    -----
    Rank-free rules are needed to *select* ranks (the rules of
    :func:`hcl_stats.estimators.estimate_noise_var` need the ranks first). Once a
    structure is selected the estimators re-estimate the noise from the bottom
    ``d_m - k_m`` eigenvalues.

    Examples
    --------
    At the population level, with signal rank below ``d_m / 2``, the bottom-half
    rule returns ``sigma^2`` itself:

    >>> import hcl_stats as hs
    >>> from hcl_stats.preprocessing import noise_variance
    >>> m = hs.HierarchicalFactorModel.random((8, 10), "AB:1 A:1", noise_var=0.5,
    ...                                      rng=0)
    >>> noise_variance(m.covariance(), m.dims).round(6).tolist()
    [0.5, 0.5]
    """
    rule = check_choice(rule, "rule", NOISE_RULES)
    dims = check_dims(dims)
    cov = check_float_array(cov, "cov", ndim=2)
    if cov.shape != (sum(dims), sum(dims)):
        raise ValidationError(
            f"cov must have shape ({sum(dims)}, {sum(dims)}) to match sum(dims) = "
            f"{sum(dims)}; got shape {cov.shape}."
        )
    floor = 1e-12 * max(float(np.max(np.diag(cov))), np.finfo(float).tiny)
    ns = None if n_samples is None else np.broadcast_to(np.asarray(n_samples, float), (len(dims),))

    def correction(d: int, m: int, median: bool) -> float:
        if ns is None or ns[m] <= 1:
            return 1.0
        gamma = min(d / (ns[m] - 1.0), 0.98)  # the law has an atom at 0 beyond 1
        if median:
            return mp_median(gamma)
        return mp_lower_mean(gamma, int(np.ceil(d / 2)) / d)

    if rule == "scalar":
        vals = np.linalg.eigvalsh(cov)
        k = int(np.ceil(vals.size / 2))
        value = float(np.mean(vals[:k])) / correction(vals.size, 0, False)
        return np.full(len(dims), max(value, floor))
    out = np.empty(len(dims))
    off = block_offsets(dims)
    for m in range(len(dims)):
        vals = np.linalg.eigvalsh(cov[off[m] : off[m + 1], off[m] : off[m + 1]])
        if rule == "per_view":
            out[m] = float(np.median(vals)) / correction(vals.size, m, True)
        else:
            out[m] = float(np.mean(vals[: int(np.ceil(vals.size / 2))])) / correction(
                vals.size, m, False
            )
    return np.maximum(out, floor)


#: Column standard deviations differing by more than this factor trigger a
#: :class:`~hcl_stats.exceptions.ScaleWarning` (:func:`check_scales`).
SCALE_RATIO = 1e4


def check_scales(
    data: Any,
    view_names: Sequence[str] | None = None,
    *,
    ratio: float = SCALE_RATIO,
    advice: str = "pass --preprocess feature (hcl-stats fit) or scale='feature'",
) -> float:
    """Warn when the column scales of the views differ by more than ``ratio``.

    The ratio is ``max / min`` of the column standard deviations over the
    non-constant columns of all views (observed rows only). Above ``ratio`` a
    :class:`~hcl_stats.exceptions.ScaleWarning` names the views (and the columns)
    with the smallest and the largest scale, and says what to do: standardise the
    columns, or, when the columns of each view agree within ``ratio`` and only the
    views differ, scale the views or use ``noise_rule='per_view'``.

    Parameters
    ----------
    data : MultimodalData, IncompleteData or list of arrays of shape (n_samples, d_m)
    view_names : sequence of str, optional
        Names used in the message (default ``A, B, ...``).
    ratio : float, default=1e4
    advice : str
        The remedy the message names for columns on unrelated scales.

    Returns
    -------
    float
        The observed ratio (``1.0`` when fewer than two columns vary).

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from hcl_stats.preprocessing import check_scales
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((50, 3))
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     ratio = check_scales([x, x * [1, 1, 1e5]], ["rna", "atac"])
    >>> round(ratio / 1e5, 1), caught[0].category.__name__
    (1.0, 'ScaleWarning')
    >>> "view atac, column 2" in str(caught[0].message)
    True
    """
    import warnings

    from .exceptions import ScaleWarning

    ratio = check_real(ratio, "ratio", low=1.0)
    views, mask = _views_and_mask(data)
    names = [str(v) for v in view_names] if view_names is not None else [
        chr(ord("A") + m) if m < 26 else f"view{m}" for m in range(len(views))]
    stds = []
    for m, x in enumerate(views):
        if mask is None:  # a MultimodalData view: finite, at least two rows
            stds.append(_column_sd(x))
            continue
        rows = x[mask[:, m]]
        sd = np.nanstd(rows, axis=0) if rows.shape[0] > 1 else np.zeros(x.shape[1])
        stds.append(sd)
    live = [(m, j, float(sd[j])) for m, sd in enumerate(stds) for j in range(sd.size)
            if sd[j] > 0 and np.isfinite(sd[j])]
    if len(live) < 2:
        return 1.0
    lo = min(live, key=lambda t: t[2])
    hi = max(live, key=lambda t: t[2])
    observed = hi[2] / lo[2]
    if observed <= ratio:
        return observed
    within = max(
        (max(v for mm, _, v in live if mm == m) / min(v for mm, _, v in live if mm == m))
        for m in {t[0] for t in live}
    )
    if within <= ratio:
        fix = ("the columns of each view agree within the limit, so scale the views "
               "(--preprocess view, scale='view') or use noise_rule='per_view'")
    else:
        fix = f"{advice}, or noise_rule='per_view' if only the views differ"
    warnings.warn(
        f"column standard deviations differ by a factor {observed:.3g} > {ratio:.3g}: "
        f"from {lo[2]:.3g} (view {names[lo[0]]}, column {lo[1]}) to {hi[2]:.3g} (view "
        f"{names[hi[0]]}, column {hi[1]}). One noise variance cannot describe both, "
        f"so the large columns become signal and the small ones noise; {fix}.",
        ScaleWarning,
        stacklevel=2,
    )
    return observed
