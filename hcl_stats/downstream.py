"""Downstream prediction with a learned representation (paper.md §3, steps 6-10).

Labelled data follow ``y = z^T beta + eps_y`` with ``eps_y ~ N(0, sigma_y^2)``;
the representation is learned from ``n`` *unlabelled* samples by any estimator
(a :class:`~hcl_stats.results.FitResult`)::

    h_hat(x) = C_hat x,   C_hat = (W_hat^T W_hat)^{-1} W_hat^T          (K x d)

Given ``m`` labelled rows with features ``X_hat = X C_hat^T`` the
errors-in-variables (noise-corrected) normal equations are

    H = X_hat^T X_hat / m - C_hat Psi_hat C_hat^T,   b = X_hat^T y / m

(``Psi_hat = sigma_hat^2 I`` for isotropic noise), because ``h_hat(x) =
C_hat W z + C_hat eps`` carries the feature noise ``C_hat eps``. ``H`` estimates
``Cov(C_hat W z)`` and can be indefinite for small ``m``; it is projected onto
``{H : lambda_min(H) >= psd_floor * lambda_max(H)}`` by flooring its eigenvalues
(the nearest such matrix in Frobenius norm), and the number of floored
eigenvalues is recorded.

Estimators on ``(H, b)``:

* :class:`EIVRegression`: ``beta_hat = H^{-1} b`` (bias-corrected least squares);
* :class:`GroupLasso`: ``min 1/2 beta^T H beta - b^T beta + lam sum_S w_S
  ||beta_S||_2`` with one group per structure block, solved by exact block
  coordinate descent (:func:`solve_group_lasso`); ``lam`` fixed, chosen by K-fold
  cross-validation whose training folds never see held-out rows
  (:func:`cross_validate`), or set by theory (:func:`theory_lambda`).

Metrics (:func:`evaluate`): coefficient error per group and overall, excess risk
against the oracle predictor (population value, exact for Gaussian data, and on a
fresh test sample) and support precision/recall of the selected structures.

Logistic variant: :func:`sample_downstream_logistic` (``y ~ Bernoulli(sigmoid(
z^T beta + e))``, the reference code's ``generate_logistic_data``) and
:func:`solve_logistic_group_lasso` (FISTA with restart, KKT-checked; no
errors-in-variables correction, so it is for structure selection).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._validation import as_generator, check_float_array, check_int, check_real
from .exceptions import ConvergenceWarning, ValidationError
from .structure import Structure

__all__ = [
    "CVResult",
    "DownstreamData",
    "DownstreamFit",
    "EIVRegression",
    "GroupLasso",
    "Representation",
    "cross_validate",
    "evaluate",
    "kfold_indices",
    "lambda_max",
    "make_beta",
    "moment_matrices",
    "residual_variance",
    "sample_downstream",
    "sample_downstream_logistic",
    "solve_logistic_group_lasso",
    "solve_group_lasso",
    "theory_lambda",
]


# --------------------------------------------------------------------------- data
@dataclass(frozen=True, eq=False)
class DownstreamData:
    """Labelled downstream sample.

    Parameters
    ----------
    x : ndarray of shape (m, d)
        Stacked views.
    y : ndarray of shape (m,)
        Responses.
    z : ndarray of shape (m, K) or None
        Latent factors (simulation only; never used by an estimator).
    """

    x: NDArray[np.float64]
    y: NDArray[np.float64]
    z: NDArray[np.float64] | None = None

    def __post_init__(self) -> None:
        x = check_float_array(self.x, "x", ndim=2)
        y = check_float_array(self.y, "y", ndim=1)
        if y.shape[0] != x.shape[0]:
            raise ValidationError(
                f"y must have one entry per row of x ({x.shape[0]}); got {y.shape[0]}."
            )
        for name, a in (("x", x), ("y", y)):
            a = np.array(a, dtype=float, copy=True)
            a.setflags(write=False)
            object.__setattr__(self, name, a)
        if self.z is not None:
            z = np.array(self.z, dtype=float, copy=True)
            z.setflags(write=False)
            object.__setattr__(self, "z", z)

    @property
    def n_samples(self) -> int:
        """Number of labelled rows ``m``."""
        return int(self.x.shape[0])

    def subset(self, rows: ArrayLike) -> DownstreamData:
        """Rows ``rows`` as a new object."""
        idx = np.asarray(rows, dtype=np.intp)
        return DownstreamData(
            self.x[idx], self.y[idx], None if self.z is None else self.z[idx]
        )


def make_beta(
    structure: Structure,
    *,
    relevant: Sequence[Any] | None = None,
    rng: Any = None,
) -> NDArray[np.float64]:
    """Draw a coefficient vector as in the reference code, optionally group-sparse.

    Entries are Uniform(0, 1) on the relevant blocks, zero elsewhere, and the
    vector is scaled to unit norm (paper.md §3, step 6).

    Parameters
    ----------
    structure : Structure
    relevant : sequence of blocks, optional
        Blocks ``S`` (iterables of view indices, or text like ``"AB"``) with
        ``beta_S != 0``; all blocks if None.
    rng : None, int, SeedSequence or Generator

    Returns
    -------
    ndarray of shape (K,)

    Examples
    --------
    >>> import hcl_stats as hs
    >>> s = hs.Structure.parse("AB:2 A:1 B:1")
    >>> beta = make_beta(s, relevant=["A"], rng=0)
    >>> beta[:2].tolist(), float(beta @ beta)
    ([0.0, 0.0], 1.0)
    """
    gen = as_generator(rng)
    beta = gen.uniform(0.0, 1.0, size=structure.total_rank)
    if relevant is not None:
        keep = np.zeros(structure.total_rank, dtype=bool)
        for blk in relevant:
            b = _as_block(blk, structure)
            keep[structure.columns(b)] = True
        beta = np.where(keep, beta, 0.0)
    norm = float(np.linalg.norm(beta))
    if norm == 0.0:
        raise ValidationError("relevant must name at least one block.")
    return beta / norm


def _as_block(blk: Any, structure: Structure) -> frozenset[int]:
    if isinstance(blk, str):
        b = frozenset(ord(c) - ord("A") for c in blk.strip().upper())
    else:
        b = frozenset(int(v) for v in blk)
    if b not in structure.blocks:
        raise ValidationError(
            f"relevant blocks must be blocks of the structure {structure}; got "
            f"{blk!r}."
        )
    return b


def sample_downstream(
    model: Any,
    beta: ArrayLike,
    n_samples: int,
    *,
    noise_var_y: float = 0.1,
    rng: Any = None,
) -> DownstreamData:
    """Draw ``m`` labelled rows ``(x, y)`` with ``y = z^T beta + eps_y``.

    Parameters
    ----------
    model : HierarchicalFactorModel
        Gives ``W``, the noise and (optionally) ``Cov(z)``.
    beta : array_like of shape (K,)
    n_samples : int
        ``m``.
    noise_var_y : float, default=0.1
        ``sigma_y^2`` (the reference code's ``c_y``).
    rng : None, int, SeedSequence or Generator

    Returns
    -------
    DownstreamData
        With the latent ``z`` kept for oracle computations.

    Notes
    -----
    Draws, in order, standard normals of shapes ``(m, K)``, ``(m, d)`` and
    ``(m,)`` and multiplies them by explicit factors.
    """
    m = check_int(n_samples, "n_samples", minimum=2)
    beta = _check_beta(beta, model.structure.total_rank)
    s2y = check_real(noise_var_y, "noise_var_y", low=0.0)
    gen = as_generator(rng)
    w = np.asarray(model.loadings, dtype=float)
    z = gen.standard_normal((m, w.shape[1]))
    phi = getattr(model, "latent_cov", None)
    if phi is not None:
        vals, vecs = np.linalg.eigh(np.asarray(phi))
        z = z @ (vecs * np.sqrt(np.clip(vals, 0.0, None))).T
    e = gen.standard_normal((m, w.shape[0])) * np.sqrt(model.noise_diagonal())
    x = z @ w.T + e
    y = z @ beta + math.sqrt(s2y) * gen.standard_normal(m)
    return DownstreamData(x, y, z)


def _check_beta(beta: ArrayLike, k: int) -> NDArray[np.float64]:
    beta = check_float_array(beta, "beta", ndim=1)
    if beta.shape[0] != k:
        raise ValidationError(
            f"beta must have K = {k} entries (one per latent); got {beta.shape[0]}."
        )
    return beta


# ------------------------------------------------------------------ representation
@dataclass(frozen=True, eq=False)
class Representation:
    """Linear representation ``h(x) = C x`` with ``C = (W^T W)^{-1} W^T``.

    Parameters
    ----------
    coef : ndarray of shape (K, d)
        ``C``.
    noise_diagonal : ndarray of shape (d,)
        Diagonal of the (estimated) noise covariance ``Psi``.
    structure : Structure
        Gives the groups (one per block, columns in canonical order).

    Notes
    -----
    Build it with :meth:`from_fit` (estimated ``W``) or :meth:`from_model` (the
    true ``W``, the oracle representation).
    """

    coef: NDArray[np.float64]
    noise_diagonal: NDArray[np.float64]
    structure: Structure

    def __post_init__(self) -> None:
        c = check_float_array(self.coef, "coef", ndim=2)
        psi = check_float_array(self.noise_diagonal, "noise_diagonal", ndim=1)
        if c.shape[0] != self.structure.total_rank or psi.shape[0] != c.shape[1]:
            raise ValidationError(
                f"coef must have shape (K, d) = ({self.structure.total_rank}, "
                f"{psi.shape[0]}); got {c.shape}."
            )
        for name, a in (("coef", c), ("noise_diagonal", psi)):
            a = np.array(a, dtype=float, copy=True)
            a.setflags(write=False)
            object.__setattr__(self, name, a)

    @classmethod
    def from_loadings(
        cls, loadings: ArrayLike, noise_diagonal: ArrayLike, structure: Structure
    ) -> Representation:
        """``C = (W^T W)^{-1} W^T`` from loadings of shape (d, K)."""
        w = check_float_array(loadings, "loadings", ndim=2)
        gram = w.T @ w
        try:
            coef = np.linalg.solve(gram, w.T)
        except np.linalg.LinAlgError as exc:
            raise ValidationError(
                "loadings must have full column rank to define (W^T W)^{-1} W^T; got "
                "a singular W^T W."
            ) from exc
        if np.linalg.cond(gram) > 1e12:
            raise ValidationError(
                f"loadings must have full column rank; got cond(W^T W) = "
                f"{np.linalg.cond(gram):.2e}."
            )
        return cls(coef, np.asarray(noise_diagonal, dtype=float), structure)

    @classmethod
    def from_fit(cls, fit: Any, *, reference: Any = None) -> Representation:
        """Representation of a fitted model.

        Parameters
        ----------
        fit : FitResult
        reference : FitResult or HierarchicalFactorModel, optional
            If given, ``fit`` is first rotated onto it with
            :meth:`FitResult.aligned_to` (one orthogonal ``Q_S`` per block, a
            global rotation for structure-blind fits). This is an oracle step: it
            changes neither predictions (OLS) nor group norms (group lasso), only
            the coordinates in which ``beta_hat`` is expressed, so that it can be
            compared with ``beta``.

        Returns
        -------
        Representation
        """
        if reference is not None:
            fit = fit.aligned_to(reference)
        structure = reference.structure if reference is not None else fit.structure
        return cls.from_loadings(fit.loadings, fit.noise_diagonal(), structure)

    @classmethod
    def from_model(cls, model: Any) -> Representation:
        """Oracle representation from the true ``W`` and ``Psi``."""
        return cls.from_loadings(model.loadings, model.noise_diagonal(), model.structure)

    @property
    def total_rank(self) -> int:
        """``K``."""
        return int(self.coef.shape[0])

    def transform(self, x: ArrayLike) -> NDArray[np.float64]:
        """Features ``X C^T``, shape ``(m, K)``."""
        x = check_float_array(x, "x", ndim=2)
        if x.shape[1] != self.coef.shape[1]:
            raise ValidationError(
                f"x must have d = {self.coef.shape[1]} columns; got {x.shape[1]}."
            )
        return x @ self.coef.T

    def feature_noise(self) -> NDArray[np.float64]:
        """``C Psi C^T``, the covariance of the noise in ``h(x)``, shape (K, K)."""
        return (self.coef * self.noise_diagonal) @ self.coef.T

    def groups(self) -> list[NDArray[np.intp]]:
        """Column indices of each block, in canonical order."""
        out = []
        for b in self.structure.blocks:
            cols = self.structure.columns(b)
            out.append(np.arange(self.total_rank)[cols])
        return out


def residual_variance(model: Any, beta: ArrayLike, noise_var_y: float) -> float:
    """Variance of ``y - h(x)^T beta`` with the true representation.

    ``sigma_y^2 + beta^T C Psi C^T beta``: the noise level of the oracle
    regression, which enters :func:`hcl_stats.theory.beta_error_bound`.
    """
    rep = Representation.from_model(model)
    beta = _check_beta(beta, rep.total_rank)
    return float(noise_var_y + beta @ rep.feature_noise() @ beta)


# ------------------------------------------------------------------ moment matrices
def moment_matrices(
    features: NDArray[np.float64],
    y: NDArray[np.float64],
    feature_noise: NDArray[np.float64],
    *,
    psd_floor: float = 1e-3,
) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
    """Noise-corrected normal equations ``(H, b)`` with an eigenvalue floor.

    Parameters
    ----------
    features : ndarray of shape (m, K)
        ``X_hat = X C^T``.
    y : ndarray of shape (m,)
    feature_noise : ndarray of shape (K, K)
        ``C Psi C^T``.
    psd_floor : float, default=1e-3
        Eigenvalues of ``H`` below ``psd_floor * max(lambda_max(H), tiny)`` are
        raised to that value (the Frobenius-nearest matrix with that floor).

    Returns
    -------
    H : ndarray of shape (K, K)
    b : ndarray of shape (K,)
    n_floored : int
        Number of eigenvalues that were raised.

    Notes
    -----
    Uses the raw second moment ``X_hat^T X_hat / m`` (no centring), matching the
    mean-zero model.
    """
    m = features.shape[0]
    h = features.T @ features / m - feature_noise
    h = (h + h.T) / 2.0
    b = features.T @ y / m
    vals, vecs = np.linalg.eigh(h)
    top = max(float(vals[-1]), np.finfo(float).tiny)
    floor = psd_floor * top
    low = vals < floor
    n_floored = int(np.sum(low))
    if n_floored:
        vals = np.where(low, floor, vals)
        h = (vecs * vals) @ vecs.T
        h = (h + h.T) / 2.0
    return h, b, n_floored


# ---------------------------------------------------------------------- the solver
def _block_solve(
    eigvals: NDArray, eigvecs: NDArray, c: NDArray, t: float
) -> NDArray[np.float64]:
    """argmin_u 1/2 u^T A u - c^T u + t ||u||  with ``A = V diag(eigvals) V^T`` PD."""
    cn = float(np.linalg.norm(c))
    if cn <= t:
        return np.zeros_like(c)
    ct = eigvecs.T @ c
    if t == 0.0:
        return eigvecs @ (ct / eigvals)
    # u(mu) = (A + mu I)^{-1} c with mu = t / ||u(mu)||. mu ||u(mu)|| increases
    # strictly from 0 to ||c|| > t, so the root is unique and lies in [lo, hi]
    # (from mu / (lam + mu) ||c|| = t at lam = lam_min, lam_max). Solve
    # g(mu) = 1 / ||u(mu)|| - mu / t = 0: g is concave and decreasing (Moré and
    # Sorensen 1983), so Newton iterates started in the bracket approach the root
    # monotonically from the right after the first step; bisection safeguards.
    c2 = ct * ct
    lo = t * float(eigvals.min()) / (cn - t)
    hi = t * float(eigvals.max()) / (cn - t)
    mu = hi
    for _ in range(100):
        den = eigvals + mu
        nu2 = float(np.sum(c2 / den**2))
        nu = math.sqrt(nu2)
        g = 1.0 / nu - mu / t
        if g > 0:
            lo = mu
        else:
            hi = mu
        dg = float(np.sum(c2 / den**3)) / (nu2 * nu) - 1.0 / t
        new = mu - g / dg if dg < 0 else 0.5 * (lo + hi)
        if not lo <= new <= hi:
            new = 0.5 * (lo + hi)
        if abs(new - mu) <= 1e-13 * mu or hi - lo <= 1e-13 * hi:
            mu = new
            break
        mu = new
    return eigvecs @ (ct / (eigvals + mu))


@dataclass(frozen=True)
class _Solution:
    coef: NDArray[np.float64]
    n_iter: int
    converged: bool
    kkt: float


def solve_group_lasso(
    h: ArrayLike,
    b: ArrayLike,
    groups: Sequence[ArrayLike],
    lam: float,
    *,
    weights: ArrayLike | None = None,
    init: ArrayLike | None = None,
    max_iter: int = 10_000,
    tol: float = 1e-12,
) -> tuple[NDArray[np.float64], dict[str, Any]]:
    """Minimise ``1/2 beta^T H beta - b^T beta + lam sum_g w_g ||beta_g||_2``.

    Exact block coordinate descent: each block update solves its subproblem
    ``min_u 1/2 u^T H_gg u - c_g^T u + lam w_g ||u||`` exactly (zero if
    ``||c_g|| <= lam w_g``; otherwise ``u = (H_gg + mu I)^{-1} c_g`` with the
    scalar ``mu = lam w_g / ||u||``, the root of a monotone secular equation,
    found by Brent's method). Sweeps run to a loose tolerance, then Newton's
    method on the smooth optimality system of the current active set polishes
    the point, and the KKT conditions of all groups are checked; if they fail,
    sweeps resume with a tighter tolerance.

    Parameters
    ----------
    h : array_like of shape (K, K)
        Symmetric positive definite (use :func:`moment_matrices`).
    b : array_like of shape (K,)
    groups : sequence of index arrays
        A partition of ``range(K)``.
    lam : float
        ``>= 0``.
    weights : array_like of shape (G,), optional
        ``w_g``; default ``sqrt(|g|)``.
    init : array_like of shape (K,), optional
        Warm start.
    max_iter : int, default=10000
        Maximum number of sweeps over the groups.
    tol : float, default=1e-12
        Stop when the largest violation of the optimality (KKT) conditions,
        relative to ``max(1, ||b||_inf)``, is at most ``tol``.

    Returns
    -------
    coef : ndarray of shape (K,)
    info : dict
        ``n_iter`` (sweeps), ``converged`` and ``kkt`` (the largest violation of
        the optimality conditions, relative to ``max(1, ||b||_inf)``).

    Warns
    -----
    ConvergenceWarning
        If ``max_iter`` sweeps are reached.

    Notes
    -----
    The objective is convex and the non-smooth part separable across groups, so
    cyclic exact block minimisation converges to the minimiser (Tseng 2001).
    Verified against cvxpy (CLARABEL) to 1e-6 in ``tests/test_downstream.py``.

    Examples
    --------
    >>> import numpy as np
    >>> coef, info = solve_group_lasso(np.eye(2), np.array([3.0, 4.0]), [[0, 1]], 1.0,
    ...                                weights=[1.0])
    >>> coef.round(6).tolist()   # block soft-thresholding of b: (1 - 1/5) b
    [2.4, 3.2]
    """
    h = check_float_array(h, "H", ndim=2)
    b = check_float_array(b, "b", ndim=1)
    k = b.shape[0]
    if h.shape != (k, k):
        raise ValidationError(f"H must have shape ({k}, {k}); got {h.shape}.")
    lam = check_real(lam, "lam", low=0.0)
    groups = [np.asarray(g, dtype=np.intp) for g in groups]
    allidx = np.sort(np.concatenate(groups)) if groups else np.zeros(0, np.intp)
    if allidx.shape[0] != k or np.any(allidx != np.arange(k)):
        raise ValidationError("groups must partition range(K).")
    w = (
        np.array([math.sqrt(g.size) for g in groups])
        if weights is None
        else check_float_array(weights, "weights", ndim=1)
    )
    if w.shape[0] != len(groups) or np.any(w < 0):
        raise ValidationError(
            f"weights must have one non-negative entry per group ({len(groups)})."
        )
    tw = lam * w
    blocks = []
    for g in groups:
        hgg = h[np.ix_(g, g)]
        vals, vecs = np.linalg.eigh(hgg)
        if vals[0] <= 0:
            raise ValidationError(
                "H must be positive definite on every group; got a diagonal block "
                f"with eigenvalue {vals[0]:.3g} (use moment_matrices' psd_floor)."
            )
        blocks.append((hgg, vals, vecs, np.ascontiguousarray(h[:, g])))
    beta = np.zeros(k) if init is None else np.array(init, dtype=float)
    if beta.shape != (k,):
        raise ValidationError(f"init must have shape ({k},); got {beta.shape}.")
    scale = max(1.0, float(np.max(np.abs(b))))
    n_iter = 0
    converged = False
    kkt = math.inf
    # Rounds of (loose BCD sweeps -> Newton polish on the active set -> KKT check);
    # the polish makes the result exact to round-off once the active set is right.
    loose = max(tol, 1e-4)
    while n_iter < max_iter:
        hb = h @ beta
        for _ in range(max_iter - n_iter):
            n_iter += 1
            delta = 0.0
            for gi, g in enumerate(groups):
                hgg, vals, vecs, hcol = blocks[gi]
                old = beta[g]
                c = b[g] - hb[g] + hgg @ old
                new = _block_solve(vals, vecs, c, tw[gi])
                diff = new - old
                if np.any(diff != 0):
                    beta[g] = new
                    hb += hcol @ diff
                    delta = max(delta, float(np.max(np.abs(diff))))
            if delta <= loose * max(1.0, float(np.max(np.abs(beta)))):
                break
        beta = _newton_polish(h, b, groups, tw, beta)
        kkt = _kkt(h, b, groups, tw, beta) / scale
        if kkt <= tol:
            converged = True
            break
        loose = max(tol, loose * 1e-2)
    if not converged:
        import warnings

        warnings.warn(
            f"solve_group_lasso stopped after {max_iter} sweeps with KKT violation "
            f"{kkt:.2e} > tol = {tol:.1e}; increase max_iter.",
            ConvergenceWarning,
            stacklevel=2,
        )
    return beta, {"n_iter": n_iter, "converged": converged, "kkt": kkt}


def _kkt(h, b, groups, tw, beta) -> float:
    """Largest violation of the optimality conditions of the group lasso."""
    r = b - h @ beta
    worst = 0.0
    for g, t in zip(groups, tw, strict=True):
        nb = float(np.linalg.norm(beta[g]))
        if nb > 0:
            viol = float(np.linalg.norm(r[g] - t * beta[g] / nb))
        else:
            viol = max(0.0, float(np.linalg.norm(r[g])) - t)
        worst = max(worst, viol)
    return worst


def _newton_polish(h, b, groups, tw, beta, max_steps: int = 30):
    """Newton's method on the smooth KKT system of the current active set.

    Returns the polished point if it keeps every active group non-zero and does
    not increase the objective; otherwise the input.
    """
    active = [i for i, g in enumerate(groups) if np.any(beta[g] != 0)]
    if not active:
        return beta
    idx = np.concatenate([groups[i] for i in active])
    haa, ba = h[np.ix_(idx, idx)], b[idx]
    spans, off = [], 0
    for i in active:
        spans.append((off, off + groups[i].size, tw[i]))
        off += groups[i].size
    x = beta[idx].copy()

    def f_val(v):
        return 0.5 * v @ haa @ v - ba @ v + sum(
            t * float(np.linalg.norm(v[a:c])) for a, c, t in spans
        )

    fx = f_val(x)
    for _ in range(max_steps):
        grad = haa @ x - ba
        jac = haa.copy()
        for a, c, t in spans:
            nrm = float(np.linalg.norm(x[a:c]))
            if nrm == 0.0:
                return beta
            u = x[a:c] / nrm
            grad[a:c] += t * u
            jac[a:c, a:c] += t * (np.eye(c - a) - np.outer(u, u)) / nrm
        gnorm = float(np.max(np.abs(grad)))
        if gnorm <= 1e-15 * max(1.0, float(np.max(np.abs(ba)))):
            break
        step = np.linalg.solve(jac, grad)
        alpha = 1.0
        while alpha > 1e-8:
            cand = x - alpha * step
            fc = f_val(cand)
            if fc <= fx + 1e-16 * abs(fx):
                break
            alpha *= 0.5
        else:
            break
        if any(np.linalg.norm(cand[a:c]) == 0.0 for a, c, _ in spans):
            return beta
        x, fx = cand, fc
        if float(np.max(np.abs(alpha * step))) <= 1e-16 * max(1.0, float(np.max(np.abs(x)))):
            break
    out = beta.copy()
    out[idx] = x
    return out


def _objective(h, b, groups, lam, w, beta) -> float:
    pen = sum(wi * float(np.linalg.norm(beta[g])) for wi, g in zip(w, groups, strict=True))
    return float(0.5 * beta @ h @ beta - b @ beta + lam * pen)


# ------------------------------------------------------------- cross-validation
def kfold_indices(
    n_samples: int, n_folds: int, *, rng: Any = None
) -> list[tuple[NDArray[np.intp], NDArray[np.intp]]]:
    """Random K-fold split: ``[(train, test), ...]`` with disjoint test folds.

    Parameters
    ----------
    n_samples : int
    n_folds : int
        ``2 <= n_folds <= n_samples``.
    rng : None, int, SeedSequence or Generator

    Returns
    -------
    list of (ndarray, ndarray)
        Sorted train and test indices; each row is in exactly one test fold.

    Examples
    --------
    >>> folds = kfold_indices(5, 2, rng=0)
    >>> sorted(int(i) for _, test in folds for i in test)
    [0, 1, 2, 3, 4]
    """
    n = check_int(n_samples, "n_samples", minimum=2)
    k = check_int(n_folds, "n_folds", minimum=2)
    if k > n:
        raise ValidationError(f"n_folds must be <= n_samples = {n}; got {k}.")
    perm = as_generator(rng).permutation(n)
    out = []
    for test in np.array_split(perm, k):
        mask = np.ones(n, dtype=bool)
        mask[test] = False
        out.append((np.flatnonzero(mask), np.sort(test)))
    return out


@dataclass(frozen=True, eq=False)
class CVResult:
    """Cross-validation of the group-lasso penalty.

    Parameters
    ----------
    fractions : ndarray of shape (L,)
        Penalties as fractions of ``lambda_max`` (computed on each training fold
        from that fold's own data), decreasing; the last may be 0 (no penalty).
    mean_error, se_error : ndarray of shape (L,)
        Mean and standard error over folds of the held-out squared error.
    fold_errors : ndarray of shape (n_folds, L)
    fold_coefs : ndarray of shape (n_folds, L, K)
        Coefficient path of every training fold.
    folds : list of (train, test) index arrays
    best_index : int
    rule : str
        ``'min'`` or ``'one_se'``.
    """

    fractions: NDArray[np.float64]
    mean_error: NDArray[np.float64]
    se_error: NDArray[np.float64]
    fold_errors: NDArray[np.float64]
    fold_coefs: NDArray[np.float64]
    folds: list[tuple[NDArray[np.intp], NDArray[np.intp]]]
    best_index: int
    rule: str

    @property
    def best_fraction(self) -> float:
        """Selected fraction of ``lambda_max``."""
        return float(self.fractions[self.best_index])


def lambda_max(b: NDArray, groups: Sequence[NDArray], weights: NDArray) -> float:
    """Smallest ``lam`` with ``beta_hat = 0``: ``max_g ||b_g|| / w_g``."""
    return float(
        max(np.linalg.norm(b[g]) / wg for g, wg in zip(groups, weights, strict=True))
    )


def _fit_path(features, y, feature_noise, groups, weights, fractions, psd_floor):
    """Coefficient path on the rows given (and only those)."""
    h, b, _ = moment_matrices(features, y, feature_noise, psd_floor=psd_floor)
    lmax = lambda_max(b, groups, weights)
    coefs = np.zeros((len(fractions), b.shape[0]))
    init = None
    for j, frac in enumerate(fractions):
        coef, _ = solve_group_lasso(
            h, b, groups, frac * lmax, weights=weights, init=init, tol=1e-9
        )
        coefs[j] = coef
        init = coef
    return coefs


def cross_validate(
    features: ArrayLike,
    y: ArrayLike,
    feature_noise: ArrayLike,
    groups: Sequence[ArrayLike],
    *,
    weights: ArrayLike | None = None,
    fractions: ArrayLike | None = None,
    n_folds: int = 5,
    rule: str = "min",
    psd_floor: float = 1e-3,
    rng: Any = None,
) -> CVResult:
    """K-fold cross-validation of the penalty, without leakage.

    For every fold the moment matrices, ``lambda_max`` and the whole coefficient
    path are computed from the training rows only (``features[train]``,
    ``y[train]``); held-out rows are touched only to compute the validation error
    ``mean (y_test - features_test beta)^2``.

    Parameters
    ----------
    features : array_like of shape (m, K)
    y : array_like of shape (m,)
    feature_noise : array_like of shape (K, K)
    groups : sequence of index arrays
    weights : array_like, optional
        Group weights (default ``sqrt(|g|)``).
    fractions : array_like, optional
        Decreasing fractions of ``lambda_max``; default 12 values from 1 to 1e-3
        (log spaced) followed by 0.
    n_folds : int, default=5
    rule : {'min', 'one_se'}, default='min'
        Smallest mean error, or the largest penalty within one standard error of
        it (sparser).
    psd_floor : float, default=1e-3
    rng : None, int, SeedSequence or Generator
        Shuffles the rows into folds.

    Returns
    -------
    CVResult
    """
    x = check_float_array(features, "features", ndim=2)
    y = check_float_array(y, "y", ndim=1)
    fn = check_float_array(feature_noise, "feature_noise", ndim=2)
    if rule not in ("min", "one_se"):
        raise ValidationError(f"rule must be 'min' or 'one_se'; got {rule!r}.")
    groups = [np.asarray(g, dtype=np.intp) for g in groups]
    w = (
        np.array([math.sqrt(g.size) for g in groups])
        if weights is None
        else np.asarray(weights, dtype=float)
    )
    fr = (
        np.concatenate([np.geomspace(1.0, 1e-3, 12), [0.0]])
        if fractions is None
        else check_float_array(fractions, "fractions", ndim=1)
    )
    folds = kfold_indices(x.shape[0], n_folds, rng=rng)
    errors = np.empty((len(folds), fr.size))
    coefs = np.empty((len(folds), fr.size, x.shape[1]))
    for i, (train, test) in enumerate(folds):
        path = _fit_path(x[train], y[train], fn, groups, w, fr, psd_floor)
        coefs[i] = path
        resid = y[test][:, None] - x[test] @ path.T
        errors[i] = np.mean(resid**2, axis=0)
    mean = errors.mean(axis=0)
    se = errors.std(axis=0, ddof=1) / math.sqrt(len(folds))
    best = int(np.argmin(mean))
    if rule == "one_se":
        ok = np.flatnonzero(mean <= mean[best] + se[best])
        best = int(ok.min())  # fractions decrease, so the first is the largest lam
    return CVResult(fr, mean, se, errors, coefs, folds, best, rule)


def theory_lambda(
    residual_sd: float, m: int, n_structures: int, min_rank: int, *, constant: float = 1.0
) -> float:
    """Theory-driven penalty ``c sigma (1 + sqrt(2 log|S| / r_min)) / sqrt(m)``.

    With weights ``w_S = sqrt(r_S)`` this gives ``lam w_S >= c sigma (sqrt(r_S) +
    sqrt(2 log|S|)) / sqrt(m)``, which dominates the noise gradient
    ``||X_S^T eps / m||`` of every group simultaneously with high probability
    (a chi-square tail plus a union bound over the ``|S|`` groups; Lounici et
    al. 2011). ``constant`` > 1 adds a safety margin.

    Examples
    --------
    >>> round(theory_lambda(1.0, 100, 1, 1), 6)  # log 1 = 0
    0.1
    """
    s = check_real(residual_sd, "residual_sd", low=0.0)
    m = check_int(m, "m", minimum=1)
    g = check_int(n_structures, "n_structures", minimum=1)
    r = check_int(min_rank, "min_rank", minimum=1)
    return constant * s * (1.0 + math.sqrt(2.0 * math.log(g) / r)) / math.sqrt(m)


# ------------------------------------------------------------------- estimators
@dataclass(frozen=True, eq=False)
class DownstreamFit:
    """A fitted downstream coefficient vector.

    Parameters
    ----------
    coef : ndarray of shape (K,)
        ``beta_hat`` in the coordinates of the representation.
    structure : Structure
        Groups (blocks) of the coefficients.
    method : str
        Repr of the estimator.
    lam : float
        Penalty used (0 for :class:`EIVRegression`).
    n_floored : int
        Eigenvalues of ``H`` raised by the floor.
    n_iter : int
    converged : bool
    cv : CVResult or None
    """

    coef: NDArray[np.float64]
    structure: Structure
    method: str
    lam: float = 0.0
    n_floored: int = 0
    n_iter: int = 0
    converged: bool = True
    cv: CVResult | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        c = np.array(self.coef, dtype=float, copy=True)
        c.setflags(write=False)
        object.__setattr__(self, "coef", c)

    def group_norms(self) -> dict[frozenset[int], float]:
        """``||beta_hat_S||_2`` per block."""
        return {
            b: float(np.linalg.norm(self.coef[self.structure.columns(b)]))
            for b in self.structure.blocks
        }

    def selected(self) -> tuple[frozenset[int], ...]:
        """Blocks with a non-zero coefficient group."""
        return tuple(b for b, v in self.group_norms().items() if v > 0)

    def predict(self, rep: Representation, x: ArrayLike) -> NDArray[np.float64]:
        """``h(x)^T beta_hat``, shape (m,)."""
        return rep.transform(x) @ self.coef


def _prepare(rep: Representation, data: DownstreamData):
    if not isinstance(rep, Representation):
        raise ValidationError(
            f"rep must be a Representation; got {type(rep).__name__}."
        )
    if not isinstance(data, DownstreamData):
        raise ValidationError(
            f"data must be a DownstreamData; got {type(data).__name__}."
        )
    return rep.transform(data.x), data.y, rep.feature_noise()


@dataclass(frozen=True, kw_only=True)
class EIVRegression:
    """Bias-corrected (errors-in-variables) least squares ``beta_hat = H^{-1} b``.

    Parameters
    ----------
    psd_floor : float, default=1e-3
        Eigenvalue floor of ``H`` relative to its largest eigenvalue (see
        :func:`moment_matrices`).

    Notes
    -----
    Deterministic. With the true representation and ``m -> inf``, ``H -> I`` and
    ``b -> beta``; the estimator is the method of moments for ``beta`` under
    additive feature noise of known covariance ``C Psi C^T``.
    """

    psd_floor: float = 1e-3

    def fit(self, rep: Representation, data: DownstreamData) -> DownstreamFit:
        """Fit on labelled data; returns a :class:`DownstreamFit`."""
        check_real(self.psd_floor, "psd_floor", low=0.0, high=1.0)
        feats, y, fn = _prepare(rep, data)
        h, b, nf = moment_matrices(feats, y, fn, psd_floor=self.psd_floor)
        coef = np.linalg.solve(h, b)
        return DownstreamFit(coef, rep.structure, repr(self), 0.0, nf)


@dataclass(frozen=True, kw_only=True)
class GroupLasso:
    """Group lasso over structures on the noise-corrected moments.

    Minimises ``1/2 beta^T H beta - b^T beta + lam sum_S sqrt(r_S) ||beta_S||_2``.

    Parameters
    ----------
    lam : float or {'cv', 'theory'}, default='cv'
        A fixed penalty; ``'cv'`` (K-fold cross-validation over fractions of
        ``lambda_max``, see :func:`cross_validate`, then a refit on all rows at
        the chosen fraction of the full-data ``lambda_max``); or ``'theory'``
        (:func:`theory_lambda` with the residual SD of the EIV fit).
    n_folds : int, default=5
    rule : {'min', 'one_se'}, default='min'
        CV selection rule.
    theory_constant : float, default=1.0
        ``c`` in :func:`theory_lambda`.
    psd_floor : float, default=1e-3
    max_iter : int, default=10000
    tol : float, default=1e-12
        Solver settings (:func:`solve_group_lasso`).

    Notes
    -----
    Rotation-equivariant within groups: rotating a block of the representation by
    ``Q_S`` rotates ``beta_hat_S`` by ``Q_S^T`` and leaves predictions and group
    norms unchanged. ``rng`` (in :meth:`fit`) only shuffles the CV folds.
    """

    lam: float | str = "cv"
    n_folds: int = 5
    rule: str = "min"
    theory_constant: float = 1.0
    psd_floor: float = 1e-3
    max_iter: int = 10_000
    tol: float = 1e-12

    def __post_init__(self) -> None:
        if isinstance(self.lam, str):
            if self.lam not in ("cv", "theory"):
                raise ValidationError(
                    f"lam must be a non-negative float, 'cv' or 'theory'; got {self.lam!r}."
                )
        else:
            check_real(self.lam, "lam", low=0.0)
        check_int(self.n_folds, "n_folds", minimum=2)
        if self.rule not in ("min", "one_se"):
            raise ValidationError(f"rule must be 'min' or 'one_se'; got {self.rule!r}.")

    def fit(
        self, rep: Representation, data: DownstreamData, *, rng: Any = None
    ) -> DownstreamFit:
        """Fit on labelled data; returns a :class:`DownstreamFit`."""
        feats, y, fn = _prepare(rep, data)
        groups = rep.groups()
        weights = np.array([math.sqrt(g.size) for g in groups])
        h, b, nf = moment_matrices(feats, y, fn, psd_floor=self.psd_floor)
        cv = None
        if self.lam == "cv":
            cv = cross_validate(
                feats, y, fn, groups, weights=weights, n_folds=self.n_folds,
                rule=self.rule, psd_floor=self.psd_floor, rng=rng,
            )
            lam = cv.best_fraction * lambda_max(b, groups, weights)
        elif self.lam == "theory":
            m, k = feats.shape
            ols = np.linalg.solve(h, b)
            resid = y - feats @ ols
            sd = math.sqrt(float(resid @ resid) / max(m - k, 1))
            lam = theory_lambda(
                sd, m, len(groups), min(g.size for g in groups),
                constant=self.theory_constant,
            )
        else:
            lam = float(self.lam)
        coef, info = solve_group_lasso(
            h, b, groups, lam, weights=weights, max_iter=self.max_iter, tol=self.tol
        )
        return DownstreamFit(
            coef, rep.structure, repr(self), lam, nf, info["n_iter"],
            info["converged"], cv,
        )


# ---------------------------------------------------------------------- metrics
def _risk(a: NDArray, model: Any, beta: NDArray, s2y: float) -> float:
    """Population ``E (y - a^T x)^2`` for a linear predictor ``a`` (d,)."""
    w = np.asarray(model.loadings)
    phi = getattr(model, "latent_cov", None)
    phi = np.eye(w.shape[1]) if phi is None else np.asarray(phi)
    cov = model.covariance()
    return float(beta @ phi @ beta + s2y - 2.0 * a @ (w @ (phi @ beta)) + a @ cov @ a)


def evaluate(
    fit: DownstreamFit,
    rep: Representation,
    model: Any,
    beta: ArrayLike,
    *,
    noise_var_y: float = 0.1,
    test: DownstreamData | None = None,
) -> dict[str, float]:
    """Coefficient errors, excess risk and support recovery of a downstream fit.

    Parameters
    ----------
    fit : DownstreamFit
    rep : Representation
        The representation ``fit`` was computed on (aligned to the truth with
        :meth:`Representation.from_fit` ``(reference=model)`` for meaningful
        coefficient errors).
    model : HierarchicalFactorModel
        The truth.
    beta : array_like of shape (K,)
    noise_var_y : float, default=0.1
    test : DownstreamData, optional
        Fresh labelled rows for the empirical excess risk.

    Returns
    -------
    dict
        ``beta_error`` (``||beta_hat - beta||_2``), ``beta_error[<block>]`` per
        block (letters, e.g. ``beta_error[AB]``);
        ``excess_risk``: ``E[(a_hat^T x - a_or^T x)^2]``, the mean squared
        distance between the fitted predictor ``a_hat = C_hat^T beta_hat`` and the
        oracle predictor ``a_or = C^T beta`` (true representation, true
        ``beta``; the limit of the EIV estimator as ``n, m -> inf``), always
        ``>= 0``; ``excess_risk_test``: the same on the fresh ``test`` rows;
        ``risk_gap``: ``R(a_hat) - R(a_or)``, the reference code's definition
        (population), and ``risk_gap_test`` on ``test``; it can be negative
        because ``a_or`` is not the Bayes predictor when features are noisy;
        ``excess_risk_bayes``: ``R(a_hat) - R(E[y|x])``, always ``>= 0``;
        ``representation_error`` (``||C_hat W - I||_op``), ``support_precision``,
        ``support_recall``, ``support_exact`` (1 if the selected structures are
        exactly the relevant ones), ``n_selected`` and ``lam``.

    Notes
    -----
    Population risks are exact for Gaussian data: ``R(a) = beta^T Phi beta +
    sigma_y^2 - 2 a^T W Phi beta + a^T Sigma a`` for the linear predictor
    ``x -> a^T x``.
    """
    beta = _check_beta(beta, rep.total_rank)
    s2y = check_real(noise_var_y, "noise_var_y", low=0.0)
    structure = model.structure
    out: dict[str, float] = {}
    diff = fit.coef - beta
    out["beta_error"] = float(np.linalg.norm(diff))
    for b in structure.blocks:
        cols = structure.columns(b)
        out[f"beta_error[{_letters(b)}]"] = float(np.linalg.norm(diff[cols]))
    oracle = Representation.from_model(model)
    a_hat = rep.coef.T @ fit.coef
    a_or = oracle.coef.T @ beta
    w = np.asarray(model.loadings)
    phi = getattr(model, "latent_cov", None)
    phi = np.eye(w.shape[1]) if phi is None else np.asarray(phi)
    a_bayes = np.linalg.solve(model.covariance(), w @ (phi @ beta))
    cov = model.covariance()
    diff_a = a_hat - a_or
    out["excess_risk"] = float(diff_a @ cov @ diff_a)
    r_hat = _risk(a_hat, model, beta, s2y)
    out["risk_gap"] = r_hat - _risk(a_or, model, beta, s2y)
    out["excess_risk_bayes"] = r_hat - _risk(a_bayes, model, beta, s2y)
    if test is not None:
        e_hat = test.y - test.x @ a_hat
        e_or = test.y - test.x @ a_or
        out["risk_gap_test"] = float(np.mean(e_hat**2) - np.mean(e_or**2))
        out["excess_risk_test"] = float(np.mean((test.x @ diff_a) ** 2))
    out["representation_error"] = float(
        np.linalg.norm(rep.coef @ w - np.eye(w.shape[1]), 2)
    )
    true_sel = {b for b in structure.blocks if np.any(beta[structure.columns(b)] != 0)}
    est_sel = set(fit.selected())
    tp = len(true_sel & est_sel)
    out["support_precision"] = tp / len(est_sel) if est_sel else 1.0
    out["support_recall"] = tp / len(true_sel) if true_sel else 1.0
    out["support_exact"] = float(est_sel == true_sel)
    out["n_selected"] = float(len(est_sel))
    out["lam"] = float(fit.lam)
    return out


def _letters(b: frozenset[int]) -> str:
    return "".join(chr(ord("A") + m) for m in sorted(b))


# ------------------------------------------------------------ logistic variant
def sample_downstream_logistic(
    model: Any,
    beta: ArrayLike,
    n_samples: int,
    *,
    latent_noise_var: float = 0.0,
    rng: Any = None,
) -> DownstreamData:
    """Binary labels ``y ~ Bernoulli(sigmoid(z^T beta + e))``, ``e ~ N(0, s^2)``.

    The reference code's ``generate_logistic_data`` uses ``s^2 = 6`` (paper.md §3,
    step 6); the default here is 0 (a plain logistic model).

    Parameters
    ----------
    model : HierarchicalFactorModel
    beta : array_like of shape (K,)
    n_samples : int
    latent_noise_var : float, default=0
    rng : None, int, SeedSequence or Generator

    Returns
    -------
    DownstreamData
        ``y`` in {0, 1}.
    """
    s2 = check_real(latent_noise_var, "latent_noise_var", low=0.0)
    gen = as_generator(rng)
    base = sample_downstream(model, beta, n_samples, noise_var_y=0.0, rng=gen)
    eta = base.y + math.sqrt(s2) * gen.standard_normal(base.n_samples)
    prob = 1.0 / (1.0 + np.exp(-eta))
    y = (gen.uniform(size=base.n_samples) < prob).astype(float)
    return DownstreamData(base.x, y, base.z)


def _logistic_loss_grad(x: NDArray, y: NDArray, beta: NDArray) -> tuple[float, NDArray]:
    eta = x @ beta
    # log(1 + exp(eta)) - y eta, computed stably
    loss = float(np.mean(np.logaddexp(0.0, eta) - y * eta))
    p = 0.5 * (1.0 + np.tanh(0.5 * eta))
    return loss, x.T @ (p - y) / x.shape[0]


def _group_prox(v: NDArray, groups: Sequence[NDArray], thresholds: NDArray) -> NDArray:
    out = v.copy()
    for g, t in zip(groups, thresholds, strict=True):
        nv = float(np.linalg.norm(v[g]))
        out[g] = 0.0 if nv <= t else (1.0 - t / nv) * v[g]
    return out


def solve_logistic_group_lasso(
    x: ArrayLike,
    y: ArrayLike,
    groups: Sequence[ArrayLike],
    lam: float,
    *,
    weights: ArrayLike | None = None,
    max_iter: int = 20_000,
    tol: float = 1e-9,
) -> tuple[NDArray[np.float64], dict[str, Any]]:
    """Minimise ``mean(log(1 + e^{x^T beta}) - y x^T beta) + lam sum_g w_g ||beta_g||``.

    Accelerated proximal gradient (FISTA) with the fixed step ``1/L``,
    ``L = ||X||_op^2 / (4 m)`` (the logistic Hessian is at most ``X^T X / (4m)``),
    and adaptive restart when the objective increases (O'Donoghue and Candes 2015).

    Parameters
    ----------
    x : array_like of shape (m, K)
        Features (e.g. ``Representation.transform``); no intercept is added.
    y : array_like of shape (m,)
        Labels in {0, 1}.
    groups : sequence of index arrays
    lam : float
    weights : array_like, optional
        Default ``sqrt(|g|)``.
    max_iter : int, default=20000
    tol : float, default=1e-9
        Stop when the KKT violation (see :func:`solve_group_lasso`) is ``<= tol``.

    Returns
    -------
    coef : ndarray of shape (K,)
    info : dict
        ``n_iter``, ``converged``, ``kkt``.

    Warns
    -----
    ConvergenceWarning
        If ``max_iter`` is reached.

    Notes
    -----
    No errors-in-variables correction: with noisy features the logistic
    coefficients are attenuated; the group penalty is used for selection.
    """
    x = check_float_array(x, "x", ndim=2)
    y = check_float_array(y, "y", ndim=1)
    if np.any((y != 0) & (y != 1)):
        raise ValidationError("y must contain only 0 and 1.")
    lam = check_real(lam, "lam", low=0.0)
    groups = [np.asarray(g, dtype=np.intp) for g in groups]
    w = (
        np.array([math.sqrt(g.size) for g in groups])
        if weights is None
        else check_float_array(weights, "weights", ndim=1)
    )
    big_l = float(np.linalg.norm(x, 2) ** 2) / (4.0 * x.shape[0])
    step = 1.0 / max(big_l, np.finfo(float).tiny)
    thr = lam * w * step
    beta = np.zeros(x.shape[1])
    mom = beta.copy()
    t = 1.0

    def objective(b: NDArray) -> float:
        loss, _ = _logistic_loss_grad(x, y, b)
        return loss + lam * sum(
            wi * float(np.linalg.norm(b[g])) for wi, g in zip(w, groups, strict=True)
        )

    f_old = objective(beta)
    kkt = math.inf
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007
        _, grad = _logistic_loss_grad(x, y, mom)
        new = _group_prox(mom - step * grad, groups, thr)
        f_new = objective(new)
        if f_new > f_old and t > 1.0:  # restart the momentum (not at a plain step,
            t = 1.0  # which is a descent step up to round-off)
            mom = beta
            continue
        t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
        mom = new + ((t - 1.0) / t_next) * (new - beta)
        beta, t, f_old = new, t_next, f_new
        if n_iter % 10 == 0:
            _, g_full = _logistic_loss_grad(x, y, beta)
            kkt = _logistic_kkt(g_full, groups, lam * w, beta)
            if kkt <= tol:
                converged = True
                break
    if not converged:
        import warnings

        warnings.warn(
            f"solve_logistic_group_lasso stopped after {max_iter} iterations with KKT "
            f"violation {kkt:.2e} > tol = {tol:.1e}; increase max_iter.",
            ConvergenceWarning,
            stacklevel=2,
        )
    return beta, {"n_iter": n_iter, "converged": converged, "kkt": kkt}


def _logistic_kkt(grad: NDArray, groups, tw, beta) -> float:
    worst = 0.0
    for g, t in zip(groups, tw, strict=True):
        nb = float(np.linalg.norm(beta[g]))
        if nb > 0:
            viol = float(np.linalg.norm(grad[g] + t * beta[g] / nb))
        else:
            viol = max(0.0, float(np.linalg.norm(grad[g])) - t)
        worst = max(worst, viol)
    return worst
