"""Small dense linear-algebra kernels shared by estimators and metrics (private)."""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import scipy.linalg
from numpy.typing import NDArray

from .exceptions import SolverError

__all__: list[str] = []

_CONTROLLER: list = []

#: Below this dimension ``d`` an estimator fits its covariance with one BLAS thread
#: (``Estimator`` runs ``_fit`` under :func:`one_blas_thread`): its matrices are too
#: small for threads to pay off. Measured on 2 cores, d = (60, 120, 200): the
#: closed form 0.031 s pinned against 0.06 - 0.13 s with two threads, ``pca_shrink``
#: 0.013 against 0.05 s; at d = 1800 two threads win (``schur`` 1.1 against 1.4 s).
SMALL_BLAS_DIM = 1000


def one_blas_thread():
    """Context manager limiting every loaded BLAS to one thread (no-op without threadpoolctl).

    For loops of many small BLAS calls (the refinement's L-BFGS iterations): numpy
    and scipy each load their own OpenBLAS, and when both run multithreaded the
    idle workers of one spin while the other works. On 2 cores that made the
    default fit of the paper design (d = 1400, K = 21, 188 iterations) take 65 s
    of wall time instead of 3.7 s with one thread. The thread pools are found once
    (``threadpoolctl.ThreadpoolController``) and reused, so entering costs about
    10 microseconds. threadpoolctl is an optional dependency (it comes with
    scikit-learn and the ``study`` extra); without it this does nothing. It also
    does nothing outside the main thread (threadpoolctl lets one thread at a time
    set a process's BLAS threads): fits run from a pool of Python threads should
    be run under ``threadpoolctl.threadpool_limits(1)`` by the caller.

    Returns
    -------
    contextlib.AbstractContextManager

    Examples
    --------
    >>> import numpy as np
    >>> with one_blas_thread():
    ...     float(np.ones(3) @ np.ones(3))
    3.0
    """
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - optional dependency
            _CONTROLLER.append(None)
        else:
            _CONTROLLER.append(ThreadpoolController())
    controller = _CONTROLLER[0]
    if controller is None:  # pragma: no cover - optional dependency
        return contextlib.nullcontext()
    if threading.current_thread() is not threading.main_thread():
        # BLAS thread counts are per process, and threadpoolctl lets one thread at a
        # time set them: a pin from a worker thread could be ignored, or restore a
        # count another thread set. Only the main thread pins.
        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")


def block_offsets(dims) -> NDArray[np.intp]:
    """Block offsets ``(0, d_1, d_1 + d_2, ..., d)`` of stacked blocks of sizes ``dims``.

    Block ``m`` is the slice ``off[m]:off[m + 1]``.

    Parameters
    ----------
    dims : sequence of int of length M

    Returns
    -------
    ndarray of shape (M + 1,)

    Examples
    --------
    >>> block_offsets((3, 2, 4)).tolist()
    [0, 3, 5, 9]
    """
    return np.concatenate([[0], np.cumsum(np.asarray(dims, dtype=np.intp))]).astype(np.intp)


def top_eigh(a: NDArray[np.float64], k: int, *, overwrite: bool = False
             ) -> tuple[NDArray, NDArray]:
    """Top-``k`` eigenpairs of a symmetric matrix, in descending order.

    Parameters
    ----------
    a : ndarray of shape (p, p)
        Symmetric matrix (only the lower triangle is read).
    k : int
        Number of eigenpairs, ``0 <= k <= p``.
    overwrite : bool, default=False
        Allow LAPACK to overwrite ``a`` (no internal copy when ``a`` is a
        Fortran-ordered float64 array; its contents are then undefined).

    Returns
    -------
    values : ndarray of shape (k,)
        Eigenvalues, largest first.
    vectors : ndarray of shape (p, k)
        Orthonormal eigenvectors, with the sign rule of :func:`canonical_signs`.
    """
    p = a.shape[0]
    if k == 0:
        return np.zeros(0), np.zeros((p, 0))
    keep = None if overwrite else a  # the fallback below needs the matrix
    vals, vecs = scipy.linalg.eigh(a, subset_by_index=[p - k, p - 1], overwrite_a=overwrite)
    if vals.size != k and keep is not None:
        # LAPACK's dsyevr can return fewer eigenpairs than asked (seen with entries
        # 1e-300 beside entries of order 1): all of them from the divide-and-conquer
        # driver, which has no subset, then the top k
        vals, vecs = scipy.linalg.eigh(keep, driver="evd")
        vals, vecs = vals[p - k:], vecs[:, p - k:]
    if vals.size != k:
        raise SolverError(
            f"the symmetric eigensolver returned {vals.size} of the top {k} eigenpairs "
            f"of a {p} x {p} matrix; its entries may span too many orders of magnitude "
            "(rescale the views)."
        )
    vals, vecs = vals[::-1], vecs[:, ::-1]
    return vals, canonical_signs(vecs)


def canonical_signs(u: NDArray[np.float64]) -> NDArray[np.float64]:
    """Flip column signs so that each column's largest-magnitude entry is positive."""
    if u.size == 0:
        return u
    idx = np.argmax(np.abs(u), axis=0)
    signs = np.sign(u[idx, np.arange(u.shape[1])])
    signs[signs == 0] = 1.0
    return u * signs


def top_factor(a: NDArray[np.float64], k: int) -> NDArray[np.float64]:
    """Best rank-``k`` PSD factor ``F`` with ``F F^T`` approximating ``a``.

    ``F = U_k diag(max(lambda_k, 0))^{1/2}`` from the top eigenpairs of the symmetric
    matrix ``a``; negative eigenvalues are clipped at zero.

    Parameters
    ----------
    a : ndarray of shape (p, p)
        Symmetric matrix.
    k : int
        Rank of the factor.

    Returns
    -------
    factor : ndarray of shape (p, k)
    """
    vals, vecs = top_eigh(a, k)
    return vecs * np.sqrt(np.clip(vals, 0.0, None))


def procrustes(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """Orthogonal ``Q`` minimising ``||a Q - b||_F`` (a and b of shape (p, k))."""
    u, _, vt = np.linalg.svd(a.T @ b)
    return u @ vt
