"""hcl_stats: estimation, identifiability and theory checks for hierarchical multi-view factor models.

The model (paper.md): ``M`` views ``x_m`` in ``R^{d_m}``; every block ``S`` of views in a
:class:`Structure` shares a latent ``z_S`` of rank ``r_S``::

    x_m = sum_{S contains m} W_m^S z_S + eps_m,   z ~ N(0, I_K),   eps_m ~ N(0, sigma^2 I).

Main entry points: :class:`Structure`, :class:`HierarchicalFactorModel`,
:class:`MultimodalData`, :func:`check_identifiable`, the estimators in
:mod:`hcl_stats.estimators` and the metrics in :mod:`hcl_stats.metrics`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import exceptions
from .model import HierarchicalFactorModel, MultimodalData, equicorrelation
from .results import Diagnostics, FitResult, Summary
from .structure import Structure

__version__ = "0.1.0"

if TYPE_CHECKING:  # imported on first use (PEP 562): ``import hcl_stats`` stays light
    from . import datasets, downstream, estimators, metrics, theory
    from .identifiability import Condition, IdentifiabilityReport, check_identifiable

#: Public attribute -> the module that defines it (a sub-package maps to itself).
_LAZY = {
    "datasets": "datasets",
    "downstream": "downstream",
    "estimators": "estimators",
    "metrics": "metrics",
    "theory": "theory",
    "Condition": "identifiability",
    "IdentifiabilityReport": "identifiability",
    "check_identifiable": "identifiability",
}

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
    "datasets",
    "downstream",
    "equicorrelation",
    "estimators",
    "exceptions",
    "metrics",
    "theory",
]


def __getattr__(name: str) -> Any:
    """Import a sub-package or an identifiability name on first access (PEP 562)."""
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'hcl_stats' has no attribute {name!r}")
    module = importlib.import_module(f".{where}", __name__)
    value = module if where == name else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
