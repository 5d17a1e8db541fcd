"""Estimators of hierarchical multi-view factor models, and their registry.

Every estimator is a frozen dataclass holding only hyper-parameters;
``fit(views, structure=...)`` and ``fit_covariance(cov, dims=..., structure=...)``
return an immutable :class:`~hcl_stats.results.FitResult`.

Registry names (used by study configs and ``hcl-stats fit --estimator``):

==================  ==========================================================
``naive``           :class:`NaivePCA`, structure-blind top-K factor
``schur``           :class:`SchurComplement`, closed form, bottom-up
``masked_gradient`` :class:`MaskedGradient`, Schur start + masked L-BFGS refinement
``slide``           :class:`SLIDE`, learns the structure (group path + bi-CV)
``slide_fixed``     :class:`SLIDEFixed`, SLIDE's fit with a given structure
``ajive``           :class:`AJIVE`, joint (all views) + individual blocks
``gcca``            :class:`GCCA`, MAXVAR generalised CCA, global block only
``mofa``            :class:`MOFA`, MOFA+ adapter (needs ``hcl_stats[peers]``)
``convex``          :class:`ConvexRelaxation`, learns structure+ranks (cvxpy)
``convex_fast``     :class:`ConvexFast`, same program, our first-order solver
``schur_select``    :class:`SchurSelect`, Schur spectra vs noise edge + refit
``zero``            :class:`ZeroEstimator`, ``W = 0`` (the trivial baseline)
``pca_shrink``      :class:`PCAShrink`, top-K PCA, MP-edge truncation + optimal shrinkage
``schur_shrink``    :class:`SchurShrink`, Schur recursion with per-step shrinkage
``masked_shrink``   :class:`MaskedShrink`, masked refinement + per-block shrinkage
``masked_multistart`` :class:`MaskedMultistart`, joint masked fit from several starts
``missing_views``   :class:`MissingViews`, missing views: pairwise covariance + selection + fit
``learn``           :class:`LearnAndFit`, any learner of ``learn_structure`` + a refit
==================  ==========================================================

(``masked_multistart`` needs only generic local identifiability, not the Schur
route; see :func:`hcl_stats.check_identifiable`.)
"""

from __future__ import annotations

from ._base import Estimator, estimate_noise_var, signal_covariance
from ._cache import SpectralCache
from ._registry import (
    DEFAULT,
    ESTIMATORS,
    available,
    get,
    register,
    sample_path_estimators,
)
from .convex import ConvexFast, ConvexRelaxation
from .jive import AJIVE, GCCA
from .learn import LearnAndFit
from .missing_views import MissingViews
from .multistart import MaskedMultistart
from .peers import MOFA
from .refine import MaskedGradient, masked_loss
from .selection import SchurSelect
from .shrinkage import MaskedShrink, PCAShrink, SchurShrink
from .slide import SLIDE, SLIDEFixed
from .spectral import NaivePCA, SchurComplement, schur_loadings
from .trivial import ZeroEstimator

__all__ = [
    "AJIVE",
    "ConvexFast",
    "ConvexRelaxation",
    "DEFAULT",
    "GCCA",
    "LearnAndFit",
    "MOFA",
    "SLIDE",
    "SLIDEFixed",
    "Estimator",
    "MaskedGradient",
    "MaskedMultistart",
    "MaskedShrink",
    "MissingViews",
    "NaivePCA",
    "PCAShrink",
    "SchurComplement",
    "SchurSelect",
    "SchurShrink",
    "SpectralCache",
    "ZeroEstimator",
    "available",
    "estimate_noise_var",
    "get",
    "masked_loss",
    "register",
    "sample_path_estimators",
    "schur_loadings",
    "signal_covariance",
]

# the table in the module docstring lists every built-in registration below
for _cls in (
    NaivePCA, SchurComplement, MaskedGradient, SLIDE, SLIDEFixed, AJIVE, GCCA, MOFA,
    ConvexRelaxation, ConvexFast, SchurSelect,
    ZeroEstimator, PCAShrink, SchurShrink, MaskedShrink,
    MaskedMultistart, MissingViews, LearnAndFit,
):
    register(_cls)
del _cls

_REGISTRY = ESTIMATORS  # the old private name, still reached by some callers
