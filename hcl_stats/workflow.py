"""Real-data workflow: select a structure, fit, explain variance, check stability, transform.

The pieces, each usable alone:

- :func:`select_structure`: which views share latent blocks, and with what rank,
  from a covariance (complete or pairwise-complete) by *rank counting*;
- :func:`fit_views`: preprocess, select (unless a structure is given) and fit, in
  one call, returning a :class:`ViewsFit`;
- :func:`variance_explained`: the share of each view's total variance carried by
  each block (a table and a heatmap);
- :func:`bootstrap_stability`: how often each block is selected when the samples
  are resampled;
- :func:`transform`: per-structure representations
  ``h(x) = (W^T Psi^{-1} W)^{-1} W^T Psi^{-1} x`` for downstream learners.

Rank counting, the selection rule, is documented in
:mod:`hcl_stats.estimators.rank_counting` (re-exported here).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._validation import (
    as_generator,
    check_choice,
    check_covariance,
    check_int,
    check_options,
    keyword_alias,
    short_repr,
)
from .estimators.learn import DEFAULT_SELECTOR, SELECTORS, learn_structure
from .estimators.rank_counting import StructureSelection, select_structure
from .exceptions import ValidationError
from .missing import IncompleteData, fit_missing, pairwise_covariance
from .model import MultimodalData
from .preprocessing import Preprocessor, check_scales
from .structure import Structure, format_block

__all__ = [
    "BootstrapStability",
    "StructureSelection",
    "VarianceExplained",
    "ViewsFit",
    "bootstrap_stability",
    "fit_views",
    "select_structure",
    "transform",
    "variance_explained",
]


def _as_data(data: Any) -> MultimodalData | IncompleteData:
    if isinstance(data, MultimodalData | IncompleteData):
        return data
    if hasattr(data, "data") and hasattr(data, "view_names"):  # MultiViewDataset
        return data.data
    return MultimodalData(data)


@dataclass(frozen=True, eq=False)
class VarianceExplained:
    """Share of each view's total variance carried by each block.

    Parameters
    ----------
    rows : tuple of str
        Block labels (canonical order), then ``'noise'`` and ``'residual'``.
    view_names : tuple of str
    values : ndarray of shape (len(rows), M)
        ``tr(W_m^S W_m^S^T) / tr(Sigma_mm)``; NaN where ``m`` is not in ``S``. The
        ``noise`` row is ``d_m sigma_m^2 / tr(Sigma_mm)``; ``residual`` is what the
        fitted covariance misses, ``1 - signal - noise`` (negative when the fit
        over-explains the view).
    """

    rows: tuple[str, ...]
    view_names: tuple[str, ...]
    values: NDArray[np.float64]

    def to_markdown(self, digits: int = 3) -> str:
        """Markdown table (rounded here only)."""
        head = "| block | " + " | ".join(self.view_names) + " |"
        sep = "|---|" + "---:|" * len(self.view_names)
        lines = [head, sep]
        for name, row in zip(self.rows, self.values, strict=True):
            cells = ["" if np.isnan(v) else f"{v:.{digits}f}" for v in row]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def plot(self, ax: Any = None, title: str | None = None) -> Any:
        """Heatmap of the block rows (not noise/residual); returns the Figure."""
        try:
            import matplotlib.pyplot as plt
        except ImportError as exc:  # pragma: no cover
            raise ImportError("plot requires matplotlib; install hcl_stats[plots]") from exc
        blocks = [i for i, r in enumerate(self.rows) if r not in ("noise", "residual")]
        vals = self.values[blocks]
        if ax is None:
            fig, ax = plt.subplots(
                figsize=(1.2 + 0.9 * len(self.view_names), max(2.8, 1.0 + 0.35 * len(blocks)))
            )
        else:
            fig = ax.figure
        masked = np.ma.masked_invalid(vals)
        im = ax.imshow(masked, cmap="viridis", vmin=0.0, vmax=max(float(np.nanmax(vals)), 1e-12), aspect="auto")
        long = max(len(v) for v in self.view_names) > 6  # long names would overlap
        ax.set_xticks(range(len(self.view_names)), self.view_names,
                      rotation=30 if long else 0, ha="right" if long else "center")
        ax.set_yticks(range(len(blocks)), [self.rows[i] for i in blocks])
        for i in range(vals.shape[0]):
            for j in range(vals.shape[1]):
                if not np.isnan(vals[i, j]):
                    ax.text(j, i, f"{vals[i, j]:.2f}", ha="center", va="center",
                            color="white" if vals[i, j] < 0.6 * np.nanmax(vals) else "black",
                            fontsize=7)
        ax.set_xlabel("view")
        ax.set_ylabel("block (rank)")
        if title:
            ax.set_title(title)
        fig.colorbar(im, ax=ax, label="share of view variance")
        fig.tight_layout()
        return fig


def variance_explained(fit: Any, cov: NDArray, view_names: Sequence[str] | None = None) -> VarianceExplained:
    """Share of each view's total variance explained by each block of a fit.

    Parameters
    ----------
    fit : FitResult
        A structured fit.
    cov : ndarray of shape (d, d)
        The covariance the fit was computed from (gives ``tr(Sigma_mm)``).
    view_names : sequence of str, optional

    Returns
    -------
    VarianceExplained

    Examples
    --------
    >>> import numpy as np, hcl_stats as hs
    >>> from hcl_stats.workflow import variance_explained
    >>> model = hs.HierarchicalFactorModel.random((3, 4), "AB:1 A:1", noise_var=0.5, rng=0)
    >>> fit = hs.estimators.SchurComplement().fit_covariance(
    ...     model.covariance(), dims=(3, 4), structure=model.structure)
    >>> ve = variance_explained(fit, model.covariance())
    >>> bool(np.allclose(np.nansum(ve.values, axis=0), 1.0))
    True
    """
    from .model import HierarchicalFactorModel
    from .results import FitResult

    if not isinstance(fit, FitResult | HierarchicalFactorModel):
        raise ValidationError(
            f"fit must be a FitResult or a HierarchicalFactorModel; got {short_repr(fit)}."
        )
    cov = check_covariance(cov, "cov", dim=sum(fit.dims))
    total = np.array([float(np.trace(cov[fit.row_slice(m), fit.row_slice(m)]))
                      for m in range(len(fit.dims))])
    return _shares(fit, total, view_names)


def _shares(fit: Any, total: NDArray, view_names: Sequence[str] | None) -> VarianceExplained:
    """:func:`variance_explained` given each view's total variance ``tr(Sigma_mm)``."""
    names = tuple(view_names) if view_names is not None else fit.structure.names
    if len(names) != len(fit.dims):
        raise ValidationError(
            f"view_names must have one name per view ({len(fit.dims)}); got {short_repr(view_names)}."
        )
    s = fit.structure
    n_views = len(fit.dims)
    psi = np.broadcast_to(np.asarray(fit.noise_var, dtype=float), (n_views,))
    rows, vals = [], []
    signal = np.zeros(n_views)
    for b, r in zip(s.blocks, s.ranks, strict=True):
        row = np.full(n_views, np.nan)
        for m in sorted(b):
            row[m] = float(np.sum(fit.block(m, b) ** 2)) / total[m]
            signal[m] += row[m]
        rows.append(f"{format_block(b)}:{r}")
        vals.append(row)
    noise = np.array(fit.dims) * psi / total
    rows += ["noise", "residual"]
    vals += [noise, 1.0 - signal - noise]
    return VarianceExplained(tuple(rows), names, np.array(vals))


@dataclass(frozen=True, eq=False)
class ViewsFit:
    """Outcome of :func:`fit_views`.

    Parameters
    ----------
    fit : FitResult
        The fit on the preprocessed views.
    preprocessor : Preprocessor
        Apply ``preprocessor.transform`` to new samples before :func:`transform`.
    selection : StructureSelection or None
        The rank-counting outcome when ``select`` was ``'eigen'`` or
        ``'correlation'``; None otherwise (a given structure or another learner).
    cov : ndarray of shape (d, d) or None
        The (pairwise-complete, PSD) covariance of the preprocessed views; None
        for complete views with ``d > n``, which :func:`fit_views` fits without
        it (:meth:`covariance` forms it on demand).
    n_per_block : ndarray of shape (M, M)
        Samples observing each pair of views.
    view_names : tuple of str
    extra : dict
        With a learned structure: ``select`` (the learner), ``selected`` (its
        selection) and ``fittable_changes`` (ranks lowered so that it is fittable).
    data : MultimodalData or None
        The preprocessed views when ``cov`` is None (``d > n``); None otherwise.
    """

    fit: Any
    preprocessor: Preprocessor
    selection: StructureSelection | None
    cov: NDArray[np.float64] | None
    n_per_block: NDArray[np.int64]
    view_names: tuple[str, ...]
    extra: dict = field(default_factory=dict)
    data: MultimodalData | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.data is not None and not isinstance(self.data, MultimodalData):
            raise ValidationError(
                "data must be the complete preprocessed views (MultimodalData) or None; "
                f"got {short_repr(self.data)}. Missing views go through cov."
            )
        if self.cov is None and self.data is None:
            raise ValidationError(
                "ViewsFit needs cov (the covariance) or data (the views to form it "
                "from); got cov=None and data=None."
            )

    def covariance(self) -> NDArray[np.float64]:
        """:attr:`cov`, or the covariance of :attr:`data` formed now (not stored)."""
        return self.cov if self.cov is not None else pairwise_covariance(self.data).cov

    def variance_explained(self) -> VarianceExplained:
        """See :func:`variance_explained` (from each view's variance when ``cov`` is None)."""
        if self.data is None:
            return variance_explained(self.fit, self.cov, self.view_names)
        n = self.data.n_samples
        total = np.array([float(np.sum((x - x.mean(axis=0)) ** 2)) / (n - 1)
                          for x in self.data.Xs])
        return _shares(self.fit, total, self.view_names)

    def transform(self, views: Any, blocks: Any = None) -> NDArray[np.float64]:
        """Preprocess ``views`` and return their representation (see :func:`transform`)."""
        return transform(self.fit, self.preprocessor.transform(_as_data(views)), blocks=blocks)


def fit_views(
    data: Any,
    *,
    structure: Structure | str | None = None,
    estimator: Any = "masked_gradient",
    center: bool = True,
    scale: str = "view",
    noise_rule: Any = None,
    select: str | None = None,
    select_options: dict | None = None,
    rng: Any = None,
    noise_var: Any = None,
) -> ViewsFit:
    """Preprocess, select a structure (unless given) and fit; complete or missing views.

    Parameters
    ----------
    data : MultiViewDataset, MultimodalData, IncompleteData or list of arrays
    structure : Structure or str, optional
        If None, learned with ``select`` (:func:`hcl_stats.estimators.learn.learn_structure`),
        unless ``estimator`` learns the structure itself (e.g. ``'schur_select'``,
        ``'convex_fast'``).
    estimator : str or Estimator, default='masked_gradient'
        Registry name or instance; a name is built with ``noise_rule``.
    center, scale
        See :class:`hcl_stats.preprocessing.Preprocessor`.
    noise_rule : default='per_view'
        The estimator's noise option once the structure is known (None means
        the default).
    noise_var : optional
        Deprecated spelling of ``noise_rule`` (DeprecationWarning).
    select : {'schur_select', 'convex_fast', 'convex', 'eigen', 'correlation', 'slide'}, optional
        The structure learner; default ``'schur_select'``
        (:data:`hcl_stats.estimators.learn.DEFAULT_SELECTOR`, chosen on the evidence
        in docs/structure_learning.md), or ``select_options['method']`` when that is
        given (the behaviour before ``select`` existed). The learned structure is
        lowered, if needed, until the estimator can fit it.
    select_options : dict, optional
        Keyword arguments of the learner: of :func:`select_structure` for
        ``'eigen'`` and ``'correlation'`` (``method`` picks one of them when
        ``select`` is None; without ``method`` the rank-counting default
        ``'eigen'`` is used, as before), else of the learner's constructor.
    rng : None, int, SeedSequence or Generator

    Returns
    -------
    ViewsFit

    Warns
    -----
    ScaleWarning
        When ``scale`` is not ``'feature'`` and the column standard deviations
        of the preprocessed views differ by more than ``1e4``
        (:func:`hcl_stats.preprocessing.check_scales`).

    Examples
    --------
    >>> import hcl_stats as hs
    >>> from hcl_stats.workflow import fit_views
    >>> m = hs.HierarchicalFactorModel.random((5, 6), "AB:1 A:1", noise_var=0.1, rng=0)
    >>> vf = fit_views(m.sample(500, rng=0), structure="AB:1 A:1", estimator="schur",
    ...                rng=0)
    >>> vf.fit.loadings.shape, vf.view_names
    ((11, 2), ('A', 'B'))
    """
    from . import estimators

    noise_rule = keyword_alias(noise_rule, "noise_rule", noise_var, "noise_var")
    noise_rule = "per_view" if noise_rule is None else noise_rule
    raw = _as_data(data)
    names = tuple(getattr(data, "view_names", None) or raw.view_names or Structure.all_subsets(raw.n_views, 1).names)
    pre = Preprocessor.fit(raw, center=center, scale=scale)
    prepped = pre.transform(raw)
    if scale != "feature":  # standardised columns cannot differ in scale
        check_scales(prepped, names, advice="use scale='feature'")
    # keep the smaller of the covariance and the views
    cov, kept = None, None
    if isinstance(prepped, IncompleteData) or sum(prepped.dims) <= prepped.n_samples:
        pc = pairwise_covariance(prepped)  # validates the overlaps of missing views
        n_per_block, cov = pc.n_per_block, pc.cov
    else:  # wide: no d x d covariance (ViewsFit.covariance() forms it if asked)
        n_per_block = np.full((prepped.n_views,) * 2, prepped.n_samples, dtype=np.int64)
        kept = prepped
    est = estimators.get(estimator)(noise_rule=noise_rule) if isinstance(estimator, str) else estimator
    if not isinstance(est, estimators.Estimator):
        raise ValidationError(
            "estimator must be a registry name or an Estimator instance; got "
            f"{short_repr(estimator)}. Registry names: {', '.join(estimators.available())}."
        )
    selection, extra = None, {}
    if structure is None and not type(est).learns_structure:
        if not isinstance(select_options, Mapping | None):
            raise ValidationError(
                "select_options must be a dict of keyword arguments of the structure "
                f"learner; got {short_repr(select_options)}."
            )
        options = dict(select_options or {})
        if select is None:
            select = options.pop("method", "eigen") if options else DEFAULT_SELECTOR
        select = check_choice(select, "select", SELECTORS)
        if select in ("eigen", "correlation"):
            options["view_names"] = names
        learned = learn_structure(prepped, select, noise_rule=est.noise_rule,
                                  options=options, rng=rng)
        selection, structure = learned.selection, learned.structure
        extra = {"select": select, "selected": learned.selected,
                 "fittable_changes": learned.changes}
    if isinstance(prepped, IncompleteData):
        fit = fit_missing(est, prepped, structure=structure, rng=rng)
    else:
        fit = est.fit(MultimodalData(prepped.Xs, names), structure=structure, rng=rng)
    return ViewsFit(fit, pre, selection, cov, n_per_block, names, extra, data=kept)


@dataclass(frozen=True, eq=False)
class BootstrapStability:
    """Selection frequencies of blocks under bootstrap resampling of the samples.

    Parameters
    ----------
    blocks : tuple of frozenset
        Every block selected at least once, canonical order.
    frequency : ndarray of shape (n_blocks,)
        Fraction of resamples that selected the block (any rank).
    rank_counts : list of dict
        For each block, ``rank -> number of resamples``.
    view_names : tuple of str
    n_boot : int
    reference : Structure
        The structure selected on the full data.
    exact : float
        Fraction of resamples that reproduce ``reference`` exactly (blocks and ranks).
    """

    blocks: tuple[frozenset[int], ...]
    frequency: NDArray[np.float64]
    rank_counts: list[dict[int, int]]
    view_names: tuple[str, ...]
    n_boot: int
    reference: Structure
    exact: float

    def view_block_matrix(self) -> NDArray[np.float64]:
        """``(n_blocks, M)`` selection frequency of each (view, block) pair; NaN off-support."""
        out = np.full((len(self.blocks), len(self.view_names)), np.nan)
        for i, b in enumerate(self.blocks):
            for m in b:
                out[i, m] = self.frequency[i]
        return out

    def to_markdown(self) -> str:
        """Table: block, in reference?, frequency, rank distribution."""
        lines = [
            "| block | views | in full-data selection (rank) | selected in | ranks (count) |",
            "|---|---|---|---:|---|",
        ]
        for b, f, rc in zip(self.blocks, self.frequency, self.rank_counts, strict=True):
            ref = f"yes ({self.reference.rank_of(b)})" if b in self.reference else "no"
            ranks = ", ".join(f"{r}:{c}" for r, c in sorted(rc.items()))
            views = ",".join(self.view_names[m] for m in sorted(b))
            lines.append(
                f"| {format_block(b)} | {views} | {ref} | {f:.2f} | {ranks} |"
            )
        return "\n".join(lines)


def bootstrap_stability(
    data: Any,
    *,
    n_boot: int = 50,
    rng: Any = None,
    center: bool = True,
    scale: str = "view",
    resample: str = "bootstrap",
    **select_kwargs: Any,
) -> BootstrapStability:
    """Re-select the structure on resamples of the samples.

    The data are preprocessed once (scales are nuisance parameters); each resample
    reruns :func:`select_structure` with ``select_kwargs``. Resample ``b`` uses the
    ``b``-th ``SeedSequence`` spawned from ``rng``, so results do not depend on the
    order of evaluation.

    ``resample='bootstrap'`` draws ``n`` rows with replacement. Its multinomial
    weights double the sampling variance of the covariance, so the noise
    thresholds of the selection use ``n / 2`` samples per block (without this the
    noise edge of a resample is exceeded and spurious directions are counted).
    ``resample='subsample'`` draws ``n // 2`` rows without replacement (as in
    stability selection) and needs no correction. Either way the frequencies
    describe selection at an effective sample size of about ``n / 2``: they are
    conservative for the full-data selection.

    Parameters
    ----------
    data : MultiViewDataset, MultimodalData, IncompleteData or list of arrays
    n_boot : int, default=50
    rng : None, int, SeedSequence or Generator
    center, scale
        Preprocessing, as in :func:`fit_views`.
    resample : {'bootstrap', 'subsample'}, default='bootstrap'
    **select_kwargs
        ``noise_rule``, ``min_snr``, ``max_rank``.

    Returns
    -------
    BootstrapStability

    Examples
    --------
    With a strong signal every resample selects the true blocks:

    >>> import hcl_stats as hs
    >>> from hcl_stats.workflow import bootstrap_stability
    >>> m = hs.HierarchicalFactorModel.random((5, 6), "AB:1 A:1", noise_var=0.1, rng=0)
    >>> bs = bootstrap_stability(m.sample(500, rng=0), n_boot=5, rng=0)
    >>> bs.reference, bs.frequency.tolist()
    (Structure.parse('AB:1 A:1', n_views=2), [1.0, 1.0])
    """
    n_boot = check_int(n_boot, "n_boot", minimum=1)
    resample = check_choice(resample, "resample", ("bootstrap", "subsample"))
    select_kwargs = check_options(select_kwargs, "select_kwargs", select_structure,
                                  taken=("data", "n_factor"))
    raw = _as_data(data)
    names = tuple(getattr(data, "view_names", None) or raw.view_names or Structure.all_subsets(raw.n_views, 1).names)
    prepped = Preprocessor.fit(raw, center=center, scale=scale).transform(raw)
    ref = select_structure(prepped, **select_kwargs).structure
    gen = as_generator(rng)
    seeds = np.random.SeedSequence(int(gen.integers(0, 2**63 - 1))).spawn(n_boot)
    found: dict[frozenset[int], dict[int, int]] = {}
    exact = 0
    n = raw.n_samples
    for ss in seeds:
        g = np.random.default_rng(ss)
        if resample == "bootstrap":
            rows = g.integers(0, n, size=n)
        else:
            rows = np.sort(g.choice(n, size=n // 2, replace=False))
        sub = prepped.take(rows) if isinstance(prepped, IncompleteData) else MultimodalData(
            [x[rows] for x in prepped.Xs]
        )
        factor = 0.5 if resample == "bootstrap" else 1.0
        try:
            s = select_structure(sub, n_factor=factor, **select_kwargs).structure
        except ValidationError:
            continue
        exact += int(s.blocks == ref.blocks and s.ranks == ref.ranks)
        for b, r in zip(s.blocks, s.ranks, strict=True):
            found.setdefault(b, {})
            found[b][r] = found[b].get(r, 0) + 1
    from .structure import block_key

    blocks = tuple(sorted(set(found) | set(ref.blocks), key=block_key))
    freq = np.array([sum(found.get(b, {}).values()) / n_boot for b in blocks])
    return BootstrapStability(
        blocks=blocks,
        frequency=freq,
        rank_counts=[dict(found.get(b, {})) for b in blocks],
        view_names=names,
        n_boot=n_boot,
        reference=ref,
        exact=exact / n_boot,
    )


def transform(fit: Any, data: Any, *, blocks: Any = None) -> NDArray[np.float64]:
    """Per-structure representation ``h(x) = (W^T Psi^{-1} W)^{-1} W^T Psi^{-1} x``.

    With a scalar noise variance this is the paper's ``(W^T W)^{-1} W^T x``
    (paper.md §8, step 4); with per-view noise each view is weighted by
    ``1 / sigma_m^2`` (generalised least squares). Samples that miss views use the
    rows of their observed views only; latent coordinates of blocks none of whose
    views is observed are NaN.

    Parameters
    ----------
    fit : FitResult
        A structured fit (columns in canonical block order).
    data : MultimodalData, IncompleteData or list of arrays of shape (n, d_m)
        Views already preprocessed the way the fit's data were.
    blocks : iterable of blocks or str, optional
        Which blocks' coordinates to return (default: all, in canonical order).
        ``'shared'`` keeps blocks with ``|S| >= 2``.

    Returns
    -------
    ndarray of shape (n_samples, sum of the selected r_S)

    Examples
    --------
    >>> import numpy as np, hcl_stats as hs
    >>> from hcl_stats.workflow import transform
    >>> model = hs.HierarchicalFactorModel.random((3, 4), "AB:1 A:1", rng=0)
    >>> z = np.array([[1.0, -2.0]])
    >>> x = z @ model.loadings.T
    >>> data = hs.MultimodalData.from_stacked(np.vstack([x, x]), (3, 4))
    >>> bool(np.allclose(transform(model, data)[0], z[0]))
    True
    """
    d = _as_data(data)
    s = fit.structure
    if tuple(d.dims) != tuple(fit.dims):
        raise ValidationError(f"data dims must be {tuple(fit.dims)}; got {tuple(d.dims)}.")
    if blocks is None:
        chosen = list(s.blocks)
    elif isinstance(blocks, str):
        if blocks != "shared":
            raise ValidationError(f"blocks must be 'shared' or a list of blocks; got {blocks!r}.")
        chosen = [b for b in s.blocks if len(b) >= 2]
    elif isinstance(blocks, Sequence | set | frozenset | np.ndarray) and hasattr(fit, "_check_block"):
        chosen = [fit._check_block(b, f"blocks[{i}]") for i, b in enumerate(blocks)]
    else:
        raise ValidationError(
            f"blocks must be None, 'shared' or a list of the structure's blocks; got "
            f"{short_repr(blocks)}."
        )
    cols = np.concatenate([np.arange(s.columns(b).start, s.columns(b).stop) for b in chosen]) if chosen else np.zeros(0, dtype=int)
    w = np.asarray(fit.loadings)
    n_views = len(fit.dims)
    psi = np.repeat(np.broadcast_to(np.asarray(fit.noise_var, dtype=float), (n_views,)), fit.dims)
    x = np.hstack(d.Xs)
    obs = np.asarray(d.observed) if isinstance(d, IncompleteData) else np.ones((x.shape[0], n_views), bool)
    out = np.full((x.shape[0], s.total_rank), np.nan)
    patterns, inverse = np.unique(obs, axis=0, return_inverse=True)
    for p, pattern in enumerate(patterns):
        rows = np.flatnonzero(inverse.ravel() == p)
        feats = np.concatenate([np.arange(fit.row_slice(m).start, fit.row_slice(m).stop) for m in range(n_views) if pattern[m]])
        live = [
            c for b in s.blocks if any(pattern[m] for m in b)
            for c in range(s.columns(b).start, s.columns(b).stop)
        ]
        wo = w[np.ix_(feats, live)] / psi[feats, None]
        gram = w[np.ix_(feats, live)].T @ wo
        h = np.linalg.lstsq(gram, wo.T @ x[np.ix_(rows, feats)].T, rcond=None)[0]
        out[np.ix_(rows, live)] = h.T
    return out[:, cols]
