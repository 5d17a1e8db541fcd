"""Convex relaxation that learns the sharing structure and the ranks.

The program (derived in docs/convex.md; ``paper.md`` §8 leaves the paper's own
relaxation unknown, so this one is ours)::

    minimise over L_S >= 0 (one per candidate subset S of the views)
        1/2 || sum_S E_S(L_S) - S_W ||_F^2 + lam * sum_S w_S tr(L_S),
    with w_S = |S|^power, 0 < power < 1 (default 1/2),

where ``S_W = S - sigma^2 I`` is the denoised covariance and ``E_S`` embeds the
``d_S x d_S`` matrix ``L_S`` in the rows and columns of the views of ``S``. With
equal weights the decomposition is not unique (a specific component can move into
any larger block's diagonal at the same trace cost); weights that increase with
``|S|`` while ``w_S / |S|`` decreases make the true decomposition the unique
optimum under the balance and orthogonality conditions of docs/convex.md
(Theorem 1). In factored form ``L_S = V_S V_S^T`` the program is the paper's
masked contrastive loss over *all* candidate blocks with a weighted Frobenius
penalty on the encoder blocks.

Two solvers of the same program:

* :class:`ConvexRelaxation` (``convex``): cvxpy (``pip install hcl_stats[convex]``),
  penalty as a DPP ``cp.Parameter``; solver statuses mapped to typed errors.
* :class:`ConvexFast` (``convex_fast``): numpy/scipy only; factored L-BFGS with a
  certified duality gap and rank augmentation (default), or FISTA with eigenvalue
  soft-thresholding per block (``method='prox'``); warm starts along a penalty
  path (:func:`penalty_path`).

Both read the structure and ranks off the solution (eigenvalues of each ``L_S``
above a noise-level threshold) and refit the loadings on the selected structure
(two-stage pipeline).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._linalg import block_offsets
from .._validation import check_choice, check_int, check_real
from ..exceptions import ConvergenceWarning, NoStructureError, ValidationError
from ..structure import Structure, format_block
from ._base import Estimator, Problem, RawFit, signal_covariance
from ._convex_core import (
    CvxpyProgram,
    Layout,
    candidate_blocks,
    certificate,
    factors_to_mats,
    objective,
    solve_factored,
    solve_prox,
)
from ._refit import finish_selection
from .fittable import fittable_or_raise
from .selection import (
    REFITS,
    learner_noise,
    noise_edge,
    reduced_sizes,
    select_structure_schur,
)

__all__ = [
    "ConvexFast",
    "ConvexRelaxation",
    "candidate_blocks",
    "convex_objective",
    "default_penalty",
    "penalty_path",
    "select_from_solution",
]

#: Largest number of views the convex learners accept (2^M - 1 candidate blocks).
MAX_CONVEX_VIEWS = 6
#: Population level: eigenvalues of ``L_S`` below this fraction of ``||S_W||_2``
#: are zero (the default penalty is ``1e-3 ||S_W||_2``; off-condition spurious
#: components are O(penalty), docs/convex.md §4).
POPULATION_THRESHOLD = 1e-2


def default_penalty(
    noise_var: float,
    dims: Sequence[int],
    n_samples: int | None,
    candidates: Sequence[frozenset[int]],
    weights: Sequence[float],
    *,
    scale: float = 1.0,
    s_w: NDArray | None = None,
) -> float:
    """Theory-driven penalty: the smallest ``lam`` that zeroes pure noise.

    ``lam = scale * max_S edge(d_S) / w_S`` with ``edge(p)`` the top of the noise
    spectrum of a ``p``-dimensional block of ``S - sigma^2 I`` (:func:`noise_edge`,
    without the safety margin). For data without signal ``L = 0`` is then optimal
    up to Tracy-Widom fluctuations (``lambda_max(R_SS) <= lam w_S`` for all ``S``).
    Population (``n_samples=None``): ``1e-3 * scale * ||S_W||_2``.

    Examples
    --------
    The noise edge, and with it the penalty, shrinks as ``n`` grows:

    >>> from hcl_stats.estimators.convex import default_penalty
    >>> blocks = [frozenset({0, 1}), frozenset({0})]
    >>> lam = [default_penalty(1.0, (3, 4), n, blocks, [1.0, 1.0]) for n in (100, 400)]
    >>> bool(0 < lam[1] < lam[0])
    True
    """
    if n_samples is None:
        base = float(np.max(np.abs(np.linalg.eigvalsh(s_w)))) if s_w is not None else 1.0
        return 1e-3 * scale * base
    off = block_offsets(dims)
    best = 0.0
    for s, w in zip(candidates, weights, strict=True):
        p = int(sum(off[m + 1] - off[m] for m in s))
        best = max(best, noise_edge(noise_var, p, n_samples, tw=0.0, margin=0.0) / w)
    return scale * best


def select_from_solution(
    mats: Sequence[NDArray[np.float64]],
    layout: Layout,
    thresholds: Sequence[float],
) -> tuple[Structure | None, dict[str, Any]]:
    """Structure and ranks read off a solution: eigenvalues of ``L_S`` above ``tau_S``.

    Parameters
    ----------
    mats : list of ndarray of shape (d_S, d_S)
    layout : Layout
    thresholds : sequence of float
        ``tau_S`` per candidate.

    Returns
    -------
    structure : Structure or None
    scores : dict
        Per candidate (letters): ``eigenvalues`` (leading eigenvalues of ``L_S``),
        ``threshold``, ``rank``.
    """
    blocks, ranks, scores = [], [], {}
    for s, mat, tau in zip(layout.candidates, mats, thresholds, strict=True):
        vals = np.sort(np.linalg.eigvalsh((mat + mat.T) / 2.0))[::-1]
        r = int(np.sum(vals > tau))
        scores[format_block(s)] = {
            "eigenvalues": [float(v) for v in vals[: max(r + 2, 3)]],
            "threshold": float(tau),
            "rank": r,
        }
        if r:
            blocks.append(s)
            ranks.append(r)
    if not blocks:
        return None, scores
    return Structure(len(layout.dims), tuple(blocks), tuple(ranks)), scores


def convex_objective(
    mats: Sequence[ArrayLike],
    s_w: ArrayLike,
    dims: Sequence[int],
    penalty: float,
    *,
    weight_power: float = 0.5,
) -> float:
    """Objective of the program at ``mats`` (one ``L_S`` per candidate, canonical order).

    Examples
    --------
    >>> import numpy as np
    >>> from hcl_stats.estimators.convex import convex_objective
    >>> mats = [np.zeros((2, 2)), np.zeros((1, 1)), np.zeros((1, 1))]
    >>> convex_objective(mats, np.eye(2), (1, 1), 0.1)
    1.0
    """
    layout = Layout.build(tuple(dims), candidate_blocks(len(dims)), weight_power)
    return objective(layout, np.asarray(s_w, float), [np.asarray(m, float) for m in mats], penalty)


def penalty_path(
    s_w: ArrayLike,
    dims: Sequence[int],
    penalties: Sequence[float],
    *,
    weight_power: float = 0.5,
    tol: float = 1e-7,
) -> list[tuple[float, list[NDArray[np.float64]], dict[str, Any]]]:
    """Solve the program along a penalty path with warm starts (factored solver).

    Penalties are solved in decreasing order, each starting from the previous
    factors, which are then grown or shrunk by the certificate loop.

    Returns
    -------
    list of (penalty, mats, info)
    """
    s_w = np.asarray(s_w, dtype=float)
    layout = Layout.build(tuple(dims), candidate_blocks(len(dims)), weight_power)
    out = []
    init = None
    for lam in sorted((float(p) for p in penalties), reverse=True):
        factors, info = solve_factored(layout, s_w, lam, init=init, tol=tol)
        init = factors
        out.append((lam, factors_to_mats(layout, factors), info))
    return out


@dataclass(frozen=True, kw_only=True)
class _ConvexLearner(Estimator):
    """Shared machinery of the convex learners (penalty rule, selection, refit)."""

    learns_structure: ClassVar[bool] = True

    penalty: float | None = None
    penalty_scale: float = 1.0
    weight_power: float = 0.5
    threshold_scale: float = 1.0
    rank_rule: str = "schur"
    refit: str = "schur"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.penalty is not None:
            check_real(self.penalty, "penalty", low=0.0)
        check_real(self.penalty_scale, "penalty_scale", low=0.0)
        p = check_real(self.weight_power, "weight_power", low=0.0)
        if p >= 1.0 or p <= 0.0:
            raise ValidationError(
                f"weight_power must be in (0, 1) so that w_S = |S|^power increases "
                f"while w_S/|S| decreases (docs/convex.md, Theorem 1); got {p!r}."
            )
        check_real(self.threshold_scale, "threshold_scale", low=0.0)
        check_choice(self.rank_rule, "rank_rule", ("schur", "eigen"))
        check_choice(self.refit, "refit", REFITS)

    def _solve(self, layout: Layout, s_w: NDArray, lam: float):  # pragma: no cover
        raise NotImplementedError

    def _fit(self, problem: Problem, rng: np.random.Generator) -> RawFit:
        cov, dims, structure, n_samples = (
            problem.cov, problem.dims, problem.structure, problem.n_samples
        )
        n_views = len(dims)
        if n_views > MAX_CONVEX_VIEWS:
            raise ValidationError(
                f"the number of views must be <= {MAX_CONVEX_VIEWS} for "
                f"{type(self).__name__} (2^M - 1 candidate blocks); got {n_views}."
            )
        cands = candidate_blocks(n_views) if structure is None else tuple(structure.blocks)
        layout = Layout.build(dims, cands, self.weight_power)
        noise = learner_noise(problem)
        s_w = signal_covariance(cov, dims, noise)
        sel_noise = float(np.mean(noise))
        lam = (
            float(self.penalty)
            if self.penalty is not None
            else default_penalty(
                sel_noise, problem.full_dims, n_samples, cands, layout.weights,
                scale=self.penalty_scale, s_w=s_w,
            )
        )
        mats, info = self._solve(layout, s_w, lam)
        if problem.reduction is not None and info.get("objective") is not None:
            # the reduced S_W lacks its complement, 1/2 sum_m sigma_m^4 (d_m - r_m)
            info["objective"] = info["objective"] + 0.5 * problem.complement_fro2(noise)
        if n_samples is None:
            top = float(np.max(np.abs(np.linalg.eigvalsh(s_w))))
            thresholds = [POPULATION_THRESHOLD * top] * len(layout.weights)
        else:
            thresholds = [self.threshold_scale * lam * w for w in layout.weights]
        selected, scores = select_from_solution(mats, layout, thresholds)
        if selected is not None and self.rank_rule == "schur":
            convex_support = selected
            selected, schur_scores = select_structure_schur(
                s_w, dims, sel_noise, n_samples, candidates=tuple(selected.blocks),
                **reduced_sizes(problem, noise),
            )
            scores = {"convex": scores, "schur": schur_scores,
                      "convex_support": str(convex_support)}
        if selected is None:
            raise NoStructureError(
                f"the data support no shared structure: {type(self).__name__} "
                "selected no block: some L_S must have an "
                f"eigenvalue above its threshold; got none at penalty {lam:.3g}. The "
                "signal is below the noise level (more samples or a smaller "
                "penalty_scale)."
            )
        if structure is not None and structure.view_names is not None:
            selected = selected.with_names(structure.view_names)
        info = {**info, "penalty": lam, "weights": list(layout.weights)}
        if self.refit == "none":
            info["selected_structure"] = str(selected)
            selected, changes = fittable_or_raise(self, problem, selected, scores)
            info["fittable_changes"] = list(changes)
            w = np.zeros((sum(dims), selected.total_rank))
            for s, mat in zip(layout.candidates, mats, strict=True):
                if s in selected:
                    vals, vecs = np.linalg.eigh(mat)
                    r = selected.rank_of(s)
                    top = np.argsort(vals)[::-1][:r]
                    w[np.ix_(layout.rows[layout.candidates.index(s)], np.arange(
                        selected.columns(s).start, selected.columns(s).stop))] = (
                        vecs[:, top] * np.sqrt(np.clip(vals[top], 0.0, None))
                    )
            extra = {"selection_scores": scores, "selection_noise_var": sel_noise,
                     "refit": "none", **info}
            return RawFit(w, noise, selected, converged=info.get("converged"),
                          n_iter=int(info.get("n_iter") or 0),
                          objective=info.get("objective"), extra=extra)
        return finish_selection(self, problem, selected, scores, noise, rng, extra=info)


#: Options that :class:`ConvexRelaxation` passes to each cvxpy solver: numeric or
#: boolean tolerances, iteration and time limits only. Anything else (e.g. SCS's
#: ``write_data_filename``, which writes a file wherever it points) is refused.
SOLVER_OPTIONS: dict[str, frozenset[str]] = {
    "CLARABEL": frozenset({"max_iter", "time_limit", "verbose", "tol_gap_abs",
                           "tol_gap_rel", "tol_feas", "tol_ktratio"}),
    "SCS": frozenset({"max_iters", "time_limit_secs", "verbose", "eps_abs", "eps_rel",
                      "eps_infeas", "acceleration_lookback", "normalize", "scale",
                      "adaptive_scale"}),
    "ECOS": frozenset({"max_iters", "verbose", "abstol", "reltol", "feastol"}),
}

#: Peak bytes of a cvxpy + interior-point solve per byte of the dense PSD-cone blocks
#: ``8 * sum_S (d_S (d_S + 1) / 2)^2`` (Clarabel, 3 equal views, peak RSS: 8.7 at d = 60,
#: 8.1 at d = 75; 24 GB observed at d = 180 against 28 GB predicted).
MEMORY_FACTOR = 8.0
#: Fixed overhead of the cvxpy compilation, bytes.
MEMORY_BASE = 100e6


def convex_memory_estimate(dims: Sequence[int], candidates: Sequence[frozenset[int]]) -> float:
    """Predicted peak bytes of :class:`ConvexRelaxation` on ``candidates`` (heuristic).

    Each candidate block ``S`` is a PSD variable of side ``d_S``; its cone has
    ``n_S = d_S (d_S + 1) / 2`` entries and the interior-point KKT system holds a
    dense ``n_S x n_S`` block, so memory grows like ``d_S^4``.

    Examples
    --------
    >>> from hcl_stats.estimators.convex import convex_memory_estimate
    >>> from hcl_stats.estimators._convex_core import candidate_blocks
    >>> round(convex_memory_estimate((60, 60, 60), candidate_blocks(3)) / 1e9)
    28
    """
    total = 0.0
    for s in candidates:
        side = float(sum(dims[m] for m in s))
        total += (side * (side + 1.0) / 2.0) ** 2
    return MEMORY_BASE + MEMORY_FACTOR * 8.0 * total


def available_memory() -> float | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``), or None.

    Examples
    --------
    >>> from hcl_stats.estimators.convex import available_memory
    >>> mem = available_memory()
    >>> mem is None or mem > 0
    True
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024.0
    except OSError:
        pass
    try:
        import os

        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - platform
        return None


@dataclass(frozen=True, kw_only=True)
class ConvexRelaxation(_ConvexLearner):
    """Weighted-trace convex relaxation solved with cvxpy; learns structure and ranks.

    Solves the program of the module docstring over every non-empty subset of
    views (or the blocks of a given ``structure``, whose ranks are then ignored),
    selects the blocks ``S`` with an eigenvalue of ``L_S`` above
    ``threshold_scale * penalty * w_S``, and refits on the selected structure.

    Parameters
    ----------
    penalty : float, optional
        ``lam``. None uses :func:`default_penalty` times ``penalty_scale``.
    penalty_scale : float, default=1.0
    weight_power : float, default=0.5
        ``w_S = |S|^weight_power``; must lie in (0, 1).
    threshold_scale : float, default=1.0
        Support threshold ``tau_S = threshold_scale * lam * w_S`` on the eigenvalues
        of ``L_S`` (population: ``1e-2 ||S_W||_2``).
    rank_rule : {'schur', 'eigen'}, default='schur'
        ``'eigen'``: blocks and ranks = eigenvalues of ``L_S`` above ``tau_S``.
        ``'schur'``: the convex support is the candidate family of the
        Schur-spectrum selector, which prunes it and sets the ranks (two-stage
        selection; exact at the population level under Proposition 3 whenever the
        convex support contains the truth).
    refit : {'schur', 'masked_gradient', 'none'}, default='schur'
        Second stage on the selected structure; ``'none'`` returns the (shrunk)
        factors of the ``L_S``.
    solver : str, default='CLARABEL'
        cvxpy solver name; recorded in ``diagnostics.extra``. No fallback.
    solver_options : dict, optional
        Passed to ``problem.solve``; only the numeric or boolean options listed in
        :data:`SOLVER_OPTIONS` for ``solver`` are accepted (ValidationError
        otherwise), so that no option can make the solver write files.
    max_memory_gb : float, optional
        Refuse (ValidationError, before compiling) a program whose predicted peak
        memory (:func:`convex_memory_estimate`) exceeds this many GB. Default: 80% of
        the memory available when the fit starts.
    noise_rule : {'scalar', 'per_view'} or float, default='scalar'
        ``'scalar'``: :func:`~hcl_stats.estimators.selection.estimate_noise_var_mp`.

    Raises
    ------
    SolverError
        If the solver fails or returns a status other than optimal /
        optimal_inaccurate (the latter warns :class:`ConvergenceWarning`).

    Notes
    -----
    Deterministic; ``rng`` is ignored. Interior-point SDP: memory grows like
    ``d_S^4`` for the largest block (``d = 300`` needs more than 16 GB with
    Clarabel); use :class:`ConvexFast` beyond ``d`` of about 150.
    ``diagnostics.extra`` records ``solver``, ``status``, ``solver_stats``,
    ``penalty``, ``weights`` and ``selection_scores``.

    References
    ----------
    Li, Yu and Zhou (2026), arXiv:2604.05462 (the model); the relaxation and its
    exact-recovery conditions are ours (docs/convex.md).
    """

    name: ClassVar[str] = "convex"

    solver: str = "CLARABEL"
    solver_options: dict = field(default_factory=dict)
    max_memory_gb: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.solver, str):
            raise ValidationError(f"solver must be a cvxpy solver name; got {self.solver!r}.")
        if not isinstance(self.solver_options, dict):
            raise ValidationError(
                f"solver_options must be a dict; got {self.solver_options!r}."
            )
        allowed = SOLVER_OPTIONS.get(self.solver.upper(), frozenset())
        for key, value in self.solver_options.items():
            if key not in allowed:
                shown = ", ".join(sorted(allowed)) or "none"
                raise ValidationError(
                    f"solver_options key must be one of the options allowed for "
                    f"{self.solver} ({shown}); got {key!r}."
                )
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                if not (isinstance(value, bool) and key in ("verbose", "normalize",
                                                            "adaptive_scale")):
                    raise ValidationError(
                        f"solver_options[{key!r}] must be a number; got {value!r}."
                    )
        if self.max_memory_gb is not None:
            check_real(self.max_memory_gb, "max_memory_gb", low=0.0)

    def _memory_guard(self, layout) -> None:
        need = convex_memory_estimate(layout.dims, layout.candidates)
        if self.max_memory_gb is not None:
            limit, origin = float(self.max_memory_gb) * 1e9, "max_memory_gb"
        else:
            avail = available_memory()
            if avail is None:  # pragma: no cover - platform without the information
                return
            limit, origin = 0.8 * avail, "80% of the available memory"
        if need > limit:
            raise ValidationError(
                f"the cvxpy program of ConvexRelaxation must fit in memory; got an "
                f"estimated {need / 1e9:.1f} GB for dims {list(layout.dims)} "
                f"({len(layout.candidates)} candidate blocks) against a limit of "
                f"{limit / 1e9:.1f} GB ({origin}). Use the estimator 'convex_fast' "
                "(ConvexFast, the same program with first-order solvers, memory ~ d^2) "
                "or raise max_memory_gb."
            )

    def _solve(self, layout, s_w, lam):
        self._memory_guard(layout)
        program = CvxpyProgram(layout, s_w)
        program.set_data(None, lam)
        mats, info = program.solve(self.solver, **dict(self.solver_options))
        cert = certificate(layout, s_w, mats, lam)
        info.update(
            objective=cert["primal"],
            converged=info["status"] == "optimal",
            relative_gap=cert["gap"] / max(abs(cert["primal"]), 1e-300),
        )
        return mats, info


@dataclass(frozen=True, kw_only=True)
class ConvexFast(_ConvexLearner):
    """The same convex program solved by our first-order solvers (numpy/scipy only).

    Parameters
    ----------
    method : {'factored', 'prox'}, default='factored'
        ``'factored'``: L-BFGS on ``L_S = V_S V_S^T`` with rank augmentation driven
        by the dual certificate; ``'prox'``: FISTA with adaptive restart and
        eigenvalue soft-thresholding per block.
    tol : float, default=1e-7
        Stop when the certified relative duality gap is ``<= tol``.
    max_iter : int, default=5000
    penalty, penalty_scale, weight_power, threshold_scale, refit, noise_rule
        As in :class:`ConvexRelaxation`.

    Warns
    -----
    ConvergenceWarning
        If the certified relative gap stays above ``100 * tol``.

    Notes
    -----
    Deterministic; ``rng`` is ignored. The certified gap bounds the distance of
    the objective to the optimum, so ``relative_gap <= 1e-6`` guarantees agreement
    with any exact solver to that accuracy (benchmarks/convex.py).

    Examples
    --------
    >>> import hcl_stats as hs
    >>> model = hs.HierarchicalFactorModel.random((5, 6, 7), "ABC:1 AB:1 C:1", rng=0)
    >>> fit = hs.estimators.ConvexFast().fit_covariance(model.covariance(), dims=model.dims)
    >>> str(fit.structure)
    'ABC:1 AB:1 C:1'
    """

    name: ClassVar[str] = "convex_fast"
    # the program's solution lies in the views' row spaces (docs/convex.md, "Wide
    # views"): solved on the reduced covariance, with the data's d_S in the penalty
    samples_path: ClassVar[bool] = True

    method: str = "factored"
    tol: float = 1e-7
    max_iter: int = 5000

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.method, "method", ("factored", "prox"))
        check_real(self.tol, "tol", low=0.0)
        check_int(self.max_iter, "max_iter", minimum=1)

    def _solve(self, layout, s_w, lam):
        if self.method == "factored":
            factors, info = solve_factored(
                layout, s_w, lam, tol=self.tol, max_iter=self.max_iter
            )
            mats = factors_to_mats(layout, factors)
        else:
            mats, info = solve_prox(
                layout, s_w, lam, tol=self.tol, max_iter=self.max_iter
            )
        if info["relative_gap"] > 100 * self.tol:
            warnings.warn(
                f"ConvexFast ({self.method}) stopped with certified relative gap "
                f"{info['relative_gap']:.2e} > 100 * tol = {100 * self.tol:.1e}.",
                ConvergenceWarning,
                stacklevel=2,
            )
        info = {**info, "solver": f"hcl_stats.{self.method}"}
        return mats, info
