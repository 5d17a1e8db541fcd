"""Rate figures: empirical errors with a fitted-constant bound overlay (matplotlib).

:func:`plot_rate` draws replicate-level errors against a sample size on log-log
axes, their geometric mean per grid value, the theoretical bound scaled by *one*
fitted constant (dashed, in the colour of its line) and, right of the axes (never
on the data), a legend with one entry per line and the slopes with their
confidence intervals from :func:`hcl_stats.theory.rates.fit_rate`. It returns a
:class:`matplotlib.figure.Figure` built without pyplot (no global state).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..plotting import minor_label
from .rates import RateFit, as_frame, fit_rate

__all__ = ["plot_rate"]

_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#000000")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def _figure_class() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("plot_rate requires matplotlib; install hcl_stats[plots]") from exc
    return Figure


def plot_rate(
    data: Any,
    x: str = "n_samples",
    y: str = "error",
    *,
    by: str | None = None,
    expected: float | None = -0.5,
    bound: Callable[..., Any] | str | None = None,
    bound_label: str = "bound",
    cov_type: str = "HC3",
    ax: Any = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    style: Callable[[Any], Any] | None = None,
) -> Any:
    """Empirical error vs ``x`` with the bound scaled by one fitted constant.

    Parameters
    ----------
    data : pandas.DataFrame, mapping of columns or sequence of row dicts
        Tidy replicate-level data with columns ``x``, ``y`` (and ``by``).
    x, y : str
        Columns of the regressor and the error.
    by : str, optional
        One line (and one fit) per value of this column, e.g. ``"estimator"``.
    expected : float or None, default=-0.5
        Theoretical exponent (tested by :func:`~hcl_stats.theory.fit_rate`).
    bound : callable, str or None
        As in :func:`~hcl_stats.theory.fit_rate`; a callable receives the grid
        (and, with ``by``, the group value as a second argument). Drawn as a
        dashed curve multiplied by the fitted constant ``c_hat``.
    bound_label : str, default='bound'
        Legend name of the bound.
    cov_type : str, default='HC3'
    ax : matplotlib Axes, optional
        Draw into this axes (its figure is returned); a new figure otherwise.
    xlabel, ylabel : str, optional
        Axis labels (default: the column names).
    style : callable, optional
        ``style(group value)`` returns ``(colour, marker, display name[, line
        style])``, e.g. :func:`hcl_stats.plotting.estimator_style`; default: a
        fixed palette in group order and the group value as name.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> n = np.repeat([100.0, 400.0, 1600.0], 3)
    >>> err = 2.0 / np.sqrt(n) * np.tile([0.9, 1.0, 1.1], 3)
    >>> fig = plot_rate({"n": n, "err": err}, "n", "err", bound=lambda g: g ** -0.5)
    >>> "log-log slope" in fig.axes[0].get_legend().get_title().get_text()
    True
    """
    frame = as_frame(data)
    figure_cls = _figure_class()
    if ax is None:
        fig = figure_cls(figsize=(6.0, 3.0), layout="constrained")
        ax = fig.add_subplot(1, 1, 1)
    else:
        fig = ax.figure
    groups: Sequence[tuple[Any, Any]] = (
        [(None, frame)] if by is None else list(frame.groupby(by, sort=False))
    )
    handles = []
    for i, (key, sub) in enumerate(groups):
        colour, marker, label = _COLOURS[i % len(_COLOURS)], _MARKERS[i % len(_MARKERS)], key
        linestyle = "-"
        if style is not None and key is not None:
            st = tuple(style(key))
            colour, marker, label = st[:3]
            linestyle = st[3] if len(st) > 3 else "-"
        b = bound
        if callable(bound) and by is not None:
            b = _bind(bound, key)
        fit: RateFit = fit_rate(sub, x, y, expected=expected, bound=b, cov_type=cov_type)
        xs = sub[x].to_numpy(dtype=float)
        ys = sub[y].to_numpy(dtype=float)
        keep = np.isfinite(ys) & (ys > 0)
        name = "" if key is None else f"{label}: "
        ax.scatter(xs[keep], ys[keep], s=5, alpha=0.3, color=colour, linewidths=0)
        grid = np.asarray(fit.grid)
        (line,) = ax.plot(grid, fit.geo_mean, marker=marker, markersize=4, color=colour,
                          linestyle=linestyle, label=f"{name}empirical (geometric mean)")
        slope = f"{fit.slope:.3f} [{fit.ci[0]:.3f}, {fit.ci[1]:.3f}]"
        handles.append((line, f"geometric mean: {slope}" if key is None else f"{label}: {slope}"))
        if fit.bound is not None:
            ax.plot(grid, fit.fitted_constant * np.asarray(fit.bound), linestyle="--",
                    color=colour, linewidth=0.8, alpha=0.8,
                    label=f"{name}{bound_label} x fitted constant {fit.fitted_constant:.3g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter


    ticks = sorted({float(v) for v in frame[x]})
    if len(ticks) <= 8:  # label the design points, not powers of ten
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(minor_label))
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    from matplotlib.lines import Line2D

    keys = [Line2D([], [], color="0.4", marker="o", linestyle="none", markersize=2, alpha=0.5)]
    names = ["replicates"]
    if bound is not None:
        keys.append(Line2D([], [], color="0.4", linestyle="--", linewidth=0.8))
        names.append(f"{bound_label} x fitted constant")
    title = f"log-log slope, 95% CI ({cov_type})"
    if expected is not None:
        title += f"; theory: {expected:g}"
    legend = ax.legend([h for h, _ in handles] + keys, [n for _, n in handles] + names,
                       fontsize=6, frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                       borderaxespad=0.0, title=title, title_fontsize=6, alignment="left")
    legend.set_in_layout(True)
    return fig


def _bind(bound: Callable[..., Any], key: Any) -> Callable[[Any], Any]:
    def inner(grid: Any) -> Any:
        return bound(grid, key)

    return inner
