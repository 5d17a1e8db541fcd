"""Deprecated: moved to :mod:`hcl_stats.theory.plots` (this alias will be removed)."""

from __future__ import annotations

import warnings

from .theory.plots import plot_rate

__all__ = ["plot_rate"]

warnings.warn(
    "hcl_stats.theory_plots is deprecated; import from hcl_stats.theory.plots",
    DeprecationWarning,
    stacklevel=2,
)
