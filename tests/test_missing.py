"""Missing views: container, pairwise-complete covariance, fits and selection."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from strategies import identifiable_models

import hcl_stats as hs
from hcl_stats.exceptions import ValidationError
from hcl_stats.missing import (
    IncompleteData,
    drop_views,
    fit_missing,
    pairwise_covariance,
    project_psd,
)
from hcl_stats.workflow import select_structure


def _incomplete(rng, n=60, dims=(3, 4, 2), frac=0.4):
    x = [rng.standard_normal((n, d)) for d in dims]
    return drop_views(hs.MultimodalData(x), frac, rng=rng)


def test_partly_missing_row_is_rejected():
    a = np.ones((4, 2))
    a[1, 0] = np.nan
    with pytest.raises(ValidationError, match=r"views\[0\] row 1 must be all-NaN"):
        IncompleteData([a, np.ones((4, 1))])


def test_pair_observed_together_too_rarely_is_rejected():
    a = np.array([[1.0], [2.0], [np.nan], [np.nan]])
    b = np.array([[np.nan], [np.nan], [1.0], [3.0]])
    with pytest.raises(ValidationError, match="views 0 and 1 must be observed together"):
        IncompleteData([a, b])


def test_observed_mask_overrides_values_and_input_is_not_modified(rng):
    a = rng.standard_normal((5, 2))
    keep = a.copy()
    mask = np.ones((5, 2), dtype=bool)
    mask[0, 0] = False
    data = IncompleteData([a, rng.standard_normal((5, 3))], observed=mask)
    assert np.all(np.isnan(data.Xs[0][0]))
    np.testing.assert_array_equal(a, keep)
    assert data.pair_counts().tolist() == [[4, 4], [4, 5]]


def test_pairwise_covariance_equals_sample_cov_on_complete_data(rng):
    x = [rng.standard_normal((30, d)) for d in (2, 3)]
    data = hs.MultimodalData(x)
    pc = pairwise_covariance(data)
    np.testing.assert_allclose(pc.cov, data.sample_cov(), atol=1e-12)
    assert pc.n_per_block.tolist() == [[30, 30], [30, 30]]


def test_each_block_is_the_complete_case_covariance_of_its_pair(rng):
    data = _incomplete(rng)
    pc = pairwise_covariance(data)
    off = np.concatenate([[0], np.cumsum(data.dims)])
    obs = data.observed
    for m in range(3):
        for k in range(3):
            rows = obs[:, m] & obs[:, k]
            joint = np.hstack([data.Xs[m][rows], data.Xs[k][rows]])
            c = np.cov(joint, rowvar=False, ddof=1)
            block = c[: data.dims[m], data.dims[m] :] if m != k else c[: data.dims[m], : data.dims[m]]
            got = pc.raw[off[m] : off[m + 1], off[k] : off[k + 1]]
            np.testing.assert_allclose(got, block, atol=1e-10)
            assert pc.n_per_block[m, k] == rows.sum()
    assert np.linalg.eigvalsh(pc.cov)[0] >= -1e-10
    np.testing.assert_allclose(pc.cov, project_psd(pc.raw)[0], atol=1e-10)


def test_project_psd_is_the_nearest_psd_matrix():
    a = np.array([[1.0, 2.0], [2.0, 1.0]])  # eigenvalues 3, -1
    psd, lam, corr = project_psd(a)
    assert lam == pytest.approx(-1.0)
    np.testing.assert_allclose(psd, [[1.5, 1.5], [1.5, 1.5]], atol=1e-12)
    assert corr == pytest.approx(1.0)  # ||(-1) v v^T||_F


def test_indefinite_pairwise_estimate_is_projected():
    # three views seen in disjoint pairs can produce an impossible correlation pattern
    x = np.array([1.0, 2.0, 3.0, 4.0])
    nan = np.full(4, np.nan)
    a = np.column_stack([np.r_[x, x, nan]])
    b = np.column_stack([np.r_[x, nan, x]])
    c = np.column_stack([np.r_[nan, -x, -x]])
    pc = pairwise_covariance(IncompleteData([a[:, :1], b[:, :1], c[:, :1]]))
    assert pc.raw_min_eigenvalue < 0
    assert np.linalg.eigvalsh(pc.cov)[0] >= -1e-12
    assert pc.projection_norm > 0


def test_drop_views_keeps_at_least_m_minus_one_views(rng):
    data = _incomplete(rng, n=200, frac=0.5)
    assert np.all(data.observed.sum(axis=1) >= 2)
    assert 0 < (~data.observed).sum() < 200


def test_fit_missing_without_missingness_equals_ordinary_fit(rng):
    model = hs.HierarchicalFactorModel.random((4, 5, 6), "ABC:1 AB:1 C:1", rng=rng)
    data = model.sample(200, rng=rng)
    est = hs.estimators.SchurComplement()
    a = est.fit(data, structure=model.structure)
    b = fit_missing(est, data, structure=model.structure)
    np.testing.assert_allclose(a.loadings, b.loadings, atol=1e-10)
    assert b.n_samples == 200
    assert b.diagnostics.extra["covariance"] == "pairwise-complete"


def test_fit_missing_uses_the_smallest_pair_count(rng):
    model = hs.HierarchicalFactorModel.random((4, 5, 6), "ABC:1 AB:1 C:1", rng=rng)
    data = drop_views(model.sample(300, rng=rng), 0.5, rng=rng)
    fit = fit_missing(hs.estimators.SchurComplement(), data, structure=model.structure)
    assert fit.n_samples == int(data.pair_counts().min())
    assert fit.diagnostics.extra["n_per_block"] == data.pair_counts().tolist()


def test_pairwise_beats_complete_cases_at_heavy_missingness(global_seed):
    """More samples per block -> smaller error than dropping incomplete samples."""
    rng = np.random.default_rng(global_seed)
    s = "ABC:2 AB:1 C:1"
    errs = {"pairwise": [], "complete": []}
    est = hs.estimators.SchurComplement()
    for _ in range(6):
        model = hs.HierarchicalFactorModel.random((8, 10, 12), s, singular_values=(1.0, 2.0), rng=rng)
        data = drop_views(model.sample(400, rng=rng), 0.8, rng=rng)
        pw = fit_missing(est, data, structure=s)
        cc = est.fit(data.complete_cases(), structure=s)
        errs["pairwise"].append(hs.metrics.overall_gram_error(pw, model, relative=True))
        errs["complete"].append(hs.metrics.overall_gram_error(cc, model, relative=True))
    assert np.mean(errs["pairwise"]) < np.mean(errs["complete"])


@settings(max_examples=15)
@given(identifiable_models())
def test_rank_counting_is_exact_at_population_level(model):
    """With the true noise and Sigma, k(U) and its Moebius inversion give the structure."""
    sel = select_structure(
        cov=model.covariance(),
        dims=model.dims,
        n_per_block=10**14,
        noise_rule=np.broadcast_to(model.noise_var, (model.n_views,)),
    )
    want = {b: r for b, r in zip(model.structure.blocks, model.structure.ranks, strict=True)}
    got = {b: r for b, r in zip(sel.structure.blocks, sel.structure.ranks, strict=True)}
    if sel.trimmed:  # a view with k_m = d_m - 0 cannot keep all its ranks; never here
        pytest.fail(f"unexpected trimming {sel.trimmed}")
    assert got == want


@pytest.mark.parametrize(
    ("structure", "dims"),
    [("AB:1 A:2 B:1", (2, 4)), ("AB:1 A:1 B:1", (3, 1)), ("ABC:1 AB:1 A:1 B:1 C:1", (2, 3, 3))],
)
def test_rank_counting_fails_without_full_column_rank(structure, dims, global_seed):
    """The other side of the counting condition (docs/real_data.md §3).

    A view with d_m < k_m: the loadings of the blocks meeting it cannot have full
    column rank on its rows, k(U) is under-counted and the Moebius inversion gives
    a wrong structure, although each design is identifiable (Theorem 1 of
    docs/identifiability.md); the selector says which views it trimmed.
    """
    model = hs.HierarchicalFactorModel.random(dims, structure, rng=global_seed)
    assert hs.check_identifiable(model.structure, dims).identifiable
    short = [m for m, d in enumerate(dims) if d < model.structure.view_rank(m)]
    assert short
    sel = select_structure(
        cov=model.covariance(),
        dims=dims,
        n_per_block=10**14,
        noise_rule=np.broadcast_to(model.noise_var, (model.n_views,)),
    )
    assert sel.structure != model.structure
    assert sel.trimmed


def test_selection_from_incomplete_data_recovers_a_strong_structure(global_seed):
    rng = np.random.default_rng(global_seed)
    model = hs.HierarchicalFactorModel.random(
        (20, 25, 30), "ABC:2 AB:1 C:1", singular_values=(1.5, 2.5), rng=rng
    )
    data = drop_views(model.sample(3000, rng=rng), 0.3, rng=rng)
    sel = select_structure(data, min_snr=0.5)
    assert str(sel.structure) == "ABC:2 AB:1 C:1"
