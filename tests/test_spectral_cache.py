"""SpectralCache: estimators of one Monte Carlo unit share their spectral work, and
every result is bit-identical to the fit without the cache."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _study_helpers import write_tiny
from hypothesis import given
from hypothesis import strategies as st

import hcl_stats as hs
from hcl_stats.estimators import (
    MaskedGradient,
    MaskedShrink,
    NaivePCA,
    SchurComplement,
    SchurShrink,
    SpectralCache,
)
from hcl_stats.estimators._noise import top_eigenvalues
from hcl_stats.exceptions import NotIdentifiableError, NumericalWarning
from hcl_stats.sampling import wishart_sample_cov
from hcl_stats.study import load_study
from hcl_stats.study.runner import compute_unit

DIMS = (15, 25, 30)  # d = 70 > 64: sigma^2 from a subset eigendecomposition


def _bits(a) -> bytes:
    return np.ascontiguousarray(np.asarray(a, dtype=float)).tobytes()


def _same_fit(a, b) -> None:
    assert _bits(a.loadings) == _bits(b.loadings)
    assert _bits(a.noise_var) == _bits(b.noise_var)
    assert a.diagnostics.warnings == b.diagnostics.warnings
    assert a.diagnostics.n_iter == b.diagnostics.n_iter
    assert a.diagnostics.objective == b.diagnostics.objective
    assert a.estimator == b.estimator


@given(p=st.integers(65, 110), k=st.integers(1, 20), seed=st.integers(0, 2**32 - 1))
def test_subset_eigenvalues_do_not_depend_on_whether_vectors_are_computed(p, k, seed):
    # The cache serves the scalar sigma^2 from NaivePCA's top-K eigenpairs; that is
    # bit-identical only because LAPACK's dsyevr takes the same bisection path for a
    # proper subset of eigenvalues with and without vectors.
    x = np.random.default_rng(seed).standard_normal((p + 5, p))
    a = x.T @ x / p
    vals, _ = hs._linalg.top_eigh(a, k)
    assert _bits(vals[::-1]) == _bits(top_eigenvalues(a, k))


@pytest.mark.parametrize("noise", ["scalar", "per_view", 1.0])
def test_shared_cache_fits_are_bit_identical_to_uncached(rng, noise):
    model = hs.HierarchicalFactorModel.random(DIMS, "all:1", noise_var=1.0, rng=rng)
    cov = wishart_sample_cov(model, 400, rng)
    kw = dict(dims=DIMS, n_samples=400, structure=model.structure)
    ests = [NaivePCA(noise_rule=noise), SchurComplement(noise_rule=noise),
            MaskedGradient(noise_rule=noise), MaskedShrink(noise_rule=noise),
            SchurShrink(noise_rule=noise), SchurComplement(variant="per_view", noise_rule=noise)]
    cache = SpectralCache()
    for est in ests:
        with warnings.catch_warnings(record=True):  # compared via diagnostics.warnings
            warnings.simplefilter("always")
            shared = est.with_cache(cache).fit_covariance(cov, **kw)
            plain = est.fit_covariance(cov, **kw)
        _same_fit(shared, plain)
    # the closed form and the refinement's start are one Schur recursion, the
    # covariance is validated once
    assert cache.hits >= len(ests) - 1 + 1
    assert len(cache) < cache.hits + cache.misses


def test_refinement_start_and_noise_come_from_the_cache(rng):
    model = hs.HierarchicalFactorModel.random(DIMS, "all:1", noise_var=1.0, rng=rng)
    cov = wishart_sample_cov(model, 400, rng)
    kw = dict(dims=DIMS, n_samples=400, structure=model.structure)
    cache = SpectralCache()
    NaivePCA().with_cache(cache).fit_covariance(cov, **kw)
    misses = cache.misses
    SchurComplement().with_cache(cache).fit_covariance(cov, **kw)
    # validation and top-K eigenpairs reused; only the Schur recursion is new
    assert cache.misses == misses + 1
    hits = cache.hits
    MaskedGradient().with_cache(cache).fit_covariance(cov, **kw)
    assert cache.misses == misses + 1  # nothing new: the start is the closed form
    assert cache.hits == hits + 3  # validation, sigma^2, Schur recursion


def test_cache_misses_on_a_one_bit_change_and_survives_caller_mutation(rng):
    model = hs.HierarchicalFactorModel.random(DIMS, "all:1", noise_var=1.0, rng=rng)
    cov = wishart_sample_cov(model, 300, rng)
    kw = dict(dims=DIMS, n_samples=300, structure=model.structure)
    cache = SpectralCache()
    est = SchurComplement().with_cache(cache)
    first = est.fit_covariance(cov, **kw)
    bumped = cov.copy()
    bumped[3, 5] = bumped[5, 3] = np.nextafter(cov[3, 5], np.inf)  # one ulp
    misses = cache.misses
    moved = est.fit_covariance(bumped, **kw)
    assert cache.misses == misses + 3  # validation, sigma^2, recursion: all recomputed
    _same_fit(moved, SchurComplement().fit_covariance(bumped, **kw))
    # a caller that scribbles on a returned array does not change later hits
    w, _ = hs.estimators.schur_loadings(cov - np.eye(cov.shape[0]), DIMS, model.structure,
                                        cache=cache)
    w[:] = np.nan
    again, _ = hs.estimators.schur_loadings(cov - np.eye(cov.shape[0]), DIMS,
                                            model.structure, cache=cache)
    assert np.all(np.isfinite(again))
    _same_fit(est.fit_covariance(cov, **kw), first)


def test_cached_strict_recursion_still_refuses_a_non_schur_design():
    # block A: the views outside it (B, C) have d_O = 4 >= k_O = 3 rows, so the
    # refinement's relaxed start exists, but AB and B load only on the single row
    # of view B: the strict Schur step (generic rank 2 < 3) must still refuse
    # after the relaxed recursion of the same matrix is in the cache.
    dims, structure = (3, 1, 3), "A:1 AB:1 B:1 C:1"
    model = hs.HierarchicalFactorModel.random(dims, structure, noise_var=0.5, rng=0)
    cov = model.covariance()
    cache = SpectralCache()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        MaskedGradient(max_iter=5).with_cache(cache).fit_covariance(
            cov, dims=dims, structure=structure)
    with pytest.raises(NotIdentifiableError, match="block A"):
        SchurComplement().with_cache(cache).fit_covariance(cov, dims=dims, structure=structure)


def test_warnings_are_replayed_on_every_hit():
    # rank 3 asked where the data carry rank 1: the Schur complement has
    # non-positive eigenvalues and warns; a cache hit must warn the same way
    model = hs.HierarchicalFactorModel.random((4, 5), "AB:1", noise_var=1.0, rng=0)
    cov = model.covariance()
    kw = dict(dims=(4, 5), structure="AB:3")
    cache = SpectralCache()
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        fits = [SchurComplement(noise_rule=1.0).with_cache(cache).fit_covariance(cov, **kw)
                for _ in range(2)]
        plain = SchurComplement(noise_rule=1.0).fit_covariance(cov, **kw)
    assert cache.hits >= 2
    assert any("NumericalWarning" in w for w in plain.diagnostics.warnings)
    for fit in fits:
        _same_fit(fit, plain)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        SchurComplement(noise_rule=1.0).with_cache(cache).fit_covariance(cov, **kw)
    assert [f"{w.category.__name__}: {w.message}" for w in caught] == list(
        plain.diagnostics.warnings)
    assert any(w.category is NumericalWarning for w in caught)


def test_with_cache_keeps_hyper_parameters_and_equality():
    est = MaskedGradient(tol=1e-6, memory=7)
    shared = est.with_cache(SpectralCache())
    assert shared == est
    assert repr(shared) == repr(est)
    assert shared.get_params() == est.get_params()
    assert est._cache is None
    assert shared.with_cache(None)._cache is None


@pytest.mark.parametrize("sampler", ["wishart", "data"])
def test_cached_and_uncached_units_store_bit_identical_rows(tmp_path, global_seed, sampler):
    cfg = write_tiny(tmp_path, reps=2, seed=global_seed, ns="[60, 300]", sampler=sampler,
                     extra="[estimators.masked_shrink]\n[estimators.schur_shrink]")
    text = cfg.read_text().replace("dims = [4, 5, 6]", "dims = [15, 25, 30]")
    cfg.write_text(text)
    study = load_study(cfg)
    labels = tuple(study.estimators)
    for cell in range(len(study.cells)):
        for rep in range(2):
            shared = compute_unit(study, cell, rep, labels, share_spectra=True)
            plain = compute_unit(study, cell, rep, labels, share_spectra=False)
            for a, b in zip(shared, plain, strict=True):
                assert (a.estimator, a.status, a.error) == (b.estimator, b.status, b.error)
                va = {k: v for k, v in a.values.items() if k[0] != "wall_time"}
                vb = {k: v for k, v in b.values.items() if k[0] != "wall_time"}
                assert va.keys() == vb.keys()
                assert len(va) > 3
                for k in va:
                    assert _bits(va[k]) == _bits(vb[k]), (a.estimator, k)
