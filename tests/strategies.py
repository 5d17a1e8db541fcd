"""Hypothesis strategies that build only valid objects by construction."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import strategies as st

from hcl_stats import HierarchicalFactorModel, Structure, check_identifiable

__all__ = ["identifiable_models", "structures", "structures_and_dims"]


@st.composite
def structures(draw, min_views: int = 2, max_views: int = 4, max_rank: int = 3):
    """Random structures: a non-empty family of distinct view subsets with ranks."""
    m = draw(st.integers(min_views, max_views))
    subsets = [
        frozenset(c)
        for size in range(1, m + 1)
        for c in itertools.combinations(range(m), size)
    ]
    chosen = draw(
        st.lists(st.sampled_from(subsets), min_size=1, max_size=min(len(subsets), 8), unique=True)
    )
    ranks = draw(st.lists(st.integers(1, max_rank), min_size=len(chosen), max_size=len(chosen)))
    return Structure(m, tuple(chosen), tuple(ranks))


@st.composite
def structures_and_dims(draw, identifiable: bool = True, **kwargs):
    """A structure with dims; if ``identifiable``, all sufficient conditions hold.

    Dims are built from the rank budget: each view gets at least its total rank
    ``k_m`` plus a random slack, which makes ``d_O >= k_O`` and ``d > K`` hold.
    """
    s = draw(structures(**kwargs))
    if identifiable:
        dims = tuple(
            s.view_rank(m) + draw(st.integers(1, 4)) for m in range(s.n_modalities)
        )
        # guarantee d > K even when views carry no blocks
        return s, dims
    dims = tuple(draw(st.integers(1, 6)) for _ in range(s.n_modalities))
    return s, dims


@st.composite
def identifiable_models(draw, noise_var=None, **kwargs):
    """A random model satisfying every identifiability condition (checked)."""
    s, dims = draw(structures_and_dims(identifiable=True, **kwargs))
    seed = draw(st.integers(0, 2**32 - 1))
    nv = noise_var if noise_var is not None else draw(st.floats(0.1, 3.0))
    model = HierarchicalFactorModel.random(
        dims, s, noise_var=nv, singular_values=(0.5, 1.5), rng=np.random.default_rng(seed)
    )
    report = check_identifiable(model)
    assert report.identifiable, str(report)  # internal invariant of the strategy
    return model
