"""Chunked (streaming) sample covariance for data that do not fit in memory.

Every covariance-based estimator needs only the ``d x d`` sample covariance, so an
``n x d`` data set can be fitted with ``O(d^2 + chunk_rows d)`` memory: read the
rows in chunks (for example from a memory-mapped ``.npy`` file), accumulate the
Gram matrix, and pass the result to
:meth:`~hcl_stats.estimators.Estimator.fit_covariance`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.linalg
from numpy.typing import NDArray

from ._validation import check_int, short_repr
from .exceptions import ValidationError

__all__ = ["streaming_cov"]

#: Default chunk size in bytes (rows are chosen so one float64 chunk is this big).
_CHUNK_BYTES = 32 * 2**20


def streaming_cov(
    source: Any,
    *,
    chunk_rows: int | None = None,
    ddof: int = 1,
) -> tuple[NDArray[np.float64], int]:
    """Sample covariance of an ``n x d`` data set, read in chunks of rows.

    Parameters
    ----------
    source : str, os.PathLike, array_like of shape (n_samples, d) or sequence of arrays
        A path to a 2-D ``.npy`` file (opened with ``mmap_mode='r'``, so only one
        chunk is in memory at a time), a 2-D array (``numpy.memmap`` included), or
        a sequence of ``M`` arrays of shape ``(n_samples, d_m)`` (views, stacked
        column-wise chunk by chunk; nothing of size ``n x d`` is allocated).
    chunk_rows : int, optional
        Rows per chunk; default so that one float64 chunk takes about 32 MiB.
    ddof : int, default=1
        Divisor ``n - ddof`` (1: the unbiased estimator of
        :meth:`~hcl_stats.MultimodalData.sample_cov`).

    Returns
    -------
    cov : ndarray of shape (d, d)
        Symmetric sample covariance of the column-centred data.
    n_samples : int
        Number of rows ``n``.

    Raises
    ------
    ValidationError
        On a source that is not 2-D, views with different numbers of rows,
        non-finite values, or ``n - ddof < 1``.

    Notes
    -----
    One pass: with the mean ``c`` of the first chunk as a shift,
    ``cov = (sum_i y_i y_i^T - n ybar ybar^T) / (n - ddof)`` with ``y_i = x_i - c``.
    The shift removes the cancellation of the textbook one-pass formula; the
    result equals the two-pass covariance up to round-off. The Gram updates use
    the BLAS ``syrk`` kernel (``n d^2`` flops, half of a general ``X^T X``).
    Peak memory is ``d^2`` plus one chunk.

    Use with an estimator::

        cov, n = streaming_cov("data.npy")          # (n, d) file, views side by side
        fit = SchurComplement().fit_covariance(cov, dims=(d1, d2, d3), n_samples=n,
                                               structure="ABC:3 AB:2 C:1")

    Examples
    --------
    >>> import numpy as np
    >>> from hcl_stats.streaming import streaming_cov
    >>> x = np.random.default_rng(0).standard_normal((1000, 4)) + 5.0
    >>> cov, n = streaming_cov(x, chunk_rows=128)
    >>> n, bool(np.allclose(cov, np.cov(x, rowvar=False)))
    (1000, True)
    """
    views = _as_views(source)
    n = int(views[0].shape[0])
    dims = [int(v.shape[1]) for v in views]
    d = sum(dims)
    ddof = check_int(ddof, "ddof", minimum=0)
    if n - ddof < 1:
        raise ValidationError(f"n_samples - ddof must be >= 1; got {n} - {ddof}.")
    if chunk_rows is None:
        chunk_rows = max(64, _CHUNK_BYTES // (8 * max(d, 1)))
    chunk_rows = check_int(chunk_rows, "chunk_rows", minimum=1)
    gram = np.zeros((d, d), order="F")
    total = np.zeros(d)
    shift = None
    buf = np.empty((min(chunk_rows, n), d))
    for start in range(0, n, chunk_rows):
        stop = min(start + chunk_rows, n)
        y = buf[: stop - start]
        col = 0
        for v, dm in zip(views, dims, strict=True):
            y[:, col : col + dm] = v[start:stop]
            col += dm
        if shift is None:
            if not np.all(np.isfinite(y)):
                _raise_non_finite(y, start)
            shift = y.mean(axis=0)
        y -= shift
        sums = y.sum(axis=0)
        if not np.all(np.isfinite(sums)):
            # a NaN or an infinity in the chunk makes its column sum non-finite (an
            # overflow of finite values can too: then the entry-wise test passes)
            _raise_non_finite(y, start)
        total += sums
        # y.T is Fortran-contiguous (d x rows): syrk computes y^T y, upper triangle
        gram = scipy.linalg.blas.dsyrk(1.0, y.T, beta=1.0, c=gram, overwrite_c=1)
    mean = total / n
    cov = _mirror_lower(gram.T)  # C-ordered; syrk filled gram's upper triangle
    shift_sq = np.outer(mean, mean)
    shift_sq *= n
    cov -= shift_sq
    cov /= n - ddof
    return cov, n


def _mirror_lower(a: NDArray, block: int = 256) -> NDArray:
    """Copy the lower triangle of the C-ordered square ``a`` onto its upper one, in place.

    Block by block, so each transposed read stays in cache.
    """
    d = a.shape[0]
    for i in range(0, d, block):
        diag = a[i : i + block, i : i + block]
        diag[...] = np.tril(diag) + np.tril(diag, -1).T
        for j in range(i + block, d, block):
            a[i : i + block, j : j + block] = a[j : j + block, i : i + block].T
    return a


def _raise_non_finite(y: NDArray, start: int) -> None:
    """Raise on the first non-finite row of a chunk (rows ``start, start + 1, ...``)."""
    bad = ~np.isfinite(y)
    if np.any(bad):
        row = start + int(np.argwhere(bad)[0][0])
        raise ValidationError(f"data must be finite; got a non-finite value in row {row}.")


def _as_views(source: Any) -> list[Any]:
    if isinstance(source, str | os.PathLike):
        try:
            arr = np.load(os.fspath(source), mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValidationError(
                f"source must be a readable .npy file; got {os.fspath(source)!r} ({exc})."
            ) from None
        views = [arr]
    elif isinstance(source, np.ndarray) or (
        isinstance(source, Sequence) and source and np.ndim(source[0]) <= 1
    ):
        views = [np.asarray(source)]
    elif isinstance(source, Sequence) and len(source) > 0:
        views = [x if isinstance(x, np.ndarray) else np.asarray(x) for x in source]
    else:
        raise ValidationError(
            "source must be a path to a .npy file, a 2-D array or a sequence of 2-D "
            f"arrays; got {short_repr(source)}."
        )
    for i, v in enumerate(views):
        if v.ndim != 2:
            raise ValidationError(
                f"source must be 2-D (n_samples, d); got view {i} of shape {v.shape}."
            )
        if v.dtype.kind not in "fiu":
            raise ValidationError(
                f"source must have a numeric dtype; got dtype {v.dtype} in view {i}."
            )
        if v.shape[0] != views[0].shape[0]:
            raise ValidationError(
                "all views must have the same number of rows; got "
                f"{[int(x.shape[0]) for x in views]}."
            )
    return views
