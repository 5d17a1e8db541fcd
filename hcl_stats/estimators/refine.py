"""Masked refinement of the linear structure-aware contrastive loss."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.linalg
from numpy.typing import NDArray

from .._linalg import one_blas_thread
from .._validation import check_choice, check_int, check_real
from ..exceptions import ConvergenceWarning, ValidationError
from ._base import Estimator, Problem, RawFit, signal_covariance
from ._noise import noise_rule_name
from .spectral import schur_loadings

__all__ = ["MaskedGradient", "masked_loss"]

#: In-place ``y += a x`` and ``x . y`` on float64 vectors (BLAS level 1), both from
#: scipy's BLAS: mixing numpy's and scipy's OpenBLAS in the two-loop recursion made
#: their thread pools fight (see ``_linalg.one_blas_thread``). With one thread
#: ``ddot`` is bit-identical to numpy's ``x @ y``.
_axpy = scipy.linalg.blas.daxpy
_dot = scipy.linalg.blas.ddot


def masked_loss(
    w: NDArray[np.float64],
    s_w: NDArray[np.float64],
    mask: NDArray[np.bool_],
    s_sq: float | None = None,
) -> tuple[float, NDArray[np.float64]]:
    """Loss ``1/2 ||W W^T - S_W||_F^2`` and its gradient restricted to the mask.

    Evaluated without forming the ``d x d`` residual:
    ``1/2 (||W^T W||_F^2 - 2 tr(W^T S_W W) + ||S_W||_F^2)``, except near an exact
    fit (loss below ``1e-6 ||S_W||_F^2``), where that expansion loses all digits to
    cancellation and the residual is formed explicitly. The gradient is
    ``2 (W W^T W - S_W W)`` with entries outside ``mask`` set to zero.

    Parameters
    ----------
    w : ndarray of shape (d, K)
    s_w : ndarray of shape (d, d)
        Symmetric target (the denoised covariance).
    mask : ndarray of bool, shape (d, K)
    s_sq : float, optional
        Precomputed ``||S_W||_F^2``.

    Returns
    -------
    loss : float
    grad : ndarray of shape (d, K)

    Notes
    -----
    With ``V = W^T`` this is the paper's ``1/2 ||V^T V - S_W||_F^2``, the linear
    structure-aware contrastive loss with a Frobenius regulariser (paper.md §2.3).

    Examples
    --------
    At the truth, with the population target ``S_W = W W^T``, loss and gradient vanish:

    >>> import numpy as np, hcl_stats as hs
    >>> from hcl_stats.estimators import masked_loss
    >>> m = hs.HierarchicalFactorModel.random((3, 4), "AB:1 A:1", rng=0)
    >>> s_w = m.loadings @ m.loadings.T
    >>> loss, grad = masked_loss(m.loadings, s_w, m.structure.mask(m.dims))
    >>> round(loss, 6), bool(np.allclose(grad, 0))
    (0.0, True)
    >>> loss, _ = masked_loss(np.zeros_like(m.loadings), s_w, m.structure.mask(m.dims))
    >>> bool(np.isclose(loss, 0.5 * np.sum(s_w ** 2)))
    True
    """
    wtw = w.T @ w
    sw = s_w @ w
    s_sq = float(np.sum(s_w * s_w)) if s_sq is None else s_sq
    loss = _expanded_loss(w, sw, wtw, s_w, s_sq)
    grad = 2.0 * (w @ wtw - sw)
    grad[~mask] = 0.0
    return float(loss), grad


def _expanded_loss(
    w, sw, wtw, s_w, s_sq: float, exact: bool = True, s_sq_extra: float = 0.0
) -> float:
    """``1/2 (||W^T W||^2 - 2 <W, S_W W> + ||S_W||^2)`` from the products ``sw``, ``wtw``.

    The expanded form cancels catastrophically near an exact fit (error about
    ``eps ||S_W||^2``); with ``exact`` the explicit residual is used there.
    """
    loss = 0.5 * (float(np.sum(wtw * wtw)) - 2.0 * float(np.sum(w * sw)) + s_sq)
    if exact and loss < 1e-6 * s_sq:
        resid = w @ w.T - s_w
        loss = 0.5 * (float(np.sum(resid * resid)) + s_sq_extra)
    return loss


@dataclass(frozen=True, kw_only=True)
class MaskedGradient(Estimator):
    """Refined estimator: minimise ``1/2 ||W W^T - S_W||_F^2`` over masked ``W``.

    Starts from :class:`SchurComplement` (or from ``init``) and runs L-BFGS, with an
    exact line search (the loss is a quartic polynomial along any line), on the
    entries of ``W`` allowed by the structure mask (``W_m^S = 0`` for ``m`` not in
    ``S``). This uses the cross-view blocks of ``S_W`` and is the paper's
    structure-aware contrastive refinement (paper.md §3, step 4), solved to a
    stated tolerance instead of with the reference code's decaying step.

    Parameters
    ----------
    max_iter : int, default=5000
        Maximum number of L-BFGS iterations.
    tol : float, default=1e-7
        Stop when the relative gradient
        ``||P_mask grad||_F / (||S_W||_F ||W||_F)`` falls below ``tol``. The ratio is
        invariant to rescaling the data.
    memory : int, default=20
        Number of L-BFGS correction pairs.
    init_variant : {'joint', 'per_view'}, default='joint'
        Schur-complement variant used for the starting point when no ``init`` is
        passed to :meth:`fit`.
    noise_rule : {'scalar', 'per_view'} or float, default='scalar'
        See :class:`~hcl_stats.estimators.Estimator`.

    Warns
    -----
    ConvergenceWarning
        If ``max_iter`` is reached, or the line search stalls, before ``tol``.

    Notes
    -----
    Deterministic; ``rng`` is ignored. The loss is invariant to
    ``W^S -> W^S Q_S`` per block, so the minimiser is a set; the result is the
    point reached from the start. Each iteration costs one masked product
    ``S_W P`` (``d sum_m d_m k_m`` multiply-adds, at most ``d^2 K``) plus
    ``O(d K^2 + d K memory)``; no ``d x d`` temporary is formed (except near an
    exact fit, where the final loss is evaluated from the explicit residual). ``diagnostics.relative_gradient`` reports the final value of the
    stopping criterion, ``diagnostics.extra['objective_trace']`` a thinned trace.

    Examples
    --------
    >>> import hcl_stats as hs
    >>> model = hs.HierarchicalFactorModel.random((4, 5, 6), "all:1", rng=2)
    >>> fit = hs.estimators.MaskedGradient().fit_covariance(
    ...     model.covariance(), dims=model.dims, structure=model.structure)
    >>> fit.diagnostics.converged
    True
    """

    name: ClassVar[str] = "masked_gradient"
    accepts_init: ClassVar[bool] = True
    balances_views: ClassVar[bool] = True
    samples_path: ClassVar[bool] = True

    max_iter: int = 5000
    tol: float = 1e-7
    memory: int = 20
    init_variant: str = "joint"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int(self.max_iter, "max_iter", minimum=0)
        check_real(self.tol, "tol", low=0.0, low_open=True)
        check_int(self.memory, "memory", minimum=1)
        check_choice(self.init_variant, "init_variant", ("joint", "per_view"))

    def _fit(self, problem: Problem, rng: np.random.Generator) -> RawFit:
        dims, structure, init = problem.dims, problem.structure, problem.init
        noise = problem.noise_variance()
        s_w = signal_covariance(problem.cov, dims, noise)
        s_sq_extra = problem.complement_fro2(noise)
        mask = structure.mask(dims)
        if init is None:
            factor = (None if problem.reduction is None
                      else problem.reduction.factor_of(problem.cov, noise))
            w0, _ = schur_loadings(s_w, dims, structure, variant=self.init_variant,
                                   strict=False, s_sq_extra=s_sq_extra,
                                   cache=problem.cache, factor=factor)
            init_name = f"schur[{self.init_variant}]"
        else:
            if tuple(init.dims) != tuple(dims) or init.structure != structure:
                raise ValidationError(
                    "init must have the same dims and structure as the fit; got dims "
                    f"{init.dims} and structure {init.structure}."
                )
            w0 = np.where(mask, init.loadings, 0.0)
            init_name = init.estimator
        with one_blas_thread():  # many small BLAS calls: threads only contend
            info = _minimise(s_w, mask, w0, self.max_iter, self.tol, self.memory, s_sq_extra)
        w = info.w
        if not info.converged:
            warnings.warn(
                f"MaskedGradient stopped after {info.n_iter} iterations "
                f"({info.message}) with relative gradient {info.relgrad:.2e} > "
                f"tol = {self.tol:.1e}; increase max_iter or tol.",
                ConvergenceWarning,
                stacklevel=2,
            )
        return RawFit(
            w,
            noise,
            structure,
            converged=info.converged,
            n_iter=info.n_iter,
            objective=info.loss,
            relative_gradient=info.relgrad,
            extra={
                "noise_rule": noise_rule_name(problem.noise),
                "init": init_name,
                "initial_objective": info.loss0,
                "initial_relative_gradient": info.relgrad0,
                "objective_trace": list(info.trace),
                "solver_message": info.message,
            },
        )


class _MaskedProducts:
    """``S_W P`` restricted to the structure mask, one GEMM per view.

    Row block ``m`` of ``S_W P`` is needed only on the columns ``C_m`` of the blocks
    that contain view ``m``; since ``P`` vanishes outside the mask this costs
    ``d sum_m d_m k_m`` multiply-adds instead of ``d^2 K``.
    """

    def __init__(self, s_w: NDArray, mask: NDArray) -> None:
        self.s_w = s_w
        self.mask = mask
        d = mask.shape[0]
        # maximal runs of rows with the same mask pattern
        starts = [0, *(np.flatnonzero(np.any(mask[1:] != mask[:-1], axis=1)) + 1).tolist()]
        self.views: list[tuple[slice, NDArray]] = [
            (slice(a, b), np.flatnonzero(mask[a])) for a, b in zip(starts, [*starts[1:], d],
                                                                     strict=True) if a < d
        ]

    def product(self, p: NDArray) -> NDArray:
        """Masked ``S_W p`` (zero outside the mask), shape ``(d, K)``."""
        out = np.zeros_like(p)
        for rows, cols in self.views:
            if cols.size:
                out[rows, cols] = self.s_w[rows] @ p[:, cols]
        return out


def _quartic_step(w, p, sw, sp, wtw, s_dot_p):
    """Exact minimiser ``t > 0`` of ``f(W + t P)`` (a quartic in ``t``).

    Uses only ``K x K`` Grams and the masked products ``S_W W`` and ``S_W P``; no
    ``d x d`` matrix is formed. ``s_dot_p = tr(P^T S_W W)``.
    """
    g_ap = w.T @ p
    g_pp = p.T @ p
    s_pp = float(np.vdot(p, sp))
    c1 = 4.0 * (float(np.vdot(g_ap, wtw)) - s_dot_p)
    c2 = 2.0 * (
        float(np.vdot(wtw, g_pp)) + float(np.vdot(g_ap, g_ap.T)) + float(np.vdot(g_ap, g_ap))
        - s_pp
    )
    c3 = 4.0 * float(np.vdot(g_ap, g_pp))
    c4 = float(np.vdot(g_pp, g_pp))
    if not c4 > 0.0:
        return 0.0
    roots = _cubic_roots(4.0 * c4, 3.0 * c3, 2.0 * c2, c1)
    real = roots[np.abs(roots.imag) <= 1e-10 * np.maximum(1.0, np.abs(roots.real))].real
    real = real[real > 0.0]
    if real.size == 0:
        return 0.0
    vals = real * (c1 + real * (c2 + real * (c3 + real * c4)))
    return float(real[int(np.argmin(vals))])


def _cubic_roots(a3: float, a2: float, a1: float, a0: float) -> NDArray[np.complex128]:
    """Roots of ``a3 t^3 + a2 t^2 + a1 t + a0`` (``a3 != 0``): ``numpy.roots``'s result.

    The eigenvalues of the same companion matrix, built directly (bit-identical
    to ``numpy.roots``, without its generic input handling: a third of its cost
    in the line search). A zero or non-finite coefficient goes to ``numpy.roots``.
    """
    if a0 == 0.0 or not (math.isfinite(a3) and math.isfinite(a2) and math.isfinite(a1)
                         and math.isfinite(a0)):
        return np.roots([a3, a2, a1, a0])
    companion = np.array([[-a2 / a3, -a1 / a3, -a0 / a3], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    return np.linalg.eigvals(companion)


@dataclass(frozen=True)
class MinimiseResult:
    """Outcome of :func:`_minimise`: the loadings and the solver's record."""

    w: NDArray[np.float64]
    converged: bool
    n_iter: int
    loss: float
    loss0: float
    relgrad: float
    relgrad0: float
    trace: tuple[float, ...]
    message: str


def _lbfgs_direction(g_flat, s_hist, y_hist, rho_hist):
    """Two-loop recursion: ``H g`` for the packed masked gradient ``g_flat``.

    The vector updates are in-place BLAS ``axpy`` calls (no temporaries).
    """
    q = g_flat.copy()
    alphas = []
    for s_k, y_k, rho_k in zip(reversed(s_hist), reversed(y_hist), reversed(rho_hist), strict=True):
        a_k = rho_k * _dot(s_k, q)
        q = _axpy(y_k, q, a=-a_k)
        alphas.append(a_k)
    if s_hist:
        q *= _dot(s_hist[-1], y_hist[-1]) / _dot(y_hist[-1], y_hist[-1])
    for (s_k, y_k, rho_k), a_k in zip(
        zip(s_hist, y_hist, rho_hist, strict=True), reversed(alphas), strict=True
    ):
        q = _axpy(s_k, q, a=a_k - rho_k * _dot(y_k, q))
    return q


def _remember(s_k, y, s_hist, y_hist, rho_hist, memory) -> None:
    """Add the pair ``(s_k, y)`` to the L-BFGS memory when its curvature is positive."""
    sy = float(s_k @ y)
    if sy > 1e-12 * float(np.linalg.norm(y)) * float(np.linalg.norm(s_k)):
        s_hist.append(s_k)
        y_hist.append(y)
        rho_hist.append(1.0 / sy)
        if len(s_hist) > memory:
            s_hist.pop(0), y_hist.pop(0), rho_hist.pop(0)


def _minimise(s_w, mask, w0, max_iter, tol, memory, s_sq_extra=0.0) -> MinimiseResult:
    """L-BFGS with exact quartic line search on the masked entries.

    Each iteration costs one masked product ``S_W P`` (``S_W W`` is updated
    linearly along the step and recomputed exactly every 50 iterations and before
    declaring convergence) plus ``O(d K^2 + d K memory)`` work. Stops on the
    relative-gradient rule ``||P_mask grad||_F / (||S_W||_F ||W||_F) <= tol``.
    ``s_sq_extra`` is added to ``||S_W||_F^2`` (the complement term of a reduced
    ``S_W`` on the sample-space path; it shifts the loss by a constant).
    """
    ops = _MaskedProducts(s_w, mask)
    s_sq = float(np.sum(s_w * s_w)) + s_sq_extra
    s_norm = float(np.sqrt(s_sq))
    off_mask = ~mask
    w = np.where(mask, w0, 0.0)
    sw = ops.product(w)

    def evaluate(w, sw):
        wtw = w.T @ w
        grad = 2.0 * (w @ wtw - sw)
        grad[off_mask] = 0.0
        scale = s_norm * float(np.linalg.norm(w))
        relgrad = float(np.linalg.norm(grad)) / scale if scale > 0 else np.inf
        return wtw, grad, relgrad

    def loss_of(w, sw, wtw, exact=True):
        return _expanded_loss(w, sw, wtw, s_w, s_sq, exact, s_sq_extra)

    wtw, grad, relgrad = evaluate(w, sw)
    loss0 = loss_of(w, sw, wtw)
    relgrad0 = relgrad
    trace = [loss0]
    s_hist: list[NDArray] = []
    y_hist: list[NDArray] = []
    rho_hist: list[float] = []
    n_iter, message, fresh = 0, "max_iter reached", True
    while True:
        if relgrad <= tol:
            if fresh:
                message = "relative gradient below tol"
                break
            sw = ops.product(w)  # confirm with an exact product
            wtw, grad, relgrad = evaluate(w, sw)
            fresh = True
            continue
        if n_iter >= max_iter:
            break
        # two-loop recursion on the packed masked entries
        g_flat = grad[mask]
        q = _lbfgs_direction(g_flat, s_hist, y_hist, rho_hist)
        if not float(q @ g_flat) > 0.0:  # not a descent direction: steepest descent
            s_hist.clear(), y_hist.clear(), rho_hist.clear()
            q = g_flat
        p = np.zeros_like(w)
        p[mask] = -q
        sp = ops.product(p)
        t = _quartic_step(w, p, sw, sp, wtw, float(np.sum(p * sw)))
        if t == 0.0:
            if s_hist:
                s_hist.clear(), y_hist.clear(), rho_hist.clear()
                continue
            message = "line search failed (no decrease along the gradient)"
            break
        n_iter += 1
        step = t * p
        w = w + step
        if n_iter % 50 == 0:
            sw = ops.product(w)
            fresh = True
        else:
            sw = sw + t * sp
            fresh = False
        wtw, grad, relgrad = evaluate(w, sw)
        _remember(step[mask], grad[mask] - g_flat, s_hist, y_hist, rho_hist, memory)
        trace.append(loss_of(w, sw, wtw, exact=False))
    if not fresh:
        sw = ops.product(w)
        wtw, grad, relgrad = evaluate(w, sw)
    loss = loss_of(w, sw, wtw)
    trace[-1] = loss
    converged = relgrad <= tol
    if converged:
        message = "relative gradient below tol" if n_iter else "initial point meets tol"
    elif max_iter == 0:
        message = "max_iter = 0"
    thin = trace if len(trace) <= 200 else trace[:: int(np.ceil(len(trace) / 200))] + [trace[-1]]
    return MinimiseResult(
        w=w, converged=bool(converged), n_iter=int(n_iter), loss=float(loss), loss0=loss0,
        relgrad=float(relgrad), relgrad0=relgrad0, trace=tuple(float(v) for v in thin),
        message=message,
    )
