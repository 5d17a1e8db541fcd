"""Shared model access for :mod:`~hcl_stats.theory.limits` and :mod:`~hcl_stats.theory.predict`.

A private module with public names: the model check of the limits, the noise
variance per view and the loadings restricted to one row of a limits table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from .._validation import short_repr
from ..exceptions import ValidationError

if TYPE_CHECKING:
    from .limits import RowSpec


def check_uncorrelated_model(model: Any) -> None:
    """Raise :class:`ValidationError` unless ``model`` is a model with ``Cov(z) = I``."""
    from ..model import HierarchicalFactorModel

    if not isinstance(model, HierarchicalFactorModel):
        raise ValidationError(
            f"model must be a HierarchicalFactorModel; got {short_repr(model)}."
        )
    if model.latent_cov is not None:
        raise ValidationError(
            "model.latent_cov must be None (uncorrelated latents, Cov(z) = I): the "
            "limits are derived under that assumption; got a latent covariance."
        )


def noise_per_view(model: Any) -> NDArray[np.float64]:
    """The noise variance of each view, shape ``(M,)``."""
    nv = model.noise_var
    if np.ndim(nv) == 0:
        return np.full(len(model.dims), float(nv))
    return np.asarray(nv, dtype=float)


def row_loadings(model: Any, row: RowSpec) -> NDArray[np.float64]:
    """``W`` restricted to the row's views and columns, shape ``(p, |columns|)``."""
    w = np.asarray(model.loadings)
    cols = np.unique(np.concatenate(row.columns))
    parts = []
    for m, c in zip(row.views, row.columns, strict=True):
        block = np.zeros((model.dims[m], cols.size))
        pos = np.searchsorted(cols, c)
        block[:, pos] = w[model.row_slice(m)][:, c]
        parts.append(block)
    return np.vstack(parts)
