"""Peer methods: SLIDE, AJIVE, GCCA and the MOFA+ adapter in the estimator API."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import hcl_stats as hs
from hcl_stats import estimators, metrics
from hcl_stats.estimators.peers import factors_to_structure
from hcl_stats.estimators.slide import slide_path
from hcl_stats.exceptions import ValidationError

DIMS = (10, 12, 14)


def _model(structure, seed, *, noise=1.0, sv=(1.5, 2.5), dims=DIMS):
    return hs.HierarchicalFactorModel.random(
        dims, structure, noise_var=noise, singular_values=sv, rng=seed
    )


def _check_shape_and_mask(fit, dims):
    assert fit.loadings.shape == (sum(dims), fit.structure.total_rank)
    outside = ~fit.structure.mask(dims)
    assert np.all(fit.loadings[outside] == 0.0)
    assert np.all(np.isfinite(fit.loadings))


@pytest.mark.parametrize("name", ["naive", "slide", "slide_fixed", "ajive", "gcca", "mofa"])
def test_registry_names(name):
    cls = estimators.get(name)
    assert cls.name == name


@pytest.mark.parametrize("name", ["slide", "ajive", "gcca"])
def test_learned_fit_shapes_and_mask(name, global_seed):
    model = _model("ABC:1 AB:1 C:1", global_seed)
    data = model.sample(3000, rng=global_seed + 1)
    fit = estimators.get(name)().fit(data, rng=global_seed)
    _check_shape_and_mask(fit, DIMS)
    assert fit.structured


@pytest.mark.parametrize("name", ["slide_fixed", "ajive", "gcca"])
def test_covariance_fit_with_structure_shapes_and_mask(name, global_seed):
    model = _model("ABC:1 AB:1 C:1", global_seed)
    fit = estimators.get(name)().fit_covariance(
        model.covariance(), dims=DIMS, structure=model.structure
    )
    _check_shape_and_mask(fit, DIMS)


def test_slide_recovers_structure_with_large_n(global_seed):
    model = _model("ABC:1 AB:1 C:1", global_seed, sv=(2.0, 3.0))
    data = model.sample(20000, rng=global_seed + 1)
    fit = estimators.SLIDE().fit(data, rng=global_seed)
    assert fit.structure.blocks == model.structure.blocks
    assert fit.structure.ranks == model.structure.ranks
    assert metrics.overall_gram_error(fit, model, relative=True) < 0.1


def test_slide_path_contains_true_structure_at_population_level(global_seed):
    model = _model("ABC:1 AB:1 C:1", global_seed, sv=(2.0, 3.0), noise=0.5)
    cov = model.covariance()
    off = np.concatenate([[0], np.cumsum(DIMS)])
    scale = np.concatenate([
        np.full(d, 1 / np.sqrt(np.trace(cov[a:b, a:b])))
        for d, a, b in zip(DIMS, off[:-1], off[1:], strict=True)
    ])
    path = slide_path(cov * np.outer(scale, scale), DIMS, model.total_rank,
                      n_lambda=40, lambda_min_ratio=0.01)
    found = {str(e["structure"]) for e in path if e["structure"] is not None}
    assert str(model.structure) in found


def test_slide_fixed_population_bias_small(global_seed):
    # SLIDE fits the data matrix; its model-scale step is exact without a mask and
    # nearly exact with one (module docstring): a few percent at this SNR.
    model = _model("ABC:1 AB:1 A:1 C:1", global_seed, noise=0.5)
    fit = estimators.SLIDEFixed().fit_covariance(
        model.covariance(), dims=DIMS, structure=model.structure
    )
    assert metrics.overall_gram_error(fit, model, relative=True) < 0.05


def test_slide_fixed_exact_for_single_global_block(global_seed):
    # one block covering all views: no mask, so the model-scale step is exact
    model = _model("ABC:2", global_seed)
    fit = estimators.SLIDEFixed(noise_rule=1.0).fit_covariance(
        model.covariance(), dims=DIMS, structure=model.structure
    )
    assert metrics.overall_gram_error(fit, model, relative=True) < 1e-6


def test_slide_needs_data_for_covariance():
    model = _model("ABC:1", 0)
    with pytest.raises(ValidationError, match="needs the raw data rows"):
        estimators.SLIDE().fit_covariance(
            model.covariance(), dims=DIMS, structure=model.structure
        )


def test_slide_bad_folds_message():
    with pytest.raises(ValidationError, match=r"bcv_folds\[1\] must be >= 2; got 1"):
        estimators.SLIDE(bcv_folds=(3, 1))


def test_ajive_structure_is_global_plus_individual(global_seed):
    model = _model("ABC:1 AB:1 A:1 C:1", global_seed, sv=(2.0, 3.0), noise=0.5)
    fit = estimators.AJIVE().fit_covariance(
        model.covariance(), dims=DIMS, structure=model.structure
    )
    full = frozenset(range(3))
    assert all(b == full or len(b) == 1 for b in fit.structure.blocks)
    assert fit.structure.rank_of(full) == 1
    # the partial block AB is absorbed into the individual parts of A and B
    assert fit.structure.rank_of({0}) == 3 - 1
    assert fit.structure.rank_of({1}) == 2 - 1
    assert metrics.support_scores(fit, model)["structure_recall"] == 0.75


def test_ajive_learns_joint_rank_from_data(global_seed):
    model = _model("ABC:2 A:1 B:1 C:1", global_seed, sv=(2.0, 3.0), noise=0.5)
    data = model.sample(20000, rng=global_seed + 1)
    fit = estimators.AJIVE().fit(data)
    assert fit.structure == model.structure
    assert metrics.overall_gram_error(fit, model, relative=True) < 0.1


def test_ajive_population_needs_view_ranks():
    model = _model("ABC:1", 0)
    with pytest.raises(ValidationError, match="view_ranks must be given"):
        estimators.AJIVE().fit_covariance(model.covariance(), dims=DIMS)


def test_gcca_is_global_only_and_exact_for_global_model(global_seed):
    model = _model("ABC:2", global_seed, sv=(2.0, 3.0), noise=0.5)
    fit = estimators.GCCA(rank=2, view_ranks=(2, 2, 2)).fit_covariance(
        model.covariance(), dims=DIMS
    )
    assert str(fit.structure) == "ABC:2"
    _check_shape_and_mask(fit, DIMS)
    # scores built from noisy views are attenuated by Corr(z_hat, z); with the
    # views' principal scores the attenuation is the per-view noise share only
    assert metrics.overall_gram_error(fit, model, relative=True) < 0.2


def test_factors_to_structure_thresholds():
    v = np.array([[1.0, 0.001, 0.0], [1.0, 0.0, 0.0], [0.05, 0.0, 0.0]])
    s, cols = factors_to_structure(v, np.ones(3), share_threshold=0.1, min_snr=0.01)
    # factor 0: C has 0.05 / 2.05 < 0.1 of its variance; factor 1: inactive (snr)
    assert str(s) == "AB:1"
    assert cols == [[0]]
    s, _ = factors_to_structure(v, np.ones(3), share_threshold=0.02, min_snr=0.01)
    assert str(s) == "ABC:1"


def test_mofa_missing_package_names_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mofapy2", None)
    monkeypatch.setitem(sys.modules, "mofapy2.run", None)
    monkeypatch.setitem(sys.modules, "mofapy2.run.entry_point", None)
    model = _model("ABC:1", 0)
    with pytest.raises(ImportError, match=r"hcl_stats\[peers\]"):
        estimators.MOFA().fit(model.sample(50, rng=1), rng=0)


def test_mofa_adapter_shapes_mask_and_global_state(global_seed):
    pytest.importorskip("mofapy2")
    model = _model("ABC:1 AB:1 C:1", global_seed, sv=(2.0, 3.0), noise=0.5)
    data = model.sample(600, rng=global_seed + 1)
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    fit = estimators.MOFA(n_factors=5, max_iter=60).fit(data, rng=global_seed)
    after = np.random.get_state()[1]  # noqa: NPY002
    assert np.array_equal(before, after)
    _check_shape_and_mask(fit, DIMS)
    assert np.shape(fit.noise_var) == (3,)
    # same rng, same seed handed to mofapy2, same result
    again = estimators.MOFA(n_factors=5, max_iter=60).fit(data, rng=global_seed)
    assert again.diagnostics.extra["seed"] == fit.diagnostics.extra["seed"]
    np.testing.assert_allclose(again.loadings, fit.loadings)
