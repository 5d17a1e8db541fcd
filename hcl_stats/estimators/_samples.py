"""Sample-space path for wide views: each view reduced to its row space (private).

When a view has more columns than samples (``d_m > n``), its centred rows
``Y_m = (X_m - 1 mean_m^T) / sqrt(n - 1)`` span a subspace of dimension
``r_m <= n - 1`` of ``R^{d_m}``. With an orthonormal basis ``V_m`` (``d_m x r_m``)
of that row space and ``Q = blockdiag(V_1, ..., V_M)``:

- the sample covariance is ``S = Q S~ Q^T`` with ``S~ = Z^T Z`` the covariance of
  the reduced scores ``Z_m = Y_m V_m`` (``n x r_m``), of size ``sum_m r_m``;
- a noise matrix ``Psi = blockdiag(sigma_m^2 I_{d_m})`` commutes with ``Q Q^T``,
  so ``S - Psi = Q (S~ - Psi~) Q^T - Psi (I - Q Q^T)``: the spectrum of any
  principal view-submatrix of ``S - Psi`` is that of the reduced one plus
  ``-sigma_m^2`` repeated ``d_m - r_m`` times;
- Schur complements over view subsets, truncated inverses of their top
  eigenpairs, the masked loss ``1/2 ||W W^T - S_W||_F^2`` and its gradient all
  respect the view blocks, so for loadings ``W = Q W~`` they are the reduced
  quantities mapped by ``Q``, plus the constant ``sum_m sigma_m^4 (d_m - r_m)``
  in ``||S_W||_F^2``.

The estimators that support this path run on ``S~`` (never forming a ``d x d``
matrix) with the full dimensions for every rule that depends on them (noise
variance, Marchenko-Pastur ratios, Frobenius norms), and their loadings are
lifted by ``Q``. Memory is ``O(n d + d K + (sum_m r_m)^2)``.

``scipy.sparse`` views are centred implicitly: only ``X X^T``-type products of
the sparse matrix are formed.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
from numpy.typing import NDArray

from .._linalg import block_offsets
from .._validation import beyond_2_53, check_float_array, check_view_floor, short_repr
from ..exceptions import CostWarning, NumericalWarning, ValidationError

__all__ = [
    "PATHS",
    "Reduction",
    "RowBasis",
    "any_sparse",
    "check_reduced_columns_vary",
    "check_sparse_views",
    "full_spectrum",
    "is_sparse",
    "reduce_views",
    "samples_names",
    "samples_pay_off",
    "warn_wide_covariance",
]

#: Values of the ``path`` option of :meth:`Estimator.fit`.
PATHS = ("auto", "covariance", "samples")


def is_sparse(x: Any) -> bool:
    """True for a ``scipy.sparse`` matrix or array (without importing it eagerly)."""
    mod = type(x).__module__
    if not mod.startswith("scipy.sparse"):
        return False
    import scipy.sparse

    return scipy.sparse.issparse(x)


class RowBasis:
    """A view's row-space basis ``V = Y^T C`` kept as its two factors (internal).

    ``Y`` is the centred, scaled view (``n x d_m``) and ``C = U diag(mu)^(-1/2)``
    (``n x r_m``) from the eigendecomposition of ``Y Y^T``. Products with ``V`` and
    ``V^T`` go through the factors (``O(n d_m K)`` for ``K`` columns), so the
    ``d_m x r_m`` matrix is formed only on request (:meth:`dense`).
    """

    __slots__ = ("coef", "y")

    def __init__(self, y: NDArray[np.float64], coef: NDArray[np.float64]) -> None:
        self.y = y
        self.coef = coef

    @property
    def shape(self) -> tuple[int, int]:
        return (self.y.shape[1], self.coef.shape[1])

    def times(self, block: NDArray[np.float64]) -> NDArray[np.float64]:
        """``V @ block``."""
        return self.y.T @ (self.coef @ block)

    def t_times(self, block: NDArray[np.float64]) -> NDArray[np.float64]:
        """``V^T @ block``."""
        return self.coef.T @ (self.y @ block)

    def dense(self) -> NDArray[np.float64]:
        """``V`` itself, shape ``(d_m, r_m)``."""
        return self.y.T @ self.coef


@dataclass(frozen=True, eq=False)
class Reduction:
    """How a fit on reduced scores maps back to the views (internal).

    Attributes
    ----------
    full_dims : tuple of int
        ``(d_1, ..., d_M)`` of the data.
    bases : tuple of (ndarray of shape (d_m, r_m) or RowBasis or None)
        Orthonormal basis of view ``m``'s centred row space, explicit or as its
        factors (:class:`RowBasis`); None when the view is kept as is
        (``r_m = d_m``). :meth:`basis` gives it as an array.
    dims : tuple of int
        ``(r_1, ..., r_M)``.
    max_variance : float
        Largest sample variance of a column of the data.
    reduced_cov : ndarray of shape (r, r) or None
        The reduced covariance ``S~ = Z^T Z`` returned with this reduction.
    scores_gram : ndarray of shape (n_samples, n_samples) or None
        ``Z Z^T``, kept when ``n_samples < r`` (see :meth:`spectrum_of`).
    scores : ndarray of shape (n_samples, r) or None
        ``Z`` itself, kept when ``n_samples < r`` (see :meth:`factor_of`).
    """

    full_dims: tuple[int, ...]
    bases: tuple[NDArray[np.float64] | RowBasis | None, ...]
    dims: tuple[int, ...]
    max_variance: float
    reduced_cov: NDArray[np.float64] | None = None
    scores_gram: NDArray[np.float64] | None = None
    scores: NDArray[np.float64] | None = None

    def factor_of(self, cov: NDArray[np.float64], noise: Any
                  ) -> tuple[NDArray[np.float64], float] | None:
        """``(Z, sigma^2)`` with ``cov - sigma^2 I = Z^T Z - sigma^2 I``, or None.

        For the Schur recursion's factored route
        (:func:`~hcl_stats.estimators.schur_loadings`): only when ``cov`` is this
        reduction's ``S~`` itself, ``n_samples < r`` and the noise is one variance.
        """
        if self.scores is None or cov is not self.reduced_cov or np.ndim(noise) != 0:
            return None
        return self.scores, float(noise)

    def spectrum_of(self, cov: NDArray[np.float64]) -> NDArray[np.float64] | None:
        """Eigenvalues of ``cov`` through the ``n x n`` Gram ``Z Z^T``, or None.

        ``S~ = Z^T Z`` (``r x r``) and ``Z Z^T`` have the same non-zero
        eigenvalues; when ``n < r`` the ``n`` eigenvalues of the smaller one,
        with ``r - n`` zeros, are the spectrum of ``S~``. Only for ``cov`` that
        is this reduction's ``S~`` itself (not a rescaled copy): None otherwise.
        """
        if self.scores_gram is None or cov is not self.reduced_cov:
            return None
        vals = np.linalg.eigvalsh(self.scores_gram)
        return np.concatenate([np.zeros(cov.shape[0] - vals.size), vals])

    @property
    def complement(self) -> NDArray[np.int64]:
        """``d_m - r_m`` per view: directions with zero sample variance."""
        return np.asarray(self.full_dims) - np.asarray(self.dims)

    def lift(self, w: NDArray[np.float64]) -> NDArray[np.float64]:
        """Loadings in data coordinates: ``Q w``, shape ``(d, K)``."""
        off = block_offsets(self.dims)
        parts = []
        for m, basis in enumerate(self.bases):
            block = w[off[m] : off[m + 1]]
            if basis is None:
                parts.append(block)
            else:
                parts.append(basis.times(block) if isinstance(basis, RowBasis)
                             else basis @ block)
        return np.vstack(parts)

    def basis(self, m: int) -> NDArray[np.float64] | None:
        """View ``m``'s basis ``V_m`` as an array (None when the view is kept)."""
        basis = self.bases[m]
        return basis.dense() if isinstance(basis, RowBasis) else basis

    def project(self, w: NDArray[np.float64]) -> NDArray[np.float64]:
        """Reduced coordinates ``Q^T w`` of data-space loadings, shape ``(r, K)``."""
        off = block_offsets(self.full_dims)
        parts = []
        for m, basis in enumerate(self.bases):
            block = np.asarray(w[off[m] : off[m + 1]], dtype=float)
            if basis is None:
                parts.append(block)
            else:
                parts.append(basis.t_times(block) if isinstance(basis, RowBasis)
                             else basis.T @ block)
        return np.vstack(parts)

    def complement_fro2(self, noise_diag_per_view: NDArray[np.float64]) -> float:
        """``||Psi (I - Q Q^T)||_F^2 = sum_m sigma_m^4 (d_m - r_m)``."""
        psi = np.asarray(noise_diag_per_view, dtype=float)
        return float(np.sum(psi * psi * self.complement))


def _centred_dense(x: NDArray, scale: float) -> NDArray:
    return (x - x.mean(axis=0)) * scale


def _view_scores(x: Any, n: int, reduce: bool
                 ) -> tuple[NDArray, NDArray | RowBasis | None, float]:
    """Scores ``Z_m`` (``n x r_m``), basis ``V_m`` (or None) and the largest variance.

    ``reduce=False`` keeps the centred view itself (``V_m = I``).
    """
    scale = 1.0 / np.sqrt(n - 1.0)
    if is_sparse(x):
        x = x.tocsr().astype(np.float64)
        mean = np.asarray(x.mean(axis=0)).ravel()
        sq = np.asarray(x.multiply(x).sum(axis=0)).ravel()
        var = (sq - n * mean * mean) * scale * scale
        if not reduce:
            y = (x.toarray() - mean) * scale
            return y, None, float(np.max(var))
        # Gram of the implicitly centred rows: (X - 1 mu^T)(X - 1 mu^T)^T
        xm = np.asarray(x @ mean).ravel()
        gram = np.asarray((x @ x.T).toarray())
        gram = gram - xm[:, None] - xm[None, :] + float(mean @ mean)
        gram = (gram + gram.T) / 2.0 * (scale * scale)
        vals, u = scipy.linalg.eigh(gram)
        vals, u = vals[::-1], u[:, ::-1]
        keep = vals > max(float(vals[0]), 0.0) * n * np.finfo(float).eps
        s = np.sqrt(vals[keep])
        u = u[:, keep]
        # V = Y^T U / s, with Y^T U = (X^T U - mu (1^T U)) * scale
        v = (np.asarray(x.T @ u) - np.outer(mean, u.sum(axis=0))) * scale / s
        return u * s, v, float(np.max(var))
    y = _centred_dense(np.asarray(x, dtype=float), scale)
    var = float(np.max(np.einsum("ij,ij->j", y, y)))
    if not reduce:
        return y, None, var
    through_gram = _gram_basis(y)
    if through_gram is not None:
        return through_gram[0], through_gram[1], var
    u, s, vt = scipy.linalg.svd(y, full_matrices=False, lapack_driver="gesdd")
    keep = s > max(float(s[0]), 0.0) * n * np.finfo(float).eps
    return u[:, keep] * s[keep], vt[keep].T, var


#: Eigenvalues of the n x n Gram below ``GRAM_NULL * n * eps`` times the largest
#: are treated as zero (directions of the row space with no sample variance, such
#: as the one removed by centring); dropping them changes the view's covariance by
#: at most that fraction of its norm.
GRAM_NULL = 100.0

#: Orthonormality tolerance of the Gram route's basis: the checked columns must
#: have ``|V^T V - I|`` at most a tenth of it, else the view's basis is recomputed
#: by a thin SVD (see :func:`_gram_basis`).
GRAM_ORTHO_TOL = 1e-10

#: Number of basis columns (those of the smallest ``mu``) whose orthonormality the
#: Gram route checks, to ``GRAM_ORTHO_TOL / 10``.
GRAM_ORTHO_COLUMNS = 16


def _gram_basis(y: NDArray) -> tuple[NDArray, RowBasis] | None:
    """Scores and row-space basis of a wide centred view through its ``n x n`` Gram.

    ``Y Y^T = U diag(mu) U^T`` gives ``Z = U diag(sqrt(mu))`` and
    ``V = Y^T U diag(mu)^(-1/2)``: one ``O(n^2 d_m)`` product and an ``n x n``
    eigendecomposition, against a thin SVD of ``Y`` (several times the cost).
    ``V`` is kept as its factors (:class:`RowBasis`), never formed.

    Forming the Gram squares the condition number, so the basis is accepted only
    when it is orthonormal to ``GRAM_ORTHO_TOL``; returns None otherwise (an
    ill-conditioned view, e.g. a dominant direction with ``mu_1 / mu_r > ~1e5``),
    and the caller takes the SVD. The rounding of the Gram enters ``V^T V - I``
    as ``(U^T E U)_ij / sqrt(mu_i mu_j)``, largest for the smallest ``mu``, so the
    check forms only the ``GRAM_ORTHO_COLUMNS`` columns of the smallest ``mu``. It
    is a heuristic: on log-spaced spectra their block held the maximum of the
    whole ``|V^T V - I|``, but where many ``mu`` sit on a flat floor the maximum
    can lie outside it (a review found it 2.4 times the block's on one such view,
    and up to 11 times in scans). The block is therefore held to a tenth of
    ``GRAM_ORTHO_TOL``.
    """
    n = y.shape[0]
    # numpy's LAPACK (dsyevd, as scipy's driver='evd': the same bits with one thread),
    # so that the Gram, the eigh and the products all run in numpy's BLAS: mixing
    # numpy's and scipy's OpenBLAS makes their spinning thread pools fight
    mu, u = np.linalg.eigh(y @ y.T)
    mu, u = mu[::-1], u[:, ::-1]
    top = float(mu[0])
    if not top > 0.0:
        return None
    keep = mu > top * GRAM_NULL * n * np.finfo(float).eps
    s = np.sqrt(mu[keep])
    u = u[:, keep]
    coef = u / s
    tail = y.T @ coef[:, -GRAM_ORTHO_COLUMNS:]
    gap = tail.T @ tail
    gap[np.diag_indices_from(gap)] -= 1.0
    if not float(np.max(np.abs(gap))) <= GRAM_ORTHO_TOL / 10.0:
        return None
    return u * s, RowBasis(y, coef)


def reduce_views(views: list[Any], n_samples: int) -> tuple[NDArray, Reduction]:
    """Reduced covariance ``S~`` and the :class:`Reduction` of centred views.

    Parameters
    ----------
    views : list of (ndarray or scipy.sparse matrix) of shape (n_samples, d_m)
    n_samples : int

    Returns
    -------
    cov : ndarray of shape (r, r)
        ``S~ = Z^T Z`` with ``r = sum_m r_m``.
    reduction : Reduction
        A view is reduced when ``d_m > n_samples`` (its centred rows have rank
        at most ``n - 1``); the others are kept (``V_m = I``).

    Examples
    --------
    >>> import numpy as np
    >>> from hcl_stats.estimators._samples import reduce_views
    >>> rng = np.random.default_rng(0)
    >>> xs = [rng.standard_normal((10, 4)), rng.standard_normal((10, 30))]
    >>> cov, red = reduce_views(xs, 10)
    >>> red.dims, cov.shape
    ((4, 9), (13, 13))
    >>> full = np.cov(np.hstack(xs).T)
    >>> big = np.hstack([np.vstack([np.eye(4), np.zeros((30, 4))]),
    ...                  np.vstack([np.zeros((4, 9)), red.basis(1)])])
    >>> bool(np.allclose(big @ cov @ big.T, full))
    True
    """
    scores, bases, var = [], [], 0.0
    for x in views:
        z, v, vmax = _view_scores(x, n_samples, x.shape[1] > n_samples)
        scores.append(z)
        bases.append(v)
        var = max(var, vmax)
    z = np.hstack(scores)
    cov = z.T @ z
    cov = (cov + cov.T) / 2.0
    if not np.all(np.isfinite(cov)):
        raise ValidationError(
            "views must have a sample covariance representable in float64; got an "
            "overflow. Rescale the views."
        )
    # the n x n Gram of the scores gives the spectrum of S~ when it is smaller
    gram = z @ z.T if z.shape[0] < z.shape[1] else None
    reduction = Reduction(
        full_dims=tuple(int(x.shape[1]) for x in views),
        bases=tuple(bases),
        dims=tuple(int(s.shape[1]) for s in scores),
        max_variance=var,
        reduced_cov=cov,
        scores_gram=gram,
        scores=None if gram is None else z,
    )
    return cov, reduction


# --------------------------------------------------------------- sparse input
def any_sparse(views: Any) -> bool:
    try:
        return any(is_sparse(v) for v in views)
    except TypeError:  # not iterable: MultimodalData's validator says why
        return False


def samples_names() -> list[str]:
    from ._registry import sample_path_estimators

    return list(sample_path_estimators())


#: ``path='auto'`` takes the sample path when the reduced dimension
#: ``sum_m min(d_m, n - 1)`` is at most this fraction of ``d``. Measured crossover
#: (``masked_shrink``, CPU, one thread): the sample path is 1.3x faster at a
#: ratio of 0.78 - 0.80 and 1.1x - 1.9x slower at 0.875 - 1.0 (one view just
#: wider than n: its n x n Gram and eigendecomposition cost more than they save).
AUTO_SAMPLES_RATIO = 0.85


def full_spectrum(vals: NDArray[np.float64], size: int) -> NDArray[np.float64]:
    """The ``size`` eigenvalues of a covariance whose reduced part has ``vals``.

    The covariance of views reduced to their row spaces has the reduced
    eigenvalues and zeros on the complement (module docstring): ``vals``
    followed by ``size - len(vals)`` zeros.

    Examples
    --------
    >>> full_spectrum(np.array([1.0, 3.0]), 4).tolist()
    [1.0, 3.0, 0.0, 0.0]
    """
    if vals.size == size:
        return vals
    return np.concatenate([vals, np.zeros(size - vals.size)])


def samples_pay_off(dims, n_samples: int) -> bool:
    """Whether ``path='auto'`` should take the sample path for dense views.

    Some ``d_m > n`` and the reduction shrinks the problem to at most
    :data:`AUTO_SAMPLES_RATIO` of ``d``.

    Examples
    --------
    >>> samples_pay_off((1000, 2000, 3000), 200), samples_pay_off((50, 2001), 2000)
    (True, False)
    """
    if not any(dm > n_samples for dm in dims):
        return False
    reduced = sum(min(dm, n_samples - 1) for dm in dims)
    return reduced <= AUTO_SAMPLES_RATIO * sum(dims)


#: Total dimension from which an estimator without a sample-space path warns
#: (CostWarning) before forming the covariance of wide views (128 MB at 4000).
WIDE_COVARIANCE_WARN = 4000


def warn_wide_covariance(name: str, dims, n_samples: int, advice: str | None = None,
                         stacklevel: int = 4) -> None:
    """CostWarning: ``name`` (no sample path) will form the covariance of wide views.

    ``advice`` replaces the default pointer to the estimators with the sample path.
    """
    d = int(sum(dims))
    if samples_pay_off(dims, n_samples) and d >= WIDE_COVARIANCE_WARN:
        if advice is None:
            advice = (f"The estimators {', '.join(samples_names())} fit them in O(n d) "
                      "memory and time.")
        warnings.warn(
            f"{name} has no sample-space path, so it forms the d x d covariance of "
            f"these wide views (d = {d} > n = {n_samples}: {8 * d * d / 2**30:.2g} GiB, "
            f"eigendecompositions of cost d^3). {advice}",
            CostWarning,
            stacklevel=stacklevel,
        )


def check_sparse_views(views: Any) -> list[Any]:
    """Validate views of which some are ``scipy.sparse``: 2-D, float, finite, same n."""
    if not isinstance(views, Sequence) or len(views) == 0:
        raise ValidationError(
            "views must be a non-empty list of 2-D arrays or scipy.sparse matrices; "
            f"got {short_repr(views)}."
        )
    out = []
    for i, v in enumerate(views):
        if is_sparse(v):
            if v.ndim != 2 or not np.issubdtype(v.dtype, np.number) or np.iscomplexobj(v):
                raise ValidationError(
                    f"views[{i}] must be a 2-D real sparse matrix; got shape {v.shape} "
                    f"and dtype {v.dtype}."
                )
            if np.issubdtype(v.dtype, np.integer) and v.nnz:
                # the dense rule (check_float_array): exactly representable integers
                data = v.tocsr().data
                big = beyond_2_53(data)
                if np.any(big):
                    raise ValidationError(
                        f"views[{i}] must have integer entries of magnitude <= 2**53 "
                        f"(exactly representable in float64); got {int(data[np.argmax(big)])}."
                    )
            v = v.tocsr().astype(np.float64)
            if not np.all(np.isfinite(v.data)):
                raise ValidationError(f"views[{i}] must have finite entries; got NaN or inf.")
            check_view_floor(float(np.max(np.abs(v.data))) if v.nnz else 0.0,
                             f"views[{i}]")
        else:
            v = check_float_array(v, f"views[{i}]", ndim=2)
            check_view_floor(float(np.max(np.abs(v))) if v.size else 0.0, f"views[{i}]")
        if v.shape[1] == 0:
            raise ValidationError(
                f"views[{i}] must have at least one column (d_{i + 1} >= 1); got "
                f"shape {v.shape}."
            )
        if out and v.shape[0] != out[0].shape[0]:
            raise ValidationError(
                f"views[{i}] has {v.shape[0]} rows but views[0] has {out[0].shape[0]}; "
                "all views must have the same number of samples."
            )
        out.append(v)
    if out[0].shape[0] < 2:
        raise ValidationError(
            f"n_samples must be >= 2 to estimate a covariance; got {out[0].shape[0]}."
        )
    return out


def check_reduced_columns_vary(xs: list[Any], n: int) -> None:
    """Reject constant columns of sparse or dense views (as ``_check_columns_vary``)."""
    for m, x in enumerate(xs):
        mean = None
        if is_sparse(x):
            mean = np.asarray(x.mean(axis=0)).ravel()
            sq = np.asarray(x.multiply(x).mean(axis=0)).ravel()
            spread = sq - mean * mean
            scale = np.maximum(sq, np.finfo(float).tiny)
        else:
            spread = np.ptp(x, axis=0)
            scale = np.max(np.abs(x), axis=0)
        flat = spread <= 1e-12 * scale
        if np.any(flat):
            j = int(np.argmax(flat))
            why = "got a constant column. Drop the column before fitting."
            if mean is not None and mean[j] != 0.0 and x[:, [j]].nnz > 1:
                why = (f"got a column whose variance is below 1e-12 of its mean square "
                       f"(mean {mean[j]:.3g}): constant, or beyond what the implicit "
                       "centring of sparse input resolves. Pass the view dense, or "
                       "drop the column.")
            raise ValidationError(
                f"views[{m}][:, {j}] must vary across samples (the model gives every "
                f"coordinate noise variance sigma^2 > 0); {why}"
            )
        if mean is not None:
            _warn_implicit_centring(m, mean * mean / np.maximum(spread, np.finfo(float).tiny))


#: Mean square / variance above which implicit centring of a sparse view warns.
#: Measured on d = (300, 400, 500), n = 50 (``schur``): the block Grams differ from
#: the dense fit's by about 1.2e-14 times the ratio (2.5e-8 at 2e6, 2.9e-4 at 2e10).
CENTRING_RATIO_WARN = 1e6


def _warn_implicit_centring(m: int, ratio: NDArray[np.float64]) -> None:
    """NumericalWarning when a sparse view's column means dwarf their spread."""
    worst = float(np.max(ratio, initial=0.0))
    if worst > CENTRING_RATIO_WARN:
        j = int(np.argmax(ratio))
        warnings.warn(
            f"views[{m}] is sparse and its column {j} has mean^2 / variance = "
            f"{worst:.3g}: centring it implicitly (X^T X - n mean mean^T) can lose "
            f"up to {np.log10(worst):.0f} of float64's 16 digits (measured: block Grams "
            "off by about 1e-14 times that ratio). Pass the view dense (or centred) "
            "for full precision.",
            NumericalWarning,
            stacklevel=5,
        )
