"""Hypothesis strategies for structures, designs at the rank budget, and models.

Needs ``hypothesis`` (the ``test`` extra). Every strategy builds valid objects by
construction; the identifiable / non-identifiable ones filter with the exact
criterion of :func:`hcl_stats.check_identifiable`.

Examples
--------
>>> from hypothesis import given
>>> from hcl_stats.testing.strategies import edge_designs
>>> @given(edge_designs())
... def test_my_condition(design):
...     structure, dims = design
"""

from __future__ import annotations

import itertools

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "hcl_stats.testing.strategies needs hypothesis; install it with "
        "pip install 'hcl_stats[test]' (or pip install hypothesis)."
    ) from exc

import numpy as np

from ..identifiability import check_identifiable
from ..structure import Structure
from ._models import random_model

__all__ = [
    "designs",
    "edge_designs",
    "models",
    "near_unidentifiable_models",
    "schur_designs",
    "structures",
]


@st.composite
def structures(draw, min_views: int = 2, max_views: int = 5, max_rank: int = 3,
               max_blocks: int = 8):
    """A non-empty family of distinct view subsets (absent blocks allowed) with ranks."""
    m = draw(st.integers(min_views, max_views))
    subsets = [frozenset(c) for size in range(1, m + 1)
               for c in itertools.combinations(range(m), size)]
    chosen = draw(st.lists(st.sampled_from(subsets), min_size=1,
                           max_size=min(len(subsets), max_blocks), unique=True))
    ranks = draw(st.lists(st.integers(1, max_rank), min_size=len(chosen),
                          max_size=len(chosen)))
    return Structure(m, tuple(chosen), tuple(ranks))


@st.composite
def edge_designs(draw, low: int = -3, high: int = 2, **kwargs):
    """``(structure, dims)`` with ``d_m`` from ``k_m + low`` to ``k_m + high``.

    ``k_m`` is the total rank of the blocks containing view ``m``; dims are at
    least 1 (views in no block get 1 to 3). This reaches ``d_m < r_S``,
    ``d <= K`` and designs without the Schur route. Keyword arguments go to
    :func:`structures`.
    """
    s = draw(structures(**kwargs))
    dims = []
    for m in range(s.n_views):
        k = s.view_rank(m)
        dims.append(max(1, k + draw(st.integers(low, high))) if k else
                    draw(st.integers(1, 3)))
    return s, tuple(dims)


def designs(identifiable: bool | None = True, noise: str = "scalar", **kwargs):
    """Edge designs that are (or are not) generically locally identifiable."""
    base = edge_designs(**kwargs)
    if identifiable is None:
        return base
    return base.filter(
        lambda sd: check_identifiable(sd[0], sd[1], noise=noise).identifiable
        is identifiable
    )


def schur_designs(noise: str = "scalar", **kwargs):
    """Edge designs on which the constructive Schur route applies."""
    return edge_designs(**kwargs).filter(
        lambda sd: "schur" in check_identifiable(sd[0], sd[1], noise=noise).exact_estimators
    )


@st.composite
def models(draw, identifiable: bool | None = True, noise: str = "scalar",
           noise_var=None, **kwargs):
    """A random model (Gaussian free loadings) on a drawn design.

    ``noise='per_view'`` draws one variance per view in ``[0.2, 3]``.
    """
    s, dims = draw(designs(identifiable, noise, **kwargs))
    seed = draw(st.integers(0, 2**32 - 1))
    if noise_var is None:
        if noise == "per_view":
            noise_var = draw(st.lists(st.floats(0.2, 3.0), min_size=len(dims),
                                      max_size=len(dims)))
        else:
            noise_var = draw(st.floats(0.2, 3.0))
    return random_model(s, dims, noise_var=noise_var, rng=np.random.default_rng(seed))


@st.composite
def near_unidentifiable_models(draw, condition=(1e2, 1e6), **kwargs):
    """An identifiable design with one block of condition number in ``condition``.

    ``cond(W^S)`` of the first block of rank >= 2 (else the first block) is drawn
    log-uniformly in the range: as it grows the model approaches the
    rank-deficient boundary and estimators lose ``log10(cond)`` digits or more.
    """
    lo, hi = condition
    s, dims = draw(designs(True, **kwargs))
    c = 10 ** draw(st.floats(np.log10(lo), np.log10(hi)))
    seed = draw(st.integers(0, 2**32 - 1))
    return random_model(s, dims, condition=c, rng=np.random.default_rng(seed))
