"""Hypothesis strategies for the project's tests.

``structures_and_dims`` and ``identifiable_models`` give designs on which the
Schur route applies (every view has more rows than its total rank), used by the
population tests of the Schur-based estimators. The edge of the rank budget
(``d_m`` from ``k_m - 3`` to ``k_m + 2``, ``d_m < r_S``, ``d <= K``, designs
without the Schur route) comes from the public kit :mod:`hcl_stats.testing`:
``edge_designs``, ``designs``, ``models``, ``near_unidentifiable_models``.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from hcl_stats import HierarchicalFactorModel, check_identifiable
from hcl_stats.testing.strategies import (
    designs,
    edge_designs,
    models,
    near_unidentifiable_models,
    schur_designs,
    structures,
)

__all__ = [
    "designs",
    "edge_designs",
    "identifiable_models",
    "models",
    "near_unidentifiable_models",
    "schur_designs",
    "structures",
    "structures_and_dims",
]


@st.composite
def structures_and_dims(draw, identifiable: bool = True, **kwargs):
    """A structure with dims; if ``identifiable``, the Schur route applies.

    Dims are built from the rank budget: each view gets at least its total rank
    ``k_m`` plus a random slack, so every view has more rows than the blocks
    need (the matching condition and ``d > K`` then hold).
    """
    kwargs.setdefault("max_views", 4)
    s = draw(structures(**kwargs))
    if identifiable:
        dims = tuple(
            s.view_rank(m) + draw(st.integers(1, 4)) for m in range(s.n_views)
        )
        return s, dims
    dims = tuple(draw(st.integers(1, 6)) for _ in range(s.n_views))
    return s, dims


@st.composite
def identifiable_models(draw, noise_var=None, **kwargs):
    """A random model on which the Schur route applies (checked)."""
    s, dims = draw(structures_and_dims(identifiable=True, **kwargs))
    seed = draw(st.integers(0, 2**32 - 1))
    nv = noise_var if noise_var is not None else draw(st.floats(0.1, 3.0))
    model = HierarchicalFactorModel.random(
        dims, s, noise_var=nv, singular_values=(0.5, 1.5), rng=np.random.default_rng(seed)
    )
    report = check_identifiable(model)
    assert report.identifiable, str(report)
    assert "schur" in report.exact_estimators, str(report)
    return model
