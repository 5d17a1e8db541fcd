"""A reason for every block: signal, detection edge, a calibrated test, stability.

For each candidate block ``S`` (a non-empty set of views) this module reports,
from the data,

* its **signal**: the leading eigenvalues of the Schur complement ``A_S`` of the
  signal covariance ``S_W = S - sigma^2 I`` restricted to the views of ``S``,
  after conditioning on the ``k_O`` signal directions of the views outside ``S``
  and removing the blocks already selected inside ``S`` (the matrix the Schur
  selector thresholds, :func:`~hcl_stats.estimators.selection.select_structure_schur`),
  mapped back to a population spike ``l_1`` by inverting the spiked-covariance
  bias (``debias_spikes``);
* its **detection edge** ``sigma^2 sqrt(gamma_S)``, ``gamma_S = d_S / n_S`` with the
  effective sample size ``n_S = n - 1 - k_O`` (one degree of freedom for the
  mean, ``k_O`` for the conditioning): a population spike ``l`` separates from the
  noise bulk of a ``d_S``-dimensional sample covariance iff ``l > sigma^2
  sqrt(gamma_S)`` (Baik, Ben Arous and Peche, 2005; Baik and Silverstein, 2006).
  Conditioning Gaussian rows on ``k`` regressors leaves a residual cross-product
  matrix that is Wishart with ``n - 1 - k`` degrees of freedom (Anderson, 2003,
  Theorem 8.2.1), hence the ratio;
* a **test** of ``H0: r_S = 0`` at level ``alpha``: a parametric bootstrap of the
  statistic ``T_S = lambda_1(A_S) / sigma_hat^2`` under the fitted model with block
  ``S`` removed (see :func:`block_evidence` and docs/block_evidence.md);
* a **selection frequency** of ``S`` (and of each rank of ``S``) by a structure
  learner re-run on bootstrap resamples of the rows (:func:`selection_frequency`).

:func:`attach_evidence` stores the table in a :class:`~hcl_stats.FitResult`, whose
``summary()`` then shows it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._linalg import one_blas_thread
from ._validation import as_generator, check_choice, check_int, check_real
from .exceptions import HCLError, ValidationError
from .structure import Structure, block_key, format_block

__all__ = [
    "BlockEvidence",
    "BlockRow",
    "LEARNERS",
    "SelectionFrequency",
    "attach_evidence",
    "block_evidence",
    "default_null_draws",
    "detection_edge",
    "selection_frequency",
]

#: Structure learners known to :func:`selection_frequency` by name.
LEARNERS = ("schur_select", "convex_fast", "eigen", "correlation", "slide")


def detection_edge(noise_var: float, d_s: int, n_samples: int, k_outside: int = 0) -> float:
    """Finite-``n`` detection edge of a block: ``sigma^2 sqrt(d_S / (n - 1 - k_O))``.

    A population spike ``l`` of a ``d_S``-dimensional covariance ``sigma^2 I + l u u^T``
    produces a sample eigenvalue outside the Marchenko-Pastur bulk iff
    ``l > sigma^2 sqrt(gamma)``, ``gamma = d_S / n_eff`` (the BBP transition).
    ``n_eff = n - 1 - k_O``: the sample covariance is centred (``ddof = 1``) and the
    Schur complement conditions on ``k_O`` directions of the other views.

    Parameters
    ----------
    noise_var : float
        ``sigma^2 > 0``.
    d_s : int
        Dimension of the block, ``sum_{m in S} d_m``.
    n_samples : int
        ``n``.
    k_outside : int, default=0
        ``k_O``, directions conditioned on.

    Returns
    -------
    float

    Examples
    --------
    >>> from hcl_stats.block_evidence import detection_edge
    >>> detection_edge(1.0, 100, 10001)
    0.1
    >>> round(detection_edge(2.0, 100, 10011, k_outside=10), 6)
    0.2
    """
    noise_var = check_real(noise_var, "noise_var", low=0.0, low_open=True)
    d_s = check_int(d_s, "d_s", minimum=1)
    n_samples = check_int(n_samples, "n_samples", minimum=2)
    k_outside = check_int(k_outside, "k_outside", minimum=0)
    n_eff = n_samples - 1 - k_outside
    if n_eff < 1:
        raise ValidationError(
            f"n_samples - 1 - k_outside must be >= 1; got n_samples = {n_samples}, "
            f"k_outside = {k_outside}."
        )
    return float(noise_var * np.sqrt(d_s / n_eff))  # BBP: spike_eigenvalue(edge) = mp_edge


# --------------------------------------------------------------------- statistic
def _statistics(scores: dict[str, Any], sigma2: float, keys: Sequence[str]) -> NDArray:
    return np.array([max(scores[k]["eigenvalues"][0], 0.0) / sigma2 for k in keys])


# ------------------------------------------------------------------------ result
@dataclass(frozen=True)
class BlockRow:
    """Evidence for one candidate block (see :func:`block_evidence`)."""

    block: frozenset[int]
    name: str
    fitted_rank: int
    n_above: int
    signal: float
    edge: float
    statistic: float
    p_value: float | None
    decision: str
    spikes: tuple[float, ...] = ()
    frequency: float | None = None
    rank_frequency: float | None = None
    rank_counts: dict[int, int] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """``signal / edge`` (0 when the leading eigenvalue is inside the noise bulk)."""
        return self.signal / self.edge if self.edge > 0 else float("inf")


@dataclass(frozen=True)
class SelectionFrequency:
    """Outcome of :func:`selection_frequency`.

    Parameters
    ----------
    learner : str
    n_boot : int
    resample : str
    blocks : tuple of frozenset
        Every block selected in at least one resample.
    rank_counts : tuple of dict
        Per block, ``{rank: number of resamples}``.
    exact : int
        Resamples whose structure equals ``reference`` (blocks and ranks).
    failures : int
        Resamples where the learner refused (a typed :class:`~hcl_stats.exceptions.HCLError`).
    reference : Structure or None
    """

    learner: str
    n_boot: int
    resample: str
    blocks: tuple[frozenset[int], ...]
    rank_counts: tuple[dict[int, int], ...]
    exact: int
    failures: int
    reference: Structure | None = None
    failure_messages: tuple[str, ...] = ()

    def frequency(self, block: frozenset[int], rank: int | None = None) -> float:
        """Share of the ``n_boot`` resamples selecting ``block`` (with ``rank``)."""
        counts = dict(zip(self.blocks, self.rank_counts, strict=True)).get(block, {})
        hits = sum(counts.values()) if rank is None else counts.get(rank, 0)
        return hits / self.n_boot

    def to_markdown(self) -> str:
        """Table: block, frequency, rank distribution, in the reference (rank)."""
        ref = dict(zip(self.reference.blocks, self.reference.ranks, strict=True)) if self.reference else {}
        lines = ["| block | in reference (rank) | selected in | ranks (count) |",
                 "|---|---|---:|---|"]
        for b, counts in sorted(zip(self.blocks, self.rank_counts, strict=True),
                                key=lambda t: block_key(t[0])):
            ranks = ", ".join(f"{r}:{c}" for r, c in sorted(counts.items()))
            mark = f"yes ({ref[b]})" if b in ref else "no"
            lines.append(f"| {format_block(b)} | {mark} | {self.frequency(b):.2f} | {ranks} |")
        return "\n".join(lines)


@dataclass(frozen=True)
class BlockEvidence:
    """Per-block evidence table; see :func:`block_evidence`.

    Parameters
    ----------
    rows : tuple of BlockRow
    alpha : float
    noise_var : float
        The ``sigma^2`` behind the edges (mean over views for per-view noise).
    n_samples : int
    n_null : int
        Parametric-bootstrap draws per null.
    structure : Structure or None
        The structure the evidence was computed for (None: no block).
    frequency : SelectionFrequency or None
    """

    rows: tuple[BlockRow, ...]
    alpha: float
    noise_var: float
    n_samples: int
    n_null: int
    structure: Structure | None
    frequency: SelectionFrequency | None = None
    view_names: tuple[str, ...] | None = None

    def row(self, block: str | frozenset[int]) -> BlockRow:
        """The row of one block, given as letters (``'AB'``) or a frozenset."""
        for r in self.rows:
            if r.block == block or r.name == block:
                return r
        raise ValidationError(
            f"block must be one of {[r.name for r in self.rows]}; got {block!r}."
        )

    def to_summary(self) -> Any:
        """The table as a :class:`~hcl_stats.results.Summary`."""
        from .results import Summary

        freq = self.frequency is not None
        columns = ["Block", "Views", "rank (fit)", "above edge", "signal l_1", "edge",
                   "signal/edge", "p-value", "decision"]
        if freq:
            columns += ["freq", "freq (rank)"]
        names = self.view_names
        if not names:
            columns.remove("Views")
        rows = []
        for r in self.rows:
            views = [",".join(names[m] for m in sorted(r.block))] if names else []
            row = [r.name, *views, r.fitted_rank, r.n_above, f"{r.signal:.4g}",
                   f"{r.edge:.4g}", f"{r.ratio:.3g}", r.p_value, r.decision]
            if freq:
                row += [r.frequency, r.rank_frequency if r.fitted_rank else None]
            rows.append(tuple(row))
        header = [
            ("Structure", "none" if self.structure is None else str(self.structure)),
            ("Test", f"H0: r_S = 0 at alpha = {self.alpha:g}; parametric bootstrap, "
                     f"{self.n_null} draws per null" if self.n_null
                     else "not run (n_null = 0); signal and edge only"),
            ("sigma^2 (edges)", f"{self.noise_var:.6g}"),
        ]
        if freq:
            fr = self.frequency
            header.append(("Resampling", f"{fr.learner}, {fr.n_boot} {fr.resample} resamples; "
                                         f"exact structure in {fr.exact / fr.n_boot:.2f}, "
                                         f"refusals {fr.failures}"))
        note = ("signal l_1 = debiased leading spike of the block's Schur complement "
                "(0: inside the noise bulk); above edge = its eigenvalues outside the bulk "
                "(counted among the rank + 2 leading ones); "
                "edge = sigma^2 sqrt(d_S / (n - 1 - k_O)); "
                "decision 'present' iff p-value <= alpha"
                + ("; freq = share of resamples selecting the block, freq (rank) = with "
                   "the fitted rank" if freq else "") + ".")
        return Summary(title="Block evidence", header=tuple(header), columns=tuple(columns),
                       rows=tuple(rows), note=note)

    def __str__(self) -> str:
        return str(self.to_summary())

    def to_markdown(self) -> str:
        """Render as Markdown."""
        return self.to_summary().to_markdown()


# ---------------------------------------------------------------------- evidence
def _as_views(data: Any) -> Any:
    from .missing import IncompleteData
    from .model import MultimodalData

    inner = getattr(data, "data", data)
    if isinstance(inner, IncompleteData):
        raise ValidationError(
            "data must have every view observed in every row for block evidence (its "
            "null draws are complete Gaussian rows); got IncompleteData with "
            f"{int(inner.observed.all(axis=1).sum())} complete rows of {inner.n_samples}; "
            "pass data.complete_cases()."
        )
    if isinstance(inner, MultimodalData):
        return inner
    return MultimodalData(list(data))


def _candidates(n_views: int, max_views: int) -> tuple[frozenset[int], ...]:
    from .estimators._convex_core import candidate_blocks

    if n_views > max_views:
        raise ValidationError(
            f"block evidence scores all 2^M - 1 subsets of views; M must be <= "
            f"{max_views}; got M = {n_views}."
        )
    return candidate_blocks(n_views)


def _null_loadings(loadings: NDArray | None, d: int, cols: slice | None) -> NDArray:
    """``W_0``, shape ``(d, K_0)``: the fitted loadings without the columns ``cols``."""
    if loadings is None:
        return np.zeros((d, 0))
    return loadings if cols is None else np.delete(
        loadings, np.arange(loadings.shape[1])[cols], axis=1)


def _null_cov(loadings: NDArray | None, noise_diag: NDArray, cols: slice | None) -> NDArray:
    d = noise_diag.size
    w = _null_loadings(loadings, d, cols)
    cov = w @ w.T if w.shape[1] else np.zeros((d, d))
    cov[np.diag_indices(d)] += noise_diag
    return cov


def _null_sampler(loadings: NDArray | None, noise_diag: NDArray, cols: slice | None,
                  dims: tuple[int, ...], n: int, reduced: bool
                  ) -> Callable[[np.random.Generator], tuple[NDArray, tuple[int, ...], Any]]:
    """Draws of a null model's sample covariance: ``g -> (cov, its view sizes, full_dims)``.

    ``reduced=False``: the ``d x d`` covariance (:func:`_draw_cov`; ``full_dims`` is
    None). ``reduced=True`` (wide views, the data's own path): ``n`` rows
    ``Z W_0^T + E Psi^{1/2}`` drawn in factor form (``O(n d K_0)``) and reduced to
    their row spaces (:func:`~hcl_stats.estimators._samples.reduce_views`), so that
    no ``d x d`` matrix is formed; the same distribution of rows.
    """
    if not reduced:
        chol = np.linalg.cholesky(_null_cov(loadings, noise_diag, cols))
        return lambda g: (_draw_cov(chol, n, g), dims, None)
    from .estimators._samples import reduce_views

    w = _null_loadings(loadings, noise_diag.size, cols)
    sd = np.sqrt(noise_diag)
    splits = np.cumsum(dims)[:-1]

    def draw(g: np.random.Generator) -> tuple[NDArray, tuple[int, ...], Any]:
        x = g.standard_normal((n, sd.size)) * sd
        if w.shape[1]:
            x += g.standard_normal((n, w.shape[1])) @ w.T
        cov, reduction = reduce_views(np.split(x, splits, axis=1), n)
        return cov, reduction.dims, dims

    return draw


def _draw_cov(chol: NDArray, n: int, g: np.random.Generator) -> NDArray:
    """Sample covariance (``ddof = 1``) of ``n`` Gaussian rows with covariance ``chol chol^T``.

    Bartlett's decomposition when ``n - 1 >= d`` (``O(d^3)``, independent of ``n``):
    ``(n - 1) S = L A A^T L^T`` with ``A`` lower triangular, ``A_ii^2 ~ chi^2(n - 1 - i)``
    and standard normal entries below the diagonal. Otherwise rows are drawn.
    """
    d = chol.shape[0]
    df = n - 1
    if df >= d:
        a = np.tril(g.standard_normal((d, d)), -1)
        a[np.diag_indices(d)] = np.sqrt(g.chisquare(df - np.arange(d)))
        la = chol @ a
        return la @ la.T / df
    z = g.standard_normal((n, d)) @ chol.T
    z -= z.mean(axis=0)
    return z.T @ z / df


def default_null_draws(dims: Any, draws: int = 99) -> int:
    """Null draws of the block test by default: ``draws`` when it is cheap, else 0.

    The parametric-bootstrap test reruns the selection ``(1 + blocks) x n_null``
    times over all ``2^M - 1`` candidates, so it runs by default only when
    ``d = sum(d_m) <= 300`` and ``M <= 4``; above that, the evidence table shows
    signal and edge only unless the user asks for the test. ``hcl-stats fit`` and
    ``hcl-stats real-data-report`` share this rule.

    Parameters
    ----------
    dims : sequence of int, length M
        View dimensions ``d_m``.
    draws : int, default=99
        The number of draws where the test runs.

    Returns
    -------
    int
        ``draws`` or 0.

    Examples
    --------
    >>> from hcl_stats.block_evidence import default_null_draws
    >>> default_null_draws((10, 10, 10)), default_null_draws((76, 216, 64, 240, 47, 6))
    (99, 0)
    """
    dims = tuple(int(d) for d in dims)
    return int(draws) if sum(dims) <= 300 and len(dims) <= 4 else 0


def block_evidence(
    data: Any,
    fit: Any = None,
    *,
    alpha: float = 0.05,
    n_null: int = 99,
    n_boot: int = 0,
    learner: str | Callable[..., Structure] = "schur_select",
    resample: str = "bootstrap",
    rng: Any = None,
    progress: bool = False,
    max_views: int = 8,
) -> BlockEvidence:
    """Signal, detection edge, test of ``r_S = 0`` and stability for every block.

    Parameters
    ----------
    data : MultimodalData, MultiViewDataset or list of arrays of shape (n, d_m)
        The (preprocessed) data the fit was computed from.
    fit : FitResult, Structure, str or None
        The fitted (or given) structure. A :class:`~hcl_stats.FitResult` supplies the
        loadings of the null models; a structure is fitted with
        :class:`~hcl_stats.estimators.SchurComplement` first; None means no block
        (pure noise).
    alpha : float, default=0.05
        Level of each per-block test.
    n_null : int, default=99
        Parametric-bootstrap draws per null model; p-values are ``(1 + #{T* >= T}) /
        (n_null + 1)``, so the smallest is ``1 / (n_null + 1)``. 0 skips the test
        (p-value None, decision ``'not tested'``): signal and edge only.
    n_boot : int, default=0
        Row resamples for the selection frequency (0: not computed).
    learner : str, Estimator or callable, default='schur_select'
        The learner re-run on each resample (see :func:`selection_frequency`).
    resample : {'bootstrap', 'subsample'}, default='bootstrap'
    rng : None, int, SeedSequence or Generator
    progress : bool, default=False
        Show a tqdm progress bar (if tqdm is installed) for the resampling.
    max_views : int, default=8
        Refuse more views (all ``2^M - 1`` subsets are scored).

    Returns
    -------
    BlockEvidence

    Notes
    -----
    The statistic of block ``S`` is ``T_S = lambda_1(A_S) / sigma_hat^2``, with
    ``A_S`` the Schur complement of :func:`~hcl_stats.estimators.selection.select_structure_schur`
    (with a ``SchurSelect`` learner's edge rule) and ``sigma_hat^2`` the MP bulk
    estimate, both recomputed on every draw. Its null distribution is that of
    ``T_S`` on Gaussian data with covariance ``W_0 W_0^T + Psi_hat``, ``W_0`` the
    fitted loadings without the columns of ``S`` (all of them when ``S`` is not in
    the fit). Under pure Gaussian noise ``T_S`` is scale free, so the test is exact
    up to Monte Carlo error; otherwise it is a plug-in (parametric bootstrap) test, see
    docs/block_evidence.md for its measured size and where it breaks.

    Examples
    --------
    >>> import numpy as np, hcl_stats as hs
    >>> from hcl_stats.block_evidence import block_evidence
    >>> model = hs.HierarchicalFactorModel.random((6, 7, 8), "ABC:1 C:1", singular_values=(2.0, 3.0), rng=0)
    >>> data = model.sample(500, rng=1)
    >>> fit = hs.estimators.SchurComplement().fit(data, structure="ABC:1 C:1")
    >>> ev = block_evidence(data, fit, n_null=19, rng=2)
    >>> ev.row("ABC").decision, ev.row("ABC").p_value
    ('present', 0.05)
    """
    from .results import FitResult

    alpha = check_real(alpha, "alpha", low=0.0, high=1.0, low_open=True)
    n_null = check_int(n_null, "n_null", minimum=0)
    n_boot = check_int(n_boot, "n_boot", minimum=0)
    views = _as_views(data)
    dims = tuple(views.dims)
    n = views.n_samples
    gen = as_generator(rng)
    null_seed, boot_seed = np.random.SeedSequence(int(gen.integers(0, 2**63 - 1))).spawn(2)
    cands = _candidates(len(dims), max_views)

    if fit is not None and not isinstance(fit, FitResult):
        from .estimators import SchurComplement

        fit = SchurComplement().fit(views, structure=fit)
    if fit is not None and tuple(fit.dims) != dims:
        raise ValidationError(
            f"fit must be a fit of data with dims {dims}; got a fit with dims "
            f"{tuple(fit.dims)}."
        )
    structure = fit.structure if fit is not None else None
    per_view = fit is not None and np.ndim(fit.noise_var) > 0
    from .estimators.selection import mp_noise, schur_scores

    cov, cov_dims, full_dims = _data_cov(views)
    # the null models share the statistic's noise rule (Marchenko-Pastur bulk), so
    # that sigma_hat^2 of a null draw matches the data's; W_0 comes from the fit
    noise_diag = np.repeat(
        mp_noise(cov, cov_dims, n, per_view=per_view, full_dims=full_dims), dims)
    loadings = None if fit is None else np.asarray(fit.loadings)

    rule = learner.rule if getattr(learner, "name", "") == "schur_select" else "bound"
    scores, sigma2 = schur_scores(cov, cov_dims, n, per_view=per_view, candidates=cands,
                                  full_dims=full_dims, rule=rule)
    keys = [format_block(b) for b in cands]
    observed = dict(zip(keys, _statistics(scores, sigma2, keys), strict=True))
    fitted = dict(zip(structure.blocks, structure.ranks, strict=True)) if structure else {}

    # one null for all blocks absent from the fit, one per fitted block
    nulls: list[tuple[frozenset[int] | None, tuple[frozenset[int], ...]]] = []
    absent = tuple(b for b in cands if b not in fitted)
    if absent and n_null:
        nulls.append((None, cands))
    for b in fitted if n_null else ():
        nulls.append((b, tuple(c for c in cands if c <= b)))
    exceed = dict.fromkeys(keys, 0)
    seeds = null_seed.spawn(len(nulls))
    for (drop, sub_cands), ss in zip(nulls, seeds, strict=True):
        cols = structure.columns(drop) if drop is not None else None
        draw = _null_sampler(loadings, noise_diag, cols, dims, n, full_dims is not None)
        g = np.random.default_rng(ss)
        targets = [format_block(drop)] if drop is not None else [format_block(b) for b in absent]
        with one_blas_thread():  # many small eigh/GEMMs: threads only contend
            for _ in range(n_null):
                null_cov, null_dims, null_full = draw(g)
                sc, s2 = schur_scores(null_cov, null_dims, n, per_view=per_view,
                                      candidates=sub_cands, full_dims=null_full, rule=rule)
                t_star = _statistics(sc, s2, targets)
                for k, t in zip(targets, t_star, strict=True):
                    exceed[k] += int(t >= observed[k])

    freq = None
    if n_boot:
        freq = selection_frequency(views, learner=learner, n_boot=n_boot, resample=resample,
                                   rng=boot_seed, progress=progress, reference=structure)

    from ._rmt import debias_spikes

    rows = []
    for b, k in zip(cands, keys, strict=True):
        sc = scores[k]
        d_s = int(sum(dims[m] for m in b))
        k_o = int(sc["k_outside"])
        n_eff = max(n - 1 - k_o, 1)
        edge = float(sigma2 * np.sqrt(d_s / n_eff))
        vals = np.asarray(sc["eigenvalues"], dtype=float)
        spikes, _ = debias_spikes(vals, sigma2, d_s, n_eff)
        spikes = spikes[spikes > 0]
        p = (1 + exceed[k]) / (n_null + 1) if n_null else None
        row = BlockRow(
            block=b, name=k, fitted_rank=int(fitted.get(b, 0)), n_above=int(spikes.size),
            signal=float(spikes[0]) if spikes.size else 0.0, edge=edge,
            statistic=float(observed[k]), p_value=p,
            decision="not tested" if p is None else "present" if p <= alpha else "absent",
            spikes=tuple(float(s) for s in spikes),
        )
        if freq is not None:
            row = replace(row, frequency=freq.frequency(b),
                          rank_frequency=freq.frequency(b, fitted.get(b, 0)) if b in fitted else None,
                          rank_counts=dict(dict(zip(freq.blocks, freq.rank_counts, strict=True)).get(b, {})))
        rows.append(row)
    names = tuple(structure.names) if structure is not None and structure.view_names else None
    return BlockEvidence(rows=tuple(rows), alpha=alpha, noise_var=sigma2, n_samples=n,
                         n_null=n_null, structure=structure, frequency=freq, view_names=names)


def _data_cov(views: Any) -> tuple[NDArray, tuple[int, ...], tuple[int, ...] | None]:
    """The data's covariance, its view sizes and (if reduced) the data's ``dims``.

    Views wide enough that ``path='auto'`` takes the sample path
    (:func:`~hcl_stats.estimators._samples.samples_pay_off`) give the reduced
    ``S~`` of their row-space scores: the statistics and edges are then the full
    covariance's (:func:`~hcl_stats.estimators.selection.select_structure_schur`)
    without forming it.
    """
    from .estimators._samples import reduce_views, samples_pay_off
    from .streaming import streaming_cov

    dims = tuple(views.dims)
    if samples_pay_off(dims, views.n_samples):
        cov, reduction = reduce_views(list(views.Xs), views.n_samples)
        return cov, reduction.dims, dims
    cov, _ = streaming_cov(views.Xs, ddof=1)
    return cov, dims, None


# --------------------------------------------------------------------- frequency
def _learner(learner: Any) -> tuple[str, Callable[..., Structure]]:
    """``(name, f)`` with ``f(views, cov, dims, n_eff[, rng]) -> Structure``.

    A named learner's ``f`` takes the resample's generator as ``rng`` (used by the
    learners that draw random numbers, such as ``slide``'s folds); a user's callable
    keeps the four-argument form.
    """
    from . import estimators

    if isinstance(learner, estimators.Estimator):  # a configured learner
        if not learner.learns_structure:
            raise ValidationError("learner must learn the structure; got the estimator "
                                  f"{learner.name!r}, which needs it given.")
        est = learner
    elif callable(learner):
        return getattr(learner, "__name__", "custom"), learner
    else:
        learner = check_choice(learner, "learner", LEARNERS)
        est = None
    if est is None and learner in ("eigen", "correlation"):
        from .workflow import select_structure

        def f(views, cov, dims, n_eff, rng=None, _m=learner):
            return select_structure(cov=cov, dims=dims, n_per_block=n_eff, method=_m).structure

        return f"select_structure({learner})", f
    if est is None:
        est = estimators.get(learner)()
        learner = est.name
    else:  # name a configured learner by its non-default options
        changed = [f"{k}={v!r}" for k, v in est.get_params().items()
                   if not k.startswith("_") and v != est.__dataclass_fields__[k].default]
        learner = f"{est.name}({', '.join(changed)})" if changed else est.name
    if est.needs_data:
        def g(views, cov, dims, n_eff, rng=None):
            return est.fit(views, rng=rng).structure

        return learner, g

    def h(views, cov, dims, n_eff, rng=None):
        if cov is None:  # wide views: the sample path, told the effective size
            return est.fit(views, n_effective=n_eff, rng=rng).structure
        return est.fit_covariance(cov, dims=dims, n_samples=n_eff, rng=rng).structure

    h.samples_path = est.samples_path  # takes cov=None for wide views
    return learner, h


def _resampled_views(views: Any, rows: NDArray) -> tuple[Any, tuple[int, ...]]:
    """The views at ``rows`` without the columns constant there, and their ``d_m``.

    Returns ``(None, ())`` when a view has no varying column left.
    """
    from .model import MultimodalData

    xs = []
    for x in views.Xs:
        x = x[rows]
        varying = np.ptp(x, axis=0) > 0
        if not varying.any():
            return None, ()
        xs.append(x if varying.all() else x[:, varying])
    sub = MultimodalData(xs)
    return sub, tuple(sub.dims)


def selection_frequency(
    data: Any,
    *,
    learner: str | Callable[..., Structure] = "schur_select",
    n_boot: int = 50,
    resample: str = "bootstrap",
    rng: Any = None,
    progress: bool = False,
    reference: Structure | None = None,
    on_resample: Callable[[SelectionFrequency], None] | None = None,
) -> SelectionFrequency:
    """How often a learner selects each block (and each rank) on resampled rows.

    Resample ``b`` uses the ``b``-th ``SeedSequence`` spawned from ``rng``, so the
    result does not depend on evaluation order.

    ``resample='bootstrap'`` draws ``n`` rows with replacement. The multinomial
    weights roughly double the sampling variance of the covariance, so covariance
    learners are told ``n_eff = n // 2`` samples (the convention of
    :func:`hcl_stats.workflow.bootstrap_stability`; without it the noise edges are
    exceeded by duplicated rows). ``'subsample'`` draws ``n // 2`` distinct rows,
    an exact sample of that size. Either way the frequencies describe selection at
    about half the sample size: conservative for the full data. Learners that need
    the rows (``slide``) get the resampled rows as they are. Columns that are
    constant within a resample (a rare binary feature, say) are dropped from it,
    since no learner can fit a coordinate without variance; a view left with no
    column makes that resample a refusal.

    On views wide enough for the sample path
    (:func:`~hcl_stats.estimators._samples.samples_pay_off`) a learner that has
    it (``schur_select``) never forms the ``d x d`` covariance of a resample: it
    fits the rows with ``n_effective`` set to the size above, with the covariance
    path's decisions.

    Parameters
    ----------
    data : MultimodalData, MultiViewDataset or list of arrays
    learner : {'schur_select', 'convex_fast', 'eigen', 'correlation', 'slide'}, Estimator or callable
        A configured estimator that learns the structure (such as
        ``SchurSelect(rule='sharp')``) is re-fitted as it is. A callable takes
        ``(views, cov, dims, n_eff)`` and returns a Structure.
    n_boot : int, default=50
    resample : {'bootstrap', 'subsample'}, default='bootstrap'
    rng : None, int, SeedSequence or Generator
    progress : bool, default=False
        tqdm progress bar (ignored if tqdm is not installed).
    reference : Structure, optional
        Counted in ``exact`` when a resample reproduces it.
    on_resample : callable, optional
        Called after every resample with the result over the resamples done so far
        (its ``n_boot`` is that count); lets a caller keep a partial result.

    Returns
    -------
    SelectionFrequency

    Examples
    --------
    >>> import hcl_stats as hs
    >>> from hcl_stats.block_evidence import selection_frequency
    >>> model = hs.HierarchicalFactorModel.random((5, 6, 7), "ABC:1 B:1", singular_values=(2.0, 3.0), rng=0)
    >>> fr = selection_frequency(model.sample(2000, rng=1), n_boot=5, rng=2)
    >>> fr.frequency(frozenset({0, 1, 2}))
    1.0
    """
    from .estimators._samples import samples_pay_off
    from .streaming import streaming_cov

    n_boot = check_int(n_boot, "n_boot", minimum=1)
    resample = check_choice(resample, "resample", ("bootstrap", "subsample"))
    views = _as_views(data)
    name, f = _learner(learner)
    takes_rng = not callable(learner)  # the named learners take the resample's stream
    n = views.n_samples
    gen = as_generator(rng)
    seeds = np.random.SeedSequence(int(gen.integers(0, 2**63 - 1))).spawn(n_boot)
    it: Any = seeds
    if progress:
        try:
            from tqdm.auto import tqdm

            it = tqdm(seeds, desc=f"resampling ({name})", unit="fit")
        except ImportError:  # pragma: no cover - optional
            pass
    found: dict[frozenset[int], dict[int, int]] = {}
    exact = failures = 0
    messages: list[str] = []

    def result(done: int) -> SelectionFrequency:
        blocks = tuple(sorted(found, key=block_key))
        return SelectionFrequency(
            learner=name, n_boot=done, resample=resample, blocks=blocks,
            rank_counts=tuple(dict(found[b]) for b in blocks), exact=exact,
            failures=failures, reference=reference, failure_messages=tuple(messages),
        )

    for done, ss in enumerate(it, start=1):
        g = np.random.default_rng(ss)
        if resample == "bootstrap":
            rows = g.integers(0, n, size=n)
        else:
            rows = np.sort(g.choice(n, size=n // 2, replace=False))
        sub, sub_dims = _resampled_views(views, rows)
        try:
            if sub is None:
                raise ValidationError(
                    "a resample left a view with only constant columns; it carries no "
                    "information for the learner."
                )
            cov = None  # never formed for wide views when the learner has the sample path
            if not (getattr(f, "samples_path", False)
                    and samples_pay_off(sub_dims, sub.n_samples)):
                cov, _ = streaming_cov(sub.Xs, ddof=1)
            with one_blas_thread():  # learners iterate small BLAS calls
                s = (f(sub, cov, sub_dims, n // 2, rng=g) if takes_rng
                     else f(sub, cov, sub_dims, n // 2))
        except HCLError as exc:
            failures += 1
            if len(messages) < 3:
                messages.append(f"{type(exc).__name__}: {exc}")
        else:
            if reference is not None:
                exact += int(s.blocks == reference.blocks and s.ranks == reference.ranks)
            for b, r in zip(s.blocks, s.ranks, strict=True):
                found.setdefault(b, {})
                found[b][r] = found[b].get(r, 0) + 1
        if on_resample is not None:
            on_resample(result(done))
    return result(n_boot)


def attach_evidence(fit: Any, evidence: BlockEvidence) -> Any:
    """A copy of ``fit`` whose ``summary()`` shows ``evidence``.

    Stored as ``fit.diagnostics.extra['block_evidence']``.

    Examples
    --------
    >>> import hcl_stats as hs
    >>> from hcl_stats.block_evidence import attach_evidence, block_evidence
    >>> model = hs.HierarchicalFactorModel.random((4, 5, 6), "ABC:1", singular_values=(2.0, 3.0), rng=0)
    >>> data = model.sample(400, rng=1)
    >>> fit = hs.estimators.SchurComplement().fit(data, structure="ABC:1")
    >>> fit = attach_evidence(fit, block_evidence(data, fit, n_null=9, rng=0))
    >>> "Block evidence" in str(fit.summary())
    True
    """
    if not isinstance(evidence, BlockEvidence):
        raise ValidationError(
            f"evidence must be a BlockEvidence; got {type(evidence).__name__}."
        )
    diag = fit.diagnostics
    return replace(fit, diagnostics=replace(diag, extra={**diag.extra, "block_evidence": evidence}))
