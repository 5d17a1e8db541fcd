"""One entry point for structure learning: :func:`learn_structure`.

The package has six structure learners (:data:`SELECTORS`). :func:`learn_structure`
runs any of them by name and returns a structure the Schur refit can fit
(:func:`~hcl_stats.estimators.fittable.make_fittable`). ``hcl-stats fit`` (no
``--structure``), :func:`hcl_stats.workflow.fit_views` and
:class:`hcl_stats.sklearn_compat.HCLTransformer` use it, with the default
:data:`DEFAULT_SELECTOR`.

Why ``schur_select`` is the default (docs/structure_learning.md has the numbers):

- On data drawn from the model with strong signal and absent blocks (4 designs,
  M = 3 and 4, n = 2000 and 20000, 3 data sets each), it recovered the exact
  structure and ranks in 24 of 24 data sets. So did ``eigen`` and
  ``convex_fast``.
- ``correlation``, the previous default, was exact in 0 of 24 on its own. It
  added a specific block of rank 2-9 to every view, and on one design merged
  ``ABC`` and ``BD`` into ``ABCD:2``. After :func:`~hcl_stats.estimators.fittable.make_fittable` it was exact
  in 18 of 24; the merge remained.
- ``schur_select`` is deterministic and needs no solver: 0.01-0.3 s per data
  set, against 0.3-6 s for ``convex_fast``.
- It thresholds the same Schur-complement spectra that
  :mod:`hcl_stats.block_evidence` reports, so the evidence table explains the
  decisions of the learner that made them.
- ``eigen`` was as accurate and as fast on these designs. ``convex`` (cvxpy)
  needs memory growing like ``d^4``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from .._validation import check_choice, check_options
from ..structure import Structure
from ._base import Estimator

__all__ = [
    "DEFAULT_SELECTOR",
    "LearnAndFit",
    "LearnedStructure",
    "SELECTORS",
    "learn_structure",
]

#: Structure learners accepted by :func:`learn_structure` (``--select`` of the CLI).
SELECTORS = ("schur_select", "convex_fast", "convex", "eigen", "correlation", "slide")

#: The default learner (module docstring).
DEFAULT_SELECTOR = "schur_select"

#: Learners that refit loadings after selecting; :func:`learn_structure` skips the refit.
_REFITTING = ("schur_select", "convex_fast", "convex")


@dataclass(frozen=True)
class LearnedStructure:
    """Outcome of :func:`learn_structure`.

    Parameters
    ----------
    structure : Structure
        The structure to fit: the learner's selection after :func:`~hcl_stats.estimators.fittable.make_fittable`.
    selector : str
        The learner's name.
    selected : Structure
        The learner's own selection, before any rank was lowered.
    changes : tuple of str
        The ranks lowered so that the refit can fit the structure (empty if none).
    selection : StructureSelection or None
        The rank-counting outcome (``'eigen'``, ``'correlation'``), else None.
    scores : dict
        The learner's ``selection_scores`` (per block: eigenvalues, edge, rank).
    """

    structure: Structure
    selector: str
    selected: Structure
    changes: tuple[str, ...] = ()
    selection: Any = None
    scores: dict = field(default_factory=dict)


def learn_structure(
    data: Any,
    select: str = DEFAULT_SELECTOR,
    *,
    noise_rule: Any = "scalar",
    options: dict | None = None,
    rng: Any = None,
) -> LearnedStructure:
    """Learn a sharing structure with one of :data:`SELECTORS`; always fittable.

    Parameters
    ----------
    data : MultimodalData, IncompleteData (``'eigen'``, ``'correlation'`` only) or list of arrays of shape (n_samples, d_m)
        The views, already preprocessed.
    select : {'schur_select', 'convex_fast', 'convex', 'eigen', 'correlation', 'slide'}, default='schur_select'
        The learner: a registered estimator that learns the structure
        (``schur_select``, ``convex_fast``, ``convex``, ``slide``; its loadings
        are not refitted here), or a rank-counting method of
        :func:`hcl_stats.workflow.select_structure` (``eigen``, ``correlation``).
    noise_rule : {'scalar', 'per_view'} or float, default='scalar'
        The learner's noise option (estimators only; rank counting uses its own
        rule, see ``options``). The fittability check always keeps a noise
        direction in every view (``d_m > k_m``; :func:`~hcl_stats.estimators.fittable.make_fittable`).
    options : dict, optional
        Keyword arguments of the learner's constructor, or of
        :func:`~hcl_stats.workflow.select_structure` for rank counting.
    rng : None, int, SeedSequence or Generator
        For ``slide`` (cross-validation folds); the other learners are
        deterministic.

    Returns
    -------
    LearnedStructure

    Raises
    ------
    ValidationError
        If ``select`` is not one of :data:`SELECTORS`.
    NoStructureError
        If the learner selects no block, or no block survives
        :func:`~hcl_stats.estimators.fittable.make_fittable`; the message starts
        with "the data support no shared structure".

    Examples
    --------
    >>> import hcl_stats as hs
    >>> from hcl_stats.estimators.learn import learn_structure
    >>> m = hs.HierarchicalFactorModel.random((8, 12, 15), "ABC:2 AB:1 C:1",
    ...                                       singular_values=(2, 3), rng=0)
    >>> str(learn_structure(m.sample(2000, rng=1)).structure)
    'ABC:2 AB:1 C:1'
    """
    from ..missing import IncompleteData
    from ..model import MultimodalData
    from ._registry import get
    from .fittable import make_fittable
    from .rank_counting import select_structure

    select = check_choice(select, "select", SELECTORS)
    if select in ("eigen", "correlation"):
        options = check_options(options, "options", select_structure, taken=("data",))
    else:
        options = check_options(options, "options", get(select), taken=("noise_rule",))
    selection, scores, before = None, {}, ()
    if not isinstance(data, MultimodalData | IncompleteData):
        is_dataset = hasattr(data, "data") and hasattr(data, "view_names")
        data = data.data if is_dataset else MultimodalData(data)
    if select in ("eigen", "correlation"):
        options.pop("method", None)
        if isinstance(data, MultimodalData):
            from .._validation import outside_stacklevel
            from ._samples import warn_wide_covariance

            warn_wide_covariance(
                f"select={select!r}", data.dims, data.n_samples,
                advice="select='schur_select' (the default) learns the structure on the "
                       "sample path.", stacklevel=outside_stacklevel() + 1)
        selection = select_structure(data, method=select, **options)
        selected = selection.structure
        n_samples = int(data.n_samples)
        if hasattr(data, "observed"):  # IncompleteData: the fewest rows behind a block
            n_samples = int(np.min(np.asarray(data.observed).sum(axis=0)))
    else:
        if select in _REFITTING:
            options.setdefault("refit", "none")
        est = get(select)(noise_rule=noise_rule, **options)
        if not isinstance(data, MultimodalData):
            from ..exceptions import ValidationError

            raise ValidationError(
                f"data must be complete views for select={select!r}; got "
                f"{type(data).__name__}. Use select='eigen' or 'correlation' with "
                "missing views."
            )
        views = data
        fit = est.fit(views, rng=rng)
        extra = fit.diagnostics.extra
        selected = fit.structure
        if "selected_structure" in extra:
            selected = Structure.parse(extra["selected_structure"], n_views=len(data.dims))
        before = tuple(extra.get("fittable_changes") or ())
        scores = dict(extra.get("selection_scores") or {})
        n_samples = views.n_samples
    spectral = _Spectral.of(data)
    if not scores:  # rank the blocks' directions with the Schur selector's spectra
        scores = spectral.schur_scores(selected, n_samples)
    structure, changes = make_fittable(
        selected if select in ("eigen", "correlation") else fit.structure,
        tuple(data.dims), n_samples=n_samples, scores=scores,
        signal=spectral.signal(noise_rule), reduction=spectral.reduction)
    changes = (*before, *changes)
    if structure is None:  # pragma: no cover - the learners already apply it
        from ..exceptions import NoStructureError

        raise NoStructureError(
            f"the data support no shared structure that the refit can fit: {select} "
            f"selected {selected}; {'; '.join(changes)}."
        )
    if selected.view_names is not None and structure.view_names is None:
        structure = structure.with_names(selected.view_names)
    return LearnedStructure(structure, select, selected, changes, selection, scores)



@dataclass(frozen=True)
class _Spectral:
    """The covariance the fittability check and the fallback scores read.

    ``cov`` is the sample covariance (pairwise, with missing views), or, for
    complete views wide enough that ``path='auto'`` takes the sample path
    (:func:`~hcl_stats.estimators._samples.samples_pay_off`), the reduced ``S~``
    with its ``reduction``: the ``d x d`` matrix is then never formed, and every
    rule below gives the covariance path's result (module ``_samples``).
    """

    cov: Any
    dims: tuple[int, ...]
    reduction: Any = None

    @classmethod
    def of(cls, data: Any) -> _Spectral:
        from ..missing import pairwise_covariance
        from ..model import MultimodalData
        from ._samples import reduce_views, samples_pay_off

        dims = tuple(data.dims)
        if isinstance(data, MultimodalData) and samples_pay_off(dims, data.n_samples):
            cov, reduction = reduce_views(list(data.Xs), data.n_samples)
            return cls(cov, reduction.dims, reduction)
        return cls(pairwise_covariance(data).cov, dims)

    @property
    def full_dims(self) -> tuple[int, ...]:
        return self.dims if self.reduction is None else self.reduction.full_dims

    def signal(self, noise_rule: Any):
        """``structure -> (S - noise, noise)`` with the noise a refit estimates for it."""
        from ._base import signal_covariance
        from ._noise import estimate_noise_var_reduced

        def signal(structure: Structure):
            if isinstance(noise_rule, str):
                rule = "per_view" if noise_rule == "per_view" else "scalar"
                noise = estimate_noise_var_reduced(self.cov, self.dims, structure, rule,
                                                   self.full_dims)
            else:
                noise = (np.asarray(noise_rule, dtype=float) if np.ndim(noise_rule)
                         else float(noise_rule))
            return signal_covariance(self.cov, self.dims, noise), noise

        return signal

    def schur_scores(self, selected: Structure, n_samples: int) -> dict:
        """Schur-complement spectra of the blocks of ``selected`` (to rank them)."""
        from .selection import schur_scores

        return schur_scores(self.cov, self.dims, n_samples, candidates=tuple(selected.blocks),
                            full_dims=None if self.reduction is None else self.full_dims)[0]


@dataclass(frozen=True, kw_only=True)
class LearnAndFit(Estimator):
    """Learn the structure with :func:`learn_structure`, then fit it with ``refit``.

    The pipeline of ``hcl-stats fit`` without ``--structure`` as one estimator
    (registry name ``learn``), so that every learner of :data:`SELECTORS`,
    including the rank-counting methods ``eigen`` and ``correlation``, can be
    compared in a study on the same footing: the selection, the
    fittability check (:func:`~hcl_stats.estimators.fittable.make_fittable`) and
    the same refit estimator.

    Parameters
    ----------
    select : str, default='schur_select'
        One of :data:`SELECTORS`.
    refit : str, default='masked_shrink'
        Registry name of the estimator that fits the learned structure.
    select_options : mapping, optional
        Passed to :func:`learn_structure` as ``options``.
    refit_options : mapping, optional
        Keyword arguments of the refit estimator beyond ``noise_rule``, e.g.
        ``{"view_weights": False}`` for ``masked_shrink`` with one shrinkage
        weight per component (what the committed learner studies pin).
    noise_rule : {'scalar', 'per_view'} or float, default='scalar'
        The noise option of the learner and of the refit.

    Raises
    ------
    NoStructureError
        From :meth:`fit`, when the learner selects no block.

    Examples
    --------
    >>> import hcl_stats as hs
    >>> m = hs.HierarchicalFactorModel.random((8, 12, 15), "ABC:2 AB:1 C:1",
    ...                                       singular_values=(2, 3), rng=0)
    >>> fit = hs.estimators.get("learn")(select="eigen").fit(m.sample(2000, rng=1))
    >>> str(fit.structure), fit.diagnostics.extra["selector"]
    ('ABC:2 AB:1 C:1', 'eigen')
    """

    name: ClassVar[str] = "learn"
    learns_structure: ClassVar[bool] = True
    needs_data: ClassVar[bool] = True

    select: str = DEFAULT_SELECTOR
    refit: str = "masked_shrink"
    select_options: Mapping[str, Any] | None = None
    refit_options: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        from ._registry import available

        check_choice(self.select, "select", SELECTORS)
        check_choice(self.refit, "refit", available())
        self._refit_estimator()  # bad refit_options fail here, with the refit's own error

    def _refit_estimator(self) -> Any:
        from ..exceptions import ValidationError
        from ._registry import get

        cls = get(self.refit)
        opts = check_options(self.refit_options, "refit_options", cls, taken=("noise_rule",))
        try:
            return cls(noise_rule=self.noise_rule, **opts)
        except ValidationError as exc:
            if not opts:
                raise
            raise ValidationError(
                f"refit_options={opts!r} do not make a valid refit {self.refit!r}: {exc}"
            ) from None

    def fit(
        self,
        views: Any,
        *,
        structure: Structure | str | None = None,
        init: Any = None,
        rng: Any = None,
        path: str = "auto",
        n_effective: int | None = None,
    ) -> Any:
        """Learn the structure (unless ``structure`` is given) and fit it.

        Parameters
        ----------
        views : MultimodalData or list of array_like of shape (n_samples, d_m)
        structure : Structure or str, optional
            If given, no learning: the refit estimator fits it.
        init, rng, path
            As in :meth:`Estimator.fit` (``rng`` also seeds ``slide``'s folds).
        n_effective : int, optional
            As in :meth:`Estimator.fit`, with a given ``structure`` only (the
            learners of :func:`learn_structure` read the number of rows).

        Raises
        ------
        ValidationError
            If ``n_effective`` is given without ``structure``.

        Returns
        -------
        FitResult
            The refit's result; ``diagnostics.extra`` adds ``selector``,
            ``selected_structure`` (before any rank was lowered) and
            ``fittable_changes``.
        """
        est = self._refit_estimator()
        if self._cache is not None and hasattr(est, "with_cache"):
            est = est.with_cache(self._cache)
        if structure is not None:
            return est.fit(views, structure=structure, init=init, rng=rng, path=path,
                           n_effective=n_effective)
        if n_effective is not None:
            from ..exceptions import ValidationError

            raise ValidationError(
                f"n_effective applies to a given structure in LearnAndFit.fit; got "
                f"n_effective={n_effective!r} with structure=None (the structure "
                "learners read the number of rows). Pass structure=..., or fit the "
                "learner itself (e.g. SchurSelect().fit(views, n_effective=...)).")
        learned = learn_structure(views, self.select, noise_rule=self.noise_rule,
                                  options=dict(self.select_options or {}), rng=rng)
        fit = est.fit(views, structure=learned.structure, init=init, rng=rng, path=path)
        extra = {**fit.diagnostics.extra, "selector": self.select,
                 "selected_structure": str(learned.selected),
                 "fittable_changes": list(learned.changes)}
        return replace(fit, diagnostics=replace(fit.diagnostics, extra=extra))

    def _fit(self, problem: Any, rng: Any) -> Any:  # pragma: no cover - fit is overridden
        raise NotImplementedError("LearnAndFit fits through fit(views)")

    def fit_covariance(self, cov: Any, *, dims: Sequence[int], **kwargs: Any) -> Any:
        """Not available: the learners of :data:`SELECTORS` need the rows.

        Raises
        ------
        ValidationError
            Always.
        """
        from ..exceptions import ValidationError

        raise ValidationError(
            "LearnAndFit needs the rows (select methods 'eigen', 'correlation' and "
            "'slide' read them); call fit(views), or fit_covariance of a learner "
            "such as 'schur_select' directly."
        )
