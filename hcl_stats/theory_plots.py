"""Rate figures: empirical errors with a fitted-constant bound overlay (matplotlib).

:func:`plot_rate` draws replicate-level errors against a sample size on log-log
axes, their geometric mean per grid value, the theoretical bound scaled by *one*
fitted constant (labelled as such) and a text box with the slope and its
confidence interval from :func:`hcl_stats.theory.fit_rate`. It returns a
:class:`matplotlib.figure.Figure` built without pyplot (no global state).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .theory import RateFit, fit_rate

__all__ = ["plot_rate"]

_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#000000")


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

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> n = np.repeat([100.0, 400.0, 1600.0], 3)
    >>> err = 2.0 / np.sqrt(n) * np.tile([0.9, 1.0, 1.1], 3)
    >>> fig = plot_rate({"n": n, "err": err}, "n", "err", bound=lambda g: g ** -0.5)
    >>> "slope" in fig.axes[0].texts[0].get_text()
    True
    """
    from .theory import _as_frame

    frame = _as_frame(data)
    figure_cls = _figure_class()
    if ax is None:
        fig = figure_cls(figsize=(4.0, 3.0), layout="constrained")
        ax = fig.add_subplot(1, 1, 1)
    else:
        fig = ax.figure
    groups: Sequence[tuple[Any, Any]] = (
        [(None, frame)] if by is None else list(frame.groupby(by, sort=True))
    )
    lines = []
    for i, (key, sub) in enumerate(groups):
        colour = _COLOURS[i % len(_COLOURS)]
        b = bound
        if callable(bound) and by is not None:
            b = _bind(bound, key)
        fit: RateFit = fit_rate(sub, x, y, expected=expected, bound=b, cov_type=cov_type)
        xs = sub[x].to_numpy(dtype=float)
        ys = sub[y].to_numpy(dtype=float)
        keep = np.isfinite(ys) & (ys > 0)
        name = "" if key is None else f"{key}: "
        ax.scatter(xs[keep], ys[keep], s=6, alpha=0.35, color=colour, linewidths=0)
        grid = np.asarray(fit.grid)
        ax.plot(grid, fit.geo_mean, marker="o", color=colour,
                label=f"{name}empirical (geometric mean)")
        if fit.bound is not None:
            ax.plot(grid, fit.fitted_constant * np.asarray(fit.bound), linestyle="--",
                    color=colour,
                    label=f"{name}{bound_label} x fitted constant {fit.fitted_constant:.3g}")
        text = f"{name}slope {fit.slope:.3f} [{fit.ci[0]:.3f}, {fit.ci[1]:.3f}]"
        if expected is not None:
            text += f", p(={expected:g}) = {fit.p_value:.2g}"
        lines.append(text)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    head = f"95% CI of the log-log slope ({cov_type})"
    ax.text(0.02, 0.02, "\n".join([head, *lines]), transform=ax.transAxes, fontsize=6,
            va="bottom", ha="left",
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85, "linewidth": 0.5})
    ax.legend(fontsize=6, frameon=False, loc="upper right")
    return fig


def _bind(bound: Callable[..., Any], key: Any) -> Callable[[Any], Any]:
    def inner(grid: Any) -> Any:
        return bound(grid, key)

    return inner
