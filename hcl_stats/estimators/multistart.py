"""Masked refinement from several starts, with a population-level certificate.

The Schur recursion needs a matching condition (``schur_matching`` in
:func:`hcl_stats.check_identifiable`) that many identifiable designs fail. This
estimator needs only the exact criterion: it minimises

    f(W, psi) = 1/2 ||W W^T + Psi - S||_F^2

jointly over the masked loadings and the noise variance(s), from several
deterministic or ``rng``-seeded starts, and polishes with Gauss-Newton steps. At
the population level ``f = 0`` exactly at the truth, so a start that reaches
``f ~ 0`` certifies that its fit reproduces ``Sigma`` (docs/identifiability.md,
Theorem 6 says what that proves about the block Grams).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from .._jacobian import Layout, decide_rank, schur_rank
from .._linalg import block_offsets, one_blas_thread, top_eigh
from .._validation import check_int, check_real
from ..exceptions import ConvergenceWarning, NotIdentifiableError, ValidationError
from ..structure import Structure
from ._base import Estimator, Problem, RawFit
from ._noise import noise_rule_name
from .spectral import schur_loadings

__all__ = ["MaskedMultistart"]


@dataclass(frozen=True, kw_only=True)
class MaskedMultistart(Estimator):
    """Joint masked least squares over ``(W, noise)`` from several starts.

    Starts, in order: ``init`` (if given); the joint Schur recursion (when its
    matching condition and the noise gap hold); the mask-projected top-``K``
    factor of ``S - sigma0^2 I``; then random starts drawn from ``rng``. Each
    start runs L-BFGS-B (noise variances bounded below by 0) and then at most
    ``polish_steps`` Gauss-Newton steps (minimum-norm least-squares steps on the
    residual ``vech(W W^T + Psi - S)``, accepted only when the loss decreases).

    Parameters
    ----------
    n_starts : int, default=8
        Number of starts in total (deterministic ones first).
    max_iter : int, default=4000
        L-BFGS-B iterations per start.
    certify_tol : float, default=1e-12
        A population fit (``n_samples=None``) stops at the first start with
        ``||W W^T + Psi - S||_F / ||S||_F <= certify_tol`` and reports
        ``diagnostics.extra['certified'] = True``. With samples, every start runs
        and the lowest loss is kept.
    polish_steps : int, default=30
        Maximum Gauss-Newton steps per start (0 disables them). They run only
        when L-BFGS-B ended near a zero residual (loss below ``1e-8 ||S||_F^2``)
        and the Jacobian has at most ``1e7`` entries.
    noise_rule : {'scalar', 'per_view'} or float or sequence of float, default='scalar'
        ``'scalar'``/``'per_view'``: estimated *jointly* with ``W`` (not from the
        bottom eigenvalues, so ``d <= K`` and ``d_m <= k_m`` are allowed when the
        design is identifiable); a number: known.

    Raises
    ------
    NotIdentifiableError
        If the design is not generically locally identifiable (the exact
        criterion of :func:`hcl_stats.check_identifiable` fails); the message
        gives the Jacobian rank and its target.

    Warns
    -----
    ConvergenceWarning
        If a population fit reaches no certified start.

    Notes
    -----
    Deterministic given ``rng``. A certified population fit reproduces
    ``Sigma``; when the design is locally identifiable its block Grams are those
    of the truth if the fit lies in the truth's identifiability neighbourhood,
    which no zero-loss certificate alone can prove for designs without the Schur
    route (docs/identifiability.md, Theorem 6, and the measured coverage there).

    Examples
    --------
    >>> import hcl_stats as hs
    >>> model = hs.HierarchicalFactorModel.random((10, 3, 10), "AB:2 B:2 A:1 C:1", rng=0)
    >>> fit = hs.estimators.MaskedMultistart().fit_covariance(
    ...     model.covariance(), dims=model.dims, structure=model.structure, rng=0)
    >>> fit.diagnostics.extra["certified"]
    True
    >>> max(hs.metrics.structure_gram_errors(fit, model, relative=True).values()) < 1e-8
    True
    """

    name: ClassVar[str] = "masked_multistart"
    accepts_init: ClassVar[bool] = True
    balances_views: ClassVar[bool] = True
    needs_rank_below_d: ClassVar[bool] = False

    n_starts: int = 8
    max_iter: int = 4000
    certify_tol: float = 1e-12
    polish_steps: int = 30

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int(self.n_starts, "n_starts", minimum=1)
        check_int(self.max_iter, "max_iter", minimum=0)
        check_real(self.certify_tol, "certify_tol", low=0.0, low_open=True)
        check_int(self.polish_steps, "polish_steps", minimum=0)

    def _fit(self, problem: Problem, rng: np.random.Generator) -> RawFit:
        cov, dims, structure, init = problem.cov, problem.dims, problem.structure, problem.init
        n_samples, noise_option = problem.n_samples, problem.noise
        kind = noise_option if isinstance(noise_option, str) else "known"
        reason = _not_identified(structure, tuple(dims), kind)
        if reason:
            raise NotIdentifiableError(
                f"{type(self).__name__}: the design must be generically locally "
                f"identifiable; got {reason}. See hcl_stats.check_identifiable."
            )
        scale = float(np.mean(np.diag(cov)))
        s = cov / scale
        solver = _Problem(s, dims, structure, _known_noise(noise_option, dims, scale))
        solver.configure(noise_option == "per_view" or isinstance(noise_option, tuple))
        starts = self._starts(solver, init, scale, rng)
        s_norm = float(np.linalg.norm(s))
        best = None
        tried = []
        for label, w0, psi0 in starts:
            w, psi, info = solver.solve(w0, psi0, self.max_iter, self.polish_steps)
            rel = float(np.sqrt(2.0 * info["loss"])) / s_norm
            tried.append({"start": label, "relative_residual": rel, **info})
            if best is None or rel < best[0]:
                best = (rel, label, w, psi, info)
            if n_samples is None and rel <= self.certify_tol:
                break
        rel, label, w, psi, info = best
        certified = n_samples is None and rel <= self.certify_tol
        if n_samples is None and not certified:
            warnings.warn(
                f"MaskedMultistart: no start reproduced the population covariance "
                f"(best relative residual {rel:.2e} > certify_tol = "
                f"{self.certify_tol:.1e} after {len(tried)} starts); increase n_starts "
                "or max_iter.",
                ConvergenceWarning,
                stacklevel=2,
            )
        noise = solver.noise_out(psi) * scale
        if not isinstance(noise_option, str):
            # a known noise variance is reported as given, not after a round trip
            # through the scaling (which can move it by one ulp)
            given = np.asarray(noise_option, dtype=float)
            noise = given if given.ndim else given.item()
        return RawFit(
            w * np.sqrt(scale),
            float(noise) if np.ndim(noise) == 0 else noise,
            structure,
            converged=bool(certified) if n_samples is None else info["converged"],
            n_iter=int(sum(t["n_iter"] for t in tried)),
            objective=float(info["loss"]) * scale**2,
            extra={
                "noise_rule": "joint" if kind != "known" else noise_rule_name(noise_option),
                "certified": bool(certified),
                "relative_residual": rel,
                "start": label,
                "starts": [
                    {"start": t["start"], "relative_residual": t["relative_residual"]}
                    for t in tried
                ],
            },
        )

    def _starts(self, problem: _Problem, init, scale, rng):
        out = []
        if init is not None:
            if tuple(init.dims) != tuple(problem.dims) or init.structure != problem.structure:
                raise ValidationError(
                    "init must have the same dims and structure as the fit; got dims "
                    f"{init.dims} and structure {init.structure}."
                )
            psi = problem.noise_in(np.asarray(init.noise_var, dtype=float) / scale)
            out.append(("init", np.asarray(init.loadings) / np.sqrt(scale), psi))
        psi0 = problem.default_noise()
        s_w = problem.s - np.diag(problem.noise_diag(psi0))
        if _schur_applies(problem):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    w_s, _ = schur_loadings(s_w, problem.dims, problem.structure)
                out.append(("schur", w_s, psi0))
            except (NotIdentifiableError, np.linalg.LinAlgError):
                pass
        k = problem.structure.total_rank
        vals, vecs = top_eigh(s_w, min(k, s_w.shape[0]))
        f = vecs * np.sqrt(np.clip(vals, 0.0, None))
        w_pca = np.zeros(problem.mask.shape)
        w_pca[:, : f.shape[1]] = f
        out.append(("pca_masked", np.where(problem.mask, w_pca, 0.0), psi0))
        amp = np.sqrt(max(float(np.mean(np.clip(vals, 0.0, None))), 1e-3) / max(k, 1))
        i = 0
        while len(out) < self.n_starts:
            w_r = np.where(problem.mask, amp * rng.standard_normal(problem.mask.shape), 0.0)
            psi_r = psi0 * rng.uniform(0.5, 1.5, size=np.shape(psi0))
            out.append((f"random[{i}]", w_r, psi_r))
            i += 1
        return out[: max(self.n_starts, 1 if init is None else 2)]


@functools.lru_cache(maxsize=256)
def _not_identified(structure: Structure, dims: tuple[int, ...], noise: str) -> str:
    """Empty string if identifiable, else the reason (cached per design)."""
    for b, r in zip(structure.blocks, structure.ranks, strict=True):
        d_s = sum(dims[m] for m in b)
        if r > d_s:
            return f"block rank r_S = {r} > d_S = {d_s} for block {sorted(b)}"
    jr = decide_rank(structure, dims, noise, np.random.default_rng(0))
    if jr.full:
        return ""
    return (f"generic Jacobian rank {jr.rank} < {jr.n_params} parameters - "
            f"{jr.n_rotations} rotation dimensions = {jr.target}")


def _known_noise(noise_option, dims, scale):
    """A known noise variance per view, in units of the scaled covariance (or None)."""
    if isinstance(noise_option, str):
        return None
    nv = np.asarray(noise_option, dtype=float) / scale
    if nv.ndim == 0:
        return np.full(len(dims), float(nv))
    if nv.shape != (len(dims),):
        raise ValidationError(
            f"noise_rule must have one entry per view ({len(dims)}); got {nv.shape[0]}."
        )
    return nv


def _schur_applies(problem: _Problem) -> bool:
    st, dims = problem.structure, problem.dims
    if problem.known is None:
        d, k = sum(dims), st.total_rank
        if problem.per_view_noise:
            if any(dims[m] <= st.view_rank(m) for m in range(len(dims))):
                return False
        elif d <= k:
            return False
    return all(schur_rank(st, dims, b)[0] == schur_rank(st, dims, b)[1]
               for b in st.blocks)


class _Problem:
    """The joint least-squares problem on a covariance scaled to unit mean variance."""

    def __init__(self, s: NDArray, dims, structure: Structure, known: NDArray | None):
        self.s, self.dims, self.structure, self.known = s, tuple(dims), structure, known
        self.mask = structure.mask(dims)
        self.view_of_row = np.repeat(np.arange(len(dims)), dims)
        self.per_view_noise = False
        self.n_noise = 0

    def configure(self, per_view: bool) -> None:
        self.per_view_noise = per_view
        self.n_noise = 0 if self.known is not None else (len(self.dims) if per_view else 1)

    # noise parameter vector <-> per-view values
    def noise_diag(self, psi: NDArray) -> NDArray:
        if self.known is not None:
            return self.known[self.view_of_row]
        if self.per_view_noise:
            return psi[self.view_of_row]
        return np.full(self.s.shape[0], float(psi[0]))

    def noise_out(self, psi: NDArray):
        if self.known is not None:
            return self.known.copy() if self.per_view_noise else float(self.known[0])
        return psi.copy() if self.per_view_noise else float(psi[0])

    def noise_in(self, nv: NDArray) -> NDArray:
        if self.known is not None:
            return np.zeros(0)
        nv = np.atleast_1d(nv)
        if self.per_view_noise:
            return nv if nv.size == len(self.dims) else np.full(len(self.dims), nv[0])
        return np.array([float(np.mean(nv))])

    def default_noise(self) -> NDArray:
        """Bottom eigenvalues where they are noise, else half the smallest variance."""
        if self.known is not None:
            return np.zeros(0)
        d, k = self.s.shape[0], self.structure.total_rank
        vals = np.linalg.eigvalsh(self.s)
        if self.per_view_noise:
            out = np.empty(len(self.dims))
            off = block_offsets(self.dims)
            for m in range(len(self.dims)):
                sub = self.s[off[m] : off[m + 1], off[m] : off[m + 1]]
                ev = np.linalg.eigvalsh(sub)
                km = self.structure.view_rank(m)
                out[m] = (float(np.mean(ev[: ev.size - km])) if ev.size > km
                          else 0.5 * float(ev[0]))
            return np.maximum(out, 1e-3)
        value = float(np.mean(vals[: d - k])) if d > k else 0.5 * float(vals[0])
        return np.array([max(value, 1e-3)])

    def pack(self, w: NDArray, psi: NDArray) -> NDArray:
        return np.concatenate([w[self.mask], psi])

    def unpack(self, x: NDArray) -> tuple[NDArray, NDArray]:
        w = np.zeros(self.mask.shape)
        n_w = int(self.mask.sum())
        w[self.mask] = x[:n_w]
        return w, x[n_w:]

    def loss_grad(self, x: NDArray) -> tuple[float, NDArray]:
        w, psi = self.unpack(x)
        resid = w @ w.T - self.s
        resid[np.diag_indices_from(resid)] += self.noise_diag(psi)
        loss = 0.5 * float(np.sum(resid * resid))
        g_w = 2.0 * (resid @ w)
        diag = np.diag(resid)
        if self.n_noise == 0:
            g_psi = np.zeros(0)
        elif self.per_view_noise:
            g_psi = np.bincount(self.view_of_row, weights=diag, minlength=len(self.dims))
        else:
            g_psi = np.array([float(np.sum(diag))])
        return loss, np.concatenate([g_w[self.mask], g_psi])

    def solve(self, w0, psi0, max_iter: int, polish_steps: int):
        import scipy.optimize

        x0 = self.pack(np.where(self.mask, w0, 0.0), np.asarray(psi0, dtype=float))
        n_w = int(self.mask.sum())
        bounds = [(None, None)] * n_w + [(0.0, None)] * self.n_noise
        n_iter, converged = 0, False
        if max_iter > 0:
            with one_blas_thread():  # scipy's L-BFGS-B and numpy's BLAS: no contention
                res = scipy.optimize.minimize(
                    self.loss_grad, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                    options={"maxiter": max_iter, "maxcor": 20, "ftol": 0.0, "gtol": 0.0,
                             "maxls": 50},
                )
            x0, n_iter, converged = res.x, int(res.nit), bool(res.success)
        x, steps = self._polish(x0, polish_steps)
        loss, grad = self.loss_grad(x)
        return (*self.unpack(x), {"loss": loss, "n_iter": n_iter + steps,
                                  "converged": converged or steps > 0})

    def _polish(self, x: NDArray, max_steps: int) -> tuple[NDArray, int]:
        """Gauss-Newton on the residual ``vech(W W^T + Psi - S)`` (minimum-norm steps)."""
        d = self.s.shape[0]
        n_par = x.size
        n_mom = d * (d + 1) // 2
        loss, _ = self.loss_grad(x)
        s_sq = float(np.sum(self.s * self.s))
        # Gauss-Newton pays off only near a zero-residual point (quadratic
        # convergence there); from a spurious local minimum it cannot help
        if max_steps == 0 or n_par * n_mom > 1e7 or loss > 1e-8 * s_sq:
            return x, 0
        noise = "known" if self.n_noise == 0 else ("per_view" if self.per_view_noise
                                                     else "scalar")
        lay = Layout(self.structure, self.dims, noise)
        iu, ju = np.triu_indices(d)
        weight = np.where(iu == ju, 1.0, np.sqrt(2.0))
        steps = 0
        for _ in range(max_steps):
            w, psi = self.unpack(x)
            resid = w @ w.T - self.s
            resid[np.diag_indices_from(resid)] += self.noise_diag(psi)
            r = resid[iu, ju] * weight
            jt = lay.jacobian_t(w, np.eye(w.shape[1]), None) * weight
            step = np.linalg.lstsq(jt.T, -r, rcond=None)[0]
            trial = x + step
            if self.n_noise:
                trial[-self.n_noise :] = np.maximum(trial[-self.n_noise :], 0.0)
            new_loss, _ = self.loss_grad(trial)
            if not new_loss < loss:
                break
            x, loss = trial, new_loss
            steps += 1
            if loss <= 1e-32 * s_sq:
                break
        return x, steps
