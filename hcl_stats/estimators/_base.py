"""Estimator base class and noise-variance estimation (private module).

Subclasses declare only the mathematics (``_fit``); the base class validates
inputs once, forms the covariance, times the fit, records warnings and wraps the
outcome in an immutable :class:`~hcl_stats.results.FitResult`.
"""

from __future__ import annotations

import abc
import copy
import time
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._linalg import SMALL_BLAS_DIM, block_offsets, one_blas_thread
from .._validation import (
    as_generator,
    check_choice,
    check_covariance,
    check_dims,
    check_int,
    check_view_floor,
    keyword_alias,
    outside_stacklevel,
    short_repr,
    warn_renamed,
)
from ..exceptions import (
    NotIdentifiableError,
    NumericalWarning,
    SolverError,
    ValidationError,
)
from ..model import MultimodalData, check_noise_var, noise_diagonal
from ..results import Diagnostics, FitResult
from ..streaming import streaming_cov
from ..structure import Structure, format_block
from ._cache import SpectralCache
from ._noise import (  # noqa: F401 - re-exported
    check_noise_option,
    check_positive_noise,
    estimate_noise_var,
    estimate_noise_var_reduced,
    signal_covariance,
)
from ._samples import (
    PATHS,
    Reduction,
    any_sparse,
    check_reduced_columns_vary,
    check_sparse_views,
    full_spectrum,
    reduce_views,
    samples_names,
    samples_pay_off,
    warn_wide_covariance,
)

__all__ = ["Estimator", "Problem", "estimate_noise_var", "signal_covariance"]



@dataclass(frozen=True, eq=False)
class Problem:
    """One validated fitting problem, as :meth:`Estimator._fit` receives it.

    The base class builds it once per fit (after validation, rescaling and view
    balancing), so that every estimator reads the same few quantities instead of
    taking them as loose arguments.

    Parameters
    ----------
    cov : ndarray of shape (d, d)
        Validated symmetric sample covariance (``ddof=1``) or population ``Sigma``.
    dims : tuple of int
        ``(d_1, ..., d_M)``.
    structure : Structure or None
        The sharing structure; None for estimators that learn it.
    n_samples : int or None, default=None
        ``n`` behind ``cov``; None for a population covariance.
    noise : {'scalar', 'per_view'} or float or tuple of float, default='scalar'
        The noise rule to estimate ``sigma^2`` by, or the known value(s).
    init : FitResult or None, default=None
        Starting point of iterative estimators.
    data : MultimodalData or None, default=None
        The data rows when fitting from data (only ``needs_data`` estimators
        may rely on it).
    reduction : Reduction or None, default=None
        Set on the sample-space path: ``cov`` is then the covariance of the views'
        row-space scores (dims ``(r_1, ..., r_M)``, see
        :mod:`hcl_stats.estimators._samples`) and the loadings ``_fit`` returns
        are in those coordinates. Rules that depend on the true dimensions read
        :attr:`full_dims`.
    cache : SpectralCache or None, default=None
        Memo of spectral work shared with other fits of the same covariance
        (set by :meth:`Estimator.with_cache`); results are bit-identical
        without it.

    Attributes
    ----------
    offsets : ndarray of shape (M + 1,)
        ``(0, d_1, d_1 + d_2, ..., d)``: view ``m`` is rows
        ``offsets[m]:offsets[m + 1]`` (read-only).

    Examples
    --------
    >>> import numpy as np
    >>> from hcl_stats.estimators._base import Problem
    >>> p = Problem(np.eye(5), (2, 3), None)
    >>> p.offsets.tolist(), p.d, p.block(1).shape
    ([0, 2, 5], 5, (3, 3))
    """

    cov: NDArray[np.float64]
    dims: tuple[int, ...]
    structure: Structure | None
    n_samples: int | None = None
    noise: Any = "scalar"
    init: FitResult | None = None
    data: MultimodalData | None = None
    reduction: Reduction | None = None
    cache: SpectralCache | None = field(default=None, repr=False)
    offsets: NDArray[np.int64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dims", tuple(self.dims))
        off = block_offsets(self.dims)
        off.flags.writeable = False
        object.__setattr__(self, "offsets", off)

    @property
    def d(self) -> int:
        """Size of ``cov``: ``sum(dims)``."""
        return int(self.offsets[-1])

    @property
    def full_dims(self) -> tuple[int, ...]:
        """``(d_1, ..., d_M)`` of the data (``dims`` unless reduced)."""
        return self.dims if self.reduction is None else self.reduction.full_dims

    @property
    def n_features(self) -> int:
        """``d = sum(full_dims)``."""
        return int(sum(self.full_dims))

    def spectrum(self, m: int | None = None) -> NDArray[np.float64]:
        """All ``d`` (or ``d_m``) eigenvalues of the sample covariance (or of view m).

        On the sample-space path the ``d_m - r_m`` eigenvalues of the complement
        of the row space are exact zeros appended to the reduced spectrum.
        """
        vals = None
        if m is None and self.reduction is not None:  # via the n x n Gram when smaller
            vals = self.reduction.spectrum_of(self.cov)
        if vals is None:
            vals = np.linalg.eigvalsh(self.cov if m is None else self.block(m))
        return full_spectrum(vals, self.n_features if m is None else self.full_dims[m])

    def complement_fro2(self, noise: Any) -> float:
        """``||S_W||_F^2`` minus that of the reduced ``S_W``: 0 unless reduced.

        ``S_W = S - Psi`` equals ``-sigma_m^2`` on the ``d_m - r_m`` directions
        of view ``m`` outside its row space.
        """
        if self.reduction is None:
            return 0.0
        per_view = noise_diagonal(noise, self.dims)[self.offsets[:-1]]
        return self.reduction.complement_fro2(per_view)

    def rows(self, m: int) -> slice:
        """Rows of view ``m`` in ``cov`` and in the loadings."""
        return slice(int(self.offsets[m]), int(self.offsets[m + 1]))

    def block(self, m: int, l: int | None = None) -> NDArray[np.float64]:  # noqa: E741
        """The ``(m, l)`` block of ``cov`` (diagonal block if ``l`` is None); a view."""
        return self.cov[self.rows(m), self.rows(m if l is None else l)]

    def noise_variance(self, structure: Structure | None = None):
        """Noise variance per :attr:`noise` (estimated with ``structure``'s ranks).

        ``structure`` defaults to :attr:`structure`; see :func:`estimate_noise_var`.
        """
        if isinstance(self.noise, str):
            return estimate_noise_var_reduced(
                self.cov, self.dims, self.structure if structure is None else structure,
                self.noise, self.full_dims, cache=self.cache,
            )
        if isinstance(self.noise, tuple):
            return check_noise_var(np.asarray(self.noise), len(self.dims), name="noise_rule")
        return float(self.noise)

    def with_(self, **changes: Any) -> Problem:
        """A copy with some fields replaced (``offsets`` follows ``dims``)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class RawFit:
    """What ``Estimator._fit`` returns before wrapping (internal, immutable)."""

    loadings: NDArray[np.float64]
    noise_var: float | NDArray[np.float64]
    structure: Structure
    converged: bool | None = None
    n_iter: int = 0
    objective: float | None = None
    relative_gradient: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _fast_checked_covariance(cov: Any, dim: int) -> NDArray[np.float64]:
    """:func:`check_covariance` with a Cholesky test of positive semi-definiteness.

    The shared validator computes every eigenvalue (as expensive as the fit
    itself for large ``d``). Here ``cov + 1e-8 max|cov| I`` is Cholesky-factored
    instead (``d^3 / 3`` flops): it succeeds exactly when the smallest eigenvalue
    is above ``-1e-8 max|cov|``, the validator's own rule, up to round-off
    ``O(d eps max|cov|)``. Anything unusual (non-float64 input, wrong shape,
    non-finite or asymmetric values, a failed factorisation) goes to the shared
    validator, so its error messages are unchanged.
    """
    arr = cov if isinstance(cov, np.ndarray) else None
    if arr is None or arr.dtype != np.float64 or arr.shape != (dim, dim) or dim == 0:
        return check_covariance(cov, "cov", dim=dim)
    scale = float(np.max(np.abs(arr)))
    if not np.isfinite(scale) or scale == 0.0 or scale >= 1e150:
        return check_covariance(cov, "cov", dim=dim)
    if float(np.max(np.abs(arr - arr.T))) > 1e-8 * scale:
        return check_covariance(cov, "cov", dim=dim)
    sym = (arr + arr.T) / 2.0
    shifted = sym.copy()
    shifted[np.diag_indices(dim)] += 1e-8 * scale
    try:
        np.linalg.cholesky(shifted)
    except np.linalg.LinAlgError:
        return check_covariance(cov, "cov", dim=dim)
    return sym


class _EstimatorMeta(abc.ABCMeta):
    """Accepts ``noise_var=``, the deprecated spelling of ``noise_rule``, in every estimator."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if "noise_var" in kwargs:
            kwargs["noise_rule"] = keyword_alias(
                kwargs.pop("noise_rule", None), "noise_rule", kwargs.pop("noise_var"), "noise_var"
            )
        return super().__call__(*args, **kwargs)


@dataclass(frozen=True, kw_only=True)
class Estimator(metaclass=_EstimatorMeta):
    """Base class of all estimators: frozen hyper-parameters, immutable results.

    Parameters
    ----------
    noise_rule : {'scalar', 'per_view'} or float or sequence of float, default='scalar'
        How to obtain the noise variance: estimate one ``sigma^2`` from the bottom
        ``d - K`` eigenvalues, estimate one ``sigma_m^2`` per view from the bottom
        eigenvalues of each view's diagonal block, or use the given known value(s).
        ``noise_var=`` is its deprecated spelling (DeprecationWarning).
    """

    #: Registry name (study configs, ``hcl-stats fit --estimator``).
    name: ClassVar[str] = "estimator"
    #: False if the loadings are dense (no identified blocks), e.g. NaivePCA.
    structured: ClassVar[bool] = True
    #: True if ``fit`` accepts ``init=`` (iterative estimators).
    accepts_init: ClassVar[bool] = False
    #: True if the estimator learns the structure (``structure=None`` allowed).
    learns_structure: ClassVar[bool] = False
    #: True if the estimator needs the raw rows, not only the sample covariance
    #: (``fit_covariance`` then raises and studies draw data, not Wishart matrices).
    needs_data: ClassVar[bool] = False
    #: True if, with per-view noise, the fit runs on views rescaled to unit average
    #: variance and the loadings are scaled back: the estimate is then exactly
    #: equivariant to rescaling a view (loadings of view m scale by c_m) and stays
    #: accurate when view scales differ by many orders of magnitude.
    balances_views: ClassVar[bool] = False
    #: False if the estimator handles a total rank K above d (identifiable designs
    #: with d <= K exist; see docs/identifiability.md, Proposition 2).
    needs_rank_below_d: ClassVar[bool] = True
    #: True if ``_fit`` handles a reduced :class:`Problem` (the sample-space path
    #: of :meth:`fit`): it reads the true dimensions from ``problem.full_dims``,
    #: the spectrum from ``problem.spectrum`` and adds
    #: ``problem.complement_fro2`` to ``||S_W||_F^2`` where it uses that norm.
    samples_path: ClassVar[bool] = False

    noise_rule: Any = "scalar"

    #: Per-unit memo of shared spectral work (set by :meth:`with_cache`; not a
    #: hyper-parameter, so it is neither compared nor printed).
    _cache: ClassVar[SpectralCache | None] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "noise_rule", check_noise_option(self.noise_rule))

    @property
    def noise_var(self) -> Any:
        """Deprecated spelling of :attr:`noise_rule` (emits a DeprecationWarning)."""
        warn_renamed("noise_var", "noise_rule")
        return self.noise_rule

    def with_cache(self, cache: SpectralCache | None) -> Estimator:
        """A copy of this estimator that shares spectral work through ``cache``.

        Fits of the same covariance by estimators holding the same
        :class:`~hcl_stats.estimators.SpectralCache` compute the validation of the
        covariance, its top-``K`` eigendecomposition and the Schur-complement
        recursion once. The results are bit-identical to fits without a cache.

        Parameters
        ----------
        cache : SpectralCache or None
            None returns a copy without a cache.

        Returns
        -------
        Estimator
            Equal (``==``) to this one; only the cache differs.
        """
        est = copy.copy(self)
        object.__setattr__(est, "_cache", cache)
        return est

    # ---------------------------------------------------------------- public
    def fit(
        self,
        views: MultimodalData | Sequence[ArrayLike],
        *,
        structure: Structure | str | None = None,
        init: FitResult | None = None,
        rng: Any = None,
        path: str = "auto",
        n_effective: int | None = None,
    ) -> FitResult:
        """Fit the model to multi-view data.

        Parameters
        ----------
        views : MultimodalData or list of array_like of shape (n_samples, d_m)
            One array per view, rows are samples. Never modified. Views may be
            ``scipy.sparse`` matrices on the sample-space path (centred
            implicitly, never densified beyond ``n x n`` and ``n x d_m``
            products).
        structure : Structure or str
            The sharing structure, e.g. ``"ABC:3 AB:3 C:2"`` (views lettered in data
            order) or ``"all:3"``.
        init : FitResult, optional
            Starting point, for iterative estimators only.
        rng : None, int, SeedSequence or Generator
            Only used by randomised estimators; deterministic ones say so.
        path : {'auto', 'covariance', 'samples'}, default='auto'
            ``'covariance'`` forms the ``d x d`` sample covariance.
            ``'samples'`` never does: each view wider than ``n`` is reduced to
            the row space of its centred data (through its ``n x n`` Gram, or a
            thin SVD when that basis fails an orthonormality check) and the estimator runs
            on the covariance of those scores, of size at most ``M n``, with the
            true dimensions in every rule that uses them; the loadings are mapped
            back (module :mod:`hcl_stats.estimators._samples`). Both paths give
            the same estimate up to round-off. ``'auto'`` takes the sample path
            when the estimator supports it and some view is sparse, or has
            ``d_m > n`` and the reduction leaves at most 85% of ``d``
            (``sum_m min(d_m, n - 1) <= 0.85 d``; above that ratio the
            covariance path is about as fast or faster). Estimators with the sample path: see
            :func:`hcl_stats.estimators.sample_path_estimators`. A given ``init``
            is projected onto the row spaces there.
        n_effective : int, optional
            The sample size the estimator's rules assume (noise edges,
            Marchenko-Pastur ratios); default: the number of rows. A bootstrap
            resample of ``n`` rows carries about the information of ``n / 2``
            (:func:`hcl_stats.block_evidence.selection_frequency`).

        Returns
        -------
        FitResult
        """
        path = check_choice(path, "path", PATHS)
        if not isinstance(views, MultimodalData) and any_sparse(views):
            return self._fit_sparse(views, structure, init, rng, path, n_effective)
        data = views if isinstance(views, MultimodalData) else MultimodalData(views)
        _check_columns_vary(data)
        names, n = data.view_names, data.n_samples
        n_eff = n if n_effective is None else check_int(n_effective, "n_effective", minimum=2)
        if self._use_samples(path, data.dims, n, sparse=False):
            cov, reduction = reduce_views(list(data.Xs), n)
            return self._run(cov, reduction.dims, structure, n_eff, init, rng, names,
                             data=data, reduction=reduction)
        cov, _ = streaming_cov(data.Xs, ddof=1)  # chunked syrk: no stacked or centred copy
        return self._run(cov, data.dims, structure, n_eff, init, rng, names, data=data)

    def _use_samples(self, path: str, dims, n_samples: int, *, sparse: bool) -> bool:
        """Whether to take the sample-space path (refusing an impossible request)."""
        if path == "covariance":
            if sparse:
                raise ValidationError(
                    "path='covariance' needs dense views; got scipy.sparse input. Use "
                    "path='auto' or 'samples' (sparse views are centred implicitly "
                    "there), or densify the views."
                )
            return False
        if not self.samples_path:
            if path == "samples" or sparse:
                raise ValidationError(
                    f"{type(self).__name__} has no sample-space path (it needs the "
                    f"d x d covariance); path='samples' and sparse views need one of "
                    f"{', '.join(samples_names())}. Use path='covariance' with "
                    "dense views."
                )
            warn_wide_covariance(type(self).__name__, dims, n_samples)
            return False
        return path == "samples" or sparse or samples_pay_off(dims, n_samples)

    def _fit_sparse(self, views, structure, init, rng, path, n_effective=None) -> FitResult:
        """:meth:`fit` for views of which some are ``scipy.sparse`` (sample path)."""
        xs = check_sparse_views(views)
        n = int(xs[0].shape[0])
        dims = check_dims([x.shape[1] for x in xs])
        self._use_samples(path, dims, n, sparse=True)  # refuses when impossible
        cov, reduction = reduce_views(xs, n)
        check_reduced_columns_vary(xs, n)
        n_eff = n if n_effective is None else check_int(n_effective, "n_effective", minimum=2)
        return self._run(cov, reduction.dims, structure, n_eff, init, rng, None,
                         reduction=reduction)

    def fit_covariance(
        self,
        cov: ArrayLike,
        *,
        dims: Sequence[int],
        n_samples: int | None = None,
        structure: Structure | str | None = None,
        init: FitResult | None = None,
        rng: Any = None,
    ) -> FitResult:
        """Fit the model from a covariance matrix.

        Parameters
        ----------
        cov : array_like of shape (d, d)
            Sample covariance (``ddof=1``) or, for population-level checks, the exact
            ``Sigma``. Must be symmetric positive semi-definite.
        dims : sequence of int
            ``(d_1, ..., d_M)`` with ``sum(dims) = d``.
        n_samples : int, optional
            Sample size behind ``cov``; None means a population covariance.
        structure, init, rng
            As in :meth:`fit`.

        Returns
        -------
        FitResult
        """
        dims = check_dims(dims)
        if self._cache is not None and isinstance(cov, np.ndarray):
            cov = self._cache.memo(
                "checked_cov", (cov,), sum(dims),
                lambda: _fast_checked_covariance(cov, sum(dims)),
            )
        else:
            cov = _fast_checked_covariance(cov, sum(dims))
        diag = np.diag(cov)
        if np.any(diag <= 0):
            j = int(np.argmax(diag <= 0))
            raise ValidationError(
                f"cov[{j}, {j}] must be > 0 (every coordinate carries noise variance "
                f"sigma^2 > 0); got {float(diag[j])!r}."
            )
        if n_samples is not None:
            n_samples = check_int(n_samples, "n_samples", minimum=2)
        if self.needs_data:
            raise ValidationError(
                f"{type(self).__name__} needs the raw data rows; call fit(views, ...) "
                "instead of fit_covariance."
            )
        return self._run(cov, dims, structure, n_samples, init, rng, None)

    # ------------------------------------------------------------- machinery
    def _run(
        self, cov, dims, structure, n_samples, init, rng, names, data=None,
        reduction=None,
    ) -> FitResult:
        full_dims = tuple(dims) if reduction is None else reduction.full_dims
        if structure is None:
            if not self.learns_structure:
                raise ValidationError(
                    f"structure must be given to {type(self).__name__}.fit, e.g. "
                    "structure='all:3' or 'ABC:3 AB:2 C:1'."
                )
        else:
            structure = Structure.coerce(structure, len(dims), view_names=names)
            if names is not None and structure.view_names is None:
                structure = structure.with_names(names)
        if not np.all(np.isfinite(cov)):
            raise ValidationError(
                "views must have a sample covariance representable in float64; got "
                "an overflow. Rescale the views."
            )
        if structure is not None:
            _check_ranks(structure, full_dims, n_samples, self.needs_rank_below_d)
        if init is not None and not self.accepts_init:
            raise ValidationError(
                f"init is not used by {type(self).__name__}; only iterative "
                "estimators (e.g. MaskedGradient) accept a starting point."
            )
        if init is not None and not isinstance(init, FitResult):
            raise ValidationError(
                f"init must be a FitResult (a previous fit to start from) or None; got "
                f"{short_repr(init)}."
            )
        if init is not None and reduction is not None:
            if tuple(init.dims) != full_dims:
                raise ValidationError(
                    f"init must have the dims of the data {full_dims}; got {init.dims}."
                )
            init = replace(init, loadings=reduction.project(np.asarray(init.loadings)),
                           dims=reduction.dims)
        gen = as_generator(rng)
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _warn_scalar_noise_scales(self.noise_rule, cov, dims, full_dims)
            _check_known_noise(self.noise_rule, cov, dims, full_dims)
            problem = Problem(cov, tuple(dims), structure, n_samples, self.noise_rule,
                              init, data, reduction, cache=self._cache)
            # the sample path's reduced problem, and any fit below SMALL_BLAS_DIM, is
            # too small for BLAS threads to pay off
            small = reduction is not None or cov.shape[0] < SMALL_BLAS_DIM
            with one_blas_thread() if small else nullcontext():
                raw = self._fit_rescaled(problem, gen)
            if reduction is not None:
                raw = replace(raw, loadings=reduction.lift(np.asarray(raw.loadings)),
                              extra={**raw.extra, "path": "samples",
                                     "reduced_dims": list(reduction.dims)})
            else:
                raw = replace(raw, extra={**raw.extra, "path": "covariance"})
        _check_finite_fit(self, raw)
        wall = time.perf_counter() - start
        level = outside_stacklevel()
        for w in caught:  # re-emitted at the user's call (not at a line of the package)
            warnings.warn(w.message, w.category, stacklevel=level)
        diagnostics = Diagnostics(
            converged=raw.converged,
            n_iter=raw.n_iter,
            objective=raw.objective,
            relative_gradient=raw.relative_gradient,
            wall_time_s=wall,
            warnings=tuple(f"{w.category.__name__}: {w.message}" for w in caught),
            extra=raw.extra,
        )
        return FitResult(
            loadings=raw.loadings,
            noise_var=raw.noise_var,
            structure=raw.structure,
            dims=full_dims,
            n_samples=n_samples,
            estimator=repr(self),
            diagnostics=diagnostics,
            structured=self.structured,
        )

    def _fit_rescaled(self, problem: Problem, rng: np.random.Generator) -> RawFit:
        """Dispatch to ``_fit``; covariances of extreme magnitude are scaled first.

        When the largest variance is outside ``[1e-30, 1e30]``, everything is
        multiplied by an even power of two ``2^k`` (exact in floating point), fitted,
        and scaled back (loadings by ``2^(-k/2)``, noise by ``2^(-k)``), so that
        squares and products inside the estimators neither overflow nor underflow
        (the refinement forms sixth powers of the data scale).
        """
        mag = (float(np.max(np.abs(np.diag(problem.cov)))) if problem.reduction is None
               else problem.reduction.max_variance)  # the data's, on either path
        k = 0
        if mag > 0 and not 1e-30 <= mag <= 1e30:
            k = -2 * int(np.round(np.log2(mag) / 2))
        est = self
        if k:
            changes: dict[str, Any] = {"cov": np.ldexp(problem.cov, k)}
            if not isinstance(problem.noise, str):
                nv = problem.noise
                scaled = (tuple(float(np.ldexp(v, k)) for v in nv) if isinstance(nv, tuple)
                          else float(np.ldexp(nv, k)))
                est = replace(self, noise_rule=scaled)
                changes["noise"] = est.noise_rule
            init = problem.init
            if init is not None:
                changes["init"] = replace(
                    init, loadings=np.ldexp(np.asarray(init.loadings), k // 2),
                    noise_var=np.ldexp(np.asarray(init.noise_var, dtype=float), k),
                )
            if problem.data is not None:
                changes["data"] = MultimodalData(
                    [np.ldexp(x, k // 2) for x in problem.data.Xs],
                    problem.data.view_names,
                )
            problem = problem.with_(**changes)
        fit = est._fit_balanced if self.balances_views and _per_view(self.noise_rule) else (
            est._fit)
        raw = fit(problem, rng)
        if k:
            nv = np.ldexp(np.asarray(raw.noise_var, dtype=float), -k)
            back: dict[str, Any] = {
                "loadings": np.ldexp(np.asarray(raw.loadings), -(k // 2)),
                "noise_var": float(nv) if nv.ndim == 0 else nv,
            }
            extra = raw.extra
            if raw.objective is not None:
                with np.errstate(over="ignore"):
                    obj = float(np.ldexp(raw.objective, -2 * k))
                if np.isfinite(obj):
                    back["objective"] = obj
                else:  # the loss in data units is beyond float64: keep it scaled
                    extra = {**extra, "objective_exponent_base2": -2 * k}
            back["extra"] = {**extra, "magnitude_exponent": k}
            raw = replace(raw, **back)
        return raw

    def _fit_balanced(self, problem: Problem, rng: np.random.Generator) -> RawFit:
        """``_fit`` on views rescaled by ``s_m = sqrt(tr(cov_mm) / d_m)``."""
        dims, off = problem.dims, problem.offsets
        scales = np.array(
            [np.sqrt(np.trace(problem.block(m)) / dm)
             for m, dm in enumerate(problem.full_dims)]
        )
        rows = np.repeat(scales, dims)
        est = self
        changes: dict[str, Any] = {"cov": problem.cov / np.outer(rows, rows)}
        if isinstance(problem.noise, tuple):
            check_noise_var(np.asarray(problem.noise), len(dims), name="noise_rule")
            est = replace(self, noise_rule=tuple(np.asarray(problem.noise) / scales**2))
            changes["noise"] = est.noise_rule
        init = problem.init
        if init is not None:
            changes["init"] = replace(
                init,
                loadings=np.asarray(init.loadings) / rows[:, None],
                noise_var=noise_diagonal(init.noise_var, dims)[off[:-1]] / scales**2,
            )
        if problem.data is not None:
            changes["data"] = MultimodalData(
                [x / c for x, c in zip(problem.data.Xs, scales, strict=True)],
                problem.data.view_names,
            )
        raw = est._fit(problem.with_(**changes), rng)
        return replace(
            raw,
            loadings=np.asarray(raw.loadings) * rows[:, None],
            noise_var=noise_diagonal(raw.noise_var, dims)[off[:-1]] * scales**2,
            extra={**raw.extra, "view_scales": [float(c) for c in scales]},
        )

    @abc.abstractmethod
    def _fit(self, problem: Problem, rng: np.random.Generator) -> RawFit:
        """Compute the estimate from a validated :class:`Problem`.

        ``problem.data`` is the validated data when called from :meth:`fit` (None
        from :meth:`fit_covariance`); only ``needs_data`` estimators may rely on it.
        ``problem.noise`` is the noise option in the units of ``problem.cov``
        (after any rescaling by the base class), so read it rather than
        ``self.noise_rule``.
        """

    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters as a dict (for study records)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


# ------------------------------------------------------------- input checks
#: Per-view average variances differing by more than this factor trigger a
#: NumericalWarning under a scalar noise model.
SCALE_RATIO_WARN = 1e4


def _per_view(noise_option: Any) -> bool:
    return noise_option == "per_view" or isinstance(noise_option, tuple)


def _check_columns_vary(data: MultimodalData) -> None:
    """Reject constant columns: the model gives every coordinate variance >= sigma^2."""
    limit = float(np.sqrt(np.finfo(np.float64).max / (4.0 * data.n_samples)))
    for m, x in enumerate(data.Xs):
        # two reductions, no |x| temporary: max|x| = max(max x, -min x) and
        # ptp = max x - min x, exactly
        hi, lo = np.max(x, axis=0), np.min(x, axis=0)
        scale = np.maximum(hi, -lo)
        check_view_floor(float(np.max(scale)), f"views[{m}]")
        if np.max(scale) >= limit:
            raise ValidationError(
                f"views[{m}] must have entries of magnitude < {limit:.3g} so that the "
                f"sample covariance of n = {data.n_samples} rows fits in float64; got "
                f"{float(np.max(scale)):.3g}. Rescale the view."
            )
        spread = hi - lo  # cannot overflow below the limit
        flat = spread <= 1e-12 * scale
        if np.any(flat):
            j = int(np.argmax(flat))
            raise ValidationError(
                f"views[{m}][:, {j}] must vary across samples (the model gives every "
                f"coordinate noise variance sigma^2 > 0); got a constant column equal "
                f"to {float(x[0, j])!r}. Drop the column before fitting."
            )


def _check_ranks(structure: Structure, dims, n_samples: int | None,
                 rank_below_d: bool = True) -> None:
    """Ranks the dims and the sample size can support (before any linear algebra)."""
    d, k = sum(dims), structure.total_rank
    for b, r in zip(structure.blocks, structure.ranks, strict=True):
        d_s = sum(dims[m] for m in b)
        if r > d_s:
            raise NotIdentifiableError(
                f"rank of block {format_block(b)} must be <= d_S = {d_s} (the number "
                f"of rows of its views); got r_S = {r}."
            )
    if k > d and rank_below_d:
        raise NotIdentifiableError(
            f"total rank K must be <= d = {d}; got K = {k}."
        )
    if n_samples is not None and n_samples < k + 2:
        raise ValidationError(
            f"n_samples must be >= K + 2 = {k + 2} (the centred sample covariance has "
            f"rank n - 1, which must exceed the total rank K = {k}); got {n_samples}."
        )


def _warn_scalar_noise_scales(noise_option: Any, cov: NDArray, dims,
                              full_dims=None) -> None:
    """Warn when one sigma^2 is assumed for views whose scales differ hugely."""
    if _per_view(noise_option) or len(dims) < 2:
        return
    var = _view_average_variances(cov, dims, full_dims)
    lo, hi = float(np.min(var)), float(np.max(var))
    ratio = hi / lo if lo > 0 else np.inf  # Python floats: inf, not a warning
    if ratio > SCALE_RATIO_WARN:
        warnings.warn(
            f"the average variances of the views differ by a factor {ratio:.3g} "
            f"(from {np.min(var):.3g} to {np.max(var):.3g}) but noise_rule is scalar, "
            "so one sigma^2 is assumed for all views and the small-scale views are "
            "fitted at the noise level of the large ones; use noise_rule='per_view' "
            "(scale-equivariant) or standardise the views.",
            NumericalWarning,
            stacklevel=4,
        )


def _view_average_variances(cov: NDArray, dims, full_dims=None) -> NDArray:
    """``tr(cov_mm) / d_m`` per view (the data's ``d_m`` on the sample path)."""
    off = block_offsets(dims)
    return np.array(
        [np.trace(cov[off[m] : off[m + 1], off[m] : off[m + 1]]) / dm
         for m, dm in enumerate(dims if full_dims is None else full_dims)]
    )


def _check_known_noise(noise_option: Any, cov: NDArray, dims, full_dims=None) -> None:
    """A known sigma^2 must be within ``1e+-100`` of each view's average variance.

    Beyond that the variance-to-noise ratios (or their inverses) overflow when
    squared in the shrinkage, the whitening and the refinement. Inside it, a
    sigma^2 above the signal leaves zero columns with a NumericalWarning, and a
    tiny one gives the fit of ``1e-16`` times the variance (up to round-off and the
    refinement's stopping tolerance).
    """
    if isinstance(noise_option, str) or (np.ndim(noise_option) > 0
                                         and np.size(noise_option) != len(dims)):
        return  # a rule, or a wrong length (refused with its own message later)
    var = _view_average_variances(cov, dims, full_dims)
    noise = np.broadcast_to(np.asarray(noise_option, dtype=float), var.shape)
    for m, (s2, v) in enumerate(zip(noise, var, strict=True)):
        if 1e-100 * v <= s2 <= 1e100 * v:
            continue
        where = "" if np.ndim(noise_option) == 0 else f"[{m}]"
        hint = (f"for (nearly) noiseless data give, e.g., {1e-16 * v:.3g} (the same fit "
                "as any smaller value, up to round-off and the solver's tolerance)"
                if s2 < v else "check its units")
        raise ValidationError(
            f"noise_rule{where} (a known sigma^2; --noise on the command line) must be "
            f"within a factor 1e100 of the average variance of view {m} ({v:.3g}); got "
            f"{s2:.3g}. Variance-to-noise ratios beyond that overflow in float64; {hint}."
        )


def _check_finite_fit(est: Estimator, raw: RawFit) -> None:
    """Never return NaN or inf: a non-finite estimate is a solver failure."""
    if not (np.all(np.isfinite(raw.loadings)) and np.all(np.isfinite(raw.noise_var))):
        raise SolverError(
            f"{type(est).__name__} produced a non-finite estimate (loadings or "
            "noise variance contain NaN or inf); the covariance is too "
            "ill-conditioned for this estimator.",
            status="non_finite",
        )
