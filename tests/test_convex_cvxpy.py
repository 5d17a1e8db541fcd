"""cvxpy formulation of the convex relaxation: DPP, agreement with our solver, statuses."""

from __future__ import annotations

import numpy as np
import pytest

import hcl_stats as hs
from hcl_stats.estimators import ConvexRelaxation
from hcl_stats.estimators._convex_core import (
    CvxpyProgram,
    Layout,
    candidate_blocks,
    factors_to_mats,
    objective,
    solve_factored,
)
from hcl_stats.estimators.convex import select_from_solution
from hcl_stats.exceptions import ConvergenceWarning, SolverError

pytestmark = pytest.mark.convex
cp = pytest.importorskip("cvxpy")


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(11)
    dims = (3, 4, 5)
    model = hs.HierarchicalFactorModel.random(dims, "ABC:1 AB:1 C:1", noise_var=0.3, rng=rng)
    cov = model.sample(300, rng=rng).sample_cov()
    return dims, cov - 0.3 * np.eye(12)


def test_program_is_dpp_and_reuses_the_compilation(small):
    dims, s_w = small
    layout = Layout.build(dims, candidate_blocks(3), 0.5)
    program = CvxpyProgram(layout)  # data as Parameters too
    assert program.problem.is_dcp(dpp=True)
    values = []
    for lam in (0.2, 0.05):
        program.set_data(s_w, lam)
        mats, info = program.solve("CLARABEL")
        assert info["status"] == "optimal"
        values.append(objective(layout, s_w, mats, lam))
    assert values[1] < values[0]


@pytest.mark.parametrize("solver", ["CLARABEL", "SCS"])
def test_cvxpy_and_factored_solver_agree(small, solver):
    dims, s_w = small
    layout = Layout.build(dims, candidate_blocks(3), 0.5)
    lam = 0.05
    program = CvxpyProgram(layout, s_w)
    program.set_data(None, lam)
    opts = {"eps": 1e-9, "max_iters": 100000} if solver == "SCS" else {}
    mats_c, _ = program.solve(solver, **opts)
    factors, info = solve_factored(layout, s_w, lam, tol=1e-9)
    mats_f = factors_to_mats(layout, factors)
    f_c, f_f = objective(layout, s_w, mats_c, lam), objective(layout, s_w, mats_f, lam)
    assert f_f <= f_c * (1 + 1e-6)  # ours is at least as good ...
    assert f_c - f_f <= 1e-6 * abs(f_f)  # ... and cvxpy is within 1e-6 relative
    tau = [lam * w for w in layout.weights]
    assert select_from_solution(mats_c, layout, tau)[0] == select_from_solution(mats_f, layout, tau)[0]


class _Stub:
    """Stands in for a cvxpy Problem whose solve ends with a given status."""

    def __init__(self, status, exc=None):
        self.status = status
        self.exc = exc
        self.solver_stats = None

    def solve(self, **kwargs):
        if self.exc is not None:
            raise self.exc


def _solved_program(small):
    dims, s_w = small
    layout = Layout.build(dims, candidate_blocks(3), 0.5)
    program = CvxpyProgram(layout, s_w)
    program.set_data(None, 0.1)
    program.solve("CLARABEL")  # fills the variables
    return program


def test_status_optimal_inaccurate_warns(small):
    program = _solved_program(small)
    program.problem = _Stub(cp.OPTIMAL_INACCURATE)
    with pytest.warns(ConvergenceWarning, match="optimal_inaccurate"):
        _, info = program.solve("CLARABEL")
    assert info["status"] == cp.OPTIMAL_INACCURATE


@pytest.mark.parametrize("status", [cp.INFEASIBLE, cp.UNBOUNDED, cp.INFEASIBLE_INACCURATE])
def test_status_failures_raise_solver_error(small, status):
    program = _solved_program(small)
    program.problem = _Stub(status)
    with pytest.raises(SolverError, match="status must be 'optimal'") as err:
        program.solve("CLARABEL")
    assert err.value.status == status


def test_cvxpy_solver_error_is_wrapped(small):
    program = _solved_program(small)
    program.problem = _Stub(None, exc=cp.error.SolverError("boom"))
    with pytest.raises(SolverError, match="boom") as err:
        program.solve("CLARABEL")
    assert err.value.status == "solver_error"
    assert isinstance(err.value.__cause__, cp.error.SolverError)


def test_unknown_solver_is_a_solver_error(small):
    program = _solved_program(small)
    with pytest.raises(SolverError, match="NOT_A_SOLVER"):
        program.solve("NOT_A_SOLVER")


def test_convex_relaxation_population_end_to_end():
    model = hs.HierarchicalFactorModel.random((4, 5, 6), "ABC:1 AB:1 C:1", rng=3)
    fit = ConvexRelaxation().fit_covariance(model.covariance(), dims=model.dims)
    assert fit.structure == model.structure
    extra = fit.diagnostics.extra
    assert extra["solver"] == "CLARABEL"
    assert extra["status"] == "optimal"
    assert {"solve_time", "num_iters"} <= set(extra["solver_stats"])
    assert max(hs.metrics.structure_gram_errors(fit, model, relative=True).values()) < 1e-6
