import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import identifiable_models, structures_and_dims

import hcl_stats as hs
from hcl_stats.exceptions import ValidationError


@given(structures_and_dims(), st.floats(0.1, 5.0), st.integers(0, 2**32 - 1))
def test_covariance_is_spd_and_loadings_respect_mask(sd, noise, seed):
    s, dims = sd
    m = hs.HierarchicalFactorModel.random(dims, s, noise_var=noise, rng=seed)
    w = np.asarray(m.loadings)
    assert np.all(w[~s.mask(dims)] == 0)
    cov = m.covariance()
    np.testing.assert_array_equal(cov, cov.T)
    lam = np.linalg.eigvalsh(cov)
    assert lam[0] >= noise * (1 - 1e-10)
    # rank(W W^T) == K: blocks have full column rank and generic position
    assert np.linalg.matrix_rank(w) == s.total_rank
    np.testing.assert_allclose(cov, w @ w.T + noise * np.eye(sum(dims)), atol=1e-12)


def test_block_singular_values_follow_the_design(rng):
    s = hs.Structure.all_subsets(3, rank=3)
    m = hs.HierarchicalFactorModel.random((10, 20, 30), s, singular_values=(0.5, 1.5), rng=rng)
    for b in s.blocks:
        for v in b:
            sv = np.linalg.svd(m.block(v, b), compute_uv=False)
            assert np.all((sv >= 0.5 - 1e-12) & (sv <= 1.5 + 1e-12))


def test_per_view_noise_and_latent_correlation():
    s = hs.Structure.parse("AB:1 A:1 B:1")
    m = hs.HierarchicalFactorModel.random((3, 4), s, noise_var=[0.5, 2.0], latent_cov=0.3, rng=1)
    w = np.asarray(m.loadings)
    r = hs.equicorrelation(0.3, 3)
    expected = w @ r @ w.T + np.diag(np.repeat([0.5, 2.0], (3, 4)))
    np.testing.assert_allclose(m.covariance(), expected, atol=1e-14)


def test_sample_covariance_matches_sigma_within_mc_error(rng):
    s = hs.Structure.parse("AB:1 A:1 B:1")
    m = hs.HierarchicalFactorModel.random((3, 2), s, noise_var=[0.5, 1.5], latent_cov=0.2, rng=rng)
    n = 20000
    cov = m.sample(n, rng=rng).sample_cov()
    sigma = m.covariance()
    # Var(S_ij) = (Sigma_ij^2 + Sigma_ii Sigma_jj) / (n - 1); allow 5 standard errors
    se = np.sqrt((sigma**2 + np.outer(np.diag(sigma), np.diag(sigma))) / (n - 1))
    assert np.all(np.abs(cov - sigma) < 5.5 * se)


def test_loglik_matches_dense_gaussian(rng):
    s = hs.Structure.parse("AB:2 B:1")
    m = hs.HierarchicalFactorModel.random((3, 4), s, noise_var=[0.7, 1.3], rng=rng)
    data = m.sample(50, rng=rng)
    ref = scipy.stats.multivariate_normal(np.zeros(7), m.covariance()).logpdf(data.stacked).sum()
    assert m.loglik(data) == pytest.approx(ref, rel=1e-10)
    corr = hs.HierarchicalFactorModel(m.dims, s, m.loadings, m.noise_var, latent_cov=0.4)
    ref = scipy.stats.multivariate_normal(np.zeros(7), corr.covariance()).logpdf(data.stacked).sum()
    assert corr.loglik(data) == pytest.approx(ref, rel=1e-10)


@settings(max_examples=10)
@given(identifiable_models())
def test_sampling_is_reproducible_from_the_seed(model):
    a = model.sample(5, rng=np.random.default_rng(7)).stacked
    b = model.sample(5, rng=np.random.default_rng(7)).stacked
    np.testing.assert_array_equal(a, b)


def test_data_are_read_only_copies():
    x = [np.ones((3, 2)), np.zeros((3, 1))]
    data = hs.MultimodalData(x)
    x[0][0, 0] = 5.0
    assert data.Xs[0][0, 0] == 1.0
    with pytest.raises(ValueError, match="read-only"):
        data.Xs[0][0, 0] = 2.0
    split = hs.MultimodalData.from_stacked(np.arange(12.0).reshape(3, 4), (1, 3))
    assert split.dims == (1, 3)
    np.testing.assert_array_equal(split.stacked, np.arange(12.0).reshape(3, 4))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"loadings": np.ones((5, 3))}, "exactly zero outside the structure mask"),
        ({"loadings": np.zeros((4, 3))}, r"must have shape \(d, K\) = \(5, 3\)"),
        ({"noise_var": 0.0}, "noise_var must be > 0.0; got 0.0"),
        ({"noise_var": [1.0, -1.0]}, r"noise_var\[1\] must be > 0"),
        ({"noise_var": [1.0, 1.0, 1.0]}, "one entry per view"),
        ({"latent_cov": 2.0}, "rho must be <= 1.0"),
        ({"latent_cov": -np.eye(3)}, "latent_cov must be positive semi-definite"),
    ],
)
def test_model_validation(kwargs, match):
    s = hs.Structure.parse("AB:1 A:1 B:1")
    args = {"dims": (2, 3), "structure": s, "loadings": np.zeros((5, 3)), "noise_var": 1.0}
    args.update(kwargs)
    with pytest.raises(ValidationError, match=match):
        hs.HierarchicalFactorModel(**args)


def test_random_rejects_a_block_wider_than_its_view():
    with pytest.raises(ValidationError, match=r"dims\[0\] = 2 is smaller than rank 3 of block AB"):
        hs.HierarchicalFactorModel.random((2, 5), "AB:3", rng=0)


def test_random_takes_one_singular_value_and_refuses_overflowing_ones():
    m = hs.HierarchicalFactorModel.random((3, 4), "AB:1 A:1", singular_values=2.0, rng=0)
    a = m.structure.columns(frozenset({0}))
    np.testing.assert_allclose(np.linalg.svd(m.loadings[:3, a], compute_uv=False), [2.0])
    with pytest.raises(ValidationError, match=r"singular_values\[1\] must be <= 1e100"):
        hs.HierarchicalFactorModel.random((3, 4), "AB:1", singular_values=(1e200, 1e200), rng=0)
    with pytest.raises(ValidationError, match=r"a pair \(low, high\) or one number"):
        hs.HierarchicalFactorModel.random((3, 4), "AB:1", singular_values=(1.0, 2.0, 3.0), rng=0)
