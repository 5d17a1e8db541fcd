"""Numerics of the weighted-trace convex relaxation (private module).

The program (docs/convex.md)::

    minimise_{L_S >= 0}  1/2 || sum_S E_S(L_S) - S_W ||_F^2 + lam * sum_S w_S tr(L_S)

over one PSD matrix ``L_S`` of shape ``(d_S, d_S)`` per candidate subset ``S``,
where ``E_S`` embeds it in the rows and columns of the views of ``S`` and
``w_S = |S|^power``. This module holds everything that needs only numpy/scipy:
the layout, the objective, the dual certificate (duality gap), and two
first-order solvers: a factored (Burer-Monteiro) L-BFGS solver with a
certificate-driven rank-augmentation loop, and accelerated proximal gradient
(FISTA) with eigenvalue soft-thresholding per block.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg
from numpy.typing import NDArray

from .._linalg import block_offsets, one_blas_thread

__all__: list[str] = []


def candidate_blocks(n_views: int) -> tuple[frozenset[int], ...]:
    """All non-empty subsets of the views, in canonical order."""
    return tuple(
        frozenset(c)
        for k in range(n_views, 0, -1)
        for c in itertools.combinations(range(n_views), k)
    )


@dataclass(frozen=True)
class Layout:
    """Row indices of each candidate block inside the stacked ``d`` coordinates."""

    dims: tuple[int, ...]
    candidates: tuple[frozenset[int], ...]
    weights: tuple[float, ...]
    rows: tuple[NDArray[np.intp], ...] = field(repr=False)

    @classmethod
    def build(
        cls, dims: Sequence[int], candidates: Sequence[frozenset[int]], power: float
    ) -> Layout:
        off = block_offsets(dims)
        rows = tuple(
            np.concatenate([np.arange(off[m], off[m + 1]) for m in sorted(s)])
            for s in candidates
        )
        weights = tuple(float(len(s)) ** power for s in candidates)
        return cls(tuple(dims), tuple(candidates), weights, rows)

    @property
    def lipschitz(self) -> float:
        """Largest number of candidate blocks covering one entry (= ``||A^* A||``)."""
        return float(
            max(
                sum(1 for s in self.candidates if m in s) for m in range(len(self.dims))
            )
        )


def assemble(layout: Layout, mats: Sequence[NDArray]) -> NDArray[np.float64]:
    """``sum_S E_S(L_S)``, shape ``(d, d)``."""
    d = sum(layout.dims)
    out = np.zeros((d, d))
    for r, m in zip(layout.rows, mats, strict=True):
        out[np.ix_(r, r)] += m
    return out


def objective(
    layout: Layout, s_w: NDArray, mats: Sequence[NDArray], lam: float
) -> float:
    """Primal objective value."""
    res = assemble(layout, mats) - s_w
    pen = sum(w * float(np.trace(m)) for w, m in zip(layout.weights, mats, strict=True))
    return 0.5 * float(np.sum(res * res)) + lam * pen


def _top_eig(a: NDArray, k: int) -> tuple[NDArray, NDArray]:
    import scipy.sparse.linalg  # lazy (binds `scipy` locally): keeps `import hcl_stats` light

    p = a.shape[0]
    k = min(k, p)
    if p <= 3000 or k >= p - 1:
        # dense: at the optimum the top of R_SS clusters at lam w_S, where Lanczos
        # converges very slowly (ARPACK failed at d_S = 1400)
        vals, vecs = scipy.linalg.eigh(a, subset_by_index=[p - k, p - 1])
    else:
        try:
            vals, vecs = scipy.sparse.linalg.eigsh(a, k=k, which="LA", tol=1e-10)
        except scipy.sparse.linalg.ArpackNoConvergence:
            vals, vecs = scipy.linalg.eigh(a, subset_by_index=[p - k, p - 1])
    order = np.argsort(vals)[::-1]
    return vals[order], vecs[:, order]


def certificate(
    layout: Layout,
    s_w: NDArray,
    mats: Sequence[NDArray],
    lam: float,
    residual: NDArray | None = None,
    n_top: int = 1,
) -> dict[str, Any]:
    """Duality gap and per-block dual violations of a primal point.

    With the residual ``R = S_W - sum_S E_S(L_S)``, the dual of the program is
    ``max_Y <Y, S_W> - 1/2 ||Y||_F^2`` subject to ``Y_SS <= lam w_S I`` for every
    candidate ``S``. ``Y = t R`` with the largest ``t <= 1`` that is dual feasible
    gives a lower bound on the optimum, hence a certified gap; a tighter point
    first removes the positive part of ``R_SS - lam w_S I`` on each block.

    Returns
    -------
    dict
        ``primal``, ``dual``, ``gap`` (primal - dual >= 0), ``scale`` ``t``,
        ``violation`` (per block ``lambda_max(R_SS) - lam w_S``) and ``top``
        (per block, top eigenpairs of ``R_SS``).
    """
    if residual is None:
        residual = s_w - assemble(layout, mats)
    pen = sum(w * float(np.trace(m)) for w, m in zip(layout.weights, mats, strict=True))
    primal = 0.5 * float(np.sum(residual * residual)) + lam * pen
    # Dual point: subtract from R the positive part of R_SS - lam w_S I on every
    # block (a PSD correction only lowers the other blocks' principal submatrices),
    # then scale by t <= 1 if some block still violates its bound.
    y = residual.copy()
    viol, top = [], []
    for r, w in zip(layout.rows, layout.weights, strict=True):
        sub = residual[np.ix_(r, r)]
        vals, vecs = _top_eig((sub + sub.T) / 2.0, n_top)
        top.append((vals, vecs))
        viol.append(float(vals[0]) - lam * w)
        pos = vals > lam * w
        if np.any(pos):
            y[np.ix_(r, r)] -= (vecs[:, pos] * (vals[pos] - lam * w)) @ vecs[:, pos].T
    t = 1.0
    for r, w, v in zip(layout.rows, layout.weights, viol, strict=True):
        if v > 0:
            sub = y[np.ix_(r, r)]
            top_y = float(_top_eig((sub + sub.T) / 2.0, 1)[0][0])
            if top_y > lam * w:
                t = min(t, lam * w / top_y)
    dual = t * float(np.sum(y * s_w)) - 0.5 * t * t * float(np.sum(y * y))
    return {
        "primal": primal,
        "dual": dual,
        "gap": max(primal - dual, 0.0),
        "scale": t,
        "violation": viol,
        "top": top,
    }


# ------------------------------------------------------------------ factored solver
def _pack_index(layout: Layout, ranks: Sequence[int]):
    d = sum(layout.dims)
    cols = block_offsets(ranks)
    mask = np.zeros((d, int(cols[-1])), dtype=bool)
    colw = np.zeros(int(cols[-1]))
    for i, (r, w) in enumerate(zip(layout.rows, layout.weights, strict=True)):
        mask[r, cols[i] : cols[i + 1]] = True
        colw[cols[i] : cols[i + 1]] = w
    return cols, mask, colw


def factors_to_mats(layout: Layout, factors: Sequence[NDArray]) -> list[NDArray]:
    """``L_S = V_S V_S^T`` for each block."""
    return [v @ v.T for v in factors]


def solve_factored(
    layout: Layout,
    s_w: NDArray[np.float64],
    lam: float,
    *,
    init: Sequence[NDArray] | None = None,
    tol: float = 1e-7,
    max_rounds: int = 30,
    max_iter: int = 5000,
    polish_iter: int = 300,
    polish_max_dim: int = 500,
) -> tuple[list[NDArray], dict[str, Any]]:
    """Solve the program through PSD factors ``L_S = V_S V_S^T``.

    Minimises the smooth function ``1/2 ||V V^T - S_W||_F^2 + lam sum_S w_S
    ||V_S||_F^2`` (``V`` = the block-sparse ``d x sum_S k_S`` matrix holding the
    ``V_S`` on the rows of ``S``) with L-BFGS, then checks the convex certificate:
    if some ``lambda_max(R_SS)`` exceeds ``lam w_S``, the violating eigenvectors
    are appended to ``V_S`` (rank augmentation) and L-BFGS restarts. Stops when the
    certified relative duality gap is ``<= tol``. If the certificate stalls at
    L-BFGS precision, up to ``polish_iter`` proximal-gradient steps
    (:func:`solve_prox`) started from the factored point finish the solve, when
    every block has at most ``polish_max_dim`` rows (each step needs a full
    eigendecomposition per block).

    Returns
    -------
    factors : list of ndarray of shape (d_S, k_S)
    info : dict
        ``converged``, ``n_iter`` (L-BFGS iterations, all rounds), ``rounds``,
        ``objective``, ``gap``, ``relative_gap``.
    """
    n_blocks = len(layout.candidates)
    factors = (
        [np.asarray(v, dtype=float) for v in init]
        if init is not None
        else [np.zeros((r.size, 0)) for r in layout.rows]
    )
    s_sq = float(np.sum(s_w * s_w))
    total_iter = 0
    cert: dict[str, Any] = {}
    converged = False
    rounds = 0
    best_gap: float | None = None
    for rounds in range(1, max_rounds + 1):  # noqa: B007
        ranks = [v.shape[1] for v in factors]
        if sum(ranks) > 0:
            cols, mask, colw = _pack_index(layout, ranks)
            full = np.zeros(mask.shape)
            for i, v in enumerate(factors):
                full[np.ix_(layout.rows[i], np.arange(cols[i], cols[i + 1]))] = v
            x0 = full[mask]

            def fun(x, mask=mask, colw=colw):
                w = np.zeros(mask.shape)
                w[mask] = x
                res = s_w - w @ w.T
                val = 0.5 * float(np.sum(res * res)) + lam * float(
                    np.sum(colw * np.sum(w * w, axis=0))
                )
                grad = -2.0 * (res @ w) + 2.0 * lam * w * colw
                return val, grad[mask]

            import scipy.optimize  # lazy: keeps `import hcl_stats` light

            with one_blas_thread():  # L-BFGS-B + numpy BLAS: threads only contend
                opt = scipy.optimize.minimize(
                    fun,
                    x0,
                    jac=True,
                    method="L-BFGS-B",
                    options={
                        "maxiter": max_iter,
                        "maxcor": 30,
                        "ftol": 1e-15 * max(s_sq, 1e-300),
                        "gtol": 1e-13 * max(np.sqrt(s_sq), 1e-300),
                        "maxfun": 4 * max_iter,
                    },
                )
            total_iter += int(opt.nit)
            full = np.zeros(mask.shape)
            full[mask] = opt.x
            factors = [
                full[np.ix_(layout.rows[i], np.arange(cols[i], cols[i + 1]))]
                for i in range(n_blocks)
            ]
            factors = [_compress(v) for v in factors]
        mats = factors_to_mats(layout, factors)
        cert = certificate(layout, s_w, mats, lam, n_top=4)
        rel = cert["gap"] / max(abs(cert["primal"]), 1e-300)
        if rel <= tol:
            converged = True
            break
        if best_gap is not None and cert["gap"] >= 0.5 * best_gap and rel <= 1e2 * tol:
            break  # the certificate stalls at L-BFGS precision; report it honestly
        best_gap = cert["gap"] if best_gap is None else min(best_gap, cert["gap"])
        added = False
        for i, (vals, vecs) in enumerate(cert["top"]):
            thr = lam * layout.weights[i]
            keep = vals > thr + 1e-12 * max(np.sqrt(s_sq), 1.0)
            if np.any(keep):
                scale = np.sqrt((vals[keep] - thr) / layout.lipschitz)
                factors[i] = np.hstack([factors[i], vecs[:, keep] * scale])
                added = True
        if not added and sum(v.shape[1] for v in factors) == 0:
            converged = True  # zero is optimal: no block violates its bound
            break
    polished = False
    if not converged and cert and max(r.size for r in layout.rows) <= polish_max_dim:
        # The certificate can stall at L-BFGS precision; a few exact proximal steps
        # from the factored point finish the job (and are certified the same way).
        mats = factors_to_mats(layout, factors)
        p_mats, p_info = solve_prox(
            layout, s_w, lam, init=mats, tol=tol, max_iter=polish_iter, check_every=10
        )
        if p_info["gap"] < cert["gap"]:
            factors = [_psd_factor(m) for m in p_mats]
            cert = {"primal": p_info["objective"], "gap": p_info["gap"]}
            converged = bool(p_info["converged"])
            total_iter += int(p_info["n_iter"])
            polished = True
    info = {
        "polished": polished,
        "converged": converged,
        "n_iter": total_iter,
        "rounds": rounds,
        "objective": cert.get("primal"),
        "gap": cert.get("gap"),
        "relative_gap": cert.get("gap", np.inf) / max(abs(cert.get("primal", 1.0)), 1e-300),
    }
    return factors, info


def _psd_factor(m: NDArray) -> NDArray:
    """``V`` with ``V V^T = m`` for a PSD matrix (numerically zero directions dropped)."""
    vals, vecs = np.linalg.eigh((m + m.T) / 2.0)
    keep = vals > 1e-12 * max(float(np.max(np.abs(vals), initial=0.0)), 1e-300)
    return vecs[:, keep] * np.sqrt(vals[keep])


def _compress(v: NDArray) -> NDArray:
    """Same ``V V^T`` with orthogonal columns, dropping numerically zero ones."""
    if v.shape[1] == 0:
        return v
    u, s, _ = np.linalg.svd(v, full_matrices=False)
    keep = s > 1e-9 * max(float(s[0]), 1e-300)
    return u[:, keep] * s[keep]


# ------------------------------------------------------------------ prox solver
def solve_prox(
    layout: Layout,
    s_w: NDArray[np.float64],
    lam: float,
    *,
    init: Sequence[NDArray] | None = None,
    tol: float = 1e-7,
    max_iter: int = 20000,
    check_every: int = 25,
) -> tuple[list[NDArray], dict[str, Any]]:
    """Accelerated proximal gradient (FISTA, adaptive restart) on the ``L_S``.

    Step ``1 / c`` with ``c`` the largest number of candidate blocks covering one
    entry (the Lipschitz constant of the loss gradient). The prox of
    ``lam w_S tr(L) + indicator(L >= 0)`` soft-thresholds the eigenvalues of the
    block at ``lam w_S / c`` and clips them at zero. Every ``check_every``
    iterations the certified relative duality gap is computed; stops when it is
    ``<= tol``.
    """
    step = 1.0 / layout.lipschitz
    x = (
        [np.array(m, dtype=float) for m in init]
        if init is not None
        else [np.zeros((r.size, r.size)) for r in layout.rows]
    )
    y = [m.copy() for m in x]
    theta = 1.0
    f_old = objective(layout, s_w, x, lam)
    converged = False
    cert: dict[str, Any] = {}
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007
        res = assemble(layout, y) - s_w
        new = []
        for r, w, ym in zip(layout.rows, layout.weights, y, strict=True):
            g = ym - step * res[np.ix_(r, r)]
            g = (g + g.T) / 2.0
            thr = step * lam * w
            vals, vecs = scipy.linalg.eigh(g, subset_by_value=[thr, np.inf])
            vals = vals - thr
            new.append((vecs * vals) @ vecs.T)
        f_new = objective(layout, s_w, new, lam)
        if f_new > f_old:
            theta = 1.0
            y = [m.copy() for m in x]
            continue
        theta_next = (1.0 + np.sqrt(1.0 + 4.0 * theta * theta)) / 2.0
        beta = (theta - 1.0) / theta_next
        y = [n + beta * (n - o) for n, o in zip(new, x, strict=True)]
        theta = theta_next
        x, f_old = new, f_new
        if it % check_every == 0:
            cert = certificate(layout, s_w, x, lam)
            if cert["gap"] <= tol * max(abs(cert["primal"]), 1e-300):
                converged = True
                break
    if not cert or not converged:
        cert = certificate(layout, s_w, x, lam)
        converged = cert["gap"] <= tol * max(abs(cert["primal"]), 1e-300)
    return x, {
        "converged": converged,
        "n_iter": it,
        "objective": cert["primal"],
        "gap": cert["gap"],
        "relative_gap": cert["gap"] / max(abs(cert["primal"]), 1e-300),
    }


# ------------------------------------------------------------------ cvxpy program
class CvxpyProgram:
    """The program compiled once with cvxpy; the penalty is a Parameter (DPP).

    Parameters
    ----------
    layout : Layout
    s_w : ndarray of shape (d, d), optional
        If given, the data enter as constants (one compilation per data set). If
        None, ``S_W`` is a ``cp.Parameter`` too, assigned by :meth:`set_data`, so
        one compilation serves many data sets. cvxpy's DPP tensor has
        ``(n_variables + 1) x (n_parameters + 1)`` entries, i.e. ``O(d^4)`` with a
        data Parameter, so that mode is only usable for small ``d`` (about 60).
    """

    def __init__(self, layout: Layout, s_w: NDArray[np.float64] | None = None) -> None:
        try:
            import cvxpy as cp
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "ConvexRelaxation requires cvxpy; install hcl_stats[convex]"
            ) from exc
        from ..exceptions import SolverError

        self.layout = layout
        dims = layout.dims
        off = block_offsets(dims)
        n_views = len(dims)
        self.variables = [
            cp.Variable((r.size, r.size), PSD=True) for r in layout.rows
        ]
        self.penalty = cp.Parameter(nonneg=True, name="penalty")
        self.blocks: dict[tuple[int, int], Any] = {}
        local = []
        for s in layout.candidates:
            pos, o = {}, 0
            for m in sorted(s):
                pos[m] = (o, o + dims[m])
                o += dims[m]
            local.append(pos)
        loss = 0
        for m in range(n_views):
            for mp in range(m, n_views):
                if s_w is None:
                    target = cp.Parameter((dims[m], dims[mp]), name=f"S_W[{m},{mp}]")
                    self.blocks[(m, mp)] = target
                else:
                    target = np.asarray(s_w[off[m] : off[m + 1], off[mp] : off[mp + 1]])
                terms = [
                    var[pos[m][0] : pos[m][1], pos[mp][0] : pos[mp][1]]
                    for var, pos in zip(self.variables, local, strict=True)
                    if m in pos and mp in pos
                ]
                fitted = terms[0] if len(terms) == 1 else cp.sum(terms) if terms else 0
                coef = 1.0 if m == mp else 2.0
                loss = loss + coef * cp.sum_squares(fitted - target)
        pen = cp.sum(
            [w * cp.trace(v) for w, v in zip(layout.weights, self.variables, strict=True)]
        )
        self.problem = cp.Problem(cp.Minimize(0.5 * loss + self.penalty * pen))
        if not self.problem.is_dcp(dpp=True):  # pragma: no cover - a bug if it fires
            raise SolverError(
                "the convex relaxation must be DPP-compliant (is_dcp(dpp=True)); "
                "got a non-DPP problem.",
                status="not_dpp",
            )

    def set_data(self, s_w: NDArray[np.float64] | None, lam: float) -> None:
        """Assign the penalty and, in Parameter mode, ``S_W`` (shape (d, d))."""
        if self.blocks:
            if s_w is None:
                raise ValueError("s_w must be given in Parameter mode; got None.")
            off = block_offsets(self.layout.dims)
            for (m, mp), par in self.blocks.items():
                par.value = np.ascontiguousarray(
                    s_w[off[m] : off[m + 1], off[mp] : off[mp + 1]]
                )
        self.penalty.value = float(lam)

    def solve(self, solver: str, **options: Any) -> tuple[list[NDArray], dict[str, Any]]:
        """Solve; map statuses to typed errors and warnings.

        Returns the ``L_S`` (PSD-projected) and ``{"solver", "status",
        "solver_stats"}``. Raises :class:`~hcl_stats.exceptions.SolverError` on
        failure; warns :class:`~hcl_stats.exceptions.ConvergenceWarning` on
        ``optimal_inaccurate``.
        """
        import warnings

        import cvxpy as cp

        from ..exceptions import ConvergenceWarning, SolverError

        options = dict(options)
        # Conic (SOC) form of the squared loss: the quadratic-objective path of
        # cvxpy densifies a (d^2 x d^2) parameter tensor and runs out of memory.
        options.setdefault("use_quad_obj", False)
        try:
            self.problem.solve(solver=solver, **options)
        except cp.error.SolverError as exc:
            raise SolverError(
                f"cvxpy solver {solver} failed: {exc}", status="solver_error"
            ) from exc
        status = self.problem.status
        stats = self.problem.solver_stats
        info = {
            "solver": solver,
            "status": status,
            "solver_stats": {
                "solve_time": getattr(stats, "solve_time", None),
                "setup_time": getattr(stats, "setup_time", None),
                "num_iters": getattr(stats, "num_iters", None),
            },
        }
        if status in (cp.OPTIMAL_INACCURATE,):
            warnings.warn(
                f"cvxpy solver {solver} returned status {status!r}; the solution may "
                "be inaccurate (see diagnostics.extra['status']).",
                ConvergenceWarning,
                stacklevel=2,
            )
        elif status != cp.OPTIMAL:
            raise SolverError(
                f"cvxpy solver {solver} status must be 'optimal'; got {status!r}.",
                status=status,
            )
        mats = []
        for v in self.variables:
            a = np.asarray(v.value, dtype=float)
            a = (a + a.T) / 2.0
            vals, vecs = np.linalg.eigh(a)
            mats.append((vecs * np.clip(vals, 0.0, None)) @ vecs.T)
        return mats, info
