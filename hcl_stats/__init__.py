"""hcl_stats: estimation, identifiability and theory checks for hierarchical multi-view factor models.

The model (paper.md): ``M`` views ``x_m`` in ``R^{d_m}``; every block ``S`` of views in a
:class:`Structure` shares a latent ``z_S`` of rank ``r_S``::

    x_m = sum_{S contains m} W_m^S z_S + eps_m,   z ~ N(0, I_K),   eps_m ~ N(0, sigma^2 I).

Main entry points: :class:`Structure`, :class:`HierarchicalFactorModel`,
:class:`MultimodalData`, :func:`check_identifiable`, the estimators in
:mod:`hcl_stats.estimators` and the metrics in :mod:`hcl_stats.metrics`.
"""

from __future__ import annotations

from . import downstream, estimators, exceptions, metrics, theory
from .identifiability import Condition, IdentifiabilityReport, check_identifiable
from .model import HierarchicalFactorModel, MultimodalData, equicorrelation
from .results import Diagnostics, FitResult, Summary
from .structure import Structure

__version__ = "0.1.0"

__all__ = [
    "Condition",
    "Diagnostics",
    "FitResult",
    "HierarchicalFactorModel",
    "IdentifiabilityReport",
    "MultimodalData",
    "Structure",
    "Summary",
    "__version__",
    "check_identifiable",
    "downstream",
    "equicorrelation",
    "estimators",
    "exceptions",
    "metrics",
    "theory",
]
