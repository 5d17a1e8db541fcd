"""The structure_benchmark study task, the ``learn`` estimator and their metrics."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hcl_stats as hs
import hcl_stats.study  # noqa: F401 - registers the tasks and metrics
from hcl_stats.estimators.fittable import make_fittable
from hcl_stats.exceptions import ValidationError
from hcl_stats.study.registry import Draw, EstimatorSpec, MetricContext, get_task
from hcl_stats.study.tasks.structure_benchmark import (
    NoBlocks,
    NoiseTruth,
    block_margins,
    fittable_family,
    lift_to_edge,
    oracle_gram_rel,
    selection,
)


def _ctx(name, draw=None, **params):
    spec = EstimatorSpec(name, name, params)
    return MetricContext(name, spec, draw, {}, wall_time=0.0)


@pytest.mark.parametrize("select", ["schur_select", "convex_fast"])
def test_learn_and_fit_recovers_a_strong_structure(select, rng):
    model = hs.HierarchicalFactorModel.random(
        (8, 12, 15), "ABC:2 AB:1 C:1", singular_values=(3.0, 4.0), rng=rng
    )
    fit = hs.estimators.get("learn")(select=select).fit(model.sample(5000, rng=rng))
    assert fit.structure == model.structure
    assert fit.diagnostics.extra["selector"] == select
    assert fit.diagnostics.extra["selected_structure"] == str(model.structure)


def test_learn_and_fit_with_a_structure_is_the_refit(rng):
    model = hs.HierarchicalFactorModel.random((5, 6, 7), "AB:1 C:1", rng=rng)
    data = model.sample(500, rng=rng)
    a = hs.estimators.get("learn")(refit="schur").fit(data, structure=model.structure)
    b = hs.estimators.get("schur")().fit(data, structure=model.structure)
    assert np.array_equal(a.loadings, b.loadings)


def test_learn_and_fit_refuses_bad_arguments_and_covariances():
    learn = hs.estimators.get("learn")
    with pytest.raises(ValidationError, match="select"):
        learn(select="magic")
    with pytest.raises(ValidationError, match="refit"):
        learn(refit="magic")
    with pytest.raises(ValidationError, match="needs the rows"):
        learn().fit_covariance(np.eye(4), dims=(2, 2))


@settings(max_examples=40, deadline=None)
@given(
    dims=st.lists(st.integers(3, 8), min_size=2, max_size=4),
    rank=st.integers(1, 2),
    p=st.floats(0.2, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_fittable_family_is_never_lowered(dims, rank, p, seed):
    try:
        s = fittable_family(tuple(dims), rank, p, np.random.default_rng(seed), max_draws=200)
    except ValueError:
        return  # no such family: refused, never returned unfittable
    fitted, changes = make_fittable(s, tuple(dims))
    assert fitted == s
    assert changes == ()


def test_lift_to_edge_puts_every_block_at_least_at_the_margin(rng):
    model = hs.HierarchicalFactorModel.random(
        (10, 12, 14), "ABC:2 AB:1 C:2", singular_values=(0.05, 3.0), rng=rng
    )
    before = block_margins(model, 800)
    lifted = lift_to_edge(model, 800, 1.5)
    after = block_margins(lifted, 800)
    for b, m0, m1 in zip(model.structure.blocks, before, after, strict=True):
        cols = model.structure.columns(b)
        if m0 >= 1.5:  # untouched
            assert np.array_equal(lifted.loadings[:, cols], model.loadings[:, cols])
        else:
            assert m1 == pytest.approx(1.5, rel=1e-10)
    assert min(after) >= 1.5 * (1 - 1e-10)


def test_selection_scores_null_and_non_null_outcomes():
    truth = hs.HierarchicalFactorModel.random((4, 5, 6), "AB:1 C:1", rng=0)
    ctx = _ctx("learn")
    empty = NoBlocks((4, 5, 6), "no block")
    null = NoiseTruth((4, 5, 6), 1.0)
    assert selection(empty, null, ctx)["false_positive"] == 0.0
    fit = hs.estimators.get("schur")().fit_covariance(
        truth.covariance(), dims=truth.dims, structure=truth.structure)
    out = selection(fit, null, ctx)
    assert out == {"false_positive": 1.0, "n_blocks": 2.0, "total_rank": 2.0}
    assert selection(fit, truth, ctx)["rank_exact"] == 1.0
    zero = selection(empty, truth, ctx)
    assert set(zero.values()) == {0.0}
    assert oracle_gram_rel(empty, truth, ctx) == {"overall": 1.0}
    assert oracle_gram_rel(fit, truth, ctx)["overall"] == pytest.approx(0.0, abs=1e-10)
    assert selection(fit, truth, _ctx("schur")) == {}  # given the structure


def test_noise_design_draws_no_signal_and_a_learner_is_not_a_failure(global_seed):
    task = get_task("structure_benchmark")
    factors = {**task.defaults, "dims": [6, 7, 8], "n_samples": 4000, "design": "noise"}

    def rep_rng(stream, per_cell=False):
        return np.random.default_rng([global_seed, stream])

    draw = task.generate(factors, rep_rng, "data")
    assert isinstance(draw.truth, NoiseTruth)
    assert np.allclose(draw.data.sample_cov(), np.eye(21), atol=0.15)
    spec = EstimatorSpec("schur_select", "learn", {"select": "schur_select"})
    out = task.analyse(spec.build(), draw, spec, 0)
    assert isinstance(out, NoBlocks) or out.structure.n_views == 3
    assert isinstance(draw, Draw)


def test_mofa_with_no_active_factor_says_no_structure(rng):
    pytest.importorskip("mofapy2")
    from hcl_stats.exceptions import NoStructureError

    model = hs.HierarchicalFactorModel.random((4, 5), "AB:1", rng=rng)
    with pytest.raises(NoStructureError, match="no shared structure"):
        hs.estimators.get("mofa")(min_snr=1e9, max_iter=20).fit(model.sample(200, rng=rng))
