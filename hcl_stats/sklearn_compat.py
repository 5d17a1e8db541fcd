"""A scikit-learn transformer giving per-structure representations.

:class:`HCLTransformer` takes the stacked views ``X`` of shape ``(n, d)`` (views
side by side, widths ``dims``), and in ``fit`` preprocesses, selects the structure
(unless given) and fits the model with :func:`hcl_stats.workflow.fit_views`;
``transform`` returns ``h(x)`` for the chosen blocks. It can sit in a
``Pipeline`` before any classifier, so cross-validation refits it on each
training fold (no leakage). NaN rows of a view mean that view is missing.

Requires scikit-learn (``pip install hcl_stats[datasets]``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    from sklearn.base import BaseEstimator, TransformerMixin
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "hcl_stats.sklearn_compat requires scikit-learn; install hcl_stats[datasets]"
    ) from exc

from ._validation import check_choice, check_dims
from .exceptions import ValidationError

__all__ = ["HCLTransformer"]


class HCLTransformer(TransformerMixin, BaseEstimator):
    """Per-structure representation ``h(x) = (W^T Psi^-1 W)^-1 W^T Psi^-1 x`` as a transformer.

    Parameters
    ----------
    dims : tuple of int
        Widths of the views in the stacked ``X``.
    structure : str, optional
        Fixed structure (e.g. ``"ABC:2 C:1"``); None selects it on each ``fit``.
    blocks : {'shared', 'all', 'widest'}, default='shared'
        Which blocks' coordinates ``transform`` returns: blocks shared by at least
        two views, all blocks, or the blocks shared by the most views (the global
        block when it was selected).
    scale : {'view', 'feature', 'none'}, default='feature'
        Per-view scaling (:class:`hcl_stats.preprocessing.Preprocessor`).
    select : str, optional
        Structure learner (:data:`hcl_stats.estimators.learn.SELECTORS`); None
        means ``'schur_select'`` (see :func:`hcl_stats.workflow.fit_views`).
    select_options : dict, optional
        Keyword arguments of the learner (:func:`hcl_stats.workflow.fit_views`).
    estimator : str, default='masked_gradient'

    Attributes
    ----------
    views_fit_ : ViewsFit
    structure_ : Structure
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np, hcl_stats as hs
    >>> from hcl_stats.sklearn_compat import HCLTransformer
    >>> model = hs.HierarchicalFactorModel.random((5, 6), "AB:2 A:1 B:1", rng=0)
    >>> x = model.sample(300, rng=1).stacked
    >>> HCLTransformer((5, 6), structure="AB:2 A:1 B:1").fit_transform(x).shape
    (300, 2)
    """

    def __init__(
        self,
        dims: Any = (),
        *,
        structure: str | None = None,
        blocks: str = "shared",
        scale: str = "feature",
        select: str | None = None,
        select_options: dict | None = None,
        estimator: str = "masked_gradient",
    ) -> None:
        self.dims = dims
        self.structure = structure
        self.blocks = blocks
        self.scale = scale
        self.select = select
        self.select_options = select_options
        self.estimator = estimator

    def _views(self, x: Any):
        from .missing import IncompleteData
        from .model import MultimodalData

        dims = check_dims(self.dims)
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError):  # ragged nested lists
            arr = np.asarray(None)
        if arr.dtype.kind not in "fiu":
            raise ValidationError(
                "X must be a dense real array of shape (n, sum of dims) with NaN for "
                f"missing values; got {type(x).__name__} of dtype {arr.dtype}."
            )
        arr = arr.astype(np.float64)
        if arr.ndim != 2 or arr.shape[1] != sum(dims):
            raise ValidationError(
                f"X must have shape (n, {sum(dims)}) (sum of dims {dims}); got "
                f"{arr.shape}."
            )
        views = np.split(arr, np.cumsum(dims)[:-1], axis=1)
        if np.all(np.isfinite(arr)):
            return MultimodalData(views)
        return IncompleteData(views)

    def _chosen(self):
        s = self.structure_
        if self.blocks == "all":
            return list(s.blocks)
        if self.blocks == "widest":
            return [b for b in s.blocks if len(b) == len(s.blocks[0])]
        if self.blocks == "shared":
            return [b for b in s.blocks if len(b) >= 2]
        raise ValidationError(
            f"blocks must be one of 'shared', 'all', 'widest'; got {self.blocks!r}."
        )

    def fit(self, X: Any, y: Any = None) -> HCLTransformer:
        """Preprocess, select and fit on ``X`` of shape ``(n, d)``; ``y`` is ignored."""
        from .workflow import fit_views

        check_choice(self.blocks, "blocks", ("shared", "all", "widest"))
        data = self._views(X)
        self.views_fit_ = fit_views(
            data,
            structure=self.structure,
            estimator=self.estimator,
            scale=self.scale,
            select=self.select,
            select_options=self.select_options,
        )
        self.structure_ = self.views_fit_.fit.structure
        self.n_features_in_ = int(sum(self.dims))
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Representation of ``X``: shape ``(n, sum of r_S over the chosen blocks)``."""
        if not hasattr(self, "views_fit_"):
            raise ValidationError("HCLTransformer must be fitted before transform.")
        return self.views_fit_.transform(self._views(X), blocks=self._chosen())
