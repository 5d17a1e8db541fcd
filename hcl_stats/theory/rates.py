"""Empirical rates: log-log fits of replicate-level errors, bound ratios and additive terms.

Needs pandas and statsmodels (``hcl_stats[study]``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._validation import check_real, short_repr
from ..exceptions import ValidationError

__all__ = ["RateFit", "TermFit", "as_frame", "fit_rate", "fit_rates", "fit_terms"]


@dataclass(frozen=True)
class RateFit:
    """Log-log OLS fit ``log y = a + b log x`` with robust standard errors.

    Parameters
    ----------
    x, y : str
        Column names used.
    slope : float
        ``b``, the empirical exponent.
    ci : (float, float)
        ``1 - alpha`` confidence interval of the slope (t distribution, robust SE).
    se : float
        Robust standard error of the slope.
    intercept : float
        ``a``.
    expected : float or None
        Theoretical exponent tested against.
    t_stat, p_value : float or None
        Two-sided test of ``slope == expected`` (robust SE, ``df_resid`` dof).
    n_obs : int
        Replicate-level observations used (non-positive or non-finite ``y`` are
        dropped and counted in ``n_dropped``).
    n_dropped : int
    cov_type : str
        statsmodels robust covariance type (e.g. ``'HC3'``).
    alpha : float
    grid : tuple of float
        Distinct ``x`` values.
    geo_mean : tuple of float
        Geometric mean of ``y`` at each grid value.
    bound : tuple of float or None
        Bound evaluated on the grid (if one was given).
    ratio : tuple of float or None
        ``geo_mean / bound`` at each grid value; flat and bounded if the bound has
        the right rate.
    fitted_constant : float or None
        ``exp(mean(log y - log bound))``, the single constant that best scales the
        bound onto the data in log space.
    ratio_slope : float or None
        Slope of ``log(y / bound)`` on ``log x`` (replicate level): 0 when the
        bound has the empirical rate, whatever its constant.
    ratio_slope_ci : (float, float) or None
        Its ``1 - alpha`` CI (same robust covariance).
    max_replicate_ratio : float or None
        Largest ``y / bound`` over all replicates; ``<= 1`` wherever a bound with
        explicit constants holds.
    """

    x: str
    y: str
    slope: float
    ci: tuple[float, float]
    se: float
    intercept: float
    expected: float | None
    t_stat: float | None
    p_value: float | None
    n_obs: int
    n_dropped: int
    cov_type: str
    alpha: float
    grid: tuple[float, ...]
    geo_mean: tuple[float, ...]
    bound: tuple[float, ...] | None = None
    ratio: tuple[float, ...] | None = None
    fitted_constant: float | None = None
    ratio_slope: float | None = None
    ratio_slope_ci: tuple[float, float] | None = None
    max_replicate_ratio: float | None = None

    @property
    def consistent(self) -> bool | None:
        """True if ``expected`` lies in the CI (None without ``expected``)."""
        if self.expected is None:
            return None
        return bool(self.ci[0] <= self.expected <= self.ci[1])

    @property
    def ratio_spread(self) -> float | None:
        """``max(ratio) / min(ratio)`` over the grid (1 means perfectly flat)."""
        if self.ratio is None:
            return None
        r = np.asarray(self.ratio)
        return float(np.max(r) / np.min(r))

    def to_record(self) -> dict[str, Any]:
        """Flat dict for tables (no rounding)."""
        return {
            "x": self.x,
            "y": self.y,
            "slope": self.slope,
            "ci_low": self.ci[0],
            "ci_high": self.ci[1],
            "se": self.se,
            "expected": self.expected,
            "p_value": self.p_value,
            "consistent": self.consistent,
            "n_obs": self.n_obs,
            "fitted_constant": self.fitted_constant,
            "ratio_min": None if self.ratio is None else float(min(self.ratio)),
            "ratio_max": None if self.ratio is None else float(max(self.ratio)),
            "ratio_slope": self.ratio_slope,
            "ratio_slope_ci_low": None if self.ratio_slope_ci is None else self.ratio_slope_ci[0],
            "ratio_slope_ci_high": None if self.ratio_slope_ci is None else self.ratio_slope_ci[1],
            "max_replicate_ratio": self.max_replicate_ratio,
        }

    def __str__(self) -> str:
        lines = [
            f"slope of log {self.y} on log {self.x}: {self.slope:.3f} "
            f"[{self.ci[0]:.3f}, {self.ci[1]:.3f}] ({100 * (1 - self.alpha):.0f}% CI, "
            f"{self.cov_type}, n_obs={self.n_obs})"
        ]
        if self.expected is not None:
            lines.append(
                f"test slope = {self.expected:g}: t = {self.t_stat:.2f}, "
                f"p = {self.p_value:.3g}"
            )
        if self.ratio is not None:
            lines.append(
                f"empirical/bound ratio over the grid: {min(self.ratio):.3g} to "
                f"{max(self.ratio):.3g} (fitted constant {self.fitted_constant:.3g})"
            )
        return "\n".join(lines)


def as_frame(data: Any):
    """A pandas DataFrame of ``data`` (a frame, a mapping of columns or row dicts).

    Examples
    --------
    >>> from hcl_stats.theory.rates import as_frame
    >>> as_frame([{"n": 100, "err": 0.5}, {"n": 400, "err": 0.25}]).shape
    (2, 2)
    >>> list(as_frame({"n": [100, 400], "err": [0.5, 0.25]}).columns)
    ['n', 'err']
    """
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "fit_rate requires pandas; install hcl_stats[study]"
        ) from exc
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, Mapping):
        return pd.DataFrame(dict(data))
    rows = list(data)
    if rows and not isinstance(rows[0], Mapping):
        raise ValidationError(
            "data must be a pandas DataFrame, a mapping of columns or a sequence of "
            f"row dicts; got a sequence of {type(rows[0]).__name__}."
        )
    return pd.DataFrame(rows)


def _bound_values(bound: Any, frame, grid: NDArray) -> NDArray | None:
    if bound is None:
        return None
    if isinstance(bound, str):
        if bound not in frame.columns:
            raise ValidationError(
                f"bound must be a callable or a column of data; got {bound!r} "
                f"(columns: {', '.join(map(str, frame.columns))})."
            )
        return np.array(
            [float(np.mean(frame.loc[frame["__x"] == g, bound])) for g in grid]
        )
    if callable(bound):
        vals = np.asarray(bound(grid), dtype=float)
        if vals.shape != grid.shape:
            raise ValidationError(
                f"bound(x) must return one value per grid point ({grid.size}); got "
                f"shape {vals.shape}."
            )
        return vals
    raise ValidationError(
        f"bound must be None, a callable or a column name; got {type(bound).__name__}."
    )


_RATE_COV_TYPES = ("HC0", "HC1", "HC2", "HC3")


def _numeric(frame: Any, cols: list[str]) -> NDArray[np.float64]:
    """The columns ``cols`` of ``frame`` as a float array; non-numeric cells raise."""
    try:
        return frame[cols].to_numpy(dtype=float)
    except (TypeError, ValueError):
        for col in cols:
            try:
                frame[col].to_numpy(dtype=float)
            except (TypeError, ValueError):
                raise ValidationError(
                    f"data[{col!r}] must be numeric; got dtype {frame[col].dtype} with "
                    f"values such as {short_repr(frame[col].iloc[0])}."
                ) from None
        raise  # pragma: no cover - one of the columns failed above


def _rate_inputs(data: Any, x: str, y: str, *, bound: Any, cov_type: str, alpha: float):
    """Check the arguments of :func:`fit_rate` before any regression runs.

    Returns the frame with a ``__x`` column, the kept ``x`` and ``y`` values, the
    grid of distinct ``x``, the bound on the grid (or None), the number of rows
    dropped for ``y <= 0`` and the checked ``alpha``.
    """
    frame = as_frame(data)
    for col in (x, y):
        if col not in frame.columns:
            raise ValidationError(
                f"data must have a column {col!r}; got columns "
                f"{', '.join(map(str, frame.columns))}."
            )
    alpha = check_real(alpha, "alpha", low=0.0, low_open=True, high=0.5)
    if cov_type not in _RATE_COV_TYPES:
        raise ValidationError(
            f"cov_type must be one of {', '.join(_RATE_COV_TYPES)}; got {cov_type!r}."
        )
    xs = _numeric(frame, [x])[:, 0]
    ys = _numeric(frame, [y])[:, 0]
    if np.any(~np.isfinite(xs)) or np.any(xs <= 0):
        raise ValidationError(f"data[{x!r}] must be positive and finite.")
    keep = np.isfinite(ys) & (ys > 0)
    n_dropped = int(np.sum(~keep))
    frame = frame.loc[keep].copy()
    frame["__x"] = xs[keep]
    xs, ys = xs[keep], ys[keep]
    grid, counts = np.unique(xs, return_counts=True)
    if grid.size < 2:
        raise ValidationError(
            f"data[{x!r}] must have at least two distinct values with positive "
            f"{y!r}; got {grid.size}."
        )
    # Arguments first: the bound is checked before any regression runs.
    bvals = _bound_values(bound, frame, grid)
    if bvals is not None and np.any(~(bvals > 0)):
        raise ValidationError("bound must be positive on the whole grid.")
    if isinstance(bound, str) and np.any(~(frame[bound].to_numpy(dtype=float) > 0)):
        raise ValidationError(f"data[{bound!r}] must be positive.")
    # Robust (HC) errors need every leverage h_ii < 1 (HC2/HC3 divide by 1 - h_ii,
    # HC1 by the residual degrees of freedom). In a regression on an intercept
    # and one slope, h_ii = 1 exactly when dropping row i leaves a single
    # distinct x, i.e. on a two-value grid where one value has only one row.
    if grid.size == 2 and counts.min() < 2:
        raise ValidationError(
            f"data[{x!r}] must have at least three distinct values, or at least two "
            f"rows with positive {y!r} at each of two values, for {cov_type} "
            f"standard errors; got {dict(zip(grid.tolist(), counts.tolist(), strict=True))} "
            "rows per value. Add replicates or grid points."
        )
    return frame, xs, ys, grid, bvals, n_dropped, alpha


def _bound_ratio(frame, bound, bvals, xs, ys, grid, geo, design, cov_type, q):
    """Empirical/bound ratios of :func:`fit_rate`: on the grid, fitted, per row, slope."""
    import statsmodels.api as sm

    if isinstance(bound, str):  # replicate-level bound values
        row_bound = frame[bound].to_numpy(dtype=float)
        bvals = np.array(
            [float(np.exp(np.mean(np.log(row_bound[xs == g])))) for g in grid]
        )
    else:
        row_bound = bvals[np.searchsorted(grid, xs)]
    ratio = tuple(float(v) for v in geo / bvals)
    per_row = np.log(ys) - np.log(row_bound)
    fitted = float(np.exp(np.mean(per_row)))
    max_rep = float(np.exp(np.max(per_row)))
    res_r = sm.OLS(per_row, design).fit(cov_type=cov_type)
    r_slope, r_se = float(res_r.params[1]), float(res_r.bse[1])
    r_ci = (r_slope - q * r_se, r_slope + q * r_se)
    return bvals, ratio, fitted, max_rep, r_slope, r_ci


def fit_rate(
    data: Any,
    x: str = "n_samples",
    y: str = "error",
    *,
    expected: float | None = -0.5,
    bound: Callable[[NDArray], NDArray] | str | None = None,
    cov_type: str = "HC3",
    alpha: float = 0.05,
) -> RateFit:
    """Fit the empirical rate ``y ~ x^b`` by OLS of ``log y`` on ``log x``.

    Parameters
    ----------
    data : pandas.DataFrame, mapping of columns or sequence of row dicts
        Tidy, replicate-level data (one row per replicate), e.g. a study store
        export filtered to one estimator and metric. Must contain columns ``x``
        and ``y``.
    x : str, default='n_samples'
        Column with the sample size (or any positive regressor).
    y : str, default='error'
        Column with the error (positive).
    expected : float or None, default=-0.5
        Theoretical exponent to test the slope against.
    bound : callable or str, optional
        Bound on the grid: a function of the distinct ``x`` values (an array)
        returning one value each, or a column name holding each replicate's bound
        (e.g. when the true model differs across replicates; geometric mean per
        ``x`` on the grid). Gives the ratio empirical/bound across the grid, the
        fitted constant, the slope of the ratio and the largest replicate ratio.
    cov_type : str, default='HC3'
        statsmodels heteroscedasticity-robust covariance (``'HC0'``-``'HC3'``).
    alpha : float, default=0.05
        ``1 - alpha`` is the CI level.

    Returns
    -------
    RateFit

    Raises
    ------
    ValidationError
        If a column is missing, ``x`` is not positive, ``cov_type`` is unknown, the
        bound is not positive, fewer than two distinct ``x`` values remain, or some
        row has leverage 1 (see Notes). All arguments are checked before any
        regression runs.
    ImportError
        Without pandas/statsmodels (``pip install hcl_stats[study]``).

    Notes
    -----
    Replicate-level regression: every replicate is one observation, so the CI
    reflects the Monte Carlo spread; robust (HC) errors allow the spread of
    ``log y`` to change with ``x``. Rows with ``y <= 0`` or non-finite values are
    dropped (counted in ``n_dropped``). The test statistic is
    ``(slope - expected) / se`` with a t reference on ``df_resid`` degrees of
    freedom, the convention of statsmodels' ``t_test``.

    Robust errors need every row's leverage ``h_ii`` below 1 (HC2 and HC3 divide
    by ``1 - h_ii``). With an intercept and one slope, ``h_ii = 1`` exactly when
    removing row ``i`` leaves a single distinct ``x``. The rule enforced is
    therefore: at least three distinct ``x`` values, or two values with at least
    two rows each (after dropping rows with ``y <= 0``).

    Examples
    --------
    >>> import numpy as np
    >>> n = np.repeat([100.0, 400.0, 1600.0], 2)
    >>> err = 3.0 * n ** -0.5 * np.tile([0.9, 1.1], 3)
    >>> fit = fit_rate({"n": n, "err": err}, x="n", y="err")
    >>> round(fit.slope, 6), fit.consistent
    (-0.5, True)
    """
    try:
        import statsmodels.api as sm
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("fit_rate requires statsmodels; install hcl_stats[study]") from exc
    from scipy import stats

    frame, xs, ys, grid, bvals, n_dropped, alpha = _rate_inputs(
        data, x, y, bound=bound, cov_type=cov_type, alpha=alpha
    )
    design = sm.add_constant(np.log(xs), has_constant="add")
    res = sm.OLS(np.log(ys), design).fit(cov_type=cov_type)
    slope, intercept = float(res.params[1]), float(res.params[0])
    se = float(res.bse[1])
    df = float(res.df_resid)
    q = float(stats.t.ppf(1.0 - alpha / 2.0, df)) if df > 0 else math.inf
    ci = (slope - q * se, slope + q * se)
    t_stat = p_value = None
    if expected is not None:
        expected = float(expected)
        t_stat = (slope - expected) / se if se > 0 else math.copysign(
            math.inf, slope - expected
        ) if slope != expected else 0.0
        p_value = float(2.0 * stats.t.sf(abs(t_stat), df)) if df > 0 else math.nan
    geo = np.array([float(np.exp(np.mean(np.log(ys[xs == g])))) for g in grid])
    ratio = fitted = max_rep = r_slope = r_ci = None
    if bvals is not None:
        bvals, ratio, fitted, max_rep, r_slope, r_ci = _bound_ratio(
            frame, bound, bvals, xs, ys, grid, geo, design, cov_type, q
        )
    return RateFit(
        x=x,
        y=y,
        slope=slope,
        ci=(float(ci[0]), float(ci[1])),
        se=se,
        intercept=intercept,
        expected=expected,
        t_stat=None if t_stat is None else float(t_stat),
        p_value=p_value,
        n_obs=int(ys.size),
        n_dropped=n_dropped,
        cov_type=cov_type,
        alpha=alpha,
        grid=tuple(float(g) for g in grid),
        geo_mean=tuple(float(v) for v in geo),
        bound=None if bvals is None else tuple(float(v) for v in bvals),
        ratio=ratio,
        fitted_constant=fitted,
        ratio_slope=r_slope,
        ratio_slope_ci=None if r_ci is None else (float(r_ci[0]), float(r_ci[1])),
        max_replicate_ratio=max_rep,
    )


def fit_rates(
    data: Any,
    x: str = "n_samples",
    y: str = "error",
    *,
    by: Sequence[str] = (),
    expected: float | None = -0.5,
    bound: Callable[..., NDArray] | str | None = None,
    cov_type: str = "HC3",
    alpha: float = 0.05,
):
    """:func:`fit_rate` for every group of ``by`` columns, as a tidy table.

    Parameters
    ----------
    data : pandas.DataFrame, mapping or sequence of row dicts
    x, y, expected, cov_type, alpha
        As in :func:`fit_rate`.
    by : sequence of str, default=()
        Grouping columns (e.g. ``("estimator", "dims")``).
    bound : callable, str or None
        A column name, or a callable ``bound(grid, group)`` receiving the grid and
        the group's key as a dict ``{column: value}``.

    Returns
    -------
    pandas.DataFrame
        One row per group: the ``by`` columns followed by
        :meth:`RateFit.to_record`.

    Examples
    --------
    One log-log fit per estimator; ``'a'`` decays at the expected ``n^{-1/2}``,
    ``'b'`` like ``n^{-1}``:

    >>> import numpy as np
    >>> from hcl_stats.theory.rates import fit_rates
    >>> n = np.tile(np.repeat([100.0, 400.0, 1600.0], 2), 2)
    >>> jitter = np.tile([0.9, 1.1], 6)
    >>> err = np.where(np.arange(12) < 6, 3.0 * n ** -0.5, 2.0 / n) * jitter
    >>> rows = {"est": ["a"] * 6 + ["b"] * 6, "n": n, "err": err}
    >>> table = fit_rates(rows, x="n", y="err", by=("est",))
    >>> [(e, round(s, 6), bool(c)) for e, s, c in
    ...  zip(table["est"], table["slope"], table["consistent"])]
    [('a', -0.5, True), ('b', -1.0, False)]
    """
    import pandas as pd

    frame = as_frame(data)
    by = list(by)
    for col in by:
        if col not in frame.columns:
            raise ValidationError(
                f"by must name columns of data; got {col!r} (columns: "
                f"{', '.join(map(str, frame.columns))})."
            )
    groups = [((), frame)] if not by else list(frame.groupby(by, sort=True))
    rows = []
    for key, sub in groups:
        key = key if isinstance(key, tuple) else (key,)
        labels = dict(zip(by, key, strict=True))
        b = bound
        if callable(bound):
            b = _bind(bound, labels)
        fit = fit_rate(
            sub, x, y, expected=expected, bound=b, cov_type=cov_type, alpha=alpha
        )
        rows.append({**labels, **fit.to_record()})
    return pd.DataFrame(rows)


def _bind(bound: Callable[..., NDArray], labels: dict) -> Callable[[NDArray], NDArray]:
    def inner(grid: NDArray) -> NDArray:
        return bound(grid, labels)

    return inner


@dataclass(frozen=True)
class TermFit:
    """Fit of ``y ~ sum_j c_j t_j`` (no intercept) on bound terms ``t_j``.

    Parameters
    ----------
    y : str
    terms : tuple of str
        Column names of the terms (e.g. ``K/m`` and the squared loading error).
    coef : tuple of float
        Fitted constants ``c_j``.
    ci : tuple of (float, float)
        ``1 - alpha`` confidence intervals (robust SE, t reference).
    r2 : float
        Weighted R^2 (uncentred, as there is no intercept).
    n_obs : int
    group : str or None
        Column whose per-value mean of ``y`` defines the weights.
    """

    y: str
    terms: tuple[str, ...]
    coef: tuple[float, ...]
    ci: tuple[tuple[float, float], ...]
    r2: float
    n_obs: int
    group: str | None

    def to_record(self) -> dict[str, Any]:
        """Flat dict: ``c[<term>]``, ``c[<term>]_low``/``_high`` and ``r2``."""
        out: dict[str, Any] = {"y": self.y, "n_obs": self.n_obs, "r2": self.r2}
        for t, c, (lo, hi) in zip(self.terms, self.coef, self.ci, strict=True):
            out[f"c[{t}]"] = c
            out[f"c[{t}]_low"] = lo
            out[f"c[{t}]_high"] = hi
        return out


def fit_terms(
    data: Any,
    y: str,
    terms: Sequence[str],
    *,
    group: str | None = None,
    cov_type: str = "HC3",
    alpha: float = 0.05,
) -> TermFit:
    """Fit the constants of an additive bound, e.g. ``risk ~ a K/m + b loading^2``.

    Weighted least squares of ``y`` on the term columns without intercept, at the
    replicate level. With ``group`` (e.g. the sample-size column), each row is
    weighted by ``1 / mean(y | group)^2``, so every grid point counts on a
    relative scale instead of the largest errors dominating.

    Parameters
    ----------
    data : pandas.DataFrame, mapping or sequence of row dicts
    y : str
        Error column.
    terms : sequence of str
        Term columns.
    group : str, optional
        Column defining the relative weights.
    cov_type : str, default='HC3'
    alpha : float, default=0.05

    Returns
    -------
    TermFit

    Examples
    --------
    >>> fit = fit_terms({"e": [3.0, 5.0, 4.0], "a": [1.0, 1.0, 0.0],
    ...                  "b": [1.0, 2.0, 2.0]}, "e", ["a", "b"])
    >>> [round(c, 6) for c in fit.coef]
    [1.0, 2.0]
    """
    try:
        import statsmodels.api as sm
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("fit_terms requires statsmodels; install hcl_stats[study]") from exc
    from scipy import stats

    frame = as_frame(data)
    if isinstance(terms, str) or not isinstance(terms, Sequence) or len(terms) == 0:
        raise ValidationError(
            f"terms must be a non-empty list of column names; got {short_repr(terms)}."
        )
    terms = list(terms)
    for col in [y, *terms, *([group] if group else [])]:
        if col not in frame.columns:
            raise ValidationError(
                f"data must have a column {col!r}; got columns "
                f"{', '.join(map(str, frame.columns))}."
            )
    frame = frame[np.isfinite(_numeric(frame, [y, *terms])).all(axis=1)]
    if len(frame) <= len(terms):
        raise ValidationError(
            f"data must have more rows with finite {y!r} and terms than terms "
            f"({len(terms)}); got {len(frame)}."
        )
    yy = frame[y].to_numpy(dtype=float)
    xx = frame[terms].to_numpy(dtype=float)
    if group:
        means = frame.groupby(group)[y].transform("mean").to_numpy(dtype=float)
        weights = 1.0 / np.maximum(means, np.finfo(float).tiny) ** 2
    else:
        weights = np.ones_like(yy)
    res = sm.WLS(yy, xx, weights=weights).fit(cov_type=cov_type)
    df = float(res.df_resid)
    q = float(stats.t.ppf(1.0 - alpha / 2.0, df)) if df > 0 else math.inf
    coef = tuple(float(c) for c in res.params)
    ses = tuple(float(s) for s in res.bse)
    resid = yy - xx @ np.asarray(coef)
    r2 = 1.0 - float(np.sum(weights * resid**2) / np.sum(weights * yy**2))
    return TermFit(
        y=y,
        terms=tuple(terms),
        coef=coef,
        ci=tuple((c - q * s, c + q * s) for c, s in zip(coef, ses, strict=True)),
        r2=r2,
        n_obs=int(yy.size),
        group=group,
    )
